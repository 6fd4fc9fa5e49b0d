-- One audit event per request, each with its own actor and patient; POST /v1/events.
local n = 0
local token = os.getenv("SEALTRAIL_TOKEN")
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. token
request = function()
  n = n + 1
  local body = string.format(
    '{"action":"patient.record.read","outcome":"success","actor":{"id":"clinician-%d","type":"user"},"targets":[{"type":"patient","id":"p-%d"}],"context":{"ip":"10.0.%d.%d"},"source":{"app":"ehr"}}',
    n % 97, n % 5003, n % 250, n % 200)
  return wrk.format(nil, "/v1/events", nil, body)
end

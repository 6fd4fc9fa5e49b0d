-- Batches of SEALTRAIL_BATCH events (default 1000) per request; POST /v1/events/batch.
local token = os.getenv("SEALTRAIL_TOKEN")
local size = tonumber(os.getenv("SEALTRAIL_BATCH") or "1000")
local n = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. token
request = function()
  local events = {}
  for i = 1, size do
    n = n + 1
    events[i] = string.format(
      '{"action":"patient.record.update","outcome":"success","actor":{"id":"clinician-%d","type":"user"},"targets":[{"type":"patient","id":"p-%d"}],"details":{"field":"allergies","n":%d}}',
      n % 97, n % 5003, n)
  end
  return wrk.format(nil, "/v1/events/batch", nil, "[" .. table.concat(events, ",") .. "]")
end

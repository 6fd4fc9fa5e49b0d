#!/usr/bin/env bash
# Runs schemathesis against a real `sealtrail serve`: every operation of GET /openapi.json is
# called with generated requests, valid and invalid, and the answers are checked against the
# document (status codes, content types, bodies, headers) and against the API's promise that
# bad input gets a 4xx and good input is taken. Any failure fails the run.
#
# The server runs on the debug binary (after CI's tests step there is nothing left to build),
# on a fresh data directory and a free port, with a token for tenant acme holding every non-admin scope, and
# with events already in its log so that reads, proofs and tiles of existing entries are
# exercised. It is stopped when the script exits, whatever the outcome.
#
# Environment: SCHEMATHESIS_EXAMPLES (examples per operation, default 100), SCHEMATHESIS_SEED
# (default: a fixed seed, so that a CI run is repeatable; set another to explore).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

SCHEMATHESIS_VERSION=4.32.5
examples="${SCHEMATHESIS_EXAMPLES:-100}"
seed="${SCHEMATHESIS_SEED:-20261124}"

ci_name=schemathesis
# shellcheck source=ci/test_server.sh
. "$repo/ci/test_server.sh"

# schemathesis in a virtual environment of its own, reused while its version matches.
venv=$target_dir/schemathesis-venv
python_tool "$venv" "schemathesis==$SCHEMATHESIS_VERSION" schemathesis \
  "schemathesis, version $SCHEMATHESIS_VERSION"

start_test_server
token=$(create_token acme events:write events:read log:read verify)

# Some events first: a full tile and entry bundle (256 entries) and a partial one, one event
# with every field, and a signed checkpoint over all of them.
python3 - "$base" "$token" <<'PY'
import json
import sys
import time
import urllib.request

base, token = sys.argv[1], sys.argv[2]


def call(method, path, body=None, content_type="application/json"):
    request = urllib.request.Request(base + path, method=method, data=body)
    request.add_header("Authorization", "Bearer " + token)
    if body is not None:
        request.add_header("Content-Type", content_type)
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, response.read()


full = {
    "occurred_at": "2026-11-23T10:00:00.123456Z",
    "action": "patient.record.read",
    "activity": "read",
    "outcome": "success",
    "outcome_reason": "treatment",
    "actor": {"id": "u-123", "type": "user", "email": "dr.lee@clinic.example", "name": "Dr Lee", "roles": ["physician"]},
    "targets": [{"type": "patient", "id": "p-9", "name": "J. Doe"}],
    "context": {"ip": "10.1.2.3", "user_agent": "ehr-web/4.2", "request_id": "req-77", "session_id": "s-5", "trace_id": "t-1"},
    "source": {"app": "ehr-web", "instance": "pod-7", "seq": 1},
    "idempotency_key": "req-77:read:p-9",
    "disclosure": {"recipient": "Acme Insurance", "recipient_address": "1 Main St", "purpose": "payment", "description": "claim summary"},
    "details": {"fields": ["name", "dob"], "reason": "treatment", "pages": 2},
}
status, _ = call("POST", "/v1/events", json.dumps(full).encode())
assert status == 201, status
batch = [
    {"action": "user.login", "activity": "login", "outcome": "success" if n % 5 else "failure",
     "actor": {"id": f"u-{n % 7}"}, "source": {"app": "ehr-web", "seq": n + 2}}
    for n in range(300)
]
status, body = call("POST", "/v1/events/batch", json.dumps(batch).encode())
results = json.loads(body)
assert status == 200 and all(r["status"] == 201 for r in results), body[:500]
for _ in range(300):
    try:
        status, note = call("GET", "/v1/log/checkpoint")
        # 301 events, and the alerts the monitor appends after them (the batch's failed
        # logins trip the built-in rules).
        if int(note.split(b"\n")[1]) >= 301:
            break
    except urllib.error.HTTPError:
        pass
    time.sleep(0.1)
else:
    sys.exit("schemathesis: no checkpoint covering the first 301 events within 30 s")
print("posted 301 events; checkpoint signed")
PY

echo "schemathesis $SCHEMATHESIS_VERSION against $base: $examples examples per operation, seed $seed"
started=$(date +%s)
# Run in the temporary directory, where schemathesis keeps its example database and reports.
# One worker: schemathesis shares the two cores with the server, and Python 3.11's ast module
# is not safe to use from several threads, which hypothesis does when several workers run.
set +e
(
  cd "$work" &&
    SCHEMATHESIS_HOOKS="$repo/ci/schemathesis_hooks.py" "$venv/bin/schemathesis" \
      --config-file "$repo/ci/schemathesis.toml" \
      run "$base/openapi.json" \
      --header "Authorization: Bearer $token" \
      --checks all \
      --max-examples "$examples" \
      --seed "$seed" \
      --workers 1 \
      --no-color
)
status=$?
set -e
echo "schemathesis finished in $(($(date +%s) - started)) s with exit status $status"
if [ "$status" -ne 0 ]; then
  echo "schemathesis: failures above; the server's log follows" >&2
  tail -n 40 "$work/serve.err" >&2
fi
exit "$status"

#!/usr/bin/env bash
# Generates a Python client from the OpenAPI document a real `sealtrail serve` publishes
# (openapi-python-client, pinned) and sends events through its typed models
# (ci/generated_client.py): one event, the same again with its idempotency key, and a typed
# batch. A document a generator cannot turn into typed request bodies fails here, as does any
# answer the script does not expect.
#
# The generated package goes to target/generated-client/ (rewritten on every run); the
# generator lives in a cached virtual environment, target/openapi-client-venv/.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

OPENAPI_PYTHON_CLIENT_VERSION=0.29.1

ci_name=generated-client
# shellcheck source=ci/test_server.sh
. "$repo/ci/test_server.sh"

venv=$target_dir/openapi-client-venv
python_tool "$venv" "openapi-python-client==$OPENAPI_PYTHON_CLIENT_VERSION" openapi-python-client \
  "openapi-python-client version: $OPENAPI_PYTHON_CLIENT_VERSION"

start_test_server
token=$(create_token clinic events:write events:read)

out=$target_dir/generated-client
rm -rf "$out"
mkdir -p "$out"
# The document's NDJSON body and OpenMetrics response have no Python model and are left out
# with a warning; everything else must generate. --meta none: the package alone, no project
# around it.
"$venv/bin/openapi-python-client" generate --url "$base/openapi.json" --meta none \
  --output-path "$out/sealtrail_client" >"$work/generate.log" 2>&1 || {
  cat "$work/generate.log" >&2
  echo "$ci_name: openapi-python-client could not generate a client from $base/openapi.json" >&2
  exit 1
}
grep -E '^WARNING' "$work/generate.log" || true

if ! "$venv/bin/python" ci/generated_client.py "$base" "$token" "$out"; then
  echo "$ci_name: the generated client failed; the server's log follows" >&2
  tail -n 40 "$work/serve.err" >&2
  exit 1
fi

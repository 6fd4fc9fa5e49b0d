# Sourced by the CI steps that run a client against a real `sealtrail serve`
# (ci/schemathesis.sh, ci/generated_client.sh): a Python tool in a cached virtual environment,
# and a server on a fresh data directory and a free port, stopped when the script exits.
#
# Expects: $repo (the repository), $ci_name (the step's name, for its messages).
# Sets: $target_dir; after start_test_server also $bin (the sealtrail binary), $work (a
# temporary directory, removed on exit), $server (the server's pid) and $base (its URL).

target_dir=${CARGO_TARGET_DIR:-$repo/target}

# python_tool VENV REQUIREMENT COMMAND VERSION_LINE: a virtual environment at VENV with the
# pip requirement REQUIREMENT, reused while `VENV/bin/COMMAND --version` prints VERSION_LINE
# (so a cached one is replaced when the pinned version changes).
python_tool() {
  local venv=$1 requirement=$2 command=$3 version_line=$4
  if [ "$("$venv/bin/$command" --version 2>/dev/null)" != "$version_line" ]; then
    echo "installing $requirement with pip into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$requirement"
  fi
}

work=""
server=""
# SIGTERM lets serve finish its commits and sign final checkpoints; if it has not exited
# after 30 s, it is killed.
stop_test_server() {
  if [ -n "$server" ] && kill -0 "$server" 2>/dev/null; then
    kill -TERM "$server"
    for _ in $(seq 1 300); do
      kill -0 "$server" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  if [ -n "$work" ]; then
    rm -rf "$work"
  fi
}

# Builds the debug binary (after CI's tests step there is nothing left to build) and starts
# `sealtrail serve` on it; returns once it listens.
start_test_server() {
  cargo build -p sealtrail --locked --quiet
  bin=$target_dir/debug/sealtrail
  work=$(mktemp -d)
  trap stop_test_server EXIT
  "$bin" serve --data "$work/data" --listen 127.0.0.1:0 --checkpoint-interval-ms 200 \
    >"$work/serve.out" 2>"$work/serve.err" &
  server=$!
  # serve prints the admin token (first start) and then the address it listens on.
  for _ in $(seq 1 300); do
    grep -q '^sealtrail listening on' "$work/serve.out" && break
    if ! kill -0 "$server" 2>/dev/null; then
      cat "$work/serve.err" >&2
      echo "$ci_name: sealtrail serve exited before listening" >&2
      exit 1
    fi
    sleep 0.1
  done
  base=$(grep -m 1 '^sealtrail listening on' "$work/serve.out" | grep -o 'http://[^ ]*') || {
    echo "$ci_name: sealtrail serve did not print its address within 30 s" >&2
    exit 1
  }
}

# create_token TENANT SCOPE…: a new token's secret, made with the tokens command on the
# server's store.
create_token() {
  local tenant=$1
  shift
  local scopes=()
  for scope in "$@"; do
    scopes+=(--scope "$scope")
  done
  "$bin" tokens create --data "$work/data" --tenant "$tenant" "${scopes[@]}" --json |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])'
}

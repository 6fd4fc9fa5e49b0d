# The OCSF validator for the export tests: the ocsf-emitter package from PyPI (pinned) in a
# cached virtual environment, target/ci-tools/ocsf-venv/, where the API test
# `ocsf_events_pass_the_ocsf_emitter_validator` finds it (or through SEALTRAIL_OCSF_PYTHON).
# Sourced by .ci/run before the tests; also runnable on its own (`bash ci/ocsf.sh`).

OCSF_EMITTER_VERSION=0.3.0

ocsf_install() {
  local repo target_dir venv
  repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  target_dir=${CARGO_TARGET_DIR:-$repo/target}
  venv=$target_dir/ci-tools/ocsf-venv
  if [ "$("$venv/bin/python" -c 'import ocsf_emitter; print(ocsf_emitter.__version__)' 2>/dev/null)" != "$OCSF_EMITTER_VERSION" ]; then
    echo "installing ocsf-emitter==$OCSF_EMITTER_VERSION with pip into $venv"
    rm -rf "$venv"
    mkdir -p "$target_dir/ci-tools"
    python3 -m venv "$venv" || return 1
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
      "ocsf-emitter==$OCSF_EMITTER_VERSION" || return 1
  fi
  export SEALTRAIL_OCSF_PYTHON=$venv/bin/python
  echo "SEALTRAIL_OCSF_PYTHON=$SEALTRAIL_OCSF_PYTHON (ocsf-emitter $OCSF_EMITTER_VERSION)"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  ocsf_install
else
  ocsf_install || { echo "ci: ocsf-emitter could not be installed; OCSF exports cannot be validated" >&2; exit 1; }
fi

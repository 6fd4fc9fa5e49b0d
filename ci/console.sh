# The console's tests (sourced by .ci/run after the debug binary is built):
#   1. the unit tests of its proof code (crates/sealtrail-server/console/proof.js) under
#      `node --test`, against the RFC 6962/9162 vectors in $SEALTRAIL_MERKLE_VECTORS;
#   2. the browser tests: Debian's chromium (installed once, only if missing) driven by
#      playwright-core, pinned in console-tests/package-lock.json and installed with `npm ci`
#      into target/console-tests/ (reused while the lock file is unchanged; no browser is
#      downloaded), against a real `sealtrail serve`. Screenshots of each screen are left in
#      target/console-screenshots/ for the CI artefacts.
# Either failing fails CI.

console_target=${CARGO_TARGET_DIR:-target}
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "installing Node.js and npm with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq nodejs npm >/dev/null
fi
if [ ! -x /usr/bin/chromium ]; then
  echo "installing Debian's chromium with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
fi
/usr/bin/chromium --version 2>/dev/null || true

console_modules="$console_target/console-tests"
if ! cmp -s console-tests/package-lock.json "$console_modules/package-lock.json" ||
  [ ! -d "$console_modules/node_modules/playwright-core" ]; then
  echo "installing playwright-core with npm ci into $console_modules"
  rm -rf "$console_modules"
  mkdir -p "$console_modules"
  cp console-tests/package.json console-tests/package-lock.json "$console_modules/"
  (cd "$console_modules" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --ignore-scripts --no-audit --no-fund)
fi

echo "console unit tests (node --test)"
node --test console-tests/unit/

echo "console browser tests (Chromium)"
rm -rf "$console_target/console-screenshots"
CONSOLE_NODE_MODULES="$console_modules/node_modules" \
  CONSOLE_SCREENSHOTS="$console_target/console-screenshots" \
  SEALTRAIL_BIN="$console_target/debug/sealtrail" \
  node --test --test-concurrency=1 --test-timeout=240000 console-tests/browser/
ls "$console_target/console-screenshots"
echo "console size: $(cat crates/sealtrail-server/console/*.html crates/sealtrail-server/console/*.css crates/sealtrail-server/console/*.js | wc -c) bytes"

#!/usr/bin/env bash
# End-to-end tests in headless Chromium against a real Vask server:
#   - examples/django  (Django + pusher-http-python + pusher-js)
#   - examples/node    (Express + the pusher npm package + pusher-js)
#   - examples/echo    (Laravel Echo, pusher broadcaster + pusher-js)
#   - the debug console (/console) watching a pusher-js client and the pusher SDK
#
#   tests/e2e/run.sh [path/to/vask-server]    (default: target/debug/vask-server)
#
# Builds nothing: pass the server binary. Installs what is missing (Debian's
# chromium, npm ci in each Node directory, a venv for the Django example),
# runs the three suites with bounded timeouts (each test file starts its own
# Vask and app on free 127.0.0.1 ports), kills every process it started and
# exits non-zero if anything failed.
#
# Environment: E2E_TIMEOUT (seconds for the test run, default 240),
# CHROMIUM (default /usr/bin/chromium), E2E_FAULT=stop-vask (negative control:
# kills Vask mid-test, the run must fail), E2E_ONLY=django|node|echo|console.
set -uo pipefail
set -m # background jobs get their own process group, so cleanup can kill whole trees

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
BIN="${1:-$ROOT/target/debug/vask-server}"
case "$BIN" in /*) ;; *) BIN="$PWD/$BIN" ;; esac
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
E2E_TIMEOUT="${E2E_TIMEOUT:-240}"
export E2E_LOG_DIR="$HERE/.tmp"

section() { printf '\n==== %s (%s) ====\n' "$*" "$(date -u +%H:%M:%S)"; }
fail() { printf 'e2e: %s\n' "$*" >&2; exit 1; }
START=$SECONDS

RUNNER=""
cleanup() {
  if [ -n "$RUNNER" ] && kill -0 "$RUNNER" 2>/dev/null; then
    kill -TERM -- "-$RUNNER" 2>/dev/null
    for _ in $(seq 1 30); do kill -0 "$RUNNER" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$RUNNER" 2>/dev/null
  fi
  # Servers the tests started (their pids are recorded as they start).
  if [ -f "$E2E_LOG_DIR/pids" ]; then
    while read -r pid name; do
      if kill -0 "$pid" 2>/dev/null; then
        echo "e2e: killing leftover $name ($pid)" >&2
        kill -KILL "$pid" 2>/dev/null
      fi
    done <"$E2E_LOG_DIR/pids"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ -x "$BIN" ] || fail "server binary not found: $BIN (build it with: cargo build -p vask-server)"
command -v node >/dev/null || fail "node is not installed"
command -v npm >/dev/null || fail "npm is not installed"
command -v python3 >/dev/null || fail "python3 is not installed"

section "chromium"
if [ ! -x "$CHROMIUM" ]; then
  export DEBIAN_FRONTEND=noninteractive
  timeout 900 apt-get install -y --no-install-recommends chromium \
    || { timeout 300 apt-get update && timeout 900 apt-get install -y --no-install-recommends chromium; } \
    || fail "could not install chromium"
fi
"$CHROMIUM" --version 2>/dev/null | grep -v 'unexpected operator' || fail "$CHROMIUM does not run"

# npm ci when node_modules is missing or was installed from another lockfile.
npm_ci() {
  local dir="$1" sum
  sum="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)"
  if [ "$(cat "$dir/node_modules/.e2e-lock-sha256" 2>/dev/null)" != "$sum" ]; then
    echo "npm ci in ${dir#"$ROOT"/}"
    (cd "$dir" && timeout 300 npm ci --no-audit --no-fund --loglevel=error) || return 1
    echo "$sum" >"$dir/node_modules/.e2e-lock-sha256"
  else
    echo "${dir#"$ROOT"/}: node_modules up to date"
  fi
}

section "node dependencies"
node --version
for d in "$HERE" "$ROOT/examples/node" "$ROOT/examples/echo" "$ROOT/examples/django"; do
  npm_ci "$d" || fail "npm ci failed in $d"
done
(cd "$ROOT/examples/django" && npm run --silent vendor) || fail "could not copy pusher.min.js into examples/django"

section "django venv"
DJ="$ROOT/examples/django"
if [ ! -x "$DJ/.venv/bin/python" ]; then
  python3 -m venv "$DJ/.venv" || fail "python3 -m venv failed"
fi
timeout 300 "$DJ/.venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$DJ/requirements.txt" \
  || fail "pip install -r examples/django/requirements.txt failed"
"$DJ/.venv/bin/python" -c 'from importlib.metadata import version as v; print("Django", v("Django"), "/ pusher", v("pusher"))'

section "e2e: $BIN (setup took $((SECONDS - START)) s)"
rm -rf "$E2E_LOG_DIR" && mkdir -p "$E2E_LOG_DIR"
FILES=(test/django.test.js test/node.test.js test/echo.test.js test/console.test.js)
[ -n "${E2E_ONLY:-}" ] && FILES=("test/$E2E_ONLY.test.js")
cd "$HERE" || exit 1
VASK_BIN="$BIN" CHROMIUM="$CHROMIUM" timeout -k 10 "$E2E_TIMEOUT" \
  node --test --test-concurrency=1 --test-timeout=90000 "${FILES[@]}" &
RUNNER=$!
wait "$RUNNER"
status=$?
RUNNER=""
if [ "$status" -eq 124 ]; then echo "e2e: timed out after $E2E_TIMEOUT s" >&2; fi
if [ "$status" -ne 0 ]; then
  for log in "$E2E_LOG_DIR"/*.log; do
    [ -f "$log" ] || continue
    printf '\n--- last lines of %s\n' "${log#"$ROOT"/}"
    tail -n 25 "$log"
  done
fi
section "done in $((SECONDS - START)) s: $([ "$status" -eq 0 ] && echo passed || echo "FAILED ($status)")"
exit "$status"

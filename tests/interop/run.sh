#!/usr/bin/env bash
# Runs the interop suites (real pusher-js, pusher-http-node and
# pusher-http-python against a real Vask server).
#
#   tests/interop/run.sh [path/to/vask-server]    (default: target/debug/vask-server)
#
# Starts the server on a free port with tests/interop/vask.interop.toml, waits
# for GET /up, runs the Node suite (npm ci if node_modules is missing) and the
# Python suite (a venv in tests/interop/.venv), stops the server on exit and
# exits non-zero if anything failed. Needs node >= 20, npm, python3 >= 3.9.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
BIN="${1:-$ROOT/target/debug/vask-server}"
case "$BIN" in /*) ;; *) BIN="$PWD/$BIN" ;; esac
export VASK_BIN="$BIN"

section() { printf '\n==== %s ====\n' "$*"; }
fail() { printf 'interop: %s\n' "$*" >&2; exit 1; }

[ -x "$BIN" ] || fail "server binary not found: $BIN (build it with: cargo build -p vask-server)"
command -v node >/dev/null || fail "node is not installed"
command -v npm >/dev/null || fail "npm is not installed"
command -v python3 >/dev/null || fail "python3 is not installed"

export VASK_HOST=127.0.0.1
VASK_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
export VASK_PORT

LOG="$HERE/server.log"
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID" 2>/dev/null
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

section "server: $BIN on $VASK_HOST:$VASK_PORT"
RUST_LOG="${RUST_LOG:-info}" "$BIN" --config "$HERE/vask.interop.toml" --host "$VASK_HOST" --port "$VASK_PORT" >"$LOG" 2>&1 &
SERVER_PID=$!
ready=""
for _ in $(seq 1 100); do
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    cat "$LOG" >&2
    fail "server exited during start-up"
  fi
  if python3 - "$VASK_HOST" "$VASK_PORT" <<'PY' 2>/dev/null; then
import sys, urllib.request
with urllib.request.urlopen("http://%s:%s/up" % (sys.argv[1], sys.argv[2]), timeout=1) as r:
    sys.exit(0 if r.status == 200 else 1)
PY
    ready=1
    break
  fi
  sleep 0.1
done
[ -n "$ready" ] || { cat "$LOG" >&2; fail "server not ready (GET /up) within 10 s"; }
echo "ready (log: $LOG)"

status=0

section "node: pusher-js + pusher (pusher-http-node)"
(
  cd "$HERE/node" || exit 1
  if [ ! -d node_modules ]; then
    npm ci --no-audit --no-fund || exit 1
  fi
  node --version
  npm test
)
node_status=$?
[ "$node_status" -eq 0 ] || status=1

section "python: pusher (pusher-http-python) + raw websockets"
(
  cd "$HERE" || exit 1
  if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv || exit 1
  fi
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r python/requirements.txt || exit 1
  cd python && ../.venv/bin/python -m unittest -v test_interop test_webhooks
)
python_status=$?
[ "$python_status" -eq 0 ] || status=1

section "summary"
echo "node:   $([ "$node_status" -eq 0 ] && echo passed || echo "FAILED ($node_status)")"
echo "python: $([ "$python_status" -eq 0 ] && echo passed || echo "FAILED ($python_status)")"
if ! kill -0 "$SERVER_PID" 2>/dev/null; then
  echo "server: died during the run (see $LOG)"
  status=1
fi
exit "$status"

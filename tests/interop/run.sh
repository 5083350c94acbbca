#!/usr/bin/env bash
# Runs the interop suites (real pusher-js, pusher-http-node and
# pusher-http-python against a real Vask server).
#
#   tests/interop/run.sh [--cluster redis|nats] [path/to/vask-server]
#                                   (default: target/debug/vask-server)
#
# Starts the server on a free port with tests/interop/vask.interop.toml, waits
# for GET /up, runs the Node suite (npm ci if node_modules is missing) and the
# Python suite (a venv in tests/interop/.venv), stops the server on exit and
# exits non-zero if anything failed. Needs node >= 20, npm, python3 >= 3.9.
#
# With --cluster, starts redis-server or nats-server on a free port and two
# Vask nodes on it: the clients connect to one node, the server SDKs publish
# and query through the other.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
ENGINE=""
if [ "${1:-}" = "--cluster" ]; then
  ENGINE="${2:-}"
  shift 2
  case "$ENGINE" in redis|nats) ;; *) echo "interop: --cluster redis|nats" >&2; exit 2 ;; esac
fi
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
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
VASK_PORT="$(free_port)"
export VASK_PORT
export VASK_API_PORT="$VASK_PORT"

PIDS=()
WORK="$(mktemp -d)"
cleanup() {
  for pid in "${PIDS[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null
      wait "$pid" 2>/dev/null
    fi
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_up() {  # pid port log
  for _ in $(seq 1 150); do
    if ! kill -0 "$1" 2>/dev/null; then
      cat "$3" >&2
      fail "server exited during start-up"
    fi
    if python3 - "$VASK_HOST" "$2" <<'PY' 2>/dev/null; then
import sys, urllib.request
with urllib.request.urlopen("http://%s:%s/up" % (sys.argv[1], sys.argv[2]), timeout=1) as r:
    sys.exit(0 if r.status == 200 else 1)
PY
      return 0
    fi
    sleep 0.1
  done
  cat "$3" >&2
  fail "server not ready (GET /up) within 15 s"
}

CLUSTER_ARGS=()
if [ -n "$ENGINE" ]; then
  EPORT="$(free_port)"
  section "engine: $ENGINE on $VASK_HOST:$EPORT"
  case "$ENGINE" in
    redis)
      redis-server --port "$EPORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK" >"$WORK/engine.log" 2>&1 &
      URL="redis://127.0.0.1:$EPORT" ;;
    nats)
      NATS="$(command -v nats-server || echo /usr/sbin/nats-server)"
      "$NATS" -p "$EPORT" -a 127.0.0.1 >"$WORK/engine.log" 2>&1 &
      URL="nats://127.0.0.1:$EPORT" ;;
  esac
  PIDS+=($!)
  for _ in $(seq 1 100); do
    python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $EPORT), 1)" 2>/dev/null && break
    sleep 0.1
  done
  CLUSTER_ARGS=(--cluster "$URL")
fi

LOG="$HERE/server.log"
section "server: $BIN on $VASK_HOST:$VASK_PORT${ENGINE:+ (cluster on $ENGINE)}"
RUST_LOG="${RUST_LOG:-info}" "$BIN" --config "$HERE/vask.interop.toml" --host "$VASK_HOST" --port "$VASK_PORT" "${CLUSTER_ARGS[@]}" >"$LOG" 2>&1 &
SERVER_PID=$!
PIDS+=("$SERVER_PID")
wait_up "$SERVER_PID" "$VASK_PORT" "$LOG"
if [ -n "$ENGINE" ]; then
  VASK_API_PORT="$(free_port)"
  API_LOG="$HERE/server-api.log"
  section "second node for the server SDKs on $VASK_HOST:$VASK_API_PORT"
  RUST_LOG="${RUST_LOG:-info}" "$BIN" --config "$HERE/vask.interop.toml" --host "$VASK_HOST" --port "$VASK_API_PORT" "${CLUSTER_ARGS[@]}" >"$API_LOG" 2>&1 &
  PIDS+=($!)
  wait_up "$!" "$VASK_API_PORT" "$API_LOG"
fi
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
  # test_webhooks starts servers of its own (one node).
  if [ -n "$ENGINE" ]; then suites=(test_interop); else suites=(test_interop test_webhooks); fi
  cd python && ../.venv/bin/python -m unittest -v "${suites[@]}"
)
python_status=$?
[ "$python_status" -eq 0 ] || status=1

section "summary"
echo "node:   $([ "$node_status" -eq 0 ] && echo passed || echo "FAILED ($node_status)")"
echo "python: $([ "$python_status" -eq 0 ] && echo passed || echo "FAILED ($python_status)")"
for pid in "${PIDS[@]}"; do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "server or engine $pid: died during the run (see $LOG)"
    status=1
  fi
done
exit "$status"

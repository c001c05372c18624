#!/usr/bin/env bash
# Prints a NATS URL with JetStream that answers: $NATS_URL when set, else a private nats-server
# started under ./var/nats on a free port (installed with apt-get when missing).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [ -n "${NATS_URL:-}" ]; then echo "$NATS_URL"; exit 0; fi
var="${MAHNWERK_VAR:-$root/var}/nats"
mkdir -p "$var"
if [ -f "$var/pid" ] && kill -0 "$(cat "$var/pid")" 2>/dev/null && [ -f "$var/url" ]; then
  cat "$var/url"; exit 0
fi
if ! command -v nats-server >/dev/null 2>&1 && [ ! -x /usr/sbin/nats-server ]; then
  if command -v apt-get >/dev/null 2>&1; then
    echo "installing nats-server with apt-get" >&2
    (apt-get install -y nats-server >&2 || (apt-get update >&2 && apt-get install -y nats-server >&2)) \
      || { echo "error: could not install nats-server; install it (https://nats.io) or set NATS_URL" >&2; exit 1; }
  else
    echo "error: nats-server is not installed and apt-get is not available: install nats-server 2.9+ (https://nats.io/download) or set NATS_URL" >&2
    exit 1
  fi
fi
server=$(command -v nats-server || echo /usr/sbin/nats-server)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# Detach its output: the caller reads ours through a pipe until every writer has closed it.
"$server" -a 127.0.0.1 -p "$port" -js -sd "$var/jetstream" -l "$var/nats.log" -P "$var/pid" </dev/null >/dev/null 2>&1 &
for _ in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "nats://127.0.0.1:$port" > "$var/url"; cat "$var/url"; exit 0
  fi
  sleep 0.1
done
echo "error: nats-server did not start; see $var/nats.log" >&2
exit 1

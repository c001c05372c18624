#!/usr/bin/env bash
# `make run`: NATS (given or private), then all services in one process on SQLite under ./var.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
private=0
if [ -z "${NATS_URL:-}" ]; then private=1; fi
NATS_URL=$("$root/scripts/ensure-nats.sh")
export NATS_URL
var="${MAHNWERK_VAR:-$root/var}"
stop_nats() {
  if [ "$private" = 1 ] && [ -f "$var/nats/pid" ]; then
    kill "$(cat "$var/nats/pid")" 2>/dev/null || true
    rm -f "$var/nats/pid" "$var/nats/url"
  fi
}
trap stop_nats EXIT
echo "NATS: $NATS_URL"
export MAHNWERK_DATABASE_URL=${MAHNWERK_DATABASE_URL:-sqlite:$var/mahnwerk.db?mode=rwc}
"${MAHNWERK_BIN:-$root/target/release/mahnwerk}" serve --demo &
server=$!
# Ctrl-C (or TERM) stops the server cleanly, then the EXIT trap stops a private NATS.
trap 'kill -TERM "$server" 2>/dev/null || true; wait "$server" || true; exit 130' INT TERM
wait "$server"

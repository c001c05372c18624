#!/usr/bin/env bash
# `make run`: NATS (given or private), a local mail sink (unless MAHNWERK_SMTP_HOST names a real
# SMTP server), then all services in one process on SQLite under ./var with the demo tenant.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
private=0
if [ -z "${NATS_URL:-}" ]; then private=1; fi
NATS_URL=$("$root/scripts/ensure-nats.sh")
export NATS_URL
var="${MAHNWERK_VAR:-$root/var}"
mkdir -p "$var"
stop_nats() {
  if [ -f "$var/mail-sink.pid" ]; then
    kill "$(cat "$var/mail-sink.pid")" 2>/dev/null || true
    rm -f "$var/mail-sink.pid"
  fi
  if [ "$private" = 1 ] && [ -f "$var/nats/pid" ]; then
    kill "$(cat "$var/nats/pid")" 2>/dev/null || true
    rm -f "$var/nats/pid" "$var/nats/url"
  fi
}
trap stop_nats EXIT
echo "NATS: $NATS_URL"
if [ -z "${MAHNWERK_SMTP_HOST:-}" ]; then
  port=$("$root/scripts/start-mail-sink.sh" "$var/mailbox" "$var/mail-sink.pid")
  export MAHNWERK_SMTP_HOST=127.0.0.1 MAHNWERK_SMTP_PORT=$port MAHNWERK_SMTP_TLS=none
  echo "Mail sink: smtp://127.0.0.1:$port, every email kept in $var/mailbox/*.eml"
fi
export MAHNWERK_DATABASE_URL=${MAHNWERK_DATABASE_URL:-sqlite:$var/mahnwerk.db?mode=rwc}
export MAHNWERK_DOCUMENTS_DIR=${MAHNWERK_DOCUMENTS_DIR:-$var/documents}
export MAHNWERK_POST_SPOOL=${MAHNWERK_POST_SPOOL:-$var/post-spool}
"${MAHNWERK_BIN:-$root/target/release/mahnwerk}" serve --demo &
server=$!
# Ctrl-C (or TERM) stops the server cleanly, then the EXIT trap stops the sink and a private NATS.
trap 'kill -TERM "$server" 2>/dev/null || true; wait "$server" || true; exit 130' INT TERM
wait "$server"

#!/usr/bin/env bash
# `make demo`: the seeds' process on a simulated clock against a fresh $MAHNWERK_VAR/demo (default
# ./var/demo): NATS (given or private), a local mail sink, then `mahnwerk demo`, which runs every
# service in its process and drives them over gRPC day by day, printing the timeline.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
private=0
if [ -z "${NATS_URL:-}" ]; then private=1; fi
NATS_URL=$("$root/scripts/ensure-nats.sh")
export NATS_URL
var="${MAHNWERK_VAR:-$root/var}"
demo="$var/demo"
rm -rf "$demo"
mkdir -p "$demo"
stop() {
  if [ -f "$demo/mail-sink.pid" ]; then
    kill "$(cat "$demo/mail-sink.pid")" 2>/dev/null || true
    rm -f "$demo/mail-sink.pid"
  fi
  if [ "$private" = 1 ] && [ -f "$var/nats/pid" ]; then
    kill "$(cat "$var/nats/pid")" 2>/dev/null || true
    rm -f "$var/nats/pid" "$var/nats/url"
  fi
}
trap stop EXIT
port=$("$root/scripts/start-mail-sink.sh" "$demo/mailbox" "$demo/mail-sink.pid")
export MAHNWERK_SMTP_HOST=127.0.0.1 MAHNWERK_SMTP_PORT=$port MAHNWERK_SMTP_TLS=none
echo "NATS: $NATS_URL; mail sink: smtp://127.0.0.1:$port into $demo/mailbox"
"${MAHNWERK_BIN:-$root/target/release/mahnwerk}" demo --dir "$demo" --mailbox "$demo/mailbox"

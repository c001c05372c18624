#!/usr/bin/env bash
# `make run`: NATS (given or private), then all services in one process on SQLite under ./var.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
private=0
if [ -z "${NATS_URL:-}" ]; then private=1; fi
NATS_URL=$("$root/scripts/ensure-nats.sh")
export NATS_URL
stop_nats() {
  if [ "$private" = 1 ] && [ -f var/nats/pid ]; then
    kill "$(cat var/nats/pid)" 2>/dev/null || true
    rm -f var/nats/pid var/nats/url
  fi
}
trap stop_nats EXIT
trap 'exit 130' INT TERM
echo "NATS: $NATS_URL"
export MAHNWERK_DATABASE_URL=${MAHNWERK_DATABASE_URL:-sqlite:$root/var/mahnwerk.db?mode=rwc}
"${MAHNWERK_BIN:-$root/target/release/mahnwerk}" serve --demo

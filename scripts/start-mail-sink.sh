#!/usr/bin/env bash
# Starts the local mail sink (scripts/mail-sink.py: SMTP on a free loopback port, every message
# kept as MAILDIR/*.eml) in the background and prints its port once it answers. The caller stops
# it by the pid written to PIDFILE. Python: $MAHNWERK_PYTHON (make pyenv's .venv, with aiosmtpd).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
maildir=$1
pidfile=$2
python="${MAHNWERK_PYTHON:-$root/.venv/bin/python}"
"$python" -c 'import aiosmtpd' 2>/dev/null \
  || { echo "error: $python has no aiosmtpd: run make pyenv" >&2; exit 1; }
mkdir -p "$maildir"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$python" "$root/scripts/mail-sink.py" "$port" "$maildir" </dev/null >"$maildir/../mail-sink.log" 2>&1 &
echo $! > "$pidfile"
for _ in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; exit 0; fi
  sleep 0.1
done
echo "error: the mail sink did not start; see $maildir/../mail-sink.log" >&2
exit 1

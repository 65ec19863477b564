#!/usr/bin/env bash
# Flask + latch versus Flask + Flask-Session on Redis, reading a session: the
# same gunicorn and wrk for all. Run from the repository root:
#
#   clients/python/bench/run.sh            # DURATION=10s CONNS=16 WORKERS=2 THREADS=8 ROUNDS=3
#
# latch serve runs on the same Redis (db 9, prefix pybench:), so both sides
# pay a Redis round trip per request; latch's cached mode (docs/protocol.md
# section 4) pays none while the event stream is live. Needs wrk, gunicorn,
# python3-flask-session and python3-redis (apt-get install wrk gunicorn
# python3-flask-session python3-redis).
set -euo pipefail
cd "$(dirname "$0")/../../.."
DURATION=${DURATION:-10s} CONNS=${CONNS:-16} WORKERS=${WORKERS:-2} THREADS=${THREADS:-8} ROUNDS=${ROUNDS:-3}
PY=${LATCH_PYTHON:-/usr/bin/python3}
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

go build -o "$tmp/latch" ./cmd/latch
export LATCH_API_KEY=$(head -c 32 /dev/urandom | base64 | tr -d '/+=')
export LATCH_KEK=$(head -c 32 /dev/urandom | base64)
redis-cli -n 9 flushdb >/dev/null
"$tmp/latch" serve --addr 127.0.0.1:18391 --store 'redis://127.0.0.1:6379/?db=9&prefix=pybench:' \
  --rate-limit 0 --log-level warn >"$tmp/latch.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -sf http://127.0.0.1:18391/readyz >/dev/null && break; sleep 0.1; done
export LATCH_URL=http://127.0.0.1:18391
tok=$(curl -sf -H "Authorization: Bearer $LATCH_API_KEY" -H 'Content-Type: application/json' \
  -d '{"subject":"alice"}' $LATCH_URL/v1/sessions | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["session_token"])')
events=$(curl -s -o /dev/null -m 1 -w '%{http_code}' -H "Authorization: Bearer $LATCH_API_KEY" $LATCH_URL/v1/events || true)

serve() { # app factory, port, extra env
  env PYTHONPATH=clients/python:clients/python/bench $3 gunicorn --chdir clients/python/bench -w "$WORKERS" \
    -k gthread --threads "$THREADS" -b 127.0.0.1:$2 --log-level warning "apps:$1()" >"$tmp/$1.$2.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:$2/ && break; sleep 0.1; done
}
measure() { # name, port, cookie
  curl -sf -H "Cookie: $3" http://127.0.0.1:$2/ | grep -q 'hello alice' || { echo "$1: the app does not see the session" >&2; exit 1; }
  wrk -t2 -c"$CONNS" -d"$DURATION" --latency -H "Cookie: $3" http://127.0.0.1:$2/ >"$tmp/wrk.txt"
  rps=$(awk '/Requests\/sec/ {print $2}' "$tmp/wrk.txt")
  p99=$(awk '$1=="99%" {print $2}' "$tmp/wrk.txt")
  p50=$(awk '$1=="50%" {print $2}' "$tmp/wrk.txt")
  printf '%-26s %10s req/s   p50 %8s   p99 %8s\n' "$1" "$rps" "$p50" "$p99"
}

serve flask_session_app 18392 ""
fs_cookie=$(curl -si http://127.0.0.1:18392/login | awk -F'[ ;]' 'tolower($1)=="set-cookie:" {print $2}')
serve latch_app 18393 "LATCH_CACHE=0"
if [ "$events" = 200 ]; then serve latch_app 18394 "LATCH_CACHE=1"; fi

echo "load: $(cut -d' ' -f1-3 /proc/loadavg); gunicorn -w $WORKERS -k gthread --threads $THREADS; wrk -t2 -c$CONNS -d$DURATION"
for round in $(seq "$ROUNDS"); do
  echo "round $round"
  measure "flask-session (redis)" 18392 "$fs_cookie"
  measure "latch online" 18393 "__Host-latch=$tok"
  if [ "$events" = 200 ]; then
    measure "latch cached" 18394 "__Host-latch=$tok"
  else
    echo "latch cached: skipped, this latch serve has no GET /v1/events"
  fi
done

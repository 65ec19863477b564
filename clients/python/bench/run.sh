#!/usr/bin/env bash
# Flask + latch versus Flask + Flask-Session on Redis, reading a session: the
# same gunicorn and wrk for all. Run from the repository root:
#
#   clients/python/bench/run.sh            # DURATION=10s CONNS=16 WORKERS=4 THREADS=1 ROUNDS=3 INSTRUCTIONS=1
#
# latch serve runs on the same (private) Redis, so both sides
# pay a Redis round trip per request; latch's cached mode (docs/protocol.md
# section 4) pays none while the event stream is live. Needs wrk, gunicorn,
# python3-flask-session and python3-redis (apt-get install wrk gunicorn
# python3-flask-session python3-redis). At the end it prints each app's
# req/s and CPU per request as ratios to Flask-Session (per round, and the
# median), the app's CPU per request in-process (inprocess.py) and, with
# valgrind installed and INSTRUCTIONS=1, its instructions per request
# (instructions.py), which do not move with the machine's load.
set -euo pipefail
cd "$(dirname "$0")/../../.."
DURATION=${DURATION:-10s} CONNS=${CONNS:-16} WORKERS=${WORKERS:-4} THREADS=${THREADS:-1} ROUNDS=${ROUNDS:-3}
PY=${LATCH_PYTHON:-/usr/bin/python3}
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

go build -o "$tmp/latch" ./cmd/latch
export LATCH_API_KEY=$(head -c 32 /dev/urandom | base64 | tr -d '/+=')
export LATCH_KEK=$(head -c 32 /dev/urandom | base64)
# A Redis of the benchmark's own, so its CPU time is only this benchmark's.
redis-server --port 18396 --bind 127.0.0.1 --save '' --appendonly no --daemonize no >"$tmp/redis.log" 2>&1 &
pids+=($!)
redis_pid=$!
for _ in $(seq 50); do redis-cli -p 18396 ping >/dev/null 2>&1 && break; sleep 0.1; done
export BENCH_REDIS_PORT=18396
"$tmp/latch" serve --addr 127.0.0.1:18391 --store 'redis://127.0.0.1:18396/?prefix=pybench:' \
  --rate-limit 0 --log-level warn >"$tmp/latch.log" 2>&1 &
pids+=($!)
latch_pid=$!
for _ in $(seq 100); do curl -sf http://127.0.0.1:18391/readyz >/dev/null && break; sleep 0.1; done
export LATCH_URL=http://127.0.0.1:18391
tok=$(curl -sf -H "Authorization: Bearer $LATCH_API_KEY" -H 'Content-Type: application/json' \
  -d '{"subject":"alice"}' $LATCH_URL/v1/sessions | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["session_token"])')
events=$(curl -s -o /dev/null -m 1 -w '%{http_code}' -H "Authorization: Bearer $LATCH_API_KEY" $LATCH_URL/v1/events || true)

# CPU seconds used so far by the given processes and their children (gunicorn's workers).
cpu() {
  local all=() p
  for p in "$@"; do all+=("$p"); all+=($(pgrep -P "$p" || true)); done
  for p in "${all[@]}"; do awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || true; done |
    awk -v hz="$(getconf CLK_TCK)" '{t += $1} END {printf "%.3f", t / hz}'
}
declare -A app_pid
serve() { # app factory, port, extra env
  env PYTHONPATH=clients/python:clients/python/bench $3 gunicorn --chdir clients/python/bench -w "$WORKERS" \
    -k gthread --threads "$THREADS" -b 127.0.0.1:$2 --log-level warning "apps:$1()" >"$tmp/$1.$2.log" 2>&1 &
  pids+=($!)
  app_pid[$2]=$!
  for _ in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:$2/ && break; sleep 0.1; done
}
measure() { # name, port, cookie
  curl -sf -H "Cookie: $3" http://127.0.0.1:$2/ | grep -q 'hello alice' || { echo "$1: the app does not see the session" >&2; exit 1; }
  # CPU of everything serving the request: the app's workers, latch serve, Redis.
  local a0 l0 r0 a1 l1 r1
  a0=$(cpu "${app_pid[$2]}"); l0=$(cpu "$latch_pid"); r0=$(cpu "$redis_pid")
  wrk -t2 -c"$CONNS" -d"$DURATION" --latency -H "Cookie: $3" http://127.0.0.1:$2/ >"$tmp/wrk.txt"
  a1=$(cpu "${app_pid[$2]}"); l1=$(cpu "$latch_pid"); r1=$(cpu "$redis_pid")
  rps=$(awk '/Requests\/sec/ {print $2}' "$tmp/wrk.txt")
  n=$(awk '/requests in/ {print $1}' "$tmp/wrk.txt")
  p99=$(awk '$1=="99%" {print $2}' "$tmp/wrk.txt")
  p50=$(awk '$1=="50%" {print $2}' "$tmp/wrk.txt")
  per() { awk -v a="$1" -v b="$2" -v n="$n" 'BEGIN {printf "%.0f", (b - a) * 1e6 / n}'; }
  cpu_us=$(per 0 "$(awk -v a="$a1" -v b="$l1" -v c="$r1" -v d="$a0" -v e="$l0" -v f="$r0" 'BEGIN {print a+b+c-d-e-f}')")
  detail="app $(per "$a0" "$a1") + latch $(per "$l0" "$l1") + redis $(per "$r0" "$r1")"
  printf '%-22s %9s req/s   p50 %8s   p99 %8s   CPU %5s µs/req (%s)\n' "$1" "$rps" "$p50" "$p99" "$cpu_us" "$detail"
  echo "$round|$1|$rps|$cpu_us" >>"$tmp/results"
}

# The targets are ratios to Flask-Session in the same round: req/s (online >= 1x, cached >= 2x) and CPU per request.
ratios() {
  echo "ratios to flask-session (req/s, and CPU per request), per round and median:"
  awk -F'|' '
    function isort(a, n,   i, j, t) { for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t } }
    { rps[$1, $2] = $3; cpu[$1, $2] = $4; rounds[$1] = 1; names[$2] = 1 }
    END {
      fs = "flask-session (redis)"
      split("latch online|latch cached|flask, no session", want, "|")
      for (w = 1; w <= 3; w++) {
        name = want[w]; n = 0; line = ""
        for (r in rounds) if ((r, name) in rps && rps[r, fs] > 0) {
          q = rps[r, name] / rps[r, fs]; c = cpu[r, fs] > 0 ? cpu[r, name] / cpu[r, fs] : 0
          qs[++n] = q; cs[n] = c; line = line sprintf(" %.2fx", q)
        }
        if (n == 0) continue
        isort(qs, n); isort(cs, n)
        printf "  %-20s req/s median %.2fx (rounds:%s)   CPU/request median %.2fx\n", name, qs[int((n + 1) / 2)], line, cs[int((n + 1) / 2)]
        delete qs; delete cs
      }
    }' "$tmp/results"
}

serve bare_app 18395 ""
serve flask_session_app 18392 ""
fs_cookie=$(curl -si http://127.0.0.1:18392/login | awk -F'[ ;]' 'tolower($1)=="set-cookie:" {print $2}')
serve latch_app 18393 "LATCH_CACHE=0"
if [ "$events" = 200 ]; then serve latch_app 18394 "LATCH_CACHE=1"; fi

echo "load: $(cut -d' ' -f1-3 /proc/loadavg); gunicorn -w $WORKERS -k gthread --threads $THREADS; wrk -t2 -c$CONNS -d$DURATION"
for round in $(seq "$ROUNDS"); do
  echo "round $round"
  measure "flask, no session" 18395 ""
  measure "flask-session (redis)" 18392 "$fs_cookie"
  measure "latch online" 18393 "__Host-latch=$tok"
  if [ "$events" = 200 ]; then
    measure "latch cached" 18394 "__Host-latch=$tok"
  else
    echo "latch cached: skipped, this latch serve has no GET /v1/events"
  fi
done
ratios
echo "in-process, the app's CPU only:"
env PYTHONPATH=clients/python "$PY" clients/python/bench/inprocess.py
if [ "${INSTRUCTIONS:-1}" = 1 ] && command -v valgrind >/dev/null; then
  echo "in-process, instructions per request (callgrind; load-independent):"
  env PYTHONPATH=clients/python "$PY" clients/python/bench/instructions.py
fi

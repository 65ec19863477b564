#!/usr/bin/env bash
# Express + latch middleware versus Express + express-session + connect-redis
# reading a session, one run on this machine, the same wrk load for each.
# Run from the repository root:  bench/node/compare.sh [runs] [seconds]
# Needs: wrk, redis-server at 127.0.0.1:6379, node, npm ci in bench/node and
# clients/node. Prints one line per wrk run: target, req/s, p99, and the CPU
# time per request of the Node process and of latch serve (from /proc, so
# it holds up on a machine shared with other work, where req/s does not).
set -euo pipefail
runs=${1:-3}
secs=${2:-10}
dir=tmp-bench/node
mkdir -p "$dir"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  redis-cli -h 127.0.0.1 --scan --pattern 'latchbench:nodecmp:*' | xargs -r redis-cli -h 127.0.0.1 del >/dev/null
}
trap cleanup EXIT

go build -o "$dir/latch" ./cmd/latch
export LATCH_API_KEY
LATCH_API_KEY=$(openssl rand -hex 32)
LATCH_KEK=$(openssl rand -base64 32) "$dir/latch" serve --addr 127.0.0.1:18920 --log-level warn \
  --store 'redis://127.0.0.1:6379/0?prefix=latchbench:nodecmp:latch:' >"$dir/latch.log" 2>&1 &
pids+=($!)
latch_pid=$!
pids+=($latch_pid)
SESSION_SECRET=$(openssl rand -hex 32) NODE_ENV=production PORT=18991 node bench/node/server.js >"$dir/peer.log" 2>&1 &
pids+=($!)
declare -A pid_of
pid_of[18991]=$!
LATCH_URL=http://127.0.0.1:18920 LATCH_CACHE=0 NODE_ENV=production PORT=18992 node bench/node/latch-server.js >"$dir/online.log" 2>&1 &
pids+=($!)
pid_of[18992]=$!
LATCH_URL=http://127.0.0.1:18920 LATCH_CACHE=1 NODE_ENV=production PORT=18993 node bench/node/latch-server.js >"$dir/cached.log" 2>&1 &
pids+=($!)
pid_of[18993]=$!
LATCH_CACHE=bare NODE_ENV=production PORT=18994 node bench/node/latch-server.js >"$dir/bare.log" 2>&1 &
pids+=($!)
pid_of[18994]=$!
# CPU ticks (user + system) a process has used so far.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
for port in 18920 18991 18992 18993 18994; do
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
done

peer_cookie=$(curl -s -X POST -c - http://127.0.0.1:18991/login | awk '$6 == "connect.sid" {print $7}')
token=$(curl -s -X POST -H "Authorization: Bearer $LATCH_API_KEY" -H 'Content-Type: application/json' \
  -d '{"subject":"alice"}' http://127.0.0.1:18920/v1/sessions | sed -E 's/.*"session_token":"([^"]+)".*/\1/')
for t in "18991 connect.sid=$peer_cookie" "18992 __Host-latch=$token" "18993 __Host-latch=$token"; do
  set -- $t
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: $2" "http://127.0.0.1:$1/whoami")
  [ "$code" = 200 ] || { echo "port $1: /whoami answered $code" >&2; exit 1; }
done

echo "load before: $(uptime)"
for i in $(seq "$runs"); do
  for t in "express-session+connect-redis 18991 connect.sid=$peer_cookie" \
           "latch-online 18992 __Host-latch=$token" \
           "latch-cached 18993 __Host-latch=$token" \
           "express-bare(no-session) 18994 x=y"; do
    set -- $t
    n0=$(ticks "${pid_of[$2]}"); l0=$(ticks "$latch_pid")
    out=$(wrk -t2 -c64 -d"${secs}s" --latency -H "Cookie: $3" "http://127.0.0.1:$2/whoami")
    n1=$(ticks "${pid_of[$2]}"); l1=$(ticks "$latch_pid")
    rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    reqs=$(awk '/requests in/ {print $1}' <<<"$out")
    non2xx=$(awk '/Non-2xx/ {print $5}' <<<"$out")
    node_us=$(( (n1 - n0) * 1000000 / hz / reqs ))
    latch_us=$(( (l1 - l0) * 1000000 / hz / reqs ))
    echo "run $i  $1  req/s $rps  p99 $p99  node CPU/req ${node_us} us  latch serve CPU/req ${latch_us} us${non2xx:+  NON-2XX $non2xx}"
  done
done
echo "load after: $(uptime)"

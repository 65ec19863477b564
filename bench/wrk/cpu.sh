#!/bin/sh
# CPU time per request of a server process under wrk: the process's user +
# system time (from /proc/PID/stat, in clock ticks) over the run, divided
# by the requests wrk completed. On a loaded machine this is steadier than
# requests per second, which depend on what else has the cores.
#   bench/wrk/cpu.sh PID [wrk arguments…]
set -eu
pid=$1; shift
tck=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
c0=$(cpu)
out=$(wrk "$@")
c1=$(cpu)
echo "$out"
reqs=$(echo "$out" | awk '/requests in/ {print $1}')
echo "$out" | grep -q 'Non-2xx' && echo "WARNING: non-2xx responses" >&2
awk -v c="$((c1 - c0))" -v t="$tck" -v n="$reqs" 'BEGIN { printf "server CPU: %.0f ms for %d requests = %.1f µs/request\n", 1000*c/t, n, 1e6*c/t/n }'

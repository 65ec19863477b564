#!/bin/sh
# POST /v1/sessions/verify through latch serve (bbolt, --log-level warn)
# against a bare net/http handler that reads the same request and answers
# with a body of the same size (bench/cmd/bare -response-bytes), in one
# run: rounds interleaved, each row wrk's requests per second and the
# server process's CPU time per request (bench/wrk/cpu.sh), then the
# medians and the ratios bare/verify of both.
#
#   bench/wrk/verify-vs-bare.sh [rounds (default 6)] [seconds per wrk run (default 8)]
#
# STORE=memory: (or any --store URL) replaces the bbolt file; CONNS sets
# wrk's connections (default 64), PORT the first of three ports (18912);
# LATCH_BIN runs that latch binary instead of building ./cmd/latch (to
# measure another commit).
#
# Run from the repository root; builds into tmp-bench/ and stops every
# server it started. Needs wrk, curl and jq. Only loopback is used.
set -eu
rounds=${1:-6}
secs=${2:-8}
conns=${CONNS:-64}
dir=tmp-bench/vvb
rm -rf "$dir" && mkdir -p "$dir"
latch=${LATCH_BIN:-tmp-bench/latch}
[ -n "${LATCH_BIN:-}" ] || go build -o tmp-bench/latch ./cmd/latch
(cd bench && go build -o ../tmp-bench/bare ./cmd/bare)

pids=""
cleanup() { for p in $pids; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM

LATCH_API_KEY=$(head -c 32 /dev/urandom | base64 | tr -d '/+=')
export LATCH_API_KEY
port=${PORT:-18912}
"$latch" serve --addr "127.0.0.1:$port" --log-level warn --store "${STORE:-$dir/latch.db}" >"$dir/latch.log" 2>&1 &
pids="$pids $!"
latch_pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.1; done

api() { curl -sf -H "Authorization: Bearer $LATCH_API_KEY" -H 'Content-Type: application/json' "http://127.0.0.1:$port$1" -d "$2"; }
created=$(api /v1/sessions '{"subject":"bench"}')
stok=$(echo "$created" | jq -r .session_token)
atok=$(echo "$created" | jq -r .access_token)
# Response body sizes of the two verifies (the CSRF token and times keep
# their length from answer to answer).
ssize=$(api /v1/sessions/verify "{\"session_token\":\"$stok\"}" | wc -c)
asize=$(api /v1/sessions/verify "{\"access_token\":\"$atok\"}" | wc -c)

./tmp-bench/bare -addr "127.0.0.1:$((port + 1))" -response-bytes "$ssize" &
pids="$pids $!"
bare_s=$!
./tmp-bench/bare -addr "127.0.0.1:$((port + 2))" -response-bytes "$asize" &
pids="$pids $!"
bare_a=$!
sleep 0.5

# run NAME PID PORT TOKEN: one wrk run, one result line in $dir/results.
run() {
	out=$(TOKEN=$4 bench/wrk/cpu.sh "$2" -t2 -c"$conns" -d"${secs}s" -s bench/wrk/verify.lua "http://127.0.0.1:$3")
	rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
	us=$(echo "$out" | awk '/server CPU/ {print $(NF-1)}' | sed 's/µs.*//')
	if echo "$out" | grep -q 'Non-2xx'; then echo "$1: non-2xx answers" >&2; exit 1; fi
	echo "$1 $rps $us" >>"$dir/results"
	printf '  %-14s %9s req/s %7s µs CPU/request\n' "$1" "$rps" "$us"
}
echo "verify answer bodies: session token $ssize bytes, access token $asize bytes; $rounds rounds of ${secs}s, wrk -t2 -c$conns; load: $(cut -d' ' -f1-3 /proc/loadavg)"
for i in $(seq "$rounds"); do
	echo "round $i"
	run bare-session "$bare_s" $((port + 1)) "$stok"
	run verify-session "$latch_pid" "$port" "$stok"
	run bare-access "$bare_a" $((port + 2)) "$atok"
	run verify-access "$latch_pid" "$port" "$atok"
done
echo "medians (load now: $(cut -d' ' -f1-3 /proc/loadavg)):"
awk '
function median(a, n,   i, j, t) {
	for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] > a[j]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
	return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
}
{ n[$1]++; rps[$1, n[$1]] = $2; cpu[$1, n[$1]] = $3 }
END {
	for (k in n) {
		for (i = 1; i <= n[k]; i++) { r[i] = rps[k, i]; c[i] = cpu[k, i] }
		mr[k] = median(r, n[k]); mc[k] = median(c, n[k])
	}
	for (t = 1; t <= 2; t++) {
		v = t == 1 ? "session" : "access"
		printf "  %-7s token: verify %8.0f req/s, %6.1f µs CPU/request; bare %8.0f req/s, %6.1f µs; verify/bare req/s %3.0f %%, bare/verify CPU %3.0f %%\n",
			v, mr["verify-" v], mc["verify-" v], mr["bare-" v], mc["bare-" v],
			100 * mr["verify-" v] / mr["bare-" v], 100 * mc["bare-" v] / mc["verify-" v]
	}
}' "$dir/results"

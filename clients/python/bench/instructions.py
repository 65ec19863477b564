"""The app's instructions per request, counted by valgrind (callgrind): unlike
CPU time, the count does not move with the machine's load, so two runs minutes
apart on a busy machine compare. Each app's WSGI callable is called in-process
(as inprocess.py does) N times and 0 times under callgrind; the difference,
divided by N, is the cost of one request in the request's own thread (the
cache's event-stream thread is counted apart and left out).

    LATCH_URL=… LATCH_API_KEY=… BENCH_REDIS_PORT=… python3 clients/python/bench/instructions.py

run.sh runs it after the wrk rounds when valgrind is installed.
"""

import glob
import os
import re
import subprocess
import sys
import tempfile
import time

N = int(os.environ.get("N", "200"))
APPS = tuple(os.environ.get("APPS", "bare,flask-session,latch online,latch cached").split(","))


def one(which: str, n: int) -> None:
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
    sys.path.insert(0, os.path.dirname(__file__))
    import apps
    import latch_sessions as ls
    from tests import harness
    with ls.Client() as c:
        tok = c.create_session("alice").session_token
    headers = {"Host": "bench", "Cookie": "__Host-latch=" + tok}
    if which == "flask-session":
        app = apps.flask_session_app()
        r = harness.wsgi_caller(app)("GET", "/login", {"Host": "bench"}, None)
        headers = {"Host": "bench", "Cookie": r.get("Set-Cookie").split(";")[0]}
    elif which == "bare":
        app = apps.bare_app()
    else:
        os.environ["LATCH_CACHE"] = "1" if which == "latch cached" else "0"
        app = apps.latch_app()
    call = harness.wsgi_caller(app)
    call("GET", "/", headers, None)
    cache = app.extensions["latch"].cache if which.startswith("latch") else None
    if cache is not None:
        # Under valgrind everything runs ~50x slower, the stream's reader too: a wider bound keeps
        # the cache serving, so what is counted is a hit (the hot path), every time.
        cache.state.staleness = 5.0
        deadline = time.monotonic() + 30
        while not cache.live() and time.monotonic() < deadline:
            time.sleep(0.01)
    for _ in range(50):
        call("GET", "/", headers, None)
    misses = cache.state.misses if cache is not None else 0
    for _ in range(n):
        r = call("GET", "/", headers, None)
    assert n == 0 or r.body == b"hello alice", r.body
    if cache is not None and cache.state.misses != misses:
        print(f"{which}: {cache.state.misses - misses} of {n} requests missed the cache", file=sys.stderr)


def count(which: str, n: int, tmp: str) -> int:
    out = os.path.join(tmp, f"cg.{which.replace(' ', '_')}.{n}")
    p = subprocess.run(["valgrind", "--tool=callgrind", "--separate-threads=yes", f"--callgrind-out-file={out}",
                        sys.executable, __file__, "--one", which, str(n)], stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        sys.exit(f"{which}: the app failed under valgrind:\n{p.stderr[-2000:]}")
    for line in p.stderr.splitlines():
        if "missed the cache" in line:
            print(line, file=sys.stderr)
    # Thread 1 is the one serving the requests; the others are the cache's stream reader.
    main = [f for f in glob.glob(out + "*") if f == out or f.endswith("-01")]
    with open(sorted(main)[-1]) as f:
        m = re.search(r"^summary: (\d+)", f.read(), re.M)
    return int(m.group(1))


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        per = {}
        for which in APPS:
            per[which] = (count(which, N, tmp) - count(which, 0, tmp)) / N
        fs = per.get("flask-session")
        for which in APPS:
            ratio = f"{per[which] / fs:.2f}x Flask-Session's; " if fs else ""
            print(f"{which:22s} {per[which] / 1000:7.0f} k instructions/request in the app "
                  f"({ratio}callgrind, N={N})")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        one(sys.argv[2], int(sys.argv[3]))
    else:
        main()

"""The app's own CPU per request, without gunicorn or wrk: each app's WSGI
callable is called directly N times and time.process_time() is read around
it. run.sh runs this after the wrk rounds, against the same latch serve and
Redis (LATCH_URL, LATCH_API_KEY, BENCH_REDIS_PORT)."""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))

import apps  # noqa: E402
import latch_sessions as ls  # noqa: E402
from tests import harness  # noqa: E402

N = int(os.environ.get("N", "3000"))


def cpu_per_request(app, headers) -> float:
    call = harness.wsgi_caller(app)
    for _ in range(300):
        call("GET", "/", headers, None)
    t = time.process_time()
    for _ in range(N):
        r = call("GET", "/", headers, None)
    assert r.body == b"hello alice", r.body
    return (time.process_time() - t) / N * 1e6


def main() -> None:
    with ls.Client() as c:
        tok = c.create_session("alice").session_token
    cookie = {"Host": "bench", "Cookie": "__Host-latch=" + tok}
    fs = apps.flask_session_app()
    r = harness.wsgi_caller(fs)("GET", "/login", {"Host": "bench"}, None)
    fs_cookie = {"Host": "bench", "Cookie": r.get("Set-Cookie").split(";")[0]}
    os.environ["LATCH_CACHE"] = "0"
    online = apps.latch_app()
    os.environ["LATCH_CACHE"] = "1"
    cached = apps.latch_app()
    cache = cached.extensions["latch"].cache
    harness.wsgi_caller(cached)("GET", "/", cookie, None)  # starts the event stream
    deadline = time.monotonic() + 5
    while not cache.live() and time.monotonic() < deadline:
        time.sleep(0.01)
    rows = [("flask, no session", apps.bare_app(), cookie), ("flask-session (redis)", fs, fs_cookie),
            ("latch online", online, cookie)]
    if cache.live():
        rows.append(("latch cached", cached, cookie))
    for name, app, h in rows:
        print(f"{name:22s} {cpu_per_request(app, h):6.0f} µs CPU/request in the app (in-process, N={N})")


if __name__ == "__main__":
    main()

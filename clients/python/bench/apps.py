"""The two Flask apps BENCHMARKS.md compares, each reading its session on GET /.

* latch_app: latch_sessions.flask (online validation, or cached with LATCH_CACHE=1)
* flask_session_app: Flask-Session's Redis backend (Debian's python3-flask-session)
* bare_app: no session at all, the ceiling for both

Served by the same gunicorn command; run.sh drives them with wrk.
"""

import os

from flask import Flask, g, session


def bare_app() -> Flask:
    """The ceiling: the same Flask route with no session at all."""
    app = Flask("bare_bench")

    @app.get("/")
    def index():
        return "hello alice"
    return app


def latch_app() -> Flask:
    from latch_sessions.flask import Latch
    app = Flask("latch_bench")
    app.config["LATCH_CACHE"] = os.environ.get("LATCH_CACHE") == "1"
    Latch(app)

    @app.get("/")
    def index():
        return "hello " + (g.latch.subject or "nobody")
    return app


def flask_session_app() -> Flask:
    import redis
    from flask_session import Session
    app = Flask("flask_session_bench")
    app.config.update(SESSION_TYPE="redis", SESSION_REDIS=redis.Redis(host="127.0.0.1",
                                                                      port=int(os.environ.get("BENCH_REDIS_PORT", "6379"))),
                      SESSION_KEY_PREFIX="pybench:", SECRET_KEY=os.urandom(32))
    Session(app)

    @app.get("/")
    def index():
        return "hello " + (session.get("user") or "nobody")

    @app.get("/login")
    def login():  # setup only: start the session wrk then reads
        session["user"] = "alice"
        return "ok"
    return app

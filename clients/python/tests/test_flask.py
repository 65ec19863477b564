"""The Flask extension, through WSGI, against a real latch serve."""

from __future__ import annotations

import json
import unittest

import latch_sessions as ls

from . import harness, support


def setUpModule() -> None:
    support.need_latch()
    support.need("flask", "python3-flask")


def make_app(client: ls.Client):
    import flask
    from flask import g, request
    from latch_sessions.flask import Latch, login_required

    app = flask.Flask(__name__)
    app.config["LATCH_BEARER"] = "online"
    app.config["LATCH_CACHE"] = False  # these scenarios check every request online; test_cache covers the cache
    Latch(app, client=client)

    @app.get("/form")
    def form():
        return g.latch.csrf_token()

    @app.post("/login")
    def login():
        g.latch.login(request.form["user"])
        return "ok"

    @app.get("/me")
    @login_required
    def me():
        return flask.jsonify(subject=g.latch.subject, session_id=g.latch.session_id, auth=g.latch.auth)

    @app.post("/action")
    @login_required
    def action():
        return "done"

    @app.post("/logout")
    def logout():
        g.latch.logout()
        return "bye"

    @app.post("/renew")
    @login_required
    def renew():
        g.latch.renew()
        return "renewed"

    @app.post("/revoke-others")
    @login_required
    def revoke_others():
        return str(g.latch.revoke_others())

    @app.get("/public")
    def public():
        return "hi"

    @app.get("/page")
    def page():
        return flask.render_template_string("<form>{{ csrf_field() }}</form>")

    return app


class FlaskTest(harness.Scenarios, unittest.TestCase):
    def setUp(self) -> None:
        super().setUp()
        self.call = harness.wsgi_caller(make_app(self.latch))

    def make_call(self, url, api_key):
        c = ls.Client(url, api_key, timeout=2)
        self.addCleanup(c.close)
        return harness.wsgi_caller(make_app(c))

    def test_template_helper(self) -> None:
        b = self.browser()
        r = b.get("/page")
        self.assertRegex(r.text, r'^<form><input type="hidden" name="csrf_token" value="[A-Za-z0-9_-]{86}"></form>$')
        tok = r.text.split('value="')[1].split('"')[0]
        self.assertEqual(b.post("/login", form={"user": "alice", "csrf_token": tok}).status, 200)

    def test_init_app_and_config(self) -> None:
        import flask
        from latch_sessions.flask import Latch
        app = flask.Flask("x")
        app.config.update(LATCH_URL=support.URL, LATCH_API_KEY=support.API_KEY, LATCH_COOKIE_NAME="__Host-app")
        ext = Latch()
        ext.init_app(app)
        self.assertEqual(app.extensions["latch"].config.cookie_name, "__Host-app")
        bad = flask.Flask("y")
        bad.config.update(LATCH_URL=support.URL, LATCH_API_KEY=support.API_KEY,
                          LATCH_INSECURE_COOKIE_FOR_DEVELOPMENT_ONLY=True)
        with self.assertRaises(ls.ConfigError):
            Latch(bad)
        bad.config["LATCH_SAME_SITE"] = "None"
        with self.assertRaises(ls.ConfigError):
            Latch(bad)

    def test_login_url_redirects_browsers(self) -> None:
        import flask
        from latch_sessions.flask import Latch, login_required
        app = flask.Flask("z")
        app.config["LATCH_LOGIN_URL"] = "/signin"
        Latch(app, client=self.latch)
        app.add_url_rule("/private", "private", login_required(lambda: "secret"))
        r = harness.Browser(harness.wsgi_caller(app)).get("/private?tab=1")
        self.assertEqual(r.status, 302)
        self.assertTrue(r.get("Location").endswith("/signin?next=/private%3Ftab%3D1"), r.get("Location"))


if __name__ == "__main__":
    unittest.main()

"""The examples work: each one's main flow against a real latch serve."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import pathlib
import re
import time
import unittest

import latch_sessions as ls

from . import harness, support

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def setUpModule() -> None:
    support.need_latch()
    os.environ["LATCH_URL"] = support.URL


def load(name: str, rel: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / rel)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _field(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([A-Za-z0-9_-]{86})"', html)
    assert m, html
    return m.group(1)


class FlaskExampleTest(unittest.TestCase):
    def test_browser_and_api_flows(self) -> None:
        support.need("flask", "python3-flask")
        mod = load("flask_example", "flask_app.py")
        b = harness.Browser(harness.wsgi_caller(mod.app))
        page = b.get("/login")
        bad = b.post("/login", form={"user": "alice", "password": "wrong", "csrf_token": _field(page.text)})
        self.assertEqual(bad.status, 401)
        r = b.post("/login", form={"user": "alice", "password": "correct horse", "csrf_token": _field(bad.text)})
        self.assertEqual(r.status, 303, r)
        home = b.get("/")
        self.assertIn("Signed in as <b>alice</b>", home.text)
        info = json.loads(b.get("/session").body)
        self.assertEqual(info["subject"], "alice")
        self.assertGreater(info["idle_seconds_left"], 0)
        self.assertEqual(b.post("/logout", form={"csrf_token": _field(home.text)}).status, 303)
        self.assertEqual(b.get("/session").status, 302)  # to the login page now

        api = harness.Browser(harness.wsgi_caller(mod.app))
        h = {"Content-Type": "application/json"}
        r = api.call("POST", "/api/token", dict(h, Host=harness.HOST),
                     json.dumps({"user": "bob", "password": "correct horse"}).encode())
        self.assertEqual(r.status, 200, r)
        tok = json.loads(r.body)
        support.remember(tok["access_token"], tok["refresh_token"])
        r = api.call("POST", "/api/token/refresh", dict(h, Host=harness.HOST),
                     json.dumps({"refresh_token": tok["refresh_token"]}).encode())
        self.assertEqual(r.status, 200, r)
        new = json.loads(r.body)
        support.remember(new["access_token"], new["refresh_token"])
        self.assertNotEqual(new["refresh_token"], tok["refresh_token"])
        r = api.call("POST", "/api/token/refresh", dict(h, Host=harness.HOST),
                     json.dumps({"refresh_token": "ltr_forged"}).encode())
        self.assertEqual((r.status, json.loads(r.body)["error"]), (401, "invalid_token"))
        # A browser's cross-site post to the token endpoint is still refused.
        self.assertEqual(api.post("/api/token", site="cross-site").status, 403)

    def test_sign_out_elsewhere_asks_for_the_password_again(self) -> None:
        support.need("flask", "python3-flask")
        from datetime import datetime, timedelta, timezone
        mod = load("flask_example_stepup", "flask_app.py")
        with ls.Client(support.URL, support.API_KEY) as c:
            other = c.create_session("alice")
            old = c.create_session("alice", acr="pwd", amr=["pwd"],
                                   auth_time=datetime.now(timezone.utc) - timedelta(minutes=10))
            support.remember(other.session_token, old.session_token, other.refresh_token, old.refresh_token)
            b = harness.Browser(harness.wsgi_caller(mod.app))
            b.cookies["__Host-latch"] = old.session_token  # signed in ten minutes ago
            r = b.post("/logout-others", form={"csrf_token": _field(b.get("/").text)})
            self.assertEqual((r.status, r.get("Location")), (303, "/reauth?next=/logout-others"))
            c.verify_session(other.session_token)  # nothing was revoked
            page = b.get("/reauth")
            self.assertEqual(b.post("/reauth", form={"password": "wrong", "csrf_token": _field(page.text)}).status, 401)
            r = b.post("/reauth", form={"password": "correct horse", "csrf_token": _field(page.text)})
            self.assertEqual(r.status, 303, r)
            self.assertNotEqual(b.session_token, old.session_token)  # renewed
            r = b.post("/logout-others", form={"csrf_token": _field(b.get("/").text)})
            self.assertEqual((r.status, r.get("Location")), (303, "/"))
            with self.assertRaises(ls.Revoked):
                c.verify_session(other.session_token)


class FastAPIExampleTest(unittest.TestCase):
    def test_token_flow(self) -> None:
        support.need("fastapi", "python3-fastapi")
        support.need("jwt", "python3-jwt")
        mod = load("fastapi_example", "fastapi_api.py")
        loop = asyncio.new_event_loop()
        self.addCleanup(loop.close)
        self.addCleanup(lambda: loop.run_until_complete(mod.latch.aclose()))
        call = harness.asgi_caller(mod.app, loop)
        h = {"Host": harness.HOST, "Content-Type": "application/json"}
        r = call("POST", "/token", h, json.dumps({"user": "alice", "password": "correct horse"}).encode())
        self.assertEqual(r.status, 200, r)
        tok = json.loads(r.body)
        support.remember(tok["access_token"], tok["refresh_token"])
        auth = {"Host": harness.HOST, "Authorization": "Bearer " + tok["access_token"]}
        me = call("GET", "/me", auth, None)
        self.assertEqual(me.status, 200, me)
        self.assertEqual(json.loads(me.body)["user"], "alice")
        self.assertEqual(json.loads(me.body)["role"], "user")
        devices = json.loads(call("GET", "/devices", auth, None).body)
        self.assertTrue(any(d["current"] for d in devices))
        r = call("POST", "/token/refresh", h, json.dumps({"refresh_token": tok["refresh_token"]}).encode())
        self.assertEqual(r.status, 200, r)
        support.remember(json.loads(r.body)["access_token"], json.loads(r.body)["refresh_token"])
        self.assertEqual(call("POST", "/logout", auth, None).status, 204)
        # Offline verification learns of the logout from the event stream (or asks latch while the
        # stream is not live): refused within the protocol's bound, not at exp.
        deadline = time.monotonic() + 2
        while call("GET", "/me", auth, None).status != 401 and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertEqual(call("GET", "/me", auth, None).status, 401)
        self.assertEqual(call("GET", "/me", {"Host": harness.HOST}, None).status, 401)


class DjangoExampleTest(unittest.TestCase):
    def test_login_account_logout(self) -> None:
        django = support.need("django", "python3-django")
        from django.conf import settings
        if settings.configured:  # another test module configured Django in this process
            from django.test.utils import override_settings
            mod = load("django_example", "django_site/app.py")
            ov = override_settings(ROOT_URLCONF="django_example", ALLOWED_HOSTS=[harness.HOST],
                                   LATCH={"URL": support.URL, "LOGIN_URL": "/login"},
                                   MIDDLEWARE=["latch_sessions.django.LatchMiddleware"])
            ov.enable()
            self.addCleanup(ov.disable)
        else:
            mod = load("django_example", "django_site/app.py")
        import sys
        sys.modules["django_example"] = mod
        from django.core.handlers.wsgi import WSGIHandler
        b = harness.Browser(harness.wsgi_caller(WSGIHandler()))
        page = b.get("/login")
        self.assertEqual(page.status, 200, page)
        r = b.post("/login", form={"user": "bob", "password": "correct horse", "csrf_token": _field(page.text)})
        self.assertEqual(r.status, 302, r)
        acct = b.get("/account")
        self.assertIn("Signed in as <b>bob</b>", acct.text)
        self.assertEqual(b.post("/logout", form={"csrf_token": _field(acct.text)}).status, 302)
        self.assertEqual(b.get("/account").status, 302)


if __name__ == "__main__":
    unittest.main()

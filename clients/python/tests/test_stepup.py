"""Step-up authentication (RFC 9470) in every adapter, against a real latch serve:
require_recent_auth answers as latchhttp.RequireRecentAuth does — the RFC 9470
challenge for bearer requests, a re-authentication redirect or a plain 401 for
browsers — and a renewal that records the new sign-in lets the request through."""

from __future__ import annotations

import asyncio
import unittest
from datetime import datetime, timedelta, timezone

import latch_sessions as ls

from . import harness, support

OLD = 'Bearer error="insufficient_user_authentication", error_description="A more recent authentication is required", max_age="300"'
ACR = 'Bearer error="insufficient_user_authentication", error_description="A different authentication level is required", acr_values="mfa"'
BOTH = ('Bearer error="insufficient_user_authentication", error_description="A more recent authentication of another '
        'level is required", max_age="300", acr_values="mfa hwk"')

# The routes every app below serves, each answering "ok":
#   GET /sensitive   require_recent_auth(max_age=300)
#   GET /mfa         require_recent_auth(acr="mfa")
#   GET /both        require_recent_auth(max_age=300, acr=["mfa", "hwk"])
#   GET /again       require_recent_auth(max_age=300, reauth_url="/reauth")


def setUpModule() -> None:
    support.need_latch()


def flask_app(client: ls.Client, bearer: str = "online"):
    support.need("flask", "python3-flask")
    import flask
    from latch_sessions.flask import Latch, require_recent_auth

    app = flask.Flask("stepup")
    app.config.update(LATCH_BEARER=bearer, LATCH_CACHE=False)
    Latch(app, client=client)
    app.add_url_rule("/sensitive", "sensitive", require_recent_auth(max_age=300)(lambda: "ok"))
    app.add_url_rule("/mfa", "mfa", require_recent_auth(acr="mfa")(lambda: "ok"))
    app.add_url_rule("/both", "both", require_recent_auth(max_age=300, acr=["mfa", "hwk"])(lambda: "ok"))
    app.add_url_rule("/again", "again", require_recent_auth(max_age=timedelta(minutes=5), reauth_url="/reauth")(
        lambda: "ok"))

    # The browser flow of the demo: sign in (an hour ago, by password), then re-authenticate for a sensitive action.
    @app.get("/form")
    def form():
        return flask.g.latch.csrf_token()

    @app.post("/login")
    def login():
        flask.g.latch.login("uma", acr="pwd", amr=["pwd"],
                            auth_time=datetime.now(timezone.utc) - timedelta(hours=1))
        return "ok"

    @app.post("/reauth")
    def reauth():  # the app has checked the password and a one-time code again
        flask.g.latch.renew(acr="mfa", amr=["pwd", "otp"])
        return "renewed"
    return harness.wsgi_caller(app)


def django_app(client: ls.Client, bearer: str = "online"):
    support.need("django", "python3-django")
    from . import test_django
    test_django.setUpModule()
    from django.conf import settings
    from django.core.handlers.wsgi import WSGIHandler
    from django.http import HttpResponse
    from django.urls import path
    from latch_sessions.django import require_recent_auth

    def ok(request):
        return HttpResponse("ok")
    if not any(str(p.pattern) == "sensitive" for p in test_django.urlpatterns):
        test_django.urlpatterns += [
            path("sensitive", require_recent_auth(max_age=300)(ok)), path("mfa", require_recent_auth(acr="mfa")(ok)),
            path("both", require_recent_auth(max_age=300, acr=("mfa", "hwk"))(ok)),
            path("again", require_recent_auth(max_age=300, reauth_url="/reauth")(ok))]
    old = settings.LATCH
    settings.LATCH = {"URL": support.URL, "API_KEY": support.API_KEY, "BEARER": bearer, "CACHE": False}
    try:
        return harness.wsgi_caller(WSGIHandler())
    finally:
        settings.LATCH = old


def starlette_app(client: ls.AsyncClient, loop, bearer: str = "online"):
    support.need("starlette", "python3-starlette")
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from latch_sessions.asgi import LatchMiddleware, require_recent_auth

    async def ok(request):
        return PlainTextResponse("ok")
    app = Starlette(routes=[
        Route("/sensitive", require_recent_auth(max_age=300)(ok)), Route("/mfa", require_recent_auth(acr="mfa")(ok)),
        Route("/both", require_recent_auth(max_age=300, acr=["mfa", "hwk"])(ok)),
        Route("/again", require_recent_auth(max_age=300, reauth_url="/reauth")(ok))])
    app.add_middleware(LatchMiddleware, client=client, bearer=bearer, cache=False)
    return harness.asgi_caller(app, loop)


def fastapi_app(client: ls.AsyncClient, loop, bearer: str = "online"):
    support.need("fastapi", "python3-fastapi")
    from fastapi import Depends, FastAPI
    from fastapi.responses import PlainTextResponse
    from latch_sessions.asgi import LatchMiddleware
    from latch_sessions.fastapi import require_recent_auth

    app = FastAPI()
    app.add_middleware(LatchMiddleware, client=client, bearer=bearer, cache=False)
    for route, dep in (("/sensitive", require_recent_auth(max_age=300)), ("/mfa", require_recent_auth(acr="mfa")),
                       ("/both", require_recent_auth(max_age=300, acr=["mfa", "hwk"])),
                       ("/again", require_recent_auth(max_age=300, reauth_url="/reauth"))):
        async def ok(latch=Depends(dep)):
            return "ok"
        app.get(route, response_class=PlainTextResponse)(ok)
    return harness.asgi_caller(app, loop)


class _StepUp:
    """Mixed into a TestCase with make(bearer) -> call."""

    def setUp(self) -> None:
        super().setUp()
        self.api = ls.Client(support.URL, support.API_KEY)
        self.addCleanup(self.api.close)

    def signed_in(self, minutes_ago: float, acr: str | None = "pwd") -> ls.Issued:
        iss = self.api.create_session("uma", acr=acr, amr=["pwd"],
                                      auth_time=datetime.now(timezone.utc) - timedelta(minutes=minutes_ago))
        support.remember(iss.session_token, iss.refresh_token, iss.access_token)
        return iss

    @staticmethod
    def get(call, path: str, iss: ls.Issued | None, how: str) -> harness.Resp:
        h = {"Host": harness.HOST, "Sec-Fetch-Site": "same-origin"}
        if iss is not None and how == "cookie":
            h["Cookie"] = "__Host-latch=" + iss.session_token
        elif iss is not None:
            h["Authorization"] = "Bearer " + iss.access_token
        return call("GET", path, h, None)

    def assertRefused(self, r: harness.Resp, challenge: str | None) -> None:
        self.assertEqual(r.status, 401, r)
        self.assertEqual(r.get("WWW-Authenticate"), challenge)
        self.assertEqual(r.get("Cache-Control"), "no-store")

    def test_requirements(self) -> None:
        call = self.make("online")
        old = self.signed_in(10)
        # Without a session: as login_required.
        r = self.get(call, "/sensitive", None, "cookie")
        self.assertEqual((r.status, r.get("WWW-Authenticate")), (401, "Bearer"))
        # Bearer: the RFC 9470 challenge, byte for byte latch's.
        self.assertRefused(self.get(call, "/sensitive", old, "bearer"), OLD)
        self.assertRefused(self.get(call, "/mfa", old, "bearer"), ACR)
        self.assertRefused(self.get(call, "/both", old, "bearer"), BOTH)
        # A browser: 401 without a challenge, or the re-authentication page.
        self.assertRefused(self.get(call, "/sensitive", old, "cookie"), None)
        r = self.get(call, "/again", old, "cookie")
        self.assertEqual(r.status, 303, r)
        self.assertEqual(r.get("Location").rsplit("/reauth", 1)[1], "?next=/again")
        self.assertRefused(self.get(call, "/again", old, "bearer"), OLD)  # an API client gets the challenge
        # Nothing was written to the session by any refusal.
        self.assertEqual(self.api.get_session(old.session.id).version, old.session.version)
        # A recent password sign-in passes max_age, not acr.
        fresh = self.signed_in(0)
        for how in ("cookie", "bearer"):
            self.assertEqual(self.get(call, "/sensitive", fresh, how).text, "ok")
            self.assertEqual(self.get(call, "/again", fresh, how).text, "ok")
        self.assertRefused(self.get(call, "/mfa", fresh, "bearer"), ACR)
        # The user signs in again with a second factor; the renewal records it.
        r = self.api.renew_session(old.session.id, acr="mfa", amr=["pwd", "otp"])
        support.remember(r.session_token, r.refresh_token, r.access_token)
        for how in ("cookie", "bearer"):
            for path in ("/sensitive", "/mfa", "/both", "/again"):
                with self.subTest(how=how, path=path):
                    self.assertEqual(self.get(call, path, r, how).text, "ok")

    def test_offline_bearer_reads_the_token_claims(self) -> None:
        support.need("jwt", "python3-jwt")
        call = self.make("offline")
        self.assertRefused(self.get(call, "/sensitive", self.signed_in(10), "bearer"), OLD)
        self.assertEqual(self.get(call, "/sensitive", self.signed_in(0), "bearer").text, "ok")
        self.assertRefused(self.get(call, "/mfa", self.signed_in(0, acr=None), "bearer"), ACR)
        self.assertEqual(self.get(call, "/mfa", self.signed_in(0, acr="mfa"), "bearer").text, "ok")


class FlaskTest(_StepUp, unittest.TestCase):
    def make(self, bearer: str):
        return flask_app(self.api, bearer)

    def test_bad_requirements_are_refused_at_once(self) -> None:
        from latch_sessions.flask import require_recent_auth
        for kw in ({}, {"max_age": 0}, {"max_age": -5}, {"max_age": 1.5}, {"acr": 'a"b'}, {"acr": ""},
                   {"acr": ["x"] * 9}, {"acr": "caf\u00e9"}):
            with self.subTest(kw=kw), self.assertRaises(ls.ConfigError):
                require_recent_auth(**kw)


    def test_browser_reauthenticates_and_renews(self) -> None:
        b = harness.Browser(self.make("online"))
        self.assertEqual(b.login().text, "ok")
        self.assertEqual(b.get("/sensitive").status, 401)
        self.assertEqual(b.get("/again").status, 303)
        old = b.session_token
        r = b.post("/reauth", form={"csrf_token": b.form_token()})
        self.assertEqual((r.status, r.text), (200, "renewed"))
        self.assertNotEqual(b.session_token, old)  # new tokens with the new sign-in
        for path in ("/sensitive", "/mfa", "/both", "/again"):
            self.assertEqual(b.get(path).text, "ok", path)
        with self.assertRaises(ls.InvalidCredential):
            self.api.verify_session(old)


class DjangoTest(_StepUp, unittest.TestCase):
    def make(self, bearer: str):
        return django_app(self.api, bearer)


class _Async(_StepUp):
    def setUp(self) -> None:
        super().setUp()
        self.loop = asyncio.new_event_loop()
        self.addCleanup(self.loop.close)

    def client(self) -> ls.AsyncClient:
        c = ls.AsyncClient(support.URL, support.API_KEY)
        self.addCleanup(lambda: self.loop.run_until_complete(c.aclose()))
        return c


class StarletteTest(_Async, unittest.TestCase):
    def make(self, bearer: str):
        return starlette_app(self.client(), self.loop, bearer)


class FastAPITest(_Async, unittest.TestCase):
    def make(self, bearer: str):
        return fastapi_app(self.client(), self.loop, bearer)


if __name__ == "__main__":
    unittest.main()

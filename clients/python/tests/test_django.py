"""The Django middleware, through Django's WSGI handler, against a real latch serve."""

from __future__ import annotations

import json
import sys
import unittest

import latch_sessions as ls

from . import harness, support

urlpatterns: list = []


def setUpModule() -> None:
    support.need_latch()
    django = support.need("django", "python3-django")
    from django.conf import settings
    if not settings.configured:
        settings.configure(
            DEBUG=False, SECRET_KEY="test-only-" + "x" * 40, ROOT_URLCONF=__name__, ALLOWED_HOSTS=[harness.HOST],
            INSTALLED_APPS=[], USE_TZ=True,
            MIDDLEWARE=["latch_sessions.django.LatchMiddleware", "django.middleware.common.CommonMiddleware"],
            LATCH={"URL": support.URL, "API_KEY": support.API_KEY, "BEARER": "online"},
            TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": False}],
        )
    django.setup()
    _routes()


def _routes() -> None:
    from django.http import HttpResponse, JsonResponse
    from django.template import engines
    from django.urls import path
    from latch_sessions.django import login_required

    def form(request):
        return HttpResponse(request.latch.csrf_token(), content_type="text/plain")

    def login(request):
        request.latch.login(request.POST["user"])
        return HttpResponse("ok")

    @login_required
    def me(request):
        st = request.latch
        return JsonResponse({"subject": st.subject, "session_id": st.session_id, "auth": st.auth})

    @login_required
    def action(request):
        return HttpResponse("done")

    def logout(request):
        request.latch.logout()
        return HttpResponse("bye")

    @login_required
    def renew(request):
        request.latch.renew()
        return HttpResponse("renewed")

    @login_required
    def revoke_others(request):
        return HttpResponse(str(request.latch.revoke_others()))

    def public(request):
        return HttpResponse("hi")

    def cache(request):  # for test_cache: the state of this app's cache
        c = request.latch._core.cache
        if request.GET.get("close"):
            c.close()
        return JsonResponse({"live": c.live(), "hits": c.state.hits})

    tpl = engines["django"].from_string("<form>{{ request.latch.csrf_field }}</form>")

    def page(request):
        return HttpResponse(tpl.render({"request": request}))

    urlpatterns[:] = [path("form", form), path("login", login), path("me", me), path("action", action),
                      path("logout", logout), path("renew", renew), path("revoke-others", revoke_others),
                      path("public", public), path("page", page), path("cache", cache)]


def handler(url: str, api_key: str):
    from django.conf import settings
    from django.core.handlers.wsgi import WSGIHandler
    old = settings.LATCH
    settings.LATCH = {"URL": url, "API_KEY": api_key, "BEARER": "online", "TIMEOUT": 2, "CACHE": False}
    try:
        return WSGIHandler()
    finally:
        settings.LATCH = old


class DjangoTest(harness.Scenarios, unittest.TestCase):
    def setUp(self) -> None:
        super().setUp()
        self.call = harness.wsgi_caller(handler(support.URL, support.API_KEY))

    def make_call(self, url, api_key):
        return harness.wsgi_caller(handler(url, api_key))

    def test_template_field(self) -> None:
        b = self.browser()
        r = b.get("/page")
        self.assertRegex(r.text, r'^<form><input type="hidden" name="csrf_token" value="[A-Za-z0-9_-]{86}"></form>$')
        tok = r.text.split('value="')[1].split('"')[0]
        self.assertEqual(b.post("/login", form={"user": "alice", "csrf_token": tok}).status, 200)

    def test_coexists_with_csrf_view_middleware(self) -> None:
        from django.conf import settings
        from django.core.handlers.wsgi import WSGIHandler
        old = settings.MIDDLEWARE
        settings.MIDDLEWARE = ["latch_sessions.django.LatchMiddleware", "django.middleware.csrf.CsrfViewMiddleware"]
        try:
            call = harness.wsgi_caller(WSGIHandler())
        finally:
            settings.MIDDLEWARE = old
        b = harness.Browser(call)
        tok = b.form_token()
        # latch's token alone: Django's middleware still wants its own.
        self.assertEqual(b.post("/login", form={"user": "alice", "csrf_token": tok}).status, 403)
        # Both tokens: both layers pass (Django checks Referer on HTTPS, as a browser sends it).
        b.cookies["csrftoken"] = "a" * 32
        r = b.post("/login", form={"user": "alice", "csrf_token": tok, "csrfmiddlewaretoken": "a" * 32},
                   headers={"Referer": harness.ORIGIN + "/form"})
        self.assertEqual(r.status, 200, r)
        self.assertIn("__Host-latch", b.cookies)
        # Django's token alone: latch refuses.
        b2 = harness.Browser(call)
        b2.cookies["csrftoken"] = "a" * 32
        self.assertEqual(b2.post("/login", form={"user": "x", "csrfmiddlewaretoken": "a" * 32},
                                 headers={"Referer": harness.ORIGIN + "/form"}).status, 403)


if __name__ == "__main__":
    unittest.main()

"""latch for Django: a middleware and a decorator, usable instead of
``django.contrib.sessions`` (and ``AuthenticationMiddleware``) for who is
signed in.

::

    # settings.py
    MIDDLEWARE = [
        "django.middleware.security.SecurityMiddleware",
        "latch_sessions.django.LatchMiddleware",
        "django.middleware.common.CommonMiddleware",
        # no SessionMiddleware, AuthenticationMiddleware or CsrfViewMiddleware needed
    ]
    LATCH = {"URL": "http://127.0.0.1:8080"}   # API_KEY defaults to the LATCH_API_KEY environment variable

    # views.py
    from latch_sessions.django import login_required

    def login(request):
        if request.method == "POST":
            user = authenticate_somehow(request.POST["user"], request.POST["password"])
            request.latch.login(user)          # fixation-safe; sets the __Host-latch cookie
            return redirect("/account")
        return render(request, "login.html")  # {{ request.latch.csrf_field }} in the form

    @login_required
    def account(request):
        return render(request, "account.html", {"user": request.latch.subject})

Every request gets ``request.latch`` (a :class:`~latch_sessions._web.RequestSession`).

# CSRF, and Django's CsrfViewMiddleware

The middleware enforces latch's CSRF protection on every unsafe request
(POST, PUT, PATCH, DELETE…): same origin (Sec-Fetch-Site, else Origin against
Host), and a synchronizer token — the session's, or for a visitor without a
session the anonymous token of the ``__Host-latch-csrf`` cookie, so login forms
are covered. Put ``{{ request.latch.csrf_field }}`` in forms and send
``X-CSRF-Token`` from scripts. That is the protection CsrfViewMiddleware gives,
so an app whose sessions are all latch's can drop CsrfViewMiddleware.

If you keep it (for ``django.contrib.admin``, which still signs in through
``django.contrib.sessions``), both checks apply and do not interfere: Django's
uses its ``csrftoken`` cookie and ``csrfmiddlewaretoken`` field, latch's the
``csrf_token`` field or ``X-CSRF-Token`` header, so a form posted to a view
behind both carries both (``{% csrf_token %}`` and ``{{ request.latch.csrf_field }}``).
Django's ``@csrf_exempt`` does not switch latch's check off; list such paths
(webhooks that authenticate themselves) in ``LATCH["ANONYMOUS_CSRF_EXEMPT"]``.
Django's ``CSRF_COOKIE_*`` settings do not affect latch's cookies.

# Settings

``settings.LATCH``, a dict: ``URL``, ``API_KEY``, ``TIMEOUT``, ``COOKIE_NAME``,
``SAME_SITE``, ``TRUSTED_ORIGINS``, ``ANONYMOUS_CSRF_EXEMPT``, ``BEARER``
("off", "online", "offline"), ``LOGIN_URL``, ``CACHE`` (cached validation,
docs/protocol.md §4), ``INSECURE_COOKIE_FOR_DEVELOPMENT_ONLY``. When latch
cannot be reached, requests are answered 503, never let through.
"""

from __future__ import annotations

import functools
from http.cookies import Morsel
from typing import Any, Callable, Sequence

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils.cache import patch_vary_headers

from ._client import DEFAULT_TIMEOUT, Client
from ._errors import CSRFRejected, UnavailableError
from ._web import (AuthRequirement, Config, Core, RequestSession, WSGIRequest, drive, error_response,
                   recent_auth_refusal)

__all__ = ["LatchMiddleware", "login_required", "require_recent_auth"]


class _Request(WSGIRequest):
    __slots__ = ("r",)

    def __init__(self, r: HttpRequest) -> None:
        super().__init__(r.META, r.path)
        self.r = r

    def form_token(self) -> str | None:
        # request.POST parses url-encoded and multipart bodies within
        # DATA_UPLOAD_MAX_MEMORY_SIZE and keeps them for the view.
        return self.r.POST.get("csrf_token")


class _RawMorsel(Morsel):
    """A Set-Cookie value written verbatim, so the cookie's attributes are
    byte for byte those of latchhttp and the other adapters."""

    def __init__(self, name: str, raw: str) -> None:
        super().__init__()
        self.set(name, "", "")
        self._raw = raw

    def OutputString(self, attrs: Any = None) -> str:  # noqa: N802 - Morsel's API
        return self._raw

    def output(self, attrs: Any = None, header: str = "Set-Cookie:") -> str:
        return f"{header} {self._raw}" if header else self._raw


def _settings() -> dict[str, Any]:
    s = getattr(settings, "LATCH", {}) or {}
    return {str(k).lower(): v for k, v in s.items()}


def build_core(s: dict[str, Any] | None = None) -> Core:
    s = _settings() if s is None else s
    cfg = Config.from_mapping(s)
    client = s.get("client") or Client(s.get("url"), s.get("api_key"), timeout=s.get("timeout", DEFAULT_TIMEOUT))
    return Core.build(cfg, client, cache=bool(s.get("cache", True)))


class LatchMiddleware:
    """Django middleware putting latch on every request as ``request.latch``."""

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.core = build_core()

    def __call__(self, request: HttpRequest) -> HttpResponse:
        req = _Request(request)
        st = RequestSession(self.core, req)
        request.latch = st  # type: ignore[attr-defined]
        try:
            if not self.core.cached(st):
                drive(self.core, req, self.core.authenticate(st))
        except (CSRFRejected, UnavailableError) as e:
            return self._refuse(e, st)
        except RequestDataTooBig:
            return _apply(HttpResponse(b"Request Entity Too Large\n", status=413, content_type="text/plain"), st)
        except SuspiciousOperation:
            return _apply(HttpResponse(b"Bad Request\n", status=400, content_type="text/plain"), st)
        return _apply(self.get_response(request), st)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        # A view's login or logout could not reach latch: 503, never a half-done session.
        if isinstance(exception, UnavailableError):
            return self._refuse(exception, None)
        return None

    def _refuse(self, e: BaseException, st: RequestSession | None) -> HttpResponse:
        status, headers, body = error_response(e, st, self.core.config.bearer != "off")
        resp = HttpResponse(body, status=status)
        for k, v in headers:
            if k == "Set-Cookie":
                name = v.split("=", 1)[0]
                resp.cookies[name] = _RawMorsel(name, v)
            else:
                resp[k] = v
        if st is not None:
            st._set_cookies.clear()
        return resp


def _apply(resp: HttpResponse, st: RequestSession) -> HttpResponse:
    for k, v in st.response_headers():
        if k == "Set-Cookie":
            name = v.split("=", 1)[0]
            resp.cookies[name] = _RawMorsel(name, v)
        elif k == "Vary":
            patch_vary_headers(resp, ("Cookie", "Authorization"))
        else:
            resp[k] = v
            if k == "Cache-Control":
                for h in ("Expires", "Last-Modified", "ETag"):
                    if h in resp:
                        del resp[h]
    st._set_cookies.clear()
    return resp


def login_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """401 for requests without a valid session (``WWW-Authenticate: Bearer`` when bearer
    tokens are on), or a redirect to ``LATCH["LOGIN_URL"]`` for browsers if it is set."""
    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        st: RequestSession | None = getattr(request, "latch", None)
        if st is None:
            raise RuntimeError("latch_sessions.django: add LatchMiddleware to MIDDLEWARE")
        if st.authenticated:
            return view(request, *args, **kwargs)
        cfg = st._cfg
        if cfg.login_url and not st.bearer_presented:
            from urllib.parse import quote
            return HttpResponseRedirect(cfg.login_url + "?next=" + quote(request.get_full_path()))
        status, headers, body = error_response(PermissionError(), st if st.bearer_presented else None,
                                               cfg.bearer != "off")
        resp = HttpResponse(body, status=status)
        for k, v in headers:
            if k not in ("Vary", "Set-Cookie"):
                resp[k] = v
        return resp
    return wrapper


def require_recent_auth(max_age: int | None = None, acr: str | Sequence[str] = (), *,
                        reauth_url: str | None = None) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """A view decorator for sensitive actions: only requests whose user authenticated within
    ``max_age`` seconds and/or with one of the ``acr`` values pass (RFC 9470 step-up), as
    latchhttp.RequireRecentAuth; no call to latch. Without a session: as ``login_required``.
    A bearer request that falls short gets 401 with the RFC 9470 challenge; a browser a redirect
    to ``reauth_url`` (default ``LATCH["REAUTH_URL"]``) with ``?next=``, or 401 without one."""
    need = AuthRequirement(max_age, acr)

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @functools.wraps(view)
        def inner(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            st: RequestSession = request.latch  # type: ignore[attr-defined]
            refusal = recent_auth_refusal(st, need, reauth_url or st._cfg.reauth_url, request.get_full_path())
            if refusal is None:
                return view(request, *args, **kwargs)
            status, headers, body = refusal
            resp = HttpResponse(body, status=status)
            for k, v in headers:
                resp[k] = v
            return resp
        return login_required(inner)
    return decorate

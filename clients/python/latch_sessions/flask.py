"""latch for Flask: an extension in the style of Flask-Login.

::

    from flask import Flask, g
    from latch_sessions.flask import Latch, login_required

    app = Flask(__name__)
    app.config["LATCH_URL"] = "http://127.0.0.1:8080"   # or the LATCH_URL environment variable
    latch = Latch(app)                                   # or latch = Latch(); latch.init_app(app)

    @app.post("/login")
    def login():
        user = check_password(request.form["user"], request.form["password"])
        if user is None:
            abort(401)
        g.latch.login(user)               # fixation-safe; sets the __Host-latch cookie
        return redirect("/account")

    @app.get("/account")
    @login_required
    def account():
        return render_template("account.html", user=g.latch.subject)

and in every form that posts: ``{{ csrf_field() }}`` (or
``<input type="hidden" name="csrf_token" value="{{ csrf_token() }}">``).

Every request gets ``g.latch`` (a :class:`~latch_sessions._web.RequestSession`).
Unsafe requests (POST, PUT, PATCH, DELETE…) are refused with 403 when they come
cross-origin or lack the CSRF token of their session — or, without a session,
of their anonymous CSRF cookie, which ``csrf_token()`` sets: login forms are
protected too. When latch cannot be reached the request is refused with 503,
never let through.

Settings, read from ``app.config`` at ``init_app``: ``LATCH_URL``,
``LATCH_API_KEY`` (default: the environment variables of the same name),
``LATCH_TIMEOUT``, ``LATCH_COOKIE_NAME``, ``LATCH_SAME_SITE``,
``LATCH_TRUSTED_ORIGINS``, ``LATCH_ANONYMOUS_CSRF_EXEMPT``, ``LATCH_BEARER``
("off", "online", "offline"), ``LATCH_LOGIN_URL``, ``LATCH_CACHE`` (cached
validation, docs/protocol.md §4; default on) and
``LATCH_INSECURE_COOKIE_FOR_DEVELOPMENT_ONLY``. Flask's own session and
Flask-Session are not used and can be removed.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence, TypeVar

import flask
from flask import g
from markupsafe import Markup

from ._client import DEFAULT_TIMEOUT, Client
from ._errors import CSRFRejected, UnavailableError
from ._web import (AuthRequirement, Config, Core, RequestSession, WSGIRequest, drive, error_response,
                   recent_auth_refusal)

__all__ = ["Latch", "login_required", "require_recent_auth", "current_session"]

F = TypeVar("F", bound=Callable[..., Any])


class _Request(WSGIRequest):
    """A Flask request as the core sees it."""

    __slots__ = ("r",)

    def __init__(self, r: flask.Request) -> None:
        super().__init__(r.environ, "")
        self.r = r

    @property  # type: ignore[override]
    def path(self) -> str:  # rarely needed: computed only then
        return self.r.path

    @path.setter
    def path(self, v: str) -> None:
        pass

    def form_token(self) -> str | None:
        # Flask parses url-encoded and multipart bodies (within MAX_CONTENT_LENGTH)
        # and keeps them in request.form for the view; never the query string.
        return self.r.form.get("csrf_token")


class Latch:
    """The Flask extension. ``Latch(app)`` or ``Latch()`` then ``init_app(app)``.

    ``client`` is a :class:`Client` to use instead of one built from the app's
    config; ``config`` a :class:`Config` instead of the ``LATCH_*`` settings.
    """

    def __init__(self, app: flask.Flask | None = None, *, client: Client | None = None,
                 config: Config | None = None) -> None:
        self._client = client
        self._app_client: Client | None = client
        self._config = config
        if app is not None:
            self.init_app(app)

    @property
    def client(self) -> Client:
        """The back-channel client (the app's, inside a request), for calls beyond the request's
        own session: issuing API tokens, listing a user's devices, revoking."""
        if flask.has_app_context() and "latch" in flask.current_app.extensions:
            return flask.current_app.extensions["latch"].client
        if self._app_client is None:
            raise RuntimeError("latch_sessions.flask: init_app has not run")
        return self._app_client

    def init_app(self, app: flask.Flask) -> None:
        cfg = self._config or Config.from_mapping(app.config, "LATCH_")
        client = self._client or Client(app.config.get("LATCH_URL"), app.config.get("LATCH_API_KEY"),
                                        timeout=app.config.get("LATCH_TIMEOUT", DEFAULT_TIMEOUT))
        core = Core.build(cfg, client, cache=bool(app.config.get("LATCH_CACHE", True)))
        self._app_client = client
        app.extensions["latch"] = core
        app.before_request(_before_for(core))
        app.after_request(_after)
        app.register_error_handler(UnavailableError, _unavailable)
        app.context_processor(_template_helpers)


def _core() -> Core:
    try:
        return flask.current_app.extensions["latch"]
    except KeyError:
        raise RuntimeError("latch_sessions.flask: Latch(app) or init_app(app) was not called") from None


def _before_for(core: Core) -> Callable[[], flask.Response | None]:
    # A plain function, not a functools.partial: Flask inspects every hook on every request
    # (ensure_sync), and unwrapping a partial costs more.
    def latch_before_request() -> flask.Response | None:
        return _before(core)
    return latch_before_request


def _before(core: Core) -> flask.Response | None:
    req = _Request(flask.request)
    st = RequestSession(core, req)
    g.latch = st
    try:
        if not core.cached(st):
            drive(core, req, core.authenticate(st))
    except (CSRFRejected, UnavailableError) as e:
        return _refuse(e, st)
    return None


def _refuse(e: BaseException, st: RequestSession | None) -> flask.Response:
    status, headers, body = error_response(e, st, _core().config.bearer != "off")
    resp = flask.Response(body, status)
    for k, v in headers:
        resp.headers.add(k, v) if k == "Set-Cookie" else resp.headers.__setitem__(k, v)
    if st is not None:
        st._set_cookies.clear()  # already written
        st._no_store = True
    return resp


def _after(resp: flask.Response) -> flask.Response:
    st = g.get("latch")
    if st is None:
        return resp
    h = resp.headers
    for k, v in st.response_headers():
        if k == "Set-Cookie":
            h.add(k, v)
        elif k == "Vary":
            lst = getattr(h, "_list", None)
            if type(lst) is list and not any(n.lower() == "vary" for n, _ in lst):
                # Every response passes here: append to werkzeug's header list directly (our
                # constant value needs none of Headers.add's validation); else merge below.
                lst.append(("Vary", v))
                continue
            have = h.get("Vary")
            if not have:
                h.add("Vary", v)
            else:
                names = {x.strip().lower() for x in have.split(",")}
                extra = [x for x in ("Cookie", "Authorization") if x.lower() not in names]
                if extra:
                    h["Vary"] = ", ".join([have, *extra])
        else:
            h[k] = v
            if k == "Cache-Control":
                for name in ("Expires", "Last-Modified", "ETag"):
                    h.pop(name, None)
    return resp


def _unavailable(e: UnavailableError) -> flask.Response:
    return _refuse(e, g.get("latch"))


def _template_helpers() -> dict[str, Any]:
    def csrf_token() -> str:
        st = g.get("latch")
        return st.csrf_token() if st is not None else ""

    def csrf_field() -> Markup:
        return Markup('<input type="hidden" name="csrf_token" value="%s">') % csrf_token()
    return {"csrf_token": csrf_token, "csrf_field": csrf_field, "latch": g.get("latch")}


def current_session() -> RequestSession:
    """The request's latch state (``g.latch``)."""
    st = g.get("latch")
    if st is None:
        raise RuntimeError("latch_sessions.flask: no latch state on this request; was Latch(app) set up?")
    return st


def login_required(view: F) -> F:
    """Answer requests without a valid session with 401 (``WWW-Authenticate: Bearer`` when
    bearer tokens are on), or redirect browsers to ``LATCH_LOGIN_URL`` if it is set."""
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        st = current_session()
        if st.authenticated:
            return view(*args, **kwargs)
        core = _core()
        if core.config.login_url and not st.bearer_presented:
            from urllib.parse import quote
            return flask.redirect(core.config.login_url + "?next=" + quote(flask.request.full_path.rstrip("?")))
        status, headers, body = error_response(PermissionError(), st, core.config.bearer != "off")
        resp = flask.Response(body, status)
        for k, v in headers:
            if k not in ("Vary", "Set-Cookie"):  # after_request adds the state's own headers
                resp.headers[k] = v
        return resp
    return wrapper  # type: ignore[return-value]


def require_recent_auth(max_age: int | None = None, acr: str | Sequence[str] = (), *,
                        reauth_url: str | None = None) -> Callable[[F], F]:
    """For sensitive views (changing a password, signing out other devices, paying): pass only
    requests whose user authenticated within ``max_age`` seconds and/or with one of the ``acr``
    values (RFC 9470 step-up), like latchhttp.RequireRecentAuth. It reads the session the
    request already loaded: no call to latch.

    Without a session: as ``login_required``. A bearer request that falls short gets 401 with
    ``WWW-Authenticate: Bearer error="insufficient_user_authentication"``, ``max_age`` and
    ``acr_values``; a browser is redirected to ``reauth_url`` (default ``LATCH_REAUTH_URL``)
    with ``?next=``, or answered 401 without one. After the user signs in again, call
    ``g.latch.renew(auth_time=…, acr=…, amr=…)``. ::

        @app.post("/sign-out-others")
        @require_recent_auth(max_age=300)
        def sign_out_others(): ...
    """
    need = AuthRequirement(max_age, acr)  # a bad requirement is a bug: ConfigError at import

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def inner(*args: Any, **kwargs: Any) -> Any:
            st = current_session()
            refusal = recent_auth_refusal(st, need, reauth_url or _core().config.reauth_url,
                                          flask.request.full_path.rstrip("?"))
            if refusal is None:
                return view(*args, **kwargs)
            status, headers, body = refusal
            resp = flask.Response(body, status)
            for k, v in headers:
                resp.headers[k] = v
            return resp
        return login_required(inner)  # type: ignore[return-value]
    return decorate

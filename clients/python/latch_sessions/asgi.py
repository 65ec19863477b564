"""latch for ASGI apps (Starlette, FastAPI, or any ASGI framework): a pure ASGI
middleware, scope-based like Starlette's SessionMiddleware, so it works under
any ASGI server and does not buffer responses.

::

    from starlette.applications import Starlette
    from latch_sessions import AsyncClient
    from latch_sessions.asgi import LatchMiddleware

    app = Starlette(routes=[...])
    app.add_middleware(LatchMiddleware)          # LATCH_URL, LATCH_API_KEY from the environment

    async def login(request):
        form = await request.form()
        user = await check_password(form["user"], form["password"])
        await request.state.latch.login(user)    # fixation-safe; sets the cookie
        return RedirectResponse("/account", 303)

Every HTTP request gets ``request.state.latch`` (``scope["state"]["latch"]``),
an :class:`~latch_sessions._web.AsyncRequestSession`; its ``login``,
``logout``, ``renew`` and ``revoke_others`` are awaited. Unsafe requests are
refused with 403 when cross-origin or without the CSRF token (of their
session, or of the anonymous cookie for login forms); 503 when latch cannot be
reached. To find a ``csrf_token`` form field the middleware reads url-encoded
and multipart bodies (up to ``max_form_size``) and replays them to the app
unchanged; requests sending the ``X-CSRF-Token`` header are not read.

WebSocket handshakes are authenticated too (``websocket.scope["state"]["latch"]``,
``websocket.state.latch`` in Starlette): by the session cookie, or by a Bearer
or DPoP access token where the client sends one. A handshake from another
origin is refused before latch is asked (Origin, or Sec-Fetch-Site, against
Host and ``trusted_origins``): browsers attach cookies to cross-site WebSocket
handshakes, and the Origin check is what stops cross-site WebSocket hijacking,
as the CSRF checks do for forms. A refused handshake is closed before it is
accepted (the server answers 403; with the ``websocket.http.response``
extension, 403 or 503 with a body). An unauthenticated handshake reaches the
app with no session; ``websocket_login_required`` (Starlette) and
``latch_sessions.fastapi.require_websocket_session`` close it with 1008.
The session is the one at the handshake: a long-lived socket that must end
when the user signs out should check again (``await client.verify_session``)
or listen to latch's events. Lifespan scopes pass through untouched.
"""

from __future__ import annotations

import email.parser
import email.policy
import functools
from typing import Any, Awaitable, Callable, MutableMapping
from urllib.parse import parse_qs

from urllib.parse import quote
from typing import Sequence

from ._client import DEFAULT_TIMEOUT, AsyncClient
from ._errors import CSRFRejected, UnavailableError
from ._web import (_PATH_SAFE, AsyncRequestSession, AuthRequirement, Config, Core, adrive, error_response,
                   recent_auth_refusal)

__all__ = ["LatchMiddleware", "login_required", "require_recent_auth", "websocket_login_required",
           "DEFAULT_MAX_FORM_SIZE"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: The largest form body read to find csrf_token (larger: 413), as latchhttp's default.
DEFAULT_MAX_FORM_SIZE = 10 << 20


class _TooLarge(Exception):
    pass


class _Request:
    """An ASGI HTTP scope as the core sees it; buffers the body if it reads the form."""

    def __init__(self, scope: Scope, receive: Receive, max_form: int) -> None:
        self.scope = scope
        self.websocket = scope["type"] == "websocket"
        self.method = "GET" if self.websocket else scope["method"]  # a handshake is a GET
        self.path = scope.get("path", "")
        self._receive = receive
        self._max_form = max_form
        self._headers: dict[str, str] = {}
        self._cookies: list[str] = []
        self._dpop: list[str] = []
        for k, v in scope.get("headers", ()):
            name = k.decode("latin-1").lower()
            value = v.decode("latin-1")
            if name == "cookie":
                self._cookies.append(value)
            elif name == "dpop":
                self._dpop.append(value)
            self._headers.setdefault(name, value)
        self._body: list[Message] | None = None

    def header(self, name: str) -> str | None:
        return self._headers.get(name)

    def cookie_headers(self) -> list[str]:
        return self._cookies

    def client_ip(self) -> str | None:
        c = self.scope.get("client")
        return c[0] if c else None

    def dpop_headers(self) -> list[str]:
        return self._dpop

    def url(self) -> str:
        sc = self.scope
        scheme = {"ws": "http", "wss": "https"}.get(sc.get("scheme", "http"), sc.get("scheme", "http"))
        host = self._headers.get("host")
        if not host:
            server = sc.get("server") or ("", None)
            host = server[0] + (f":{server[1]}" if server[1] and server[1] != (443 if scheme == "https" else 80)
                                else "")
        raw = sc.get("raw_path")
        path = raw.decode("latin-1").split("?", 1)[0] if raw else \
            quote((sc.get("root_path", "") + self.path).encode(), safe=_PATH_SAFE)
        return f"{scheme}://{host}{path or '/'}"

    async def form_token(self) -> str | None:
        ctype = self._headers.get("content-type", "")
        mt = ctype.split(";", 1)[0].strip().lower()
        if mt not in ("application/x-www-form-urlencoded", "multipart/form-data"):
            return None
        body = await self._read_body()
        if mt == "application/x-www-form-urlencoded":
            try:
                vals = parse_qs(body.decode("latin-1"), keep_blank_values=True).get("csrf_token")
            except ValueError:
                return None
            return vals[0] if vals else None
        msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + ctype.encode("latin-1") + b"\r\n\r\n" + body)
        if not msg.is_multipart():
            return None
        for part in msg.iter_parts():
            if part.get_param("name", header="content-disposition") == "csrf_token" and not part.get_filename():
                payload = part.get_payload(decode=True) or b""
                return payload.decode("utf-8", "replace")
        return None

    async def _read_body(self) -> bytes:
        msgs: list[Message] = []
        size = 0
        while True:
            m = await self._receive()
            msgs.append(m)
            if m["type"] != "http.request":
                break
            size += len(m.get("body", b""))
            if size > self._max_form:
                self._body = msgs
                raise _TooLarge()
            if not m.get("more_body", False):
                break
        self._body = msgs
        return b"".join(m.get("body", b"") for m in msgs if m["type"] == "http.request")

    async def receive(self) -> Message:
        """The app's receive: the buffered body first, if the middleware read it."""
        if self._body:
            return self._body.pop(0)
        return await self._receive()


class LatchMiddleware:
    """ASGI middleware putting latch on every HTTP request.

    Pass an :class:`AsyncClient` as ``client`` (default: one built from
    ``url``/``api_key`` or LATCH_URL/LATCH_API_KEY), a :class:`Config` as
    ``config`` or its fields as keywords (``cookie_name``, ``bearer``,
    ``trusted_origins``…), ``cache=False`` to validate every request online.
    """

    def __init__(self, app: Callable[..., Awaitable[None]], *, client: AsyncClient | None = None,
                 url: str | None = None, api_key: str | None = None, timeout: float = DEFAULT_TIMEOUT,
                 config: Config | None = None, cache: bool = True, max_form_size: int = DEFAULT_MAX_FORM_SIZE,
                 **config_kw: Any) -> None:
        self.app = app
        cfg = config or Config(**config_kw)
        client = client or AsyncClient(url, api_key, timeout=timeout)
        self.core = Core.build(cfg, client, cache=cache)
        self.max_form_size = max_form_size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        core = self.core
        req = _Request(scope, receive, self.max_form_size)
        st = AsyncRequestSession(core, req)
        scope.setdefault("state", {})["latch"] = st
        try:
            if not core.cached(st):
                await adrive(core, req, core.authenticate(st))
        except (CSRFRejected, UnavailableError) as e:
            await _respond(send, *error_response(e, st, core.config.bearer != "off"))
            return
        except _TooLarge:
            await _respond(send, 413, [("Content-Type", "text/plain; charset=utf-8")], b"Request Entity Too Large\n")
            return
        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = dict(message)
                message["headers"] = _merge(list(message.get("headers", [])), st.response_headers())
            await send(message)

        try:
            await self.app(scope, req.receive, send_wrapper)
        except UnavailableError as e:
            # A view's login/logout could not reach latch: 503, never a half-done session.
            if started:
                raise
            await _respond(send, *error_response(e, None, False))


    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        core = self.core
        req = _Request(scope, receive, 0)
        st = AsyncRequestSession(core, req)
        scope.setdefault("state", {})["latch"] = st
        try:
            await adrive(core, req, core.authenticate(st))
        except (CSRFRejected, UnavailableError) as e:
            await _refuse_websocket(scope, receive, send, e)
            return
        await self.app(scope, receive, send)


async def _refuse_websocket(scope: Scope, receive: Receive, send: Send, e: BaseException) -> None:
    """Close a handshake before accepting it: the server answers 403 (ASGI), or with the
    websocket.http.response extension 403 / 503 as for HTTP."""
    msg = await receive()
    if msg.get("type") != "websocket.connect":
        return  # the client is already gone
    if "websocket.http.response" in (scope.get("extensions") or {}):
        status, headers, body = error_response(e, None, False)
        h = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        await send({"type": "websocket.http.response.start", "status": status, "headers": h})
        await send({"type": "websocket.http.response.body", "body": body})
        return
    # 1008 policy violation (cross-origin); 1013 try again later (latch unavailable).
    await send({"type": "websocket.close", "code": 1008 if isinstance(e, CSRFRejected) else 1013})


def _merge(headers: list[tuple[bytes, bytes]], extra: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    out = headers
    for k, v in extra:
        kb = k.lower().encode("latin-1")
        if k == "Vary":
            out = [(n, val) for n, val in out if n != b"vary" or
                   not {"cookie", "authorization"} >= {x.strip().lower() for x in val.decode("latin-1").split(",")}]
        elif k != "Set-Cookie":
            drop = {kb} | ({b"expires", b"last-modified", b"etag"} if k == "Cache-Control" else set())
            out = [(n, val) for n, val in out if n not in drop]
        out.append((kb, v.encode("latin-1")))
    return out


async def _respond(send: Send, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
    h = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    h.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": h})
    await send({"type": "http.response.body", "body": body})


def session_of(request: Any) -> AsyncRequestSession:
    """The latch state of a Starlette request (``request.state.latch``)."""
    st = request.scope.get("state", {}).get("latch")
    if st is None:
        raise RuntimeError("latch_sessions.asgi: no latch state on this request; add LatchMiddleware to the app")
    return st


def unauthorized(st: AsyncRequestSession) -> tuple[int, list[tuple[str, str]], bytes]:
    return error_response(PermissionError(), None if not st.bearer_presented else st, st._cfg.bearer != "off")


def login_required(endpoint: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """For Starlette endpoints ``async def view(request)``: 401 without a valid session
    (or a redirect to ``login_url``)."""
    @functools.wraps(endpoint)
    async def wrapper(request: Any, *args: Any, **kwargs: Any) -> Any:
        from starlette.responses import RedirectResponse, Response
        st = session_of(request)
        if st.authenticated:
            return await endpoint(request, *args, **kwargs)
        if st._cfg.login_url and not st.bearer_presented:
            from urllib.parse import quote
            path = request.url.path + ("?" + request.url.query if request.url.query else "")
            return RedirectResponse(st._cfg.login_url + "?next=" + quote(path), 303)
        status, headers, body = unauthorized(st)
        return Response(body, status, headers={k: v for k, v in headers if k not in ("Vary", "Set-Cookie")})
    return wrapper


def require_recent_auth(max_age: int | None = None, acr: str | Sequence[str] = (), *,
                        reauth_url: str | None = None) -> Callable[[Callable[..., Awaitable[Any]]],
                                                                    Callable[..., Awaitable[Any]]]:
    """For Starlette endpoints of sensitive actions: as ``login_required``, and then only
    requests whose user authenticated within ``max_age`` seconds and/or with one of the
    ``acr`` values (RFC 9470), as latchhttp.RequireRecentAuth. See the Flask decorator of the
    same name for the answers; FastAPI apps use ``latch_sessions.fastapi.require_recent_auth``."""
    need = AuthRequirement(max_age, acr)

    def decorate(endpoint: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        @functools.wraps(endpoint)
        async def inner(request: Any, *args: Any, **kwargs: Any) -> Any:
            from starlette.responses import Response
            st = session_of(request)
            refusal = recent_auth_refusal(st, need, reauth_url or st._cfg.reauth_url, _full_path(request))
            if refusal is None:
                return await endpoint(request, *args, **kwargs)
            status, headers, body = refusal
            return Response(body, status, headers=dict(headers))
        return login_required(inner)
    return decorate


def _full_path(request: Any) -> str:
    return request.url.path + ("?" + request.url.query if request.url.query else "")


def websocket_login_required(endpoint: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """For Starlette WebSocket endpoints ``async def ws(websocket)``: a handshake without a
    valid session is closed with 1008 before it is accepted (the client sees 403)."""
    @functools.wraps(endpoint)
    async def wrapper(websocket: Any, *args: Any, **kwargs: Any) -> Any:
        if not session_of(websocket).authenticated:
            await websocket.close(code=1008)
            return None
        return await endpoint(websocket, *args, **kwargs)
    return wrapper

"""Client and AsyncClient: latch's HTTP API, one method per call."""

from __future__ import annotations

import json
import os
import ssl
import urllib.parse
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Generic, Mapping, Sequence, TypeVar

from ._errors import ConfigError, ProtocolError, problem_error
from ._http import AsyncTransport, Endpoint, Response, SyncTransport
from ._types import DPoPProof, Issued, Key, Refreshed, Rotated, Session, Verified, format_time, parse_time

__all__ = ["Client", "AsyncClient", "DEFAULT_TIMEOUT"]

#: Seconds a call may take (connect, and each read) before it fails with Timeout.
DEFAULT_TIMEOUT = 5.0

T = TypeVar("T")
_USER_AGENT = "latch-sessions-python/0.1"


@dataclass(slots=True)
class _Call(Generic[T]):
    """One HTTP call: what to send and how to read the answer."""

    method: str
    path: str
    parse: Callable[[Response, Any], T]
    body: Any = None
    back_channel: bool = True
    headers: Mapping[str, str] | None = None


def _sid(session_id: str) -> str:
    if not isinstance(session_id, str) or not session_id.startswith("ses_") or len(session_id) > 64 or \
            not all(c.isascii() and (c.isalnum() or c in "_-") for c in session_id):
        raise ValueError("latch: not a session ID (ses_…)")
    return session_id


def _subject(subject: str) -> str:
    if not isinstance(subject, str) or not 1 <= len(subject.encode()) <= 256:
        raise ValueError("latch: a subject is 1 to 256 bytes")
    return urllib.parse.quote(subject, safe="")


def _drop_none(**kw: Any) -> dict[str, Any]:
    return {k: v for k, v in kw.items() if v is not None}


def _amr(amr: Sequence[str] | None) -> list[str] | None:
    if amr is None:
        return None
    if isinstance(amr, str):
        raise ValueError("latch: amr is a list of method names, e.g. ['pwd', 'otp']")
    return list(amr)


def _acr_values(v: Sequence[str] | str | None) -> list[str] | None:
    if v is None:
        return None
    vals = [v] if isinstance(v, str) else list(v)
    if not vals:
        raise ValueError("latch: acr_values lists at least one value")
    return vals


def _max_age(cc: str) -> int | None:
    directives = [d.strip().lower() for d in cc.split(",")]
    if "no-store" in directives or "no-cache" in directives:
        return None
    for d in directives:
        if d.startswith("max-age="):
            try:
                n = int(d[8:])
            except ValueError:
                return None
            return n if n >= 0 else None
    return None


def _verified(r: Response, doc: Any) -> Verified:
    if not isinstance(doc, dict):
        raise ProtocolError("latch: verify answer is not a JSON object")
    tok = doc.get("csrf_token")
    return Verified(Session.from_json(doc.get("session")), tok if isinstance(tok, str) else None,
                    _max_age(r.headers.get("cache-control", "")), r.headers.get("dpop-nonce") or None)


def _session(r: Response, doc: Any) -> Session:
    return Session.from_json(doc.get("session") if isinstance(doc, dict) else None)


def _issued(r: Response, doc: Any) -> Issued:
    return Issued.from_json(doc, r.headers.get("dpop-nonce") or None)


def _nothing(r: Response, doc: Any) -> None:
    return None


def _sessions(r: Response, doc: Any) -> list[Session]:
    items = doc.get("sessions") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise ProtocolError("latch: list answer has no sessions array")
    return [Session.from_json(s) for s in items]


def _revoked(r: Response, doc: Any) -> int:
    n = doc.get("revoked") if isinstance(doc, dict) else None
    if not isinstance(n, int):
        raise ProtocolError("latch: revoke answer has no count")
    return n


def _rotated(r: Response, doc: Any) -> Rotated:
    if not isinstance(doc, dict) or not isinstance(doc.get("kid"), str):
        raise ProtocolError("latch: key answer has no kid")
    at = doc.get("activates_at")
    return Rotated(doc["kid"], parse_time(at) if isinstance(at, str) else None)


def _keys(r: Response, doc: Any) -> list[Key]:
    items = doc.get("keys") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise ProtocolError("latch: key list has no keys array")
    return [Key.from_json(k) for k in items]


def _json(r: Response, doc: Any) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise ProtocolError("latch: answer is not a JSON object")
    return doc


def _refreshed(r: Response, doc: Any) -> Refreshed:
    return Refreshed.from_json(doc, r.headers.get("dpop-nonce") or None)


class _Calls:
    """The calls of latch's API, shared by Client and AsyncClient."""

    def __init__(self, base_url: str | None, api_key: str | None, timeout: float,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        base_url = base_url or os.environ.get("LATCH_URL")
        if not base_url:
            raise ConfigError("latch: no base URL: pass base_url or set LATCH_URL (e.g. http://127.0.0.1:8080)")
        api_key = api_key if api_key is not None else os.environ.get("LATCH_API_KEY")
        if not api_key:
            raise ConfigError("latch: no API key: pass api_key or set LATCH_API_KEY to the key latch serve uses")
        if any(c in api_key for c in "\r\n\0 "):
            raise ConfigError("latch: the API key contains whitespace or control characters")
        if not (isinstance(timeout, (int, float)) and 0 < timeout <= 600):
            raise ConfigError("latch: timeout must be between 0 and 600 seconds")
        self._ep = Endpoint(base_url, ssl_context)
        self._auth = "Bearer " + api_key
        self.timeout = float(timeout)

    @property
    def base_url(self) -> str:
        return self._ep.url

    def __repr__(self) -> str:  # never the API key
        return f"{type(self).__name__}({self._ep.url!r})"

    def _prepare(self, call: _Call[Any]) -> tuple[dict[str, str], bytes | None]:
        h = {"Accept": "application/json", "User-Agent": _USER_AGENT}
        if call.back_channel:
            h["Authorization"] = self._auth
        body = None
        if call.body is not None:
            body = json.dumps(call.body, separators=(",", ":"), ensure_ascii=False).encode()
            h["Content-Type"] = "application/json"
        if call.headers:
            h.update(call.headers)
        return h, body

    @staticmethod
    def _finish(call: _Call[T], r: Response) -> T:
        ctype = r.headers.get("content-type", "")
        doc: Any = None
        if r.body and ("json" in ctype):
            try:
                doc = json.loads(r.body)
            except ValueError:
                if 200 <= r.status < 300:
                    raise ProtocolError("latch: answer is not valid JSON") from None
        if 200 <= r.status < 300:
            return call.parse(r, doc)
        retry = r.headers.get("retry-after", "")
        raise problem_error(r.status, doc, int(retry) if retry.isdigit() else None, r.headers)

    # The calls. Each returns a _Call; Client and AsyncClient send it.

    @staticmethod
    def _create(subject: str, data: Mapping[str, Any] | None, claims: Mapping[str, Any] | None, ip: str | None,
                user_agent: str | None, replace_session_token: str | None, acr: str | None,
                amr: Sequence[str] | None, auth_time: datetime | None = None, dpop: DPoPProof | None = None,
                dpop_jkt: str | None = None) -> _Call[Issued]:
        if dpop is not None and dpop_jkt:
            raise ValueError("latch: bind a session with dpop or with dpop_jkt, not both")
        return _Call("POST", "/v1/sessions", _issued, _drop_none(
            subject=subject, data=data, claims=claims, ip=ip, user_agent=user_agent,
            replace_session_token=replace_session_token or None, acr=acr,
            amr=_amr(amr), auth_time=format_time(auth_time) if auth_time else None,
            dpop=dpop.to_json() if dpop is not None else None, dpop_jkt=dpop_jkt or None))

    @staticmethod
    def _verify(kind: str, token: str, ip: str | None, user_agent: str | None, max_age: int | None = None,
                acr_values: Sequence[str] | str | None = None, dpop: DPoPProof | None = None) -> _Call[Verified]:
        if not isinstance(token, str) or not token:
            raise ValueError("latch: empty token")
        if max_age is not None and (not isinstance(max_age, int) or isinstance(max_age, bool) or max_age < 1):
            raise ValueError("latch: max_age is a whole number of seconds, at least 1")
        return _Call("POST", "/v1/sessions/verify", _verified, _drop_none(
            **{kind: token}, ip=ip, user_agent=user_agent, max_age=max_age, acr_values=_acr_values(acr_values),
            dpop=dpop.to_json() if dpop is not None else None))

    @staticmethod
    def _refresh(refresh_token: str, dpop: DPoPProof | None, dpop_proof: str | None) -> _Call[Refreshed]:
        if dpop is not None and dpop_proof:
            raise ValueError("latch: send a refresh's proof relayed (dpop) or as the DPoP header (dpop_proof), not both")
        body: dict[str, Any] = {"refresh_token": refresh_token}
        if dpop is not None:
            body["dpop"] = dpop.to_json()
        return _Call("POST", "/v1/refresh", _refreshed, body, headers={"DPoP": dpop_proof} if dpop_proof else None)

    @staticmethod
    def _public(method: str, path: str, parse: Callable[[Response, Any], T], access_token: str,
                dpop_proof: str | None) -> _Call[T]:
        for v in (access_token, dpop_proof or "x"):
            if not isinstance(v, str) or not v or any(c in v for c in "\r\n\0 ,"):
                raise ValueError("latch: not an access token or DPoP proof")
        h = {"Authorization": "Bearer " + access_token}
        if dpop_proof:
            h = {"Authorization": "DPoP " + access_token, "DPoP": dpop_proof}
        return _Call(method, path, parse, {} if method == "POST" else None, back_channel=False, headers=h)

    @staticmethod
    def _patch(session_id: str, data: Mapping[str, Any] | None, if_match: int | str | None) -> _Call[Session]:
        h = None
        if if_match is not None:
            h = {"If-Match": f'"{if_match}"' if isinstance(if_match, int) else str(if_match)}
        return _Call("PATCH", f"/v1/sessions/{_sid(session_id)}", _session, {"data": data}, headers=h)

    @staticmethod
    def _renew(session_id: str, claims: Mapping[str, Any] | None, auth_time: datetime | None,
               acr: str | None = None, amr: Sequence[str] | None = None) -> _Call[Issued]:
        body = _drop_none(claims=claims, auth_time=format_time(auth_time) if auth_time else None, acr=acr,
                          amr=_amr(amr))
        return _Call("POST", f"/v1/sessions/{_sid(session_id)}/renew", _issued, body)

    @staticmethod
    def _revoke_subject(subject: str, except_session: str | None) -> _Call[int]:
        q = "?except=" + _sid(except_session) if except_session else ""
        return _Call("DELETE", f"/v1/subjects/{_subject(subject)}/sessions{q}", _revoked)


class Client(_Calls):
    """A synchronous client for latch's HTTP API.

    ::

        latch = Client("http://127.0.0.1:8080", api_key)   # or Client() with LATCH_URL, LATCH_API_KEY
        issued = latch.create_session("alice")
        v = latch.verify_session(issued.session_token)

    It keeps a pool of keep-alive connections and is safe to share between
    threads; ``close()`` (or ``with``) closes them. Every call fails with a
    subclass of :class:`LatchError`: a :class:`ProblemError` carrying latch's
    ``code``, or an :class:`UnavailableError` when latch did not answer within
    ``timeout`` seconds. No exception or ``repr`` contains a token or the API key.
    Over https the certificate is verified, against the system's CAs or the
    ``ssl_context`` given (``ssl.create_default_context(cafile="ca.pem")``).
    """

    def __init__(self, base_url: str | None = None, api_key: str | None = None, *,
                 timeout: float = DEFAULT_TIMEOUT, ssl_context: ssl.SSLContext | None = None) -> None:
        super().__init__(base_url, api_key, timeout, ssl_context)
        self._t = SyncTransport(self._ep, self.timeout)

    def _send(self, call: _Call[T]) -> T:
        h, body = self._prepare(call)
        return self._finish(call, self._t.request(call.method, call.path, h, body))

    def close(self) -> None:
        self._t.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def create_session(self, subject: str, *, data: Mapping[str, Any] | None = None,
                       claims: Mapping[str, Any] | None = None, ip: str | None = None,
                       user_agent: str | None = None, replace_session_token: str | None = None,
                       acr: str | None = None, amr: Sequence[str] | None = None,
                       auth_time: datetime | None = None, dpop: DPoPProof | None = None,
                       dpop_jkt: str | None = None) -> Issued:
        """Create a session for a subject your code has authenticated (POST /v1/sessions).

        ``replace_session_token`` is the session token the client carried before
        login: latch revokes it (session fixation). ``acr``, ``amr`` and ``auth_time``
        record how and when the user signed in (RFC 9470; default now). ``dpop`` (a proof
        the client sent with its login request, relayed) or ``dpop_jkt`` (the RFC 7638
        thumbprint of a key whose proof you checked) bind the session to the client's key:
        ``token_type`` is then "DPoP" and refresh and access tokens need proofs by it."""
        return self._send(self._create(subject, data, claims, ip, user_agent, replace_session_token, acr, amr,
                                       auth_time, dpop, dpop_jkt))

    def verify_session(self, session_token: str, *, ip: str | None = None, user_agent: str | None = None,
                       max_age: int | None = None, acr_values: Sequence[str] | str | None = None) -> Verified:
        """Validate a session token and record activity (POST /v1/sessions/verify).

        Raises InvalidToken, Expired or Revoked (all InvalidCredential) for a token that does not work.
        With ``max_age`` (seconds since the user signed in) or ``acr_values`` a live session
        that does not meet them raises InsufficientUserAuthentication and is not touched."""
        return self._send(self._verify("session_token", session_token, ip, user_agent, max_age, acr_values))

    def verify_access_token(self, access_token: str, *, ip: str | None = None, user_agent: str | None = None,
                            max_age: int | None = None, acr_values: Sequence[str] | str | None = None,
                            dpop: DPoPProof | None = None) -> Verified:
        """Verify an access token and check its session is live (POST /v1/sessions/verify).

        A DPoP-bound token (``cnf.jkt``) needs ``dpop``: the proof its client sent with the
        request, relayed with that request's method and URL; without it, or with a proof
        that fails, InvalidDPoPProof (UseDPoPNonce when latch wants its nonce in the proof)."""
        return self._send(self._verify("access_token", access_token, ip, user_agent, max_age, acr_values, dpop))

    def get_session(self, session_id: str) -> Session:
        """Read a session by ID (GET /v1/sessions/{id}); NotFound if no live session has it."""
        return self._send(_Call("GET", f"/v1/sessions/{_sid(session_id)}", _session))

    def patch_session(self, session_id: str, data: Mapping[str, Any] | None, *,
                      if_match: int | str | None = None) -> Session:
        """Apply a JSON merge patch to the session's data (PATCH /v1/sessions/{id}).

        With ``if_match`` (a version, or an ETag) the patch applies only if the
        session is still at that version; Conflict (412) otherwise."""
        return self._send(self._patch(session_id, data, if_match))

    def renew_session(self, session_id: str, *, claims: Mapping[str, Any] | None = None,
                      auth_time: datetime | None = None, acr: str | None = None,
                      amr: Sequence[str] | None = None) -> Issued:
        """Give a session new tokens after a privilege change; every older token stops working.

        After the user authenticated again (step-up), pass ``auth_time`` (default now when
        ``acr`` or ``amr`` is given), ``acr`` and ``amr``: they replace the old three.
        A DPoP binding is kept."""
        return self._send(self._renew(session_id, claims, auth_time, acr, amr))

    def revoke_session(self, session_id: str) -> None:
        """Revoke a session (DELETE /v1/sessions/{id}); also succeeds when it is already gone."""
        self._send(_Call("DELETE", f"/v1/sessions/{_sid(session_id)}", _nothing))

    def list_sessions(self, subject: str) -> list[Session]:
        """A subject's live sessions, most recently seen first."""
        return self._send(_Call("GET", f"/v1/subjects/{_subject(subject)}/sessions", _sessions))

    def revoke_subject(self, subject: str, *, except_session: str | None = None) -> int:
        """Revoke every session of a subject but ``except_session``; returns how many were revoked."""
        return self._send(self._revoke_subject(subject, except_session))

    def refresh(self, refresh_token: str, *, dpop: DPoPProof | None = None, dpop_proof: str | None = None) -> Refreshed:
        """Rotate a refresh token (POST /v1/refresh), relayed for a user: the API key is sent
        along, so latch's per-address rate limit of public calls does not apply to your backend.

        A DPoP-bound session's refresh needs a proof by its key: ``dpop``, the proof your
        client sent to your refresh endpoint (relayed with that request's method and URL),
        or ``dpop_proof``, one the client made for POST and latch's own URL + /v1/refresh
        (sent as the DPoP header). Raises RefreshReuse when a rotated token is presented
        after the grace window: latch has then revoked the session."""
        return self._send(self._refresh(refresh_token, dpop, dpop_proof))

    def whoami(self, access_token: str, *, dpop_proof: str | None = None) -> Session:
        """The live session of a user's access token (public GET /v1/whoami, as the user:
        the API key is not sent). Raises InvalidCredential for a token that does not work.

        A DPoP-bound token needs ``dpop_proof``: a proof by its key for GET and latch's
        public URL + /v1/whoami, with ``ath`` (sent as ``Authorization: DPoP`` and ``DPoP``)."""
        return self._send(self._public("GET", "/v1/whoami", _session, access_token, dpop_proof))

    def logout(self, access_token: str, *, dpop_proof: str | None = None) -> None:
        """End the session of a user's access token (public POST /v1/logout, as the user):
        its refresh token, access tokens and cookie stop working. Also succeeds when the
        session is already gone. A bound token needs ``dpop_proof`` for POST and latch's
        public URL + /v1/logout."""
        self._send(self._public("POST", "/v1/logout", _nothing, access_token, dpop_proof))

    def list_keys(self) -> list[Key]:
        return self._send(_Call("GET", "/v1/keys", _keys))

    def rotate_keys(self) -> Rotated:
        """Start a new signing key; it is published in JWKS before it signs."""
        return self._send(_Call("POST", "/v1/keys/rotate", _rotated, {}))

    def revoke_key(self, kid: str) -> Rotated:
        """Revoke a compromised signing key at once; returns the new signing key."""
        return self._send(_Call("POST", f"/v1/keys/{urllib.parse.quote(kid, safe='')}/revoke", _rotated, {}))

    def jwks(self) -> dict[str, Any]:
        """The public keys (GET /.well-known/jwks.json)."""
        return self._send(_Call("GET", "/.well-known/jwks.json", _json, back_channel=False))

    def metadata(self) -> dict[str, Any]:
        """The issuer's metadata (GET /.well-known/oauth-authorization-server, RFC 8414)."""
        return self._send(_Call("GET", "/.well-known/oauth-authorization-server", _json, back_channel=False))

    def ready(self) -> bool:
        """Whether latch and its store answer (GET /readyz); False rather than an exception."""
        try:
            r = self._t.request("GET", "/readyz", {"User-Agent": _USER_AGENT}, None)
        except Exception:
            return False
        return r.status == 200


class AsyncClient(_Calls):
    """The asyncio twin of :class:`Client`: the same methods, awaited.

    It speaks HTTP/1.1 over asyncio streams (the standard library only) and
    keeps keep-alive connections per event loop; ``await aclose()`` (or
    ``async with``) closes them."""

    def __init__(self, base_url: str | None = None, api_key: str | None = None, *,
                 timeout: float = DEFAULT_TIMEOUT, ssl_context: ssl.SSLContext | None = None) -> None:
        super().__init__(base_url, api_key, timeout, ssl_context)
        self._t = AsyncTransport(self._ep, self.timeout)

    async def _send(self, call: _Call[T]) -> T:
        h, body = self._prepare(call)
        return self._finish(call, await self._t.request(call.method, call.path, h, body))

    async def aclose(self) -> None:
        await self._t.aclose()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def create_session(self, subject: str, *, data: Mapping[str, Any] | None = None,
                             claims: Mapping[str, Any] | None = None, ip: str | None = None,
                             user_agent: str | None = None, replace_session_token: str | None = None,
                             acr: str | None = None, amr: Sequence[str] | None = None,
                             auth_time: datetime | None = None, dpop: DPoPProof | None = None,
                             dpop_jkt: str | None = None) -> Issued:
        return await self._send(self._create(subject, data, claims, ip, user_agent, replace_session_token, acr,
                                             amr, auth_time, dpop, dpop_jkt))

    async def verify_session(self, session_token: str, *, ip: str | None = None, user_agent: str | None = None,
                             max_age: int | None = None,
                             acr_values: Sequence[str] | str | None = None) -> Verified:
        return await self._send(self._verify("session_token", session_token, ip, user_agent, max_age, acr_values))

    async def verify_access_token(self, access_token: str, *, ip: str | None = None,
                                  user_agent: str | None = None, max_age: int | None = None,
                                  acr_values: Sequence[str] | str | None = None,
                                  dpop: DPoPProof | None = None) -> Verified:
        return await self._send(self._verify("access_token", access_token, ip, user_agent, max_age, acr_values,
                                             dpop))

    async def get_session(self, session_id: str) -> Session:
        return await self._send(_Call("GET", f"/v1/sessions/{_sid(session_id)}", _session))

    async def patch_session(self, session_id: str, data: Mapping[str, Any] | None, *,
                            if_match: int | str | None = None) -> Session:
        return await self._send(self._patch(session_id, data, if_match))

    async def renew_session(self, session_id: str, *, claims: Mapping[str, Any] | None = None,
                            auth_time: datetime | None = None, acr: str | None = None,
                            amr: Sequence[str] | None = None) -> Issued:
        return await self._send(self._renew(session_id, claims, auth_time, acr, amr))

    async def revoke_session(self, session_id: str) -> None:
        await self._send(_Call("DELETE", f"/v1/sessions/{_sid(session_id)}", _nothing))

    async def list_sessions(self, subject: str) -> list[Session]:
        return await self._send(_Call("GET", f"/v1/subjects/{_subject(subject)}/sessions", _sessions))

    async def revoke_subject(self, subject: str, *, except_session: str | None = None) -> int:
        return await self._send(self._revoke_subject(subject, except_session))

    async def refresh(self, refresh_token: str, *, dpop: DPoPProof | None = None,
                      dpop_proof: str | None = None) -> Refreshed:
        return await self._send(self._refresh(refresh_token, dpop, dpop_proof))

    async def whoami(self, access_token: str, *, dpop_proof: str | None = None) -> Session:
        return await self._send(self._public("GET", "/v1/whoami", _session, access_token, dpop_proof))

    async def logout(self, access_token: str, *, dpop_proof: str | None = None) -> None:
        await self._send(self._public("POST", "/v1/logout", _nothing, access_token, dpop_proof))

    async def list_keys(self) -> list[Key]:
        return await self._send(_Call("GET", "/v1/keys", _keys))

    async def rotate_keys(self) -> Rotated:
        return await self._send(_Call("POST", "/v1/keys/rotate", _rotated, {}))

    async def revoke_key(self, kid: str) -> Rotated:
        return await self._send(_Call("POST", f"/v1/keys/{urllib.parse.quote(kid, safe='')}/revoke", _rotated, {}))

    async def jwks(self) -> dict[str, Any]:
        return await self._send(_Call("GET", "/.well-known/jwks.json", _json, back_channel=False))

    async def metadata(self) -> dict[str, Any]:
        return await self._send(_Call("GET", "/.well-known/oauth-authorization-server", _json, back_channel=False))

    async def ready(self) -> bool:
        try:
            r = await self._t.request("GET", "/readyz", {"User-Agent": _USER_AGENT}, None)
        except Exception:
            return False
        return r.status == 200

"""Offline verification of latch access tokens with PyJWT against latch's JWKS.

Strict to latch's token shape (RFC 9068): header ``typ`` must be ``at+jwt``;
the algorithm comes from the key (the JWK's ``alg``), never from the token;
an unknown ``kid`` is refused after one JWKS refetch; ``iss`` must be latch's
issuer (from ``/.well-known/oauth-authorization-server`` unless given) and
``aud`` the audience (default ``latch``); ``exp``, ``iat``, ``sub`` and
``sid`` are required, with 30 s of leeway; tokens over 8 KiB are refused.

With a :class:`~latch_sessions.cache.Cache` (the event stream) it also refuses
a token whose session was revoked, or renewed or subject-revoked at or after
its ``iat``, before ``exp`` — and asks latch online while the stream is not
live, or when the event and ``iat`` fall in the same second. Without one,
a revoked session's token works until it expires: keep ``--access-ttl`` short.

DPoP-bound tokens (``cnf.jkt``) are not accepted on their signature alone:
the adapters send them, with their proof, to latch (whose ``jti`` replay
cache every replica and worker shares).

:class:`OfflineVerifier` fetches the JWKS with blocking I/O (for WSGI apps);
:class:`AsyncOfflineVerifier` fetches it on the event loop and never blocks it.

Needs PyJWT with cryptography (Debian: python3-jwt python3-cryptography).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any, Generator

try:
    import jwt as _pyjwt
except ImportError as e:  # pragma: no cover - depends on the machine
    raise ImportError("latch_sessions.jwt needs PyJWT: apt-get install python3-jwt python3-cryptography "
                      "(or pip install 'latch-sessions[jwt]')") from e

from ._client import AsyncClient, Client
from ._errors import Expired, InvalidToken, ProtocolError
from ._http import AsyncTransport, Endpoint, Response, SyncTransport

__all__ = ["OfflineVerifier", "AsyncOfflineVerifier", "MAX_TOKEN_SIZE"]

MAX_TOKEN_SIZE = 8 << 10
_REFETCH_EVERY = 10.0  # seconds between JWKS fetches for an unknown kid
_METADATA = "/.well-known/oauth-authorization-server"
_JWKS = "/.well-known/jwks.json"

# verify() is written once, as a generator yielding "fetch the keys" requests
# (force: bool) that the sync and the async verifier answer their own way.
_Steps = Generator[bool, None, dict[str, Any]]


def _invalid(why: str) -> InvalidToken:
    return InvalidToken(401, "invalid_token", "Invalid token", "access token: " + why)


def _doc(path: str, r: Response) -> Any:
    if r.status != 200:
        raise ProtocolError(f"latch: GET {path} answered {r.status}")  # fail closed: an UnavailableError
    try:
        return json.loads(r.body)
    except ValueError:
        raise ProtocolError(f"latch: GET {path}: not JSON") from None


class _Verifier:
    def __init__(self, client: Client | AsyncClient, *, issuer: str | None = None, audience: str = "latch",
                 leeway: float = 30.0, cache: Any = None) -> None:
        self._ep: Endpoint = client._ep
        self._timeout = client.timeout
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway
        self._lock = threading.Lock()
        self._keys: dict[str, Any] = {}
        self._revoked: set[str] = set()
        self._fetched = 0.0
        self._state = None
        if cache is not None:
            self._state = cache.state
            cache.state.keys_changed = self._keys_changed

    def _due(self, force: bool) -> bool:
        """Whether to fetch now (at most every _REFETCH_EVERY seconds unless forced); claims the slot."""
        with self._lock:
            now = time.monotonic()
            if not force and self._keys and now - self._fetched < _REFETCH_EVERY:
                return False
            self._fetched = now
            return True

    def _install(self, jwks: Any) -> None:
        keys: dict[str, Any] = {}
        for jwk in (jwks.get("keys", []) if isinstance(jwks, dict) else []):
            kid, alg = jwk.get("kid"), jwk.get("alg")
            if not isinstance(kid, str) or not isinstance(alg, str) or alg.upper().startswith("HS") or alg == "none":
                continue
            try:
                keys[kid] = (_pyjwt.PyJWK(jwk, alg), alg)  # the algorithm is the key's, never the token's
            except _pyjwt.PyJWTError:
                continue
        with self._lock:
            self._keys = {k: v for k, v in keys.items() if k not in self._revoked}

    def _keys_changed(self, kid: str, reason: str) -> None:
        with self._lock:
            if reason == "revoked" and kid:
                self._revoked.add(kid)
                self._keys.pop(kid, None)
            self._fetched = 0.0  # refetch on next use

    def _steps(self, token: str) -> _Steps:
        if not isinstance(token, str) or len(token) > MAX_TOKEN_SIZE:
            raise _invalid("too large")
        try:
            header = _pyjwt.get_unverified_header(token)
        except _pyjwt.PyJWTError:
            raise _invalid("malformed") from None
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in ("at+jwt", "application/at+jwt"):
            raise _invalid("typ is not at+jwt")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise _invalid("no kid")
        if kid in self._revoked:
            raise _invalid("signed by a revoked key")
        if not self._keys or self._fetched == 0.0:
            yield not self._keys
        key = self._keys.get(kid)
        if key is None:
            yield False
            key = self._keys.get(kid)
            if key is None:
                raise _invalid("unknown kid")
        try:
            claims = _pyjwt.decode(token, key[0].key, algorithms=[key[1]], audience=self.audience,
                                   issuer=self.issuer, leeway=self.leeway,
                                   options={"require": ["exp", "iat", "sub", "iss", "aud"]})
        except _pyjwt.ExpiredSignatureError:
            raise Expired(401, "expired", "Expired", "access token expired") from None
        except _pyjwt.PyJWTError as e:
            raise _invalid(type(e).__name__) from None
        if not isinstance(claims.get("sid"), str):
            raise _invalid("no sid")
        return claims

    def _judge(self, claims: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        st = self._state
        if st is None:
            return claims, False
        if not st.live():
            return claims, True
        verdict = st.access_verdict(claims.get("sid"), claims.get("sub"), claims.get("iat"))
        if verdict == "revoked":
            raise InvalidToken(401, "invalid_token", "Invalid token", "access token: its session ended")
        return claims, verdict == "ask"


class OfflineVerifier(_Verifier):
    """Verifies access tokens locally, for sync apps. Safe for concurrent use.

    ``client`` gives latch's address (the JWKS and metadata are fetched with
    blocking I/O, briefly, at first use and on an unknown kid). ``cache`` (a
    Cache) adds revocation checking from the event stream."""

    def __init__(self, client: Client | AsyncClient, **kw: Any) -> None:
        super().__init__(client, **kw)
        self._t = SyncTransport(self._ep, self._timeout, max_idle=1)

    def _get(self, path: str) -> Any:
        return _doc(path, self._t.request("GET", path, {"Accept": "application/json"}, None))

    def _refresh(self, force: bool = False) -> None:
        if not self._due(force):
            return
        if self.issuer is None:
            self.issuer = self._get(_METADATA)["issuer"]
        self._install(self._get(_JWKS))

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims, or InvalidToken/Expired. Revocation is not checked; see check()."""
        steps = self._steps(token)
        try:
            force = next(steps)
            while True:
                self._refresh(force)
                force = steps.send(None)
        except StopIteration as stop:
            return stop.value

    def check(self, token: str) -> tuple[dict[str, Any], bool]:
        """Verify, then consult the event stream: returns the claims and whether latch must
        be asked online (the stream is not live, or the answer is ambiguous)."""
        return self._judge(self.verify(token))


class AsyncOfflineVerifier(_Verifier):
    """The asyncio twin of :class:`OfflineVerifier`: ``await verify()``, ``await check()``.

    The JWKS is fetched over asyncio streams, so the event loop keeps running
    other requests meanwhile; concurrent verifications share one fetch."""

    def __init__(self, client: Client | AsyncClient, **kw: Any) -> None:
        super().__init__(client, **kw)
        self._t = AsyncTransport(self._ep, self._timeout, max_idle=1)
        self._inflight: asyncio.Future[None] | None = None

    async def _get(self, path: str) -> Any:
        return _doc(path, await self._t.request("GET", path, {"Accept": "application/json"}, None))

    async def _fetch(self) -> None:
        if self.issuer is None:
            self.issuer = (await self._get(_METADATA))["issuer"]
        self._install(await self._get(_JWKS))

    async def _refresh(self, force: bool = False) -> None:
        loop = asyncio.get_running_loop()
        f = self._inflight
        if f is not None and not f.done() and f.get_loop() is loop:
            await asyncio.shield(f)  # one fetch for every verification waiting on it
            return
        if not self._due(force):
            return
        f = self._inflight = loop.create_task(self._fetch())
        await asyncio.shield(f)

    async def verify(self, token: str) -> dict[str, Any]:
        steps = self._steps(token)
        try:
            force = next(steps)
            while True:
                await self._refresh(force)
                force = steps.send(None)
        except StopIteration as stop:
            return stop.value

    async def check(self, token: str) -> tuple[dict[str, Any], bool]:
        return self._judge(await self.verify(token))

    async def aclose(self) -> None:
        await self._t.aclose()

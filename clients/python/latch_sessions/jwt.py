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

Needs PyJWT with cryptography (Debian: python3-jwt python3-cryptography).
"""

from __future__ import annotations

import threading
import time
from typing import Any

try:
    import jwt as _pyjwt
except ImportError as e:  # pragma: no cover - depends on the machine
    raise ImportError("latch_sessions.jwt needs PyJWT: apt-get install python3-jwt python3-cryptography "
                      "(or pip install 'latch-sessions[jwt]')") from e

from ._client import AsyncClient, Client
from ._errors import Expired, InvalidToken, ProtocolError
from ._http import Endpoint, SyncTransport

__all__ = ["OfflineVerifier", "MAX_TOKEN_SIZE"]

MAX_TOKEN_SIZE = 8 << 10
_REFETCH_EVERY = 10.0  # seconds between JWKS fetches for an unknown kid


def _invalid(why: str) -> InvalidToken:
    return InvalidToken(401, "invalid_token", "Invalid token", "access token: " + why)


class OfflineVerifier:
    """Verifies access tokens locally. Safe for concurrent use.

    ``client`` gives latch's address (a :class:`Client` or :class:`AsyncClient`;
    the JWKS and metadata are fetched synchronously, briefly, at first use and
    on an unknown kid). ``cache`` (a Cache or AsyncCache) adds revocation
    checking from the event stream."""

    def __init__(self, client: Client | AsyncClient, *, issuer: str | None = None, audience: str = "latch",
                 leeway: float = 30.0, cache: Any = None) -> None:
        self._ep: Endpoint = client._ep
        self._t = SyncTransport(self._ep, client.timeout, max_idle=1)
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

    def _get(self, path: str) -> Any:
        import json
        r = self._t.request("GET", path, {"Accept": "application/json"}, None)
        if r.status != 200:
            raise ProtocolError(f"latch: GET {path} answered {r.status}")  # fail closed: an UnavailableError
        try:
            return json.loads(r.body)
        except ValueError:
            raise ProtocolError(f"latch: GET {path}: not JSON") from None

    def _refresh(self, force: bool = False) -> None:
        with self._lock:
            now = time.monotonic()
            if not force and self._keys and now - self._fetched < _REFETCH_EVERY:
                return
            self._fetched = now
        if self.issuer is None:
            self.issuer = self._get("/.well-known/oauth-authorization-server")["issuer"]
        keys: dict[str, Any] = {}
        for jwk in self._get("/.well-known/jwks.json").get("keys", []):
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

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims, or InvalidToken/Expired. Revocation is not checked; see check()."""
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
            self._refresh(force=not self._keys)
        key = self._keys.get(kid)
        if key is None:
            self._refresh()
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

    def check(self, token: str) -> tuple[dict[str, Any], bool]:
        """Verify, then consult the event stream: returns the claims and whether latch must
        be asked online (the stream is not live, or the answer is ambiguous)."""
        claims = self.verify(token)
        st = self._state
        if st is None:
            return claims, False
        if not st.live():
            return claims, True
        verdict = st.access_verdict(claims.get("sid"), claims.get("sub"), claims.get("iat"))
        if verdict == "revoked":
            raise InvalidToken(401, "invalid_token", "Invalid token", "access token: its session ended")
        return claims, verdict == "ask"

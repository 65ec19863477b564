"""The values latch answers with: sessions, issued tokens, keys."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

from ._errors import ProtocolError

__all__ = ["Session", "Issued", "Refreshed", "Verified", "Key", "Rotated", "DPoPProof", "parse_time", "format_time"]

# RFC 3339 as latch writes it (Go's time.RFC3339Nano): any number of
# fractional digits, "Z" or a numeric offset. datetime.fromisoformat accepts
# more than RFC 3339 on 3.11+ and less before, so latch's form is parsed here.
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))"
)


_parsed: dict[str, datetime] = {}  # latch repeats a session's timestamps in every answer


def parse_time(s: str) -> datetime:
    """Parse an RFC 3339 timestamp into an aware datetime (microsecond precision, in UTC)."""
    t = _parsed.get(s) if isinstance(s, str) else None
    if t is not None:
        return t
    t = _parse_time(s)
    if len(_parsed) >= 4096:
        _parsed.clear()
    _parsed[s] = t
    return t


def _parse_time(s: str) -> datetime:
    m = _RFC3339.fullmatch(s) if isinstance(s, str) else None
    if m is None:
        raise ProtocolError("latch: not an RFC 3339 timestamp")
    y, mo, d, h, mi, sec = (int(m.group(i)) for i in range(1, 7))
    frac = m.group(7) or ""
    micro = int((frac + "000000")[:6])
    if m.group(8):
        tz = timezone.utc
    else:
        off = timedelta(hours=int(m.group(10)), minutes=int(m.group(11)))
        tz = timezone(off if m.group(9) == "+" else -off)
    leap = sec == 60  # RFC 3339 allows a leap second; Python does not
    try:
        t = datetime(y, mo, d, h, mi, 59 if leap else sec, micro, tzinfo=tz)
    except ValueError:
        raise ProtocolError("latch: not an RFC 3339 timestamp") from None
    if leap:
        t += timedelta(seconds=1)
    return t.astimezone(timezone.utc)


def format_time(t: datetime) -> str:
    """Format an aware datetime as RFC 3339 UTC for latch."""
    if t.tzinfo is None:
        raise ValueError("latch: naive datetime; use an aware one (e.g. datetime.now(timezone.utc))")
    return t.astimezone(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _opt_time(v: Any) -> datetime | None:
    return None if v is None else parse_time(v)


def _obj(d: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(d, dict):
        raise ProtocolError(f"latch: {what} is not a JSON object")
    return d


@dataclass(frozen=True, slots=True)
class Session:
    """A session as latch shows it. It holds no secret: safe to log, render and cache.

    Times are aware UTC datetimes. ``version`` increases on every write and is
    the session's ETag (``etag`` gives the header form for If-Match).
    """

    id: str
    subject: str
    created_at: datetime
    auth_time: datetime
    last_seen_at: datetime
    idle_expires_at: datetime
    expires_at: datetime
    ip: str = ""
    user_agent: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)
    claims: Mapping[str, Any] = field(default_factory=dict)
    version: int = 0
    acr: str | None = None
    amr: tuple[str, ...] | None = None

    @property
    def etag(self) -> str:
        return f'"{self.version}"'

    def deadline(self) -> datetime:
        """The earlier of the idle and the absolute deadline."""
        return min(self.idle_expires_at, self.expires_at)

    @classmethod
    def from_json(cls, d: Any) -> "Session":
        d = _obj(d, "session")
        try:
            amr = d.get("amr")
            return cls(
                id=str(d["id"]),
                subject=str(d["subject"]),
                created_at=parse_time(d["created_at"]),
                auth_time=parse_time(d.get("auth_time") or d["created_at"]),
                last_seen_at=parse_time(d.get("last_seen_at") or d["created_at"]),
                idle_expires_at=parse_time(d["idle_expires_at"]),
                expires_at=parse_time(d["expires_at"]),
                ip=str(d.get("ip") or ""),
                user_agent=str(d.get("user_agent") or ""),
                data=dict(d.get("data") or {}),
                claims=dict(d.get("claims") or {}),
                version=int(d.get("version") or 0),
                acr=d.get("acr") if isinstance(d.get("acr"), str) else None,
                amr=tuple(str(x) for x in amr) if isinstance(amr, list) else None,
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ProtocolError(f"latch: malformed session ({type(e).__name__})") from None


@dataclass(frozen=True, slots=True)
class Issued:
    """The answer to create and renew: the session and its tokens.

    The tokens are secrets: they are left out of ``repr`` so that logging an
    Issued never leaks them. ``session_token`` goes into the cookie,
    ``refresh_token`` and ``access_token`` to API clients.
    """

    session: Session
    session_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    access_token: str = field(repr=False)
    token_type: str = "Bearer"
    expires_in: int = 0
    csrf_token: str | None = field(default=None, repr=False)
    #: latch's DPoP-Nonce for the client's next proof (a create that relayed one, nonces on).
    dpop_nonce: str | None = None

    @classmethod
    def from_json(cls, d: Any, dpop_nonce: str | None = None) -> "Issued":
        d = _obj(d, "answer")
        try:
            return cls(
                session=Session.from_json(d["session"]),
                session_token=str(d["session_token"]),
                refresh_token=str(d.get("refresh_token") or ""),
                access_token=str(d.get("access_token") or ""),
                token_type=str(d.get("token_type") or "Bearer"),
                expires_in=int(d.get("expires_in") or 0),
                csrf_token=d.get("csrf_token") if isinstance(d.get("csrf_token"), str) else None,
                dpop_nonce=dpop_nonce,
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ProtocolError(f"latch: malformed answer ({type(e).__name__})") from None


@dataclass(frozen=True, slots=True)
class Refreshed:
    """The answer to refresh: a new access token and the successor refresh token (left out of repr)."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    token_type: str = "Bearer"
    expires_in: int = 0
    #: latch's DPoP-Nonce for the client's next proof (a refresh with a proof, nonces on).
    dpop_nonce: str | None = None

    @classmethod
    def from_json(cls, d: Any, dpop_nonce: str | None = None) -> "Refreshed":
        d = _obj(d, "answer")
        try:
            return cls(str(d["access_token"]), str(d["refresh_token"]), str(d.get("token_type") or "Bearer"),
                       int(d.get("expires_in") or 0), dpop_nonce)
        except (KeyError, TypeError, ValueError) as e:
            raise ProtocolError(f"latch: malformed answer ({type(e).__name__})") from None


@dataclass(frozen=True, slots=True)
class Verified:
    """The answer to verify: the live session, and for a session token its CSRF token.

    ``csrf_token`` is a masking of the session's CSRF key (docs/protocol.md
    §2); ``max_age`` is the ``Cache-Control: private, max-age`` latch allows
    a cache to keep the answer, or None.
    """

    session: Session
    csrf_token: str | None = field(default=None, repr=False)
    max_age: int | None = None
    #: A DPoP-Nonce latch sent with the answer (RFC 9449 §8.2), for the client's next proof.
    dpop_nonce: str | None = None


@dataclass(frozen=True, slots=True)
class Key:
    """A signing key's public description (no key material)."""

    kid: str
    alg: str
    state: str
    created_at: datetime
    activates_at: datetime
    retires_at: datetime | None = None
    removes_at: datetime | None = None

    @classmethod
    def from_json(cls, d: Any) -> "Key":
        d = _obj(d, "key")
        try:
            return cls(str(d["kid"]), str(d["alg"]), str(d["state"]), parse_time(d["created_at"]),
                       parse_time(d["activates_at"]), _opt_time(d.get("retires_at")),
                       _opt_time(d.get("removes_at")))
        except (KeyError, TypeError, ValueError) as e:
            raise ProtocolError(f"latch: malformed key ({type(e).__name__})") from None


@dataclass(frozen=True, slots=True)
class Rotated:
    """The answer to key rotation and key revocation: the new signing key's kid."""

    kid: str
    activates_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class DPoPProof:
    """A DPoP proof (RFC 9449) your backend received from its client, relayed to latch
    with the method and absolute URL of the request it came with: latch checks the
    signature, ``htm``/``htu`` against these, ``iat``, the ``jti`` (once, across every
    replica) and, with an access token, ``ath``. The proof is left out of ``repr``."""

    proof: str = field(repr=False)
    htm: str
    htu: str

    def to_json(self) -> dict[str, str]:
        if not (isinstance(self.proof, str) and self.proof and isinstance(self.htm, str) and self.htm
                and isinstance(self.htu, str) and self.htu):
            raise ValueError("latch: a relayed DPoP proof needs proof, htm and htu")
        return {"proof": self.proof, "htm": self.htm, "htu": self.htu}

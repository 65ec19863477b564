"""CSRF tokens as docs/protocol.md §2 specifies them, byte for byte like latchhttp.

A token is ``base64url(m ‖ (m ⊕ k))`` without padding (86 characters): ``m``
is 32 fresh random bytes per rendering, so no two tokens are alike and
compression side channels (BREACH) cannot recover ``k``; a token is valid when
unmasking it gives ``k``, compared in constant time.

``k`` is the session's CSRF key (latch derives it; verify answers a masking of
it) or, for a visitor without a session, ``HMAC-SHA256(s, "latch anon csrf v1")``
where ``s`` is the 32 random bytes of the anonymous CSRF cookie. Most users
never call this module: the adapters render and check tokens.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re

__all__ = ["KEY_LEN", "TOKEN_LEN", "mask", "unmask", "check", "anon_key", "new_anon_secret", "parse_anon_secret"]

KEY_LEN = 32
TOKEN_LEN = 86
_ANON_LEN = 43
_B64 = re.compile(r"[A-Za-z0-9_-]*")


def _b64encode(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode("ascii")


def _b64decode_strict(s: str, n: int, length: int) -> bytes | None:
    """Decode canonical unpadded base64url of exactly n bytes; None for anything else."""
    if not isinstance(s, str) or len(s) != length or not _B64.fullmatch(s):
        return None
    b = base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
    # Non-canonical encodings (stray low bits in the last character) are refused, as Go's Strict() does.
    if len(b) != n or _b64encode(b) != s:
        return None
    return b


def mask(k: bytes) -> str:
    """A fresh masking of the key k: a valid CSRF token, different on every call."""
    if len(k) != KEY_LEN:
        raise ValueError("latch: a CSRF key is 32 bytes")
    m = os.urandom(KEY_LEN)
    return _b64encode(m + bytes(a ^ b for a, b in zip(m, k)))


def unmask(token: str) -> bytes | None:
    """The key a token masks, or None if it is not a well-formed token."""
    b = _b64decode_strict(token, 2 * KEY_LEN, TOKEN_LEN)
    if b is None:
        return None
    return bytes(a ^ c for a, c in zip(b[:KEY_LEN], b[KEY_LEN:]))


def check(token: str | None, k: bytes | None) -> bool:
    """Whether token is a masking of k; constant time in the key."""
    if not token or k is None:
        return False
    got = unmask(token)
    return got is not None and hmac.compare_digest(got, k)


def anon_key(secret: bytes) -> bytes:
    """The CSRF key of an anonymous visitor whose cookie holds secret."""
    return hmac.new(secret, b"latch anon csrf v1", hashlib.sha256).digest()


def new_anon_secret() -> tuple[bytes, str]:
    """A fresh anonymous secret and its cookie value."""
    s = os.urandom(32)
    return s, _b64encode(s)


def parse_anon_secret(cookie: str | None) -> bytes | None:
    """The secret of an anonymous CSRF cookie value, or None if it is not 32 bytes of canonical base64url."""
    if cookie is None:
        return None
    return _b64decode_strict(cookie, 32, _ANON_LEN)

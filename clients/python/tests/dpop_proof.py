"""A DPoP client for the tests (RFC 9449 §4.2): a key pair and proofs made with
python3-cryptography, independent of latch's own Go implementation. Test-only:
the package's core stays standard library."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from typing import Any

from . import support


def b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def need_cryptography():
    return support.need("cryptography", "python3-cryptography")


class Key:
    """A DPoP key: ``alg`` "ES256" (P-256) or "EdDSA" (Ed25519)."""

    def __init__(self, alg: str = "ES256") -> None:
        need_cryptography()
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519
        self.alg = alg
        if alg == "ES256":
            self._priv = ec.generate_private_key(ec.SECP256R1())
            n = self._priv.public_key().public_numbers()
            self.jwk = {"kty": "EC", "crv": "P-256", "x": b64(n.x.to_bytes(32, "big")),
                        "y": b64(n.y.to_bytes(32, "big"))}
            self._private_d = b64(self._priv.private_numbers().private_value.to_bytes(32, "big"))
        elif alg == "EdDSA":
            from cryptography.hazmat.primitives import serialization
            self._priv = ed25519.Ed25519PrivateKey.generate()
            raw = self._priv.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            self.jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64(raw)}
            self._private_d = b64(self._priv.private_bytes(serialization.Encoding.Raw,
                                                           serialization.PrivateFormat.Raw,
                                                           serialization.NoEncryption()))
        else:
            raise ValueError(alg)

    @property
    def jkt(self) -> str:
        """The RFC 7638 SHA-256 thumbprint."""
        members = ("crv", "kty", "x", "y") if self.jwk["kty"] == "EC" else ("crv", "kty", "x")
        canon = json.dumps({k: self.jwk[k] for k in members}, separators=(",", ":"), sort_keys=True)
        return b64(hashlib.sha256(canon.encode()).digest())

    def sign(self, data: bytes) -> bytes:
        if self.alg == "ES256":
            from cryptography.hazmat.primitives import hashes
            from cryptography.hazmat.primitives.asymmetric import ec
            from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
            r, s = decode_dss_signature(self._priv.sign(data, ec.ECDSA(hashes.SHA256())))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return self._priv.sign(data)

    def proof(self, htm: str, htu: str, *, access_token: str | None = None, nonce: str | None = None,
              iat: float | None = None, jti: str | None = None, header: dict[str, Any] | None = None,
              claims: dict[str, Any] | None = None, ath: str | None = None, with_private: bool = False) -> str:
        """A proof for one request; the keyword arguments make the broken ones of the attack table."""
        h: dict[str, Any] = {"typ": "dpop+jwt", "alg": self.alg, "jwk": dict(self.jwk)}
        if with_private:
            h["jwk"]["d"] = self._private_d
        h.update(header or {})
        c: dict[str, Any] = {"jti": jti or secrets.token_urlsafe(16), "htm": htm, "htu": htu,
                             "iat": int(time.time() if iat is None else iat)}
        if access_token is not None:
            c["ath"] = b64(hashlib.sha256(access_token.encode()).digest())
        if ath is not None:
            c["ath"] = ath
        if nonce is not None:
            c["nonce"] = nonce
        c.update(claims or {})
        signing = (b64(json.dumps(h, separators=(",", ":")).encode()) + "." +
                   b64(json.dumps(c, separators=(",", ":")).encode()))
        return signing + "." + b64(self.sign(signing.encode()))

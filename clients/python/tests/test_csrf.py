"""CSRF token format (docs/protocol.md §2), checked against vectors and hostile input."""

import base64
import hashlib
import hmac
import unittest

from latch_sessions import csrf


class CSRFTokenTest(unittest.TestCase):
    def test_mask_unmask(self) -> None:
        k = bytes(range(32))
        a, b = csrf.mask(k), csrf.mask(k)
        self.assertNotEqual(a, b)
        self.assertEqual(len(a), 86)
        self.assertEqual(csrf.unmask(a), k)
        self.assertTrue(csrf.check(a, k))
        self.assertFalse(csrf.check(a, bytes(32)))

    def test_known_vector(self) -> None:
        m, k = bytes([0xAA] * 32), bytes(range(32))
        tok = base64.urlsafe_b64encode(m + bytes(x ^ y for x, y in zip(m, k))).rstrip(b"=").decode()
        self.assertTrue(csrf.check(tok, k))

    def test_hostile_tokens(self) -> None:
        k = bytes(range(32))
        good = csrf.mask(k)
        bad = ["", "x", good[:-1], good + "A", good[:-1] + "=", good.replace(good[10], "+", 1) if good[10] != "+" else good[:10] + "/" + good[11:],
               " " + good[1:], good[:40] + "\n" + good[41:], "Ａ" * 86, None]
        # A non-canonical last character (low bits set) is refused like Go's Strict decoding.
        last = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        i = last.index(good[-1])
        bad.append(good[:-1] + last[i | 1] if i | 1 != i else good[:-1] + last[i & ~1 | 2])
        for tok in bad:
            with self.subTest(tok=tok):
                self.assertFalse(csrf.check(tok, k))
        self.assertFalse(csrf.check(good, None))

    def test_anonymous_key(self) -> None:
        s, cookie = csrf.new_anon_secret()
        self.assertEqual(len(cookie), 43)
        self.assertEqual(csrf.parse_anon_secret(cookie), s)
        self.assertEqual(csrf.anon_key(s), hmac.new(s, b"latch anon csrf v1", hashlib.sha256).digest())
        for v in ["", cookie[:-1], cookie + "A", "=" * 43, None, cookie[:-1] + "!"]:
            self.assertIsNone(csrf.parse_anon_secret(v))
        other, _ = csrf.new_anon_secret()
        self.assertFalse(csrf.check(csrf.mask(csrf.anon_key(other)), csrf.anon_key(s)))


class ReadCookieTest(unittest.TestCase):
    """The session cookie is read as latchhttp's readCookie reads it: the first pair whose name is exactly it."""

    def test_cases(self) -> None:
        from latch_sessions._web import read_cookie
        cases = [
            (["a=1; __Host-latch=tok; b=2"], "tok"), (["__Host-latch=tok"], "tok"),
            (["x__Host-latch=no; __Host-latch=yes"], "yes"), (["a=__Host-latch=evil"], None),
            (['__Host-latch="q"'], "q"), (["__Host-latch=first; __Host-latch=second"], "first"),
            (["a=1", "__Host-latch=v2 "], "v2"), (["__Host-latch="], ""), ([" ;  __Host-latch=v"], "v"),
            (["__Host-latch =v"], None), (["__Host-latch-csrf=c; __Host-latch=t"], "t"), ([], None),
            (["__Host-latchy=1"], None), (["a=b;__Host-latch=c;d"], "c"),
        ]
        for headers, want in cases:
            with self.subTest(headers=headers):
                self.assertEqual(read_cookie(headers, "__Host-latch"), want)


if __name__ == "__main__":
    unittest.main()

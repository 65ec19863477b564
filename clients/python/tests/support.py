"""Helpers the tests share: the latch serve under test, extra servers the
tests may stop, token bookkeeping for the leak checks, and skips that become
failures under LATCH_REQUIRE_INTEGRATION=1."""

from __future__ import annotations

import importlib
import logging
import os
import secrets
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.request

REQUIRE = os.environ.get("LATCH_REQUIRE_INTEGRATION") == "1"
URL = os.environ.get("LATCH_URL", "")
API_KEY = os.environ.get("LATCH_API_KEY", "")
BIN = os.environ.get("LATCH_BIN", "")
_TOKENS_FILE = os.environ.get("LATCH_TEST_TOKENS", "")
_seen: list[str] = []
_lock = threading.Lock()


def skip_or_fail(why: str) -> None:
    if REQUIRE:
        raise RuntimeError(why + " (LATCH_REQUIRE_INTEGRATION=1)")
    raise unittest.SkipTest(why)


def need_latch() -> None:
    if not URL or not API_KEY:
        skip_or_fail("LATCH_URL and LATCH_API_KEY are not set: run through `go test ./clients/python`")


def need(module: str, package: str):
    """Import module, or skip (fail under LATCH_REQUIRE_INTEGRATION=1) naming the Debian package."""
    try:
        return importlib.import_module(module)
    except ImportError:
        skip_or_fail(f"{module} is not installed (apt-get install {package})")


def remember(*tokens: str | None) -> None:
    """Record tokens so the Go wrapper can check latch's output never held them."""
    with _lock:
        for t in tokens:
            if t:
                _seen.append(t)
                if _TOKENS_FILE:
                    with open(_TOKENS_FILE, "a") as f:
                        f.write(t + "\n")


def seen() -> list[str]:
    with _lock:
        return list(_seen)


class LogCapture(logging.Handler):
    """Captures every log record (any logger, any level) while installed."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record) + " " + repr(record.__dict__))

    def __enter__(self) -> "LogCapture":
        root = logging.getLogger()
        self._level = root.level
        root.setLevel(logging.DEBUG)
        root.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        root = logging.getLogger()
        root.removeHandler(self)
        root.setLevel(self._level)


def assert_no_token(tc: unittest.TestCase, text: str, tokens: list[str] | None = None) -> None:
    for t in tokens if tokens is not None else seen():
        if t and t in text:
            tc.fail("a token appears in: " + text.replace(t, "[the token]")[:300])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A latch serve of the test's own (memory store), which the test may stop."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, scheme: str = "http") -> None:
        if not BIN:
            skip_or_fail("LATCH_BIN is not set: run through `go test ./clients/python`")
        self.api_key = secrets.token_urlsafe(32)
        self.addr = f"127.0.0.1:{free_port()}"
        self.url = f"{scheme}://{self.addr}"
        self.dir = tempfile.TemporaryDirectory()
        self.log = open(os.path.join(self.dir.name, "out.log"), "w+")
        env = dict(os.environ, LATCH_API_KEY=self.api_key, **(env or {}))
        self.proc = subprocess.Popen([BIN, "serve", "--addr", self.addr, "--store", "memory:", *args],
                                     cwd=self.dir.name, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                # Readiness only (the tests verify certificates themselves).
                ctx = ssl._create_unverified_context() if scheme == "https" else None
                with urllib.request.urlopen(self.url + "/readyz", timeout=1, context=ctx) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        out = self.output()
        self.close()
        raise RuntimeError("latch serve did not become ready:\n" + out[-2000:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def output(self) -> str:
        self.log.flush()
        with open(self.log.name) as f:
            return f.read()

    def close(self) -> None:
        self.stop()
        self.log.close()
        self.dir.cleanup()


class Silent:
    """A TCP listener that accepts connections and never answers: a stalled latch."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = "http://127.0.0.1:%d" % self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self._t = threading.Thread(target=self._accept, daemon=True)
        self._t.start()

    def _accept(self) -> None:
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)

    def close(self) -> None:
        self.sock.close()
        for c in self.conns:
            c.close()

"""Minimal HTTP/1.1 transports with connection reuse: sockets for sync code,
asyncio streams for async code. Both speak only to latch: JSON bodies,
small answers, keep-alive. Neither logs anything, and no error they raise
quotes a header or a body (where tokens travel)."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import urllib.parse
from dataclasses import dataclass
from typing import Any, Generator, Mapping

from ._errors import ConfigError, ConnectError, ProtocolError, Timeout

MAX_BODY = 16 << 20  # latch's answers are small; refuse a runaway body
_MAX_HEADERS = 100


@dataclass(slots=True)
class Response:
    status: int
    headers: dict[str, str]  # lower-case names; a repeated header keeps the last value
    body: bytes


class Endpoint:
    """Where latch is: scheme, host, port and path prefix of its base URL."""

    def __init__(self, base_url: str, ssl_context: ssl.SSLContext | None = None) -> None:
        u = urllib.parse.urlsplit(base_url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ConfigError("latch: the base URL must be http:// or https:// with a host, e.g. http://127.0.0.1:8080")
        if u.username or u.password or u.query or u.fragment:
            raise ConfigError("latch: the base URL must not carry credentials, a query or a fragment")
        self.https = u.scheme == "https"
        self.host = u.hostname
        try:
            self.port = u.port or (443 if self.https else 80)
        except ValueError:
            raise ConfigError("latch: the base URL has an invalid port") from None
        self.prefix = u.path.rstrip("/")
        self.netloc = u.netloc
        self.url = f"{u.scheme}://{u.netloc}{self.prefix}"
        # Certificates are always verified: the default context, or the caller's (a private CA).
        self.ssl = (ssl_context or ssl.create_default_context()) if self.https else None
        if self.ssl is not None and (self.ssl.verify_mode != ssl.CERT_REQUIRED or not self.ssl.check_hostname):
            raise ConfigError("latch: ssl_context must verify certificates and host names "
                              "(load your CA with ssl.create_default_context(cafile=...) instead)")


class _SyncConn:
    """One keep-alive connection: a socket and a buffered reader on it."""

    __slots__ = ("sock", "rfile")

    def __init__(self, ep: Endpoint, timeout: float) -> None:
        sock = socket.create_connection((ep.host, ep.port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if ep.ssl is not None:
            sock = ep.ssl.wrap_socket(sock, server_hostname=ep.host)
        self.sock = sock
        self.rfile = sock.makefile("rb", buffering=65536)

    def close(self) -> None:
        for c in (self.rfile, self.sock):
            try:
                c.close()
            except OSError:
                pass


# The response parser is written once, as generators that yield what they
# need to read — ("head", limit) for a status line and headers up to the blank
# line, ("line", limit), ("exact", n) or ("rest", n) — and receive the bytes;
# read_sync and read_async feed them from a socket file or an asyncio stream.
Read = Generator[tuple[str, int], bytes, Any]
_MAX_HEAD = 65536


def parse_head() -> Read:
    """A status line and headers, skipping 1xx answers: (status, HTTP/1.1?, headers)."""
    while True:
        head = yield ("head", _MAX_HEAD)
        if not head:
            raise _Disconnected()
        lines = head.decode("latin-1").split("\n")
        parts = lines[0].split(None, 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise ProtocolError("latch: malformed HTTP status line")
        status = int(parts[1])
        headers: dict[str, str] = {}
        for h in lines[1:]:
            if h in ("\r", ""):
                break
            name, sep, value = h.partition(":")
            if not sep:
                raise ProtocolError("latch: malformed HTTP header")
            headers[name.strip().lower()] = value.strip()
        if 100 <= status < 200 and status != 101:
            continue
        return status, parts[0] == "HTTP/1.1", headers


def parse_chunk() -> Read:
    """One chunk of a chunked body; b"" at the end (trailers consumed)."""
    line = yield ("line", 1024)
    try:
        n = int(line.split(b";", 1)[0].strip(), 16)
    except ValueError:
        raise ProtocolError("latch: malformed chunked body") from None
    if n == 0:
        while (yield ("line", 65537)) not in (b"\r\n", b"\n", b""):
            pass
        return b""
    if n > MAX_BODY:
        raise ProtocolError("latch: answer too large")
    data = yield ("exact", n)
    yield ("exact", 2)
    return data


def parse_response(method: str) -> Read:
    """A whole answer: (Response, keep-alive?)."""
    status, http11, headers = yield from parse_head()
    keep = http11 and "close" not in headers.get("connection", "").lower()
    if method == "HEAD" or status in (204, 304):
        body = b""
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        chunks, size = [], 0
        while chunk := (yield from parse_chunk()):
            size += len(chunk)
            if size > MAX_BODY:
                raise ProtocolError("latch: answer too large")
            chunks.append(chunk)
        body = b"".join(chunks)
    elif "content-length" in headers:
        try:
            n = int(headers["content-length"])
        except ValueError:
            raise ProtocolError("latch: malformed Content-Length") from None
        if n < 0 or n > MAX_BODY:
            raise ProtocolError("latch: answer too large")
        body = yield ("exact", n)
    else:
        body = yield ("rest", MAX_BODY + 1)
        if len(body) > MAX_BODY:
            raise ProtocolError("latch: answer too large")
        keep = False
    return Response(status, headers, body), keep


def _read_head_sync(rfile: Any, limit: int) -> bytes:
    """Lines up to and with the blank one that ends a head; b"" if the peer closed first."""
    lines, size = [], 0
    for _ in range(_MAX_HEADERS + 2):
        line = rfile.readline(limit + 1)
        if not line:
            if lines:
                raise _Disconnected()
            return b""
        lines.append(line)
        size += len(line)
        if size > limit:
            raise ProtocolError("latch: HTTP head too long")
        if line in (b"\r\n", b"\n") and len(lines) > 1:
            return b"".join(lines)
    raise ProtocolError("latch: too many HTTP headers")


def read_sync(gen: Read, rfile: Any) -> Any:
    try:
        kind, n = next(gen)
        while True:
            if kind == "head":
                data = _read_head_sync(rfile, n)
            elif kind == "line":
                data = rfile.readline(n)
            else:
                data = rfile.read(n)
                if kind == "exact" and len(data) != n:
                    raise _Disconnected()
            kind, n = gen.send(data)
    except StopIteration as stop:
        return stop.value


async def read_async(gen: Read, reader: asyncio.StreamReader) -> Any:
    try:
        kind, n = next(gen)
        while True:
            if kind == "head":
                data = await reader.readuntil(b"\r\n\r\n")  # bounded by the stream's limit (64 KiB)
            elif kind == "line":
                data = await reader.readline()  # bounded by the stream's limit
            elif kind == "exact":
                data = await reader.readexactly(n)
            else:
                data = await reader.read(n)
            kind, n = gen.send(data)
    except StopIteration as stop:
        return stop.value
    except asyncio.IncompleteReadError as e:
        if e.partial and kind == "head":
            raise ProtocolError("latch: truncated HTTP head") from None
        raise _Disconnected() from None
    except (asyncio.LimitOverrunError, ValueError):  # readline raises ValueError past its limit
        raise ProtocolError("latch: HTTP line too long or malformed") from None


def _request_bytes(ep: Endpoint, method: str, path: str, headers: Mapping[str, str], body: bytes | None) -> bytes:
    head = [f"{method} {ep.prefix}{path} HTTP/1.1", f"Host: {ep.netloc}"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    if body is not None or method in ("POST", "PUT", "PATCH"):
        head.append(f"Content-Length: {len(body or b'')}")
    # One write: request line, headers and body leave in one segment (TCP_NODELAY is set).
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + (body or b"")


class SyncTransport:
    """A pool of idle keep-alive connections, safe for concurrent use by threads.

    A small HTTP/1.1 client over the socket module: latch's answers are small
    JSON documents, and http.client's header parsing cost more than the call."""

    def __init__(self, ep: Endpoint, timeout: float, max_idle: int = 32) -> None:
        self.ep = ep
        self.timeout = timeout
        self.max_idle = max_idle
        self._idle: list[_SyncConn] = []
        self._lock = threading.Lock()

    def _conn(self) -> tuple[_SyncConn, bool]:
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        return _SyncConn(self.ep, self.timeout), False

    def _release(self, c: _SyncConn) -> None:
        with self._lock:
            if len(self._idle) < self.max_idle:
                self._idle.append(c)
                return
        c.close()

    def request(self, method: str, path: str, headers: Mapping[str, str], body: bytes | None) -> Response:
        raw = _request_bytes(self.ep, method, path, headers, body)
        for attempt in range(2):
            try:
                c, reused = self._conn()
            except (socket.timeout, TimeoutError):
                raise Timeout(f"latch: {method} {_route(path)}: no connection within {self.timeout:g} s") from None
            except OSError as e:
                raise ConnectError(f"latch: {method} {_route(path)}: {type(e).__name__}: {_oserror(e)}") from None
            try:
                c.sock.sendall(raw)
                resp, keep = read_sync(parse_response(method), c.rfile)
            except (socket.timeout, TimeoutError):
                c.close()
                raise Timeout(f"latch: {method} {_route(path)}: no answer within {self.timeout:g} s") from None
            except (_Disconnected, ConnectionResetError, BrokenPipeError) as e:
                c.close()
                # An idle keep-alive connection the server closed: try once on
                # a fresh one (latch had not read the request).
                if reused and attempt == 0:
                    continue
                raise ConnectError(f"latch: {method} {_route(path)}: {type(e).__name__}") from None
            except OSError as e:
                c.close()
                raise ConnectError(f"latch: {method} {_route(path)}: {type(e).__name__}: {_oserror(e)}") from None
            except BaseException:
                c.close()
                raise
            if keep:
                self._release(c)
            else:
                c.close()
            return resp
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for c in idle:
            c.close()

    def __del__(self) -> None:  # a client dropped without close(): do not leak its sockets
        try:
            self.close()
        except Exception:
            pass


def _oserror(e: BaseException) -> str:
    # OSError's strerror ("Connection refused") says what happened without
    # quoting anything the request carried.
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return ""


def _route(path: str) -> str:
    # The path names a session ID or subject, never a token; drop the query.
    return path.split("?", 1)[0]


class _AsyncConn:
    __slots__ = ("reader", "writer", "loop")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 loop: asyncio.AbstractEventLoop) -> None:
        self.reader, self.writer, self.loop = reader, writer, loop

    def close(self) -> None:
        try:
            self.writer.close()
        except Exception:
            pass


class _Disconnected(Exception):
    """The server closed the connection before answering."""


class AsyncTransport:
    """A pool of idle asyncio connections. Connections belong to the event loop
    that opened them; a connection of another loop is discarded, not reused."""

    def __init__(self, ep: Endpoint, timeout: float, max_idle: int = 32) -> None:
        self.ep = ep
        self.timeout = timeout
        self.max_idle = max_idle
        self._idle: list[_AsyncConn] = []

    async def _conn(self) -> tuple[_AsyncConn, bool]:
        loop = asyncio.get_running_loop()
        while self._idle:
            c = self._idle.pop()
            if c.loop is loop and not c.reader.at_eof() and not c.writer.is_closing():
                return c, True
            c.close()
        reader, writer = await asyncio.open_connection(
            self.ep.host, self.ep.port, ssl=self.ep.ssl,
            server_hostname=self.ep.host if self.ep.ssl else None, limit=1 << 16)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return _AsyncConn(reader, writer, loop), False

    async def request(self, method: str, path: str, headers: Mapping[str, str], body: bytes | None) -> Response:
        try:
            async with asyncio.timeout(self.timeout):
                return await self._request(method, path, headers, body)
        except TimeoutError:
            raise Timeout(f"latch: {method} {_route(path)}: no answer within {self.timeout:g} s") from None

    async def _request(self, method: str, path: str, headers: Mapping[str, str], body: bytes | None) -> Response:
        raw = _request_bytes(self.ep, method, path, headers, body)
        for attempt in range(2):
            try:
                c, reused = await self._conn()
            except OSError as e:
                raise ConnectError(f"latch: {method} {_route(path)}: {type(e).__name__}: {_oserror(e)}") from None
            try:
                c.writer.write(raw)
                await c.writer.drain()
                resp, keep = await read_async(parse_response(method), c.reader)
            except (_Disconnected, ConnectionResetError, BrokenPipeError) as e:
                c.close()
                if reused and attempt == 0:
                    continue
                raise ConnectError(f"latch: {method} {_route(path)}: {type(e).__name__}") from None
            except OSError as e:
                c.close()
                raise ConnectError(f"latch: {method} {_route(path)}: {type(e).__name__}: {_oserror(e)}") from None
            except BaseException:
                c.close()  # cancelled or timed out mid-answer: the connection is unusable
                raise
            if keep and len(self._idle) < self.max_idle:
                self._idle.append(c)
            else:
                c.close()
            return resp
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for c in idle:
            c.close()

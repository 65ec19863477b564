"""Minimal HTTP/1.1 transports with connection reuse: http.client for sync
code, asyncio streams for async code. Both speak only to latch: JSON bodies,
small answers, keep-alive. Neither logs anything, and no error they raise
quotes a header or a body (where tokens travel)."""

from __future__ import annotations

import asyncio
import http.client
import socket
import ssl
import threading
import urllib.parse
from dataclasses import dataclass
from typing import Mapping

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

    def __init__(self, base_url: str) -> None:
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
        self.ssl = ssl.create_default_context() if self.https else None


class _Conn(http.client.HTTPConnection):
    """TCP_NODELAY, and the request line, headers and body in one write: http.client
    writes the body separately, which Nagle's algorithm holds back for an ACK."""

    def connect(self) -> None:
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _send_output(self, message_body=None, encode_chunked=False):  # type: ignore[override]
        if isinstance(message_body, bytes) and not encode_chunked:
            self._buffer.extend((b"", message_body))
            msg = b"\r\n".join(self._buffer)
            del self._buffer[:]
            self.send(msg)
            return
        super()._send_output(message_body, encode_chunked)


class _TLSConn(http.client.HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _headers(msg: http.client.HTTPMessage) -> dict[str, str]:
    return {k.lower(): v for k, v in msg.items()}


class SyncTransport:
    """A pool of idle http.client connections, safe for concurrent use by threads."""

    def __init__(self, ep: Endpoint, timeout: float, max_idle: int = 32) -> None:
        self.ep = ep
        self.timeout = timeout
        self.max_idle = max_idle
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def _conn(self) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        if self.ep.https:
            c: http.client.HTTPConnection = _TLSConn(
                self.ep.host, self.ep.port, timeout=self.timeout, context=self.ep.ssl)
        else:
            c = _Conn(self.ep.host, self.ep.port, timeout=self.timeout)
        return c, False

    def _release(self, c: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < self.max_idle:
                self._idle.append(c)
                return
        c.close()

    def request(self, method: str, path: str, headers: Mapping[str, str], body: bytes | None) -> Response:
        for attempt in range(2):
            c, reused = self._conn()
            try:
                c.request(method, self.ep.prefix + path, body=body, headers=dict(headers))
                r = c.getresponse()
                data = r.read(MAX_BODY + 1)
            except (socket.timeout, TimeoutError):
                c.close()
                raise Timeout(f"latch: {method} {_route(path)}: no answer within {self.timeout:g} s") from None
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
                c.close()
                # An idle keep-alive connection the server closed: try once on
                # a fresh one (latch had not read the request).
                if reused and attempt == 0:
                    continue
                raise ConnectError(f"latch: {method} {_route(path)}: {type(e).__name__}") from None
            except (OSError, http.client.HTTPException) as e:
                c.close()
                raise ConnectError(f"latch: {method} {_route(path)}: {type(e).__name__}: {_oserror(e)}") from None
            if len(data) > MAX_BODY:
                c.close()
                raise ProtocolError("latch: answer too large")
            if r.will_close:
                c.close()
            else:
                self._release(c)
            return Response(r.status, _headers(r.headers), data)
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
        head = [f"{method} {self.ep.prefix}{path} HTTP/1.1", f"Host: {self.ep.netloc}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        if body is not None or method in ("POST", "PUT", "PATCH"):
            head.append(f"Content-Length: {len(body or b'')}")
        raw = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + (body or b"")
        for attempt in range(2):
            try:
                c, reused = await self._conn()
            except OSError as e:
                raise ConnectError(f"latch: {method} {_route(path)}: {type(e).__name__}: {_oserror(e)}") from None
            try:
                c.writer.write(raw)
                await c.writer.drain()
                resp, keep = await read_response(c.reader, method)
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


async def read_head(reader: asyncio.StreamReader) -> tuple[int, bool, dict[str, str]]:
    """Read a status line and headers; skip 1xx answers. Returns status, HTTP/1.1?, headers."""
    while True:
        line = await reader.readline()
        if not line:
            raise _Disconnected()
        parts = line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise ProtocolError("latch: malformed HTTP status line")
        status = int(parts[1])
        headers: dict[str, str] = {}
        for _ in range(_MAX_HEADERS + 1):
            h = await reader.readline()
            if h in (b"\r\n", b"\n"):
                break
            if not h:
                raise _Disconnected()
            name, sep, value = h.decode("latin-1").partition(":")
            if not sep:
                raise ProtocolError("latch: malformed HTTP header")
            headers[name.strip().lower()] = value.strip()
        else:
            raise ProtocolError("latch: too many HTTP headers")
        if 100 <= status < 200 and status != 101:
            continue
        return status, parts[0] == b"HTTP/1.1", headers


async def read_chunk(reader: asyncio.StreamReader) -> bytes:
    """Read one chunk of a chunked body; b"" at the end (trailers consumed)."""
    line = await reader.readline()
    try:
        n = int(line.split(b";", 1)[0].strip(), 16)
    except ValueError:
        raise ProtocolError("latch: malformed chunked body") from None
    if n == 0:
        while (await reader.readline()) not in (b"\r\n", b"\n", b""):
            pass
        return b""
    if n > MAX_BODY:
        raise ProtocolError("latch: answer too large")
    data = await reader.readexactly(n)
    await reader.readexactly(2)
    return data


async def read_response(reader: asyncio.StreamReader, method: str) -> tuple[Response, bool]:
    try:
        status, http11, headers = await read_head(reader)
        keep = http11 and "close" not in headers.get("connection", "").lower()
        if method == "HEAD" or status in (204, 304):
            body = b""
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            chunks = []
            size = 0
            while chunk := await read_chunk(reader):
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
            body = await reader.readexactly(n)
        else:
            body = await reader.read(MAX_BODY + 1)
            if len(body) > MAX_BODY:
                raise ProtocolError("latch: answer too large")
            keep = False
    except asyncio.IncompleteReadError:
        raise _Disconnected() from None
    except (asyncio.LimitOverrunError, ValueError):  # readline raises ValueError past its limit
        raise ProtocolError("latch: HTTP line too long or malformed") from None
    return Response(status, headers, body), keep

"""HTTP/1.1 wire helpers shared by the test backend and the test clients:
a buffered socket reader, header-block parsing, response reading (1xx,
Content-Length, chunked, close-delimited), chunked encoding and a deterministic
byte pattern for large bodies (so both ends can compute its sha256 without
keeping it in memory).
"""

from __future__ import annotations

import hashlib
import json
import socket
import ssl
import time

CRLF = b"\r\n"


class ConnectionClosed(Exception):
    """The peer closed the connection before the expected bytes arrived."""


class Reader:
    """Buffered reads from a (TLS) socket. All reads honour the socket timeout."""

    def __init__(self, sock, tap=None, recv_size: int = 65536):
        self.sock = sock
        self.buf = bytearray()
        self.tap = tap          # called with every chunk received (for recording)
        self.recv_size = recv_size
        self.eof = False

    def _more(self) -> bool:
        if self.eof:
            return False
        data = self.sock.recv(self.recv_size)
        if not data:
            self.eof = True
            return False
        if self.tap is not None:
            self.tap(data)
        self.buf += data
        return True

    def read_until(self, delim: bytes, limit: int) -> bytes:
        """Return bytes up to and including delim. ConnectionClosed on EOF."""
        start = 0
        while True:
            i = self.buf.find(delim, start)
            if i >= 0:
                out = bytes(self.buf[:i + len(delim)])
                del self.buf[:i + len(delim)]
                return out
            if len(self.buf) > limit:
                raise ValueError("no %r within %d bytes" % (delim, limit))
            start = max(0, len(self.buf) - len(delim) + 1)
            if not self._more():
                raise ConnectionClosed("EOF after %d bytes while waiting for %r"
                                       % (len(self.buf), delim))

    def read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._more():
                raise ConnectionClosed("EOF: wanted %d bytes, have %d" % (n, len(self.buf)))
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_some(self, max_n: int = 65536) -> bytes:
        """Return buffered bytes or one recv worth; b'' at EOF."""
        if not self.buf:
            self._more()
        out = bytes(self.buf[:max_n])
        del self.buf[:max_n]
        return out

    def read_to_eof(self, limit: int) -> bytes:
        while len(self.buf) <= limit and self._more():
            pass
        out = bytes(self.buf)
        self.buf.clear()
        return out


def parse_head(block: bytes):
    """Split a header block (ending in CRLFCRLF) into (start_line, [(name, value)])."""
    text = block.decode("latin-1")
    lines = text.split("\r\n")
    start = lines[0]
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise ValueError("header line without colon: %r" % line)
        headers.append((name, value.strip(" \t")))
    return start, headers


def header(headers, name: str, default=None):
    name = name.lower()
    for k, v in headers:
        if k.lower() == name:
            return v
    return default


def header_all(headers, name: str):
    name = name.lower()
    return [v for k, v in headers if k.lower() == name]


class Response:
    def __init__(self, status: int, reason: str, version: str, headers):
        self.status = status
        self.reason = reason
        self.version = version
        self.headers = headers
        self.body = b""          # up to store_limit bytes kept
        self.body_len = 0
        self.body_sha256 = ""
        self.framing = "none"    # length | chunked | close | none
        self.interim = []        # 1xx responses seen before this one
        self.raw_head = b""

    def header(self, name, default=None):
        return header(self.headers, name, default)

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def wants_close(self) -> bool:
        conn = (self.header("connection") or "").lower()
        return "close" in [t.strip() for t in conn.split(",")] or self.framing == "close"

    def __repr__(self):
        return "<Response %d %s len=%d %r>" % (self.status, self.reason, self.body_len,
                                              self.body[:200])


def read_chunked(reader: Reader, sink, max_line: int = 4096) -> list:
    """Decode a chunked body, feeding data to sink(bytes). Returns trailer fields.
    Bounded: at most 2**24 chunks and 1000 trailer lines."""
    for _ in range(1 << 24):
        line = reader.read_until(CRLF, max_line)
        size_text = line[:-2].split(b";", 1)[0].strip()
        size = int(size_text, 16)  # ValueError on garbage
        if size == 0:
            trailers = []
            for _ in range(1000):
                t = reader.read_until(CRLF, max_line)
                if t == CRLF:
                    return trailers
                name, _, value = t[:-2].decode("latin-1").partition(":")
                trailers.append((name, value.strip()))
            raise ValueError("too many trailer lines")
        remaining = size
        while remaining:
            data = reader.read_some(min(remaining, 1 << 20))
            if not data:
                raise ConnectionClosed("EOF inside a chunk")
            sink(data)
            remaining -= len(data)
        if reader.read_exact(2) != CRLF:
            raise ValueError("chunk not followed by CRLF")
    raise ValueError("too many chunks")


MAX_BODY = 1 << 30  # no test response is larger; a runaway stream fails instead of looping


def read_response(reader: Reader, method: str = "GET", store_limit: int = 16 << 20,
                  max_head: int = 1 << 20, on_interim=None) -> Response:
    """Read one response (after any 1xx interim responses, at most 16)."""
    interim = []
    for _ in range(17):
        head = reader.read_until(CRLF + CRLF, max_head)
        start, headers = parse_head(head)
        parts = start.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise ValueError("not an HTTP status line: %r" % start)
        resp = Response(int(parts[1]), parts[2] if len(parts) > 2 else "", parts[0], headers)
        resp.raw_head = head
        if 100 <= resp.status < 200 and resp.status != 101:
            interim.append(resp)
            if on_interim is not None:
                on_interim(resp)
            continue
        break
    else:
        raise ValueError("more than 16 interim responses")
    resp.interim = interim
    h = hashlib.sha256()
    body = bytearray()

    def sink(data):
        h.update(data)
        resp.body_len += len(data)
        if resp.body_len > MAX_BODY:
            raise ValueError("response body over %d bytes" % MAX_BODY)
        if len(body) < store_limit:
            body.extend(data[:store_limit - len(body)])

    te = (resp.header("transfer-encoding") or "").lower()
    cl = resp.header("content-length")
    if method == "HEAD" or resp.status in (204, 304):
        resp.framing = "none"
    elif te:
        if te.split(",")[-1].strip() != "chunked":
            raise ValueError("unsupported response Transfer-Encoding %r" % te)
        resp.framing = "chunked"
        read_chunked(reader, sink)
    elif cl is not None:
        resp.framing = "length"
        remaining = int(cl)
        while remaining:
            data = reader.read_some(min(remaining, 1 << 20))
            if not data:
                raise ConnectionClosed("EOF with %d body bytes missing" % remaining)
            sink(data)
            remaining -= len(data)
    else:
        resp.framing = "close"
        while True:
            data = reader.read_some()
            if not data:
                break
            sink(data)
    resp.body = bytes(body)
    resp.body_sha256 = h.hexdigest()
    return resp


def build_request(method: str, target: str, headers=None, body: bytes = b"",
                  host: str = "localhost", content_length: bool = True) -> bytes:
    """Serialise a request. headers: list of (name, value); Host added if absent."""
    headers = list(headers or [])
    if header(headers, "host") is None:
        headers.insert(0, ("Host", host))
    if body and content_length and header(headers, "content-length") is None \
            and header(headers, "transfer-encoding") is None:
        headers.append(("Content-Length", str(len(body))))
    head = "%s %s HTTP/1.1\r\n" % (method, target)
    head += "".join("%s: %s\r\n" % (k, v) for k, v in headers) + "\r\n"
    return head.encode("latin-1") + body


def chunk(data: bytes) -> bytes:
    return b"%x\r\n" % len(data) + data + CRLF


LAST_CHUNK = b"0\r\n\r\n"

# --- deterministic large bodies --------------------------------------------

_BLOCK = b"".join(hashlib.sha256(b"fedtest-%d" % i).digest() for i in range(32768))  # 1 MiB


def pattern_chunks(n: int, size: int = 65536):
    """Yield n bytes of a deterministic pattern in pieces of at most `size`."""
    off = 0
    blen = len(_BLOCK)
    while off < n:
        take = min(size, n - off)
        start = off % blen
        if start + take <= blen:
            yield _BLOCK[start:start + take]
        else:
            first = _BLOCK[start:]
            yield first + _BLOCK[:take - len(first)]
        off += take


def pattern_sha256(n: int) -> str:
    h = hashlib.sha256()
    for piece in pattern_chunks(n, 1 << 20):
        h.update(piece)
    return h.hexdigest()


def is_closed(sock, timeout: float) -> tuple[bool, bytes]:
    """Wait up to timeout for the peer to close. Returns (closed, bytes_received).
    A reset or a TLS alert counts as closed."""
    old = sock.gettimeout()
    deadline = time.monotonic() + timeout
    got = bytearray()
    try:
        while len(got) < (1 << 20):
            left = deadline - time.monotonic()
            if left <= 0:
                return False, bytes(got)
            sock.settimeout(left)
            data = sock.recv(65536)
            if not data:
                return True, bytes(got)
            got += data
        return False, bytes(got)
    except (socket.timeout, TimeoutError):
        return False, bytes(got)
    except (ConnectionResetError, BrokenPipeError, ssl.SSLError, ssl.SSLEOFError):
        return True, bytes(got)
    except OSError:
        return True, bytes(got)
    finally:
        try:
            sock.settimeout(old)
        except OSError:
            pass

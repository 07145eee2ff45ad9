"""A threaded HTTP/1.1 test backend (the "local app") on 127.0.0.1:0 or a unix
socket, run in-process. It records every byte it received (heads always, body
bytes up to a cap) and every parsed request, and answers by path:

    /bytes/N          N bytes of wire.pattern_chunks, Content-Length, streamed
    /chunked/N        N pattern bytes as a chunked response (uneven chunk sizes)
    /nolength/N       N pattern bytes, no length, connection closed after
    /slow/MS          wait MS milliseconds, then the echo response
    /slowread/MS      wait MS milliseconds before reading the request body, then echo
    /status/CODE      that status with a small JSON body
    /close            echo response with Connection: close, then close
    /drop             read the request, then close without answering (an app
                      that crashed while handling it)
    /resetbody/N      announce N bytes, send half of them, then reset (RST)
    /resetread        read 64 KiB of the request body, then reset (RST)
    anything else     echo: JSON {conn, seq, method, target, headers, body_len,
                      body_sha256, framing}

Query strings are ignored for routing. `Expect: 100-continue` is honoured with
`100 Continue` like a real server, before the body is read.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

from . import wire

RAW_CAP_PER_CONN = 1 << 20  # body bytes beyond this are counted, not stored
MAX_REQUESTS_PER_CONN = 100000


@dataclass
class Received:
    conn: int
    seq: int
    method: str
    target: str
    version: str
    headers: list
    framing: str = "none"
    body_len: int = 0
    body_sha256: str = ""
    raw_head: bytes = b""
    time: float = 0.0
    complete: bool = False

    @property
    def path(self):
        return self.target.split("?", 1)[0]

    def header(self, name, default=None):
        return wire.header(self.headers, name, default)


@dataclass
class ConnRecord:
    id: int
    peer: str
    raw: bytearray = field(default_factory=bytearray)
    raw_total: int = 0
    closed: bool = False


class Backend:
    def __init__(self, unix_path: str | None = None, port: int = 0):
        self.unix_path = unix_path
        self.bind_port = port
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.requests: list[Received] = []
        self.conns: list[ConnRecord] = []
        self.errors: list[str] = []
        self._socks = set()
        self._threads = []
        self._stop = threading.Event()
        self.listener = None
        self.port = None

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> "Backend":
        if self.unix_path:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            if os.path.exists(self.unix_path):
                os.unlink(self.unix_path)
            s.bind(self.unix_path)
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", self.bind_port))
            except OSError:
                s.close()
                raise
            self.port = s.getsockname()[1]
        s.listen(128)
        s.settimeout(0.2)
        self.listener = s
        t = threading.Thread(target=self._accept_loop, name="backend-accept", daemon=True)
        t.start()
        self._threads.append(t)
        return self

    @property
    def address(self) -> str:
        """The value for ingress.upstream."""
        return "unix:" + self.unix_path if self.unix_path else "127.0.0.1:%d" % self.port

    def stop(self) -> None:
        self._stop.set()
        try:
            self.listener.close()
        except OSError:
            pass
        with self.lock:
            socks = list(self._socks)
        for c in socks:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                c.close()
            except OSError:
                pass
        for t in self._threads:
            t.join(timeout=2)
        if self.unix_path and os.path.exists(self.unix_path):
            os.unlink(self.unix_path)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- inspection ----------------------------------------------------------
    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.errors.clear()

    def snapshot(self) -> list[Received]:
        with self.lock:
            return list(self.requests)

    def raw_bytes(self) -> bytes:
        """Everything recorded (all connections, heads always, bodies capped)."""
        with self.lock:
            return b"".join(bytes(c.raw) for c in self.conns)

    def connection_count(self) -> int:
        with self.lock:
            return len(self.conns)

    def wait_for(self, predicate, timeout: float = 5.0):
        """Wait until predicate(requests) is truthy; returns its value or None."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                v = predicate(self.requests)
                if v:
                    return v
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(min(left, 0.1))

    def wait_path(self, path: str, timeout: float = 5.0, complete: bool = True):
        def pred(reqs):
            for r in reqs:
                if r.path == path and (r.complete or not complete):
                    return r
            return None
        return self.wait_for(pred, timeout)

    # -- serving -------------------------------------------------------------
    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                c, addr = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            c.settimeout(30)
            with self.lock:
                rec = ConnRecord(id=len(self.conns) + 1, peer=str(addr))
                self.conns.append(rec)
                self._socks.add(c)
            t = threading.Thread(target=self._serve, args=(c, rec),
                                 name="backend-conn-%d" % rec.id, daemon=True)
            t.start()
            self._threads.append(t)

    def _tap(self, rec: ConnRecord):
        def tap(data):
            with self.lock:
                rec.raw_total += len(data)
                room = RAW_CAP_PER_CONN - len(rec.raw)
                if room > 0:
                    rec.raw += data[:room]
        return tap

    def _serve(self, c, rec: ConnRecord):
        reader = wire.Reader(c, tap=self._tap(rec))
        seq = 0
        try:
            while not self._stop.is_set() and seq < MAX_REQUESTS_PER_CONN:
                try:
                    head = reader.read_until(wire.CRLF + wire.CRLF, 1 << 20)
                except wire.ConnectionClosed:
                    return
                seq += 1
                start, headers = wire.parse_head(head)
                method, target, version = start.split(" ", 2)
                req = Received(conn=rec.id, seq=seq, method=method, target=target,
                               version=version, headers=headers, raw_head=head,
                               time=time.monotonic())
                with self.cond:
                    self.requests.append(req)
                    self.cond.notify_all()
                if not self._handle(c, reader, req):
                    return
        except Exception as e:  # noqa: BLE001 - recorded for the tests
            with self.lock:
                self.errors.append("conn %d: %r" % (rec.id, e))
        finally:
            with self.lock:
                rec.closed = True
                self._socks.discard(c)
            try:
                c.close()
            except OSError:
                pass

    def _read_body(self, reader, req: Received):
        h = hashlib.sha256()
        te = req.header("transfer-encoding")
        cl = req.header("content-length")

        def sink(data):
            h.update(data)
            req.body_len += len(data)

        if te is not None:
            if te.strip().lower() != "chunked":
                raise ValueError("backend got Transfer-Encoding %r" % te)
            req.framing = "chunked"
            wire.read_chunked(reader, sink)
        elif cl is not None:
            req.framing = "length"
            remaining = int(cl)
            while remaining:
                data = reader.read_some(min(remaining, 1 << 20))
                if not data:
                    raise wire.ConnectionClosed("EOF in request body")
                sink(data)
                remaining -= len(data)
        req.body_sha256 = h.hexdigest()

    @staticmethod
    def _reset(c) -> None:
        """Close with a TCP reset (an app that crashed mid-exchange)."""
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()

    def _handle(self, c, reader, req: Received) -> bool:
        """Serve one request; False = close the connection."""
        parts = req.path.strip("/").split("/")
        route = parts[0]
        arg = parts[1] if len(parts) > 1 else ""
        if route == "slowread":
            time.sleep(int(arg) / 1000.0)
        if route == "resetread":
            reader.read_some(64 * 1024)
            self._reset(c)
            return False
        expect = (req.header("expect") or "").lower()
        if expect == "100-continue":
            c.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        self._read_body(reader, req)
        with self.cond:
            req.complete = True
            self.cond.notify_all()
        keep = (req.header("connection") or "").lower() != "close"
        head_only = req.method == "HEAD"
        if route == "drop":
            return False
        if route == "resetbody":
            n = int(arg)
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                      b"Content-Length: %d\r\n\r\n" % n)
            for piece in wire.pattern_chunks(n // 2, 64 * 1024):
                c.sendall(piece)
            time.sleep(0.05)
            self._reset(c)
            return False

        if route == "bytes":
            n = int(arg)
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                      b"Content-Length: %d\r\n\r\n" % n)
            if not head_only:
                for piece in wire.pattern_chunks(n, 256 * 1024):
                    c.sendall(piece)
            return keep
        if route == "chunked":
            n = int(arg)
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n")
            if not head_only:
                sizes = [1, 7, 4096, 65535, 100000, 1 << 20]
                i = 0
                buf = bytearray()
                for piece in wire.pattern_chunks(n, 1 << 20):
                    buf += piece
                    while len(buf) >= sizes[i % len(sizes)]:
                        s = sizes[i % len(sizes)]
                        c.sendall(wire.chunk(bytes(buf[:s])))
                        del buf[:s]
                        i += 1
                if buf:
                    c.sendall(wire.chunk(bytes(buf)))
                c.sendall(wire.LAST_CHUNK)
            return keep
        if route == "nolength":
            n = int(arg)
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                      b"Connection: close\r\n\r\n")
            for piece in wire.pattern_chunks(n, 256 * 1024):
                c.sendall(piece)
            return False
        if route == "status":
            code = int(arg)
            body = json.dumps({"status": code}).encode()
            c.sendall(b"HTTP/1.1 %d Test\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\n\r\n%s" % (code, len(body), body))
            return keep
        if route == "slow":
            time.sleep(int(arg) / 1000.0)
        if route == "close":
            keep = False
        body = json.dumps({
            "conn": req.conn, "seq": req.seq, "method": req.method, "target": req.target,
            "headers": [[k, v] for k, v in req.headers], "body_len": req.body_len,
            "body_sha256": req.body_sha256, "framing": req.framing,
        }).encode()
        extra = b"" if keep else b"Connection: close\r\n"
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n%s"
                  b"Content-Length: %d\r\n\r\n" % (extra, len(body))
                  + (b"" if head_only else body))
        return keep


if __name__ == "__main__":  # manual self-check
    import sys
    b = Backend().start()
    print("backend on", b.address)
    try:
        time.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 30)
    finally:
        b.stop()

#!/usr/bin/env python3
"""Connections opened and dropped at random points of the TLS handshake and
of the HTTP exchange, many times over, against a 2-worker fedproxy. Under
the ASan/LeakSanitizer build (packaging/test-all.sh runs this with
FEDTEST_CHURN=10000) any leaked session, TLS engine, buffer or libuv handle
makes fedproxy's exit code non-zero at the end, which this test checks.

Drop points: right after connect; inside the ClientHello; after the
ClientHello (server flight in progress); after the handshake; inside the
request head; inside a request body; after the request, before the
response; half-way through reading a response. Half are closed with a
FIN, half with a RST (SO_LINGER 0).

Run: FEDPROXY_BIN=build/proxy/app/fedproxy FEDTEST_CHURN=2000 python3 tests/integration/test_churn.py
"""

import concurrent.futures
import os
import random
import socket
import ssl
import struct
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fedtest.backend import Backend  # noqa: E402
from fedtest.case import main, shared_pki  # noqa: E402
from fedtest.proxy import Conn, Proxy, base_config, client_context  # noqa: E402
from fedtest.reload import admin_status, wait_until  # noqa: E402

COUNT = int(os.environ.get("FEDTEST_CHURN", "1000"))
MAX_SECONDS = float(os.environ.get("FEDTEST_CHURN_SECONDS", "400"))
THREADS = 8
POINTS = ("connect", "client_hello_part", "client_hello", "handshake", "head_part",
          "body_part", "request_sent", "response_part")


def close(sock: socket.socket, rst: bool) -> None:
    if rst:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def client_hello(ctx: ssl.SSLContext) -> bytes:
    """The first flight of a real TLS 1.3 client (fresh key share each time)."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_side=False)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def churn_once(port: int, ctx: ssl.SSLContext, rng: random.Random) -> str:
    point = rng.choice(POINTS)
    rst = rng.random() < 0.5
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        if point == "connect":
            return point
        if point in ("client_hello_part", "client_hello"):
            hello = client_hello(ctx)
            raw.sendall(hello if point == "client_hello" else hello[:rng.randrange(1, len(hello))])
            if point == "client_hello" and rng.random() < 0.5:
                raw.recv(rng.randrange(1, 2000))  # part of the server's flight
            return point
        tls = ctx.wrap_socket(raw, server_hostname="localhost")
        raw = tls
        if point == "handshake":
            return point
        body = b"x" * rng.randrange(1, 5000)
        head = (b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n" % len(body))
        if point == "head_part":
            tls.sendall(head[:rng.randrange(1, len(head))])
            return point
        if point == "body_part":
            tls.sendall(head + body[:rng.randrange(0, len(body))])
            return point
        if point == "request_sent":
            tls.sendall(head + body)
            return point
        tls.sendall(b"GET /bytes/200000 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        tls.recv(rng.randrange(1, 4000))
        return point
    finally:
        try:
            close(raw, rst)
        except OSError:
            pass


class ChurnTest(unittest.TestCase):
    def test_random_drops_leave_nothing_behind(self):
        pki = shared_pki()
        backend = Backend().start()
        self.addCleanup(backend.stop)
        cfg = base_config(pki, backend.address, workers=2,
                          timeouts={"handshake_ms": 3000, "header_ms": 3000, "idle_ms": 3000},
                          limits={"max_connections": 100000})
        proxy = Proxy(cfg).start()
        self.addCleanup(proxy.stop)
        ctx = client_context(pki, pki.client)
        ctx.check_hostname = False
        seed = int(os.environ.get("FEDTEST_SEED", str(int(time.time()))))
        print("churn: %d connections, seed %d" % (COUNT, seed), file=sys.stderr)
        deadline = time.monotonic() + MAX_SECONDS
        seen: dict = {}
        errors = []
        lock = threading.Lock()

        def worker(i: int):
            rng = random.Random(seed * 1000 + i)
            for _ in range(COUNT // THREADS):
                if time.monotonic() > deadline:
                    return
                try:
                    p = churn_once(proxy.ingress_port, ctx, rng)
                    with lock:
                        seen[p] = seen.get(p, 0) + 1
                except (OSError, ssl.SSLError) as e:
                    with lock:
                        errors.append(repr(e))
        with concurrent.futures.ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(worker, range(THREADS)))
        done = sum(seen.values())
        print("churn: %d dropped (%s), %d client-side errors" % (done, seen, len(errors)), file=sys.stderr)
        if time.monotonic() < deadline:  # else: bounded by time, still checked below
            self.assertEqual(done + len(errors), COUNT // THREADS * THREADS)
        # Client-side errors (a reset while we were still writing) are fine in
        # small numbers; many mean the proxy refused connections.
        self.assertLess(len(errors), max(20, done // 50), "%s\n%s" % (errors[:5], proxy.tail(60)))
        self.assertEqual(set(seen), set(POINTS), "some drop points never ran")

        # Everything is closed within the timeouts, and the proxy still serves.
        self.assertTrue(wait_until(lambda: admin_status(proxy.admin_port)["connections"]["active"] == 0, 15),
                        admin_status(proxy.admin_port)["connections"])
        c = Conn.open(proxy.ingress_port, client_context(pki, pki.client))
        self.assertEqual(c.request("GET", "/after-churn").status, 200)
        c.close()
        # A clean exit: under LeakSanitizer a leak makes this non-zero.
        rc = proxy.stop(timeout=60)
        self.assertEqual(rc, 0, proxy.tail(30))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Upstream failures, timeouts, unix-socket upstream and graceful shutdown
(SPEC §1, §6, §10).

Run: FEDPROXY_BIN=build/proxy/app/fedproxy python3 tests/integration/test_upstream.py
"""

import os
import select
import shutil
import signal
import socket
import ssl
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fedtest import wire  # noqa: E402
from fedtest.backend import Backend  # noqa: E402
from fedtest.case import start_class_proxy, stop_class_proxy, assert_not_received, main, shared_pki  # noqa: E402
from fedtest.proxy import (Conn, Proxy, assert_json_error, base_config,  # noqa: E402
                           client_context, free_port)


class UpstreamFailureTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.pki = shared_pki()
        cls.ctx = client_context(cls.pki, cls.pki.client)

    def tmpdir(self) -> str:
        d = tempfile.mkdtemp(prefix="fedtest-sock-")
        self.addCleanup(shutil.rmtree, d, True)
        return d

    def test_dead_app_gives_502(self):
        cfg = base_config(self.pki, "127.0.0.1:%d" % free_port())
        with Proxy(cfg) as p:
            with Conn.open(p.ingress_port, self.ctx) as c:
                t0 = time.monotonic()
                resp = c.request("GET", "/dead")
                self.assertLess(time.monotonic() - t0, 5)
                assert_json_error(self, resp, 502, "upstream_unavailable")
            # and again: a refused connect must not wedge anything
            with Conn.open(p.ingress_port, self.ctx) as c:
                assert_json_error(self, c.request("POST", "/dead2", body=b"abc"), 502,
                                  "upstream_unavailable")

    def test_dead_unix_socket_gives_502(self):
        path = os.path.join(self.tmpdir(), "missing.sock")
        with Proxy(base_config(self.pki, "unix:" + path)) as p:
            with Conn.open(p.ingress_port, self.ctx) as c:
                assert_json_error(self, c.request("GET", "/dead-unix"), 502,
                                  "upstream_unavailable")

    def test_app_restarts_after_being_down(self):
        """502 while the app is down, 200 once it is back on the same port."""
        port = free_port()
        with Proxy(base_config(self.pki, "127.0.0.1:%d" % port)) as p:
            with Conn.open(p.ingress_port, self.ctx) as c:
                assert_json_error(self, c.request("GET", "/down"), 502, "upstream_unavailable")
            try:
                b = Backend(port=port).start()
            except OSError:
                self.skipTest("port %d was taken meanwhile" % port)
            try:
                with Conn.open(p.ingress_port, self.ctx) as c:
                    self.assertEqual(c.request("GET", "/up-again").status, 200)
            finally:
                b.stop()

    def test_unix_socket_upstream(self):
        path = os.path.join(self.tmpdir(), "app.sock")
        with Backend(unix_path=path) as b:
            with Proxy(base_config(self.pki, b.address)) as p:
                with Conn.open(p.ingress_port, self.ctx) as c:
                    for i in range(3):
                        resp = c.request("POST", "/unix/%d" % i, body=b"u" * 1000)
                        self.assertEqual(resp.status, 200)
                        self.assertEqual(resp.json()["body_len"], 1000)
                    resp = c.request("GET", "/bytes/3000000")
                    self.assertEqual(resp.body_sha256, wire.pattern_sha256(3000000))
                self.assertIsNotNone(b.wait_path("/unix/2", 2))


class TimeoutTest(unittest.TestCase):
    """One fedproxy with short timeouts."""

    HEADER_MS = 1000
    IDLE_MS = 1500
    HANDSHAKE_MS = 1000
    RESPONSE_MS = 800

    @classmethod
    def setUpClass(cls):
        cls.pki = shared_pki()
        cls.ctx = client_context(cls.pki, cls.pki.client)
        cls.backend = Backend().start()
        cls.proxy = Proxy(base_config(cls.pki, cls.backend.address, timeouts={
            "header_ms": cls.HEADER_MS, "idle_ms": cls.IDLE_MS,
            "handshake_ms": cls.HANDSHAKE_MS, "upstream_response_ms": cls.RESPONSE_MS}))
        start_class_proxy(cls)
        cls.port = cls.proxy.ingress_port

    @classmethod
    def tearDownClass(cls):
        stop_class_proxy(cls)

    def test_slow_app_gives_504(self):
        with Conn.open(self.port, self.ctx) as c:
            t0 = time.monotonic()
            resp = c.request("GET", "/slow/4000")
            dt = time.monotonic() - t0
            assert_json_error(self, resp, 504, "upstream_timeout")
            self.assertGreater(dt, self.RESPONSE_MS / 1000 * 0.8)
            self.assertLess(dt, self.RESPONSE_MS / 1000 + 2.0)

    def test_app_within_timeout_is_fine(self):
        with Conn.open(self.port, self.ctx) as c:
            self.assertEqual(c.request("GET", "/slow/200").status, 200)

    def test_slowloris_closed_while_others_served(self):
        slow = Conn.open(self.port, self.ctx)
        self.addCleanup(slow.close)
        result = {}

        def drip():
            t0 = time.monotonic()
            got = bytearray()
            try:
                slow.send(b"GET /slowloris HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
                for _ in range(40):  # at most ~10 s
                    slow.send(b"a")
                    r, _, _ = select.select([slow.sock], [], [], 0.25)
                    if r or slow.sock.pending():
                        data = slow.sock.recv(65536)
                        if not data:
                            result["closed_after"] = time.monotonic() - t0
                            break
                        got += data
            except (OSError, ssl.SSLError) as e:
                result["closed_after"] = time.monotonic() - t0
                result["error"] = repr(e)
            result["got"] = bytes(got)

        t = threading.Thread(target=drip, daemon=True)
        t.start()
        time.sleep(0.4)
        # another client is served normally meanwhile
        t1 = time.monotonic()
        with Conn.open(self.port, self.ctx) as c:
            self.assertEqual(c.request("GET", "/while-slowloris").status, 200)
        self.assertLess(time.monotonic() - t1, 1.0, "normal client was delayed by slowloris")
        t.join(timeout=15)
        self.assertFalse(t.is_alive())
        self.assertIn("closed_after", result, "slowloris connection was never closed")
        limit = self.HEADER_MS / 1000
        self.assertGreater(result["closed_after"], limit * 0.7,
                           "closed before header_ms elapsed")
        self.assertLess(result["closed_after"], limit + 2.5)
        got = result.get("got", b"")
        self.assertFalse(got and not got.startswith(b"HTTP/1.1 408"),
                         "unexpected answer to slowloris: %r" % got[:200])
        assert_not_received(self, self.backend, b"/slowloris")

    def test_idle_keepalive_connection_closed(self):
        with Conn.open(self.port, self.ctx) as c:
            self.assertEqual(c.request("GET", "/idle").status, 200)
            t0 = time.monotonic()
            closed, extra = c.closed_within(self.IDLE_MS / 1000 + 3)
            dt = time.monotonic() - t0
        self.assertTrue(closed, "idle keep-alive connection not closed after idle_ms")
        self.assertGreater(dt, self.IDLE_MS / 1000 * 0.7)
        self.assertFalse(extra.startswith(b"HTTP/1.1 2"), extra[:100])

    def test_stalled_handshake_closed(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        try:
            t0 = time.monotonic()
            closed, _ = wire.is_closed(s, self.HANDSHAKE_MS / 1000 + 3)
            dt = time.monotonic() - t0
        finally:
            s.close()
        self.assertTrue(closed, "a connection that never sent a ClientHello stayed open")
        self.assertGreater(dt, self.HANDSHAKE_MS / 1000 * 0.7)


class ShutdownTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.pki = shared_pki()
        cls.ctx = client_context(cls.pki, cls.pki.client)

    def test_sigterm_finishes_inflight_request_then_exits_0(self):
        with Backend() as b:
            p = Proxy(base_config(self.pki, b.address, timeouts={"shutdown_grace_ms": 10000}))
            with p:
                c = Conn.open(p.ingress_port, self.ctx, timeout=15)
                self.addCleanup(c.close)
                out = {}

                def call():
                    try:
                        out["resp"] = c.request("GET", "/slow/1500")
                    except Exception as e:  # noqa: BLE001
                        out["error"] = e
                t = threading.Thread(target=call, daemon=True)
                t.start()
                self.assertIsNotNone(b.wait_path("/slow/1500", 5), "request never reached app")
                t_sig = time.monotonic()
                p.signal(signal.SIGTERM)
                time.sleep(0.3)
                # no longer accepting: a new client gets no answer
                answered = False
                try:
                    with Conn.open(p.ingress_port, self.ctx, timeout=2) as c2:
                        answered = c2.request("GET", "/after-sigterm").status == 200
                except (OSError, ssl.SSLError, wire.ConnectionClosed, ValueError):
                    pass
                self.assertFalse(answered, "a new connection was served after SIGTERM")
                t.join(timeout=10)
                self.assertNotIn("error", out)
                resp = out["resp"]
                self.assertEqual(resp.status, 200)
                self.assertEqual(resp.json()["target"], "/slow/1500")
                rc = p.wait_exit(10)
                self.assertEqual(rc, 0, "exit code after SIGTERM; tail:\n" + p.tail())
                self.assertLess(time.monotonic() - t_sig, 8,
                                "exit waited for shutdown_grace_ms although the in-flight "
                                "request had finished after ~1.5 s")
                assert_not_received(self, b, b"/after-sigterm")

    def test_sigterm_with_idle_connections_exits_promptly(self):
        with Backend() as b:
            p = Proxy(base_config(self.pki, b.address, timeouts={"shutdown_grace_ms": 20000}))
            with p:
                idle = []
                for i in range(3):
                    c = Conn.open(p.ingress_port, self.ctx)
                    self.addCleanup(c.close)
                    self.assertEqual(c.request("GET", "/idle/%d" % i).status, 200)
                    idle.append(c)
                t0 = time.monotonic()
                p.signal(signal.SIGTERM)
                rc = p.wait_exit(10)
                self.assertEqual(rc, 0)
                self.assertLess(time.monotonic() - t0, 5,
                                "idle keep-alive connections held the shutdown")
                for c in idle:
                    self.assertTrue(c.closed_within(2)[0])

    def test_sigterm_grace_bounds_a_stuck_request(self):
        with Backend() as b:
            p = Proxy(base_config(self.pki, b.address, timeouts={"shutdown_grace_ms": 1000}))
            with p:
                c = Conn.open(p.ingress_port, self.ctx, timeout=15)
                self.addCleanup(c.close)
                c.send(wire.build_request("GET", "/slow/8000"))
                self.assertIsNotNone(b.wait_path("/slow/8000", 5))
                t0 = time.monotonic()
                p.signal(signal.SIGTERM)
                rc = p.wait_exit(8)
                dt = time.monotonic() - t0
                self.assertIsNotNone(rc, "fedproxy ignored shutdown_grace_ms")
                self.assertLess(dt, 4)
                self.assertGreater(dt, 0.7, "in-flight request not given its grace time")
                self.assertEqual(rc, 0)


if __name__ == "__main__":
    main()

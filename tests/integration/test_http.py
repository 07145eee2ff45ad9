#!/usr/bin/env python3
"""Ingress HTTP/1.1 data path (SPEC §1, §5): forwarding, keep-alive, pooling,
pipelining, streaming of 64 MiB bodies with bounded memory, chunked bodies,
Expect: 100-continue, hop-by-hop header removal.

Run: FEDPROXY_BIN=build/proxy/app/fedproxy python3 tests/integration/test_http.py
"""

import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fedtest import wire  # noqa: E402
from fedtest.backend import Backend  # noqa: E402
from fedtest.case import start_class_proxy, stop_class_proxy, main, rss_limit_kib, shared_pki  # noqa: E402
from fedtest.proxy import Conn, Proxy, RssSampler, base_config, client_context  # noqa: E402

BIG = 64 << 20


class HttpForwardingTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.pki = shared_pki()
        cls.backend = Backend().start()
        cls.proxy = Proxy(base_config(cls.pki, cls.backend.address))
        start_class_proxy(cls)
        cls.port = cls.proxy.ingress_port
        cls.ctx = client_context(cls.pki, cls.pki.client)

    @classmethod
    def tearDownClass(cls):
        stop_class_proxy(cls)

    def conn(self) -> Conn:
        c = Conn.open(self.port, self.ctx, timeout=30)
        self.addCleanup(c.close)
        return c

    def report_memory(self, label, sampler=None):
        mem = self.proxy.memory_kib()
        peak = max(mem["VmHWM"], sampler.max_rss if sampler else 0)
        print("\n  [%s] fedproxy VmRSS=%d KiB VmHWM=%d KiB sampled-max=%s KiB (limit %d KiB)"
              % (label, mem["VmRSS"], mem["VmHWM"],
                 sampler.max_rss if sampler else "-", rss_limit_kib()),
              file=sys.stderr)
        self.assertLess(peak, rss_limit_kib(),
                        "fedproxy memory grew with the body size (buffering?)")

    # -- basics --------------------------------------------------------------
    def test_keepalive_reuses_client_connection(self):
        c = self.conn()
        for i in range(3):
            resp = c.request("GET", "/ka/%d" % i)
            self.assertEqual(resp.status, 200)
            self.assertFalse(resp.wants_close(), resp.headers)
            self.assertEqual(resp.json()["target"], "/ka/%d" % i)
        # the same TLS connection still works after a pause
        time.sleep(0.3)
        self.assertEqual(c.request("GET", "/ka/after-pause").status, 200)

    def test_upstream_connection_reused_within_client_connection(self):
        c = self.conn()
        a = c.request("GET", "/pool/a").json()
        b = c.request("GET", "/pool/b").json()
        self.assertEqual(a["conn"], b["conn"],
                         "two sequential requests used two upstream connections")

    def test_upstream_pool_shared_across_client_connections(self):
        with Conn.open(self.port, self.ctx) as c1:
            first = c1.request("GET", "/pool/shared-1").json()["conn"]
        before = self.backend.connection_count()
        with Conn.open(self.port, self.ctx) as c2:
            second = c2.request("GET", "/pool/shared-2").json()["conn"]
        self.assertEqual(self.backend.connection_count(), before,
                         "a new upstream connection was opened although %d was idle" % first)
        self.assertLessEqual(second, before)

    def test_connection_close_honoured(self):
        c = self.conn()
        resp = c.request("GET", "/close-me", [("Connection", "close")])
        self.assertEqual(resp.status, 200)
        closed, extra = c.closed_within(3)
        self.assertTrue(closed, "connection stayed open after Connection: close")
        self.assertEqual(extra, b"")

    def test_post_small_body(self):
        body = b"hello federation" * 100
        resp = self.conn().request("POST", "/post/small", [("Content-Type", "text/plain")], body)
        j = resp.json()
        self.assertEqual(j["body_len"], len(body))
        self.assertEqual(j["body_sha256"], __import__("hashlib").sha256(body).hexdigest())

    def test_head_then_next_request(self):
        c = self.conn()
        resp = c.request("HEAD", "/bytes/1000")
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.header("content-length"), "1000")
        self.assertEqual(resp.body_len, 0)
        self.assertEqual(c.request("GET", "/after-head").json()["target"], "/after-head")

    def test_app_status_passed_through(self):
        c = self.conn()
        resp = c.request("GET", "/status/503")
        self.assertEqual(resp.status, 503)
        self.assertEqual(resp.json(), {"status": 503})
        self.assertEqual(c.request("GET", "/status/404").status, 404)

    def test_close_delimited_app_response(self):
        resp = self.conn().request("GET", "/nolength/300000")
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.body_len, 300000)
        self.assertEqual(resp.body_sha256, wire.pattern_sha256(300000))

    def test_pipelined_requests_answered_in_order(self):
        c = self.conn()
        # the middle one is slow: answers must still come back 1, 2, 3
        targets = ["/pipe/1", "/slow/300?pipe=2", "/pipe/3"]
        c.send(b"".join(wire.build_request("GET", t) for t in targets))
        got = [c.read_response().json()["target"] for _ in targets]
        self.assertEqual(got, targets)
        self.assertEqual(c.request("GET", "/pipe/after").status, 200)

    def test_pipelined_post_bodies(self):
        c = self.conn()
        reqs = [wire.build_request("POST", "/pipe-post/%d" % i, body=b"x" * (i * 1000 + 1))
                for i in range(3)]
        c.send(b"".join(reqs))
        for i in range(3):
            j = c.read_response().json()
            self.assertEqual((j["target"], j["body_len"]), ("/pipe-post/%d" % i, i * 1000 + 1))

    # -- streaming -----------------------------------------------------------
    def test_download_64mib_streamed(self):
        c = self.conn()
        t0 = time.monotonic()
        with RssSampler(self.proxy) as sampler:
            resp = c.request("GET", "/bytes/%d" % BIG, store_limit=0)
        dt = time.monotonic() - t0
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.body_len, BIG)
        self.assertEqual(resp.body_sha256, wire.pattern_sha256(BIG))
        print("\n  [download] 64 MiB in %.2f s (%.0f MiB/s)" % (dt, 64 / dt), file=sys.stderr)
        self.report_memory("download 64 MiB", sampler)

    def test_upload_64mib_streamed(self):
        c = self.conn()
        t0 = time.monotonic()
        with RssSampler(self.proxy) as sampler:
            c.send(wire.build_request("POST", "/upload/big", [
                ("Content-Type", "application/octet-stream"), ("Content-Length", str(BIG))]))
            for piece in wire.pattern_chunks(BIG, 256 * 1024):
                c.send(piece)
            resp = c.read_response()
        dt = time.monotonic() - t0
        j = resp.json()
        self.assertEqual(j["body_len"], BIG)
        self.assertEqual(j["body_sha256"], wire.pattern_sha256(BIG))
        print("\n  [upload] 64 MiB in %.2f s (%.0f MiB/s)" % (dt, 64 / dt), file=sys.stderr)
        self.report_memory("upload 64 MiB", sampler)

    def test_slow_client_reader_backpressure(self):
        """The client stops reading for 2 s: fedproxy must not slurp the whole
        64 MiB from the app into memory meanwhile."""
        c = self.conn()
        c.send(wire.build_request("GET", "/bytes/%d" % BIG))
        with RssSampler(self.proxy) as sampler:
            head = c.reader.read_until(wire.CRLF + wire.CRLF, 1 << 16)
            self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
            time.sleep(2.0)
            stalled = sampler.max_rss
            got = len(c.reader.buf)
            import hashlib
            h = hashlib.sha256(bytes(c.reader.buf))
            c.reader.buf.clear()
            deadline = time.monotonic() + 60
            while got < BIG and time.monotonic() < deadline:
                data = c.sock.recv(1 << 20)
                if not data:
                    break
                h.update(data[:BIG - got])
                got += len(data)
        self.assertEqual(got, BIG)
        self.assertEqual(h.hexdigest(), wire.pattern_sha256(BIG))
        print("\n  [slow reader] max VmRSS while the client stalled: %d KiB" % stalled,
              file=sys.stderr)
        self.assertLess(stalled, rss_limit_kib())
        self.report_memory("slow reader", sampler)

    def test_slow_app_reader_backpressure(self):
        """The app waits 2 s before reading a 64 MiB upload: fedproxy must not
        accept the whole body from the client into memory meanwhile."""
        c = self.conn()
        err = []

        def send_all():
            try:
                c.send(wire.build_request("POST", "/slowread/2000", [
                    ("Content-Length", str(BIG))]))
                for piece in wire.pattern_chunks(BIG, 256 * 1024):
                    c.send(piece)
            except Exception as e:  # noqa: BLE001
                err.append(e)

        with RssSampler(self.proxy) as sampler:
            t = threading.Thread(target=send_all, daemon=True)
            t.start()
            t.join(timeout=60)
            self.assertFalse(t.is_alive(), "upload did not finish within 60 s")
            self.assertEqual(err, [])
            j = c.read_response().json()
        self.assertEqual(j["body_len"], BIG)
        self.assertEqual(j["body_sha256"], wire.pattern_sha256(BIG))
        self.report_memory("slow app reader", sampler)

    def test_chunked_upload_intact(self):
        n = 5 * 1024 * 1024 + 123
        sizes = [1, 10, 4095, 65536, 300000]
        c = self.conn()
        c.send(wire.build_request("POST", "/upload/chunked", [("Transfer-Encoding", "chunked")]))
        buf = bytearray()
        i = 0
        for piece in wire.pattern_chunks(n, 1 << 20):
            buf += piece
            while len(buf) >= sizes[i % len(sizes)]:
                s = sizes[i % len(sizes)]
                c.send(wire.chunk(bytes(buf[:s])))
                del buf[:s]
                i += 1
        c.send(wire.chunk(bytes(buf)) + wire.LAST_CHUNK)
        resp = c.read_response()
        self.assertEqual(resp.status, 200)
        j = resp.json()
        self.assertEqual(j["body_len"], n)
        self.assertEqual(j["body_sha256"], wire.pattern_sha256(n))
        self.assertIn(j["framing"], ("chunked", "length"))
        # keep-alive continues after a chunked body
        self.assertEqual(c.request("GET", "/after-chunked").status, 200)

    def test_chunked_upload_with_extensions_and_trailer(self):
        c = self.conn()
        c.send(wire.build_request("POST", "/upload/chunk-ext", [("Transfer-Encoding", "chunked")])
               + b"5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n")
        j = c.read_response().json()
        self.assertEqual(j["body_len"], 11)
        self.assertEqual(j["body_sha256"], __import__("hashlib").sha256(b"hello world").hexdigest())

    def test_chunked_download_intact(self):
        n = 5 * 1024 * 1024 + 7
        resp = self.conn().request("GET", "/chunked/%d" % n)
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.body_len, n)
        self.assertEqual(resp.body_sha256, wire.pattern_sha256(n))

    # -- Expect / headers ----------------------------------------------------
    def test_expect_100_continue(self):
        body = b"z" * 50000
        c = self.conn()
        c.send(wire.build_request("POST", "/expect", [("Expect", "100-continue"),
                                                      ("Content-Length", str(len(body)))]))
        head = c.reader.read_until(wire.CRLF + wire.CRLF, 1 << 16)
        self.assertTrue(head.startswith(b"HTTP/1.1 100"), "expected 100 Continue, got %r" % head)
        c.send(body)
        resp = c.read_response()
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.json()["body_len"], len(body))
        self.assertEqual(c.request("GET", "/after-expect").status, 200)

    def test_hop_by_hop_headers_not_forwarded(self):
        resp = self.conn().request("GET", "/hop", [
            ("Connection", "keep-alive, X-Foo"),
            ("X-Foo", "must-not-pass"),
            ("Keep-Alive", "timeout=5"),
            ("TE", "trailers"),
            ("Proxy-Authorization", "Basic dXNlcjpwYXNz"),
            ("Proxy-Connection", "keep-alive"),
            ("Upgrade", "websocket"),
            ("X-Keep", "yes"),
        ])
        self.assertEqual(resp.status, 200)
        fwd = {k.lower(): v for k, v in resp.json()["headers"]}
        for h in ("x-foo", "keep-alive", "te", "proxy-authorization", "proxy-connection",
                  "upgrade"):
            self.assertNotIn(h, fwd, "hop-by-hop header %s was forwarded" % h)
        conn_hdr = fwd.get("connection", "").lower()
        self.assertNotIn("x-foo", conn_hdr)
        self.assertNotIn("upgrade", conn_hdr)
        self.assertEqual(fwd.get("x-keep"), "yes")
        self.assertIn("host", fwd)

    def test_spoofed_federation_headers_stripped(self):
        resp = self.conn().request("GET", "/spoof", [
            ("X-Federation-Peer", "evil"),
            ("x-federation-grant", "00000000-0000-0000-0000-000000000000"),
            ("X-Forwarded-Client-Cert", "Hash=00;URI=spiffe://evil/"),
            ("Client-Cert", ":AAAA:"),
            ("Client-Cert-Chain", ":AAAA:"),
        ])
        self.assertEqual(resp.status, 200)
        for k, v in resp.json()["headers"]:
            self.assertNotIn(v, ("evil", "00000000-0000-0000-0000-000000000000",
                                 "Hash=00;URI=spiffe://evil/", ":AAAA:"),
                             "spoofed %s: %s reached the app" % (k, v))


if __name__ == "__main__":
    main()

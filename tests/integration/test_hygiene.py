#!/usr/bin/env python3
"""Header hygiene, chunk extensions and retries (SPEC §1, §5), judged by what
the local app (the recording backend) received, not only by the status the
client saw.

Run: FEDPROXY_BIN=build/proxy/app/fedproxy python3 tests/integration/test_hygiene.py
"""

import os
import sys
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fedtest import wire  # noqa: E402
from fedtest.backend import Backend  # noqa: E402
from fedtest.case import assert_not_received, main, shared_pki, start_class_proxy, stop_class_proxy  # noqa: E402
from fedtest.proxy import Conn, Proxy, assert_json_error, base_config, client_context  # noqa: E402

CHUNKED = [("Transfer-Encoding", "chunked")]


class ProxyCase(unittest.TestCase):
    """One recording backend and one authenticate-only fedproxy per class."""

    @classmethod
    def setUpClass(cls):
        cls.pki = shared_pki()
        cls.ctx = client_context(cls.pki, cls.pki.client)
        cls.backend = Backend().start()
        cls.proxy = Proxy(base_config(cls.pki, cls.backend.address))
        start_class_proxy(cls)

    @classmethod
    def tearDownClass(cls):
        stop_class_proxy(cls)


class HygieneTest(ProxyCase):

    def marker(self) -> str:
        return "/m-" + uuid.uuid4().hex

    def refused(self, raw: bytes, marker: str, code: str = "bad_request"):
        """Sends raw request bytes; the answer is a 400 JSON error, the
        connection closes, and the app never saw the marker."""
        with Conn.open(self.proxy.ingress_port, self.ctx) as c:
            c.send(raw)
            resp = c.read_response()
            assert_json_error(self, resp, 400, code)
            self.assertTrue(resp.wants_close())
        assert_not_received(self, self.backend, marker.encode())
        return resp

    def received(self, path: str):
        got = self.backend.wait_path(path)
        self.assertIsNotNone(got, "the app did not receive " + path)
        return got

    # -- header names with underscores ---------------------------------------
    def test_underscore_names_refused(self):
        for name in ("X_Federation_Peer", "x-federation_grant", "X_Forwarded_For", "Some_Header"):
            m = self.marker()
            self.refused(wire.build_request("GET", m, [(name, "partner-labs")]), m)

    # -- duplicate credentials --------------------------------------------------
    def test_second_authorization_refused(self):
        m = self.marker()
        self.refused(wire.build_request("GET", m, [("Authorization", "Bearer fg-a"),
                                                   ("Authorization", "Bearer fg-b")]), m)
        m = self.marker()
        self.refused(wire.build_request("GET", m, [("authorization", "Basic eDp5"),
                                                   ("AUTHORIZATION", "Basic eDp5")]), m)

    def test_duplicate_host_refused(self):
        m = self.marker()
        self.refused(wire.build_request("GET", m, [("Host", "a"), ("Host", "b")]), m)

    # -- Connection naming fields that must reach the app ---------------------
    def test_connection_naming_protected_fields_refused(self):
        for value in ("Host", "close, host", "Content-Length", "Transfer-Encoding", "Authorization",
                      "X-Request-Id", "X-Federation-Peer", "keep-alive, x-federation-grant"):
            m = self.marker()
            self.refused(wire.build_request("GET", m, [("Connection", value)]), m)

    def test_connection_naming_other_fields_strips_them(self):
        m = self.marker()
        with Conn.open(self.proxy.ingress_port, self.ctx) as c:
            resp = c.request("GET", m, [("Connection", "keep-alive, X-Hop"), ("X-Hop", "1"), ("X-End", "2")])
            self.assertEqual(resp.status, 200)
        got = self.received(m)
        self.assertIsNone(got.header("x-hop"))
        self.assertEqual(got.header("x-end"), "2")

    # -- forwarding headers ------------------------------------------------------
    def test_forwarding_headers_replaced_with_the_peer_address(self):
        m = self.marker()
        spoofed = [("X-Forwarded-For", "10.9.9.9"), ("X-Forwarded-Proto", "http"),
                   ("Forwarded", "for=10.9.9.9;proto=http"), ("X-Real-IP", "10.9.9.9"),
                   ("X-Forwarded-Host", "admin.internal"), ("X-Forwarded-Prefix", "/admin"),
                   ("X-Original-URL", "/admin/delete"), ("X-Rewrite-URL", "/admin/delete"),
                   ("True-Client-IP", "10.9.9.9"), ("X-Client-IP", "10.9.9.9")]
        with Conn.open(self.proxy.ingress_port, self.ctx) as c:
            self.assertEqual(c.request("GET", m, spoofed).status, 200)
        got = self.received(m)
        self.assertEqual(wire.header_all(got.headers, "x-forwarded-for"), ["127.0.0.1"])
        self.assertEqual(wire.header_all(got.headers, "x-forwarded-proto"), ["https"])
        self.assertEqual(wire.header_all(got.headers, "forwarded"), ["for=127.0.0.1;proto=https"])
        for name in ("x-real-ip", "x-forwarded-host", "x-forwarded-prefix", "x-original-url",
                     "x-rewrite-url", "true-client-ip", "x-client-ip"):
            self.assertIsNone(got.header(name), name)
        assert_not_received(self, self.backend, b"10.9.9.9")
        assert_not_received(self, self.backend, b"/admin")

    # -- chunk extensions -----------------------------------------------------------
    def test_small_chunk_extensions_accepted_and_not_forwarded(self):
        m = self.marker()
        body = b"3;name=value;flag\r\nabc\r\n2;ext-" + uuid.uuid4().hex.encode() + b"\r\nde\r\n0;last\r\n\r\n"
        with Conn.open(self.proxy.ingress_port, self.ctx) as c:
            c.send(wire.build_request("POST", m, CHUNKED) + body)
            self.assertEqual(c.read_response("POST").status, 200)
        got = self.received(m)
        self.assertEqual(got.body_len, 5)
        self.assertEqual(got.framing, "chunked")
        assert_not_received(self, self.backend, b"name=value")
        assert_not_received(self, self.backend, b";ext-")

    def test_64k_of_extensions_on_one_chunk_refused(self):
        m = self.marker()
        body = b"1;" + b"e" * 65536 + b"\r\nx\r\n0\r\n\r\n"
        self.refused(wire.build_request("POST", m, CHUNKED) + body, m)
        self.assertIsNone(self.backend.wait_path(m, timeout=0.3), "a complete request reached the app")

    def test_many_chunks_with_extensions_refused(self):
        # 500 chunks x 200 bytes of extensions: 100 KB that no app reads.
        m = self.marker()
        body = b"".join(b"1;" + b"e" * 199 + b"\r\nx\r\n" for _ in range(500)) + b"0\r\n\r\n"
        with Conn.open(self.proxy.ingress_port, self.ctx) as c:
            c.send(wire.build_request("POST", m, CHUNKED) + body)
            resp = c.read_response("POST")
            assert_json_error(self, resp, 400, "bad_request")
        # The head may have been streamed on already; the request never completed.
        self.assertIsNone(self.backend.wait_path(m, timeout=0.5), "a complete request reached the app")


class UnderscoreModesTest(unittest.TestCase):
    """http.headers_with_underscores "drop" and "allow" (SPEC §5)."""

    def run_mode(self, mode: str):
        pki = shared_pki()
        with Backend() as backend:
            cfg = base_config(pki, backend.address, http={"headers_with_underscores": mode})
            with Proxy(cfg) as p, Conn.open(p.ingress_port, client_context(pki, pki.client)) as c:
                target = "/u-" + uuid.uuid4().hex
                resp = c.request("GET", target, [("X_Federation_Peer", "partner-labs"), ("X_Custom", "1"),
                                                 ("X-Plain", "2")])
                self.assertEqual(resp.status, 200)
                got = backend.wait_path(target)
                self.assertIsNotNone(got)
                return got

    def test_drop_removes_them(self):
        got = self.run_mode("drop")
        self.assertEqual([n for n, _ in got.headers if "_" in n], [])
        self.assertEqual(got.header("x-plain"), "2")
        # the identity header is fedproxy's own, never the peer's
        self.assertNotEqual(got.header("x-federation-peer"), "partner-labs")

    def test_allow_forwards_them_but_never_identity_lookalikes(self):
        got = self.run_mode("allow")
        self.assertEqual(got.header("x_custom"), "1")
        self.assertIsNone(got.header("x_federation_peer"))


class ChunkExtensionLimitsTest(unittest.TestCase):
    """limits.max_chunk_extension_bytes and ..._per_message are the operator's
    (";" + name counts: 4 bytes per chunk for ";123")."""

    def test_configured_limits(self):
        pki = shared_pki()
        with Backend() as backend:
            cfg = base_config(pki, backend.address, limits={"max_chunk_extension_bytes": 8,
                                                            "max_chunk_extension_bytes_per_message": 20})
            with Proxy(cfg) as p:
                ctx = client_context(pki, pki.client)
                for ext, chunks, status in ((b"1234567", 1, 200), (b"12345678", 1, 400), (b"123", 6, 400),
                                            (b"123", 5, 200)):
                    target = "/c-" + uuid.uuid4().hex
                    body = b"".join(b"1;" + ext + b"\r\nx\r\n" for _ in range(chunks)) + b"0\r\n\r\n"
                    with self.subTest(ext=ext, chunks=chunks), Conn.open(p.ingress_port, ctx) as c:
                        c.send(wire.build_request("POST", target, CHUNKED) + body)
                        self.assertEqual(c.read_response("POST").status, status)
                        got = backend.wait_path(target, timeout=0.5 if status == 400 else 5)
                        self.assertEqual(got is not None, status == 200)


class RetryTest(ProxyCase):
    """A request is retried on a fresh upstream connection only when its method
    is idempotent and no response byte arrived (SPEC §5)."""

    def count(self, target: str) -> int:
        return sum(1 for r in self.backend.snapshot() if r.target == target)

    def drop_over_a_reused_connection(self, method: str, body: bytes = b"") -> int:
        target = "/drop?id=" + uuid.uuid4().hex
        with Conn.open(self.proxy.ingress_port, self.ctx) as c:
            # Warm the upstream pool, so the next request goes out on a reused connection.
            self.assertEqual(c.request("GET", "/warm").status, 200)
            resp = c.request(method, target, body=body)
            assert_json_error(self, resp, 502, "upstream_unavailable")
        self.backend.wait_for(lambda reqs: any(r.target == target for r in reqs), timeout=2)
        return self.count(target)

    def test_post_is_never_sent_twice(self):
        self.assertEqual(self.drop_over_a_reused_connection("POST"), 1)
        self.assertEqual(self.drop_over_a_reused_connection("POST", b"payment=1"), 1)
        self.assertEqual(self.drop_over_a_reused_connection("PATCH"), 1)

    def test_idempotent_request_is_retried_once(self):
        # First try on the reused connection, one retry on a fresh one (which
        # the app drops too): two copies, then 502.
        self.assertEqual(self.drop_over_a_reused_connection("GET"), 2)
        self.assertEqual(self.drop_over_a_reused_connection("DELETE"), 2)


if __name__ == "__main__":
    main()

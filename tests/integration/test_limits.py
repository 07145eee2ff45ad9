#!/usr/bin/env python3
"""Malformed and oversized requests (SPEC §1, §6): answered by fedproxy with a
JSON error and never forwarded to the local app.

Run: FEDPROXY_BIN=build/proxy/app/fedproxy python3 tests/integration/test_limits.py
"""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fedtest import wire  # noqa: E402
from fedtest.backend import Backend  # noqa: E402
from fedtest.case import start_class_proxy, stop_class_proxy, assert_not_received, main, shared_pki  # noqa: E402
from fedtest.proxy import Conn, Proxy, assert_json_error, base_config, client_context  # noqa: E402

H = "Host: localhost\r\n"

# name -> raw request; each carries a unique marker path /bad/<name>
MALFORMED = {
    "cl_and_te": "POST /bad/cl_and_te HTTP/1.1\r\n" + H
                 + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "te_and_cl": "POST /bad/te_and_cl HTTP/1.1\r\n" + H
                 + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
    "dup_cl_differing": "POST /bad/dup_cl_differing HTTP/1.1\r\n" + H
                        + "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    "cl_list_differing": "POST /bad/cl_list_differing HTTP/1.1\r\n" + H
                         + "Content-Length: 5, 6\r\n\r\nhello!",
    "cl_not_a_number": "POST /bad/cl_not_a_number HTTP/1.1\r\n" + H
                       + "Content-Length: abc\r\n\r\n",
    "cl_negative": "POST /bad/cl_negative HTTP/1.1\r\n" + H + "Content-Length: -1\r\n\r\n",
    "te_gzip_chunked": "POST /bad/te_gzip_chunked HTTP/1.1\r\n" + H
                       + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    "te_identity": "POST /bad/te_identity HTTP/1.1\r\n" + H
                   + "Transfer-Encoding: identity\r\n\r\n",
    "te_xchunked": "POST /bad/te_xchunked HTTP/1.1\r\n" + H
                   + "Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
    "te_chunked_twice": "POST /bad/te_chunked_twice HTTP/1.1\r\n" + H
                        + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "obs_fold": "GET /bad/obs_fold HTTP/1.1\r\n" + H + "X-Folded: a\r\n  b\r\n\r\n",
    "bare_lf_header": "GET /bad/bare_lf_header HTTP/1.1\r\n" + H + "X-A: b\nX-B: c\r\n\r\n",
    "bare_lf_everywhere": "GET /bad/bare_lf_everywhere HTTP/1.1\nHost: localhost\n\n",
    "nul_in_value": "GET /bad/nul_in_value HTTP/1.1\r\n" + H + "X-A: a\x00b\r\n\r\n",
    "ctl_in_value": "GET /bad/ctl_in_value HTTP/1.1\r\n" + H + "X-A: a\x01b\r\n\r\n",
    "space_before_colon": "GET /bad/space_before_colon HTTP/1.1\r\n" + H
                          + "X-A : b\r\n\r\n",
    "bad_chunk_size": "POST /bad/bad_chunk_size HTTP/1.1\r\n" + H
                      + "Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    "chunk_size_overflow": "POST /bad/chunk_size_overflow HTTP/1.1\r\n" + H
                           + "Transfer-Encoding: chunked\r\n\r\n"
                           + "1" * 40 + "\r\nhello\r\n0\r\n\r\n",
    "bad_version": "GET /bad/bad_version HTTP/1.x\r\n" + H + "\r\n",
}


class MalformedRequestTest(unittest.TestCase):

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

    def send_raw(self, raw: bytes) -> wire.Response:
        with Conn.open(self.port, self.ctx) as c:
            c.send(raw)
            return c.read_response()

    def assert_never_forwarded(self, marker: bytes):
        # a sentinel request through a fresh connection gives fedproxy time to
        # (wrongly) forward the bad one first
        with Conn.open(self.port, self.ctx) as c:
            self.assertEqual(c.request("GET", "/sentinel").status, 200)
        time.sleep(0.1)
        assert_not_received(self, self.backend, marker, "the bad request reached the app")

    def test_malformed_requests_answered_400(self):
        for name, raw in MALFORMED.items():
            with self.subTest(case=name):
                resp = self.send_raw(raw.encode("latin-1"))
                assert_json_error(self, resp, 400, "bad_request")
                self.assert_never_forwarded(("/bad/%s " % name).encode())

    def test_connection_closed_after_400(self):
        with Conn.open(self.port, self.ctx) as c:
            c.send(MALFORMED["cl_and_te"].encode() + wire.build_request("GET", "/bad/smuggled"))
            assert_json_error(self, c.read_response(), 400, "bad_request")
            closed, extra = c.closed_within(3)
            self.assertTrue(closed, "400 for a framing error, but the connection stayed open "
                                    "for 3 s (it must be closed: the rest of the stream is "
                                    "unparseable)")
            self.assertNotIn(b"HTTP/1.1 200", extra)
        self.assert_never_forwarded(b"/bad/smuggled")

    def test_valid_requests_still_pass(self):
        # neighbours of the malformed cases that are fine
        ok = [
            "POST /good/cl HTTP/1.1\r\n" + H + "Content-Length: 5\r\n\r\nhello",
            "POST /good/te HTTP/1.1\r\n" + H
            + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            "GET /good/tab HTTP/1.1\r\n" + H + "X-A: a\tb\r\n\r\n",
            "GET /good/latin1 HTTP/1.1\r\n" + H + "X-A: caf\xe9\r\n\r\n",
        ]
        for raw in ok:
            with self.subTest(raw=raw[:20]):
                self.assertEqual(self.send_raw(raw.encode("latin-1")).status, 200)

    def test_request_line_over_8k_gets_414(self):
        target = "/long/" + "a" * (9 * 1024)
        resp = self.send_raw(wire.build_request("GET", target))
        assert_json_error(self, resp, 414, "uri_too_long")
        self.assert_never_forwarded(b"/long/aaaa")

    def test_request_line_under_8k_passes(self):
        target = "/longok/" + "a" * 7900
        resp = self.send_raw(wire.build_request("GET", target))
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.json()["target"], target)

    def test_headers_over_16k_get_431(self):
        headers = [("X-Big-%02d" % i, "b" * 1000) for i in range(17)]
        resp = self.send_raw(wire.build_request("GET", "/bighdr/over", headers))
        assert_json_error(self, resp, 431, "headers_too_large")
        self.assert_never_forwarded(b"/bighdr/over")

    def test_headers_under_16k_pass(self):
        headers = [("X-Big-%02d" % i, "b" * 1000) for i in range(14)]
        self.assertEqual(self.send_raw(wire.build_request("GET", "/bighdr/under", headers)).status,
                         200)

    def test_single_huge_header_gets_431(self):
        resp = self.send_raw(wire.build_request("GET", "/bighdr/one", [("X-One", "c" * 17000)]))
        assert_json_error(self, resp, 431, "headers_too_large")
        self.assert_never_forwarded(b"/bighdr/one")

    def test_over_100_header_fields_get_431(self):
        headers = [("X-F%03d" % i, "v") for i in range(101)]
        resp = self.send_raw(wire.build_request("GET", "/manyhdr/over", headers))
        assert_json_error(self, resp, 431, "headers_too_large")
        self.assert_never_forwarded(b"/manyhdr/over")

    def test_90_header_fields_pass(self):
        headers = [("X-F%03d" % i, "v") for i in range(89)]  # + Host = 90
        self.assertEqual(self.send_raw(wire.build_request("GET", "/manyhdr/ok", headers)).status,
                         200)


class ConfiguredLimitsTest(unittest.TestCase):
    """limits.max_request_line_bytes / max_header_bytes / max_header_count."""

    def test_limits_are_configurable(self):
        pki = shared_pki()
        with Backend() as backend:
            cfg = base_config(pki, backend.address, limits={
                "max_request_line_bytes": 1024, "max_header_bytes": 4096,
                "max_header_count": 10})
            with Proxy(cfg) as p:
                ctx = client_context(pki, pki.client)

                def send(raw):
                    with Conn.open(p.ingress_port, ctx) as c:
                        c.send(raw)
                        return c.read_response()
                assert_json_error(self, send(wire.build_request("GET", "/l/" + "a" * 2000)),
                                  414, "uri_too_long")
                assert_json_error(self, send(wire.build_request(
                    "GET", "/h", [("X-A", "b" * 5000)])), 431, "headers_too_large")
                assert_json_error(self, send(wire.build_request(
                    "GET", "/n", [("X-%d" % i, "v") for i in range(12)])),
                    431, "headers_too_large")
                self.assertEqual(send(wire.build_request("GET", "/l/" + "a" * 500)).status, 200)
                self.assertEqual(send(wire.build_request(
                    "GET", "/h", [("X-A", "b" * 2000)])).status, 200)


if __name__ == "__main__":
    main()

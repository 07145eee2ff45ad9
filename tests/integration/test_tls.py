#!/usr/bin/env python3
"""Ingress TLS policy (SPEC §2) with real clients: openssl s_client, curl and
Python ssl. Certificates are generated at test time (fedtest.pki).

Run: FEDPROXY_BIN=build/proxy/app/fedproxy python3 tests/integration/test_tls.py
"""

import os
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fedtest import wire  # noqa: E402
from fedtest.backend import Backend  # noqa: E402
from fedtest.case import (BackendTestCase, start_class_proxy, stop_class_proxy, assert_not_received, main, s_client, shared_pki,  # noqa: E402
                          try_mtls_request)
from fedtest.proxy import (TLS13_SUITES, Conn, Proxy, base_config,  # noqa: E402
                           client_context, tls_connect)

REFUSED = ("handshake_error", "alert", "closed", "reset")


class TlsIngressTest(unittest.TestCase):
    """One fedproxy with the test CA (no CRL)."""

    TLS = {}

    @classmethod
    def setUpClass(cls):
        cls.pki = shared_pki()
        cls.backend = Backend().start()
        cls.proxy = Proxy(base_config(cls.pki, cls.backend.address, tls=cls.TLS))
        start_class_proxy(cls)
        cls.port = cls.proxy.ingress_port

    @classmethod
    def tearDownClass(cls):
        stop_class_proxy(cls)

    # -- accepted ------------------------------------------------------------
    def _python_ok(self, issued, target):
        with Conn.open(self.port, client_context(self.pki, issued)) as c:
            resp = c.request("GET", target)
            self.assertEqual(resp.status, 200, resp)
            self.assertEqual(resp.json()["target"], target)
            self.assertEqual(c.sock.version(), "TLSv1.3")
            self.assertIn(c.sock.cipher()[0], TLS13_SUITES)
        self.assertIsNotNone(self.backend.wait_path(target, 2), "request did not reach the app")

    def test_python_ssl_client_reaches_backend(self):
        self._python_ok(self.pki.client, "/tls/python-ecdsa")

    def test_rsa2048_client_accepted(self):
        self._python_ok(self.pki.client_rsa, "/tls/python-rsa")

    def test_p384_client_accepted(self):
        self._python_ok(self.pki.client_p384, "/tls/python-p384")

    def test_client_with_noncritical_grant_extension_accepted(self):
        self._python_ok(self.pki.client_grant, "/tls/python-grant-oid")

    def test_curl_client_cert(self):
        p = subprocess.run(
            ["curl", "-sS", "--max-time", "10", "--tlsv1.3",
             "--resolve", "localhost:%d:127.0.0.1" % self.port,
             "--cacert", self.pki.ca.crt, "--cert", self.pki.client.crt,
             "--key", self.pki.client.key, "-w", "\n%{http_code}",
             "https://localhost:%d/tls/curl?x=1" % self.port],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
        self.assertEqual(p.returncode, 0, p.stderr.decode(errors="replace"))
        body, _, code = p.stdout.rpartition(b"\n")
        self.assertEqual(code, b"200")
        self.assertIn(b'"/tls/curl?x=1"', body)
        self.assertIsNotNone(self.backend.wait_path("/tls/curl", 2))

    def test_each_allowed_suite_negotiates_and_nothing_else(self):
        req = b"GET /tls/suite HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        for suite in sorted(TLS13_SUITES):
            with self.subTest(suite=suite):
                p = s_client(self.pki, self.port, "-tls1_3", "-ciphersuites", suite,
                             "-cert", self.pki.client.crt, "-key", self.pki.client.key,
                             send=req)
                out = p.stdout.decode(errors="replace")
                self.assertIn("Cipher is %s" % suite, out, out[-1500:])
                self.assertIn("HTTP/1.1 200", out, out[-1500:])
        # a TLS 1.3 suite outside the three must not be negotiated
        p = s_client(self.pki, self.port, "-tls1_3", "-ciphersuites", "TLS_AES_128_CCM_SHA256",
                     "-cert", self.pki.client.crt, "-key", self.pki.client.key, send=req)
        out = p.stdout.decode(errors="replace")
        self.assertNotIn("Cipher is TLS_AES_128_CCM_SHA256", out, out[-1500:])
        self.assertNotIn("HTTP/1.1", out, out[-1500:])

    def test_python_default_offer_gets_allowed_suite(self):
        # Python offers all five TLS 1.3 suites; the server must pick one of the three.
        with tls_connect(self.port, client_context(self.pki, self.pki.client)) as s:
            self.assertIn(s.cipher()[0], TLS13_SUITES)

    def test_session_resumption_with_ticket(self):
        ctx = client_context(self.pki, self.pki.client)
        with Conn.open(self.port, ctx) as c:
            self.assertEqual(c.request("GET", "/tls/ticket-1").status, 200)
            session = c.sock.session  # tickets arrive after the handshake
        self.assertIsNotNone(session)
        self.assertTrue(session.has_ticket, "no TLS 1.3 session ticket was issued")
        with Conn(tls_connect(self.port, ctx, session=session)) as c:
            resp = c.request("GET", "/tls/ticket-2")
            self.assertEqual(resp.status, 200)
            self.assertTrue(c.sock.session_reused, "session was not resumed")

    # -- refused -------------------------------------------------------------
    def test_tls12_refused_openssl(self):
        p = s_client(self.pki, self.port, "-tls1_2", "-cert", self.pki.client.crt,
                     "-key", self.pki.client.key,
                     send=b"GET /tls/v12 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        out = p.stdout.decode(errors="replace")
        self.assertNotEqual(p.returncode, 0, out[-1500:])
        self.assertNotIn("HTTP/1.1", out)
        self.assertNotIn("New, TLSv1.2", out, out[-1500:])

    def test_tls12_refused_python(self):
        ctx = client_context(self.pki, self.pki.client, max_tls12=True)
        outcome, _, detail = try_mtls_request(self.port, ctx, "/tls/v12py")
        self.assertIn(outcome, REFUSED, detail)
        self.assertEqual(outcome, "handshake_error", "TLS 1.2 handshake must fail: %s" % detail)

    def _refused(self, issued, target, code, detail_word):
        ctx = client_context(self.pki, issued)
        outcome, local, detail = try_mtls_request(self.port, ctx, target)
        self.assertIn(outcome, REFUSED, "got %s: %r" % (outcome, detail))
        peer = "127.0.0.1:%d" % local
        rec = self.proxy.wait_log(lambda r: r.get("msg") == "handshake_failed"
                                  and r.get("peer_addr") == peer, 5)
        self.assertIsNotNone(rec, "no handshake_failed log for %s; tail:\n%s"
                             % (peer, self.proxy.tail()))
        # reason: the bounded code (the metric's label); detail: the text
        self.assertEqual(rec.get("reason"), code, rec)
        self.assertIn(detail_word, str(rec.get("detail", "")).lower(), rec)
        for key in ("ts", "level"):
            self.assertIn(key, rec)
        # it never reached the app
        time.sleep(0.1)
        assert_not_received(self, self.backend, target.encode())
        return rec

    def test_no_client_cert_refused(self):
        self._refused(None, "/tls/nocert", "no_certificate", "no client certificate")

    def test_untrusted_ca_refused(self):
        self._refused(self.pki.client_untrusted, "/tls/untrusted", "untrusted_issuer", "not trusted")

    def test_expired_cert_refused(self):
        self._refused(self.pki.client_expired, "/tls/expired", "certificate_expired", "expired")

    def test_no_client_cert_refused_openssl_and_curl(self):
        p = s_client(self.pki, self.port, "-tls1_3",
                     send=b"GET /tls/nocert-ossl HTTP/1.1\r\nHost: localhost\r\n"
                          b"Connection: close\r\n\r\n")
        self.assertNotIn(b"HTTP/1.1", p.stdout)
        c = subprocess.run(
            ["curl", "-sS", "--max-time", "10", "--tlsv1.3",
             "--resolve", "localhost:%d:127.0.0.1" % self.port, "--cacert", self.pki.ca.crt,
             "https://localhost:%d/tls/nocert-curl" % self.port],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
        self.assertNotEqual(c.returncode, 0)
        self.assertNotIn(b"HTTP/1.1", c.stdout)
        assert_not_received(self, self.backend, b"/tls/nocert")

    def test_plaintext_http_gets_no_http_answer(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        try:
            s.sendall(b"GET /tls/plain HTTP/1.1\r\nHost: localhost\r\n\r\n")
            closed, got = wire.is_closed(s, 5)
        finally:
            s.close()
        self.assertFalse(got.startswith(b"HTTP/"), got[:100])
        self.assertNotIn(b"HTTP/1.", got)
        self.assertTrue(closed, "fedproxy kept a plaintext connection open for 5 s")
        assert_not_received(self, self.backend, b"/tls/plain")

    def test_service_continues_after_refusals(self):
        for issued in (None, self.pki.client_untrusted, self.pki.client_expired):
            try_mtls_request(self.port, client_context(self.pki, issued), "/tls/noise")
        self._python_ok(self.pki.client, "/tls/after-refusals")


class RevocationTest(TlsIngressTest):
    """Same suite again with tls.crl (PEM) loaded, plus the revoked client."""

    @classmethod
    def setUpClass(cls):
        cls.TLS = {"crl": shared_pki().crl}
        super().setUpClass()

    def test_revoked_cert_refused(self):
        self._refused(self.pki.client_revoked, "/tls/revoked", "certificate_revoked", "revoked")


class DualTrustAndCrlVariantsTest(BackendTestCase):
    """Several CAs in ca_bundle (rotation window) and a DER CRL."""

    def test_both_cas_of_a_dual_bundle_trusted(self):
        cfg = base_config(self.pki, self.backend.address,
                          tls={"ca_bundle": self.pki.ca_bundle_dual})
        with Proxy(cfg) as p:
            for issued, target in ((self.pki.client, "/dual/ca1"),
                                   (self.pki.client_ca2, "/dual/ca2")):
                with self.subTest(target=target):
                    with Conn.open(p.ingress_port, client_context(self.pki, issued)) as c:
                        self.assertEqual(c.request("GET", target).status, 200)

    def test_der_crl_revokes(self):
        cfg = base_config(self.pki, self.backend.address, tls={"crl": self.pki.crl_der})
        with Proxy(cfg) as p:
            with Conn.open(p.ingress_port, client_context(self.pki, self.pki.client)) as c:
                self.assertEqual(c.request("GET", "/der/ok").status, 200)
            outcome, _, detail = try_mtls_request(
                p.ingress_port, client_context(self.pki, self.pki.client_revoked), "/der/revoked")
            self.assertIn(outcome, REFUSED, detail)
            assert_not_received(self, self.backend, b"/der/revoked")

    def test_stale_crl_fails_closed(self):
        cfg = base_config(self.pki, self.backend.address, tls={"crl": self.pki.crl_stale})
        with Proxy(cfg) as p:
            outcome, _, detail = try_mtls_request(
                p.ingress_port, client_context(self.pki, self.pki.client), "/stale/closed")
            self.assertIn(outcome, REFUSED, "a CRL past nextUpdate must fail closed: %r"
                          % (detail,))
            assert_not_received(self, self.backend, b"/stale/closed")

    def test_stale_crl_fail_open(self):
        cfg = base_config(self.pki, self.backend.address,
                          tls={"crl": self.pki.crl_stale, "crl_fail_open": True})
        with Proxy(cfg) as p:
            with Conn.open(p.ingress_port, client_context(self.pki, self.pki.client)) as c:
                self.assertEqual(c.request("GET", "/stale/open").status, 200)
            # still revoked: the CRL is stale, not ignored
            outcome, _, detail = try_mtls_request(
                p.ingress_port, client_context(self.pki, self.pki.client_revoked), "/stale/rev")
            self.assertIn(outcome, REFUSED, detail)


if __name__ == "__main__":
    main()

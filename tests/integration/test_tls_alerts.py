#!/usr/bin/env python3
"""Refused TLS handshakes end with the most specific fatal alert, readable by
real clients (SPEC §2), and the log line / metric name the same cause with a
bounded code (SPEC §10 "handshake failures by reason").

mbedTLS alone sends a TLS 1.3 server's alert about the client's certificate
under its handshake keys, which no client reads with any more, so clients
used to see "bad record mac" or a bare close; fedproxy sends it under the
application keys (proxy/tls/tls_engine.cpp, send_failure_alert).

Run: FEDPROXY_BIN=build/proxy/app/fedproxy python3 tests/integration/test_tls_alerts.py
"""

import os
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fedtest import promtext  # noqa: E402
from fedtest.backend import Backend  # noqa: E402
from fedtest.case import (assert_not_received, main, s_client, shared_pki,  # noqa: E402
                          start_class_proxy, stop_class_proxy, try_mtls_request)
from fedtest.proxy import Proxy, base_config, client_context  # noqa: E402
from fedtest.reload import admin_request  # noqa: E402


class TlsAlertTest(unittest.TestCase):
    """One fedproxy with the test CA and its CRL."""

    @classmethod
    def setUpClass(cls):
        cls.pki = shared_pki()
        cls.backend = Backend().start()
        cls.proxy = Proxy(base_config(cls.pki, cls.backend.address, tls={"crl": cls.pki.crl}))
        start_class_proxy(cls)
        cls.port = cls.proxy.ingress_port

    @classmethod
    def tearDownClass(cls):
        stop_class_proxy(cls)

    def failures(self, code: str) -> float:
        status, body = admin_request(self.proxy.admin_port, "GET", "/metrics")
        self.assertEqual(status, 200)
        fams = promtext.parse(body.decode("utf-8"))
        for s in fams["fedproxy_handshake_failures_total"].samples:
            if s.labels.get("reason") == code:
                return s.value
        self.fail("no fedproxy_handshake_failures_total{reason=%r}" % code)

    def logged(self, local_port: int, code: str, detail_word: str) -> dict:
        peer = "127.0.0.1:%d" % local_port
        rec = self.proxy.wait_log(lambda r: r.get("msg") == "handshake_failed"
                                  and r.get("peer_addr") == peer, 5)
        self.assertIsNotNone(rec, "no handshake_failed log for %s; tail:\n%s" % (peer, self.proxy.tail()))
        self.assertEqual(rec.get("reason"), code, rec)
        self.assertIn(detail_word, rec.get("detail", "").lower(), rec)
        return rec

    def python_refused(self, issued, target: str, openssl_reason: str, code: str, detail_word: str):
        """A Python ssl client gets the alert as an SSLError naming it: during
        the handshake (alerts the server sends before its Finished) or at the
        first read (TLS 1.3: the client is done after its own Finished)."""
        before = self.failures(code)
        outcome, local, detail = try_mtls_request(self.port, client_context(self.pki, issued), target)
        self.assertIn(outcome, ("alert", "handshake_error"), "got %s: %r" % (outcome, detail))
        self.assertIn(openssl_reason, str(detail))
        self.logged(local, code, detail_word)
        deadline = time.monotonic() + 5
        while self.failures(code) < before + 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertGreaterEqual(self.failures(code), before + 1)
        time.sleep(0.1)
        assert_not_received(self, self.backend, target.encode())

    # -- Python ssl (OpenSSL) ---------------------------------------------------
    def test_no_certificate_certificate_required(self):
        self.python_refused(None, "/alerts/nocert", "TLSV13_ALERT_CERTIFICATE_REQUIRED",
                            "no_certificate", "no client certificate")

    def test_untrusted_issuer_unknown_ca(self):
        self.python_refused(self.pki.client_untrusted, "/alerts/untrusted", "TLSV1_ALERT_UNKNOWN_CA",
                            "untrusted_issuer", "not trusted")

    def test_expired_certificate_expired(self):
        self.python_refused(self.pki.client_expired, "/alerts/expired", "SSLV3_ALERT_CERTIFICATE_EXPIRED",
                            "certificate_expired", "expired")

    def test_revoked_certificate_revoked(self):
        self.python_refused(self.pki.client_revoked, "/alerts/revoked", "SSLV3_ALERT_CERTIFICATE_REVOKED",
                            "certificate_revoked", "revoked")

    def test_tls12_protocol_version(self):
        before = self.failures("protocol_version")
        ctx = client_context(self.pki, self.pki.client, max_tls12=True)
        outcome, local, detail = try_mtls_request(self.port, ctx, "/alerts/tls12")
        self.assertEqual(outcome, "handshake_error", detail)
        self.assertIn("TLSV1_ALERT_PROTOCOL_VERSION", str(detail))
        self.logged(local, "protocol_version", "protocol version")
        self.assertGreaterEqual(self.failures("protocol_version"), before + 1)

    # -- openssl s_client -------------------------------------------------------
    def s_client_output(self, *args: str) -> str:
        req = b"GET /alerts/s_client HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        p = s_client(self.pki, self.port, "-tls1_3", *args, send=req)
        out = (p.stdout + p.stderr).decode(errors="replace")
        self.assertNotIn("HTTP/1.1 200", out)
        return out

    def test_s_client_sees_certificate_required(self):
        out = self.s_client_output()
        self.assertRegex(out, r"alert certificate required|alert number 116", out[-2000:])
        self.assertNotIn("bad record mac", out.lower(), out[-2000:])

    def test_s_client_sees_unknown_ca(self):
        c = self.pki.client_untrusted
        out = self.s_client_output("-cert", c.crt, "-key", c.key)
        self.assertRegex(out, r"alert unknown ca|alert number 48", out[-2000:])

    def test_s_client_sees_certificate_revoked(self):
        c = self.pki.client_revoked
        out = self.s_client_output("-cert", c.crt, "-key", c.key)
        self.assertRegex(out, r"alert certificate revoked|alert number 44", out[-2000:])

    def test_no_shared_group_handshake_failure(self):
        # mbedTLS fails a ClientHello without a common group silently; the
        # client used to wait for the TCP close.
        before = self.failures("handshake_failure")
        c = self.pki.client
        out = self.s_client_output("-groups", "ffdhe2048", "-cert", c.crt, "-key", c.key)
        self.assertRegex(out, r"alert handshake failure|alert number 40", out[-2000:])
        deadline = time.monotonic() + 5
        while self.failures("handshake_failure") < before + 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertGreaterEqual(self.failures("handshake_failure"), before + 1)

    def test_metric_labels_are_the_closed_set(self):
        status, body = admin_request(self.proxy.admin_port, "GET", "/metrics")
        labels = set(re.findall(r'fedproxy_handshake_failures_total\{reason="([^"]*)"\}', body.decode()))
        self.assertEqual(labels, {
            "no_certificate", "untrusted_issuer", "certificate_expired", "certificate_not_yet_valid",
            "certificate_revoked", "crl_stale", "bad_certificate", "bad_signature", "protocol_version",
            "handshake_failure", "protocol_error", "peer_alert", "bad_record_mac", "not_tls",
            "peer_closed", "timeout", "other"})


if __name__ == "__main__":
    main()

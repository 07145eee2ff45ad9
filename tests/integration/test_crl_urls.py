#!/usr/bin/env python3
"""CRLs that refresh themselves (issue 17, SPEC §2): tls.crl_urls.

A real HTTP server (a thread here) publishes the CRL of an organisation's
CA; fedproxy fetches it at start, every tls.crl_refresh_ms, and swaps a new
one in atomically with a snapshot:

- a certificate revoked after start is refused once the new CRL is
  published, with no reload asked and no file touched;
- a fetch that brings nothing usable (HTTP 500, garbage, a CRL signed by a
  CA fedproxy does not trust, an older CRL than the one in use) keeps the CRL
  in use: revoked stays revoked, good stays good; /status and the metrics
  say why;
- a URL that has never delivered fails closed (handshakes refused,
  /readyz 503) until its CRL arrives;
- CRL age and fetch failures in /status and /metrics; every change audited.

Run: FEDPROXY_BIN=build/proxy/app/fedproxy python3 tests/integration/test_crl_urls.py
"""

import http.server
import os
import shutil
import ssl
import sys
import tempfile
import threading
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fedtest.backend import Backend  # noqa: E402
from fedtest.case import main, shared_pki  # noqa: E402
from fedtest.pki import PARTNER_URI, CertAuthority  # noqa: E402
from fedtest.policy import grant, new_id, peer, policy_config, read_audit  # noqa: E402
from fedtest.proxy import Conn, Proxy, client_context, free_port, tls_connect  # noqa: E402
from fedtest.reload import admin_request, admin_status, wait_status, wait_until  # noqa: E402

PEER = "partner-labs"


class CrlServer:
    """Serves whatever `body`/`status` hold at /ca.crl; counts the GETs."""

    def __init__(self, port: int = 0):
        self.body = b""
        self.status = 200
        self.gets = 0
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                owner.gets += 1
                body, status = owner.body, owner.status
                self.send_response(status)
                self.send_header("Content-Type", "application/pkix-crl")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


class CrlUrlsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pki = shared_pki()
        cls.tmp = tempfile.mkdtemp(prefix="fedtest-crlurls-")
        cls.ca = CertAuthority(os.path.join(cls.tmp, "org-ca"), "partner-labs CA")
        cls.other_ca = CertAuthority(os.path.join(cls.tmp, "other-ca"), "untrusted CA")
        cls.bundle = os.path.join(cls.tmp, "ca-bundle.pem")
        with open(cls.bundle, "wb") as f:
            f.write(read_bytes(cls.pki.ca.crt) + read_bytes(cls.ca.crt))
        cls.backend = Backend().start()
        cls.gid = new_id()

    @classmethod
    def tearDownClass(cls):
        cls.backend.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def issue(self):
        return self.ca.issue(self.tmp, "leaf-" + uuid.uuid4().hex[:10], sans=["URI:" + PARTNER_URI])

    def crl(self, **kw) -> bytes:
        return read_bytes(self.ca.gencrl(os.path.join(self.tmp, "crl-%s.pem" % uuid.uuid4().hex[:8]), **kw))

    def start(self, url: str, **tls) -> Proxy:
        self.audit = os.path.join(tempfile.mkdtemp(dir=self.tmp), "audit.jsonl")
        cfg = policy_config(self.pki, self.backend.address, peers=[peer(PEER, PARTNER_URI)],
                            grants=[grant(self.gid, PEER, ["tasks"])],
                            tls={"ca_bundle": self.bundle, "crl_urls": [url], "crl_refresh_ms": 1000, **tls},
                            audit={"path": self.audit})
        proxy = Proxy(cfg, wait_for=("ingress", "admin")).start()
        self.addCleanup(proxy.stop)
        return proxy

    def status_of(self, proxy, cert) -> object:
        """The HTTP status a request with `cert` gets, or "refused" when the handshake fails."""
        try:
            with Conn(tls_connect(proxy.ingress_port, client_context(self.pki, cert))) as c:
                return c.request("GET", "/api/v1/tasks", [("Authorization", "Bearer fg-" + self.gid)]).status
        except (ssl.SSLError, ConnectionError, OSError):
            return "refused"

    def crl_url(self, proxy) -> dict:
        return admin_status(proxy.admin_port)["crl"]["urls"][0]

    def test_a_revocation_published_later_is_enforced_without_a_reload(self):
        server = CrlServer()
        self.addCleanup(server.stop)
        good, later = self.issue(), self.issue()
        server.body = self.crl()
        url = "http://127.0.0.1:%d/ca.crl" % server.port
        proxy = self.start(url)
        self.assertTrue(wait_status(proxy.admin_port, lambda s: s["crl"]["state"] == "current", 10))
        self.assertEqual(self.status_of(proxy, good), 200)
        self.assertEqual(self.status_of(proxy, later), 200)
        status, _ = admin_request(proxy.admin_port, "GET", "/readyz")
        self.assertEqual(status, 200)
        first = self.crl_url(proxy)
        self.assertTrue(first["has_crl"])
        self.assertIn("partner-labs CA", first["issuer"])
        time.sleep(1.1)  # the next CRL's thisUpdate must be later (one-second resolution)
        self.ca.revoke(later)
        server.body = self.crl()
        self.assertTrue(wait_until(lambda: self.status_of(proxy, later) == "refused", 10),
                        "the newly revoked certificate is still accepted")
        self.assertEqual(self.status_of(proxy, good), 200)
        self.assertGreater(self.crl_url(proxy)["this_update"], first["this_update"])
        events = [r for r in read_audit(self.audit) if r.get("type") == "event" and r.get("event") == "crl.updated"]
        self.assertEqual([e["url"] for e in events], [url, url])  # the first CRL, then the new one
        self.assertLess(int(events[0]["this_update"]), int(events[1]["this_update"]))
        status, body = admin_request(proxy.admin_port, "GET", "/metrics")
        text = body.decode()
        self.assertIn('fedproxy_crl_age_seconds{url="%s"}' % url, text)
        self.assertIn('fedproxy_crl_fetch_failures_total{url="%s"} 0' % url, text)

    def test_a_bad_fetch_keeps_the_crl_in_use(self):
        server = CrlServer()
        self.addCleanup(server.stop)
        good, revoked = self.issue(), self.issue()
        self.ca.revoke(revoked)
        server.body = self.crl()
        proxy = self.start("http://127.0.0.1:%d/ca.crl" % server.port)
        self.assertTrue(wait_status(proxy.admin_port, lambda s: s["crl"]["state"] == "current", 10))
        in_use = self.crl_url(proxy)["this_update"]
        older = self.crl(lastupdate=time.strftime("%Y%m%d%H%M%SZ", time.gmtime(time.time() - 86400)))
        foreign = read_bytes(self.other_ca.gencrl(os.path.join(self.tmp, "foreign.pem")))
        cases = [(500, b"oops", "HTTP 500"), (200, b"not a crl", "is not a CRL"),
                 (200, foreign, "not signed by a CA of tls.ca_bundle"), (200, older, "older")]
        for status, body, why in cases:
            with self.subTest(why=why):
                before = self.crl_url(proxy)["failures"]
                server.status, server.body = status, body
                got = wait_until(lambda: self.crl_url(proxy)["failures"] > before and self.crl_url(proxy), 10)
                self.assertTrue(got, "no failed fetch recorded")
                self.assertIn(why, got["last_error"])
                self.assertEqual(got["this_update"], in_use)
                self.assertEqual(self.status_of(proxy, revoked), "refused")
                self.assertEqual(self.status_of(proxy, good), 200)

    def test_a_url_that_never_delivered_fails_closed(self):
        port = free_port()  # nothing listens yet
        good = self.issue()
        proxy = self.start("http://127.0.0.1:%d/ca.crl" % port)
        s = wait_status(proxy.admin_port, lambda s: s["crl"]["urls"][0]["failures"] >= 1, 10)
        self.assertTrue(s)
        self.assertEqual(s["crl"]["state"], "incomplete_fail_closed")
        self.assertEqual(self.status_of(proxy, good), "refused")
        status, body = admin_request(proxy.admin_port, "GET", "/readyz")
        self.assertEqual(status, 503, body)
        self.assertIn(b'"crl":false', body)
        server = CrlServer(port)  # the distribution point comes up
        self.addCleanup(server.stop)
        server.body = self.crl()
        self.assertTrue(wait_until(lambda: self.status_of(proxy, good) == 200, 45))
        self.assertEqual(admin_request(proxy.admin_port, "GET", "/readyz")[0], 200)

    def test_fail_open_serves_while_the_url_never_delivered(self):
        good = self.issue()
        proxy = self.start("http://127.0.0.1:%d/ca.crl" % free_port(), crl_fail_open=True)
        self.assertTrue(wait_status(proxy.admin_port, lambda s: s["crl"]["state"] == "incomplete_fail_open", 10))
        self.assertEqual(self.status_of(proxy, good), 200)


if __name__ == "__main__":
    main()

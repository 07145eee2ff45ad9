#!/usr/bin/env python3
"""The admin API of SPEC §10 through the real binary: every endpoint answers
with the documented fields, /metrics parses with a strict Prometheus
text-format parser (fedtest/promtext.py), and its counters move as requests,
denials, handshake failures and reloads happen.

Run: FEDPROXY_BIN=build/proxy/app/fedproxy python3 tests/integration/test_admin.py
"""

import datetime
import json
import os
import shutil
import ssl
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fedtest import promtext  # noqa: E402
from fedtest.backend import Backend  # noqa: E402
from fedtest.case import main, shared_pki, start_class_proxy, stop_class_proxy  # noqa: E402
from fedtest.pki import NODE_URI, PARTNER_URI, openssl  # noqa: E402
from fedtest.policy import grant, new_id, peer, policy_config  # noqa: E402
from fedtest.proxy import Conn, Proxy, base_config, client_context, free_port  # noqa: E402
from fedtest.reload import admin_request, wait_until  # noqa: E402

PEER = "partner-labs"
SOON_PEER = "soon-org"
SOON_URI = "spiffe://soon.example/nodes/a"


def iso_in(days: float) -> str:
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=days)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


class PromTextParserTest(unittest.TestCase):
    """The parser the endpoint tests rely on must itself reject bad output."""

    GOOD = ("# HELP a_total A counter.\n# TYPE a_total counter\na_total{x=\"1\"} 3\n"
            "# HELP h Latency.\n# TYPE h histogram\n"
            "h_bucket{le=\"0.1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 0.3\nh_count 2\n")

    def test_accepts_good_text(self):
        fams = promtext.parse(self.GOOD)
        self.assertEqual(fams["a_total"].value(x="1"), 3)
        self.assertEqual(fams["h"].value("h_count"), 2)

    def test_rejects_bad_text(self):
        bad = {
            "no final newline": self.GOOD[:-1],
            "blank line": self.GOOD.replace("a_total{x=\"1\"} 3\n", "a_total{x=\"1\"} 3\n\n"),
            "bad value": self.GOOD.replace("} 3", "} three"),
            "bad escape": self.GOOD.replace("x=\"1\"", "x=\"\\q\""),
            "unterminated label": self.GOOD.replace("x=\"1\"}", "x=\"1}"),
            "duplicate series": self.GOOD.replace("a_total{x=\"1\"} 3\n", "a_total{x=\"1\"} 3\na_total{x=\"1\"} 4\n"),
            "TYPE after samples": self.GOOD + "# TYPE a_total counter\n",
            "counter without _total": self.GOOD.replace("a_total", "a"),
            "non-cumulative buckets": self.GOOD.replace("le=\"0.1\"} 1", "le=\"0.1\"} 5"),
            "+Inf != count": self.GOOD.replace("h_count 2", "h_count 3"),
            "no +Inf": self.GOOD.replace("h_bucket{le=\"+Inf\"} 2\n", ""),
            "interleaved": self.GOOD + "a_total{x=\"2\"} 1\n",
            "bad metric name": self.GOOD.replace("a_total{", "9a_total{"),
            "two HELP": self.GOOD.replace("# HELP h Latency.\n", "# HELP h Latency.\n# HELP h Again.\n"),
        }
        for what, text in bad.items():
            with self.subTest(what=what):
                with self.assertRaises(promtext.PromFormatError):
                    promtext.parse(text)


class AdminTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pki = pki = shared_pki()
        cls.tmp = tempfile.mkdtemp(prefix="fedtest-admin-")
        cls.gid = new_id()
        cls.client = pki.issue_client("admin-a", PARTNER_URI, grant_id=cls.gid)
        peers = [peer(PEER, PARTNER_URI),
                 peer(SOON_PEER, SOON_URI, expires_at=iso_in(10))]
        grants = [grant(cls.gid, PEER, ["tasks"]), grant(new_id(), SOON_PEER, ["tasks"])]
        cls.backend = Backend().start()
        cls.cfg = policy_config(pki, cls.backend.address, peers=peers, grants=grants,
                                audit={"path": os.path.join(cls.tmp, "audit.jsonl")})
        cls.proxy = Proxy(cls.cfg)
        start_class_proxy(cls)
        cls.config_path = cls.proxy.config_path

    @classmethod
    def tearDownClass(cls):
        stop_class_proxy(cls)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    # -- helpers --------------------------------------------------------------
    def get(self, path, method="GET"):
        return admin_request(self.proxy.admin_port, method, path)

    def get_json(self, path, method="GET", expect=200):
        status, body = self.get(path, method)
        self.assertEqual(status, expect, body[:300])
        return json.loads(body)

    def metrics(self) -> dict:
        status, body = self.get("/metrics")
        self.assertEqual(status, 200)
        return promtext.parse(body.decode("utf-8"))

    def value(self, fams, family, sample=None, **labels) -> float:
        fam = fams.get(family)
        self.assertIsNotNone(fam, "no family %s" % family)
        return fam.value(sample, **labels) or 0.0

    def wait_metric(self, family, sample, labels, at_least, timeout=5.0):
        """Request logging runs after the response is sent: poll briefly."""
        got = wait_until(lambda: self.value(self.metrics(), family, sample, **labels) >= at_least,
                         timeout)
        self.assertTrue(got, "%s%s did not reach %s: %s" % (
            family, labels, at_least, self.value(self.metrics(), family, sample, **labels)))

    def request(self, target):
        c = Conn.open(self.proxy.ingress_port, client_context(self.pki, self.client), timeout=10)
        try:
            return c.request("GET", target)
        finally:
            c.close()

    # -- endpoints ------------------------------------------------------------
    def test_healthz(self):
        self.assertEqual(self.get_json("/healthz"), {"status": "ok"})

    def test_readyz_ready_when_app_answers(self):
        body = wait_until(lambda: (lambda b: b if b.get("ready") else None)(
            json.loads(self.get("/readyz")[1])), 10)
        self.assertIsNotNone(body, "never ready")
        self.assertTrue(body["upstream"])

    def test_readyz_503_while_app_is_down(self):
        cfg = base_config(self.pki, "127.0.0.1:%d" % free_port())
        with Proxy(cfg) as p:
            status, body = admin_request(p.admin_port, "GET", "/readyz")
            self.assertEqual(status, 503, body)
            self.assertEqual(json.loads(body), {"ready": False, "upstream": False})
            # /healthz is about the loop, not the app
            self.assertEqual(admin_request(p.admin_port, "GET", "/healthz")[0], 200)

    def test_status_fields(self):
        st = self.get_json("/status")
        self.assertEqual(st["node"], {"org": "acme-corp", "entity_uri": NODE_URI})
        self.assertIs(st["insecure"], False)
        cert = st["certificate"]
        self.assertIn(NODE_URI, cert["uri_sans"])
        self.assertIn("CN=", cert["subject"])
        fp = openssl("x509", "-in", self.pki.server.crt, "-noout", "-fingerprint", "-sha256")
        self.assertEqual(cert["fingerprint_sha256"],
                         fp.decode().strip().split("=", 1)[1].replace(":", "").lower())
        not_after = openssl("x509", "-in", self.pki.server.crt, "-noout", "-enddate").decode()
        expect = datetime.datetime.strptime(not_after.strip().split("=", 1)[1], "%b %d %H:%M:%S %Y %Z")
        self.assertEqual(cert["not_after"], int(expect.replace(tzinfo=datetime.timezone.utc).timestamp()))
        # computed a moment before this line: at a day boundary it may be one more
        expect_days = int((cert["not_after"] - time.time()) // 86400)
        self.assertIn(cert["days_left"], (expect_days, expect_days + 1))
        self.assertEqual(st["ca_count"], 1)
        self.assertEqual(st["crl"], {"configured": False})
        self.assertEqual(st["policy"], "grants")
        self.assertEqual(st["grants"], 2)
        by_org = {p["org"]: p for p in st["peers"]}
        self.assertEqual(set(by_org), {PEER, SOON_PEER})
        for p in st["peers"]:
            for k in ("entity_uri", "trust_level", "state", "last_seen"):
                self.assertIn(k, p)
        self.assertEqual(by_org[PEER]["entity_uri"], PARTNER_URI)
        self.assertIn(by_org[SOON_PEER]["days_left"], (9, 10))
        self.assertTrue(any(SOON_PEER in w and "expires in" in w for w in st["warnings"]), st["warnings"])
        self.assertFalse(any(PEER + " " in w for w in st["warnings"]), st["warnings"])
        conns = st["connections"]
        self.assertIsInstance(conns["active"], int)
        self.assertIsInstance(conns["accepted"], int)
        self.assertEqual(st["upstream"]["address"], self.backend.address)
        self.assertEqual(len(st["audit"]["chain_head"]), 64)
        self.assertIn("last_reload", st)

    def test_status_counts_an_open_connection(self):
        before = self.get_json("/status")["connections"]
        c = Conn.open(self.proxy.ingress_port, client_context(self.pki, self.client), timeout=10)
        try:
            self.assertEqual(c.request("GET", "/api/v1/tasks/1").status, 200)
            now = self.get_json("/status")["connections"]
            self.assertGreaterEqual(now["active"], 1)
            self.assertGreater(now["accepted"], before["accepted"])
            self.assertGreaterEqual(self.value(self.metrics(), "fedproxy_active_connections"), 1)
        finally:
            c.close()

    def test_unknown_path_and_wrong_method(self):
        self.assertEqual(self.get_json("/nope", expect=404)["error"], "not_found")
        self.assertEqual(self.get_json("/reload", expect=405)["error"], "method_not_allowed")

    # -- metrics --------------------------------------------------------------
    def test_metrics_content_type_and_families(self):
        import http.client
        c = http.client.HTTPConnection("127.0.0.1", self.proxy.admin_port, timeout=10)
        c.request("GET", "/metrics")
        r = c.getresponse()
        ctype = r.getheader("Content-Type")
        text = r.read().decode()
        c.close()
        self.assertTrue(ctype.startswith("text/plain; version=0.0.4"), ctype)
        fams = promtext.parse(text)
        expect = {
            "fedproxy_requests_total": "counter",
            "fedproxy_request_duration_seconds": "histogram",
            "fedproxy_handshake_failures_total": "counter",
            "fedproxy_reloads_total": "counter",
            "fedproxy_bytes_received_total": "counter",
            "fedproxy_bytes_sent_total": "counter",
            "fedproxy_active_connections": "gauge",
        }
        for name, typ in expect.items():
            self.assertIn(name, fams)
            self.assertEqual(fams[name].type, typ, name)
            self.assertTrue(fams[name].help, "%s has no HELP text" % name)

    def test_request_and_denial_counters_move(self):
        fams = self.metrics()
        allow = dict(direction="ingress", peer=PEER, grant=self.gid, decision="allow", status="200")
        deny = dict(direction="ingress", peer=PEER, grant=self.gid, decision="deny", status="403")
        a0 = self.value(fams, "fedproxy_requests_total", **allow)
        d0 = self.value(fams, "fedproxy_requests_total", **deny)
        n0 = self.value(fams, "fedproxy_request_duration_seconds", "fedproxy_request_duration_seconds_count")
        out0 = self.value(fams, "fedproxy_bytes_sent_total")
        for _ in range(3):
            self.assertEqual(self.request("/api/v1/tasks/7").status, 200)
        self.assertEqual(self.request("/api/v1/notes/1").status, 403)
        self.wait_metric("fedproxy_requests_total", None, allow, a0 + 3)
        self.wait_metric("fedproxy_requests_total", None, deny, d0 + 1)
        fams = self.metrics()
        self.assertGreaterEqual(
            self.value(fams, "fedproxy_request_duration_seconds", "fedproxy_request_duration_seconds_count"), n0 + 4)
        self.assertGreater(self.value(fams, "fedproxy_bytes_sent_total"), out0)
        # label values are bounded: no request path appears anywhere
        status, body = self.get("/metrics")
        self.assertNotIn(b"/api/v1", body)

    def test_handshake_failures_counted_by_reason(self):
        before = self.value(self.metrics(), "fedproxy_handshake_failures_total", reason="no_client_certificate")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(self.pki.ca.crt)
        ctx.check_hostname = False
        for _ in range(2):
            try:
                c = Conn.open(self.proxy.ingress_port, ctx, timeout=5)
                try:
                    c.request("GET", "/api/v1/tasks/1")
                except (OSError, ValueError, ssl.SSLError):
                    pass
                c.close()
            except (OSError, ssl.SSLError):
                pass
        self.wait_metric("fedproxy_handshake_failures_total", None, {"reason": "no_client_certificate"},
                         before + 2)

    def test_reload_endpoint_and_counters(self):
        fams = self.metrics()
        ok0 = self.value(fams, "fedproxy_reloads_total", result="success")
        bad0 = self.value(fams, "fedproxy_reloads_total", result="failure")
        self.assertEqual(self.get_json("/reload", "POST"), {"ok": True, "error": None})
        last = self.get_json("/status")["last_reload"]
        self.assertTrue(last["ok"])
        self.assertIsNone(last["error"])
        # A broken config: 500 with the reason; the running config stays.
        with open(self.config_path) as f:
            good = f.read()
        try:
            with open(self.config_path, "w") as f:
                f.write("{ not json")
            status, body = self.get("/reload", "POST")
            self.assertEqual(status, 500, body)
            err = json.loads(body)
            self.assertIs(err["ok"], False)
            self.assertTrue(err["error"])
            last = self.get_json("/status")["last_reload"]
            self.assertFalse(last["ok"])
            self.assertEqual(last["error"], err["error"])
            self.assertEqual(self.request("/api/v1/tasks/9").status, 200)
        finally:
            with open(self.config_path, "w") as f:
                f.write(good)
        self.assertEqual(self.get_json("/reload", "POST")["ok"], True)
        fams = self.metrics()
        self.assertEqual(self.value(fams, "fedproxy_reloads_total", result="success"), ok0 + 2)
        self.assertGreaterEqual(self.value(fams, "fedproxy_reloads_total", result="failure"), bad0 + 1)


class LogRequestsOffTest(unittest.TestCase):
    def test_no_request_lines_but_metrics(self):
        pki = shared_pki()
        backend = Backend().start()
        self.addCleanup(backend.stop)
        with Proxy(base_config(pki, backend.address, log_requests=False)) as p:
            c = Conn.open(p.ingress_port, client_context(pki, pki.client), timeout=10)
            self.assertEqual(c.request("GET", "/x").status, 200)
            c.close()
            self.assertTrue(wait_until(lambda: (promtext.parse(admin_request(p.admin_port, "GET", "/metrics")[1]
                                                               .decode())["fedproxy_requests_total"]
                                                .value(decision="allow") or 0) >= 1, 5))
            self.assertEqual(p.find_logs(lambda r: r.get("msg") == "request"), [])


if __name__ == "__main__":
    main()

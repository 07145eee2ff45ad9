#!/usr/bin/env python3
"""The admin API of SPEC §10 through the real binary: every endpoint answers
with the documented fields, /metrics parses with a strict Prometheus
text-format parser (fedtest/promtext.py), and its counters move as requests,
denials, handshake failures and reloads happen.

Admin authentication (§10): with tokens, every endpoint but /healthz, /readyz
and /metrics needs `Authorization: Bearer <token>` (401 otherwise, for every
method and path); a Host that names neither the listener, localhost nor an
admin.allowed_hosts entry is 421 on every endpoint; a state-changing request
with an Origin header is 403 and changes nothing; tokens rotate with a reload;
a bad token file stops the start (exit 2) or fails the reload (the old tokens
stay); the unix-socket listener is 0600 and works with `curl --unix-socket`;
`fedproxy check` warns about a TCP listener without a token.

Run: FEDPROXY_BIN=build/proxy/app/fedproxy python3 tests/integration/test_admin.py
"""

import datetime
import json
import os
import shutil
import socket
import ssl
import stat
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fedtest import promtext  # noqa: E402
from fedtest.backend import Backend  # noqa: E402
from fedtest.case import main, shared_pki, start_class_proxy, stop_class_proxy  # noqa: E402
from fedtest.pki import NODE_URI, PARTNER_URI, openssl  # noqa: E402
from fedtest.policy import grant, new_id, peer, policy_config, read_audit  # noqa: E402
from fedtest.proxy import (Conn, Proxy, assert_json_error, base_config, client_context,  # noqa: E402
                           free_port, run_cli, write_config)
from fedtest.reload import admin_request, wait_until, write_admin_token  # noqa: E402

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
        # the peer presents its certificate first, so its last_certificate is
        # known whatever order the tests run in
        self.assertEqual(self.request("/api/v1/tasks/1").status, 200)
        # workers publish their counters to /status a moment later
        def seen():
            st = self.get_json("/status")
            return st if any(p["org"] == PEER and p["last_certificate"] for p in st["peers"]) else None
        self.assertTrue(wait_until(seen, timeout=5))
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
        # the partner's manifest does not expire soon; the certificate it last
        # presented (made for 30 days) does, and is warned about by itself
        self.assertFalse(any(w.startswith(f"peer {PEER} expires") for w in st["warnings"]), st["warnings"])
        # (the certificate was made this second: 30 whole days or a moment less)
        last = by_org[PEER]["last_certificate"]
        self.assertIn(last["days_left"], (29, 30))
        cert_warned = [w for w in st["warnings"] if w.startswith(f"peer {PEER} certificate ")]
        self.assertEqual(cert_warned, [f"peer {PEER} certificate {last['subject']} expires in 29 days"]
                         if last["days_left"] < 30 else [], st["warnings"])
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
        before = self.value(self.metrics(), "fedproxy_handshake_failures_total", reason="no_certificate")
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
        self.wait_metric("fedproxy_handshake_failures_total", None, {"reason": "no_certificate"},
                         before + 2)

    def test_reload_endpoint_and_counters(self):
        fams = self.metrics()
        ok0 = self.value(fams, "fedproxy_reloads_total", result="ok")
        bad0 = self.value(fams, "fedproxy_reloads_total", result="failed")
        self.assertEqual(self.get_json("/reload", "POST"),
                         {"ok": True, "result": "ok", "restart_required": [], "error": None})
        last = self.get_json("/status")["last_reload"]
        self.assertTrue(last["ok"])
        self.assertEqual(last["result"], "ok")
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
            self.assertEqual(err["result"], "failed")
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
        self.assertEqual(self.value(fams, "fedproxy_reloads_total", result="ok"), ok0 + 2)
        self.assertGreaterEqual(self.value(fams, "fedproxy_reloads_total", result="failed"), bad0 + 1)


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


# --- admin authentication (SPEC §10) ----------------------------------------------

def raw_admin(port: int, method: str, target: str, headers=(), host: str | None = None,
              version: str = "1.1"):
    """One request on a fresh connection, headers exactly as given (Host
    defaults to 127.0.0.1:port). Returns the wire.Response."""
    hdrs = list(headers)
    if host is not None or not any(k.lower() == "host" for k, _ in hdrs):
        hdrs.insert(0, ("Host", host if host is not None else "127.0.0.1:%d" % port))
    hdrs.append(("Connection", "close"))
    with Conn.open(port, None, timeout=10) as c:
        data = "%s %s HTTP/%s\r\n" % (method, target, version)
        data += "".join("%s: %s\r\n" % kv for kv in hdrs) + "\r\n"
        c.send(data.encode("latin-1"))
        return c.read_response(method)


def bearer(token: str):
    return [("Authorization", "Bearer " + token)]


def curl(*args: str) -> subprocess.CompletedProcess:
    """Real curl: prints the body, then a last line with the status code."""
    return subprocess.run(["curl", "-sS", "--max-time", "10", "-w", "\n%{http_code}", *args],
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=20)


def curl_status(*args: str) -> int:
    p = curl(*args)
    return int(p.stdout.rsplit("\n", 1)[-1])


class AdminAuthTest(unittest.TestCase):
    """Two named tokens; Host, Origin and token checks on every endpoint."""

    @classmethod
    def setUpClass(cls):
        cls.pki = shared_pki()
        cls.tmp = tempfile.mkdtemp(prefix="fedtest-adminauth-")
        cls.ops = write_admin_token(os.path.join(cls.tmp, "ops.token"))
        cls.ci = write_admin_token(os.path.join(cls.tmp, "ci.token"))
        cls.audit = os.path.join(cls.tmp, "audit.jsonl")
        cls.backend = Backend().start()
        cfg = base_config(cls.pki, cls.backend.address, audit={"path": cls.audit}, admin={
            "listen": "127.0.0.1:0",
            "tokens": [{"name": "ops", "file": os.path.join(cls.tmp, "ops.token")},
                       {"name": "ci", "file": os.path.join(cls.tmp, "ci.token")}],
            "allowed_hosts": ["admin.example.internal"]})
        cls.proxy = Proxy(cfg, wait_for=("ingress", "admin"))
        start_class_proxy(cls)
        cls.port = cls.proxy.admin_port

    @classmethod
    def tearDownClass(cls):
        stop_class_proxy(cls)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def call(self, method, target, headers=(), **kw):
        return raw_admin(self.port, method, target, headers, **kw)

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def reloads(self, result="ok") -> float:
        status, body = admin_request(self.port, "GET", "/metrics")
        self.assertEqual(status, 200)
        return promtext.parse(body.decode())["fedproxy_reloads_total"].value(result=result) or 0.0

    def test_no_token_is_401_on_every_non_probe_endpoint_and_method(self):
        for method, target in (("GET", "/status"), ("POST", "/reload"), ("GET", "/reload"),
                               ("GET", "/nope"), ("GET", "/status?x=1"), ("GET", "/healthz/"),
                               ("GET", "//metrics"), ("PUT", "/status"), ("DELETE", "/v1/peers/x"),
                               ("PATCH", "/v1/grants/1"), ("OPTIONS", "/status"), ("GET", "/")):
            with self.subTest(method=method, target=target):
                r = self.call(method, target)
                assert_json_error(self, r, 401, "unauthorized")
                self.assertEqual(r.header("www-authenticate"), "Bearer")
        r = self.call("HEAD", "/status")
        self.assertEqual(r.status, 401)
        self.assertEqual(r.body, b"")
        # the refusals are logged, with the request id of the body
        self.assertTrue(self.proxy.wait_log(lambda x: x.get("msg") == "admin request refused"
                                            and x.get("status") == 401 and x.get("path") == "/reload"))

    def test_wrong_tokens_are_401(self):
        wrong = {
            "another token": "f" * 64,
            "upper case": self.ops.upper(),
            "a prefix": self.ops[:32],
            "one character more": self.ops + "0",
            "one character less": self.ops[:-1],
            "with the newline of the file": self.ops + "\\n",
            "both tokens": self.ops + " " + self.ci,
        }
        for what, token in wrong.items():
            with self.subTest(what):
                assert_json_error(self, self.call("GET", "/status", bearer(token)), 401, "unauthorized")
        for what, value in {"Basic scheme": "Basic " + self.ops, "no scheme": self.ops,
                            "no space": "Bearer" + self.ops, "empty": "Bearer "}.items():
            with self.subTest(what):
                r = self.call("GET", "/status", [("Authorization", value)])
                assert_json_error(self, r, 401, "unauthorized")
        # two Authorization headers, one of them right
        r = self.call("GET", "/status", bearer(self.ops) + bearer("f" * 64))
        assert_json_error(self, r, 401, "unauthorized")

    def test_each_named_token_works(self):
        for name, token in (("ops", self.ops), ("ci", self.ci)):
            with self.subTest(token=name):
                r = self.call("GET", "/status", bearer(token))
                self.assertEqual(r.status, 200, r.body[:200])
                self.assertEqual(r.json()["node"]["org"], "acme-corp")
                self.assertEqual(self.call("GET", "/status", [("Authorization", "bearer " + token)]).status,
                                 200, "the scheme is case-insensitive")
        # POST /reload names its actor in the log and the audit event
        r = self.call("POST", "/reload", bearer(self.ci))
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json(), {"ok": True, "result": "ok", "restart_required": [], "error": None})
        self.assertTrue(self.proxy.wait_log(lambda x: x.get("msg") == "reload requested" and x.get("actor") == "ci"))
        events = [e for e in read_audit(self.audit) if e.get("event") == "reload"]
        self.assertTrue(events, "no audit reload event")
        self.assertEqual(events[-1].get("actor"), "ci")
        self.assertEqual(events[-1].get("trigger"), "admin")

    def test_probes_and_metrics_are_open(self):
        for path in ("/healthz", "/metrics"):
            with self.subTest(path=path):
                self.assertEqual(self.call("GET", path).status, 200)
                self.assertEqual(self.call("HEAD", path).status, 200)
        self.assertTrue(wait_until(lambda: self.call("GET", "/readyz").status == 200, 10), "never ready")
        # open means the token is not looked at, not that other methods work
        r = self.call("POST", "/healthz")
        assert_json_error(self, r, 405, "method_not_allowed")

    def test_host_not_naming_the_listener_is_421_everywhere(self):
        p = self.port
        bad_hosts = ["evil.example", "evil.example:%d" % p, "127.0.0.1.evil.example",
                     "127.0.0.1.evil.example:%d" % p, "localhost.evil.example:%d" % p,
                     "localhost.:%d" % p, "127.0.0.1:%d" % (p + 1 if p < 65535 else p - 1),
                     "localhost:%d" % (p + 1 if p < 65535 else p - 1), "[::1]:%d" % p,
                     "admin.example.internal.evil.example", "", "127.0.0.1:%d:%d" % (p, p),
                     "user@127.0.0.1:%d" % p, "2130706433:%d" % p]
        for host in bad_hosts:
            for method, target, headers in (("GET", "/healthz", []), ("GET", "/metrics", []),
                                            ("GET", "/status", bearer(self.ops)),
                                            ("POST", "/reload", bearer(self.ops)),
                                            ("GET", "/nope", [])):
                with self.subTest(host=host, target=target):
                    r = self.call(method, target, headers, host=host)
                    assert_json_error(self, r, 421, "misdirected_request")
        # real curl, the way a rebinding attacker's browser would name us
        self.assertEqual(curl_status("-H", "Host: evil.example:%d" % p, self.url("/healthz")), 421)
        r = curl("-H", "Host: evil.example", "-H", "Authorization: Bearer " + self.ops, self.url("/status"))
        self.assertEqual(json.loads(r.stdout.rsplit("\n", 1)[0])["error"], "misdirected_request")

    def test_hosts_naming_the_listener_pass(self):
        p = self.port
        for host in ("127.0.0.1:%d" % p, "127.0.0.1", "localhost:%d" % p, "LocalHost:%d" % p,
                     "localhost", "admin.example.internal", "admin.example.internal:8080"):
            with self.subTest(host=host):
                self.assertEqual(self.call("GET", "/healthz", host=host).status, 200)
                self.assertEqual(self.call("GET", "/status", bearer(self.ops), host=host).status, 200)
        self.assertEqual(curl_status("http://localhost:%d/healthz" % p), 200)

    def test_missing_host(self):
        r = self.call("GET", "/healthz", [("X-No-Host", "1")], host="", version="1.1")
        assert_json_error(self, r, 421, "misdirected_request")  # an empty Host names nothing
        with Conn.open(self.port, None, timeout=10) as c:
            c.send(b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n")
            assert_json_error(self, c.read_response("GET"), 400, "bad_request")
        with Conn.open(self.port, None, timeout=10) as c:
            c.send(b"GET /healthz HTTP/1.0\r\n\r\n")
            assert_json_error(self, c.read_response("GET"), 421, "misdirected_request")

    def test_absolute_form_target_is_400(self):
        r = self.call("GET", "http://127.0.0.1:%d/status" % self.port, bearer(self.ops))
        assert_json_error(self, r, 400, "bad_request")

    def test_origin_on_a_state_change_is_403_and_nothing_happens(self):
        self.assertEqual(self.call("POST", "/reload", bearer(self.ops)).status, 200)
        before = self.call("GET", "/status", bearer(self.ops)).json()["last_reload"]
        reloads = self.reloads()
        requested = len(self.proxy.find_logs(lambda x: x.get("msg") == "reload requested"))
        time.sleep(0.01)  # last_reload.at has millisecond resolution
        for origin in ("http://evil.example", "null", "http://127.0.0.1:%d" % self.port):
            for method, target in (("POST", "/reload"), ("PUT", "/reload"), ("DELETE", "/v1/peers/x"),
                                   ("POST", "/healthz")):
                with self.subTest(origin=origin, method=method, target=target):
                    r = self.call(method, target, bearer(self.ops) + [("Origin", origin)])
                    assert_json_error(self, r, 403, "forbidden_origin")
        self.assertEqual(curl_status("-X", "POST", "-H", "Origin: http://evil.example",
                                     "-H", "Authorization: Bearer " + self.ops, self.url("/reload")), 403)
        after = self.call("GET", "/status", bearer(self.ops)).json()["last_reload"]
        self.assertEqual(after, before, "a refused POST /reload reloaded")
        self.assertEqual(self.reloads(), reloads)
        self.assertEqual(len(self.proxy.find_logs(lambda x: x.get("msg") == "reload requested")), requested)

    def test_read_with_origin_passes(self):
        for method in ("GET", "HEAD"):
            with self.subTest(method=method):
                r = self.call(method, "/status", bearer(self.ops) + [("Origin", "http://evil.example")])
                self.assertEqual(r.status, 200)

    def test_real_curl_with_and_without_a_token(self):
        self.assertEqual(curl_status(self.url("/status")), 401)
        self.assertEqual(curl_status("-X", "POST", self.url("/reload")), 401)
        self.assertEqual(curl_status("-H", "Authorization: Bearer " + self.ops, self.url("/status")), 200)
        self.assertEqual(curl_status("--oauth2-bearer", self.ci, "-X", "POST", self.url("/reload")), 200)
        self.assertEqual(curl_status(self.url("/metrics")), 200)


class AdminTokenFilesTest(unittest.TestCase):
    """Token files at start (exit 2, naming the file), at reload (rotation; a
    broken file keeps the running tokens), and `fedproxy check`."""

    @classmethod
    def setUpClass(cls):
        cls.pki = shared_pki()
        cls.upstream = "127.0.0.1:%d" % free_port()

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="fedtest-admintok-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.token_path = os.path.join(self.tmp, "admin.token")

    def config(self, **admin):
        return base_config(self.pki, self.upstream, admin=dict({"listen": "127.0.0.1:0"}, **admin))

    def status_with(self, port, token):
        return raw_admin(port, "GET", "/status", bearer(token)).status

    def test_start_refused_for_a_bad_token_file(self):
        cases = {
            "missing": (None, "No such file"),
            "empty": ("", "empty"),
            "whitespace only": (" \n\n", "no token"),
            "too short": ("abc123\n", "at least 16"),
            "not a bearer token": ("has spaces in the token\n", "characters"),
            "two lines": ("0123456789abcdef\n0123456789abcdef\n", "characters"),
            "world-readable": (None, "world-readable"),
        }
        for what, (text, fragment) in cases.items():
            with self.subTest(what):
                path = os.path.join(self.tmp, what.replace(" ", "-") + ".token")
                if what == "world-readable":
                    write_admin_token(path, mode=0o644)
                elif text is not None:
                    with open(path, "w") as f:
                        f.write(text)
                    os.chmod(path, 0o600)
                cfg_path = write_config(self.config(token_file=path), self.tmp, "bad.json")
                p = run_cli(["run", "--config", cfg_path], timeout=20)
                self.assertEqual(p.returncode, 2, p.stderr)
                lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
                self.assertEqual(len(lines), 1, p.stderr)
                rec = json.loads(lines[0])
                self.assertEqual(rec["level"], "fatal")
                self.assertEqual(rec["file"], path)
                self.assertIn(path, rec["msg"])
                self.assertIn("admin.token_file", rec["msg"])
                self.assertIn(fragment, rec["msg"])
                # check reports it too (exit 1)
                c = run_cli(["check", "--config", cfg_path])
                self.assertEqual(c.returncode, 1, c.stdout + c.stderr)
                self.assertIn(path, c.stdout)
        # a directory is not a token file either
        cfg_path = write_config(self.config(tokens=[{"name": "ops", "file": self.tmp}]), self.tmp, "dir.json")
        p = run_cli(["run", "--config", cfg_path], timeout=20)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("admin.tokens[0].file", p.stderr)

    def test_same_token_in_two_files_is_refused(self):
        token = write_admin_token(os.path.join(self.tmp, "a.token"))
        write_admin_token(os.path.join(self.tmp, "b.token"), token)
        cfg = self.config(tokens=[{"name": "a", "file": os.path.join(self.tmp, "a.token")},
                                  {"name": "b", "file": os.path.join(self.tmp, "b.token")}])
        p = run_cli(["check", "--config", write_config(cfg, self.tmp, "dup.json")])
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertIn("same token as admin.tokens[0].file", p.stdout)

    def test_rotation_by_editing_the_file(self):
        old = write_admin_token(self.token_path)
        cfg = self.config(token_file=self.token_path)
        cfg["tls"]["watch_interval_ms"] = 200
        with Proxy(cfg, wait_for=("ingress", "admin")) as p:
            port = p.admin_port
            self.assertEqual(self.status_with(port, old), 200)
            # 1. rewritten in place, then POST /reload with the old token
            new = "rotated-" + old[8:]
            with open(self.token_path, "w") as f:
                f.write(new + "\n")
            r = raw_admin(port, "POST", "/reload", bearer(old))
            self.assertEqual(r.status, 200, r.body)
            self.assertEqual(self.status_with(port, new), 200)
            self.assertEqual(self.status_with(port, old), 401)
            # 2. replaced by rename: the file watcher applies it without a request
            newer = write_admin_token(self.token_path)
            self.assertTrue(wait_until(lambda: self.status_with(port, newer) == 200, 10),
                            "the rotated token was not picked up:\n" + p.tail(10))
            self.assertEqual(self.status_with(port, new), 401)
            # 3. a broken file fails the reload; the running token stays
            with open(self.token_path, "w") as f:
                f.write("short\n")
            r = raw_admin(port, "POST", "/reload", bearer(newer))
            self.assertEqual(r.status, 500, r.body)
            self.assertIn(self.token_path, r.json()["error"])
            self.assertEqual(self.status_with(port, newer), 200)
            last = raw_admin(port, "GET", "/status", bearer(newer)).json()["last_reload"]
            self.assertFalse(last["ok"])
            self.assertIn("at least 16", last["error"])
            # 4. SIGHUP after a good rewrite
            final = write_admin_token(self.token_path)
            p.signal(__import__("signal").SIGHUP)
            self.assertTrue(wait_until(lambda: self.status_with(port, final) == 200, 10))

    def test_adding_tokens_by_reload_closes_an_open_listener(self):
        cfg = self.config()
        with Proxy(cfg, wait_for=("ingress", "admin")) as p:
            port = p.admin_port
            self.assertEqual(raw_admin(port, "GET", "/status").status, 200)  # no token: open
            token = write_admin_token(self.token_path)
            cfg["admin"]["token_file"] = self.token_path
            write_config(cfg, p.dir)
            self.assertEqual(raw_admin(port, "POST", "/reload").status, 200)
            self.assertEqual(raw_admin(port, "GET", "/status").status, 401)
            self.assertEqual(self.status_with(port, token), 200)

    def test_check_warns_about_a_tcp_listener_without_token(self):
        open_cfg = write_config(self.config(), self.tmp, "open.json")
        p = run_cli(["check", "--config", open_cfg])
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        # (the harness's node certificate, 30 days, adds an expiry warning)
        warn = [ln for ln in p.stdout.splitlines() if ln.startswith("warning: admin.")]
        self.assertEqual(len(warn), 1, p.stdout)
        self.assertIn("warning: admin.listen: ", warn[0])
        self.assertIn("no token", warn[0])
        # run logs the same warning at start
        with Proxy(self.config(), wait_for=("ingress", "admin")) as proxy:
            self.assertTrue(proxy.wait_log(lambda r: r.get("msg") == "config warning"
                                           and "no token" in r.get("warning", "")))
        write_admin_token(self.token_path)
        for name, cfg in (("token", self.config(token_file=self.token_path)),
                          ("unix", self.config(listen="unix:" + os.path.join(self.tmp, "a.sock"))),
                          ("no admin", base_config(self.pki, self.upstream, admin=None))):
            with self.subTest(name):
                p = run_cli(["check", "--config", write_config(cfg, self.tmp, name + ".json")])
                self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
                self.assertNotIn("warning: admin.", p.stdout)


class AdminUnixSocketTest(unittest.TestCase):
    """admin.listen "unix:/path": mode 0600, curl --unix-socket, a stale file
    replaced, a live one or a non-socket refused, removed at exit."""

    @classmethod
    def setUpClass(cls):
        cls.pki = shared_pki()
        cls.upstream = "127.0.0.1:%d" % free_port()

    def setUp(self):
        # short: sun_path holds 107 bytes
        self.tmp = tempfile.mkdtemp(prefix="fta-", dir="/tmp")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.sock = os.path.join(self.tmp, "admin.sock")
        self.token = write_admin_token(os.path.join(self.tmp, "admin.token"))

    def config(self):
        return base_config(self.pki, self.upstream, admin={
            "listen": "unix:" + self.sock, "token_file": os.path.join(self.tmp, "admin.token")})

    def start(self) -> Proxy:
        p = Proxy(self.config(), wait_for=("ingress", "admin"))
        p.start()
        self.addCleanup(p.stop)
        self.assertEqual(p.unix_paths["admin"], self.sock)
        return p

    def curl(self, *args):
        return curl_status("--unix-socket", self.sock, *args)

    def test_mode_0600_and_curl(self):
        self.start()
        st = os.stat(self.sock)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        self.assertEqual(self.curl("http://localhost/status"), 401)
        self.assertEqual(self.curl("-H", "Authorization: Bearer " + self.token, "http://localhost/status"), 200)
        self.assertEqual(self.curl("-H", "Authorization: Bearer " + self.token, "-X", "POST",
                                   "http://localhost/reload"), 200)
        self.assertEqual(self.curl("http://localhost/healthz"), 200)
        self.assertEqual(self.curl("http://localhost:9901/healthz"), 200)
        # the Host check holds here too
        self.assertEqual(self.curl("http://evil.example/healthz"), 421)
        self.assertEqual(self.curl("-H", "Authorization: Bearer " + self.token, "-X", "POST",
                                   "-H", "Origin: http://evil.example", "http://localhost/reload"), 403)

    def test_stale_socket_replaced_and_removed_at_exit(self):
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(self.sock)
        stale.close()  # the file stays, nobody accepts on it
        p = self.start()
        self.assertEqual(self.curl("http://localhost/healthz"), 200)
        self.assertEqual(p.stop(), 0)
        self.assertFalse(os.path.exists(self.sock), "the socket file outlived the process")

    def test_live_socket_and_non_socket_refused(self):
        self.start()
        cfg_path = write_config(self.config(), self.tmp, "second.json")
        p = run_cli(["run", "--config", cfg_path], timeout=20)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn(self.sock, p.stderr)
        self.assertIn("already in use", p.stderr)
        # the first one's socket is still there and still answers
        self.assertEqual(self.curl("http://localhost/healthz"), 200)

        other = os.path.join(self.tmp, "not-a-socket")
        with open(other, "w") as f:
            f.write("precious\n")
        cfg = self.config()
        cfg["admin"]["listen"] = "unix:" + other
        p = run_cli(["run", "--config", write_config(cfg, self.tmp, "file.json")], timeout=20)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn(other, p.stderr)
        with open(other) as f:
            self.assertEqual(f.read(), "precious\n")


if __name__ == "__main__":
    main()

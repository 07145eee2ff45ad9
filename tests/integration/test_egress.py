#!/usr/bin/env python3
"""Egress (SPEC §7, §3, §5, §6): two fedproxy processes on 127.0.0.1.

    local app (curl / Python) ──plain HTTP──▶ A egress ──mTLS──▶ B ingress ──▶ B's app

A is acme-corp (node cert pki.server, URI NODE_URI); B is partner-labs (a node
cert with both usages and PARTNER_URI). B's app is a fedtest Backend that
records what it received, so identity headers are asserted where they land.

Run: FEDPROXY_BIN=build/proxy/app/fedproxy python3 tests/integration/test_egress.py
"""

import hashlib
import json
import os
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fedtest import wire  # noqa: E402
from fedtest.backend import Backend  # noqa: E402
from fedtest.case import assert_not_received, main, shared_pki  # noqa: E402
from fedtest.pki import NODE_URI, PARTNER_URI  # noqa: E402
from fedtest.policy import ROUTES, grant, new_id, peer, replace_config  # noqa: E402
from fedtest.proxy import (Conn, Proxy, assert_json_error, base_config,  # noqa: E402
                           free_port)
from fedtest.reload import admin_request, admin_status, log_mark, metric_value, wait_log_after  # noqa: E402

MIB = 1 << 20
BIG = 8 * MIB
CURL_TIMEOUT = 60
A_RESPONSE_TIMEOUT_MS = 2000
WRONG_URI = "spiffe://wrong.example/nodes/x"


def _proxy_env() -> dict:
    """Environment for curl/urllib without inherited proxy settings."""
    return {k: v for k, v in os.environ.items()
            if k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")}


def curl(*args: str, env: dict | None = None, timeout: float = CURL_TIMEOUT):
    """Run curl (bounded). Returns wire.Response built from curl's -D header dump
    and body (kept in memory: only small bodies here; big ones go to -o)."""
    with tempfile.TemporaryDirectory(prefix="fedtest-curl-") as d:
        hdr = os.path.join(d, "h")
        body = os.path.join(d, "b")
        cmd = ["curl", "-sS", "--max-time", str(int(timeout) - 5), "-D", hdr]
        if "-o" not in args:
            cmd += ["-o", body]
        cmd += list(args)
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout, env=env if env is not None else _proxy_env())
        if p.returncode != 0:
            raise AssertionError("curl %r failed (%d): %s" % (args, p.returncode,
                                                              p.stderr.decode(errors="replace")))
        with open(hdr, "rb") as f:
            raw = f.read()
        # curl dumps interim 100 Continue blocks too: keep the last block
        blocks = [b for b in raw.split(b"\r\n\r\n") if b.strip()]
        start, headers = wire.parse_head(blocks[-1] + b"\r\n\r\n")
        parts = start.split(" ", 2)
        resp = wire.Response(int(parts[1]), parts[2] if len(parts) > 2 else "", parts[0], headers)
        if os.path.exists(body):
            with open(body, "rb") as f:
                resp.body = f.read()
            resp.body_len = len(resp.body)
        return resp


def node_b_cert(pki, name: str, uri: str = PARTNER_URI):
    """A node certificate: serverAuth+clientAuth, URI SAN, localhost/127.0.0.1."""
    return pki.issue_client(name, uri, dns=("localhost",), server=True)


def config_b(pki, cert, upstream: str, listen: str = "127.0.0.1:0") -> dict:
    """partner-labs: ingress that knows acme-corp (A) with one active grant."""
    cfg = base_config(pki, upstream,
                      node={"org": "partner-labs", "entity_uri": PARTNER_URI},
                      tls={"cert": cert.crt, "key": cert.key},
                      ingress={"listen": listen})
    cfg["peers"] = [peer("acme-corp", NODE_URI)]
    cfg["grants"] = [grant(new_id(), "acme-corp", ["tasks", "files", "slow"],
                           methods=["GET", "HEAD", "POST"])]
    cfg["routes"] = ROUTES
    cfg.pop("authenticate_only", None)
    return cfg


def config_a(pki, upstream: str, peers: list, **over) -> dict:
    """acme-corp: egress on loopback port 0, peers with endpoints on B."""
    cfg = base_config(pki, upstream,
                      egress={"listen": "127.0.0.1:0", "heartbeat_interval_ms": 600000},
                      **over)
    cfg["peers"] = peers
    cfg["grants"] = []
    cfg["routes"] = ROUTES
    cfg.pop("authenticate_only", None)
    return cfg


def b_peer(org: str, port: int, uri: str = PARTNER_URI, **kw) -> dict:
    return peer(org, uri, endpoints=["https://127.0.0.1:%d" % port], **kw)


def start_proxy(cfg: dict) -> Proxy:
    waits = ("ingress", "egress", "admin") if cfg.get("egress") else ("ingress", "admin")
    p = Proxy(cfg, wait_for=waits)
    try:
        return p.start()
    except BaseException:
        p.stop()
        raise


def start_b_alone(test: unittest.TestCase, cert_name: str):
    """A B (partner-labs) of the test's own: certificate, backend and proxy,
    each stopped by a cleanup. Returns (pki, cert, backend, b)."""
    pki = shared_pki()
    cert = node_b_cert(pki, cert_name)
    backend = Backend().start()
    test.addCleanup(backend.stop)
    b = start_proxy(config_b(pki, cert, backend.address))
    test.addCleanup(b.stop)
    return pki, cert, backend, b


def accepted(proxy: Proxy) -> int:
    return int(admin_status(proxy.admin_port)["connections"]["accepted"])


def egress_get(port: int, target: str, host: str = "partner-labs", headers=(), timeout=15):
    """One request on its own plain connection to A's egress (Python client)."""
    with Conn.open(port, None, timeout=timeout) as c:
        return c.request("GET", target, [("Host", host), *headers, ("Connection", "close")])


class EgressTest(unittest.TestCase):
    """One backend, B (partner-labs) and A (acme-corp) shared by the tests."""

    @classmethod
    def setUpClass(cls):
        cls.pki = shared_pki()
        cls.b_cert = node_b_cert(cls.pki, "eg-node-b")
        cls.backend = Backend().start()
        try:
            cls.b = start_proxy(config_b(cls.pki, cls.b_cert, cls.backend.address))
            bp = cls.b.ingress_port
            with open(cls.b_cert.crt) as f:
                b_der = ssl.PEM_cert_to_DER_cert(f.read())
            cls.b_pin = hashlib.sha256(b_der).hexdigest()
            peers = [
                b_peer("partner-labs", bp),
                b_peer("wrong-labs", bp, uri=WRONG_URI),
                b_peer("down-labs", free_port(), uri="spiffe://down-labs.example/nodes/x"),
            ]
            # A's own ingress upstream: an unused port (A is only a client here)
            cls.a = start_proxy(config_a(cls.pki, "127.0.0.1:%d" % free_port(), peers,
                                         timeouts={"upstream_response_ms": A_RESPONSE_TIMEOUT_MS}))
            cls.eg = cls.a.ports["egress"]
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        for name in ("a", "b"):
            p = getattr(cls, name, None)
            if p is not None:
                p.stop()
        cls.backend.stop()

    def url(self, path: str) -> str:
        return "http://127.0.0.1:%d%s" % (self.eg, path)

    def received(self, marker: str):
        """The request B's app got whose target carries marker."""
        r = self.backend.wait_for(
            lambda reqs: next((q for q in reqs if marker in q.target and q.complete), None), 10)
        self.assertIsNotNone(r, "B's app never received a request with %s" % marker)
        return r

    def assert_not_leaked(self, marker: str):
        """A must not send a request to a peer whose identity it has not
        verified: B (and its app) must never see it."""
        time.sleep(0.3)
        got = [q.target for q in self.backend.snapshot() if marker in q.target]
        self.assertEqual(got, [], "the request reached B's app although A answered "
                         "peer_identity_mismatch: it was sent before the identity check")

    def assert_identity(self, r):
        self.assertEqual(wire.header_all(r.headers, "X-Federation-Peer"), ["acme-corp"])
        self.assertEqual(wire.header_all(r.headers, "X-Federation-Entity"), [NODE_URI])
        xfcc = wire.header_all(r.headers, "X-Forwarded-Client-Cert")
        self.assertEqual(len(xfcc), 1, "one XFCC header: %r" % xfcc)
        fields = dict(kv.split("=", 1) for kv in xfcc[0].split(";") if "=" in kv)
        self.assertEqual(fields.get("Hash"), self.pki.server.der_sha256(),
                         "XFCC Hash = sha256 of A's node cert DER: %r" % xfcc[0])
        self.assertEqual(fields.get("URI"), NODE_URI)

    # -- round trips --------------------------------------------------------
    def test_host_header_round_trip_curl(self):
        m = new_id()
        resp = curl("-H", "Host: partner-labs", self.url("/api/v1/tasks?m=" + m))
        self.assertEqual(resp.status, 200, resp)
        echo = resp.json()
        self.assertEqual(echo["target"], "/api/v1/tasks?m=" + m)
        r = self.received(m)
        self.assertEqual(r.method, "GET")
        self.assert_identity(r)
        self.assertEqual(wire.header(r.headers, "X-Federation-Resource"), "tasks")

    def test_absolute_form_round_trip_curl_x(self):
        m = new_id()
        resp = curl("-x", "http://127.0.0.1:%d" % self.eg,
                    "http://partner-labs/api/v1/tasks?m=" + m)
        self.assertEqual(resp.status, 200, resp)
        r = self.received(m)
        self.assertEqual(r.path, "/api/v1/tasks", "B's app gets origin-form, not %r" % r.target)
        self.assert_identity(r)
        # curl -x adds Proxy-Connection: hop-by-hop, never forwarded (SPEC §1)
        self.assertIsNone(r.header("Proxy-Connection"), r.headers)

    def test_http_proxy_environment(self):
        env = _proxy_env()
        env["http_proxy"] = env["HTTP_PROXY"] = "http://127.0.0.1:%d" % self.eg
        m1 = new_id()
        resp = curl("http://partner-labs/api/v1/tasks?m=" + m1, env=env)
        self.assertEqual(resp.status, 200, resp)
        self.assert_identity(self.received(m1))
        # Python's urllib reads HTTP_PROXY the same way
        m2 = new_id()
        opener = urllib.request.build_opener(urllib.request.ProxyHandler(
            {"http": env["HTTP_PROXY"]}))
        with opener.open("http://partner-labs/api/v1/tasks?m=" + m2, timeout=15) as r:
            self.assertEqual(r.status, 200)
            json.loads(r.read())
        self.assert_identity(self.received(m2))

    def pinned_a(self, pin: str) -> int:
        """Another A whose partner-labs peer carries a cert_fingerprint pin
        (one entity_uri per peer, so a pin variant needs its own process)."""
        a = start_proxy(config_a(self.pki, "127.0.0.1:%d" % free_port(),
                                 [b_peer("partner-labs", self.b.ingress_port,
                                         cert_fingerprint=pin)]))
        self.addCleanup(a.stop)
        return a.ports["egress"]

    def test_pinned_peer_round_trip(self):
        m = new_id()
        resp = egress_get(self.pinned_a(self.b_pin), "/api/v1/tasks?m=" + m)
        self.assertEqual(resp.status, 200, resp)
        self.assert_identity(self.received(m))

    def test_spoofed_federation_headers_are_replaced(self):
        m = new_id()
        spoof = "spoof-" + new_id()
        resp = curl("-H", "Host: partner-labs",
                    "-H", "X-Federation-Peer: " + spoof,
                    "-H", "X-Federation-Entity: spiffe://evil.example/" + spoof,
                    "-H", "X-Federation-Grant: " + spoof,
                    "-H", "X-Federation-Trust: full-" + spoof,
                    "-H", "X-Forwarded-Client-Cert: Hash=%s;URI=%s" % ("0" * 64, spoof),
                    "-H", "Client-Cert: :" + spoof + ":",
                    self.url("/api/v1/tasks?m=" + m))
        self.assertEqual(resp.status, 200, resp)
        r = self.received(m)
        self.assert_identity(r)
        self.assertNotEqual(r.header("X-Federation-Trust"), "full-" + spoof)
        assert_not_received(self, self.backend, spoof.encode(),
                            "X-Federation-* sent by A's app must not reach B's app")

    # -- errors -------------------------------------------------------------
    def test_unknown_peer_502(self):
        resp = curl("-H", "Host: no-such-peer", self.url("/api/v1/tasks"))
        assert_json_error(self, resp, 502, "unknown_peer")
        resp = curl("-x", "http://127.0.0.1:%d" % self.eg, "http://nobody-here/api/v1/tasks")
        assert_json_error(self, resp, 502, "unknown_peer")

    def test_wrong_uri_san_502_peer_identity_mismatch(self):
        m = new_id()
        resp = curl("-H", "Host: wrong-labs", self.url("/api/v1/tasks?m=" + m))
        assert_json_error(self, resp, 502, "peer_identity_mismatch")
        self.assert_not_leaked(m)

    def test_wrong_pin_502_peer_identity_mismatch(self):
        m = new_id()
        resp = egress_get(self.pinned_a("0" * 64), "/api/v1/tasks?m=" + m)
        assert_json_error(self, resp, 502, "peer_identity_mismatch")
        self.assert_not_leaked(m)

    def test_failover_to_next_manifest_endpoint(self):
        # The peer's first endpoint is dead; the request must still arrive
        # through the second one, and again on later requests.
        dead = "https://127.0.0.1:%d" % free_port()
        live = "https://127.0.0.1:%d" % self.b.ingress_port
        a = start_proxy(config_a(self.pki, "127.0.0.1:%d" % free_port(),
                                 [peer("partner-labs", PARTNER_URI, endpoints=[dead, live])]))
        self.addCleanup(a.stop)
        for _ in range(3):
            m = new_id()
            resp = egress_get(a.ports["egress"], "/api/v1/tasks?m=" + m)
            self.assertEqual(resp.status, 200, resp)
            self.assert_identity(self.received(m))

    def test_peer_down_502_peer_unavailable(self):
        resp = curl("-H", "Host: down-labs", self.url("/api/v1/tasks"))
        assert_json_error(self, resp, 502, "peer_unavailable")

    def test_peer_slow_504_upstream_timeout(self):
        t0 = time.monotonic()
        resp = egress_get(self.eg, "/slow/%d" % (A_RESPONSE_TIMEOUT_MS * 3), timeout=30)
        took = time.monotonic() - t0
        assert_json_error(self, resp, 504, "upstream_timeout")
        self.assertLess(took, A_RESPONSE_TIMEOUT_MS * 3 / 1000.0,
                        "A answered 504 only after %.1fs" % took)
        # A keeps working afterwards
        self.assertEqual(egress_get(self.eg, "/api/v1/tasks").status, 200)

    # -- big bodies ---------------------------------------------------------
    def test_8mib_upload_post(self):
        with tempfile.TemporaryDirectory(prefix="fedtest-up-") as d:
            src = os.path.join(d, "up.bin")
            with open(src, "wb") as f:
                for piece in wire.pattern_chunks(BIG, MIB):
                    f.write(piece)
            m = new_id()
            resp = curl("-X", "POST", "-H", "Host: partner-labs",
                        "-H", "Content-Type: application/octet-stream",
                        "--data-binary", "@" + src, self.url("/api/v1/tasks/upload?m=" + m))
        self.assertEqual(resp.status, 200, resp)
        echo = resp.json()
        self.assertEqual(echo["method"], "POST")
        self.assertEqual(echo["body_len"], BIG)
        self.assertEqual(echo["body_sha256"], wire.pattern_sha256(BIG))
        self.assert_identity(self.received(m))

    def test_8mib_upload_chunked_python(self):
        m = new_id()
        with Conn.open(self.eg, None, timeout=30) as c:
            c.send(wire.build_request("POST", "/api/v1/tasks/upload?m=" + m,
                                      [("Host", "partner-labs"),
                                       ("Transfer-Encoding", "chunked")]))
            for piece in wire.pattern_chunks(BIG, 300 * 1024):
                c.send(wire.chunk(piece))
            c.send(wire.LAST_CHUNK)
            resp = c.read_response("POST")
        self.assertEqual(resp.status, 200, resp)
        echo = resp.json()
        self.assertEqual((echo["body_len"], echo["body_sha256"]),
                         (BIG, wire.pattern_sha256(BIG)))

    def test_8mib_download(self):
        with tempfile.TemporaryDirectory(prefix="fedtest-down-") as d:
            dst = os.path.join(d, "down.bin")
            resp = curl("-H", "Host: partner-labs", "-o", dst, self.url("/bytes/%d" % BIG))
            self.assertEqual(resp.status, 200, resp)
            h = hashlib.sha256()
            n = 0
            with open(dst, "rb") as f:
                for block in iter(lambda: f.read(MIB), b""):
                    h.update(block)
                    n += len(block)
        self.assertEqual(n, BIG)
        self.assertEqual(h.hexdigest(), wire.pattern_sha256(BIG))

    # -- pooling ------------------------------------------------------------
    def test_keepalive_pool_reuse(self):
        clients, per_client = 4, 260   # 1,040 requests in all
        # warm-up: the pool may hold connections from earlier tests; count from here
        self.assertEqual(egress_get(self.eg, "/api/v1/tasks").status, 200)
        start_accepted = accepted(self.b)
        failures, done = [], [0] * clients
        deadline = time.monotonic() + 120

        def run(idx):
            try:
                with Conn.open(self.eg, None, timeout=15) as c:
                    for i in range(per_client):
                        if time.monotonic() > deadline:
                            failures.append("client %d: out of time at %d" % (idx, i))
                            return
                        resp = c.request("GET", "/api/v1/tasks?c=%d&i=%d" % (idx, i),
                                         [("Host", "partner-labs")])
                        if resp.status != 200 or resp.wants_close():
                            failures.append("client %d req %d: %r" % (idx, i, resp))
                            return
                        done[idx] += 1
            except Exception as e:  # noqa: BLE001
                failures.append("client %d: %r" % (idx, e))

        threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=max(1, deadline - time.monotonic() + 5))
        self.assertEqual(failures, [])
        self.assertEqual(sum(done), clients * per_client)
        new = accepted(self.b) - start_accepted
        self.assertLessEqual(new, clients,
                             "B accepted %d new connections for %d requests over %d "
                             "client connections: A's pool does not reuse them"
                             % (new, sum(done), clients))


class EgressRestartTest(unittest.TestCase):
    """B goes away (502 peer_unavailable) and comes back as a new process."""

    def test_peer_down_then_back(self):
        pki, cert, backend, b1 = start_b_alone(self, "eg-node-b-restart")
        port = b1.ingress_port
        a = start_proxy(config_a(pki, "127.0.0.1:%d" % free_port(), [b_peer("partner-labs", port)]))
        self.addCleanup(a.stop)
        eg = a.ports["egress"]
        self.assertEqual(egress_get(eg, "/api/v1/tasks").status, 200)

        self.assertEqual(b1.stop(), 0, "B exits 0 on SIGTERM")
        resp = egress_get(eg, "/api/v1/tasks")
        assert_json_error(self, resp, 502, "peer_unavailable")

        # B again: a new process, on the same port when it can be bound
        try:
            b2 = start_proxy(config_b(pki, cert, backend.address,
                                      listen="127.0.0.1:%d" % port))
            how = "same port"
        except RuntimeError:
            b2 = start_proxy(config_b(pki, cert, backend.address))
            cfg = config_a(pki, a.config["ingress"]["upstream"],
                           [b_peer("partner-labs", b2.ingress_port)])
            cfg["egress"]["listen"] = "127.0.0.1:%d" % eg
            mark = log_mark(a)
            replace_config(cfg, a.dir)
            a.signal(signal.SIGHUP)
            rec = wait_log_after(a, mark, lambda r: r.get("msg") in ("reloaded", "reload failed"), 10)
            self.assertEqual((rec or {}).get("msg"), "reloaded", a.tail())
            how = "new port + SIGHUP"
        self.addCleanup(b2.stop)

        statuses = []
        deadline = time.monotonic() + 10
        for _ in range(100):
            resp = egress_get(eg, "/api/v1/tasks")
            statuses.append(resp.status)
            if resp.status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertEqual(statuses[-1], 200,
                         "B is back (%s) but A answers %r" % (how, statuses[-10:]))
        self.assertLessEqual(len(statuses), 3,
                             "A needed %d tries to reach B again (%s)" % (len(statuses), how))


class EgressLivenessTest(unittest.TestCase):
    """A's heartbeat: partner-labs goes unknown -> active, degraded after 3
    failed manifest fetches while B is down, active again when B is back."""

    def peer_state(self, a):
        peers = admin_status(a.admin_port)["peers"]
        return next(p["state"] for p in peers if p["org"] == "partner-labs")

    def wait_state(self, a, want, seconds=10):
        deadline = time.monotonic() + seconds
        state = None
        while time.monotonic() < deadline:
            state = self.peer_state(a)
            if state == want:
                return state
            time.sleep(0.1)
        return state

    def test_active_degraded_active(self):
        pki, cert, backend, b1 = start_b_alone(self, "eg-node-b-liveness")
        port = b1.ingress_port
        cfg = config_a(pki, "127.0.0.1:%d" % free_port(), [b_peer("partner-labs", port)])
        cfg["egress"]["heartbeat_interval_ms"] = 200
        a = start_proxy(cfg)
        self.addCleanup(a.stop)
        self.assertEqual(self.wait_state(a, "active"), "active", a.tail())
        self.assertEqual(b1.stop(), 0)
        self.assertEqual(self.wait_state(a, "degraded"), "degraded", a.tail())
        try:
            b2 = start_proxy(config_b(pki, cert, backend.address, listen="127.0.0.1:%d" % port))
        except RuntimeError:
            self.skipTest("B's port was taken meanwhile; cannot bring B back on it")
        self.addCleanup(b2.stop)
        self.assertEqual(self.wait_state(a, "active"), "active", a.tail())

    def test_manifest_fetches_are_counted_under_the_peer(self):
        """B answers A's heartbeat (GET of its node manifest) itself, without
        authorizing it; B's metrics still name the peer A's certificate is."""
        pki, _, _, b = start_b_alone(self, "eg-node-b-manifest-label")
        cfg = config_a(pki, "127.0.0.1:%d" % free_port(), [b_peer("partner-labs", b.ingress_port)])
        cfg["egress"]["heartbeat_interval_ms"] = 200
        a = start_proxy(cfg)
        self.addCleanup(a.stop)
        self.assertEqual(self.wait_state(a, "active"), "active", a.tail())
        status, body = admin_request(b.admin_port, "GET", "/metrics")
        self.assertEqual(status, 200)
        text = body.decode()
        named = metric_value(text, "fedproxy_requests_total", direction="ingress", peer="acme-corp",
                             decision="allow", status="200")
        self.assertIsNotNone(named, text)
        self.assertGreaterEqual(named, 1, text)
        self.assertIsNone(metric_value(text, "fedproxy_requests_total", direction="ingress", peer="unknown",
                                       status="200"), text)


if __name__ == "__main__":
    main()

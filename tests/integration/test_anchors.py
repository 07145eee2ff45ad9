#!/usr/bin/env python3
"""Trust anchors per peer (SPEC §3): a CA trusted for one organisation must
not be able to speak for another.

Every organisation here has its own CA. tls.ca_bundle holds two of them (the
shared multi-CA bundle an operator ends up with), and a peer that names its
own anchors (peers[].ca_bundle, or its manifest's trust_bundle as PEM or as a
SPIFFE bundle) is accepted only with a certificate that chains to them:

    partner-labs   anchors CA-P (peers[].ca_bundle)   impersonated by CA-X
    beta-org       no anchors: falls back to tls.ca_bundle (its CA is CA-X)
    gamma-org      anchors CA-G (manifest trust_bundle, PEM; CA-G is in no bundle)
    delta-org      anchors CA-D (manifest trust_bundle, SPIFFE JWKS)

Ingress (403 untrusted_issuer, connection closed, the recording app gets
nothing), session resumption, hot reload of an anchor file, egress (502
peer_identity_mismatch, B's app gets nothing, heartbeats never make the
impersonator active), `fedproxy check` and /status.

Run: FEDPROXY_BIN=build/proxy/app/fedproxy python3 tests/integration/test_anchors.py
"""

import base64
import hashlib
import json
import os
import shutil
import ssl
import sys
import tempfile
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fedtest.backend import Backend  # noqa: E402
from fedtest.case import main, shared_pki, start_class_proxy, stop_class_proxy  # noqa: E402
from fedtest.pki import NODE_URI, PARTNER_URI, CertAuthority, openssl  # noqa: E402
from fedtest.policy import grant, new_id, peer, policy_config, read_audit, wait_audit  # noqa: E402
from fedtest.proxy import (Conn, Proxy, assert_json_error, base_config,  # noqa: E402
                           client_context, free_port, run_cli, tls_connect, write_config)
from fedtest.reload import (admin_status, atomic_write, log_mark, wait_log_after,  # noqa: E402
                            wait_status)

BETA_URI = "spiffe://beta.example/nodes/primary"
GAMMA_URI = "spiffe://gamma.example/nodes/primary"
DELTA_URI = "spiffe://delta.example/nodes/primary"
ROUTES = [{"prefix": "/api/v1/tasks", "resource": "tasks"}]


def der_of(pem_path: str) -> bytes:
    with open(pem_path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def spki_sha256(pem_path: str) -> str:
    pub = openssl("x509", "-in", pem_path, "-pubkey", "-noout")
    der = openssl("pkey", "-pubin", "-outform", "DER", input=pub)
    return hashlib.sha256(der).hexdigest()


def read(path: str) -> str:
    with open(path) as f:
        return f.read()


def concat(out: str, *paths: str) -> str:
    with open(out, "w") as f:
        for p in paths:
            f.write(read(p))
    return out


class Orgs:
    """One CA per organisation and the certificates the tests present."""

    def __init__(self, root: str):
        self.root = root
        self.ca_p = CertAuthority(os.path.join(root, "ca-p"), "partner-labs CA")
        self.ca_x = CertAuthority(os.path.join(root, "ca-x"), "beta-org CA")
        self.ca_g = CertAuthority(os.path.join(root, "ca-g"), "gamma-org CA")
        self.ca_d = CertAuthority(os.path.join(root, "ca-d"), "delta-org CA")

    def issue(self, ca: CertAuthority, uri: str, **kw):
        name = "leaf-" + uuid.uuid4().hex[:12]
        return ca.issue(self.root, name, sans=["URI:" + uri], **kw)


def jwks_for(*ca_paths: str) -> dict:
    """A SPIFFE bundle: one x509-svid key per CA, plus a JWT key that must be ignored."""
    keys = [{"kty": "EC", "crv": "P-256", "use": "jwt-svid", "kid": "j1",
             "x": "AAAA", "y": "AAAA"}]
    for p in ca_paths:
        keys.append({"kty": "EC", "crv": "P-256", "use": "x509-svid",
                     "x5c": [base64.b64encode(der_of(p)).decode()]})
    return {"keys": keys, "spiffe_refresh_hint": 300, "spiffe_sequence": 1}


def write_manifest(directory: str, org: str, uri: str, **extra) -> str:
    os.makedirs(directory, exist_ok=True)
    m = {"org": org, "entity_uri": uri, "endpoints": ["https://%s.example:8443" % org]}
    m.update(extra)
    path = os.path.join(directory, org + ".json")
    with open(path, "w") as f:
        json.dump(m, f)
    return path


class AnchorCase(unittest.TestCase):
    def request(self, cert, target="/api/v1/tasks", ctx=None, session=None):
        """One request on a new connection; returns (response, conn) with a
        unique marker in the target, so what the app received can be checked."""
        marker = uuid.uuid4().hex
        ctx = ctx or client_context(self.pki, cert)
        sock = tls_connect(self.proxy.ingress_port, ctx, session=session)
        c = Conn(sock)
        self.addCleanup(c.close)
        resp = c.request("GET", target + ("&" if "?" in target else "?") + "m=" + marker)
        resp.marker = marker
        return resp, c

    def assert_refused(self, cert, **kw):
        resp, c = self.request(cert, **kw)
        body = assert_json_error(self, resp, 403, "untrusted_issuer")
        closed, _ = c.closed_within(3)
        self.assertTrue(closed, "an identity failure closes the connection")
        time.sleep(0.1)
        got = [r.target for r in self.backend.snapshot() if resp.marker in r.target]
        self.assertEqual(got, [], "the impersonator's request reached the app")
        return body

    def assert_allowed(self, cert, **kw):
        resp, _ = self.request(cert, **kw)
        self.assertEqual(resp.status, 200, resp.body[:300])
        self.assertIn(resp.marker, resp.json()["target"])
        return resp


class IngressAnchorsTest(AnchorCase):
    @classmethod
    def setUpClass(cls):
        cls.pki = shared_pki()
        cls.tmp = tempfile.mkdtemp(prefix="fedtest-anchors-")
        cls.orgs = o = Orgs(os.path.join(cls.tmp, "pki"))
        os.makedirs(o.root, exist_ok=True)
        cls.shared_bundle = concat(os.path.join(cls.tmp, "shared-ca.pem"), o.ca_p.crt, o.ca_x.crt)
        cls.partner_anchor = shutil.copy(o.ca_p.crt, os.path.join(cls.tmp, "partner-labs-ca.pem"))
        mdir = os.path.join(cls.tmp, "manifests")
        write_manifest(mdir, "gamma-org", GAMMA_URI, trust_domain="gamma.example",
                       trust_bundle=read(o.ca_g.crt))
        write_manifest(mdir, "delta-org", DELTA_URI, trust_bundle=jwks_for(o.ca_d.crt))
        cls.audit_path = os.path.join(cls.tmp, "audit.jsonl")
        cls.peers = [
            peer("partner-labs", PARTNER_URI, ca_bundle=cls.partner_anchor,
                 trust_domain="partner-labs.example"),
            peer("beta-org", BETA_URI),
            peer("gamma-org", None),
            peer("delta-org", None),
        ]
        grants = [grant(new_id(), p["org"], ["tasks"]) for p in cls.peers]
        cls.backend = Backend().start()
        cls.cfg = policy_config(cls.pki, cls.backend.address, peers=cls.peers, grants=grants,
                                routes=ROUTES, manifests_dir=mdir,
                                tls={"ca_bundle": cls.shared_bundle},
                                audit={"path": cls.audit_path})
        cls.proxy = Proxy(cls.cfg, wait_for=("ingress", "admin"))
        start_class_proxy(cls)
        cls.genuine = o.issue(o.ca_p, PARTNER_URI)
        cls.impersonator = o.issue(o.ca_x, PARTNER_URI)
        cls.beta = o.issue(o.ca_x, BETA_URI)
        cls.gamma = o.issue(o.ca_g, GAMMA_URI)
        cls.delta = o.issue(o.ca_d, DELTA_URI)

    @classmethod
    def tearDownClass(cls):
        stop_class_proxy(cls)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    # -- peers[].ca_bundle ----------------------------------------------------
    def test_second_ca_impersonation_refused(self):
        body = self.assert_refused(self.impersonator)
        rid = body["request_id"]
        rec = wait_audit(self.audit_path, lambda r: r.get("request_id") == rid)
        self.assertIsNotNone(rec, "an audit record for the denied request")
        self.assertEqual((rec["decision"], rec["reason"], rec["status"]), ("deny", "untrusted_issuer", 403))
        self.assertEqual(len([r for r in read_audit(self.audit_path) if r.get("request_id") == rid]), 1)

    def test_genuine_certificate_accepted(self):
        resp = self.assert_allowed(self.genuine)
        echo = resp.json()
        self.assertIn(["X-Federation-Peer", "partner-labs"], echo["headers"])

    def test_peer_without_anchors_falls_back_to_ca_bundle(self):
        self.assert_allowed(self.beta)

    def test_another_peers_anchor_cannot_speak_for_partner(self):
        # CA-G is trusted for gamma-org only (it is in the trust store as
        # gamma's anchor): the handshake passes, the identity check does not.
        self.assert_refused(self.orgs.issue(self.orgs.ca_g, PARTNER_URI))

    def test_peer_without_anchors_cannot_be_spoken_for_by_another_peers_ca(self):
        # CA-G is trusted only as gamma-org's anchor (it is in no bundle): it
        # cannot speak for beta-org, which falls back to tls.ca_bundle.
        self.assert_refused(self.orgs.issue(self.orgs.ca_g, BETA_URI))
        self.assert_refused(self.orgs.issue(self.orgs.ca_d, BETA_URI))
        # CA-P is partner-labs' anchor but also in the shared tls.ca_bundle:
        # the fallback accepts it (what `fedproxy check` warns about).
        self.assert_allowed(self.orgs.issue(self.orgs.ca_p, BETA_URI))

    def test_untrusted_ca_still_fails_the_handshake(self):
        stranger = CertAuthority(os.path.join(self.orgs.root, "ca-stranger"), "stranger CA")
        cert = self.orgs.issue(stranger, PARTNER_URI)
        with self.assertRaises((ssl.SSLError, ConnectionError, OSError)):
            self.request(cert)

    # -- manifest trust_bundle ------------------------------------------------
    def test_manifest_pem_trust_bundle(self):
        self.assert_allowed(self.gamma)
        self.assert_refused(self.orgs.issue(self.orgs.ca_x, GAMMA_URI))

    def test_manifest_spiffe_bundle(self):
        self.assert_allowed(self.delta)
        self.assert_refused(self.orgs.issue(self.orgs.ca_x, DELTA_URI))
        self.assert_refused(self.orgs.issue(self.orgs.ca_p, DELTA_URI))

    # -- resumption -----------------------------------------------------------
    def test_resumed_sessions_keep_the_decision(self):
        for cert, allowed in ((self.genuine, True), (self.impersonator, False)):
            ctx = client_context(self.pki, cert)
            resp, c = self.request(cert, ctx=ctx)
            self.assertEqual(resp.status, 200 if allowed else 403)
            session = c.sock.session
            self.assertTrue(session is not None and session.has_ticket, "no ticket was issued")
            c.close()
            if allowed:
                resp, c2 = self.request(cert, ctx=ctx, session=session)
                self.assertEqual(resp.status, 200, resp.body[:300])
            else:
                resp, c2 = self.request(cert, ctx=ctx, session=session)
                assert_json_error(self, resp, 403, "untrusted_issuer")
                self.assertEqual([r for r in self.backend.snapshot() if resp.marker in r.target], [])
            self.assertTrue(c2.sock.session_reused, "the second connection did not resume")

    # -- node manifest --------------------------------------------------------
    def test_node_manifest_fetch_by_impersonator_not_labelled_as_victim(self):
        mark = log_mark(self.proxy)
        resp, _ = self.request(self.impersonator, target="/.well-known/fedproxy-manifest.json")
        self.assertEqual(resp.status, 200)
        rec = wait_log_after(self.proxy, mark, lambda r: r.get("msg") == "request"
                             and "fedproxy-manifest" in r.get("path", ""))
        self.assertIsNotNone(rec)
        self.assertNotEqual(rec.get("peer_org"), "partner-labs", rec)

    # -- /status and check ----------------------------------------------------
    def test_status_shows_each_peers_anchors(self):
        peers = {p["org"]: p for p in admin_status(self.proxy.admin_port)["peers"]}
        (a,) = peers["partner-labs"]["trust_anchors"]
        self.assertIn("partner-labs CA", a["subject"])
        self.assertEqual(a["sha256"], hashlib.sha256(der_of(self.orgs.ca_p.crt)).hexdigest())
        self.assertEqual(a["spki_sha256"], spki_sha256(self.orgs.ca_p.crt))
        self.assertEqual(a["source"], "ca_bundle")
        self.assertEqual(a["file"], self.partner_anchor)
        self.assertGreater(a["not_after"], time.time() + 3000 * 86400)
        self.assertEqual(peers["partner-labs"]["trust_domain"], "partner-labs.example")
        self.assertEqual(peers["beta-org"]["trust_anchors"], [])
        self.assertIsNone(peers["beta-org"]["trust_domain"])
        (g,) = peers["gamma-org"]["trust_anchors"]
        self.assertEqual((g["source"], g["spki_sha256"]), ("manifest", spki_sha256(self.orgs.ca_g.crt)))
        self.assertEqual(peers["gamma-org"]["trust_domain"], "gamma.example")
        (d,) = peers["delta-org"]["trust_anchors"]
        self.assertEqual((d["source"], d["spki_sha256"]), ("manifest", spki_sha256(self.orgs.ca_d.crt)))

    def test_check_warns_about_a_shared_multi_ca_bundle(self):
        p = run_cli(["check", "--config", self.proxy.config_path])
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        warnings = [l for l in p.stdout.splitlines() if l.startswith("warning:") and "CAs" in l]
        self.assertEqual(len(warnings), 1, p.stdout)
        self.assertIn("beta-org", warnings[0])
        self.assertNotIn("partner-labs", warnings[0])
        self.assertIn("2 CAs", warnings[0])

    def test_check_is_quiet_when_every_peer_has_anchors_or_the_bundle_one_ca(self):
        d = tempfile.mkdtemp(dir=self.tmp)
        anchored = json.loads(json.dumps(self.cfg))
        beta_anchor = shutil.copy(self.orgs.ca_x.crt, os.path.join(d, "beta-ca.pem"))
        anchored["peers"][1]["ca_bundle"] = beta_anchor
        single = json.loads(json.dumps(self.cfg))
        single["tls"]["ca_bundle"] = self.orgs.ca_x.crt
        for cfg in (anchored, single):
            p = run_cli(["check", "--config", write_config(cfg, tempfile.mkdtemp(dir=self.tmp))])
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            self.assertFalse([l for l in p.stdout.splitlines() if "CAs" in l], p.stdout)


class AnchorConfigErrorsTest(unittest.TestCase):
    """An anchor source that cannot be used is a start error naming it (exit 2)."""

    @classmethod
    def setUpClass(cls):
        cls.pki = shared_pki()
        cls.tmp = tempfile.mkdtemp(prefix="fedtest-anchors-cfg-")
        cls.orgs = Orgs(os.path.join(cls.tmp, "pki"))
        os.makedirs(cls.orgs.root, exist_ok=True)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def start_fails(self, peers, manifests=None) -> str:
        d = tempfile.mkdtemp(dir=self.tmp)
        over = {}
        if manifests:
            mdir = os.path.join(d, "m")
            for org, extra in manifests.items():
                write_manifest(mdir, org, extra.pop("entity_uri"), **extra)
            over["manifests_dir"] = mdir
        cfg = policy_config(self.pki, "127.0.0.1:%d" % free_port(), peers=peers,
                            grants=[grant(new_id(), peers[0]["org"], ["tasks"])], routes=ROUTES, **over)
        path = write_config(cfg, d)
        p = run_cli(["run", "--config", path], timeout=20)
        self.assertEqual(p.returncode, 2, p.stderr)
        check = run_cli(["check", "--config", path])
        self.assertEqual(check.returncode, 1, check.stdout)
        return p.stderr + check.stdout

    def test_missing_ca_bundle_file(self):
        missing = os.path.join(self.tmp, "nope.pem")
        out = self.start_fails([peer("partner-labs", PARTNER_URI, ca_bundle=missing)])
        self.assertIn(missing, out)
        self.assertIn("peers[0].ca_bundle", out)

    def test_leaf_certificate_is_not_an_anchor(self):
        leaf = self.orgs.issue(self.orgs.ca_p, PARTNER_URI)
        out = self.start_fails([peer("partner-labs", PARTNER_URI, ca_bundle=leaf.crt)])
        self.assertIn(leaf.crt, out)
        self.assertIn("not a CA certificate", out)

    def test_trust_domain_must_match_the_entity_uri(self):
        out = self.start_fails([peer("partner-labs", PARTNER_URI, trust_domain="other.example")])
        self.assertIn("peers[0].trust_domain", out)

    def test_bad_spiffe_bundle(self):
        bundle = jwks_for(self.orgs.ca_p.crt)
        bundle["keys"][1]["x5c"] = ["%%%not base64%%%"]
        out = self.start_fails([peer("partner-labs", None)],
                               {"partner-labs": {"entity_uri": PARTNER_URI, "trust_bundle": bundle}})
        self.assertIn("partner-labs.json", out)
        self.assertIn("trust_bundle.keys[1].x5c[0]", out)

    def test_spiffe_bundle_without_x509_authority(self):
        bundle = jwks_for()
        out = self.start_fails([peer("partner-labs", None)],
                               {"partner-labs": {"entity_uri": PARTNER_URI, "trust_bundle": bundle}})
        self.assertIn("x509-svid", out)


class AnchorReloadTest(AnchorCase):
    """The peer's ca_bundle is watched like every other file."""

    def setUp(self):
        self.pki = shared_pki()
        self.tmp = tempfile.mkdtemp(prefix="fedtest-anchors-reload-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.orgs = o = Orgs(os.path.join(self.tmp, "pki"))
        os.makedirs(o.root, exist_ok=True)
        self.anchor = shutil.copy(o.ca_p.crt, os.path.join(self.tmp, "partner-labs-ca.pem"))
        self.backend = Backend().start()
        self.addCleanup(self.backend.stop)
        cfg = policy_config(self.pki, self.backend.address,
                            peers=[peer("partner-labs", PARTNER_URI, ca_bundle=self.anchor)],
                            grants=[grant(new_id(), "partner-labs", ["tasks"])], routes=ROUTES,
                            tls={"ca_bundle": concat(os.path.join(self.tmp, "shared.pem"),
                                                     o.ca_p.crt, o.ca_x.crt),
                                 "watch_interval_ms": 100})
        self.proxy = Proxy(cfg, wait_for=("ingress", "admin"))
        self.addCleanup(self.proxy.stop)
        self.proxy.start()
        self.genuine = o.issue(o.ca_p, PARTNER_URI)
        self.other = o.issue(o.ca_x, PARTNER_URI)

    def wait_reload(self, mark, ok: bool):
        rec = wait_log_after(self.proxy, mark, lambda r: r.get("msg") == ("reloaded" if ok else "reload failed"),
                             timeout=10)
        self.assertIsNotNone(rec, self.proxy.tail())
        return rec

    def test_changed_anchor_file_decides_the_next_request(self):
        # A kept-alive connection of the genuine peer: its next request is
        # decided under the new anchors.
        resp, kept = self.request(self.genuine)
        self.assertEqual(resp.status, 200)
        self.assert_refused(self.other)
        mark = log_mark(self.proxy)
        atomic_write(self.anchor, read(self.orgs.ca_x.crt).encode())
        self.wait_reload(mark, ok=True)
        self.assert_allowed(self.other)
        self.assert_refused(self.genuine)
        again = kept.request("GET", "/api/v1/tasks?m=kept-" + uuid.uuid4().hex)
        assert_json_error(self, again, 403, "untrusted_issuer")
        status = admin_status(self.proxy.admin_port)
        (a,) = status["peers"][0]["trust_anchors"]
        self.assertEqual(a["spki_sha256"], spki_sha256(self.orgs.ca_x.crt))

    def test_broken_anchor_file_keeps_the_old_snapshot(self):
        mark = log_mark(self.proxy)
        atomic_write(self.anchor, b"-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
        rec = self.wait_reload(mark, ok=False)
        self.assertIn(self.anchor, rec.get("problem", ""))
        self.assert_allowed(self.genuine)
        self.assert_refused(self.other)
        status = wait_status(self.proxy.admin_port, lambda s: s["last_reload"] and not s["last_reload"]["ok"])
        self.assertIn(self.anchor, status["last_reload"]["error"])


class EgressAnchorsTest(unittest.TestCase):
    """A (acme-corp) calls partner-labs through its egress. A's tls.ca_bundle
    trusts CA-X (another peer's CA); partner-labs' anchor is CA-P."""

    @classmethod
    def setUpClass(cls):
        cls.pki = pki = shared_pki()
        cls.tmp = tempfile.mkdtemp(prefix="fedtest-anchors-egress-")
        cls.orgs = o = Orgs(os.path.join(cls.tmp, "pki"))
        os.makedirs(o.root, exist_ok=True)
        cls.anchor = shutil.copy(o.ca_p.crt, os.path.join(cls.tmp, "partner-labs-ca.pem"))
        cls.a_bundle = concat(os.path.join(cls.tmp, "a-ca.pem"), pki.ca.crt, o.ca_x.crt)
        cls.procs = []
        try:
            cls.real_app, cls.real_b = cls.start_b(o.ca_p)
            cls.fake_app, cls.fake_b = cls.start_b(o.ca_x)
            cls.a_fake = cls.start_a(cls.fake_b.ingress_port)
            cls.a_real = cls.start_a(cls.real_b.ingress_port)
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        for p in reversed(cls.procs):
            p.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def start_b(cls, issuer, org="partner-labs", uri=PARTNER_URI):
        """A peer's fedproxy (partner-labs unless told) with a server certificate from `issuer`."""
        cert = issuer.issue(cls.orgs.root, "b-" + uuid.uuid4().hex[:8], server=True,
                            sans=["URI:" + uri, "DNS:localhost"])
        app = Backend().start()
        cls.procs.append(app)
        cfg = base_config(cls.pki, app.address, node={"org": org, "entity_uri": uri},
                          tls={"cert": cert.crt, "key": cert.key})
        cfg.update(peers=[peer("acme-corp", NODE_URI)], routes=ROUTES,
                   grants=[grant(new_id(), "acme-corp", ["tasks"])])
        cfg.pop("authenticate_only", None)
        b = Proxy(cfg, wait_for=("ingress", "admin"))
        cls.procs.append(b)
        b.start()
        return app, b

    @classmethod
    def start_a(cls, b_port: int, more_peers=()):
        cfg = base_config(cls.pki, "127.0.0.1:%d" % free_port(),
                          tls={"ca_bundle": cls.a_bundle},
                          egress={"listen": "127.0.0.1:0", "heartbeat_interval_ms": 200})
        cfg.update(peers=[peer("partner-labs", PARTNER_URI, ca_bundle=cls.anchor,
                               endpoints=["https://127.0.0.1:%d" % b_port]), *more_peers],
                   routes=ROUTES, grants=[])
        cfg.pop("authenticate_only", None)
        a = Proxy(cfg, wait_for=("ingress", "egress", "admin"))
        cls.procs.append(a)
        a.start()
        return a

    def egress_get(self, a, marker, host="partner-labs"):
        with Conn.open(a.ports["egress"], None, timeout=15) as c:
            return c.request("GET", "/api/v1/tasks?m=" + marker, [("Host", host), ("Connection", "close")])

    def test_peer_without_anchors_not_served_by_another_peers_ca(self):
        # beta-org has no anchors: A falls back to its tls.ca_bundle (its own
        # CA and CA-X). A beta-org server certificate from CA-P, which A trusts
        # only as partner-labs' anchor, is refused; one from CA-X is beta-org.
        fake_app, fake = self.start_b(self.orgs.ca_p, "beta-org", BETA_URI)
        real_app, real = self.start_b(self.orgs.ca_x, "beta-org", BETA_URI)
        for b, app, ok in ((fake, fake_app, False), (real, real_app, True)):
            a = self.start_a(self.real_b.ingress_port, more_peers=[
                peer("beta-org", BETA_URI, endpoints=["https://127.0.0.1:%d" % b.ingress_port])])
            marker = uuid.uuid4().hex
            resp = self.egress_get(a, marker, host="beta-org")
            if ok:
                self.assertEqual(resp.status, 200, resp.body[:300])
                self.assertIn(marker.encode(), app.raw_bytes())
            else:
                assert_json_error(self, resp, 502, "peer_identity_mismatch")
                time.sleep(0.3)
                self.assertNotIn(marker.encode(), app.raw_bytes(), "the app received the request")

    def test_server_certificate_from_the_wrong_ca_502(self):
        marker = uuid.uuid4().hex
        resp = self.egress_get(self.a_fake, marker)
        body = assert_json_error(self, resp, 502, "peer_identity_mismatch")
        self.assertIn("trust anchors", body["message"] + json.dumps(self.a_fake.logs[-20:]))
        time.sleep(0.3)
        self.assertNotIn(marker.encode(), self.fake_app.raw_bytes(), "B's app received the request")

    def test_genuine_peer_reached(self):
        marker = uuid.uuid4().hex
        resp = self.egress_get(self.a_real, marker)
        self.assertEqual(resp.status, 200, resp.body[:300])
        self.assertIn(marker.encode(), self.real_app.raw_bytes())

    def test_manifest_fetch_checks_the_peers_anchors(self):
        cfg = json.loads(json.dumps(self.a_real.config))
        cfg["manifests_dir"] = os.path.join(self.tmp, "fetched")
        path = write_config(cfg, tempfile.mkdtemp(dir=self.tmp))
        stored = os.path.join(self.tmp, "fetched", "partner-labs.json")
        for b, ok in ((self.fake_b, False), (self.real_b, True)):
            p = run_cli(["manifest", "fetch", "partner-labs", "--endpoint",
                         "https://127.0.0.1:%d" % b.ingress_port, "--config", path])
            if ok:
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertTrue(os.path.exists(stored))
            else:
                self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
                self.assertIn("not issued by one of partner-labs's trust anchors", p.stderr)
                self.assertFalse(os.path.exists(stored), "the impersonator's manifest was stored")

    def test_heartbeats_never_mark_the_impersonator_active(self):
        st = wait_status(self.a_real.admin_port, lambda s: s["peers"][0]["state"] == "active", timeout=10)
        self.assertEqual(st["peers"][0]["state"], "active")
        st = wait_status(self.a_fake.admin_port, lambda s: s["peers"][0]["state"] == "degraded", timeout=10)
        p = st["peers"][0]
        self.assertEqual(p["state"], "degraded")
        self.assertIsNone(p["last_seen"])
        self.assertIn("trust anchors", p.get("last_error", ""))


if __name__ == "__main__":
    main()

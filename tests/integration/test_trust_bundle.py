#!/usr/bin/env python3
"""The node's trust bundle (issue 17, SPEC §3): served on ingress at
/.well-known/fedproxy-bundle.json in the SPIFFE format, so peers can learn
and refresh whom to trust for this node.

- by default: the CA of tls.ca_bundle that issued the node certificate,
  as a JWK whose key members (kty/crv/x/y, n/e) are the CA's public key and
  whose x5c is the CA's DER; spiffe_refresh_hint 300;
- node.ca_bundle (the rotation window: old and new CA, one RSA) replaces it,
  with node.bundle_refresh_hint_s;
- the document is read back by fedproxy itself as a peer manifest's
  trust_bundle (`fedproxy check` accepts it and /status lists the anchors);
- a reload of node.ca_bundle changes what is served.

Run: FEDPROXY_BIN=build/proxy/app/fedproxy python3 tests/integration/test_trust_bundle.py
"""

import base64
import json
import os
import shutil
import ssl
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, rsa  # noqa: E402

from fedtest.backend import Backend  # noqa: E402
from fedtest.case import main, shared_pki  # noqa: E402
from fedtest.pki import CertAuthority  # noqa: E402
from fedtest.policy import grant, new_id, peer, policy_config  # noqa: E402
from fedtest.proxy import Conn, Proxy, client_context, run_cli, tls_connect, write_config  # noqa: E402
from fedtest.reload import wait_until  # noqa: E402

PEER = "partner-labs"
PARTNER_URI = "spiffe://partner-labs.example/nodes/primary"
BUNDLE = "/.well-known/fedproxy-bundle.json"


def b64url_int(s: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)), "big")


def der_of(pem_path: str) -> bytes:
    with open(pem_path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def concat(path: str, *pems: str) -> str:
    with open(path, "w") as out:
        for p in pems:
            with open(p) as f:
                out.write(f.read())
    return path


class TrustBundleTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pki = shared_pki()
        cls.tmp = tempfile.mkdtemp(prefix="fedtest-bundle-")
        cls.backend = Backend().start()
        cls.ca_new = CertAuthority(os.path.join(cls.tmp, "ca-new"), "rotated-in RSA CA", alg="rsa2048")
        cls.gid = new_id()

    @classmethod
    def tearDownClass(cls):
        cls.backend.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def start(self, **over) -> Proxy:
        cfg = policy_config(self.pki, self.backend.address, peers=[peer(PEER, PARTNER_URI)],
                            grants=[grant(self.gid, PEER, ["tasks"])], **over)
        proxy = Proxy(cfg).start()
        self.addCleanup(proxy.stop)
        return proxy

    def fetch(self, proxy: Proxy, method: str = "GET"):
        with Conn(tls_connect(proxy.ingress_port, client_context(self.pki, self.pki.client))) as c:
            return c.request(method, BUNDLE)

    def assert_key_is(self, key: dict, ca_pem: str):
        cert = x509.load_der_x509_certificate(der_of(ca_pem))
        self.assertEqual(key["use"], "x509-svid")
        self.assertEqual(key["x5c"], [base64.b64encode(der_of(ca_pem)).decode()])
        pub = cert.public_key()
        if isinstance(pub, ec.EllipticCurvePublicKey):
            nums = pub.public_numbers()
            self.assertEqual((key["kty"], key["crv"]), ("EC", "P-%d" % pub.curve.key_size))
            self.assertEqual((b64url_int(key["x"]), b64url_int(key["y"])), (nums.x, nums.y))
            size = (pub.curve.key_size + 7) // 8
            self.assertEqual(len(base64.urlsafe_b64decode(key["x"] + "=" * (-len(key["x"]) % 4))), size)
        else:
            self.assertIsInstance(pub, rsa.RSAPublicKey)
            nums = pub.public_numbers()
            self.assertEqual(key["kty"], "RSA")
            self.assertEqual((b64url_int(key["n"]), b64url_int(key["e"])), (nums.n, nums.e))
            self.assertEqual(key["e"], "AQAB")  # minimal big-endian: 65537

    def test_default_bundle_is_the_node_certificates_issuer(self):
        proxy = self.start()
        resp = self.fetch(proxy)
        self.assertEqual(resp.status, 200, resp.body[:300])
        self.assertEqual(resp.header("content-type"), "application/json")
        doc = resp.json()
        self.assertEqual(doc["spiffe_refresh_hint"], 300)
        self.assertEqual(len(doc["keys"]), 1, doc)
        self.assert_key_is(doc["keys"][0], self.pki.ca.crt)
        head = self.fetch(proxy, "HEAD")
        self.assertEqual((head.status, head.body), (200, b""))
        # not a request for the app: it never saw one
        self.assertEqual([r for r in self.backend.snapshot() if BUNDLE in r.target], [])

    def test_node_ca_bundle_publishes_the_rotation_window(self):
        both = concat(os.path.join(self.tmp, "node-cas.pem"), self.pki.ca.crt, self.ca_new.crt)
        proxy = self.start(node={"ca_bundle": both, "bundle_refresh_hint_s": 60},
                           tls={"watch_interval_ms": 200})
        doc = self.fetch(proxy).json()
        self.assertEqual(doc["spiffe_refresh_hint"], 60)
        self.assertEqual(len(doc["keys"]), 2)
        self.assert_key_is(doc["keys"][0], self.pki.ca.crt)
        self.assert_key_is(doc["keys"][1], self.ca_new.crt)
        # the window closes: new CA only, seen by the file watcher (no reload asked)
        tmp = both + ".tmp"
        concat(tmp, self.ca_new.crt)
        os.replace(tmp, both)
        self.assertTrue(wait_until(lambda: len(self.fetch(proxy).json()["keys"]) == 1, 10))
        self.assert_key_is(self.fetch(proxy).json()["keys"][0], self.ca_new.crt)

    def test_fedproxy_reads_its_own_bundle_as_a_peer_trust_bundle(self):
        served = self.fetch(self.start()).json()
        mdir = os.path.join(self.tmp, "manifests")
        os.makedirs(mdir, exist_ok=True)
        with open(os.path.join(mdir, "other-org.json"), "w") as f:
            json.dump({"org": "other-org", "entity_uri": "spiffe://other.example/nodes/a",
                       "endpoints": ["https://other.example:8443"], "trust_bundle": served}, f)
        cfg = policy_config(self.pki, self.backend.address, peers=[peer("other-org", None)],
                            grants=[grant(new_id(), "other-org", ["tasks"])], manifests_dir=mdir)
        path = write_config(cfg, tempfile.mkdtemp(dir=self.tmp))
        r = run_cli(["check", "--config", path])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_unreadable_node_ca_bundle_is_a_config_problem(self):
        cfg = policy_config(self.pki, self.backend.address, peers=[peer(PEER, PARTNER_URI)],
                            grants=[grant(self.gid, PEER, ["tasks"])],
                            node={"ca_bundle": os.path.join(self.tmp, "missing.pem")})
        path = write_config(cfg, tempfile.mkdtemp(dir=self.tmp))
        r = run_cli(["check", "--config", path])
        self.assertEqual(r.returncode, 1)
        self.assertIn("node.ca_bundle", r.stdout + r.stderr)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""`fedproxy cert inspect FILE [--json]` and the node-certificate checks of
`fedproxy check` (SPEC §10, §4 grant OID, §8).

cert inspect is compared field by field with what the `openssl` CLI says about
the same file. check must fail on a key that does not match, a node
certificate revoked by tls.crl and an expired one; one expiring within 30
days, or one that does not chain to tls.ca_bundle (peers may use another
CA), only prints a warning.

Run: FEDPROXY_BIN=build/proxy/app/fedproxy python3 tests/integration/test_cert_inspect.py
"""

import calendar
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fedtest.case import main, shared_pki  # noqa: E402
from fedtest.pki import GRANT_OID, NODE_URI, openssl  # noqa: E402
from fedtest.proxy import base_config, free_port, run_cli, write_config  # noqa: E402


def lines(text: str):
    return [ln for ln in text.splitlines() if ln.strip()]


def floor_days(not_after: int, now: float) -> int:
    return int((not_after - now) // 86400)


def openssl_facts(crt: str, der: bool = False) -> dict:
    """What openssl says about the first certificate of crt."""
    form = ["-inform", "DER"] if der else []

    def x509(*args: str) -> str:
        return openssl("x509", "-in", crt, *form, "-noout", *args).decode()

    def dn(out: str, prefix: str) -> str:
        # "subject=CN = server, O = fedproxy tests" -> mbedTLS's "CN=server, O=fedproxy tests"
        return out.strip()[len(prefix):].replace(" = ", "=")

    def date(out: str, prefix: str) -> int:
        return calendar.timegm(time.strptime(out.strip()[len(prefix):], "%b %d %H:%M:%S %Y GMT"))

    dates = x509("-dates").splitlines()
    fp = x509("-fingerprint", "-sha256").strip().split("=", 1)[1]
    pub_pem = openssl("x509", "-in", crt, *form, "-noout", "-pubkey")
    spki_der = openssl("pkey", "-pubin", "-outform", "DER", input=pub_pem)
    san = x509("-ext", "subjectAltName")
    entries = []
    if "Subject Alternative Name" in san:
        entries = [e.strip() for e in san.splitlines()[1].split(",")]
    text = x509("-text")
    bits = re.search(r"Public-Key: \((\d+) bit\)", text)
    curve = re.search(r"NIST CURVE: (P-\d+)", text)
    return {
        "subject": dn(x509("-subject"), "subject="),
        "issuer": dn(x509("-issuer"), "issuer="),
        "serial": x509("-serial").strip()[len("serial="):],
        "not_before": date(dates[0], "notBefore="),
        "not_after": date(dates[1], "notAfter="),
        "fingerprint_sha256": fp.replace(":", "").lower(),
        "spki_sha256": hashlib.sha256(spki_der).hexdigest(),
        "uri_sans": [e[4:] for e in entries if e.startswith("URI:")],
        "dns_sans": [e[4:] for e in entries if e.startswith("DNS:")],
        "ip_sans": [e[len("IP Address:"):] for e in entries if e.startswith("IP Address:")],
        "key_type": "RSA" if "rsaEncryption" in text else "EC",
        "key_bits": int(bits.group(1)) if bits else None,
        "key_curve": curve.group(1) if curve else None,
        "text": text,
    }


class CertInspectTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.pki = shared_pki()
        cls.dir = tempfile.mkdtemp(prefix="fedtest-certinspect-")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def inspect_json(self, path: str) -> dict:
        p = run_cli(["cert", "inspect", path, "--json"])
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        doc = json.loads(p.stdout)
        self.assertEqual(doc["file"], path)
        self.assertEqual(doc["count"], len(doc["certificates"]))
        return doc

    def assert_like_openssl(self, got: dict, crt: str, der: bool = False):
        want = openssl_facts(crt, der)
        for key in ("subject", "issuer", "serial", "not_before", "not_after", "fingerprint_sha256",
                    "spki_sha256", "uri_sans", "dns_sans", "ip_sans", "key_type", "key_bits",
                    "key_curve"):
            self.assertEqual(got[key], want[key], "%s of %s" % (key, crt))
        for key in ("not_before", "not_after"):
            self.assertEqual(got[key + "_iso"],
                             time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(want[key])))
        for key in ("fingerprint_sha256", "spki_sha256"):
            self.assertRegex(got[key], r"^[0-9a-f]{64}$")

    def assert_days_left(self, got: dict, before: float, after: float):
        allowed = {floor_days(got["not_after"], before), floor_days(got["not_after"], after)}
        self.assertIn(got["days_left"], allowed)
        self.assertEqual(got["expired"], got["not_after"] < after)

    # -- what it shows --------------------------------------------------------
    def test_node_cert_with_uri_san(self):
        before = time.time()
        doc = self.inspect_json(self.pki.server.crt)
        after = time.time()
        self.assertEqual(doc["count"], 1)
        c = doc["certificates"][0]
        self.assert_like_openssl(c, self.pki.server.crt)
        self.assertEqual(c["uri_sans"], [NODE_URI])
        self.assertEqual(c["dns_sans"], ["localhost"])
        self.assertEqual(c["ip_sans"], ["127.0.0.1"])
        self.assertIsNone(c["grant_id"])
        self.assertEqual(c["fingerprint_sha256"], self.pki.server.der_sha256())
        self.assertEqual((c["key_type"], c["key_curve"], c["key_bits"]), ("EC", "P-256", 256))
        self.assertFalse(c["expired"])
        self.assertFalse(c["not_yet_valid"])
        self.assert_days_left(c, before, after)

    def test_grant_oid(self):
        doc = self.inspect_json(self.pki.client_grant.crt)
        c = doc["certificates"][0]
        self.assert_like_openssl(c, self.pki.client_grant.crt)
        self.assertEqual(c["grant_id"], self.pki.grant_id)
        text = openssl_facts(self.pki.client_grant.crt)["text"]
        self.assertIn(GRANT_OID, text)
        self.assertIn(self.pki.grant_id, text)
        human = run_cli(["cert", "inspect", self.pki.client_grant.crt])
        self.assertEqual(human.returncode, 0, human.stderr)
        self.assertRegex(human.stdout, r"grant id:\s+" + re.escape(self.pki.grant_id))

    def test_expired_cert(self):
        before = time.time()
        doc = self.inspect_json(self.pki.client_expired.crt)
        after = time.time()
        c = doc["certificates"][0]
        self.assert_like_openssl(c, self.pki.client_expired.crt)
        self.assertTrue(c["expired"])
        self.assertLess(c["days_left"], 0)
        self.assert_days_left(c, before, after)
        self.assertEqual(c["not_after_iso"], "2020-01-02T00:00:00Z")
        self.assertEqual(c["not_after"], 1577923200)

    def test_rsa_key(self):
        c = self.inspect_json(self.pki.client_rsa.crt)["certificates"][0]
        self.assert_like_openssl(c, self.pki.client_rsa.crt)
        self.assertEqual((c["key_type"], c["key_curve"], c["key_bits"]), ("RSA", None, 2048))

    def test_der_file(self):
        der = os.path.join(self.dir, "server.der")
        openssl("x509", "-in", self.pki.server.crt, "-outform", "DER", "-out", der)
        doc = self.inspect_json(der)
        self.assertEqual(doc["count"], 1)
        c = doc["certificates"][0]
        self.assert_like_openssl(c, der, der=True)
        pem = self.inspect_json(self.pki.server.crt)["certificates"][0]
        # days_left is whole days from *now*: the two runs may straddle the
        # second at which it steps down by one.
        self.assertLessEqual(abs(c.pop("days_left") - pem.pop("days_left")), 1)
        self.assertEqual(c, pem)

    def test_pem_chain_leaf_first(self):
        chain = os.path.join(self.dir, "chain.pem")
        with open(chain, "w") as out:
            for p in (self.pki.server.crt, self.pki.ca.crt):
                with open(p) as f:
                    out.write(f.read())
        doc = self.inspect_json(chain)
        self.assertEqual(doc["count"], 2)
        leaf, ca = doc["certificates"]
        self.assert_like_openssl(leaf, self.pki.server.crt)
        self.assert_like_openssl(ca, self.pki.ca.crt)
        self.assertEqual(leaf["issuer"], ca["subject"])
        human = run_cli(["cert", "inspect", chain])
        self.assertEqual(human.returncode, 0, human.stderr)
        self.assertIn("certificate 1 of 2 (leaf)", human.stdout)
        self.assertIn("certificate 2 of 2", human.stdout)

    def test_human_output(self):
        p = run_cli(["cert", "inspect", self.pki.server.crt])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stderr, "")
        want = openssl_facts(self.pki.server.crt)
        out = p.stdout
        self.assertIn(NODE_URI, out)
        self.assertIn(want["subject"], out)
        self.assertIn(want["issuer"], out)
        self.assertRegex(out, r"SHA-256:\s+" + want["fingerprint_sha256"])
        self.assertRegex(out, r"SPKI SHA-256:\s+" + want["spki_sha256"])
        self.assertRegex(out, r"days left:\s+-?\d+")
        self.assertRegex(out, r"expired:\s+no")
        self.assertIn("(none: no extension %s)" % GRANT_OID, out)
        self.assertIn(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(want["not_after"])), out)
        self.assertIn("(%d)" % want["not_after"], out)

    # -- errors ----------------------------------------------------------------
    def assert_fails(self, path: str, *must_contain: str):
        for args in (["cert", "inspect", path], ["cert", "inspect", path, "--json"]):
            p = run_cli(args)
            self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
            self.assertEqual(p.stdout, "")
            err = lines(p.stderr)
            self.assertEqual(len(err), 1, "want one line on stderr, got:\n" + p.stderr)
            self.assertIn(path, err[0])
            for s in must_contain:
                self.assertIn(s, err[0])

    def test_missing_file(self):
        self.assert_fails(os.path.join(self.dir, "no-such.crt"), "No such file")

    def test_not_a_certificate(self):
        garbage = os.path.join(self.dir, "garbage.pem")
        with open(garbage, "w") as f:
            f.write("this is not a certificate\n")
        self.assert_fails(garbage, "no certificate found")
        # a private key is no certificate either
        self.assert_fails(self.pki.server.key, "no certificate found")
        bad_der = os.path.join(self.dir, "garbage.der")
        with open(bad_der, "wb") as f:
            f.write(b"\x30\x03\x02\x01\x01")
        self.assert_fails(bad_der, "cannot parse")

    def test_usage(self):
        for args in (["cert", "--help"], ["cert", "inspect", "--help"]):
            p = run_cli(args)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("cert inspect FILE", p.stdout)
        for args in (["cert"], ["cert", "inspect"], ["cert", "bogus", "x"],
                     ["cert", "inspect", self.pki.server.crt, "--jsn"],
                     ["cert", "inspect", self.pki.server.crt, self.pki.client.crt]):
            p = run_cli(args)
            self.assertEqual(p.returncode, 2, "%s: %s" % (args, p.stdout + p.stderr))
            self.assertIn("Usage: fedproxy cert inspect", p.stderr)
        top = run_cli(["--help"])
        self.assertIn("cert inspect FILE", top.stdout)


class CheckCertificatesTest(unittest.TestCase):
    """`fedproxy check` on the node certificate (§10 check, §8)."""

    @classmethod
    def setUpClass(cls):
        cls.pki = pki = shared_pki()
        cls.dir = tempfile.mkdtemp(prefix="fedtest-certcheck-")
        cls.upstream = "127.0.0.1:%d" % free_port()
        node_sans = ["DNS:localhost", "IP:127.0.0.1", "URI:" + NODE_URI]
        cls.long_lived = pki.ca.issue(pki.root, "ci-node-90d", server=True, sans=node_sans, days=90)
        cls.other_ca = pki.ca2.issue(pki.root, "ci-node-ca2", server=True, sans=node_sans, days=90)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def check(self, name: str, node=None, **tls):
        if node is not None:
            tls = dict({"cert": node.crt, "key": node.key}, **tls)
        # no admin listener: its no-token warning is not what these tests look at
        path = write_config(base_config(self.pki, self.upstream, tls=tls, admin=None), self.dir,
                            name + ".json")
        p = run_cli(["check", "--config", path])
        return p.returncode, p.stdout + p.stderr

    def test_long_lived_cert_passes_without_warning(self):
        rc, out = self.check("good", self.long_lived)
        self.assertEqual(rc, 0, out)
        self.assertNotIn("warning", out)

    def test_expiring_soon_is_a_warning_only(self):
        # the harness issues node certificates for 30 days
        rc, out = self.check("soon", self.pki.server)
        self.assertEqual(rc, 0, out)
        warn = [ln for ln in lines(out) if ln.startswith("warning:")]
        self.assertEqual(len(warn), 1, out)
        self.assertIn(self.pki.server.crt, warn[0])
        m = re.search(r"expires in (\d+) days", warn[0])
        self.assertTrue(m, warn[0])
        self.assertIn(int(m.group(1)), (28, 29))
        self.assertIn("OK", out)

    def test_expired_cert_is_a_problem(self):
        rc, out = self.check("expired", self.pki.client_expired)
        self.assertEqual(rc, 1, out)
        bad = [ln for ln in lines(out) if self.pki.client_expired.crt in ln and "expired" in ln]
        self.assertEqual(len(bad), 1, out)
        self.assertIn("2020-01-02T00:00:00Z", bad[0])
        self.assertNotIn("warning", out)

    def test_cert_from_another_ca_is_a_warning(self):
        # peers may use another CA than ours: `run` accepts it, `check` warns
        rc, out = self.check("wrong-ca", self.other_ca)
        self.assertEqual(rc, 0, out)
        bad = [ln for ln in lines(out) if "does not chain" in ln and "warning" in ln]
        self.assertEqual(len(bad), 1, out)
        self.assertIn(self.other_ca.crt, bad[0])
        self.assertIn(self.pki.ca_bundle, bad[0])
        # with its CA in the bundle (dual-trust window) it passes
        rc, out = self.check("dual-ca", self.other_ca, ca_bundle=self.pki.ca_bundle_dual)
        self.assertEqual(rc, 0, out)

    def test_revoked_cert_is_a_problem(self):
        rc, out = self.check("revoked", self.pki.client_revoked, crl=self.pki.crl)
        self.assertEqual(rc, 1, out)
        self.assertTrue(any("revoked" in ln and self.pki.client_revoked.crt in ln for ln in lines(out)),
                        out)
        # the same CRL does not list the node's own certificate
        rc, out = self.check("not-revoked", self.long_lived, crl=self.pki.crl)
        self.assertEqual(rc, 0, out)

    def test_key_not_matching_cert(self):
        rc, out = self.check("mismatch", self.long_lived, key=self.pki.client.key)
        self.assertEqual(rc, 1, out)
        bad = [ln for ln in lines(out) if "does not match" in ln]
        self.assertEqual(len(bad), 1, out)
        self.assertIn(self.pki.client.key, bad[0])

    def test_every_certificate_problem_listed(self):
        # expired and from an untrusted CA: both reported, one line each
        # (the expiry is the problem, the chain a warning)
        expired_ca2 = self.pki.ca2.issue(self.pki.root, "ci-expired-ca2", server=True,
                                         sans=["URI:" + NODE_URI],
                                         startdate="20200101000000Z", enddate="20200102000000Z")
        rc, out = self.check("two-problems", expired_ca2)
        self.assertEqual(rc, 1, out)
        self.assertTrue(any("does not chain" in ln for ln in lines(out)), out)
        self.assertTrue(any("expired on" in ln for ln in lines(out)), out)
        self.assertIn("1 problem found", out)


if __name__ == "__main__":
    main()

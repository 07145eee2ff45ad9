#!/usr/bin/env python3
"""A CA rotation on one side, with no coordination and no failed request on
the other (issue 17, item 4).

A and B join (SPEC §13; B's anchors for A are A's trust bundle). Traffic runs
both ways the whole time: B's app → B's egress → A, and A's app → A's egress
→ B, each on fresh connections and on a kept-alive one. Then A alone rotates
its CA, the documented way (docs/operations.md):

  1. node.ca_bundle = old + new CA   → A's bundle lists both; B refreshes it
  2. A's node certificate from the new CA (cert and key files replaced)
  3. node.ca_bundle = new CA only     → B refreshes; the old CA is gone at B

B is never touched. Every request must succeed; afterwards a certificate from
A's old CA no longer speaks for A at B, and B's audit log holds the two
peer.bundle_updated events with their digests.

Run: FEDPROXY_BIN=build/proxy/app/fedproxy python3 tests/integration/test_ca_rotation.py
"""

import hashlib
import json
import os
import re
import shutil
import ssl
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fedtest.case import main  # noqa: E402
from fedtest.federation import ORG_A, ORG_B, URI_A, URI_B, Side  # noqa: E402
from fedtest.pki import CertAuthority  # noqa: E402
from fedtest.policy import grant, read_audit  # noqa: E402
from fedtest.proxy import Conn, run_cli, tls_connect  # noqa: E402
from fedtest.reload import admin_exchange  # noqa: E402

PEM_CERT = re.compile(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n?", re.S)


def ders(path: str) -> set:
    with open(path) as f:
        return {hashlib.sha256(ssl.PEM_cert_to_DER_cert(m)).hexdigest() for m in PEM_CERT.findall(f.read())}


def der_of(path: str) -> str:
    (d,) = ders(path)
    return d


def replace_file(path: str, *sources: str, mode: int = 0o644) -> None:
    """Concatenate sources into path atomically (a watcher never reads half)."""
    tmp = path + ".tmp"
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "w") as out:
        for s in sources:
            with open(s) as f:
                out.write(f.read())
    os.replace(tmp, path)


class Traffic:
    """Requests through one side's egress to the other side until stopped,
    alternating a fresh connection and a kept-alive one; every failure kept."""

    def __init__(self, egress_port: int, target_org: str):
        self.port, self.org = egress_port, target_org
        self.ok = 0
        self.failures: list[str] = []
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        kept = None
        deadline = time.monotonic() + 120  # bounded whatever happens
        n = 0
        while not self.stop_flag.is_set() and time.monotonic() < deadline and n < 20000:
            n += 1
            try:
                if n % 2:
                    with Conn.open(self.port, None, timeout=10) as c:
                        r = c.request("GET", "/api/v1/tasks?n=%d" % n, [("Host", self.org), ("Connection", "close")])
                else:
                    kept = kept or Conn.open(self.port, None, timeout=10)
                    r = kept.request("GET", "/api/v1/tasks?n=%d" % n, [("Host", self.org)])
                    if r.wants_close():
                        kept.close()
                        kept = None
                if r.status == 200:
                    self.ok += 1
                else:
                    self.failures.append("%d: HTTP %d %r" % (n, r.status, r.body[:200]))
            except Exception as e:  # noqa: BLE001 - every failure is the finding
                self.failures.append("%d: %r" % (n, e))
                if kept:
                    kept.close()
                    kept = None
            time.sleep(0.01)
        if kept:
            kept.close()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_flag.set()
        self.thread.join(15)


class CaRotationTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="fedtest-rotation-")
        cls.sides = []
        try:
            # A publishes node.ca_bundle (a file it will change) with a 1 s refresh hint.
            a_dir = os.path.join(cls.tmp, "alpha-files")
            os.makedirs(a_dir)
            cls.a_bundle = os.path.join(a_dir, "node-cas.pem")
            cls.a = Side(cls.tmp, ORG_A, URI_A, tls={"watch_interval_ms": 200},
                         node={"ca_bundle": cls.a_bundle, "bundle_refresh_hint_s": 1})
            replace_file(cls.a_bundle, cls.a.ca.crt)
            cls.sides.append(cls.a)
            cls.b = Side(cls.tmp, ORG_B, URI_B, tls={"watch_interval_ms": 200})
            cls.sides.append(cls.b)
            cls.a.proxy.start()
            cls.b.proxy.start()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        for s in cls.sides:
            s.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def join(self):
        a, b = self.a, self.b
        gfile = os.path.join(self.tmp, "grant.json")
        g = grant("rot-b-to-a", ORG_B, ["tasks"])
        del g["peer"]
        with open(gfile, "w") as f:
            json.dump(g, f)
        r = run_cli(["peer", "invite", ORG_B, "--grant", gfile, *a.admin_args()])
        self.assertEqual(r.returncode, 0, r.stderr)
        r = run_cli(["peer", "join", "https://127.0.0.1:%d" % a.proxy.ports["peering"], "--token", r.stdout.strip(),
                     "--json", *b.admin_args()], timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr + r.stdout)
        # B grants A too, through its management API, so traffic runs both ways.
        status, _, body = admin_exchange(b.proxy.admin_port, "POST", "/v1/grants",
                                         body=json.dumps(grant("rot-a-to-b", ORG_A, ["tasks"])).encode(), token=b.token)
        self.assertEqual(status, 201, body)
        return json.loads(r.stdout)["peer"]["ca_bundle"]  # B's file of A's anchors

    def wait_anchors(self, path: str, want: set, timeout: float = 20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ders(path) == want:
                return
            time.sleep(0.05)
        self.fail("B's anchors for A are %s, want %s" % (ders(path), want))

    def wait_node_cert(self, side: Side, der: str, timeout: float = 20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if side.status()["certificate"]["fingerprint_sha256"] == der:
                return
            time.sleep(0.05)
        reloads = [r for r in side.proxy.logs if "reload" in r.get("msg", "") or r.get("level") == "error"]
        self.fail("%s does not serve its new certificate: %s" % (side.org, reloads[-5:]))

    def test_rotation_of_one_side_fails_no_request_on_the_other(self):
        a, b = self.a, self.b
        anchors_at_b = self.join()
        old_ca, new_ca = a.ca, CertAuthority(os.path.join(self.tmp, "alpha-ca2"), ORG_A + " CA 2")
        self.wait_anchors(anchors_at_b, {der_of(old_ca.crt)})
        with Traffic(b.proxy.ports["egress"], ORG_A) as b_to_a, Traffic(a.proxy.ports["egress"], ORG_B) as a_to_b:
            time.sleep(1)
            # 1. trust both: A publishes old + new; B picks it up by itself.
            replace_file(self.a_bundle, old_ca.crt, new_ca.crt)
            self.wait_anchors(anchors_at_b, {der_of(old_ca.crt), der_of(new_ca.crt)})
            time.sleep(1)
            # 2. reissue A's node certificate from the new CA.
            new_cert = new_ca.issue(os.path.join(self.tmp, "alpha-ca2"), "node2", server=True,
                                    sans=["URI:" + URI_A, "DNS:localhost", "IP:127.0.0.1"])
            replace_file(a.cert.key, new_cert.key, mode=0o600)
            replace_file(a.cert.crt, new_cert.crt)
            self.wait_node_cert(a, der_of(new_cert.crt))
            time.sleep(1)
            # 3. drop the old CA: B follows.
            replace_file(self.a_bundle, new_ca.crt)
            self.wait_anchors(anchors_at_b, {der_of(new_ca.crt)})
            time.sleep(1.5)
        for name, t in (("B → A", b_to_a), ("A → B", a_to_b)):
            self.assertEqual(t.failures, [], "%s: %d failed of %d" % (name, len(t.failures), t.ok + len(t.failures)))
            self.assertGreater(t.ok, 50, name)

        # The old CA no longer speaks for A at B.
        stale = old_ca.issue(os.path.join(self.tmp, "alpha-files"), "stale", sans=["URI:" + URI_A])
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.load_cert_chain(stale.crt, stale.key)
        try:
            with Conn(tls_connect(b.ingress, ctx)) as c:
                r = c.request("GET", "/api/v1/tasks", [("Host", "127.0.0.1")])
                refused = r.status == 403
        except (ssl.SSLError, OSError):
            refused = True
        self.assertTrue(refused, "a certificate from A's old CA is still accepted at B")

        # A's peering listener serves joins with the new certificate too (no restart).
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with tls_connect(a.proxy.ports["peering"], ctx) as sock:
            self.assertEqual(hashlib.sha256(sock.getpeercert(binary_form=True)).hexdigest(), der_of(new_cert.crt))

        events = [r for r in read_audit(b.audit_path) if r.get("event") == "peer.bundle_updated"]
        self.assertEqual(len(events), 2, events)
        self.assertEqual(events[0]["after_sha256"], events[1]["before_sha256"])
        self.assertTrue(all(e["peer"] == ORG_A for e in events))


if __name__ == "__main__":
    main()

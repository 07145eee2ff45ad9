#!/usr/bin/env python3
"""Joining two organisations (SPEC §13) through the real binaries.

Two fedproxy processes on loopback, each with its own CA (A's node
certificate from CA-A, B's from CA-B; neither tls.ca_bundle holds the other's
CA), each with a recording app. A invites B (with a grant), B joins with the
CLI; then, with no file copied by hand, B's app calls A through B's egress and
A's app receives the request with X-Federation-Peer/Grant; A's /status shows
B `pending`, then `active` after a heartbeat. A replayed token → 410, an
expired one → 410, a wrong secret → 401 and, after a few, 429 with
Retry-After; a token whose CA pin is wrong is refused by the joiner before the
secret leaves it (A's audit log holds no attempt). Audit events on both sides.

Run: FEDPROXY_BIN=build/proxy/app/fedproxy python3 tests/integration/test_join.py
"""

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

from fedtest.case import main  # noqa: E402
from fedtest.federation import (ORG_A, ORG_B, TOKEN_RE, URI_A, URI_B, Side,  # noqa: E402
                                der_sha256)
from fedtest.policy import grant, read_audit, wait_audit  # noqa: E402
from fedtest.proxy import Conn, free_port, run_cli, tls_connect  # noqa: E402
from fedtest.reload import admin_request  # noqa: E402

def peering_post(port: int, body: dict):
    """POST /v1/join as a joiner would, without checking the server (the
    tests below that use it are about the inviter's answers)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with Conn(tls_connect(port, ctx, timeout=10)) as c:
        return c.request("POST", "/v1/join", [("Host", "127.0.0.1"), ("Content-Type", "application/json"),
                                              ("Connection", "close")], json.dumps(body).encode())


class JoinTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="fedtest-join-")
        cls.sides = []
        try:
            cls.a = Side(cls.tmp, ORG_A, URI_A)
            cls.sides.append(cls.a)
            cls.b = Side(cls.tmp, ORG_B, URI_B)
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

    def seen(self, path, pred):
        rec = wait_audit(path, pred, 10)
        self.assertIsNotNone(rec, "no such audit record in " + path)
        return rec

    def invite(self, org, *extra):
        r = run_cli(["peer", "invite", org, *extra, *self.a.admin_args()])
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(len(lines), 1, r.stdout)
        m = TOKEN_RE.match(lines[0])
        self.assertIsNotNone(m, lines[0])
        return lines[0], m.group(1), m.group(2), m.group(3)

    def join_url(self):
        return "https://127.0.0.1:%d" % self.a.proxy.ports["peering"]

    def test_1_join_end_to_end_then_replay(self):
        a, b = self.a, self.b
        gid = "join-" + uuid.uuid4().hex[:8]
        grant_file = os.path.join(self.tmp, "grant.json")
        g = grant(gid, ORG_B, ["tasks"])
        del g["peer"]
        with open(grant_file, "w") as f:
            json.dump(g, f)
        token, inv_id, secret, pin = self.invite(ORG_B, "--ttl", "15m", "--grant", grant_file)
        self.assertEqual(pin, der_sha256(a.ca.crt), "the token pins the CA that issued A's certificate")
        with open(a.state_path) as f:
            state_text = f.read()
        self.assertNotIn(secret, state_text, "the secret itself is never stored")
        invite = [i for i in json.loads(state_text)["invites"] if i["id"] == inv_id][0]
        self.assertEqual(invite["secret_sha256"], hashlib.sha256(secret.encode()).hexdigest())
        self.assertEqual(invite["org"], ORG_B)
        status, body = admin_request(a.proxy.admin_port, "GET", "/v1/invites", token=a.token)
        self.assertEqual(status, 200, body)
        shown = [i for i in json.loads(body)["invites"] if i["id"] == inv_id]
        self.assertEqual([(i["org"], i["state"]) for i in shown], [(ORG_B, "open")])
        self.assertNotIn("secret_sha256", shown[0])

        # Before the join B's app cannot reach A: B does not know A.
        r = run_cli(["peer", "join", self.join_url(), "--token", token, "--json", *b.admin_args()], timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr + r.stdout)
        joined = json.loads(r.stdout)["peer"]
        self.assertEqual((joined["org"], joined["entity_uri"]), (ORG_A, URI_A))
        # Both sides: the other's manifest and anchors (the CA file beside the state).
        with open(joined["ca_bundle"]) as f:
            self.assertEqual(der_sha256(joined["ca_bundle"]), der_sha256(a.ca.crt), f.read()[:80])
        with open(a.state_path) as f:
            a_state = json.load(f)
        b_peer = [p for p in a_state["peers"] if p["org"] == ORG_B][0]
        self.assertEqual(b_peer["entity_uri"], URI_B)
        self.assertEqual(b_peer["endpoints"], ["https://127.0.0.1:%d" % b.ingress])
        self.assertEqual(der_sha256(b_peer["ca_bundle"]), der_sha256(b.ca.crt))
        self.assertIn("used_at", [i for i in a_state["invites"] if i["id"] == inv_id][0])
        self.assertEqual([x["status"] for x in a_state["grants"] if x["id"] == gid], ["active"])

        # pending until the first successful heartbeat, then active (both sides).
        self.assertIn(a.peer_state(ORG_B), ("pending", "active"))
        self.assertIn(b.peer_state(ORG_A), ("pending", "active"))
        seen = {a.peer_state(ORG_B)}
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and a.peer_state(ORG_B) != "active":
            seen.add(a.peer_state(ORG_B))
            time.sleep(0.05)
        self.assertEqual(a.peer_state(ORG_B), "active", a.status()["peers"])
        self.assertIn("pending", seen, "A showed B pending before its first heartbeat")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and b.peer_state(ORG_A) != "active":
            time.sleep(0.05)
        self.assertEqual(b.peer_state(ORG_A), "active", b.status()["peers"])

        # B's app calls A through B's egress; A's app receives it as from B, with the grant.
        marker = uuid.uuid4().hex
        with Conn.open(b.proxy.ports["egress"], None, timeout=15) as c:
            resp = c.request("GET", "/api/v1/tasks?m=" + marker, [("Host", ORG_A), ("Connection", "close")])
        self.assertEqual(resp.status, 200, resp.body[:300])
        got = a.app.wait_for(lambda reqs: [q for q in reqs if marker in q.target], 5)
        self.assertTrue(got, "A's app did not receive B's request")
        req = [q for q in a.app.snapshot() if marker in q.target][0]
        self.assertEqual(req.header("X-Federation-Peer"), ORG_B)
        self.assertEqual(req.header("X-Federation-Grant"), gid)

        # Audit: A saw the invite and the successful attempt; B recorded its join.
        self.seen(a.audit_path, lambda r: r.get("event") == "peer.invited" and r.get("invite_id") == inv_id)
        self.seen(a.audit_path, lambda r: r.get("event") == "peer.join_attempt" and r.get("invite_id") == inv_id
                   and r.get("outcome") == "joined" and r.get("org") == ORG_B and r.get("source") == "127.0.0.1")
        self.seen(b.audit_path, lambda r: r.get("event") == "peer.join" and r.get("outcome") == "joined"
                   and r.get("org") == ORG_A)
        for path in (a.audit_path, b.audit_path):
            with open(path) as f:
                self.assertNotIn(secret, f.read(), "the secret is never audited")

        # The same token again: 410 gone, relayed by B's CLI; nothing changed.
        r = run_cli(["peer", "join", self.join_url(), "--token", token, *b.admin_args()], timeout=60)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("HTTP 410 gone", r.stderr)
        self.seen(a.audit_path, lambda r: r.get("event") == "peer.join_attempt" and r.get("invite_id") == inv_id
                   and r.get("outcome") == "used")

    def test_2_expired_token_410(self):
        token, inv_id, secret, _ = self.invite("gamma-org", "--ttl", "1s")
        time.sleep(2.2)
        resp = peering_post(self.a.proxy.ports["peering"], {
            "token_id": inv_id, "secret": secret, "ca_bundle": "x",
            "manifest": {"org": "gamma-org", "entity_uri": "spiffe://gamma.example/n", "endpoints": []}})
        self.assertEqual(resp.status, 410, resp.body)
        self.assertEqual(json.loads(resp.body)["error"], "gone")
        self.seen(self.a.audit_path, lambda r: r.get("event") == "peer.join_attempt"
                   and r.get("invite_id") == inv_id and r.get("outcome") == "expired")

    def test_2b_manifest_of_another_org_422(self):
        token, inv_id, secret, _ = self.invite("zeta-org")
        resp = peering_post(self.a.proxy.ports["peering"], {
            "token_id": inv_id, "secret": secret, "ca_bundle": "x",
            "manifest": {"org": "other-org", "entity_uri": "spiffe://other.example/n", "endpoints": []}})
        self.assertEqual(resp.status, 422, resp.body)
        self.assertEqual(json.loads(resp.body)["error"], "invalid")
        self.seen(self.a.audit_path, lambda r: r.get("event") == "peer.join_attempt"
                  and r.get("invite_id") == inv_id and r.get("outcome") == "org_mismatch")
        with open(self.a.state_path) as f:
            state = json.load(f)
        self.assertFalse(any(p["org"] in ("zeta-org", "other-org") for p in state["peers"]), state["peers"])
        self.assertNotIn("used_at", [i for i in state["invites"] if i["id"] == inv_id][0])

    def test_3_wrong_pin_refused_before_the_secret_is_sent(self):
        token, inv_id, secret, pin = self.invite("delta-org")
        forged = token[:-64] + der_sha256(self.b.ca.crt)  # another CA's hash
        r = run_cli(["peer", "join", self.join_url(), "--token", forged, *self.b.admin_args()], timeout=60)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("peer_identity_mismatch", r.stderr)
        self.seen(self.b.audit_path, lambda r: r.get("event") == "peer.join"
                   and r.get("outcome") == "peer_identity_mismatch")
        time.sleep(0.3)
        attempts = [x for x in read_audit(self.a.audit_path) if x.get("event") == "peer.join_attempt"
                    and x.get("invite_id") == inv_id]
        self.assertEqual(attempts, [], "the inviter received the secret")
        self.assertFalse(any("delta-org" == p["org"] for p in self.b.status()["peers"]))

    def test_3b_unreachable_inviter_502_and_malformed_token_422(self):
        token = "fpj1." + "1" * 16 + "." + "2" * 64 + "." + "3" * 64
        r = run_cli(["peer", "join", "https://127.0.0.1:%d" % free_port(), "--token", token, *self.b.admin_args()],
                    timeout=60)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("HTTP 502 peer_unavailable", r.stderr)
        r = run_cli(["peer", "join", self.join_url(), "--token", token[:-1], *self.b.admin_args()])
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("HTTP 422 invalid", r.stderr)

    def test_4_wrong_secret_401_then_429(self):
        token, inv_id, secret, _ = self.invite("epsilon-org")
        body = {"token_id": inv_id, "secret": "0" * 64, "ca_bundle": "x",
                "manifest": {"org": "epsilon-org", "entity_uri": "spiffe://eps.example/n", "endpoints": []}}
        statuses = []
        for _ in range(8):
            resp = peering_post(self.a.proxy.ports["peering"], body)
            statuses.append(resp.status)
            if resp.status == 429:
                self.assertGreater(int(resp.header("Retry-After")), 0)
                break
            self.assertEqual(json.loads(resp.body)["error"], "unauthorized")
        self.assertEqual(statuses, [401] * 5 + [429], statuses)
        # Rate-limited: even the right secret waits now.
        body["secret"] = secret
        self.assertEqual(peering_post(self.a.proxy.ports["peering"], body).status, 429)
        self.seen(self.a.audit_path, lambda r: r.get("event") == "peer.join_attempt"
                   and r.get("outcome") == "rate_limited")
        self.assertEqual(len([x for x in read_audit(self.a.audit_path) if x.get("event") == "peer.join_attempt"
                              and x.get("invite_id") == inv_id and x.get("outcome") == "unauthorized"]), 5)


if __name__ == "__main__":
    main()

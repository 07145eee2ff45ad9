#!/usr/bin/env python3
"""Peer identity, grants, routes, scopes and rate limits through the real
binary (SPEC §3 identity, §4 authorization, §5 what the app receives, §6
errors), with client certificates generated at test time (URI SANs, grant
OID 1.3.6.1.4.1.99999.1, pinned keys) and real clients (Python ssl, curl).

Every denial is checked for its exact status and JSON error code, and for
not having reached the app (a unique `probe` query parameter per request is
looked for in what the test backend received).

Run: FEDPROXY_BIN=build/proxy/app/fedproxy python3 tests/integration/test_policy.py
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fedtest import wire  # noqa: E402
from fedtest.backend import Backend  # noqa: E402
from fedtest.case import start_class_proxy, stop_class_proxy, main, shared_pki  # noqa: E402
from fedtest.policy import (bearer, grant, new_id, peer, policy_config, replace_config,  # noqa: E402
                            wait_audit, write_manifest)
from fedtest.policy_table import (A_FILTERS, A_MAX_ROWS, B_FILTERS, PEER_A, PEER_B,  # noqa: E402
                                  PEER_BLOCKED, PEER_PIN, RATE_BURST, RATE_CONC_BURST, TRAVERSALS,
                                  URI_A, URI_B, PolicyCase, PolicyTable, headers_of, probe, with_probe)
from fedtest.proxy import (Conn, Proxy, client_context,  # noqa: E402
                           free_port, run_cli, tls_connect, write_config)


class PolicyTest(PolicyCase):
    """One fedproxy with several peers and grants (audit log on, for shadow mode)."""

    @classmethod
    def setUpClass(cls):
        cls.pki = pki = shared_pki()
        cls.tmp = tempfile.mkdtemp(prefix="fedtest-policy-")
        cls.audit_path = os.path.join(cls.tmp, "audit.jsonl")
        # Ids, certificates and config are the shared policy table's
        # (test_explain.py explains the same requests): cls.g, cls.c_a_main, ...
        cls.table = PolicyTable(pki, cls.tmp)
        for name, value in vars(cls.table).items():
            setattr(cls, name, value)
        cls.backend = Backend().start()
        cls.proxy = Proxy(cls.table.config(cls.backend.address, audit={"path": cls.audit_path}))
        start_class_proxy(cls)

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        cls.backend.stop()
        if not os.environ.get("FEDTEST_KEEP"):
            shutil.rmtree(cls.tmp, ignore_errors=True)

    # -- the shared request table (also explained by test_explain.py) ----------
    def test_request_table(self):
        for row in self.table.rows():
            with self.subTest(row=row.name):
                resp = self.call(row.cert, row.method, row.target, row.headers())
                if row.status == 200:
                    self.assert_allowed(resp)
                else:
                    self.assert_denied(resp, row.status, row.code)

    # -- what the app receives (§5) ------------------------------------------
    def test_allowed_request_carries_identity_headers(self):
        rid = "fedtest-" + probe()
        echo = self.assert_allowed(self.call(self.c_a_main, "GET", "/api/v1/tasks/42",
                                             [("X-Request-Id", rid)]))
        hs = headers_of(echo)
        expect = {
            "X-Federation-Peer": PEER_A,
            "X-Federation-Entity": URI_A,
            "X-Federation-Grant": self.g["a_main"],
            "X-Federation-Resource": "tasks",
            "X-Federation-Max-Rows": str(A_MAX_ROWS),
            "X-Federation-Trust": "verified",
            "X-Request-Id": rid,
            "X-Forwarded-Client-Cert": "Hash=%s;URI=%s" % (self.c_a_main.der_sha256(), URI_A),
        }
        for name, value in expect.items():
            self.assertEqual(wire.header_all(hs, name), [value], "%s in %r" % (name, hs))
        scope = wire.header_all(hs, "X-Federation-Scope")
        self.assertEqual(len(scope), 1, hs)
        self.assertEqual(json.loads(scope[0]), A_FILTERS)
        self.assertNotRegex(scope[0], r'[:,]\s|\s[:,{}\[\]]|^\s|\s$', "not compact JSON")
        # allowed_regions / allowed_artifact_types are carried as headers (§3)
        values = " ".join(v for k, v in hs if k.lower().startswith("x-federation-"))
        self.assertIn("eu-west", values, "allowed_regions not passed to the app: %r" % hs)
        self.assertIn("dataset", values, "allowed_artifact_types not passed to the app: %r" % hs)

    def test_request_id_generated_when_absent_or_invalid(self):
        echo = self.assert_allowed(self.call(self.c_a_main, "GET", "/api/v1/tasks"))
        rid = wire.header_all(headers_of(echo), "X-Request-Id")
        self.assertEqual(len(rid), 1, echo["headers"])
        self.assertTrue(rid[0])
        bad = "bad id <with> spaces"
        echo = self.assert_allowed(self.call(self.c_a_main, "GET", "/api/v1/tasks",
                                             [("X-Request-Id", bad)]))
        rid = wire.header_all(headers_of(echo), "X-Request-Id")
        self.assertEqual(len(rid), 1, echo["headers"])
        self.assertNotEqual(rid[0], bad)
        self.assertTrue(rid[0])

    def test_denial_body_carries_the_request_id_sent(self):
        rid = "fedtest-" + probe()
        body = self.assert_denied(self.call(self.c_a_main, "GET", "/api/v1/reports",
                                            [("X-Request-Id", rid)]), 403, "resource_not_granted")
        self.assertEqual(body["request_id"], rid)

    def test_spoofed_identity_headers_never_reach_app(self):
        spoof = [
            ("X-Federation-Peer", "evil-corp"), ("x-federation-grant", self.g["b"]),
            ("X-FEDERATION-TRUST", "full"), ("X-Federation-Scope", '{"spoof":1}'),
            ("X-Federation-Max-Rows", "999999"), ("X-Federation-Resource", "credentials"),
            ("X-Federation-Entity", "spiffe://evil.example/x"),
            ("X-Federation-Dev-Peer", "evil-corp"), ("X-Federation-Spoofmarker", "spoof-1"),
            ("X-Forwarded-Client-Cert", "Hash=spoofhash;URI=spiffe://evil.example/x"),
            ("Client-Cert", ":c3Bvb2Y=:"), ("Client-Cert-Chain", ":c3Bvb2Y=:"),
        ]
        resp = self.call(self.c_a_main, "GET", "/api/v1/notes/1", spoof)
        hs = headers_of(self.assert_allowed(resp))
        self.assertEqual(wire.header_all(hs, "X-Federation-Peer"), [PEER_A])
        self.assertEqual(wire.header_all(hs, "X-Federation-Grant"), [self.g["a_main"]])
        self.assertEqual(wire.header_all(hs, "X-Federation-Trust"), ["verified"])
        self.assertEqual(wire.header_all(hs, "X-Federation-Resource"), ["notes"])
        self.assertEqual(wire.header_all(hs, "X-Federation-Max-Rows"), [str(A_MAX_ROWS)])
        self.assertEqual([json.loads(v) for v in wire.header_all(hs, "X-Federation-Scope")],
                         [A_FILTERS])
        self.assertEqual(wire.header_all(hs, "X-Forwarded-Client-Cert"),
                         ["Hash=%s;URI=%s" % (self.c_a_main.der_sha256(), URI_A)])
        self.assertEqual(wire.header_all(hs, "Client-Cert"), [])
        self.assertEqual(wire.header_all(hs, "Client-Cert-Chain"), [])
        self.assertEqual(wire.header_all(hs, "X-Federation-Dev-Peer"), [])
        self.assertEqual(wire.header_all(hs, "X-Federation-Spoofmarker"), [])
        raw = b"".join(r.raw_head for r in self.forwarded(resp.marker))
        for marker in (b"evil", b"spoof", b"999999", b"c3Bvb2Y"):
            self.assertNotIn(marker, raw.lower(), raw)

    def test_curl_client(self):
        """A real curl --cert: allowed, denied with JSON, Bearer header."""
        base = "https://127.0.0.1:%d" % self.proxy.ingress_port

        def curl(cert, path, *extra):
            p = subprocess.run(
                ["curl", "-sS", "--tlsv1.3", "--cacert", self.pki.ca.crt, "--cert", cert.crt,
                 "--key", cert.key, "-o", "-", "-w", "\n%{http_code}", *extra, base + path],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20, text=True)
            self.assertEqual(p.returncode, 0, p.stderr)
            body, _, code = p.stdout.rpartition("\n")
            return int(code), body

        code, body = curl(self.c_a_main, "/api/v1/tasks?limit=100000")
        self.assertEqual(code, 200, body)
        echo = json.loads(body)
        self.assertEqual(urllib.parse.parse_qs(echo["target"].split("?", 1)[1])["limit"],
                         [str(A_MAX_ROWS)])
        code, body = curl(self.c_a_main, "/api/v1/reports")
        self.assertEqual((code, json.loads(body)["error"]), (403, "resource_not_granted"), body)
        code, body = curl(self.c_a, "/api/v1/tasks", "-H",
                          "Authorization: Bearer fg-" + self.g["a_main"])
        self.assertEqual(code, 200, body)
        hs = headers_of(json.loads(body))
        self.assertEqual(wire.header_all(hs, "X-Federation-Grant"), [self.g["a_main"]])
        self.assertEqual(wire.header_all(hs, "Authorization"), [])
        code, body = curl(self.c_nobody, "/api/v1/tasks")
        self.assertEqual((code, json.loads(body)["error"]), (403, "san_mismatch"), body)

    # -- identity (§3) ---------------------------------------------------------
    def test_san_mismatch_403_then_connection_closed(self):
        for cert in (self.c_nobody, self.c_near, self.c_case, self.c_dns_only):
            with self.subTest(cert=cert.name):
                c = self.conn(cert)
                resp = self.call(cert, "GET", "/api/v1/tasks", conn=c)
                self.assert_denied(resp, 403, "san_mismatch")
                closed, extra = c.closed_within(3)
                self.assertTrue(closed, "connection still open after san_mismatch")
                self.assertEqual(extra, b"", "bytes after the san_mismatch response")

    def test_san_mismatch_pipelined_second_request_not_forwarded(self):
        c = self.conn(self.c_nobody)
        m1, m2 = probe(), probe()
        c.send(wire.build_request("GET", with_probe("/api/v1/tasks", m1))
               + wire.build_request("GET", with_probe("/api/v1/notes", m2)))
        resp = c.read_response()
        resp.marker = m1
        self.assert_denied(resp, 403, "san_mismatch")
        closed, extra = c.closed_within(3)
        self.assertTrue(closed)
        self.assertNotIn(b"HTTP/1.1 200", extra)
        self.assertEqual(self.forwarded(m2), [])

    def test_san_matched_among_several_uri_sans(self):
        echo = self.assert_allowed(self.call(self.c_a_multi, "GET", "/api/v1/tasks"))
        hs = headers_of(echo)
        self.assertEqual(wire.header_all(hs, "X-Federation-Peer"), [PEER_A])
        self.assertEqual(wire.header_all(hs, "X-Federation-Entity"), [URI_A])
        self.assertEqual(wire.header_all(hs, "X-Forwarded-Client-Cert"),
                         ["Hash=%s;URI=%s" % (self.c_a_multi.der_sha256(), URI_A)])

    def test_fingerprint_pin(self):
        echo = self.assert_allowed(self.call(self.c_pin, "GET", "/api/v1/tasks"))
        self.assertEqual(wire.header_all(headers_of(echo), "X-Federation-Peer"), [PEER_PIN])
        self.assertEqual(wire.header_all(headers_of(echo), "X-Federation-Grant"), [self.g["pin"]])
        self.assert_denied(self.call(self.c_pin_other_key, "GET", "/api/v1/tasks"),
                           403, "fingerprint_mismatch")

    def test_resumed_session_keeps_identity_and_grant(self):
        """A resumed TLS session (no certificate exchange) keeps the peer, the
        URI SAN, the certificate hash and the grant OID (SPEC §2, §4)."""
        ctx = client_context(self.pki, self.c_a_main)  # its own session cache
        with Conn.open(self.proxy.ingress_port, ctx) as c:
            self.assert_allowed(self.call(self.c_a_main, "GET", "/api/v1/tasks", conn=c))
            session = c.sock.session
        self.assertTrue(session is not None and session.has_ticket, "no session ticket")
        with Conn(tls_connect(self.proxy.ingress_port, ctx, session=session)) as c:
            echo = self.assert_allowed(self.call(self.c_a_main, "GET", "/api/v1/tasks", conn=c))
            self.assertTrue(c.sock.session_reused, "session was not resumed")
        hs = headers_of(echo)
        self.assertEqual(wire.header_all(hs, "X-Federation-Peer"), [PEER_A])
        self.assertEqual(wire.header_all(hs, "X-Federation-Grant"), [self.g["a_main"]])
        self.assertEqual(wire.header_all(hs, "X-Forwarded-Client-Cert"),
                         ["Hash=%s;URI=%s" % (self.c_a_main.der_sha256(), URI_A)])
        # and a resumed session of an unknown SAN is still refused
        ctx = client_context(self.pki, self.c_nobody)
        with Conn.open(self.proxy.ingress_port, ctx) as c:
            self.assert_denied(self.call(self.c_nobody, "GET", "/api/v1/tasks", conn=c), 403,
                               "san_mismatch")
            session = c.sock.session
        if session is not None and session.has_ticket:
            with Conn(tls_connect(self.proxy.ingress_port, ctx, session=session)) as c:
                self.assert_denied(self.call(self.c_nobody, "GET", "/api/v1/tasks", conn=c), 403,
                                   "san_mismatch")

    def test_peer_blocked(self):
        rid = "fedtest-" + probe()
        self.assert_denied(self.call(self.c_blocked, "GET", "/api/v1/tasks",
                                     [("X-Request-Id", rid)]), 403, "peer_blocked")
        rec = wait_audit(self.audit_path, lambda r: r.get("request_id") == rid)
        self.assertIsNotNone(rec, "peer_blocked request not in the audit log")
        self.assertEqual((rec.get("decision"), rec.get("reason"), rec.get("status"),
                          rec.get("peer")), ("deny", "peer_blocked", 403, PEER_BLOCKED), rec)

    def test_peer_expired(self):
        self.assert_denied(self.call(self.c_old, "GET", "/api/v1/tasks"), 403, "peer_expired")

    # -- grant selection (§4) ----------------------------------------------------
    def test_grant_oid_unknown(self):
        self.assert_denied(self.call(self.c_a_unknown, "GET", "/api/v1/tasks"), 403, "unknown_grant")

    def test_bearer_unknown_grant(self):
        self.assert_denied(self.call(self.c_a, "GET", "/api/v1/tasks", [bearer(new_id())]),
                           403, "unknown_grant")

    def test_grant_inactive(self):
        for cert in (self.c_a_pending, self.c_a_revoked):
            with self.subTest(oid=cert.name):
                self.assert_denied(self.call(cert, "GET", "/api/v1/tasks"), 403, "grant_inactive")
        for key in ("a_pending", "a_revoked"):
            with self.subTest(bearer=key):
                self.assert_denied(self.call(self.c_a, "GET", "/api/v1/tasks",
                                             [bearer(self.g[key])]), 403, "grant_inactive")

    def test_grant_expired(self):
        self.assert_denied(self.call(self.c_a_expired, "GET", "/api/v1/tasks"), 403, "grant_expired")
        self.assert_denied(self.call(self.c_a, "GET", "/api/v1/tasks", [bearer(self.g["a_expired"])]),
                           403, "grant_expired")

    def test_grant_peer_mismatch(self):
        self.assert_denied(self.call(self.c_a_oid_b, "GET", "/api/v1/tasks"), 403,
                           "grant_peer_mismatch")
        self.assert_denied(self.call(self.c_a, "GET", "/api/v1/tasks", [bearer(self.g["b"])]),
                           403, "grant_peer_mismatch")
        self.assert_denied(self.call(self.c_b, "GET", "/api/v1/tasks", [bearer(self.g["a_main"])]),
                           403, "grant_peer_mismatch")

    def test_bearer_selects_grant_and_is_not_forwarded(self):
        echo = self.assert_allowed(self.call(self.c_a, "GET", "/api/v1/tasks",
                                             [bearer(self.g["a_main"])]))
        hs = headers_of(echo)
        self.assertEqual(wire.header_all(hs, "X-Federation-Grant"), [self.g["a_main"]])
        self.assertEqual(wire.header_all(hs, "X-Federation-Max-Rows"), [str(A_MAX_ROWS)])
        self.assertEqual(wire.header_all(hs, "Authorization"), [])
        raw = b"".join(r.raw_head for r in self.forwarded(echo["target"].split("probe=")[1]))
        self.assertNotIn(b"fg-", raw)
        # the auth scheme is case-insensitive (RFC 9110 §11.1)
        echo = self.assert_allowed(self.call(self.c_a, "GET", "/api/v1/tasks",
                                             [("Authorization", "bearer fg-" + self.g["a_main"])]))
        self.assertEqual(wire.header_all(headers_of(echo), "X-Federation-Grant"), [self.g["a_main"]])
        self.assertEqual(wire.header_all(headers_of(echo), "Authorization"), [])

    def test_oid_takes_precedence_over_bearer(self):
        # OID names an active grant, Bearer a pending one: the OID's grant is used
        echo = self.assert_allowed(self.call(self.c_a_main, "GET", "/api/v1/tasks",
                                             [bearer(self.g["a_pending"])]))
        self.assertEqual(wire.header_all(headers_of(echo), "X-Federation-Grant"),
                         [self.g["a_main"]])
        # OID names a pending grant, Bearer an active one: still the OID's (denied)
        self.assert_denied(self.call(self.c_a_pending, "GET", "/api/v1/tasks",
                                     [bearer(self.g["a_main"])]), 403, "grant_inactive")

    def test_only_active_grant_used_without_oid_or_bearer(self):
        # peer B: one active grant, one pending; entity_uri from its manifest file
        echo = self.assert_allowed(self.call(self.c_b, "GET", "/api/v1/notes/1"))
        hs = headers_of(echo)
        self.assertEqual(wire.header_all(hs, "X-Federation-Peer"), [PEER_B])
        self.assertEqual(wire.header_all(hs, "X-Federation-Entity"), [URI_B])
        self.assertEqual(wire.header_all(hs, "X-Federation-Grant"), [self.g["b"]])
        self.assertEqual(wire.header_all(hs, "X-Federation-Trust"), ["full"])
        self.assertEqual(wire.header_all(hs, "X-Federation-Max-Rows"), ["250"])
        self.assertEqual([json.loads(v) for v in wire.header_all(hs, "X-Federation-Scope")],
                         [B_FILTERS])
        # the pending grant would allow reports; the active one does not
        self.assert_denied(self.call(self.c_b, "GET", "/api/v1/reports"), 403,
                           "resource_not_granted")

    def test_several_active_grants_and_no_selector_is_denied(self):
        # peer A has several active grants: none may be picked silently
        # (SPEC §4 names no code for this case: any 403 JSON error will do)
        resp = self.call(self.c_a, "GET", "/api/v1/tasks")
        self.assertEqual(resp.status, 403, resp)
        self.assertEqual(self.forwarded(resp.marker), [])
        self.assertIsInstance(resp.json().get("error"), str, resp.body)

    # -- decision steps (§4) ---------------------------------------------------
    def test_source_not_allowed(self):
        self.assert_denied(self.call(self.c_a_cidr, "GET", "/api/v1/tasks"), 403,
                           "source_not_allowed")
        self.assert_denied(self.call(self.c_a, "GET", "/api/v1/tasks", [bearer(self.g["a_cidr"])]),
                           403, "source_not_allowed")

    def test_source_cidr_matching_allows(self):
        # a_main has source_cidrs 127.0.0.0/8: the tests' own address
        self.assert_allowed(self.call(self.c_a_main, "GET", "/api/v1/tasks"))

    def test_method_not_allowed(self):
        for method in ("DELETE", "PUT"):
            with self.subTest(method=method):
                self.assert_denied(self.call(self.c_a_main, method, "/api/v1/tasks/1"), 403,
                                   "method_not_allowed")
        resp = self.call(self.c_a_main, "POST", "/api/v1/tasks", [("Content-Type", "text/plain")],
                         b"x" * 100)
        self.assert_denied(resp, 403, "method_not_allowed")
        self.assertEqual(self.call(self.c_a_main, "HEAD", "/api/v1/tasks").status, 200)

    def test_no_route(self):
        for path in ("/", "/nothing/here", "/api/v2/tasks", "/api/v1"):
            with self.subTest(path=path):
                self.assert_denied(self.call(self.c_a_main, "GET", path), 403, "no_route")

    def test_resource_not_granted(self):
        for path in ("/api/v1/reports", "/api/v1/credentials/1"):
            with self.subTest(path=path):
                self.assert_denied(self.call(self.c_a_main, "GET", path), 403,
                                   "resource_not_granted")

    def test_resource_excluded_longest_prefix(self):
        # /api/v1/tasks/archive is its own route (longest prefix wins), excluded
        body = self.assert_denied(self.call(self.c_a_main, "GET", "/api/v1/tasks/archive/2024"),
                                  403, "resource_excluded")
        self.assertTrue(body["message"])
        echo = self.assert_allowed(self.call(self.c_a_main, "GET", "/api/v1/tasks/archived"))
        self.assertEqual(wire.header_all(headers_of(echo), "X-Federation-Resource"), ["tasks"])

    def test_decision_order(self):
        # identity before grant, grant before source, source before method,
        # method before route/resource (SPEC §4 "Decision order")
        cases = [
            (self.c_blocked, "DELETE", "/nothing", [], "peer_blocked"),
            (self.c_old, "DELETE", "/nothing", [], "peer_expired"),
            (self.c_a_pending, "DELETE", "/nothing", [], "grant_inactive"),
            (self.c_a_expired, "DELETE", "/nothing", [], "grant_expired"),
            (self.c_a_oid_b, "DELETE", "/nothing", [], "grant_peer_mismatch"),
            (self.c_a_cidr, "DELETE", "/nothing", [], "source_not_allowed"),
            (self.c_a_main, "DELETE", "/nothing", [], "method_not_allowed"),
            (self.c_a_main, "DELETE", "/api/v1/tasks/archive/1", [], "method_not_allowed"),
        ]
        for cert, method, path, hs, code in cases:
            with self.subTest(cert=cert.name, code=code):
                self.assert_denied(self.call(cert, method, path, hs), 403, code)

    # -- request targets (§4); every class in detail: test_targets.py ------------
    def test_path_traversal_refused(self):
        # http.path_policy "reject" (the default): 400, never forwarded
        for path in TRAVERSALS:
            with self.subTest(path=path):
                self.assert_denied(self.call(self.c_a_main, "GET", path), 400, "ambiguous_path")

    def test_excluded_resource_through_escapes_and_case(self):
        for path in ("/api/v1/tasks/%61rchive/x", "/API/V1/TASKS/ARCHIVE/x", "/api/v1/Tasks/Archive"):
            with self.subTest(path=path):
                self.assert_denied(self.call(self.c_a_main, "GET", path), 403, "resource_excluded")

    # -- max_rows_per_query (§4) --------------------------------------------------
    def test_limit_above_max_rewritten(self):
        echo = self.assert_allowed(self.call(self.c_a_main, "GET",
                                             "/api/v1/tasks?team=t1&limit=100000&sort=asc"))
        target = echo["target"]
        self.assertEqual(target.split("?", 1)[0], "/api/v1/tasks")
        q = urllib.parse.parse_qs(target.split("?", 1)[1])
        self.assertEqual(q.get("limit"), [str(A_MAX_ROWS)], target)
        self.assertEqual(q.get("team"), ["t1"], target)
        self.assertEqual(q.get("sort"), ["asc"], target)
        self.assertEqual(wire.header_all(headers_of(echo), "X-Federation-Max-Rows"),
                         [str(A_MAX_ROWS)])
        rec = self.forwarded(echo["target"].split("probe=")[1])
        self.assertEqual(len(rec), 1)
        self.assertIn("limit=%d" % A_MAX_ROWS, rec[0].target)

    def test_limit_at_or_below_max_untouched(self):
        for n in (20, A_MAX_ROWS):
            with self.subTest(limit=n):
                resp = self.call(self.c_a_main, "GET", "/api/v1/tasks?limit=%d" % n)
                echo = self.assert_allowed(resp)
                self.assertEqual(echo["target"], "/api/v1/tasks?limit=%d&probe=%s" % (n, resp.marker))
                self.assertEqual(wire.header_all(headers_of(echo), "X-Federation-Max-Rows"),
                                 [str(A_MAX_ROWS)])

    def test_no_limit_value_above_max_reaches_app(self):
        echo = self.assert_allowed(self.call(self.c_a_main, "GET",
                                             "/api/v1/tasks?limit=5&limit=100000"))
        limits = urllib.parse.parse_qs(echo["target"].split("?", 1)[1]).get("limit", [])
        self.assertTrue(limits, echo["target"])
        for v in limits:
            self.assertLessEqual(int(v), A_MAX_ROWS, echo["target"])

    # -- rate limits (§4) -----------------------------------------------------
    def test_rate_limit_burst_then_429(self):
        c = self.conn(self.c_a)
        hs = [bearer(self.g["a_rate"])]
        # denials earlier in the decision order take no token
        for _ in range(3):
            self.assert_denied(self.call(self.c_a, "GET", "/api/v1/reports", hs, conn=c), 403,
                               "resource_not_granted")
        t0 = time.monotonic()
        statuses = []
        last = None
        for _ in range(RATE_BURST + 20):  # bounded; stops at the first 429
            last = self.call(self.c_a, "GET", "/api/v1/tasks", hs, conn=c)
            statuses.append(last.status)
            if last.status == 429:
                break
        elapsed = time.monotonic() - t0
        allowed = statuses.count(200)
        self.assertEqual(statuses[-1], 429, statuses)
        self.assertEqual(statuses, [200] * allowed + [429], statuses)
        # rps 1: a refill during the burst can add one per elapsed second
        self.assertGreaterEqual(allowed, RATE_BURST, statuses)
        self.assertLessEqual(allowed, RATE_BURST + int(elapsed), (statuses, elapsed))
        self.assert_denied(last, 429, "rate_limited")
        retry = last.header("retry-after")
        self.assertIsNotNone(retry, "429 without Retry-After: %r" % last.headers)
        self.assertRegex(retry, r"^\d+$")
        self.assertTrue(1 <= int(retry) <= 5, retry)
        # a request denied earlier in the order is still answered with its own code
        self.assert_denied(self.call(self.c_a, "GET", "/api/v1/reports", hs, conn=c), 403,
                           "resource_not_granted")
        time.sleep(int(retry) + 0.2)
        self.assert_allowed(self.call(self.c_a, "GET", "/api/v1/tasks", hs, conn=c))

    def test_rate_limit_exact_under_concurrency(self):
        hs = [bearer(self.g["a_rate_conc"])]
        results = []
        lock = threading.Lock()
        start = threading.Barrier(8, timeout=20)

        def worker():
            try:
                c = Conn.open(self.proxy.ingress_port, self.ctx(self.c_a), timeout=15)
            except OSError as e:
                with lock:
                    results.append(repr(e))
                return
            try:
                start.wait()
                for _ in range(5):
                    r = c.request("GET", "/api/v1/tasks/conc", hs)
                    with lock:
                        results.append(r.status)
            except Exception as e:  # noqa: BLE001
                with lock:
                    results.append(repr(e))
            finally:
                c.close()

        t0 = time.monotonic()
        threads = [threading.Thread(target=worker, daemon=True) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        elapsed = time.monotonic() - t0
        self.assertEqual(len(results), 40, results)
        self.assertEqual(set(results) - {200, 429}, set(), results)
        allowed = results.count(200)
        self.assertGreaterEqual(allowed, RATE_CONC_BURST - 1, results)
        self.assertLessEqual(allowed, RATE_CONC_BURST + 1 + int(elapsed), (allowed, elapsed))

    # -- shadow mode (§4) -------------------------------------------------------
    def test_shadow_grant_passes_and_audits_shadow_deny(self):
        hs = [bearer(self.g["a_shadow"])]
        for method, path, reason in (("DELETE", "/api/v1/tasks/1", "method_not_allowed"),
                                     ("GET", "/api/v1/reports", "resource_not_granted")):
            with self.subTest(reason=reason):
                rid = "fedtest-" + probe()
                echo = self.assert_allowed(self.call(self.c_a, method, path,
                                                     hs + [("X-Request-Id", rid)]))
                self.assertEqual(echo["method"], method)
                rec = wait_audit(self.audit_path, lambda r: r.get("request_id") == rid)
                self.assertIsNotNone(rec, "no audit record for the shadow request")
                self.assertEqual((rec.get("decision"), rec.get("reason"), rec.get("status"),
                                  rec.get("grant")),
                                 ("shadow_deny", reason, 200, self.g["a_shadow"]), rec)
        rid = "fedtest-" + probe()
        self.assert_allowed(self.call(self.c_a, "GET", "/api/v1/tasks", hs + [("X-Request-Id", rid)]))
        rec = wait_audit(self.audit_path, lambda r: r.get("request_id") == rid)
        self.assertIsNotNone(rec)
        self.assertEqual(rec.get("decision"), "allow", rec)

    def test_shadow_grant_does_not_bypass_identity(self):
        self.assert_denied(self.call(self.c_nobody, "GET", "/api/v1/tasks",
                                     [bearer(self.g["a_shadow"])]), 403, "san_mismatch")


class ManifestPinTest(PolicyCase):
    """A peer whose pin comes from its manifest's tls_cert_fingerprint (SPEC §3)."""

    @classmethod
    def setUpClass(cls):
        cls.pki = pki = shared_pki()
        cls.tmp = tempfile.mkdtemp(prefix="fedtest-mpin-")
        cls.gid = new_id()
        cls.good = pki.issue_client("mpin-good", URI_B)
        cls.other = pki.issue_client("mpin-other", URI_B)
        write_manifest(os.path.join(cls.tmp, "peers"), PEER_B, URI_B, cls.good.der_sha256())
        cls.backend = Backend().start()
        cls.proxy = Proxy(policy_config(pki, cls.backend.address, peers=[peer(PEER_B, None)],
                                        grants=[grant(cls.gid, PEER_B, ["tasks"])],
                                        manifests_dir=os.path.join(cls.tmp, "peers")))
        start_class_proxy(cls)

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        cls.backend.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_manifest_fingerprint_pins(self):
        self.assert_allowed(self.call(self.good, "GET", "/api/v1/tasks"))
        self.assert_denied(self.call(self.other, "GET", "/api/v1/tasks"), 403, "fingerprint_mismatch")


class LimitRejectTest(PolicyCase):
    """on_limit: reject with a configured limit_param name."""

    MAX = 50

    @classmethod
    def setUpClass(cls):
        cls.pki = pki = shared_pki()
        cls.gid = new_id()
        cls.cert = pki.issue_client("lim-a", URI_A, grant_id=cls.gid)
        cls.backend = Backend().start()
        cls.proxy = Proxy(policy_config(
            pki, cls.backend.address, peers=[peer(PEER_A, URI_A)],
            grants=[grant(cls.gid, PEER_A, ["tasks"], max_rows_per_query=cls.MAX)],
            on_limit="reject", limit_param="max"))
        start_class_proxy(cls)

    @classmethod
    def tearDownClass(cls):
        stop_class_proxy(cls)

    def test_limit_exceeded_rejected(self):
        for q in ("max=%d" % (self.MAX + 1), "max=100000", "a=1&max=999"):
            with self.subTest(q=q):
                self.assert_denied(self.call(self.cert, "GET", "/api/v1/tasks?" + q), 400,
                                   "limit_exceeded")

    def test_limit_within_max_passes_unchanged(self):
        resp = self.call(self.cert, "GET", "/api/v1/tasks?max=%d" % self.MAX)
        echo = self.assert_allowed(resp)
        self.assertEqual(echo["target"], "/api/v1/tasks?max=%d&probe=%s" % (self.MAX, resp.marker))
        self.assertEqual(wire.header_all(headers_of(echo), "X-Federation-Max-Rows"), [str(self.MAX)])

    def test_other_parameter_name_not_interpreted(self):
        resp = self.call(self.cert, "GET", "/api/v1/tasks?limit=100000")
        echo = self.assert_allowed(resp)
        self.assertEqual(echo["target"], "/api/v1/tasks?limit=100000&probe=%s" % resp.marker)


class GlobalShadowTest(PolicyCase):
    """Top-level "enforce": false: grant-level denials pass, audited as shadow_deny."""

    @classmethod
    def setUpClass(cls):
        cls.pki = pki = shared_pki()
        cls.tmp = tempfile.mkdtemp(prefix="fedtest-gshadow-")
        cls.audit_path = os.path.join(cls.tmp, "audit.jsonl")
        cls.gid = new_id()
        cls.cert = pki.issue_client("gshadow-a", URI_A, grant_id=cls.gid)
        cls.backend = Backend().start()
        cls.proxy = Proxy(policy_config(
            pki, cls.backend.address, peers=[peer(PEER_A, URI_A)],
            grants=[grant(cls.gid, PEER_A, ["tasks"], methods=["GET"])],
            enforce=False, audit={"path": cls.audit_path}))
        start_class_proxy(cls)

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        cls.backend.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_denied_request_passes_in_global_shadow_mode(self):
        rid = "fedtest-" + probe()
        self.assert_allowed(self.call(self.cert, "DELETE", "/api/v1/tasks/9", [("X-Request-Id", rid)]))
        rec = wait_audit(self.audit_path, lambda r: r.get("request_id") == rid)
        self.assertIsNotNone(rec, "no audit record")
        self.assertEqual((rec.get("decision"), rec.get("reason")),
                         ("shadow_deny", "method_not_allowed"), rec)


class PolicyReloadTest(PolicyCase):
    """A policy reload applies to a kept-alive connection at its next request (§4)."""

    @classmethod
    def setUpClass(cls):
        cls.pki = pki = shared_pki()
        cls.gid = new_id()
        cls.cert = pki.issue_client("reload-a", URI_A, grant_id=cls.gid)
        cls.backend = Backend().start()
        cls.cfg = policy_config(pki, cls.backend.address, peers=[peer(PEER_A, URI_A)],
                                grants=[grant(cls.gid, PEER_A, ["tasks"])])
        cls.proxy = Proxy(cls.cfg)
        start_class_proxy(cls)

    @classmethod
    def tearDownClass(cls):
        stop_class_proxy(cls)

    def reload(self, cfg):
        replace_config(cfg, self.proxy.dir)
        seen = len(self.proxy.find_logs(lambda r: r.get("msg") in ("reloaded", "reload failed")))
        self.proxy.signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            recs = self.proxy.find_logs(lambda r: r.get("msg") in ("reloaded", "reload failed"))
            if len(recs) > seen:
                self.assertEqual(recs[-1].get("msg"), "reloaded", recs[-1])
                return
            time.sleep(0.05)
        self.fail("no reload logged within 10 s; stderr:\n" + self.proxy.tail())

    def test_revoked_grant_and_blocked_peer_apply_to_kept_alive_connection(self):
        c = self.conn(self.cert)
        self.assert_allowed(self.call(self.cert, "GET", "/api/v1/tasks", conn=c))
        revoked = json.loads(json.dumps(self.cfg))
        revoked["grants"][0]["status"] = "revoked"
        self.reload(revoked)
        self.assert_denied(self.call(self.cert, "GET", "/api/v1/tasks", conn=c), 403,
                           "grant_inactive")
        blocked = json.loads(json.dumps(self.cfg))
        blocked["peers"][0]["trust_level"] = "none"
        self.reload(blocked)
        self.assert_denied(self.call(self.cert, "GET", "/api/v1/tasks", conn=c), 403,
                           "peer_blocked")
        self.reload(self.cfg)
        self.assert_allowed(self.call(self.cert, "GET", "/api/v1/tasks", conn=c))


class PolicyConfigCheckTest(unittest.TestCase):
    """Grant validation at load (§4): `check` lists every problem (exit 1) naming
    the grant/peer and the field; `run` refuses (exit 2)."""

    @classmethod
    def setUpClass(cls):
        cls.pki = shared_pki()
        cls.dir = tempfile.mkdtemp(prefix="fedtest-polcheck-")
        cls.upstream = "127.0.0.1:%d" % free_port()

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def write(self, name, peers, grants, **over) -> str:
        return write_config(policy_config(self.pki, self.upstream, peers=peers, grants=grants, **over),
                            self.dir, name + ".json")

    def check(self, path):
        p = run_cli(["check", "--config", path])
        return p.returncode, p.stdout + p.stderr

    def assert_named(self, out: str, ident: str, *fields: str):
        """Some line names ident and one of fields."""
        lines = [ln for ln in out.splitlines() if ident in ln]
        self.assertTrue(lines, "%s not named in:\n%s" % (ident, out))
        self.assertTrue(any(f in ln for ln in lines for f in fields),
                        "no line names %s together with %s:\n%s" % (ident, " or ".join(fields), out))

    def test_good_policy_checks_ok(self):
        gid = new_id()
        path = self.write("good", [peer(PEER_A, URI_A)],
                          [grant(gid, PEER_A, ["tasks", "credentials"], approved_sensitive=True,
                                 filters={"tasks": {"include_teams": ["t1"]}})])
        rc, out = self.check(path)
        self.assertEqual(rc, 0, out)

    def test_sensitive_resource_needs_approval(self):
        for res in ("credentials", "api_keys", "vault"):
            with self.subTest(resource=res):
                gid = new_id()
                path = self.write("sensitive-" + res, [peer(PEER_A, URI_A)],
                                  [grant(gid, PEER_A, ["tasks", res])])
                rc, out = self.check(path)
                self.assertEqual(rc, 1, out)
                self.assert_named(out, gid, "approved_sensitive", "resources")
                p = run_cli(["run", "--config", path], timeout=15)
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertIn(gid, p.stderr)
                self.assertNotRegex(p.stderr, r'"msg"\s*:\s*"listening"')

    def test_check_reports_every_grant_problem_at_once(self):
        ids = {k: "g-" + k + "-" + probe()[:8] for k in (
            "unknownres", "overlap", "filterkey", "sensitive", "nopeer", "rows0", "rows_big",
            "empty", "dupres", "badstatus", "typo")}
        grants = [
            grant(ids["unknownres"], PEER_A, ["tasks", "nonexistent"]),
            grant(ids["overlap"], PEER_A, ["tasks", "notes"], excluded_resources=["notes"]),
            grant(ids["filterkey"], PEER_A, ["tasks"], filters={"notes": {"include_teams": ["t1"]}}),
            grant(ids["sensitive"], PEER_A, ["credentials"]),
            grant(ids["nopeer"], "ghost-org", ["tasks"]),
            grant(ids["rows0"], PEER_A, ["tasks"], max_rows_per_query=0),
            grant(ids["rows_big"], PEER_A, ["tasks"], max_rows_per_query=10001),
            grant(ids["empty"], PEER_A, []),
            grant(ids["dupres"], PEER_A, ["tasks", "tasks"]),
            grant(ids["badstatus"], PEER_A, ["tasks"], status="paused"),
            grant(ids["typo"], PEER_A, ["tasks"], metods=["GET"]),
        ]
        rc, out = self.check(self.write("many-grant-problems", [peer(PEER_A, URI_A)], grants))
        self.assertEqual(rc, 1, out)
        self.assert_named(out, ids["unknownres"], "resources")
        self.assert_named(out, ids["overlap"], "excluded_resources", "resources")
        self.assert_named(out, ids["filterkey"], "filters")
        self.assert_named(out, ids["sensitive"], "approved_sensitive", "resources")
        self.assert_named(out, ids["nopeer"], "peer")
        self.assert_named(out, ids["rows0"], "max_rows_per_query")
        self.assert_named(out, ids["rows_big"], "max_rows_per_query")
        self.assert_named(out, ids["empty"], "resources")
        self.assert_named(out, ids["dupres"], "resources")
        self.assert_named(out, ids["badstatus"], "status")
        self.assert_named(out, ids["typo"], "metods")

    def test_check_reports_peer_and_grant_problems_together(self):
        g1, g2, g3 = ("g-unknownres-" + probe()[:8], "g-overlap-" + probe()[:8],
                      "g-sensitive-" + probe()[:8])
        peers = [peer(PEER_A, URI_A), peer(PEER_B, URI_B), peer(PEER_A, URI_A),
                 peer("admin", "spiffe://admin.example/x")]
        grants = [grant(g1, PEER_A, ["nonexistent"]),
                  grant(g2, PEER_B, ["tasks"], excluded_resources=["tasks"]),
                  grant(g3, "ghost-org", ["api_keys"])]
        rc, out = self.check(self.write("peer-and-grant-problems", peers, grants))
        self.assertEqual(rc, 1, out)
        self.assert_named(out, PEER_A, "duplicate", "org")
        self.assert_named(out, '"admin"', "reserved", "org")
        self.assert_named(out, g1, "resources")
        self.assert_named(out, g2, "excluded_resources", "resources")
        self.assert_named(out, g3, "peer")
        self.assert_named(out, g3, "approved_sensitive", "resources")


if __name__ == "__main__":
    main()

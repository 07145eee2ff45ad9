#!/usr/bin/env python3
"""The audit log (SPEC §10): one JSON line per federated request with the
documented fields and one per event (start, stop, reload, trust revoked),
each carrying `prev` = SHA-256 of the previous line; `fedproxy audit verify`
accepts the real file and names the line of an edited, shortened or
reordered copy; SIGUSR1 reopens the file for rotation; nothing is lost on
SIGTERM, not even requests in flight when it arrives.

Run: FEDPROXY_BIN=build/proxy/app/fedproxy python3 tests/integration/test_audit.py
"""

import hashlib
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fedtest.backend import Backend  # noqa: E402
from fedtest.case import main, shared_pki  # noqa: E402
from fedtest.pki import PARTNER_URI  # noqa: E402
from fedtest.policy import (GENESIS, chain_problems, grant, is_request, new_id, peer,  # noqa: E402
                            policy_config, read_audit, read_lines, replace_config)
from fedtest.proxy import Conn, Proxy, client_context, run_cli  # noqa: E402

PEER_A = "partner-labs"
URI_A = PARTNER_URI
PEER_B = "beta-org"
URI_B = "spiffe://beta.example/nodes/primary"
URI_NOBODY = "spiffe://stranger.example/nodes/audit"

FIELDS = ("ts", "request_id", "peer", "entity_uri", "grant", "method", "path", "resource",
          "decision", "reason", "outcome", "status", "bytes_in", "bytes_out", "duration_ms", "query_hash",
          "cert_fingerprint")
OUTCOMES = ("completed", "denied", "client_aborted", "client_timeout", "upstream_error", "upstream_timeout",
            "shutdown_cut")
TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
HEX64 = re.compile(r"^[0-9a-f]{64}$")
IN_FLIGHT = 4


def event_name(rec: dict) -> str:
    return str(rec.get("event") or rec.get("type") or "")


def verify(path: str):
    p = run_cli(["audit", "verify", path], timeout=20)
    return p.returncode, p.stdout + p.stderr


def write_lines(path: str, lines) -> str:
    with open(path, "wb") as f:
        f.write(b"".join(ln + b"\n" for ln in lines))
    return path


class AuditLogTest(unittest.TestCase):
    """A scripted run: allowed and denied requests, a reload that revokes a
    peer's trust, requests in flight at SIGTERM. The tests read the file."""

    @classmethod
    def setUpClass(cls):
        cls.pki = pki = shared_pki()
        cls.tmp = tempfile.mkdtemp(prefix="fedtest-audit-")
        cls.audit_path = os.path.join(cls.tmp, "audit.jsonl")
        cls.gid = new_id()
        cls.cert = pki.issue_client("audit-a", URI_A, grant_id=cls.gid)
        cls.nobody = pki.issue_client("audit-nobody", URI_NOBODY)
        cls.backend = Backend().start()
        cls.cfg = policy_config(
            pki, cls.backend.address,
            peers=[peer(PEER_A, URI_A), peer(PEER_B, URI_B)],
            grants=[grant(cls.gid, PEER_A, ["tasks", "notes", "files", "slow"],
                          methods=["GET", "HEAD", "POST"]),
                    grant(new_id(), PEER_B, ["tasks"])],
            audit={"path": cls.audit_path})
        cls.proxy = Proxy(cls.cfg)
        cls.sent = []          # (request_id, expectations) in order
        cls.responses = {}     # request_id -> status seen by the client
        cls.errors = []
        cls.exit_code = None
        try:
            cls.proxy.start()
            cls._script()
        finally:
            # _script sent the one SIGTERM; stop() only cleans up (or kills
            # the process if it did not exit within the bound)
            cls.proxy.stop(timeout=5)
            cls.backend.stop()
        cls.lines = read_lines(cls.audit_path) if os.path.exists(cls.audit_path) else []
        cls.records = [json.loads(ln) for ln in cls.lines]
        cls.requests = [r for r in cls.records if is_request(r)]
        cls.by_id = {}
        for r in cls.requests:
            cls.by_id.setdefault(r.get("request_id"), []).append(r)

    @classmethod
    def tearDownClass(cls):
        if not os.environ.get("FEDTEST_KEEP"):
            shutil.rmtree(cls.tmp, ignore_errors=True)

    # -- the scripted run ------------------------------------------------------
    @classmethod
    def _send(cls, conn, name, method, target, expect, headers=(), body=b""):
        rid = "aud-%s-%s" % (name, new_id()[:8])
        resp = conn.request(method, target, [("X-Request-Id", rid)] + list(headers), body)
        cls.responses[rid] = resp.status
        cls.sent.append((rid, dict(expect, name=name, method=method, target=target)))
        return resp

    @classmethod
    def _script(cls):
        ctx = client_context(cls.pki, cls.cert)
        port = cls.proxy.ingress_port
        with Conn.open(port, ctx) as c:
            cls._send(c, "allow1", "GET", "/api/v1/tasks?limit=10",
                      dict(decision="allow", status=200, resource="tasks", path="/api/v1/tasks"))
            cls._send(c, "allow1-escaped", "GET", "/api/v1/%74asks?limit=10",
                      dict(decision="allow", status=200, resource="tasks", path="/api/v1/tasks"))
            cls._send(c, "allow1-query", "GET", "/api/v1/tasks?limit=11",
                      dict(decision="allow", status=200, resource="tasks", path="/api/v1/tasks"))
            cls._send(c, "head", "HEAD", "/api/v1/notes",
                      dict(decision="allow", status=200, resource="notes", path="/api/v1/notes"))
            cls._send(c, "post", "POST", "/api/v1/notes/new", dict(
                decision="allow", status=200, resource="notes", path="/api/v1/notes/new",
                min_bytes_in=321), [("Content-Type", "text/plain")], b"n" * 321)
            cls._send(c, "download", "GET", "/bytes/1000", dict(
                decision="allow", status=200, resource="files", path="/bytes/1000",
                min_bytes_out=1000))
            cls._send(c, "slow", "GET", "/slow/300", dict(
                decision="allow", status=200, resource="slow", path="/slow/300", min_ms=250))
            cls._send(c, "method", "DELETE", "/api/v1/tasks/1", dict(
                decision="deny", status=403, reason="method_not_allowed", path="/api/v1/tasks/1"))
            cls._send(c, "noroute", "GET", "/nothing/here", dict(
                decision="deny", status=403, reason="no_route", path="/nothing/here"))
            cls._send(c, "notgranted", "GET", "/api/v1/reports", dict(
                decision="deny", status=403, reason="resource_not_granted",
                path="/api/v1/reports", resource="reports"))
            cls._send(c, "climb", "GET", "/../../etc/passwd", dict(
                decision="deny", status=400, reason="ambiguous_path", grant=False))
        with Conn.open(port, client_context(cls.pki, cls.nobody)) as c:
            cls._send(c, "nobody", "GET", "/api/v1/tasks", dict(
                decision="deny", status=403, reason="san_mismatch", path="/api/v1/tasks",
                fingerprint=cls.nobody.der_sha256(), peer=""))

        # a reload that revokes peer B's trust: reload + trust revoked events
        revoked = json.loads(json.dumps(cls.cfg))
        revoked["peers"][1]["trust_level"] = "none"
        replace_config(revoked, cls.proxy.dir)
        cls.proxy.signal(signal.SIGHUP)
        cls.reload_log = cls.proxy.wait_log(lambda r: r.get("msg") in ("reloaded", "reload failed"), 10)

        # requests in flight when SIGTERM arrives must still be answered and audited
        threads = []
        for i in range(IN_FLIGHT):
            conn = Conn.open(port, ctx, timeout=30)
            t = threading.Thread(target=cls._in_flight, args=(conn, i), daemon=True)
            threads.append(t)
            t.start()
        got = cls.backend.wait_for(lambda reqs: len([r for r in reqs if r.path == "/slow/1500"])
                                   >= IN_FLIGHT, timeout=10)
        if not got:
            cls.errors.append("in-flight requests did not reach the app")
        cls.proxy.signal(signal.SIGTERM)
        for t in threads:
            t.join(timeout=30)
        cls.exit_code = cls.proxy.wait_exit(30)

    @classmethod
    def _in_flight(cls, conn, i):
        try:
            cls._send(conn, "inflight%d" % i, "GET", "/slow/1500", dict(
                decision="allow", status=200, resource="slow", path="/slow/1500", min_ms=1400))
        except Exception as e:  # noqa: BLE001 - reported by a test
            cls.errors.append("in-flight request %d: %r" % (i, e))
        finally:
            conn.close()

    # -- the run itself --------------------------------------------------------
    def test_run_went_as_scripted(self):
        self.assertEqual(self.errors, [])
        self.assertEqual(self.exit_code, 0, "fedproxy did not exit 0 after SIGTERM")
        self.assertIsNotNone(self.reload_log, "no reload logged")
        self.assertEqual(self.reload_log.get("msg"), "reloaded", self.reload_log)
        for rid, exp in self.sent:
            self.assertEqual(self.responses.get(rid), exp["status"], exp["name"])

    # -- one line per request, nothing lost -------------------------------------
    def test_one_request_line_per_request(self):
        self.assertTrue(self.lines, "no audit file or it is empty: %s" % self.audit_path)
        self.assertEqual(len(self.requests), len(self.sent),
                         "request lines %d != requests answered %d"
                         % (len(self.requests), len(self.sent)))
        for rid, exp in self.sent:
            self.assertEqual(len(self.by_id.get(rid, [])), 1,
                             "%s (%s) has %d audit lines" % (exp["name"], rid,
                                                              len(self.by_id.get(rid, []))))

    def test_in_flight_requests_at_sigterm_answered_and_recorded(self):
        inflight = [(rid, exp) for rid, exp in self.sent if exp["name"].startswith("inflight")]
        self.assertEqual(len(inflight), IN_FLIGHT,
                         "requests in flight at SIGTERM were not answered: %s" % self.errors)
        for rid, exp in inflight:
            self.assertEqual(self.responses.get(rid), 200, exp["name"])
            self.assertIn(rid, self.by_id, "%s answered but not audited" % exp["name"])

    def test_request_line_fields(self):
        for rec in self.requests:
            missing = [f for f in FIELDS if f not in rec]
            self.assertEqual(missing, [], "missing %s in %r" % (missing, rec))
            self.assertRegex(rec["ts"], TS_RE)
            self.assertIn(rec["outcome"], OUTCOMES)
            self.assertRegex(rec["query_hash"], HEX64)
            self.assertRegex(rec["cert_fingerprint"], HEX64)
            self.assertRegex(rec.get("prev", ""), HEX64)
            for f in ("status", "bytes_in", "bytes_out"):
                self.assertIsInstance(rec[f], int, "%s in %r" % (f, rec))
                self.assertGreaterEqual(rec[f], 0)
            self.assertIsInstance(rec["duration_ms"], (int, float))
            self.assertGreaterEqual(rec["duration_ms"], 0)

    def test_request_line_values(self):
        fp = self.cert.der_sha256()
        for rid, exp in self.sent:
            recs = self.by_id.get(rid)
            if not recs:
                continue  # counted by test_one_request_line_per_request
            rec = recs[0]
            with self.subTest(request=exp["name"]):
                self.assertEqual(rec["method"], exp["method"])
                self.assertEqual(rec["decision"], exp["decision"])
                self.assertEqual(rec["status"], exp["status"])
                if exp["decision"] == "allow":
                    self.assertIn(rec["reason"], ("", None))
                else:
                    self.assertEqual(rec["reason"], exp["reason"])
                if "path" in exp:
                    paths = exp["path"] if isinstance(exp["path"], tuple) else (exp["path"],)
                    self.assertIn(rec["path"], paths, "path (without the query)")
                if "resource" in exp:
                    self.assertEqual(rec["resource"], exp["resource"])
                self.assertEqual(rec["cert_fingerprint"], exp.get("fingerprint", fp))
                if exp.get("peer", PEER_A):
                    self.assertEqual(rec["peer"], PEER_A)
                    self.assertEqual(rec["entity_uri"], URI_A)
                    if exp.get("grant", True):
                        self.assertEqual(rec["grant"], self.gid)
                else:
                    self.assertIn(rec["peer"], ("", None))
                self.assertGreaterEqual(rec["bytes_in"], exp.get("min_bytes_in", 0))
                self.assertGreaterEqual(rec["bytes_out"], exp.get("min_bytes_out", 0))
                self.assertGreaterEqual(rec["duration_ms"], exp.get("min_ms", 0))

    def test_query_hash_covers_normalised_path_and_query(self):
        def qh(name):
            for rid, exp in self.sent:
                if exp["name"] == name and rid in self.by_id:
                    return self.by_id[rid][0]["query_hash"]
            self.skipTest("no audit line for %s" % name)
        self.assertEqual(qh("allow1"), qh("allow1-escaped"),
                         "same method, canonical path and query: same hash")
        self.assertNotEqual(qh("allow1"), qh("allow1-query"), "the query is hashed")
        self.assertNotEqual(qh("allow1"), qh("nobody"), "the path is hashed")

    def test_query_string_not_logged_in_clear(self):
        raw = b"\n".join(self.lines)
        self.assertNotIn(b"limit=10", raw)

    # -- events -----------------------------------------------------------------
    def test_start_and_stop_events(self):
        self.assertTrue(self.records)
        self.assertFalse(is_request(self.records[0]))
        self.assertIn("start", event_name(self.records[0]), self.records[0])
        self.assertFalse(is_request(self.records[-1]))
        self.assertIn("stop", event_name(self.records[-1]), self.records[-1])
        for rec in (self.records[0], self.records[-1]):
            self.assertRegex(str(rec.get("ts", "")), TS_RE)
        # the run had a reload in between: the stop event still describes the
        # same node as the start event
        for key in ("node",):
            if key in self.records[0]:
                self.assertEqual(self.records[-1].get(key), self.records[0][key],
                                 "stop event %s differs from the start event's" % key)

    def test_reload_and_trust_revoked_events(self):
        events = [r for r in self.records if not is_request(r)]
        self.assertTrue([e for e in events if "reload" in event_name(e)],
                        "no reload event: %r" % events)
        revoked = [e for e in events if re.search("revok|trust", event_name(e))
                   and PEER_B in json.dumps(e)]
        self.assertTrue(revoked, "no trust-revoked event naming %s: %r" % (PEER_B, events))

    # -- the hash chain --------------------------------------------------------
    def test_prev_chain(self):
        self.assertTrue(self.lines)
        self.assertEqual(self.records[0].get("prev"), GENESIS)
        self.assertEqual(chain_problems(self.lines), [])

    def test_audit_verify_accepts_the_real_file(self):
        rc, out = verify(self.audit_path)
        self.assertEqual(rc, 0, out)

    def _middle(self) -> int:
        """A 1-based line number of a request line well inside the file."""
        n = len(self.lines)
        if n < 6:
            self.skipTest("audit file too short (%d lines)" % n)
        for k in range(n // 2, n - 1):
            if is_request(self.records[k - 1]):
                return k
        return n // 2

    def assert_verify_fails_at(self, path, *line_numbers):
        rc, out = verify(path)
        self.assertEqual(rc, 1, out)
        named = [int(m) for m in re.findall(r"\bline\s+(\d+)", out)]
        self.assertTrue(set(named) & set(line_numbers),
                        "want line %s named, got: %s" % (" or ".join(map(str, line_numbers)), out))

    def test_verify_detects_edited_byte(self):
        k = self._middle()
        lines = list(self.lines)
        line = lines[k - 1]
        i = line.index(b'"status":') + len(b'"status":')
        lines[k - 1] = line[:i] + (b"5" if line[i:i + 1] != b"5" else b"4") + line[i + 1:]
        self.assert_verify_fails_at(write_lines(os.path.join(self.tmp, "edited.jsonl"), lines),
                                    k, k + 1)

    def test_verify_detects_edited_prev(self):
        k = self._middle()
        lines = list(self.lines)
        line = lines[k - 1]
        i = line.index(b'"prev":"') + len(b'"prev":"')
        lines[k - 1] = line[:i] + (b"f" if line[i:i + 1] != b"f" else b"e") + line[i + 1:]
        self.assert_verify_fails_at(write_lines(os.path.join(self.tmp, "edited-prev.jsonl"), lines),
                                    k)

    def test_verify_detects_dropped_line(self):
        k = self._middle()
        lines = list(self.lines)
        del lines[k - 1]
        self.assert_verify_fails_at(write_lines(os.path.join(self.tmp, "dropped.jsonl"), lines),
                                    k - 1, k)

    def test_verify_detects_swapped_lines(self):
        k = self._middle()
        lines = list(self.lines)
        lines[k - 1], lines[k] = lines[k], lines[k - 1]
        self.assert_verify_fails_at(write_lines(os.path.join(self.tmp, "swapped.jsonl"), lines),
                                    k, k + 1)

    def test_verify_detects_dropped_first_line(self):
        self.assertTrue(self.lines)
        self.assert_verify_fails_at(write_lines(os.path.join(self.tmp, "nofirst.jsonl"),
                                                self.lines[1:]), 1)

    def test_verify_copy_of_real_file_passes(self):
        rc, out = verify(write_lines(os.path.join(self.tmp, "copy.jsonl"), self.lines))
        self.assertEqual(rc, 0, out)


class AuditReopenTest(unittest.TestCase):
    """SIGUSR1 reopens the audit file (log rotation)."""

    def setUp(self):
        self.pki = shared_pki()
        self.tmp = tempfile.mkdtemp(prefix="fedtest-audit-reopen-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.path = os.path.join(self.tmp, "audit.jsonl")
        self.gid = new_id()
        self.cert = self.pki.issue_client("audit-reopen-%s" % new_id()[:8], URI_A,
                                          grant_id=self.gid)
        self.backend = Backend().start()
        self.addCleanup(self.backend.stop)
        self.proxy = Proxy(policy_config(self.pki, self.backend.address,
                                         peers=[peer(PEER_A, URI_A)],
                                         grants=[grant(self.gid, PEER_A, ["tasks"])],
                                         audit={"path": self.path}))
        self.proxy.start()
        self.addCleanup(self.proxy.stop)
        self.ctx = client_context(self.pki, self.cert)

    def request(self, name) -> str:
        rid = "reopen-%s-%s" % (name, new_id()[:8])
        with Conn.open(self.proxy.ingress_port, self.ctx) as c:
            self.assertEqual(c.request("GET", "/api/v1/tasks", [("X-Request-Id", rid)]).status, 200)
        return rid

    def wait_request_line(self, path, rid):
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if any(r.get("request_id") == rid for r in read_audit(path)):
                return True
            time.sleep(0.05)
        return False

    def test_rename_then_sigusr1_starts_a_new_file(self):
        r1, r2 = self.request("one"), self.request("two")
        self.assertTrue(self.wait_request_line(self.path, r2), "request not audited")
        rotated = self.path + ".1"
        os.rename(self.path, rotated)
        self.proxy.signal(signal.SIGUSR1)
        deadline = time.monotonic() + 5
        while not os.path.exists(self.path) and time.monotonic() < deadline:
            time.sleep(0.05)
        r3 = self.request("three")
        self.assertTrue(self.wait_request_line(self.path, r3),
                        "request after SIGUSR1 not in a new %s" % self.path)
        self.assertEqual(self.proxy.stop(), 0)

        old, new = read_lines(rotated), read_lines(self.path)
        old_ids = [json.loads(ln).get("request_id") for ln in old]
        new_ids = [json.loads(ln).get("request_id") for ln in new]
        self.assertIn(r1, old_ids)
        self.assertIn(r2, old_ids)
        self.assertNotIn(r3, old_ids)
        self.assertIn(r3, new_ids)
        self.assertEqual(new_ids.count(r3), 1)
        for p in (rotated, self.path):
            rc, out = verify(p)
            self.assertEqual(rc, 0, "%s: %s" % (p, out))
        first_prev = json.loads(new[0]).get("prev")
        self.assertIn(first_prev, (GENESIS, hashlib.sha256(old[-1]).hexdigest(),
                                   hashlib.sha256(old[-1] + b"\n").hexdigest()),
                      "the new file neither starts a chain nor continues the old one")
        self.assertEqual(chain_problems(new, first_prev=None), [])
        self.assertIn("stop", event_name(json.loads(new[-1])))

    def test_sigusr1_without_rename_keeps_one_chain(self):
        r1 = self.request("before")
        self.assertTrue(self.wait_request_line(self.path, r1))
        self.proxy.signal(signal.SIGUSR1)
        time.sleep(0.3)
        self.proxy.signal(signal.SIGUSR1)
        r2 = self.request("after")
        self.assertTrue(self.wait_request_line(self.path, r2))
        self.assertEqual(self.proxy.stop(), 0)
        lines = read_lines(self.path)
        ids = [json.loads(ln).get("request_id") for ln in lines]
        self.assertEqual((ids.count(r1), ids.count(r2)), (1, 1))
        self.assertEqual(chain_problems(lines), [])
        rc, out = verify(self.path)
        self.assertEqual(rc, 0, out)

    def test_restart_appends_to_existing_file(self):
        r1 = self.request("first-run")
        self.assertTrue(self.wait_request_line(self.path, r1))
        self.assertEqual(self.proxy.stop(), 0)
        second = Proxy(self.proxy.config)
        second.start()
        self.addCleanup(second.stop)
        rid = "reopen-second-run-%s" % new_id()[:8]
        with Conn.open(second.ingress_port, self.ctx) as c:
            self.assertEqual(c.request("GET", "/api/v1/tasks", [("X-Request-Id", rid)]).status, 200)
        self.assertEqual(second.stop(), 0)
        ids = [r.get("request_id") for r in read_audit(self.path)]
        self.assertIn(r1, ids)
        self.assertIn(rid, ids)
        rc, out = verify(self.path)
        self.assertEqual(rc, 0, out)


if __name__ == "__main__":
    main()

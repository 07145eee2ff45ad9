#!/usr/bin/env python3
"""Audit write failure (SPEC §10, audit.on_failure) on a real full disk: the
audit log lives on a 64 KiB tmpfs that the test fills and frees.

  * "reject" (the default, with 2 workers): while no audit line can be
    written every request gets `503 audit_unavailable` (SPEC §6 body) and
    the app receives none of them; /readyz is 503; /status shows the audit
    state "failing"; fedproxy_audit_write_failures_total > 0 and
    fedproxy_audit_healthy 0. Once space is back, /readyz turns 200 without
    any traffic and requests are forwarded again.
  * "continue": requests are served (the app receives them) while their
    records are lost; /readyz stays 200; once space is back the first line
    written is a `gap` event with the number of records lost.
  * Both: the disk is filled again while the audit file's last page still
    has room, so lines are cut short by the kernel (short writes) and must
    be cut back; afterwards the file ends with a newline, every line is a
    JSON object, `fedproxy audit verify` exits 0 and the gap events count
    every lost record.

The full phase is made deterministic: before fedproxy starts, the audit file
is seeded with one valid chain line of exactly one tmpfs page and the rest
of the tmpfs is filled, so no audit line fits at all (ENOSPC, nothing
written) and fedproxy's own "start" event is the first record lost.

Needs root (mount); skips with a SKIP message otherwise.

    FEDPROXY_BIN=build/proxy/app/fedproxy python3 tests/integration/test_audit_failure.py
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fedtest.backend import Backend  # noqa: E402
from fedtest.case import main, shared_pki  # noqa: E402
from fedtest.pki import PARTNER_URI  # noqa: E402
from fedtest.policy import GENESIS, grant, is_request, peer, policy_config, read_lines  # noqa: E402
from fedtest.proxy import (Conn, Proxy, assert_json_error, base_config, client_context,  # noqa: E402
                           free_port, run_cli, write_config)
from fedtest.reload import admin_request, admin_status, metric_value, wait_until  # noqa: E402

PEER = "partner-labs"
OUTCOMES = {"completed", "denied", "client_aborted", "client_timeout", "upstream_error",
            "upstream_timeout", "shutdown_cut"}
RECOVER_WITHIN_S = 5  # fedproxy retries every second


def seed_one_page(path: str, page: int) -> None:
    """A valid one-line audit log of exactly `page` bytes (newline included)."""
    def line(pad: str) -> bytes:
        rec = {"ts": "2026-01-01T00:00:00.000Z", "type": "event", "event": "test.seed",
               "pad": pad, "prev": GENESIS}
        return json.dumps(rec, separators=(",", ":")).encode() + b"\n"
    base = len(line(""))
    data = line("x" * (page - base))
    assert len(data) == page
    with open(path, "wb") as f:
        f.write(data)


def fill_up(path: str) -> None:
    """Write to `path` until the file system is full (the last page too)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (4096, 1):
            while True:
                try:
                    if os.write(fd, b"\0" * size) < size:
                        break
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)


class _AuditFailureScenario(unittest.TestCase):
    ON_FAILURE = "reject"
    WORKERS = 1

    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise unittest.SkipTest("SKIP: mounting a small tmpfs needs root")
        cls.tmp = tempfile.mkdtemp(prefix="fedtest-auditfail-")
        cls.mnt = os.path.join(cls.tmp, "mnt")
        os.mkdir(cls.mnt)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", cls.mnt],
                           capture_output=True, text=True)
        if r.returncode != 0:
            shutil.rmtree(cls.tmp, ignore_errors=True)
            raise unittest.SkipTest("SKIP: cannot mount a tmpfs: %s" % (r.stderr.strip() or r.returncode))
        cls.audit = os.path.join(cls.mnt, "audit.jsonl")
        cls.filler = os.path.join(cls.mnt, "filler")
        seed_one_page(cls.audit, os.statvfs(cls.mnt).f_bsize)
        fill_up(cls.filler)
        pki = shared_pki()
        cls.ctx = client_context(pki, pki.client_grant)
        cls.backend = Backend().start()
        cls.proxy = Proxy(policy_config(pki, cls.backend.address, peers=[peer(PEER, PARTNER_URI)],
                                        grants=[grant(pki.grant_id, PEER, ["tasks"])],
                                        audit={"path": cls.audit, "on_failure": cls.ON_FAILURE},
                                        workers=cls.WORKERS))
        try:
            cls.proxy.start()
        except BaseException:
            cls._cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        cls._cleanup()

    @classmethod
    def _cleanup(cls):
        cls.proxy.stop() if getattr(cls, "proxy", None) else None
        if getattr(cls, "backend", None):
            cls.backend.stop()
        if os.environ.get("FEDTEST_KEEP") and os.path.exists(cls.audit):
            shutil.copy(cls.audit, os.path.join(cls.tmp, "audit.jsonl"))  # the tmpfs goes away
            print("fedtest: audit log kept in", cls.tmp, file=sys.stderr)
        if subprocess.run(["umount", cls.mnt], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", cls.mnt], capture_output=True)
        if not os.environ.get("FEDTEST_KEEP"):
            shutil.rmtree(cls.tmp, ignore_errors=True)

    # -- helpers ---------------------------------------------------------------
    def get(self, name: str):
        """One request on its own connection (so both workers take some)."""
        path = "/api/v1/tasks/%s-%s" % (name, uuid.uuid4().hex[:8])
        with Conn.open(self.proxy.ingress_port, self.ctx) as c:
            return path, c.request("GET", path, [("Connection", "close")])

    def received(self, path: str) -> bool:
        return any(r.path == path for r in self.backend.snapshot())

    def audit_status(self) -> dict:
        return admin_status(self.proxy.admin_port)["audit"]

    def readyz(self) -> int:
        return admin_request(self.proxy.admin_port, "GET", "/readyz")[0]

    def metric(self, name: str) -> float | None:
        status, body = admin_request(self.proxy.admin_port, "GET", "/metrics")
        self.assertEqual(status, 200)
        return metric_value(body.decode(), name)

    def wait_ok(self) -> dict:
        st = wait_until(lambda: (lambda s: s if s["state"] == "ok" else None)(self.audit_status()),
                        RECOVER_WITHIN_S)
        self.assertTrue(st, "audit state did not return to ok: %r" % self.audit_status())
        return st

    def refill_until_failing(self) -> None:
        """Fill the disk again while the audit file's last page has room:
        lines now fail part-way (short writes) and are cut back."""
        fill_up(self.filler)
        for i in range(200):
            if self.audit_status()["state"] == "failing":
                return
            self.get("refill%d" % i)
        self.fail("the audit log never failed on a full disk: %r" % self.audit_status())

    def check_file(self, lost_total: int) -> list[dict]:
        with open(self.audit, "rb") as f:
            data = f.read()
        self.assertTrue(data.endswith(b"\n"), "the audit file ends with a partial line: %r" % data[-200:])
        records = []
        for n, line in enumerate(read_lines(self.audit), 1):
            try:
                records.append(json.loads(line))
            except ValueError:
                self.fail("audit line %d is not JSON: %r" % (n, line[:200]))
        p = run_cli(["audit", "verify", self.audit])
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        gaps = [r for r in records if r.get("event") == "gap"]
        self.assertTrue(gaps, "no gap event")
        for g in gaps:
            self.assertIsInstance(g.get("lost"), int)
            self.assertTrue(g.get("since"), g)
        self.assertEqual(sum(g["lost"] for g in gaps), lost_total, gaps)
        for r in records:
            if is_request(r):
                self.assertIn(r.get("outcome"), OUTCOMES, r)
        return records

    def stop_proxy(self) -> None:
        self.assertEqual(self.proxy.stop(), 0, self.proxy.tail())

    def failing_at_start(self) -> dict:
        st = self.audit_status()
        self.assertEqual(st["state"], "failing", st)
        self.assertEqual(st["on_failure"], self.ON_FAILURE)
        self.assertEqual(st["lost_records"], 1, st)  # fedproxy's own "start" event
        self.assertIn("No space", st["last_error"] or "", st)
        self.assertTrue(st["failing_since"], st)
        return st


class RejectModeTest(_AuditFailureScenario):
    ON_FAILURE = "reject"
    WORKERS = 2

    def test_fail_closed_then_recover(self):
        self.failing_at_start()
        status, body = admin_request(self.proxy.admin_port, "GET", "/readyz")
        self.assertEqual(status, 503, body)
        self.assertFalse(json.loads(body)["audit"])

        refused = []
        for i in range(3):
            path, resp = self.get("full%d" % i)
            assert_json_error(self, resp, 503, "audit_unavailable")
            refused.append(path)
        for path in refused:
            self.assertFalse(self.received(path), "the app received a refused request: " + path)
        st = self.audit_status()
        self.assertEqual(st["state"], "failing")
        self.assertEqual(st["lost_records"], 4, st)  # start + the 3 refused requests' records
        self.assertGreaterEqual(st["write_failures"], 4, st)
        self.assertGreater(self.metric("fedproxy_audit_write_failures_total"), 0)
        self.assertEqual(self.metric("fedproxy_audit_records_lost_total"), 4)
        self.assertEqual(self.metric("fedproxy_audit_healthy"), 0)
        self.assertEqual(self.readyz(), 503)

        os.remove(self.filler)  # space is back: ready again without any request
        self.assertTrue(wait_until(lambda: self.readyz() == 200, RECOVER_WITHIN_S), self.audit_status())
        self.wait_ok()
        self.assertEqual(self.metric("fedproxy_audit_healthy"), 1)
        served = []
        for i in range(2):
            path, resp = self.get("after%d" % i)
            self.assertEqual(resp.status, 200, resp.body[:300])
            self.assertTrue(self.backend.wait_path(path), path)
            served.append(path)

        self.refill_until_failing()  # short writes this time
        os.remove(self.filler)
        self.assertTrue(wait_until(lambda: self.readyz() == 200, RECOVER_WITHIN_S), self.audit_status())
        path, resp = self.get("last")
        self.assertEqual(resp.status, 200)
        lost = self.wait_ok()["lost_records"]
        self.stop_proxy()

        records = self.check_file(lost)
        gaps = [r for r in records if r.get("event") == "gap"]
        self.assertEqual(gaps[0]["lost"], 4, gaps[0])
        paths = [r.get("path") for r in records if is_request(r)]
        for p in refused:
            self.assertNotIn(p, paths)  # lost, and counted by the gap
        for p in served + [path]:
            self.assertIn(p, paths)
        self.assertEqual(records[-1].get("event"), "stop")


class ContinueModeTest(_AuditFailureScenario):
    ON_FAILURE = "continue"

    def test_serve_then_gap(self):
        self.failing_at_start()
        self.assertEqual(self.readyz(), 200)

        served_blind = []
        for i in range(3):
            path, resp = self.get("full%d" % i)
            self.assertEqual(resp.status, 200, resp.body[:300])
            self.assertTrue(self.backend.wait_path(path), path)
            served_blind.append(path)
        st = self.audit_status()
        self.assertEqual(st["state"], "failing")
        self.assertEqual(st["lost_records"], 4, st)
        self.assertGreater(self.metric("fedproxy_audit_write_failures_total"), 0)
        self.assertEqual(self.metric("fedproxy_audit_records_lost_total"), 4)
        self.assertEqual(self.metric("fedproxy_audit_healthy"), 0)

        os.remove(self.filler)
        path, resp = self.get("after")
        self.assertEqual(resp.status, 200)
        self.wait_ok()

        self.refill_until_failing()
        os.remove(self.filler)
        lost = self.wait_ok()["lost_records"]
        self.stop_proxy()

        records = self.check_file(lost)
        first_gap = next(i for i, r in enumerate(records) if r.get("event") == "gap")
        self.assertEqual(records[first_gap]["lost"], 4, records[first_gap])
        paths = [r.get("path") for r in records if is_request(r)]
        for p in served_blind:
            self.assertNotIn(p, paths)
        after = next(i for i, r in enumerate(records) if r.get("path") == path)
        self.assertGreater(after, first_gap, "the gap event comes before the next record")
        self.assertEqual(records[after].get("outcome"), "completed")


class CheckTest(unittest.TestCase):
    """`fedproxy check` accepts "reject" and "continue" and names any other value."""

    def test_check_audit_on_failure(self):
        pki = shared_pki()
        d = tempfile.mkdtemp(prefix="fedtest-auditcheck-")
        self.addCleanup(shutil.rmtree, d, True)
        upstream = "127.0.0.1:%d" % free_port()
        for value in ("reject", "continue"):
            cfg = write_config(base_config(pki, upstream, audit={"path": os.path.join(d, "a.jsonl"),
                                                                 "on_failure": value}), d, value + ".json")
            p = run_cli(["check", "--config", cfg])
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        cfg = write_config(base_config(pki, upstream, audit={"path": os.path.join(d, "a.jsonl"),
                                                             "on_failure": "ignore"}), d, "bad.json")
        p = run_cli(["check", "--config", cfg])
        out = p.stdout + p.stderr
        self.assertEqual(p.returncode, 1, out)
        self.assertIn("audit.on_failure", out)
        self.assertIn("reject, continue", out)


if __name__ == "__main__":
    main()

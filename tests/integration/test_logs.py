#!/usr/bin/env python3
"""Operational logs (SPEC §10 "Logs", issue 15 part 5): the access log never
carries a query string (the audit log keeps only its hash), the peer is
`peer_addr` (socket address) or `peer_org` (authenticated org) and never an
ambiguous `peer`, and `--log-level` / $FEDPROXY_LOG_LEVEL drop lower levels.

Run: FEDPROXY_BIN=build/proxy/app/fedproxy python3 tests/integration/test_logs.py
"""

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fedtest.backend import Backend  # noqa: E402
from fedtest.case import BackendTestCase, main, shared_pki, start_class_proxy, try_mtls_request  # noqa: E402
from fedtest.pki import PARTNER_URI  # noqa: E402
from fedtest.policy import grant, new_id, peer, policy_config, read_audit  # noqa: E402
from fedtest.proxy import (Conn, Proxy, base_config, clean_env, client_context,  # noqa: E402
                           fedproxy_bin, free_port, run_cli, write_config)

PEER_A = "partner-labs"


class AccessLogTest(unittest.TestCase):
    """One proxy in policy mode with an audit log: allowed, denied and
    refused requests carrying a secret in the query, and a handshake failure."""

    @classmethod
    def setUpClass(cls):
        cls.pki = pki = shared_pki()
        cls.tmp = tempfile.mkdtemp(prefix="fedtest-logs-")
        cls.audit_path = os.path.join(cls.tmp, "audit.jsonl")
        cls.gid = new_id()
        cls.cert = pki.issue_client("logs-a", PARTNER_URI, grant_id=cls.gid)
        cls.backend = Backend().start()
        cls.proxy = Proxy(policy_config(pki, cls.backend.address, peers=[peer(PEER_A, PARTNER_URI)],
                                        grants=[grant(cls.gid, PEER_A, ["tasks"])],
                                        audit={"path": cls.audit_path}))
        start_class_proxy(cls)

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        cls.backend.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def request(self, target):
        conn = Conn.open(self.proxy.ingress_port, client_context(self.pki, self.cert))
        try:
            rid = "logs-" + new_id()[:8]
            resp = conn.request("GET", target, [("X-Request-Id", rid)])
            return resp, conn.local_port, rid
        finally:
            conn.close()

    def request_log(self, rid):
        rec = self.proxy.wait_log(lambda r: r.get("msg") == "request" and r.get("request_id") == rid, 5)
        self.assertIsNotNone(rec, self.proxy.tail())
        return rec

    def test_query_string_never_logged(self):
        secret = "s3cr3t-" + secrets.token_hex(8)
        cases = (("/api/v1/tasks/7?token=%s&x=1" % secret, 200, "/api/v1/tasks/7"),   # forwarded
                 ("/api/v1/notes?token=%s" % secret, 403, "/api/v1/notes"),           # denied
                 ("/api/v1/tasks/../notes?token=%s" % secret, 400, None))             # refused
        for target, status, path in cases:
            with self.subTest(target=target):
                resp, _, rid = self.request(target)
                self.assertEqual(resp.status, status)
                rec = self.request_log(rid)
                self.assertNotIn("?", rec["path"], rec)
                if path:
                    self.assertEqual(rec["path"], path)
        # The forwarded request did carry it (this is not a test that passes
        # because the secret never reached fedproxy).
        self.assertTrue(any(secret in r.target for r in self.backend.requests))
        time.sleep(0.2)
        self.assertNotIn(secret, "\n".join(self.proxy.lines))
        # The audit log keeps the hash of the query, not the query.
        with open(self.audit_path) as f:
            audit = f.read()
        self.assertNotIn(secret, audit)
        self.assertTrue(any(r.get("query_hash") for r in read_audit(self.audit_path)
                            if r.get("path") == "/api/v1/tasks/7"))

    def test_peer_fields_are_unambiguous(self):
        resp, local, rid = self.request("/api/v1/tasks/1")
        self.assertEqual(resp.status, 200)
        rec = self.request_log(rid)
        self.assertEqual(rec["peer_addr"], "127.0.0.1:%d" % local)
        self.assertEqual(rec["peer_org"], PEER_A)
        # A client without a certificate: handshake_failed names the address.
        outcome, local2, _ = try_mtls_request(self.proxy.ingress_port, client_context(self.pki, None), "/x")
        hs = self.proxy.wait_log(lambda r: r.get("msg") == "handshake_failed"
                                 and r.get("peer_addr") == "127.0.0.1:%d" % local2, 5)
        self.assertIsNotNone(hs, self.proxy.tail())
        time.sleep(0.1)
        with_peer = [r for r in list(self.proxy.logs) if "peer" in r]
        self.assertEqual(with_peer, [], "log lines with the ambiguous 'peer' field")


class LogLevelTest(BackendTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.dir = tempfile.mkdtemp(prefix="fedtest-loglevel-")

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def busy_config(self, name):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        self.addCleanup(s.close)
        cfg = base_config(self.pki, self.backend.address,
                          ingress={"listen": "127.0.0.1:%d" % s.getsockname()[1]})
        return write_config(cfg, self.dir, name + ".json")

    def levels(self, stderr):
        return [json.loads(ln)["level"] for ln in stderr.splitlines() if ln.strip()]

    def test_flag_drops_lower_levels(self):
        # A start that fails on a busy port logs warn lines (no policy, no
        # admin token) and the fatal one: --log-level error keeps the fatal only.
        cfg = self.busy_config("busy")
        default = run_cli(["run", "--config", cfg])
        self.assertEqual(default.returncode, 2)
        self.assertIn("warn", self.levels(default.stderr))
        quiet = run_cli(["run", "--config", cfg, "--log-level", "error"])
        self.assertEqual(quiet.returncode, 2)
        self.assertEqual(self.levels(quiet.stderr), ["fatal"], quiet.stderr)

    def test_environment_variable_and_debug(self):
        port = free_port()
        cfg = write_config(base_config(self.pki, self.backend.address,
                                       ingress={"listen": "127.0.0.1:%d" % port}), self.dir, "warn.json")
        for level, want_info in (("warn", False), ("debug", True)):
            with self.subTest(level=level):
                d = tempfile.mkdtemp(dir=self.dir)
                notify = os.path.join(d, "notify.sock")
                ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                ns.bind(notify)
                ns.settimeout(10)
                p = subprocess.Popen([fedproxy_bin(), "run", "--config", cfg], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                     env=clean_env({"FEDPROXY_LOG_LEVEL": level, "NOTIFY_SOCKET": notify}))
                try:
                    self.assertIn(b"READY=1", ns.recv(4096))  # serving
                    p.terminate()
                    _, err = p.communicate(timeout=15)
                finally:
                    ns.close()
                    if p.poll() is None:
                        p.kill()
                        p.wait()
                levels = self.levels(err)
                self.assertEqual(p.returncode, 0, err)
                self.assertEqual("info" in levels, want_info, err)
                self.assertEqual("debug" in levels, level == "debug", err)
                if level == "debug":
                    self.assertIn('"msg":"sd_notify"', err)

    def test_unknown_level_is_a_usage_error(self):
        p = run_cli(["run", "--config", "x.json", "--log-level", "verbose"])
        self.assertEqual(p.returncode, 2)
        self.assertIn("Usage: fedproxy run", p.stderr)
        p = run_cli(["run", "--config", "x.json"], env={"FEDPROXY_LOG_LEVEL": "loud"})
        self.assertEqual(p.returncode, 2)


if __name__ == "__main__":
    main()

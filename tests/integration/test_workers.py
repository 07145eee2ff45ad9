#!/usr/bin/env python3
"""Multi-core workers ("workers": N | "auto"): one event loop per thread,
SO_REUSEPORT listeners, snapshots published to every worker, rate limits
shared across workers (exact to one request), metrics aggregated, and a
graceful stop that drains every worker.

Run: FEDPROXY_BIN=build/proxy/app/fedproxy python3 tests/integration/test_workers.py
"""

import concurrent.futures
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fedtest import promtext  # noqa: E402
from fedtest.backend import Backend  # noqa: E402
from fedtest.case import main, shared_pki, start_class_proxy, stop_class_proxy  # noqa: E402
from fedtest.pki import PARTNER_URI  # noqa: E402
from fedtest.policy import (grant, new_id, peer, policy_config, read_audit,  # noqa: E402
                            replace_config)
from fedtest.proxy import Conn, Proxy, base_config, client_context, run_cli, write_config  # noqa: E402
from fedtest.reload import admin_request, admin_status, wait_until  # noqa: E402

PEER = "partner-labs"
WORKERS = 2
BURST = 12


def one_request(port, ctx, target):
    """A new connection per request, so SO_REUSEPORT spreads them."""
    c = Conn.open(port, ctx, timeout=10)
    try:
        return c.request("GET", target).status
    finally:
        c.close()


class WorkersTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pki = pki = shared_pki()
        cls.tmp = tempfile.mkdtemp(prefix="fedtest-workers-")
        cls.g_main, cls.g_rate = new_id(), new_id()
        cls.c_main = pki.issue_client("wk-main", PARTNER_URI, grant_id=cls.g_main)
        cls.c_rate = pki.issue_client("wk-rate", PARTNER_URI, grant_id=cls.g_rate)
        cls.ctx_main = client_context(pki, cls.c_main)
        cls.ctx_rate = client_context(pki, cls.c_rate)
        cls.grants = [grant(cls.g_main, PEER, ["tasks"]),
                      # 1 token per 1000 s: only the burst is available in a test
                      grant(cls.g_rate, PEER, ["tasks"], rate_limit={"rps": 0.001, "burst": BURST})]
        cls.backend = Backend().start()
        cls.audit = os.path.join(cls.tmp, "audit.jsonl")
        cls.cfg = policy_config(pki, cls.backend.address, peers=[peer(PEER, PARTNER_URI)],
                                grants=cls.grants, workers=WORKERS, audit={"path": cls.audit})
        cls.proxy = Proxy(cls.cfg)
        start_class_proxy(cls)

    @classmethod
    def tearDownClass(cls):
        stop_class_proxy(cls)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def status(self):
        return admin_status(self.proxy.admin_port)

    def burst(self, ctx, n, target="/api/v1/tasks/1", threads=8):
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            return list(pool.map(lambda _: one_request(self.proxy.ingress_port, ctx, target), range(n)))

    def test_connections_spread_over_every_worker(self):
        before = self.status()["workers"]
        self.assertEqual(before["count"], WORKERS)
        statuses = self.burst(self.ctx_main, 60)
        self.assertEqual(statuses, [200] * 60)
        after = self.status()["workers"]["accepted"]
        grew = [a - b for a, b in zip(after, before["accepted"])]
        self.assertEqual(sum(grew), 60)
        self.assertTrue(all(n > 0 for n in grew), "a worker accepted nothing: %s" % grew)

    def test_egress_connections_spread_and_are_counted_per_worker(self):
        # The egress listener is SO_REUSEPORT too; /status counts its
        # connections with the worker that accepted them. The peer is
        # unreachable, so every request is a quick 502: what counts here is
        # only which worker accepted the connection.
        cfg = base_config(self.pki, self.backend.address, egress={"listen": "127.0.0.1:0"})
        cfg["peers"] = [peer("nowhere-labs", "spiffe://nowhere-labs.example/nodes/primary",
                             endpoints=["https://127.0.0.1:1"])]
        cfg["grants"] = []
        cfg.pop("authenticate_only", None)
        cfg["workers"] = WORKERS
        p = Proxy(cfg, wait_for=("ingress", "egress", "admin"))
        p.start()
        try:
            before = admin_status(p.admin_port)["workers"]["accepted"]

            def get(_):
                with Conn.open(p.ports["egress"], None, timeout=10) as c:
                    return c.request("GET", "/api/v1/tasks", [("Host", "nowhere-labs"), ("Connection", "close")]).status

            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                statuses = list(pool.map(get, range(40)))
            self.assertEqual(statuses, [502] * 40)
            after = admin_status(p.admin_port)["workers"]["accepted"]
            grew = [a - b for a, b in zip(after, before)]
            self.assertEqual(sum(grew), 40)
            self.assertTrue(all(n > 0 for n in grew), "a worker accepted nothing: %s" % grew)
        finally:
            p.stop()

    def test_rate_limit_is_shared_across_workers(self):
        statuses = self.burst(self.ctx_rate, BURST * 3, threads=12)
        allowed = statuses.count(200)
        self.assertEqual(statuses.count(429), len(statuses) - allowed, statuses)
        # exact to one request: the refill during the test is < 1 token
        self.assertIn(allowed, (BURST, BURST + 1), statuses)

    def test_metrics_are_summed_over_workers(self):
        def count():
            status, body = admin_request(self.proxy.admin_port, "GET", "/metrics")
            fams = promtext.parse(body.decode())
            return fams["fedproxy_requests_total"].value(grant=self.g_main, decision="allow") or 0
        base = count()
        self.burst(self.ctx_main, 40)
        self.assertTrue(wait_until(lambda: count() >= base + 40, 5), (base, count()))
        self.assertEqual(count(), base + 40)
        # and every request is in the one audit chain
        res = run_cli(["audit", "verify", self.audit])
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)

    def test_reload_reaches_every_worker(self):
        revoked = [dict(g) for g in self.grants]
        revoked[0]["status"] = "revoked"
        cfg = dict(self.cfg, grants=revoked)
        try:
            replace_config(cfg, os.path.dirname(self.proxy.config_path))
            status, body = admin_request(self.proxy.admin_port, "POST", "/reload")
            self.assertEqual(status, 200, body)
            statuses = self.burst(self.ctx_main, 40)
            self.assertEqual(statuses, [403] * 40, "a worker kept the old policy")
            self.assertTrue(all(n > 0 for n in self.status()["workers"]["accepted"]))
        finally:
            replace_config(self.cfg, os.path.dirname(self.proxy.config_path))
            admin_request(self.proxy.admin_port, "POST", "/reload")
        self.assertEqual(self.burst(self.ctx_main, 10), [200] * 10)


class WorkersLifecycleTest(unittest.TestCase):
    def setUp(self):
        self.pki = shared_pki()
        self.backend = Backend().start()
        self.addCleanup(self.backend.stop)

    def test_auto_means_one_per_core(self):
        cfg = base_config(self.pki, self.backend.address, workers="auto")
        with Proxy(cfg) as p:
            self.assertEqual(admin_status(p.admin_port)["workers"]["count"], os.cpu_count())

    def test_sigterm_drains_every_worker(self):
        cfg = base_config(self.pki, self.backend.address, workers=WORKERS)
        p = Proxy(cfg).start()
        try:
            ctx = client_context(self.pki, self.pki.client)
            conns = [Conn.open(p.ingress_port, ctx, timeout=15) for _ in range(12)]
            results = [None] * len(conns)

            def slow(i):
                results[i] = conns[i].request("GET", "/slow/800").status
            threads = [threading.Thread(target=slow, args=(i,)) for i in range(len(conns))]
            for t in threads:
                t.start()
            # every request is in flight (on both workers) before SIGTERM
            self.assertTrue(wait_until(lambda: len(self.backend.snapshot()) >= len(conns), 10))
            accepted = admin_status(p.admin_port)["workers"]["accepted"]
            self.assertTrue(all(n > 0 for n in accepted), accepted)
            p.signal(signal.SIGTERM)
            for t in threads:
                t.join(15)
            self.assertEqual(results, [200] * len(conns))
            self.assertEqual(p.wait_exit(15), 0)
            for c in conns:
                c.close()
        finally:
            p.stop()

    def test_bind_failure_of_a_worker_is_fatal(self):
        """An address held by a socket without SO_REUSEPORT is refused with exit 2."""
        cfg = base_config(self.pki, self.backend.address, workers=WORKERS)
        single = base_config(self.pki, self.backend.address)
        with Proxy(single) as p1:
            taken = dict(cfg, ingress=dict(cfg["ingress"], listen="127.0.0.1:%d" % p1.ingress_port))
            path = write_config(taken)
            res = run_cli(["run", "--config", path], timeout=20)
            self.assertEqual(res.returncode, 2, res.stderr)
            self.assertIn("cannot listen", res.stderr)


if __name__ == "__main__":
    main()

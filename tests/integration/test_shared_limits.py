#!/usr/bin/env python3
"""Limits shared by replicas (SPEC §14): three fedproxy replicas of one node
and a real redis-server (no persistence, free port).

- A 100 req/s grant under 3x that load spread over the replicas admits
  100/s ± 10 % over 20 s (each replica alone would admit 100/s: ~300/s).
- A daily request quota stops at its number; a bytes quota after the
  exchange that crossed it; both answer 429 quota_exceeded with a
  Retry-After to the end of the UTC day.
- Redis killed mid-run: requests keep flowing under the fallback (each
  replica limit / replicas), /status, metrics and one log line say so, and
  shared limits resume by themselves when Redis is back.
- on_backend_failure reject: limited grants get 503 limits_unavailable.
The app (the recording backend) must have received exactly the admitted
requests."""
import datetime
import json
import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fedtest import promtext, wire  # noqa: E402
from fedtest.backend import Backend  # noqa: E402
from fedtest.case import main, shared_pki  # noqa: E402
from fedtest.pki import PARTNER_URI  # noqa: E402
from fedtest.policy import bearer, grant, new_id, peer, policy_config  # noqa: E402
from fedtest.proxy import Conn, Proxy, assert_json_error, client_context  # noqa: E402
from fedtest.redis import RedisServer  # noqa: E402
from fedtest.reload import admin_request, admin_status, wait_until  # noqa: E402

PEER = "partner-labs"
REPLICAS = 3


def seconds_to_end_of_utc_day() -> float:
    now = datetime.datetime.now(datetime.timezone.utc)
    end = (now + datetime.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (end - now).total_seconds()


class Replicas:
    """REPLICAS fedproxy processes with one config (one node), each on its own ports."""

    def __init__(self, pki, backend, grants, redis_url, **rate_limits):
        rl = {"backend": "redis", "redis_url": redis_url, "replicas": REPLICAS}
        rl.update(rate_limits)
        self.cfg = policy_config(pki, backend.address, peers=[peer(PEER, PARTNER_URI)], grants=grants,
                                 rate_limits=rl, log_requests=False)
        self.proxies = [Proxy(self.cfg) for _ in range(REPLICAS)]

    def __enter__(self):
        try:
            for p in self.proxies:
                p.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, exc_type, *exc):
        codes = self.stop()
        # A clean exit (and, under ASan, no leak) from every replica.
        if exc_type is None and any(c != 0 for c in codes):
            raise AssertionError("replica exit codes %s: %s" % (codes, self.proxies[0].tail()))

    def stop(self):
        return [p.stop() for p in self.proxies]

    def states(self):
        return [admin_status(p.admin_port)["rate_limits"]["state"] for p in self.proxies]

    def wait_state(self, state, timeout=10.0):
        ok = wait_until(lambda: all(s == state for s in self.states()), timeout=timeout)
        if not ok:
            raise AssertionError("replicas did not reach %s: %s" % (state, self.states()))


class Load:
    """Paced keep-alive load, spread evenly over the replicas: one thread per
    replica at rate/REPLICAS requests per second. Counts statuses per second."""

    def __init__(self, tc, replicas, ctx, target, rate, seconds, headers=()):
        self.tc, self.replicas, self.ctx, self.target = tc, replicas, ctx, target
        self.rate, self.seconds, self.headers = rate, seconds, list(headers)
        self.lock = threading.Lock()
        self.by_status = {}
        self.timeline = []  # (t, status)
        self.errors = []

    def _run(self, proxy, t0):
        period = REPLICAS / self.rate
        n = int(self.seconds / period)
        conn = None
        for i in range(n):  # bounded in count and in time
            due = t0 + i * period
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if time.monotonic() - t0 > self.seconds + 5:
                break
            try:
                if conn is None:
                    conn = Conn.open(proxy.ingress_port, self.ctx, timeout=10)
                r = conn.request("GET", self.target, self.headers)
                status = r.status
                if wire.header(r.headers, "connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except OSError as e:
                status = "error"
                self.errors.append(repr(e))
                if conn:
                    conn.close()
                conn = None
            with self.lock:
                self.by_status[status] = self.by_status.get(status, 0) + 1
                self.timeline.append((time.monotonic() - t0, status))
        if conn:
            conn.close()

    def run(self):
        t0 = time.monotonic() + 0.2
        threads = [threading.Thread(target=self._run, args=(p, t0)) for p in self.replicas.proxies]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=self.seconds + 30)
        return self

    def admitted_between(self, a, b):
        return sum(1 for t, s in self.timeline if a <= t < b and s == 200)


class SharedLimitsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pki = shared_pki()
        cls.gid = new_id()
        cls.client = cls.pki.issue_client("limits-client", PARTNER_URI, grant_id=cls.gid)
        cls.ctx = client_context(cls.pki, cls.client)

    def setUp(self):
        self.redis = RedisServer().start()
        self.backend = Backend().start()

    def tearDown(self):
        self.backend.stop()
        self.redis.stop()

    def received(self, prefix):
        return sum(1 for r in self.backend.snapshot() if r.path.startswith(prefix))

    def test_rate_limit_holds_across_three_replicas(self):
        g = grant(self.gid, PEER, ["tasks"], rate_limit={"rps": 100, "burst": 10})
        with Replicas(self.pki, self.backend, [g], self.redis.url) as reps:
            reps.wait_state("shared")
            seconds = 20
            load = Load(self, reps, self.ctx, "/api/v1/tasks/1", rate=300, seconds=seconds).run()
            admitted = load.by_status.get(200, 0)
            limited = load.by_status.get(429, 0)
            self.assertFalse(load.errors, load.errors[:3])
            sent = admitted + limited
            self.assertGreater(sent, 0.8 * 300 * seconds, load.by_status)
            # 100/s ± 10 % over the run (+ the burst of 10 at the start).
            rate = (admitted - 10) / seconds
            print("shared rate: %d admitted of %d in %ds = %.1f/s" % (admitted, sent, seconds, rate), file=sys.stderr)
            self.assertGreaterEqual(rate, 90, load.by_status)
            self.assertLessEqual(rate, 110, load.by_status)
            # The app received exactly the admitted requests.
            self.assertTrue(wait_until(lambda: self.received("/api/v1/tasks/1") == admitted, timeout=5),
                            (self.received("/api/v1/tasks/1"), admitted))
            st = admin_status(reps.proxies[0].admin_port)["rate_limits"]
            self.assertEqual(st["backend"], "redis")
            self.assertEqual(st["replicas"], REPLICAS)
            self.assertGreater(st["leases"], 0)

    def test_request_and_byte_quotas(self):
        q_gid = self.gid
        g = grant(q_gid, PEER, ["tasks"], methods=["GET", "POST"], rate_limit=None,
                  quota={"requests_per_day": 60, "bytes_per_day": 10**9})
        with Replicas(self.pki, self.backend, [g], self.redis.url) as reps:
            reps.wait_state("shared")
            load = Load(self, reps, self.ctx, "/api/v1/tasks/q", rate=60, seconds=2.5).run()
            admitted = load.by_status.get(200, 0)
            self.assertEqual(admitted, 60, load.by_status)
            self.assertEqual(load.by_status.get(429, 0), 150 - 60, load.by_status)
            self.assertTrue(wait_until(lambda: self.received("/api/v1/tasks/q") == 60, timeout=5))
            with Conn.open(reps.proxies[1].ingress_port, self.ctx) as c:
                r = c.request("GET", "/api/v1/tasks/q")
                assert_json_error(self, r, 429, "quota_exceeded")
                retry = int(wire.header(r.headers, "retry-after"))
                self.assertAlmostEqual(retry, seconds_to_end_of_utc_day(), delta=5)
            for p in reps.proxies:
                q = admin_status(p.admin_port)["quotas"]
                self.assertEqual(q[0]["grant"], q_gid)
                self.assertEqual(q[0]["requests_per_day"], 60)
                self.assertGreaterEqual(q[0]["requests_used"], 20)
            fams = promtext.parse(admin_request(reps.proxies[0].admin_port, "GET", "/metrics")[1].decode())
            self.assertEqual(fams["fedproxy_quota_limit"].value(grant=q_gid, kind="requests"), 60)

    def test_bytes_quota_stops_after_the_exchange_that_crossed_it(self):
        g = grant(self.gid, PEER, ["tasks"], methods=["GET", "POST"], rate_limit=None,
                  quota={"bytes_per_day": 10000})
        body = b"x" * 1000
        with Replicas(self.pki, self.backend, [g], self.redis.url) as reps:
            reps.wait_state("shared")
            statuses = []
            for i in range(40):  # bounded: the quota is 10 bodies of 1000 bytes (+ responses)
                p = reps.proxies[i % REPLICAS]
                with Conn.open(p.ingress_port, self.ctx) as c:
                    statuses.append(c.request("POST", "/api/v1/tasks/b", body=body).status)
                time.sleep(0.12)  # > the 100 ms byte sync: each replica knows the others' bytes
            admitted = statuses.count(200)
            self.assertEqual(set(statuses), {200, 429}, statuses)
            self.assertEqual(statuses[:admitted], [200] * admitted, statuses)  # once refused, refused
            self.assertGreaterEqual(admitted, 1)
            self.assertLessEqual(admitted, 10, statuses)
            received = [r for r in self.backend.snapshot() if r.path == "/api/v1/tasks/b"]
            self.assertEqual(len(received), admitted)
            used = admin_status(reps.proxies[0].admin_port)["quotas"][0]["bytes_used"]
            self.assertGreaterEqual(used, 10000)

    def test_redis_killed_mid_run_falls_back_and_resumes(self):
        g = grant(self.gid, PEER, ["tasks"], rate_limit={"rps": 60, "burst": 6})
        with Replicas(self.pki, self.backend, [g], self.redis.url) as reps:
            reps.wait_state("shared")
            load = Load(self, reps, self.ctx, "/api/v1/tasks/f", rate=180, seconds=12)
            runner = threading.Thread(target=load.run)
            runner.start()
            time.sleep(3)
            self.redis.kill()
            t_kill = 3.2
            reps.wait_state("fallback", timeout=3)
            for p in reps.proxies:
                st = admin_status(p.admin_port)["rate_limits"]
                self.assertFalse(st["up"])
                self.assertTrue(st["last_error"], st)
                fams = promtext.parse(admin_request(p.admin_port, "GET", "/metrics")[1].decode())
                self.assertEqual(fams["fedproxy_rate_limit_backend_up"].value(), 0)
                self.assertEqual(fams["fedproxy_rate_limit_state"].value(state="fallback"), 1)
            time.sleep(3)
            self.redis.start()
            t_back = 6.2
            reps.wait_state("shared", timeout=8)
            runner.join(timeout=40)
            self.assertFalse(load.errors, load.errors[:3])
            # Requests kept flowing while Redis was gone, at about the limit
            # (each replica 60/3 per second).
            during = load.admitted_between(t_kill + 0.5, t_back)
            self.assertGreater(during, 0.7 * 60 * (t_back - t_kill - 0.5), load.timeline[-5:])
            self.assertLess(during, 1.3 * 60 * (t_back - t_kill - 0.5) + 6)
            # One line per replica for the outage, one for the return.
            for p in reps.proxies:
                downs = p.find_logs(lambda r: r.get("msg") == "rate_limits.backend_down")
                ups = p.find_logs(lambda r: r.get("msg") == "rate_limits.backend_up")
                self.assertEqual(len(downs), 1, downs)
                self.assertEqual(len(ups), 2, ups)  # at start, and after the outage
            self.assertEqual(self.received("/api/v1/tasks/f"), load.by_status.get(200, 0))

    def test_a_hung_redis_never_holds_a_request(self):
        g = grant(self.gid, PEER, ["tasks"], rate_limit={"rps": 1000, "burst": 100})
        with Replicas(self.pki, self.backend, [g], self.redis.url) as reps:
            reps.wait_state("shared")
            self.redis.pause()
            try:
                worst = 0.0
                statuses = []
                with Conn.open(reps.proxies[0].ingress_port, self.ctx) as c:
                    deadline = time.monotonic() + 2.0
                    while time.monotonic() < deadline:  # bounded in time
                        t = time.monotonic()
                        statuses.append(c.request("GET", "/api/v1/tasks/h").status)
                        worst = max(worst, time.monotonic() - t)
                        time.sleep(0.01)
                reps.wait_state("fallback", timeout=3)
                # Served all along (leased tokens, then the fallback share);
                # no request waited for the silent server.
                self.assertEqual(set(statuses), {200}, statuses)
                self.assertLess(worst, 0.5)
                st = admin_status(reps.proxies[0].admin_port)["rate_limits"]
                self.assertIn("within 100 ms", st["last_error"])
            finally:
                self.redis.resume()
            reps.wait_state("shared", timeout=8)

    def test_quota_counts_survive_a_redis_restart(self):
        g = grant(self.gid, PEER, ["tasks"], rate_limit=None, quota={"requests_per_day": 1000})
        with Replicas(self.pki, self.backend, [g], self.redis.url) as reps:
            reps.wait_state("shared")
            for i in range(30):
                with Conn.open(reps.proxies[i % REPLICAS].ingress_port, self.ctx) as c:
                    self.assertEqual(c.request("GET", "/api/v1/tasks/s").status, 200)
            self.redis.kill()
            reps.wait_state("fallback", timeout=3)
            self.redis.start()
            reps.wait_state("shared", timeout=8)

            def day_total():
                keys = [k for k in self.redis.cli("--scan", "--pattern", "fedproxy:*:req:*").split() if k]
                return sum(int(v) for k in keys for v in self.redis.cli("HVALS", k).split())
            # Each replica sent its own count back: Redis knows the 30 again
            # (plus what the replicas reserved ahead).
            self.assertTrue(wait_until(lambda: day_total() >= 30, timeout=5), day_total())
            self.assertLessEqual(day_total(), 30 + REPLICAS * 10)

    def test_reject_when_the_backend_is_down(self):
        self.redis.kill()
        limited = grant(self.gid, PEER, ["tasks"], rate_limit={"rps": 100, "burst": 100})
        with Replicas(self.pki, self.backend, [limited], self.redis.url, on_backend_failure="reject") as reps:
            reps.wait_state("reject", timeout=5)
            with Conn.open(reps.proxies[0].ingress_port, self.ctx) as c:
                r = c.request("GET", "/api/v1/tasks/r")
                assert_json_error(self, r, 503, "limits_unavailable")
                self.assertEqual(self.received("/api/v1/tasks/r"), 0)
            # Redis comes back: shared again, served.
            self.redis.start()
            reps.wait_state("shared", timeout=8)
            with Conn.open(reps.proxies[0].ingress_port, self.ctx) as c:
                self.assertEqual(c.request("GET", "/api/v1/tasks/r").status, 200)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Metrics people can alert on (issue 15, part 4), through the real binary:

- the whole /metrics scrape parses with the strict parser (fedtest/promtext.py:
  HELP/TYPE, names, label escaping, cumulative histogram buckets ending in
  +Inf == _count, `_sum` an exact decimal), and `promtool check metrics`
  finds nothing to lint when promtool is installed;
- latency comes from a monotonic high-resolution clock: audit durations are
  fractional milliseconds, requests faster than 1 ms land in the sub-ms
  buckets, and the histogram's `_sum` equals the sum of the audit records'
  durations (each rounded to the microsecond there);
- fedproxy_build_info names what `fedproxy version` prints;
- fedproxy_cert_expiry_timestamp_seconds equals the notAfter openssl reads
  from the node certificate, the CA, the peer's own anchor and the
  certificate the peer presented; the CRL's nextUpdate likewise;
- reloads: ok, failed and restart_required (changing ingress.listen) in the
  POST /reload answer, /status and the counters, with the last success time;
- failed audit writes and lost records are counted (audit.path on /dev/full);
- every metric named by examples/monitoring/fedproxy-alerts.yaml and
  grafana-dashboard.json exists in a real scrape, and `promtool check rules`
  accepts the rules (skipped, visibly, without promtool).

Run: FEDPROXY_BIN=build/proxy/app/fedproxy python3 tests/integration/test_metrics.py
"""

import calendar
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fedtest import promtext  # noqa: E402
from fedtest.backend import Backend  # noqa: E402
from fedtest.case import main, shared_pki, start_class_proxy, stop_class_proxy  # noqa: E402
from fedtest.pki import PARTNER_URI, openssl  # noqa: E402
from fedtest.policy import bearer, grant, new_id, peer, policy_config, read_audit, replace_config  # noqa: E402
from fedtest.proxy import Conn, Proxy, client_context, free_port, run_cli  # noqa: E402
from fedtest.reload import admin_reload, admin_request, admin_status, wait_until  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ALERTS = os.path.join(ROOT, "examples", "monitoring", "fedproxy-alerts.yaml")
DASHBOARD = os.path.join(ROOT, "examples", "monitoring", "grafana-dashboard.json")
PEER = "partner-labs"
METRIC_NAME = re.compile(r"\bfedproxy_[a-z0-9_]+")


def promtool() -> str | None:
    return os.environ.get("FEDTEST_PROMTOOL") or shutil.which("promtool")


def not_after(path: str) -> int:
    """The certificate's notAfter as unix seconds, read by openssl."""
    text = openssl("x509", "-in", path, "-noout", "-enddate").decode().strip()
    return calendar.timegm(time.strptime(text.split("=", 1)[1], "%b %d %H:%M:%S %Y %Z"))


def crl_next_update(path: str) -> int:
    text = openssl("crl", "-in", path, "-noout", "-nextupdate").decode().strip()
    return calendar.timegm(time.strptime(text.split("=", 1)[1], "%b %d %H:%M:%S %Y %Z"))


def der_sha256(path: str) -> str:
    return hashlib.sha256(openssl("x509", "-in", path, "-outform", "der")).hexdigest()


def names_in(path: str) -> set:
    """fedproxy metric names an alert rule file or dashboard refers to."""
    with open(path) as f:
        return set(METRIC_NAME.findall(f.read()))


def scrape(port: int) -> tuple[str, dict]:
    status, body = admin_request(port, "GET", "/metrics")
    if status != 200:
        raise AssertionError("GET /metrics answered %d" % status)
    text = body.decode("utf-8")
    return text, promtext.parse(text)


def sample_names(fams: dict) -> set:
    return {s.name for fam in fams.values() for s in fam.samples}


class MetricsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pki = pki = shared_pki()
        cls.tmp = tempfile.mkdtemp(prefix="fedtest-metrics-")
        cls.gid = new_id()
        cls.client = pki.issue_client("metrics-a", PARTNER_URI, grant_id=cls.gid)
        cls.audit = os.path.join(cls.tmp, "audit.jsonl")
        # The peer has its own anchor (the test CA) and an endpoint nothing
        # listens on, so egress heartbeats report it (fedproxy_peer_up).
        peers = [peer(PEER, PARTNER_URI, ca_bundle=pki.ca.crt,
                      endpoints=["https://127.0.0.1:%d" % free_port()])]
        cls.backend = Backend().start()
        cls.cfg = policy_config(pki, cls.backend.address, peers=peers,
                                grants=[grant(cls.gid, PEER, ["tasks"])],
                                # No file polling: the reload test counts the reloads it asks for.
                                tls={"crl": pki.crl, "watch_interval_ms": 600000},
                                egress={"listen": "127.0.0.1:0"},
                                audit={"path": cls.audit})
        cls.proxy = Proxy(cls.cfg)
        start_class_proxy(cls)
        cls.ctx = client_context(pki, cls.client)

    @classmethod
    def tearDownClass(cls):
        stop_class_proxy(cls)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def requests(self, n: int, target: str = "/api/v1/tasks/1") -> list:
        """n requests on one kept-alive mTLS connection; their statuses."""
        with Conn.open(self.proxy.ingress_port, self.ctx) as c:
            return [c.request("GET", target, [bearer(self.gid)]).status for _ in range(n)]

    def audit_records(self) -> list:
        return [r for r in read_audit(self.audit) if r.get("type") != "event"]

    def wait_audited(self, n: int) -> list:
        got = wait_until(lambda: len(self.audit_records()) >= n and self.audit_records(), 5)
        self.assertTrue(got, "audit records did not reach %d" % n)
        return got

    # -- the exposition and the latency histogram -------------------------------
    def test_histogram_is_exact_and_high_resolution(self):
        before = len(self.audit_records())
        # Denied before any upstream I/O (unknown resource): answered in well under 1 ms.
        statuses = self.requests(20, "/api/v1/nothing-here") + self.requests(5)
        self.assertEqual(statuses.count(200), 5, statuses)
        records = self.wait_audited(before + 25)
        text, fams = scrape(self.proxy.admin_port)
        hist = fams["fedproxy_request_duration_seconds"]
        self.assertEqual(hist.type, "histogram")
        durations_ms = [float(r["duration_ms"]) for r in records]
        # Not whole milliseconds any more (the old clock was the loop's ms time).
        self.assertTrue(any(d != int(d) for d in durations_ms), durations_ms[-25:])
        sub_ms = [d for d in durations_ms if d < 0.999]
        self.assertTrue(sub_ms, "no request under 1 ms: %s" % durations_ms[-25:])
        le_1ms = hist.value("fedproxy_request_duration_seconds_bucket", le="0.001")
        self.assertGreaterEqual(le_1ms, len(sub_ms))
        self.assertLessEqual(le_1ms, len([d for d in durations_ms if d <= 1.001]))
        self.assertTrue([b for b in ("0.0001", "0.00025", "0.0005")
                         if hist.value("fedproxy_request_duration_seconds_bucket", le=b)],
                        "no request counted in a sub-millisecond bucket")
        # _sum is the sum of the very durations the audit shows (rounded there to 1 µs each).
        count = hist.value("fedproxy_request_duration_seconds_count")
        self.assertEqual(count, len(records))
        sum_raw = [s.raw for s in hist.samples if s.name == "fedproxy_request_duration_seconds_sum"][0]
        self.assertRegex(sum_raw, r"^\d+(\.\d{1,9})?$")
        self.assertAlmostEqual(float(sum_raw), sum(durations_ms) / 1000, delta=len(records) * 0.6e-6)

    def test_promtool_lints_the_scrape(self):
        tool = promtool()
        if not tool:
            self.skipTest("promtool not installed (Debian: apt-get install promtool, "
                          "or packaging/install-deps.sh): scrape lint not run")
        self.requests(2)
        text, _ = scrape(self.proxy.admin_port)
        r = subprocess.run([tool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_build_info_names_the_running_versions(self):
        _, fams = scrape(self.proxy.admin_port)
        (s,) = fams["fedproxy_build_info"].samples
        self.assertEqual(s.value, 1)
        self.assertEqual(set(s.labels), {"version", "mbedtls", "libuv", "llhttp"})
        printed = run_cli(["version"]).stdout.strip()
        self.assertEqual(printed, "fedproxy %s (mbedTLS %s, libuv %s, llhttp %s)" % (
            s.labels["version"], s.labels["mbedtls"], s.labels["libuv"], s.labels["llhttp"]))

    # -- certificates and CRL ----------------------------------------------------
    def test_cert_expiry_is_the_certificates_not_after(self):
        self.assertIn(200, self.requests(1))  # the peer presents its certificate
        got = wait_until(lambda: scrape(self.proxy.admin_port)[1]["fedproxy_cert_expiry_timestamp_seconds"]
                         .value(cert="peer:" + PEER) is not None, 5)
        self.assertTrue(got)
        fam = scrape(self.proxy.admin_port)[1]["fedproxy_cert_expiry_timestamp_seconds"]
        self.assertEqual(fam.type, "gauge")
        series = {(s.labels["cert"], s.labels["kind"], s.labels.get("org", "")): s for s in fam.samples}
        ca = "ca:" + der_sha256(self.pki.ca.crt)
        self.assertEqual(set(series), {("node", "node", ""), (ca, "ca", ""), (ca, "peer_anchor", PEER),
                                       ("peer:" + PEER, "peer", PEER)})
        self.assertEqual(series[("node", "node", "")].value, not_after(self.pki.server.crt))
        self.assertEqual(series[(ca, "ca", "")].value, not_after(self.pki.ca.crt))
        self.assertEqual(series[(ca, "peer_anchor", PEER)].value, not_after(self.pki.ca.crt))
        self.assertEqual(series[("peer:" + PEER, "peer", PEER)].value, not_after(self.client.crt))
        self.assertIn("metrics-a", series[("peer:" + PEER, "peer", PEER)].labels["subject"])

    def test_status_remembers_the_peers_last_certificate(self):
        """/status names the certificate each peer last presented and warns
        when it ends within 30 days (test certificates live 30 days)."""
        self.assertIn(200, self.requests(1))
        status, body = admin_request(self.proxy.admin_port, "GET", "/status")
        self.assertEqual(status, 200)
        doc = json.loads(body)
        (p,) = [p for p in doc["peers"] if p["org"] == PEER]
        last = p["last_certificate"]
        self.assertEqual(last["not_after"], not_after(self.client.crt))
        self.assertEqual(last["fingerprint_sha256"], der_sha256(self.client.crt))
        self.assertIn("metrics-a", last["subject"])
        self.assertLess(last["days_left"], 30)
        self.assertTrue(any(w.startswith("peer %s certificate " % PEER) and "expires in %d days" % last["days_left"] in w
                            for w in doc["warnings"]), doc["warnings"])

    def test_crl_next_update(self):
        _, fams = scrape(self.proxy.admin_port)
        self.assertEqual(fams["fedproxy_crl_next_update_timestamp_seconds"].value(), crl_next_update(self.pki.crl))

    # -- reloads --------------------------------------------------------------------
    def test_reload_results_ok_restart_required_failed(self):
        port = self.proxy.admin_port
        _, fams = scrape(port)
        reloads = fams["fedproxy_reloads_total"]
        n0 = {r: reloads.value(result=r) for r in ("ok", "failed", "restart_required")}
        t0 = fams["fedproxy_last_reload_success_timestamp_seconds"].value()
        self.assertGreater(t0, 0)
        self.assertNotIn("fedproxy_restart_required", sample_names(fams))
        path = self.proxy.config_path
        with open(path) as f:
            good = f.read()
        try:
            time.sleep(1.1)  # the success timestamp has a resolution of 1 s
            changed = json.loads(good)
            changed["ingress"]["listen"] = "127.0.0.1:%d" % free_port()
            replace_config(changed, os.path.dirname(path), os.path.basename(path))
            status, body = admin_reload(port)
            self.assertEqual((status, body), (200, {"ok": False, "result": "restart_required",
                                                    "restart_required": ["ingress.listen"], "error": None}))
            st = admin_status(port)
            self.assertEqual(st["last_reload"]["result"], "restart_required")
            self.assertEqual(st["restart_required"], ["ingress.listen"])
            line = self.proxy.wait_log(lambda r: r.get("msg") == "reloaded" and
                                       r.get("result") == "restart_required")
            self.assertIsNotNone(line, self.proxy.tail())
            self.assertEqual(line["restart_required"], "ingress.listen")
            self.assertEqual(line["level"], "warn")
            _, fams = scrape(port)
            self.assertEqual(fams["fedproxy_reloads_total"].value(result="restart_required"),
                             n0["restart_required"] + 1)
            self.assertEqual(fams["fedproxy_restart_required"].value(key="ingress.listen"), 1)
            self.assertEqual(fams["fedproxy_last_reload_successful"].value(), 1)
            t1 = fams["fedproxy_last_reload_success_timestamp_seconds"].value()
            self.assertGreater(t1, t0)
            self.assertIn(200, self.requests(1))  # the old listener still serves
            # A broken file: failed; the pending restart and the last success stay.
            with open(path, "w") as f:
                f.write("{ broken")
            status, body = admin_reload(port)
            self.assertEqual((status, body["ok"], body["result"]), (500, False, "failed"))
            _, fams = scrape(port)
            self.assertEqual(fams["fedproxy_reloads_total"].value(result="failed"), n0["failed"] + 1)
            self.assertEqual(fams["fedproxy_last_reload_successful"].value(), 0)
            self.assertEqual(fams["fedproxy_last_reload_success_timestamp_seconds"].value(), t1)
            self.assertEqual(fams["fedproxy_restart_required"].value(key="ingress.listen"), 1)
            self.check_references_exist(fams)
        finally:
            replace_config(json.loads(good), os.path.dirname(path), os.path.basename(path))
        # Reverted to what the process runs with: a plain ok, nothing waits.
        status, body = admin_reload(port)
        self.assertEqual((status, body["result"], body["restart_required"]), (200, "ok", []))
        _, fams = scrape(port)
        self.assertEqual(fams["fedproxy_reloads_total"].value(result="ok"), n0["ok"] + 1)
        self.assertNotIn("fedproxy_restart_required", sample_names(fams))
        self.assertEqual(admin_status(port)["restart_required"], [])

    # -- alert rules and dashboard cannot drift -------------------------------------
    def check_references_exist(self, fams):
        """Called with a scrape taken while a restart is pending and a reload
        failed, so that every series the rules can reference is there."""
        exposed = sample_names(fams)
        for path in (ALERTS, DASHBOARD):
            referenced = names_in(path)
            self.assertGreater(len(referenced), 5, path)
            with self.subTest(file=os.path.basename(path)):
                self.assertEqual(sorted(referenced - exposed), [],
                                 "%s names metrics fedproxy does not expose" % path)

    def test_dashboard_is_grafana_json(self):
        with open(DASHBOARD) as f:
            dash = json.load(f)
        exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
        self.assertTrue(exprs)
        self.assertTrue(all(METRIC_NAME.search(e) for e in exprs), exprs)

    def test_promtool_checks_the_alert_rules(self):
        tool = promtool()
        if not tool:
            self.skipTest("promtool not installed (Debian: apt-get install promtool, "
                          "or packaging/install-deps.sh): alert rules not checked")
        r = subprocess.run([tool, "check", "rules", ALERTS], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("SUCCESS", r.stdout)
        # The check can fail: the same file with one broken expression is refused.
        with open(ALERTS) as f:
            broken = f.read().replace("fedproxy_last_reload_successful == 0", "fedproxy_last_reload_successful ==", 1)
        bad = os.path.join(self.tmp, "broken-alerts.yaml")
        with open(bad, "w") as f:
            f.write(broken)
        r = subprocess.run([tool, "check", "rules", bad], capture_output=True, text=True, timeout=60)
        self.assertNotEqual(r.returncode, 0, r.stdout)


class AuditWriteFailureTest(unittest.TestCase):
    """Every audit record that cannot be written is counted (audit.path on
    /dev/full: each write fails with ENOSPC), and so is every failed write
    (records, and the retries fedproxy makes every second). What the proxy
    does with the requests meanwhile (audit.on_failure) is
    test_audit_failure.py's business; here they are refused (the default)."""

    @classmethod
    def setUpClass(cls):
        if not os.access("/dev/full", os.W_OK):
            raise unittest.SkipTest("/dev/full is not writable here")
        pki = shared_pki()
        cls.backend = Backend().start()
        cls.proxy = Proxy(policy_config(pki, cls.backend.address, peers=[peer(PEER, PARTNER_URI)],
                                        grants=[grant(pki.grant_id, PEER, ["tasks"])],
                                        audit={"path": "/dev/full"}))
        start_class_proxy(cls)
        cls.ctx = client_context(pki, pki.client_grant)

    @classmethod
    def tearDownClass(cls):
        stop_class_proxy(cls)

    def value(self, name: str) -> float:
        return scrape(self.proxy.admin_port)[1][name].value()

    def test_each_lost_line_is_counted(self):
        lost = lambda: self.value("fedproxy_audit_records_lost_total")  # noqa: E731
        failures = lambda: self.value("fedproxy_audit_write_failures_total")  # noqa: E731
        before = lost()
        self.assertGreaterEqual(before, 1)  # the start event
        failures_before = failures()
        self.assertGreaterEqual(failures_before, before)
        with Conn.open(self.proxy.ingress_port, self.ctx) as c:
            for _ in range(3):
                self.assertEqual(c.request("GET", "/api/v1/tasks/1").status, 503)
        self.assertTrue(wait_until(lambda: lost() == before + 3, 5), lost())
        self.assertGreaterEqual(failures(), failures_before + 3)
        self.assertEqual(self.value("fedproxy_audit_healthy"), 0)
        self.assertTrue(self.proxy.find_logs(lambda r: r.get("msg") == "audit write failed"))


if __name__ == "__main__":
    main()

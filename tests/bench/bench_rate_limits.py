#!/usr/bin/env python3
"""bench_rate_limits: keep-alive throughput with the Redis rate-limit backend
against the local one, in one run (NOT a test: it asserts nothing).

Usage (from the repository root, after a build):

    python3 tests/bench/bench_rate_limits.py                  # c=16 and c=64, 3 rounds: ~2 min
    python3 tests/bench/bench_rate_limits.py --rounds 5 --seconds 10 --conns 16,64
    python3 tests/bench/bench_rate_limits.py --same           # both sides local (checks the harness)

Issue 18's check: keep-alive req/s with `rate_limits.backend: redis` >= 0.9x
the local backend's in the same run, and p99 added <= 0.2 ms.

What it does, all on 127.0.0.1 with ports chosen at run time, every process
stopped by the PID it was started with:
  1. the test PKI, the backend nginx (64-byte body) and one `redis-server
     --save '' --appendonly no` (Debian's package), like compare.py's
     keep-alive mode:
        wrk -> egress -> TLS 1.3 mTLS -> ingress (limits here) -> backend nginx
  2. two fedproxy pairs that differ only in the ingress's `rate_limits`:
        A  {"backend": "local"}
        B  {"backend": "redis", "redis_url": "redis://127.0.0.1:P/0", "replicas": 1}
     The ingress's one grant carries a `rate_limit` (default rps = burst =
     100000: well above what one CPU serves, and low enough that the leases
     come several times a second: batch = rps x 0.1 s) and a `quota`
     (requests_per_day 1e9, bytes_per_day 1e12): both lease paths run, and
     nothing is ever denied (the count of 429s says whether that held);
  3. --rounds rounds, each measuring A and B one after the other (ABBAAB...)
     with the same wrk load (warm-up discarded), so both backends are sampled
     at nearby moments on a VM whose speed drifts;
  4. prints per backend: req/s, p50, p99 (median [min-max] over the rounds),
     non-2xx and 429/503 counts, leases (fedproxy_rate_limit_leases_total),
     the rate-limit state the ingress reported, quota used; then B/A req/s and
     the p99 difference, against the issue's targets (PASS/MISS).

The pairs run at the same time (the idle one costs no CPU). CPU placement as
in compare.py: both proxies of both pairs on --cpu-proxies (default 0), wrk,
the backend nginx, redis-server and this script on --cpu-load (default 1).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from benchlib.common import (REPO, Service, cpu_list, free_port, http_get, machine_info, median,  # noqa: E402
                             proc_cpu_seconds, raise_nofile, run_wrk, summary, tool_version, wait_port)
from benchlib.impls import BODY, HOST, ROUTE, Backend, BenchPki, Endpoint, Fedproxy  # noqa: E402
from compare import impl_alive, log, rotated  # noqa: E402
from fedtest import promtext  # noqa: E402
from fedtest.policy import grant, new_id  # noqa: E402
from fedtest.reload import admin_request  # noqa: E402

TARGET_RATIO = 0.9       # B req/s >= 0.9 x A req/s
TARGET_P99_ADDED_MS = 0.2
RUN_OVERHEAD_S = 1.5     # metrics scrapes and wrk start per run, for the estimate


class DeadlineReached(Exception):
    pass


# --- redis-server -------------------------------------------------------------------

def redis_command(port: int, *args: str, timeout: float = 2.0) -> bytes:
    """One RESP command; returns the raw reply (status, error or bulk string
    payload). Enough for PING and INFO."""
    req = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a.encode()), a.encode()) for a in args)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(req)
        buf = b""
        deadline = time.monotonic() + timeout
        while b"\r\n" not in buf and time.monotonic() < deadline:
            d = s.recv(65536)
            if not d:
                break
            buf += d
        if not buf.startswith(b"$"):
            return buf.split(b"\r\n", 1)[0]
        head, _, rest = buf.partition(b"\r\n")
        n = int(head[1:])
        while len(rest) < n and time.monotonic() < deadline:
            d = s.recv(65536)
            if not d:
                break
            rest += d
        return rest[:n]


def redis_info(port: int) -> dict:
    """INFO all (with commandstats) as a flat dict."""
    try:
        text = redis_command(port, "INFO", "all").decode(errors="replace")
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        k, sep, v = line.partition(":")
        if sep:
            out[k.strip()] = v.strip()
    return out


class Redis:
    """One redis-server in the foreground, no persistence, its dir a temp dir;
    stopped by its PID (benchlib.common.Service)."""

    def __init__(self, cpus: str | None):
        self.port = free_port()
        self.svc = Service("redis", ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                     "--save", "", "--appendonly", "no", "--daemonize", "no",
                                     "--dir", "."], cpus)

    def start(self) -> "Redis":
        self.svc.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if wait_port(self.port, 0.5, self.svc.proc):
                try:
                    if redis_command(self.port, "PING") == b"+PONG":
                        return self
                except OSError:
                    pass
            if not self.svc.alive():
                break
            time.sleep(0.05)
        tail = self.svc.log_tail()
        self.stop()
        raise RuntimeError("redis-server did not start: %s" % tail)

    @property
    def url(self) -> str:
        return "redis://127.0.0.1:%d/0" % self.port

    def stop(self):
        self.svc.stop()
        self.svc.cleanup()


# --- the two fedproxy configurations ------------------------------------------------

class LimitedFedproxy(Fedproxy):
    """impls.Fedproxy whose ingress grant carries a rate limit and a quota, with
    a `rate_limits` block (None = leave it out). The ingress config is
    Fedproxy.start_ingress's, plus those."""

    def __init__(self, *a, label: str, rate_limits: dict | None, rate_limit: dict,
                 quota: dict | None, **kw):
        super().__init__(*a, **kw)
        self.label = label
        self.rate_limits = rate_limits
        self.rate_limit = rate_limit
        self.quota = quota
        self.grant_id = new_id()

    def ingress_grant(self) -> dict:
        g = grant(self.grant_id, "acme-corp", ["tasks"], methods=["GET", "HEAD"],
                  rate_limit=dict(self.rate_limit))
        if self.quota:
            g["quota"] = dict(self.quota)
        return g

    def ingress_config(self) -> dict:
        cfg = super().ingress_config()
        if self.rate_limits is not None:
            cfg["rate_limits"] = dict(self.rate_limits)
        return cfg


def start_pair(impl: LimitedFedproxy):
    """Ingress then egress; a probe request must come back 200 with the body.
    Raises RuntimeError with fedproxy's own words when it refuses the config."""
    ing = impl.start_ingress()
    eg = None
    try:
        eg = impl.start_egress("keepalive", ing.port)
        res = http_get(eg.port, ROUTE, HOST)
        if res[0] != (200, len(BODY)):
            raise RuntimeError("probe through pair %s: %r" % (impl.label, res))
        return eg, ing
    except BaseException:
        if eg is not None:
            eg.stop()
        ing.stop()
        raise


def refusal_reason(err: Exception) -> str:
    """The error lines of fedproxy's stderr tail (JSON log records) in an exception
    from fedtest.proxy, else the message itself."""
    lines: list[str] = []
    for line in str(err).splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and rec.get("level") in ("error", "fatal", "critical"):
            lines.append(str(rec.get("problems") or rec.get("msg")))
    return "\n    ".join(lines) if lines else str(err)


# --- /metrics of an ingress -----------------------------------------------------------

def scrape(ing: Endpoint) -> dict:
    """The rate-limit and quota figures of an ingress's /metrics (absent
    families as None)."""
    try:
        status, body = admin_request(ing.admin_port, "GET", "/metrics")
        if status != 200:
            return {"error": "GET /metrics: %d" % status}
        fams = promtext.parse(body.decode("utf-8"))
    except (OSError, promtext.PromFormatError) as e:
        return {"error": "GET /metrics: %s" % e}

    def val(family, **labels):
        f = fams.get(family)
        return f.value(**labels) if f else None

    state = "n/a"
    f = fams.get("fedproxy_rate_limit_state")
    if f:
        on = [s.labels.get("state") for s in f.samples if s.value == 1]
        state = ",".join(sorted(on)) or "none"
    req = fams.get("fedproxy_requests_total")
    by_status = {}
    if req:
        for s in req.samples:
            st = s.labels.get("status", "?")
            by_status[st] = by_status.get(st, 0) + s.value
    return {"leases": val("fedproxy_rate_limit_leases_total"),
            "backend_up": val("fedproxy_rate_limit_backend_up"),
            "failures": val("fedproxy_rate_limit_backend_failures_total"),
            "state": state,
            "quota_requests": val("fedproxy_quota_used", kind="requests"),
            "quota_bytes": val("fedproxy_quota_used", kind="bytes"),
            "by_status": by_status}


def wait_state(ing: Endpoint, want: str, timeout: float) -> str | None:
    """Poll the ingress's fedproxy_rate_limit_state until it is `want` (the
    Redis connection is made after the start); returns the last state seen."""
    deadline = time.monotonic() + timeout
    state = None
    for _ in range(int(timeout / 0.1) + 1):
        state = scrape(ing).get("state")
        if state == want or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    return state


def delta(after: dict, before: dict, key: str):
    a, b = after.get(key), before.get(key)
    return a - b if a is not None and b is not None else None


def status_delta(after: dict, before: dict, status: str) -> int:
    return int(after.get("by_status", {}).get(status, 0) - before.get("by_status", {}).get(status, 0))


# --- one measured run -------------------------------------------------------------------

def measure(opts, name: str, eg: Endpoint, ing: Endpoint, conns: int) -> dict:
    """Warm-up (discarded) then the measured wrk run through one pair; the
    ingress's counters around both (429/503 over both, leases over the
    measured part)."""
    if not (impl_alive(eg) and impl_alive(ing)):
        raise RuntimeError("pair %s is no longer running" % name)
    url = "http://127.0.0.1:%d%s" % (eg.port, ROUTE)
    m0 = scrape(ing)
    if opts.warmup > 0:
        run_wrk(url, conns, opts.warmup, opts.cpu_load, HOST)
    m1 = scrape(ing)
    c0 = proc_cpu_seconds(ing.pid) + proc_cpu_seconds(eg.pid)
    r = run_wrk(url, conns, opts.seconds, opts.cpu_load, HOST)
    c1 = proc_cpu_seconds(ing.pid) + proc_cpu_seconds(eg.pid)
    m2 = scrape(ing)
    r.pop("raw", None)
    n = r.get("requests", 0)
    r["proxy_cpu_us_per_req"] = (c1 - c0) / n * 1e6 if n else float("nan")
    r["s429"] = status_delta(m2, m0, "429")
    r["s503"] = status_delta(m2, m0, "503")
    r["leases"] = delta(m2, m1, "leases")
    r["state"] = m2.get("state")
    r["failures"] = delta(m2, m0, "failures")
    r["metrics_error"] = m2.get("error") or m0.get("error")
    r["quota_requests"] = m2.get("quota_requests")
    r["quota_bytes"] = m2.get("quota_bytes")
    return r


def fmt_n(v, spec="%d") -> str:
    return "n/a" if v is None or v != v else spec % v


# --- main -----------------------------------------------------------------------------

def default_bin() -> str:
    if os.environ.get("FEDPROXY_BIN"):
        return os.environ["FEDPROXY_BIN"]
    for b in ("build-bench", "build"):
        p = os.path.join(REPO, b, "proxy", "app", "fedproxy")
        if os.access(p, os.X_OK):
            return p
    return os.path.join(REPO, "build-bench", "proxy", "app", "fedproxy")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="See docs/performance.md, \"Shared rate limits (Redis backend)\".")
    ap.add_argument("--fedproxy-bin", default=None,
                    help="fedproxy binary; default $FEDPROXY_BIN, else build-bench/ or build/")
    ap.add_argument("--rounds", type=int, default=3, help="rounds, each measuring A and B; default 3")
    ap.add_argument("--seconds", type=int, default=8, help="measured seconds per wrk run; default 8")
    ap.add_argument("--warmup", type=int, default=2, help="discarded warm-up seconds before each run; default 2")
    ap.add_argument("--conns", default="16,64",
                    help="keep-alive wrk connections, comma-separated; default 16,64")
    ap.add_argument("--rps", type=float, default=100000,
                    help="the grant's rate_limit.rps (burst the same); default 100000 (max 1e6)")
    ap.add_argument("--quota-requests", type=int, default=10**9,
                    help="quota.requests_per_day; 0 = no quota; default 1e9")
    ap.add_argument("--quota-bytes", type=int, default=10**12,
                    help="quota.bytes_per_day; 0 = none; default 1e12")
    ap.add_argument("--replicas", type=int, default=1, help="rate_limits.replicas of B; default 1")
    ap.add_argument("--same", action="store_true",
                    help="B is local too (A/A: the harness's own spread; no Redis backend needed)")
    ap.add_argument("--pre-issue18", action="store_true",
                    help="leave out the rate_limits block and the quota (a fedproxy built before "
                         "issue 18 refuses them); implies --same")
    ap.add_argument("--cpu-proxies", default="0", help="taskset CPU list of the four proxies; default 0")
    ap.add_argument("--cpu-load", default="1",
                    help="CPU list of wrk, the backend nginx, redis-server and this script; default 1")
    ap.add_argument("--cpu-redis", default=None, help="CPU list of redis-server; default --cpu-load")
    opts = ap.parse_args()

    opts.rounds = max(1, min(opts.rounds, 50))
    opts.seconds = max(1, min(opts.seconds, 120))
    opts.warmup = max(0, min(opts.warmup, 60))
    opts.conns = [max(1, min(int(c), 4000)) for c in opts.conns.split(",") if c.strip()]
    opts.rps = max(1.0, min(opts.rps, 1e6))
    opts.replicas = max(1, min(opts.replicas, 1000))
    if opts.pre_issue18:
        opts.same = True
    opts.cpu_redis = opts.cpu_redis or opts.cpu_load
    avail = os.sched_getaffinity(0)
    for spec in (opts.cpu_proxies, opts.cpu_load, opts.cpu_redis):
        if not cpu_list(spec) <= avail:
            sys.exit("bench_rate_limits: CPU list %r not available (have %s)" % (spec, sorted(avail)))
    fb = os.path.abspath(opts.fedproxy_bin or default_bin())
    if not os.access(fb, os.X_OK):
        sys.exit("bench_rate_limits: %s not found; build it (meson setup build-bench --buildtype=release "
                 "-Dwerror=false && ninja -C build-bench proxy/app/fedproxy) or pass --fedproxy-bin" % fb)
    os.environ["FEDPROXY_BIN"] = fb
    for tool in ("wrk", "nginx", "taskset", "openssl", "redis-server"):
        if not which(tool):
            sys.exit("bench_rate_limits: %s not found (Debian packages: wrk nginx util-linux openssl "
                     "redis-server)" % tool)

    def on_term(_sig, _frm):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    raise_nofile(8 * max(opts.conns) + 1024)
    os.sched_setaffinity(0, cpu_list(opts.cpu_load))

    per_run = opts.seconds + opts.warmup + RUN_OVERHEAD_S
    est = 15 + opts.rounds * 2 * len(opts.conns) * per_run
    # Past this, no new run starts (each wrk run is bounded by itself).
    hard_deadline = time.monotonic() + est * 1.5 + 30
    log("fedproxy %s; %d round(s) x %d conn level(s) x 2 backends, %d s (+%d s warm-up) each; about %d s"
        % (fb, opts.rounds, len(opts.conns), opts.seconds, opts.warmup, est))

    rate_limit = {"rps": opts.rps, "burst": int(min(1e6, max(1, opts.rps)))}
    quota = {}
    if opts.quota_requests > 0:
        quota["requests_per_day"] = opts.quota_requests
    if opts.quota_bytes > 0:
        quota["bytes_per_day"] = opts.quota_bytes
    if opts.pre_issue18:
        quota = {}

    machine = machine_info()
    bpki = BenchPki()
    backend = redis = None
    pairs: dict = {}
    results: dict = {}
    redis_before = redis_after = {}
    problems: list[str] = []
    try:
        backend = Backend(opts.cpu_load).start()
        redis = Redis(opts.cpu_redis).start()
        local = None if opts.pre_issue18 else {"backend": "local"}
        shared = local if opts.same else {"backend": "redis", "redis_url": redis.url,
                                          "replicas": opts.replicas}
        sides = {"A": LimitedFedproxy(bpki, backend.port, opts.cpu_proxies, opts.cpu_proxies, label="A",
                                      rate_limits=local, rate_limit=rate_limit, quota=quota or None),
                 "B": LimitedFedproxy(bpki, backend.port, opts.cpu_proxies, opts.cpu_proxies, label="B",
                                      rate_limits=shared, rate_limit=rate_limit, quota=quota or None)}
        for name, impl in sides.items():
            log("config %s: rate_limits %s; grant rate_limit %s, quota %s"
                % (name, impl.rate_limits, impl.rate_limit, impl.quota))
            try:
                pairs[name] = start_pair(impl)
            except RuntimeError as e:
                what = "rate_limits.backend %s" % (impl.rate_limits or {}).get("backend", "(none)")
                print("\nbench_rate_limits: fedproxy refused configuration %s (%s):\n    %s\n"
                      % (name, what, refusal_reason(e)), file=sys.stderr)
                if name == "B" and not opts.same:
                    print("This fedproxy has no Redis rate-limit backend (issue 18, SPEC §14)? "
                          "Build a tree that has it, or run with --same to check the harness.",
                          file=sys.stderr)
                elif not opts.pre_issue18:
                    print("A fedproxy built before issue 18 knows neither rate_limits nor quota: "
                          "--pre-issue18 leaves them out.", file=sys.stderr)
                return 2
        if not opts.same:
            state = wait_state(pairs["B"][1], "shared", 5.0)
            log("B's rate-limit state before the rounds: %s" % state)
            if state != "shared":
                problems.append("B's rate-limit state was %s, not \"shared\", 5 s after its start" % state)
        redis_before = redis_info(redis.port)

        for rnd in range(opts.rounds):
            for conns in opts.conns:
                for name in rotated(["A", "B"], rnd):
                    if time.monotonic() > hard_deadline:
                        raise DeadlineReached("deadline reached: round %d and later not (fully) measured"
                                              % (rnd + 1))
                    eg, ing = pairs[name]
                    try:
                        r = measure(opts, name, eg, ing, conns)
                    except (RuntimeError, OSError) as e:
                        log("round %d %s c=%d failed: %s" % (rnd + 1, name, conns, e))
                        problems.append("round %d %s c=%d: %s\n    %s" % (rnd + 1, name, conns, e,
                                                                    ing.log_tail()[-600:]))
                        continue
                    r["round"] = rnd
                    results.setdefault((name, conns), []).append(r)
                    log("round %d %s c=%-3d %8.0f req/s  p50 %.2f ms  p99 %.2f ms  non-2xx %d  429 %d  503 %d  "
                        "leases %s  state %s  %.0f us CPU/req"
                        % (rnd + 1, name, conns, r["rps"], r["p50"], r["p99"], r["errors"], r["s429"],
                           r["s503"], fmt_n(r["leases"], "%.0f"), r["state"], r["proxy_cpu_us_per_req"]))
                    if r["metrics_error"]:
                        problems.append("%s: %s" % (name, r["metrics_error"]))
    except DeadlineReached as e:
        problems.append(str(e))
    except KeyboardInterrupt:
        log("interrupted: stopping what was started")
        raise
    finally:
        if redis is not None:
            redis_after = redis_info(redis.port)
        for eg, ing in pairs.values():
            eg.stop()
            ing.stop()
        if redis is not None:
            redis.stop()
        if backend is not None:
            backend.stop()
        bpki.cleanup()

    report(opts, machine, fb, sides, results, redis_before, redis_after, problems)
    return 0 if results else 1


def which(tool: str) -> str | None:
    return shutil.which(tool) or (("/usr/sbin/" + tool) if os.access("/usr/sbin/" + tool, os.X_OK) else None)


def command_calls(before: dict, after: dict) -> str:
    """' (evalsha 120, ...)': calls per command between two INFO all, without
    this script's own INFO."""
    def calls(info, key):
        for part in info.get(key, "").split(","):
            k, _, v = part.partition("=")
            if k == "calls":
                return int(v)
        return 0
    got = []
    for key in sorted(after):
        if key.startswith("cmdstat_") and key != "cmdstat_info":
            n = calls(after, key) - calls(before, key)
            if n:
                got.append("%s %d" % (key[len("cmdstat_"):], n))
    return " (%s)" % ", ".join(got) if got else ""


def report(opts, machine, fb, sides, results, redis_before, redis_after, problems) -> None:
    ver = tool_version([fb, "version"])
    print()
    print("command: python3 tests/bench/bench_rate_limits.py %s" % " ".join(sys.argv[1:]))
    print("machine: %s, %s CPUs, kernel %s, load average at start %s"
          % (machine["cpu"], machine["nproc"], machine["kernel"],
             " ".join("%.2f" % x for x in machine["loadavg_at_start"])))
    redis_ver = tool_version(["redis-server", "--version"], r"(?<=v=)\S+")
    print("versions: %s; redis-server %s; %s" % (ver, redis_ver, tool_version(["wrk", "-v"], r"wrk \S+")))
    print("placement: the 4 proxies (2 pairs, 1 worker each) CPU %s; wrk, backend nginx, this script CPU %s; "
          "redis-server CPU %s" % (opts.cpu_proxies, opts.cpu_load, opts.cpu_redis))
    print("load: wrk -t1 keep-alive -> egress -> mTLS -> ingress -> nginx (64-byte body); "
          "%d round(s) of %d s (+%d s warm-up) per backend and level, interleaved"
          % (opts.rounds, opts.seconds, opts.warmup))
    for name, impl in sides.items():
        print("config %s: rate_limits %s; grant rate_limit %s; quota %s"
              % (name, impl.rate_limits, impl.rate_limit, impl.quota))
    print()
    print("| conns | backend | req/s | p50 (ms) | p99 (ms) | proxy CPU/req (µs) | non-2xx | 429 | 503 "
          "| leases/run | state |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    checks = []
    for conns in opts.conns:
        agg = {}
        for name in ("A", "B"):
            runs = results.get((name, conns), [])
            if not runs:
                continue
            a = {k: summary([r[k] for r in runs]) for k in ("rps", "p50", "p99", "proxy_cpu_us_per_req")}
            leases = [r["leases"] for r in runs if r["leases"] is not None]
            states = sorted(set(str(r["state"]) for r in runs))
            a["errors"] = sum(max(0, r["errors"]) for r in runs)
            a["s429"] = sum(r["s429"] for r in runs)
            a["s503"] = sum(r["s503"] for r in runs)
            agg[name] = a
            label = "%s %s" % (name, (sides[name].rate_limits or {}).get("backend", "(none)"))
            print("| %d | %s | %s [%s-%s] | %.2f [%.2f-%.2f] | %.2f [%.2f-%.2f] | %.0f | %d | %d | %d | %s | %s |"
                  % (conns, label, "{:,.0f}".format(a["rps"]["median"]), "{:,.0f}".format(a["rps"]["min"]),
                     "{:,.0f}".format(a["rps"]["max"]), a["p50"]["median"], a["p50"]["min"], a["p50"]["max"],
                     a["p99"]["median"], a["p99"]["min"], a["p99"]["max"], a["proxy_cpu_us_per_req"]["median"],
                     a["errors"], a["s429"], a["s503"],
                     ("%s [%s]" % (fmt_n(summary(leases)["median"], "%.0f"),
                                   ",".join("%.0f" % x for x in leases))) if leases else "n/a",
                     "/".join(states)))
        if "A" in agg and "B" in agg:
            # The check uses the rounds' own ratios and differences: A and B of
            # one round ran next to each other, so the machine's drift from
            # round to round cancels out; the ratio of the medians is shown too.
            b_of = {r["round"]: r for r in results[("B", conns)]}
            pairs = [(a, b_of[a["round"]]) for a in results[("A", conns)] if a["round"] in b_of]
            ratios = [b["rps"] / a["rps"] for a, b in pairs]
            diffs = [b["p99"] - a["p99"] for a, b in pairs]
            ratio, added = median(ratios), median(diffs)
            of_medians = (agg["B"]["rps"]["median"] / agg["A"]["rps"]["median"],
                          agg["B"]["p99"]["median"] - agg["A"]["p99"]["median"])
            per_round = ", ".join("%.3f" % x for x in ratios)
            per_p99 = ", ".join("%+.2f" % x for x in diffs)
            denied = agg["A"]["s429"] + agg["B"]["s429"] + agg["A"]["s503"] + agg["B"]["s503"]
            # How far A's own p99 moved between its rounds: the resolution of
            # the p99 check at this moment on this machine.
            spread = max(agg["A"]["p99"]["max"] - agg["A"]["p99"]["min"],
                         agg["B"]["p99"]["max"] - agg["B"]["p99"]["min"])
            checks.append((conns, ratio, per_round, added, per_p99, denied, spread, of_medians))
    print()
    for conns, ratio, per_round, added, per_p99, denied, spread, of_medians in checks:
        print("c=%d: B/A req/s %.3f, median of the rounds' ratios (%s; ratio of the medians %.3f): %s "
              "(target >= %.1f)" % (conns, ratio, per_round, of_medians[0],
                                    "PASS" if ratio >= TARGET_RATIO else "MISS", TARGET_RATIO))
        print("c=%d: p99 added %+.2f ms, median of the rounds' B - A (%s; difference of the medians %+.2f): %s "
              "(target <= %.1f ms)" % (conns, added, per_p99, of_medians[1],
                                       "PASS" if added <= TARGET_P99_ADDED_MS else "MISS", TARGET_P99_ADDED_MS))
        if spread > TARGET_P99_ADDED_MS:
            print("c=%d: note: one backend's own p99 moved by %.2f ms between its rounds: more than the "
                  "%.1f ms the check resolves (a busy machine? compare with an A/A run, --same)"
                  % (conns, spread, TARGET_P99_ADDED_MS))
        if denied:
            print("c=%d: %d responses 429 or 503 - the limits were meant never to deny: the figures are not "
                  "comparable" % (conns, denied))
    last_b = [r for (n, _), rs in results.items() if n == "B" for r in rs]
    if last_b:
        q = last_b[-1]
        print("B quota used at the end: requests %s, bytes %s"
              % (fmt_n(q["quota_requests"], "%.0f"), fmt_n(q["quota_bytes"], "%.0f")))
    if redis_before and redis_after:
        try:
            # minus 1: the first INFO itself
            n = int(redis_after["total_commands_processed"]) - int(redis_before["total_commands_processed"]) - 1
            print("redis-server %s: %d commands executed during the rounds, the scripts' inner calls "
                  "included%s"
                  % (redis_after.get("redis_version", "?"), n, command_calls(redis_before, redis_after)))
        except (KeyError, ValueError):
            pass
    for name in ("B",):
        states = set(str(r["state"]) for (n, _), rs in results.items() if n == name for r in rs)
        if not opts.same and states - {"shared"}:
            problems.append("B reported rate-limit state %s (not only \"shared\"): its runs did not all use "
                            "Redis" % "/".join(sorted(states)))
    if problems:
        print()
        print("Problems seen:")
        for p in problems:
            print("  - " + p)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)

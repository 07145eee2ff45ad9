#!/usr/bin/env python3
"""compare: fedproxy, nginx and HAProxy in the same topology, side by side, in one run.

    python3 tests/bench/compare.py              # full run (about 13 minutes on 2 cores)
    python3 tests/bench/compare.py --quick      # every figure once, short phases (~3 minutes)
    python3 tests/bench/compare.py --only fedproxy,haproxy --runs 5 --seconds 10

A benchmark, not a test: it asserts nothing (exit 0 even when a target is
missed; exit 1 only when it could not measure). Topology, for every
implementation, all on 127.0.0.1 with ports chosen at run time:

    wrk -> egress -> TLS 1.3 mTLS, ECDSA P-256 -> ingress -> backend nginx (64-byte body)

Figures (each the median of --runs runs, with min-max; "ratio" is the
implementation's median over the best anchor's median, anchors = nginx, HAProxy):
  * keep-alive: req/s, p50, p99 at 16, 64 and 256 wrk connections;
  * handshake-bound: a new egress->ingress mTLS connection per request (wrk
    itself keeps its connections to the egress), without and with resumption;
  * 1 MiB bodies: MB/s with 4 wrk connections;
  * RSS per idle mTLS connection at the ingress (--idle-conns held open by
    Python ssl clients that present the egress certificate);
  * the mbedTLS ceilings on the proxies' CPU, measured in the same run by
    tests/bench/tls_ceiling (server+client CPU per full / resumed handshake,
    AEAD MB/s per suite), so "% of ceiling" is a ratio of two measurements;
  * what each implementation negotiated between its egress and ingress (suite,
    group, resumption), read from the cleartext hellos by a probe relay.

Interleaved: per mode, the pairs of all implementations run at once and each
run measures them in turn (rotating order), then a slice of the ceiling, so
that a machine whose speed drifts over minutes moves them all alike.

CPU placement (taskset, identical for every implementation; see --cpu-*):
egress and ingress share CPU 0 (the "per core" figures: one worker each),
wrk, the backend nginx and this script (and its idle-connection clients) use
CPU 1. tls_ceiling runs on the ingress CPU.

Every phase is bounded in time; every process started here is stopped by its
PID; temp dirs are removed. Results: a markdown table on stdout, and JSON (plus
the same markdown) under build-bench/bench-results/ unless --json is given.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from benchlib.common import (REPO, cpu_busy, cpu_jiffies, cpu_list, http_get,  # noqa: E402
                             machine_info, proc_cpu_seconds, raise_nofile, run_wrk, summary,
                             taskset_prefix, tool_version, tree_rss_kib)
from benchlib.impls import (BIG_BYTES, BIG_PATH, BODY, HOST, IMPLEMENTATIONS, MODES, ROUTE,  # noqa: E402
                            Backend, BenchPki)
from benchlib.tlssniff import SniffRelay  # noqa: E402

ANCHORS = ("nginx", "haproxy")
TARGET_KA_RATIO = 1.2
TARGET_CEILING = 0.85
TARGET_RSS_KIB = 48.0


def log(msg: str) -> None:
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


# --- setup: tools, build -----------------------------------------------------------------

def ensure_tools(impls: list[str]) -> None:
    need = {"wrk": "wrk", "nginx": "nginx", "taskset": "util-linux", "openssl": "openssl"}
    if "haproxy" in impls:
        need["haproxy"] = "haproxy"
    missing = [t for t in need if not (shutil.which(t) or os.access("/usr/sbin/" + t, os.X_OK))]
    if not missing:
        return
    script = os.path.join(REPO, "packaging", "install-deps.sh")
    if os.geteuid() == 0 and os.path.exists(script):
        log("missing %s: running FEDPROXY_INSTALL_BENCH=1 %s" % (", ".join(missing), script))
        env = dict(os.environ, FEDPROXY_INSTALL_BENCH="1")
        subprocess.run(["bash", script], env=env, check=True, timeout=1800)
        missing = [t for t in need if not (shutil.which(t) or os.access("/usr/sbin/" + t, os.X_OK))]
        if not missing:
            return
    pkgs = " ".join(sorted(set(need[t] for t in missing)))
    sys.exit("compare: missing tools: %s\n  install them as root with\n"
             "    FEDPROXY_INSTALL_BENCH=1 packaging/install-deps.sh\n"
             "  or just\n    apt-get install -y --no-install-recommends %s" % (", ".join(missing), pkgs))


def ensure_build(opts) -> None:
    build = os.path.abspath(opts.build_dir)
    fb = opts.fedproxy_bin or os.path.join(build, "proxy", "app", "fedproxy")
    tc = opts.tls_ceiling_bin or os.path.join(build, "tests", "bench", "tls_ceiling")
    targets = []
    if not opts.fedproxy_bin:
        targets.append("proxy/app/fedproxy")
    if not opts.tls_ceiling_bin:
        targets.append("tests/bench/tls_ceiling")
    if targets and not opts.no_build:
        if not os.path.exists(os.path.join(build, "build.ninja")):
            # werror off: a release (-O3) build with GCC 12 trips false-positive
            # -Wrestrict warnings that -O2 does not; a benchmark must not stop there.
            log("meson setup %s --buildtype=release -Dwerror=false" % build)
            subprocess.run(["meson", "setup", build, "--buildtype=release", "-Dwerror=false"],
                           cwd=REPO, check=True, timeout=600, stdout=sys.stderr)
        log("ninja -C %s %s" % (build, " ".join(targets)))
        subprocess.run(["ninja", "-C", build] + targets, cwd=REPO, check=True, timeout=3600, stdout=sys.stderr)
    for p in (fb, tc):
        if not os.access(p, os.X_OK):
            sys.exit("compare: %s not found (build it, or pass --fedproxy-bin / --tls-ceiling-bin)" % p)
    opts.fedproxy_bin, opts.tls_ceiling_bin = os.path.abspath(fb), os.path.abspath(tc)
    os.environ["FEDPROXY_BIN"] = opts.fedproxy_bin


# --- measurements ----------------------------------------------------------------------

def run_ceiling(opts, bpki: BenchPki, only: str, reps: int) -> dict:
    """One slice of the mbedTLS ceilings (only = "handshake" or "aead")."""
    cmd = taskset_prefix(opts.cpu_ingress) + [
        opts.tls_ceiling_bin, "--only", only, "--reps", str(reps), "--min-seconds", str(opts.ceiling_seconds),
        "--ca", bpki.ca, "--server-cert", bpki.ingress_crt, "--server-key", bpki.ingress_key,
        "--client-cert", bpki.egress_crt, "--client-key", bpki.egress_key]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=600)
    if p.returncode != 0:
        raise RuntimeError("tls_ceiling failed: %s" % p.stderr.strip())
    return json.loads(p.stdout)


def merge_ceilings(slices: list[dict]) -> dict:
    """The slices measured during the runs, as one ceiling: for every figure the
    median of the slices' medians, the min of their mins, the max of their maxes;
    reps = how many repetitions went into it in all."""
    def merge(parts: list):
        dicts = [x for x in parts if isinstance(x, dict)]
        if not dicts:
            return parts[0]
        if "median" in dicts[0]:
            return {"median": statistics.median(d["median"] for d in dicts),
                    "min": min(d["min"] for d in dicts), "max": max(d["max"] for d in dicts)}
        keys = []
        for d in dicts:
            keys += [k for k in d if k not in keys]
        return {k: merge([d[k] for d in dicts if k in d]) for k in keys}
    if not slices:
        return {}
    out = merge(slices)
    out["reps"] = sum(int(c.get("reps", 0)) for c in slices if "handshake" in c)
    out["aead_reps"] = sum(int(c.get("reps", 0)) for c in slices if "aead" in c)
    out["slices"] = len(slices)
    return out


def probe_pair(impl, mode: str, requests: int = 6) -> dict:
    """Ingress + a relay that reads the hellos + an egress pointed at the relay;
    `requests` GETs over one keep-alive client connection. Not measured."""
    ing = impl.start_ingress()
    relay = SniffRelay(ing.port).start()
    eg = None
    out: dict = {"mode": mode}
    try:
        eg = impl.start_egress(mode, relay.port)
        res = http_get(eg.port, ROUTE, HOST, keepalive_count=requests)
        out["statuses"] = sorted(set(s for s, _ in res))
        out["body_ok"] = all(s == 200 and n == len(BODY) for s, n in res)
        time.sleep(0.3)
    except (OSError, RuntimeError, ValueError) as e:
        out["error"] = str(e)
    finally:
        if eg is not None:
            eg.stop()
        relay.stop()
        ing.stop()
    conns = [c for c in relay.results() if c.get("suite")]
    out["connections"] = len(conns)
    out["resumed"] = sum(1 for c in conns if c.get("resumed"))
    out["offered_psk"] = sum(1 for c in conns if c.get("offered_psk"))
    out["suites"] = sorted(set(c["suite"] for c in conns))
    out["groups"] = sorted(set(str(c.get("group")) for c in conns))
    out["versions"] = sorted(set(c.get("version", "?") for c in conns))
    out["hello_retry"] = sum(1 for c in conns if c.get("hello_retry"))
    out["client_offer"] = conns[0].get("offered_suites") if conns else []
    out["client_key_shares"] = conns[0].get("key_shares") if conns else []
    warn = []
    if mode == "keepalive" and out["connections"] > 2:
        warn.append("%d connections for %d keep-alive requests" % (out["connections"], requests))
    if mode != "keepalive" and out["connections"] < requests:
        warn.append("only %d connections for %d requests: not one per request" % (out["connections"], requests))
    if mode == "hs_full" and out["resumed"]:
        warn.append("%d connections resumed although resumption is off" % out["resumed"])
    if mode == "hs_resumed" and out["resumed"] < max(1, out["connections"] - 2):
        warn.append("only %d of %d connections resumed" % (out["resumed"], out["connections"]))
    if not out.get("body_ok"):
        warn.append("probe responses not all 200 with the 64-byte body: %s" % out.get("statuses", out.get("error")))
    out["warnings"] = warn
    return out


def timed_wrk(opts, eg_port, ing, eg, path, conns, backend_pid=None):
    """Warm-up (discarded), then the measured wrk run, with CPU accounting: the
    proxies' own CPU time (per request and as a share of the run), wrk's and the
    backend's, and how busy each CPU was (every process on the machine: on a
    busy machine the difference shows how much was foreign)."""
    url = "http://127.0.0.1:%d%s" % (eg_port, path)
    if opts.warmup > 0:
        run_wrk(url, conns, opts.warmup, opts.cpu_load, HOST)
    pids = [ing.pid, eg.pid]
    c0 = sum(proc_cpu_seconds(p) for p in pids)
    b0 = proc_cpu_seconds(backend_pid) if backend_pid else 0.0
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    j0 = cpu_jiffies()
    t0 = time.monotonic()
    r = run_wrk(url, conns, opts.seconds, opts.cpu_load, HOST)
    dt = time.monotonic() - t0
    j1 = cpu_jiffies()
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    c1 = sum(proc_cpu_seconds(p) for p in pids)
    b1 = proc_cpu_seconds(backend_pid) if backend_pid else 0.0
    r["proxy_cpu_s"] = c1 - c0
    r["proxy_cpu_util"] = (c1 - c0) / dt if dt > 0 else float("nan")
    n = r.get("requests", 0)
    r["proxy_cpu_us_per_req"] = (c1 - c0) / n * 1e6 if n else float("nan")
    wrk_cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    r["load_cpu_util"] = (wrk_cpu + (b1 - b0)) / dt if dt > 0 else float("nan")
    r["cpu_busy"] = {str(k): round(v, 3) for k, v in cpu_busy(j0, j1).items()}
    if not opts.verbose:
        r.pop("raw", None)
    return r


def cpu_note(r: dict) -> str:
    busy = " ".join("cpu%s %.0f%%" % (k, 100 * v) for k, v in sorted(r.get("cpu_busy", {}).items()))
    return "proxies %.0f%% CPU (%.0f us/req), load %.0f%%; busy %s" % (
        100 * r["proxy_cpu_util"], r["proxy_cpu_us_per_req"], 100 * r["load_cpu_util"], busy)


def start_pair(impl, mode: str, record):
    """Start the pair in `mode` and check it answers (the 64-byte body; in
    keep-alive mode the 1 MiB body too). Returns (egress, ingress)."""
    ing = impl.start_ingress()
    eg = None
    try:
        eg = impl.start_egress(mode, ing.port)
        bad = ing.affinity_problems() + eg.affinity_problems()
        if bad:
            record("placement_problems", bad)
        res = http_get(eg.port, ROUTE, HOST)
        if res[0] != (200, len(BODY)):
            raise RuntimeError("probe through %s %s: %r" % (impl.name, mode, res))
        if mode == "keepalive":
            res = http_get(eg.port, BIG_PATH, HOST)
            if res[0] != (200, BIG_BYTES):
                raise RuntimeError("1 MiB probe through %s: %r" % (impl.name, res))
        return eg, ing
    except BaseException:
        if eg is not None:
            eg.stop()
        ing.stop()
        raise


def measure_pair(opts, impl, mode, eg, ing, record):
    """One run of the figures of `mode` through a running pair."""
    if not (impl_alive(eg) and impl_alive(ing)):
        raise RuntimeError("%s %s pair is no longer running" % (impl.name, mode))
    if mode == "keepalive":
        for c in opts.conns:
            r = timed_wrk(opts, eg.port, ing, eg, ROUTE, c, opts.backend_pid)
            record("ka_c%d" % c, r)
            log("  %-8s keep-alive c=%-3d %9.0f req/s  p50 %.2f ms  p99 %.2f ms  errors %d  %s"
                % (impl.name, c, r["rps"], r["p50"], r["p99"], r["errors"], cpu_note(r)))
        r = timed_wrk(opts, eg.port, ing, eg, BIG_PATH, opts.big_conns, opts.backend_pid)
        r["MBps"] = r["rps"] * BIG_BYTES / 1e6
        record("big", r)
        log("  %-8s 1 MiB c=%d %9.1f MB/s  errors %d  %s"
            % (impl.name, opts.big_conns, r["MBps"], r["errors"], cpu_note(r)))
    else:
        r = timed_wrk(opts, eg.port, ing, eg, ROUTE, opts.hs_conns, opts.backend_pid)
        record(mode, r)
        log("  %-8s %-10s c=%d %9.0f req/s  p99 %.2f ms  errors %d  %s"
            % (impl.name, mode, opts.hs_conns, r["rps"], r["p99"], r["errors"], cpu_note(r)))


def measure_direct(opts, backend_port: int, direct: dict) -> None:
    """One run of wrk straight at the backend (the load side's own ceiling)."""
    for c in opts.conns:
        r = run_wrk("http://127.0.0.1:%d%s" % (backend_port, ROUTE), c, opts.seconds, opts.cpu_load)
        if not opts.verbose:
            r.pop("raw", None)
        direct.setdefault("ka_c%d" % c, []).append(r)
        log("  backend direct c=%-3d %9.0f req/s" % (c, r["rps"]))
    r = run_wrk("http://127.0.0.1:%d%s" % (backend_port, BIG_PATH), opts.big_conns, opts.seconds, opts.cpu_load)
    r["MBps"] = r["rps"] * BIG_BYTES / 1e6
    if not opts.verbose:
        r.pop("raw", None)
    direct.setdefault("big", []).append(r)


def rotated(items: list, run: int) -> list:
    """items starting at position run (mod len): who goes first changes every run."""
    k = run % len(items)
    return items[k:] + items[:k]


def measure_idle_rss(opts, impl, bpki: BenchPki) -> dict:
    """RSS per idle mTLS connection at the ingress: --idle-conns connections, each
    with a completed handshake (the client certificate verified), held open."""
    ing = impl.start_ingress()
    socks = []
    try:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.load_verify_locations(bpki.ca)
        ctx.load_cert_chain(bpki.egress_crt, bpki.egress_key)
        http_get(ing.port, ROUTE, HOST, ssl_ctx=ctx)  # one full exchange before the baseline
        time.sleep(0.5)
        before = tree_rss_kib(ing.pid)
        deadline = time.monotonic() + opts.idle_timeout
        failed = 0
        for _ in range(opts.idle_conns):
            if time.monotonic() > deadline:
                break
            try:
                raw = socket.create_connection(("127.0.0.1", ing.port), timeout=10)
                s = ctx.wrap_socket(raw, server_hostname="localhost")
                socks.append(s)
            except OSError:
                failed += 1
        # TLS 1.3: the server verifies the client's certificate after the
        # client is done; let it catch up before reading its RSS.
        time.sleep(1.5)
        n = len(socks)
        after = tree_rss_kib(ing.pid)
        for s in socks:
            if time.monotonic() > deadline:
                break
            s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (ROUTE, HOST)).encode())
        got = 0
        for s in socks:
            if time.monotonic() > deadline:
                break
            buf = b""
            try:
                while len(buf) < 4096 and not buf.endswith(BODY.encode()):
                    d = s.recv(4096)
                    if not d:
                        break
                    buf += d
                got += buf.startswith(b"HTTP/1.1 200")
            except OSError:
                pass
        time.sleep(1.0)
        after_req = tree_rss_kib(ing.pid)
        alive = impl_alive(ing)
        return {"conns": n, "failed": failed, "rss_before_kib": before, "rss_after_kib": after,
                "rss_after_request_kib": after_req, "responses_200": got,
                "kib_per_conn": (after - before) / n if n else float("nan"),
                "kib_per_conn_after_request": (after_req - before) / n if n else float("nan"),
                "ingress_alive": alive}
    finally:
        for s in socks:
            try:
                s.close()
            except OSError:
                pass
        ing.stop()


def impl_alive(ep) -> bool:
    try:
        os.kill(ep.pid, 0)
        return True
    except OSError:
        return False


# --- aggregation and output -------------------------------------------------------------

def build_figures(opts):
    """[(key, label, unit, higher_is_better, (result group, field))]"""
    f = []
    for c in opts.conns:
        k = "ka_c%d" % c
        f.append((k + ".rps", "keep-alive c=%d" % c, "req/s", True, (k, "rps")))
        f.append((k + ".p50", "keep-alive c=%d: p50" % c, "ms", False, (k, "p50")))
        f.append((k + ".p99", "keep-alive c=%d: p99" % c, "ms", False, (k, "p99")))
        f.append((k + ".cpu", "keep-alive c=%d: proxy CPU per request" % c, "us", False,
                  (k, "proxy_cpu_us_per_req")))
    for key, what in (("hs_full", "no resumption"), ("hs_resumed", "resumption")):
        f.append((key + ".rps", "handshake-bound, %s" % what, "req/s", True, (key, "rps")))
        f.append((key + ".p99", "handshake-bound, %s: p99" % what, "ms", False, (key, "p99")))
        f.append((key + ".cpu", "handshake-bound, %s: proxy CPU per request" % what, "us", False,
                  (key, "proxy_cpu_us_per_req")))
    f.append(("big.MBps", "1 MiB bodies, %d conns" % opts.big_conns, "MB/s", True, ("big", "MBps")))
    f.append(("big.cpu", "1 MiB bodies: proxy CPU per response", "us", False, ("big", "proxy_cpu_us_per_req")))
    f.append(("rss.kib_per_conn", "RSS per idle mTLS conn (after handshake)", "KiB", False,
              ("rss", "kib_per_conn")))
    f.append(("rss.kib_per_conn_after_request", "RSS per idle mTLS conn (after 1 request)", "KiB", False,
              ("rss", "kib_per_conn_after_request")))
    return f


def fmt(v: float, unit: str) -> str:
    if v != v:
        return "n/a"
    if unit in ("req/s", "us"):
        return "{:,.0f}".format(v)
    if unit in ("MB/s", "KiB"):
        return "{:,.1f}".format(v)
    if unit == "ms":
        return "%.2f" % v
    return "%.3g" % v


def aggregate(results, figures, impls):
    """results[impl][key] = list of per-run dicts -> agg[fig_key][impl] = summary."""
    agg = {}
    for key, _label, _unit, _hib, (group, field) in figures:
        agg[key] = {}
        for name in impls:
            runs = results.get(name, {}).get(group, [])
            vals = [r.get(field, float("nan")) for r in runs]
            s = summary(vals)
            s["errors"] = sum(max(0, r.get("errors", 0)) for r in runs if isinstance(r, dict))
            agg[key][name] = s
    return agg


def best_anchor(agg_fig: dict, hib: bool):
    cands = [(n, s["median"]) for n, s in agg_fig.items() if n in ANCHORS and s["median"] == s["median"]]
    if not cands:
        return None, float("nan")
    return (max if hib else min)(cands, key=lambda x: x[1])


def pair_cpus(opts) -> tuple[int, int, bool]:
    e, i = cpu_list(opts.cpu_egress), cpu_list(opts.cpu_ingress)
    return len(e), len(i), e == i


def hs_ceiling(ceiling: dict, kind: str, opts) -> dict:
    h = ceiling["handshake"][kind]
    s, c = h["server_cpu_us"]["median"], h["client_cpu_us"]["median"]
    ne, ni, shared = pair_cpus(opts)
    if shared:
        rate = ni * 1e6 / (s + c)
        how = ("egress and ingress share %d CPU%s: %d x 10^6 / (server %.0f µs + client %.0f µs)"
               % (ni, "s" if ni > 1 else "", ni, s, c))
    else:
        rate = min(ni * 1e6 / s, ne * 1e6 / c)
        how = "ingress on %d CPU(s), egress on %d: min(%d x 10^6 / %.0f µs, %d x 10^6 / %.0f µs)" % (ni, ne, ni, s, ne, c)
    return {"rate": rate, "server_us": s, "client_us": c, "how": how,
            "server_only_rate_per_core": 1e6 / s}


def aead_ceiling(ceiling: dict, suite: str, opts) -> dict | None:
    a = ceiling.get("aead", {}).get(suite)
    if not a:
        return None
    seal, opn = a["record_seal_MBps"]["median"], a["record_open_MBps"]["median"]
    ne, ni, shared = pair_cpus(opts)
    if shared:
        rate = ni / (1 / seal + 1 / opn)
        how = "ingress seals + egress opens on the same CPU: 1/(1/%.0f + 1/%.0f) MB/s" % (seal, opn)
    else:
        rate = min(ni * seal, ne * opn)
        how = "min(ingress seal %.0f, egress open %.0f) MB/s" % (seal, opn)
    return {"rate": rate, "seal": seal, "open": opn, "how": how}


def render(opts, meta, results, probes, ceiling, impls) -> tuple[str, dict]:
    figures = build_figures(opts)
    agg = aggregate(results, figures, impls)
    L = []
    L.append("## fedproxy vs nginx vs HAProxy (%s)" % meta["date"])
    L.append("")
    L.append("Machine: %s, %s CPUs, kernel %s, load average at start %s. %s."
             % (meta["machine"]["cpu"], meta["machine"]["nproc"], meta["machine"]["kernel"],
                " ".join(str(x) for x in meta["machine"]["loadavg_at_start"]), meta["versions_line"]))
    L.append("")
    L.append("CPU placement (taskset): " + meta["placement"])
    L.append("")
    L.append("%d run(s) per figure, %d s each after a %d s warm-up; cells: median [min-max] (ratio to the "
             "best anchor's median; best = highest req/s or MB/s, lowest latency or RSS). "
             "`!` = wrk saw errors (non-2xx or socket) in that figure's runs."
             % (opts.runs, opts.seconds, opts.warmup))
    L.append("")
    L.append("| figure | " + " | ".join(impls) + " |")
    L.append("|---|" + "---:|" * len(impls))
    for key, label, unit, hib, _src in figures:
        _bn, bv = best_anchor(agg[key], hib)
        cells = []
        for name in impls:
            s = agg[key][name]
            if s["n"] == 0:
                cells.append("n/a")
                continue
            cell = fmt(s["median"], unit)
            if s["n"] > 1:
                cell += " [%s-%s]" % (fmt(s["min"], unit), fmt(s["max"], unit))
            if bv == bv and bv:
                cell += " (%.2fx)" % (s["median"] / bv)
            if s["errors"]:
                cell += " !%d" % s["errors"]
            cells.append(cell)
        L.append("| %s (%s) | %s |" % (label, unit.replace("us", "µs"), " | ".join(cells)))
    # negotiated
    cells = []
    for name in impls:
        p = probes.get(name, {}).get("keepalive", {})
        cells.append("%s, %s" % ("/".join(p.get("suites", [])) or "?", "/".join(p.get("groups", [])) or "?"))
    L.append("| negotiated egress->ingress (suite, group) | %s |" % " | ".join(cells))
    cells = []
    for name in impls:
        pf = probes.get(name, {}).get("hs_full", {})
        pr = probes.get(name, {}).get("hs_resumed", {})
        cells.append("%s/%s, %s/%s" % (pf.get("resumed", "?"), pf.get("connections", "?"),
                                      pr.get("resumed", "?"), pr.get("connections", "?")))
    L.append("| probe: resumed/new conns (no-resumption mode, resumption mode) | %s |" % " | ".join(cells))
    L.append("")

    # load generator ceiling
    if results.get("direct"):
        L.append("Load generator ceiling (wrk -> backend nginx directly, both on the load CPU):")
        L.append("")
        L.append("| wrk -> backend | req/s | p99 |")
        L.append("|---|---:|---:|")
        for c in opts.conns:
            runs = results["direct"].get("ka_c%d" % c, [])
            s, p = summary([r["rps"] for r in runs]), summary([r["p99"] for r in runs])
            L.append("| c=%d | %s [%s-%s] | %s ms |" % (c, fmt(s["median"], "req/s"), fmt(s["min"], "req/s"),
                                                      fmt(s["max"], "req/s"), fmt(p["median"], "ms")))
        runs = results["direct"].get("big", [])
        if runs:
            s = summary([r["MBps"] for r in runs])
            L.append("| 1 MiB, c=%d | %s MB/s | |" % (opts.big_conns, fmt(s["median"], "MB/s")))
        L.append("")

    # ceilings
    checks = []
    if ceiling:
        L.append("mbedTLS %s ceilings (tests/bench/tls_ceiling on CPU %s, measured in slices between the runs: "
                 "%d handshake and %d AEAD repetitions):"
                 % (ceiling.get("mbedtls", "?"), opts.cpu_ingress, ceiling.get("reps", 0),
                    ceiling.get("aead_reps", 0)))
        L.append("")
        L.append("| ceiling | median [min-max] |")
        L.append("|---|---:|")
        if ceiling.get("handshake"):
            hf, hr = hs_ceiling(ceiling, "full", opts), hs_ceiling(ceiling, "resumed", opts)
            for kind in ("full", "resumed"):
                h = ceiling["handshake"][kind]
                for side in ("server", "client"):
                    st = h["%s_cpu_us" % side]
                    L.append("| %s CPU per %s mTLS handshake | %.0f µs [%.0f-%.0f] |"
                             % (side, kind, st["median"], st["min"], st["max"]))
            L.append("| -> handshake-bound ceiling, no resumption | %s /s (%s) |" % (fmt(hf["rate"], "req/s"), hf["how"]))
            L.append("| -> handshake-bound ceiling, resumption | %s /s |" % fmt(hr["rate"], "req/s"))
        for suite, a in ceiling.get("aead", {}).items():
            L.append("| %s: record seal / open, %d-byte records | %.0f / %.0f MB/s |"
                     % (suite, a.get("record_plaintext_bytes", 0), a["record_seal_MBps"]["median"],
                        a["record_open_MBps"]["median"]))
            L.append("| %s: TlsEngine seal / open | %.0f / %.0f MB/s |"
                     % (suite, a["engine_seal_MBps"]["median"], a["engine_open_MBps"]["median"]))
            L.append("| %s: mbedtls_cipher seal / open, 16 KiB | %.0f / %.0f MB/s |"
                     % (suite, a["cipher_seal_MBps"]["median"], a["cipher_open_MBps"]["median"]))
        L.append("")

    # targets
    if "fedproxy" in impls:
        L.append("Targets (fedproxy):")
        L.append("")
        L.append("| target | fedproxy | reference | result |")
        L.append("|---|---:|---:|---|")
        for c in opts.conns:
            if c not in (64, 256):
                continue
            k = "ka_c%d" % c
            bn, bv = best_anchor(agg[k + ".rps"], True)
            fv = agg[k + ".rps"]["fedproxy"]["median"]
            if bn:
                ok = fv == fv and fv >= TARGET_KA_RATIO * bv
                checks.append({"target": "keepalive_c%d_rps" % c, "pass": ok, "value": fv,
                               "reference": TARGET_KA_RATIO * bv, "anchor": bn})
                L.append("| keep-alive c=%d req/s >= %.1fx best anchor | %s | %.1f x %s (%s) = %s | %s (%.2fx) |"
                         % (c, TARGET_KA_RATIO, fmt(fv, "req/s"), TARGET_KA_RATIO, fmt(bv, "req/s"), bn,
                            fmt(TARGET_KA_RATIO * bv, "req/s"), "PASS" if ok else "MISS", fv / bv if bv else 0))
                fp, ap = agg[k + ".p99"]["fedproxy"]["median"], agg[k + ".p99"][bn]["median"]
                ok = fp == fp and fp <= ap
                checks.append({"target": "keepalive_c%d_p99" % c, "pass": ok, "value": fp, "reference": ap,
                               "anchor": bn})
                L.append("| keep-alive c=%d p99 <= that anchor's p99 | %s ms | %s ms (%s) | %s |"
                         % (c, fmt(fp, "ms"), fmt(ap, "ms"), bn, "PASS" if ok else "MISS"))
        if ceiling:
            for kind, key in (("full", "hs_full"), ("resumed", "hs_resumed")):
                if not ceiling.get("handshake"):
                    break
                h = hs_ceiling(ceiling, kind, opts)
                fv = agg[key + ".rps"]["fedproxy"]["median"]
                ratio = fv / h["rate"] if h["rate"] else float("nan")
                ok = ratio == ratio and ratio >= TARGET_CEILING
                cpu = agg[key + ".cpu"]["fedproxy"]["median"]
                cpu_ratio = (h["server_us"] + h["client_us"]) / cpu if cpu == cpu and cpu else float("nan")
                checks.append({"target": "%s_vs_ceiling" % key, "pass": ok, "value": fv, "reference": h["rate"],
                               "ratio": ratio, "cpu_us_per_req": cpu, "cpu_ratio": cpu_ratio})
                L.append("| handshake-bound (%s) >= %d%% of the mbedTLS ceiling | %s req/s | %s /s | %s (%.1f%%; "
                         "by CPU per request: %s µs vs %s µs = %.1f%%) |"
                         % ("no resumption" if kind == "full" else "resumption", TARGET_CEILING * 100,
                            fmt(fv, "req/s"), fmt(h["rate"], "req/s"), "PASS" if ok else "MISS", 100 * ratio,
                            fmt(cpu, "us"), fmt(h["server_us"] + h["client_us"], "us"), 100 * cpu_ratio))
            suites = probes.get("fedproxy", {}).get("keepalive", {}).get("suites", [])
            suite = suites[0] if len(suites) == 1 else None
            a = aead_ceiling(ceiling, suite, opts) if suite else None
            fv = agg["big.MBps"]["fedproxy"]["median"]
            if a:
                ratio = fv / a["rate"]
                ok = ratio >= TARGET_CEILING
                cpu = agg["big.cpu"]["fedproxy"]["median"]  # proxy CPU us per 1 MiB response
                cpu_mbps = BIG_BYTES / cpu if cpu == cpu and cpu else float("nan")  # MB per CPU-second
                # CPU of both ends per MB, whatever the placement: 1/seal + 1/open
                cpu_ratio = cpu_mbps * (1 / a["seal"] + 1 / a["open"])
                checks.append({"target": "big_vs_aead_ceiling", "pass": ok, "value": fv, "reference": a["rate"],
                               "ratio": ratio, "suite": suite, "MB_per_cpu_s": cpu_mbps, "cpu_ratio": cpu_ratio})
                L.append("| 1 MiB bodies >= %d%% of the AEAD ceiling (%s) | %s MB/s | %s MB/s (%s) | %s (%.1f%%; "
                         "by CPU: %s MB per proxy CPU-second = %.1f%%) |"
                         % (TARGET_CEILING * 100, suite, fmt(fv, "MB/s"), fmt(a["rate"], "MB/s"), a["how"],
                            "PASS" if ok else "MISS", 100 * ratio, fmt(cpu_mbps, "MB/s"), 100 * cpu_ratio))
            else:
                L.append("| 1 MiB bodies >= %d%% of the AEAD ceiling | %s MB/s | negotiated suite unknown (%s) | n/a |"
                         % (TARGET_CEILING * 100, fmt(fv, "MB/s"), suites))
        fv = agg["rss.kib_per_conn"]["fedproxy"]["median"]
        ok = fv == fv and fv <= TARGET_RSS_KIB
        checks.append({"target": "rss_per_idle_conn", "pass": ok, "value": fv, "reference": TARGET_RSS_KIB})
        L.append("| RSS per idle mTLS connection <= %.0f KiB | %s KiB | %.0f KiB | %s |"
                 % (TARGET_RSS_KIB, fmt(fv, "KiB"), TARGET_RSS_KIB, "PASS" if ok else "MISS"))
        L.append("")

    # problems
    probs = []
    for name in impls:
        for mode, p in probes.get(name, {}).items():
            for w in p.get("warnings", []):
                probs.append("%s %s probe: %s" % (name, mode, w))
        for k, runs in results.get(name, {}).items():
            if k == "placement_problems":
                probs.append("%s: threads not on their CPUs: %s" % (name, runs[:5]))
                continue
            errs = sum(max(0, r.get("errors", 0)) for r in runs if isinstance(r, dict) and "errors" in r)
            if errs:
                probs.append("%s %s: %d wrk errors over %d run(s)" % (name, k, errs, len(runs)))
        for e in results.get(name, {}).get("failures", []):
            probs.append("%s: %s" % (name, e))
    if probs:
        L.append("Problems seen:")
        L.append("")
        for p in probs:
            L.append("* " + p)
        L.append("")
    return "\n".join(L) + "\n", {"aggregate": agg, "checks": checks, "problems": probs}


# --- main -------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="See docs/performance.md.")
    ap.add_argument("--runs", type=int, default=3, help="runs per figure (median, min-max); default 3")
    ap.add_argument("--seconds", type=int, default=8, help="measured seconds per wrk run; default 8")
    ap.add_argument("--warmup", type=int, default=2, help="discarded warm-up seconds before each run; default 2")
    ap.add_argument("--only", default="fedproxy,nginx,haproxy", help="implementations, comma-separated")
    ap.add_argument("--quick", action="store_true",
                    help="1 run, 3 s phases, 1 s warm-up, short ceilings: a smoke test of every figure")
    ap.add_argument("--conns", default="16,64,256", help="keep-alive wrk connections; default 16,64,256")
    ap.add_argument("--hs-conns", type=int, default=16, help="wrk connections, handshake-bound; default 16")
    ap.add_argument("--big-conns", type=int, default=4, help="wrk connections, 1 MiB bodies; default 4")
    ap.add_argument("--idle-conns", type=int, default=1000, help="idle mTLS connections for RSS; default 1000")
    ap.add_argument("--fedproxy-workers", type=int, default=1, help='fedproxy "workers" (both ends); default 1')
    ap.add_argument("--cpu-egress", default="0", help="taskset CPU list of every egress; default 0")
    ap.add_argument("--cpu-ingress", default="0", help="taskset CPU list of every ingress; default 0")
    ap.add_argument("--cpu-load", default="1",
                    help="CPU list of wrk, the backend nginx and this script's clients; default 1")
    ap.add_argument("--fedproxy-bin", help="use this fedproxy binary (default: build into --build-dir)")
    ap.add_argument("--tls-ceiling-bin", help="use this tls_ceiling binary (default: build into --build-dir)")
    ap.add_argument("--build-dir", default=os.path.join(REPO, "build-bench"),
                    help="release build dir, set up if missing; default build-bench")
    ap.add_argument("--no-build", action="store_true", help="never run meson/ninja")
    ap.add_argument("--no-direct", action="store_true", help="skip the wrk -> backend ceiling runs")
    ap.add_argument("--json", help="results file (default build-bench/bench-results/compare-<UTC>.json; "
                                   "the markdown goes next to it as .md)")
    ap.add_argument("--verbose", action="store_true", help="keep wrk's raw output in the JSON")
    opts = ap.parse_args()

    if opts.quick:
        opts.runs, opts.seconds, opts.warmup = 1, 3, 1
        opts.ceiling_seconds = 0.2
    else:
        opts.ceiling_seconds = 0.5
    opts.runs = max(1, min(opts.runs, 50))
    opts.seconds = max(1, min(opts.seconds, 120))
    opts.warmup = max(0, min(opts.warmup, 60))
    opts.conns = [max(1, min(int(c), 4000)) for c in opts.conns.split(",") if c.strip()]
    opts.hs_conns = max(1, min(opts.hs_conns, 1000))
    opts.big_conns = max(1, min(opts.big_conns, 256))
    opts.idle_conns = max(1, min(opts.idle_conns, 8000))
    opts.idle_timeout = 120
    impls = [x.strip() for x in opts.only.split(",") if x.strip()]
    for x in impls:
        if x not in IMPLEMENTATIONS:
            sys.exit("compare: unknown implementation %r (have %s)" % (x, ", ".join(IMPLEMENTATIONS)))
    avail = os.sched_getaffinity(0)
    for spec in (opts.cpu_egress, opts.cpu_ingress, opts.cpu_load):
        if not cpu_list(spec) <= avail:
            sys.exit("compare: CPU list %r not available (this process may use %s)" % (spec, sorted(avail)))

    ensure_tools(impls)
    ensure_build(opts)

    # SIGTERM -> the same cleanup as Ctrl-C
    def on_term(_sig, _frm):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)

    nofile = raise_nofile(4 * opts.idle_conns + 4 * max(opts.conns) + 1024)
    # This script (and the idle-connection clients it runs) stays on the load CPU.
    os.sched_setaffinity(0, cpu_list(opts.cpu_load))

    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    per_impl = (len(opts.conns) + 3) * (opts.seconds + opts.warmup + 1) + 15
    est = opts.runs * (len(impls) * per_impl + 20  # + the ceiling slices
                       + (0 if opts.no_direct else (len(opts.conns) + 1) * (opts.seconds + 1)))
    log("implementations %s; %d run(s) x %d s (+%d s warm-up); about %d min"
        % (",".join(impls), opts.runs, opts.seconds, opts.warmup, round(est / 60 + 0.5)))

    machine = machine_info()
    placement = ("egress CPU %s, ingress CPU %s, wrk + backend nginx + harness clients CPU %s, "
                 "tls_ceiling CPU %s; one worker each (fedproxy \"workers\": %d, nginx master_process off, "
                 "HAProxy nbthread 1)" % (opts.cpu_egress, opts.cpu_ingress, opts.cpu_load, opts.cpu_ingress,
                                          opts.fedproxy_workers))
    bpki = BenchPki()
    backend = None
    results: dict = {n: {} for n in impls}
    results["direct"] = {}
    probes: dict = {}
    ceiling: dict = {}
    versions = {}
    objs = {}
    try:
        backend = Backend(opts.cpu_load).start()
        opts.backend_pid = backend.svc.pid
        for name in impls:
            cls = IMPLEMENTATIONS[name]
            kw = {"workers": opts.fedproxy_workers} if name == "fedproxy" else {}
            objs[name] = cls(bpki, backend.port, cpu_egress=opts.cpu_egress, cpu_ingress=opts.cpu_ingress, **kw)
            versions[name] = objs[name].version()
        versions["wrk"] = tool_version(["wrk", "-v"], r"wrk \S+")
        versions["backend"] = tool_version(["nginx", "-v"], r"nginx/\S+")
        versions["openssl"] = tool_version(["openssl", "version"])
        log("versions: %s" % versions)

        for name in impls:
            probes[name] = {}
            for mode in MODES:
                try:
                    probes[name][mode] = probe_pair(objs[name], mode)
                except (RuntimeError, OSError) as e:
                    probes[name][mode] = {"error": str(e), "warnings": ["probe failed: %s" % e]}
                p = probes[name][mode]
                log("probe %-8s %-10s conns %s resumed %s suites %s groups %s %s"
                    % (name, mode, p.get("connections"), p.get("resumed"), p.get("suites"), p.get("groups"),
                       "; ".join(p.get("warnings", []))))

        def recorder(name):
            def record(key, value):
                if key == "placement_problems":
                    results[name].setdefault(key, []).extend(value)
                else:
                    results[name].setdefault(key, []).append(value)
            return record

        # Interleaved: for each mode the pairs of every implementation run at
        # the same time (the idle ones cost no CPU), and each run measures them
        # one after the other in a rotating order, followed by a slice of the
        # mbedTLS ceiling. On a machine whose speed drifts over minutes (a VM
        # with busy neighbours) every implementation and the ceiling are then
        # sampled at nearby moments, so their ratios hold even when the
        # absolute figures move.
        ceiling_slices = []
        for mode in MODES:
            pairs = {}
            try:
                for name in impls:
                    try:
                        pairs[name] = start_pair(objs[name], mode, recorder(name))
                    except (RuntimeError, OSError) as e:
                        log("  %s %s failed to start: %s" % (name, mode, e))
                        results[name].setdefault("failures", []).append("%s: %s" % (mode, e))
                for run in range(opts.runs):
                    log("%s: run %d/%d" % (mode, run + 1, opts.runs))
                    if mode == "keepalive" and not opts.no_direct:
                        measure_direct(opts, backend.port, results["direct"])
                    for name in rotated(impls, run):
                        if name not in pairs:
                            continue
                        eg, ing = pairs[name]
                        try:
                            measure_pair(opts, objs[name], mode, eg, ing, recorder(name))
                        except (RuntimeError, OSError) as e:
                            log("  %s %s failed: %s" % (name, mode, e))
                            results[name].setdefault("failures", []).append("%s: %s" % (mode, e))
                    # The ceiling slice that belongs to this mode, next to it in time.
                    only = "aead" if mode == "keepalive" else "handshake"
                    try:
                        ceiling_slices.append(run_ceiling(opts, bpki, only, 1))
                        log("  mbedTLS ceiling slice (%s) on CPU %s" % (only, opts.cpu_ingress))
                    except (RuntimeError, subprocess.TimeoutExpired, ValueError) as e:
                        log("  ceiling slice failed: %s" % e)
            finally:
                for eg, ing in pairs.values():
                    eg.stop()
                    ing.stop()
        ceiling = merge_ceilings(ceiling_slices)

        for run in range(opts.runs):
            for name in rotated(impls, run):
                try:
                    r = measure_idle_rss(opts, objs[name], bpki)
                    recorder(name)("rss", r)
                    log("  %-8s idle RSS %.1f KiB/conn (%d conns; %.1f after a request)"
                        % (name, r["kib_per_conn"], r["conns"], r["kib_per_conn_after_request"]))
                except (RuntimeError, OSError) as e:
                    log("  %s idle RSS failed: %s" % (name, e))
                    results[name].setdefault("failures", []).append("rss: %s" % e)
    except KeyboardInterrupt:
        log("interrupted: stopping what was started")
        raise
    finally:
        if backend is not None:
            backend.stop()
        bpki.cleanup()

    vline = "; ".join(v if v.lower().startswith(k) else "%s %s" % (k, v) for k, v in versions.items())
    meta = {"date": date, "machine": machine, "placement": placement, "versions": versions,
            "versions_line": vline, "nofile": nofile,
            "options": {k: v for k, v in vars(opts).items() if k not in ("fedproxy_bin", "tls_ceiling_bin")},
            "fedproxy_bin": opts.fedproxy_bin,
            "configs": {n: {m: objs[n].describe(m) for m in MODES} for n in impls if n in objs}}
    md, extra = render(opts, meta, {k: v for k, v in results.items()}, probes, ceiling, impls)
    print()
    print(md)
    out = opts.json or os.path.join(os.path.abspath(opts.build_dir), "bench-results",
                                    "compare-%s.json" % datetime.datetime.now(datetime.timezone.utc)
                                    .strftime("%Y%m%dT%H%M%SZ"))
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump({"meta": meta, "results": results, "probes": probes, "ceiling": ceiling,
                   "aggregate": extra["aggregate"], "targets": extra["checks"], "problems": extra["problems"]},
                  f, indent=1, default=str)
    with open(os.path.splitext(out)[0] + ".md", "w") as f:
        f.write(md)
    log("results: %s (+ .md)" % out)
    measured = any(results[n].get("ka_c%d" % opts.conns[0]) for n in impls)
    return 0 if measured else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""scaling: keep-alive req/s of the fedproxy pair with 1 and with N workers.

    wrk -> egress (W workers) -> TLS 1.3 mTLS -> ingress (W workers) -> backend nginx

Two ways to read it, chosen by the CPUs there are:

  * direct (the machine has CPUs for the proxies *and* for the load): the
    proxies get --cpu-proxies (default: all but the last two CPUs), wrk and
    the backend get --cpu-load (the last two). With 1 worker the pair runs on
    one CPU of --cpu-proxies, with N workers on N of them. scaling = req/s(N)
    / req/s(1).
  * CPU-normalised (too few CPUs, e.g. 2): every process shares all CPUs, and
    the figure that does not depend on the load generator's share is the
    proxies' throughput per CPU-second they used. Lock contention, shared
    atomics and cache-line traffic between workers running at the same time
    on different cores all show up as more CPU per request. projected
    scaling = N x (req per proxy CPU-second with N workers) / (with 1).
    It is a projection for N cores of their own, not a measured req/s.

Each figure is the median of --runs runs. /status is read after each run to
show that every worker of both proxies took connections. Only 127.0.0.1, every
run bounded in time, only processes started here are stopped (by PID).
NOT a test: it asserts nothing and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from benchlib.common import cpu_list, median, proc_cpu_seconds, raise_nofile, run_wrk  # noqa: E402
from benchlib.impls import HOST, ROUTE, Backend, BenchPki, Fedproxy, running_pair  # noqa: E402


def workers_accepted(admin_port: int) -> list[int]:
    with urllib.request.urlopen("http://127.0.0.1:%d/status" % admin_port, timeout=5) as r:
        st = json.load(r)
    return list(st.get("workers", {}).get("accepted", []))


def one_run(pki, backend_port, workers, cpus_proxies, cpus_load, conns, seconds, warmup):
    impl = Fedproxy(pki, backend_port, cpus_proxies, cpus_proxies, workers=workers)
    with running_pair(impl) as (eg, ing):
        url = "http://127.0.0.1:%d%s" % (eg.port, ROUTE)
        run_wrk(url, conns, warmup, cpus_load, HOST, threads=2)
        c0 = proc_cpu_seconds(eg.pid) + proc_cpu_seconds(ing.pid)
        t0 = time.monotonic()
        r = run_wrk(url, conns, seconds, cpus_load, HOST, threads=2)
        dt = time.monotonic() - t0
        cpu = proc_cpu_seconds(eg.pid) + proc_cpu_seconds(ing.pid) - c0
        n = r.get("requests", 0)
        return {
            "rps": r["rps"], "p99": r["p99"], "errors": r.get("errors", 0),
            "cpu_s": cpu, "cpu_util": cpu / dt if dt > 0 else float("nan"),
            "req_per_cpu_s": n / cpu if cpu > 0 else float("nan"),
            "accepted_egress": workers_accepted(eg.admin_port),
            "accepted_ingress": workers_accepted(ing.admin_port),
        }


def main() -> int:
    ncpu = os.cpu_count() or 1
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=2, help="workers to compare with 1 (default 2)")
    ap.add_argument("--conns", default="64,256", help="wrk connections (default 64,256)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--cpu-proxies", help="CPU list for the proxies, e.g. 0-3 (direct mode)")
    ap.add_argument("--cpu-load", help="CPUs for wrk and the backend (direct mode)")
    ap.add_argument("--json", help="write the results here too")
    opts = ap.parse_args()
    raise_nofile(65536)
    w = opts.workers
    if opts.cpu_proxies or ncpu >= w + 2:
        mode = "direct"
        proxies_all = [str(c) for c in sorted(cpu_list(opts.cpu_proxies))] if opts.cpu_proxies \
            else [str(c) for c in range(ncpu - 2)]
        cpus_load = opts.cpu_load or "%d,%d" % (ncpu - 2, ncpu - 1)
        if len(proxies_all) < w:
            ap.error("--cpu-proxies needs at least %d CPUs" % w)
        placement = {1: proxies_all[0], w: ",".join(proxies_all[:w])}
    else:
        mode = "cpu-normalised"
        everything = ",".join(str(c) for c in range(ncpu))
        cpus_load = everything
        placement = {1: everything, w: everything}

    conns_list = [int(c) for c in opts.conns.split(",")]
    pki = BenchPki()
    backend = Backend(cpus_load).start()
    results: dict = {"mode": mode, "cpus": ncpu, "placement": {str(k): v for k, v in placement.items()},
                     "load_cpus": cpus_load, "figures": {}}
    try:
        for conns in conns_list:
            # Interleaved (1, N, N, 1, 1, N, ...): a machine whose speed drifts
            # over minutes moves both sides alike.
            per_workers: dict = {1: [], w: []}
            for run in range(opts.runs):
                for workers in ((1, w) if run % 2 == 0 else (w, 1)):
                    per_workers[workers].append(one_run(pki, backend.port, workers, placement[workers], cpus_load,
                                                        conns, opts.seconds, opts.warmup))
            for workers in (1, w):
                runs = per_workers[workers]
                results["figures"]["%d/%d" % (workers, conns)] = runs
                print("workers %d, c=%d: req/s %s, req per proxy CPU-s %s, proxy CPU %s, accepted %s / %s"
                      % (workers, conns, [round(r["rps"]) for r in runs],
                         [round(r["req_per_cpu_s"]) for r in runs],
                         [round(r["cpu_util"], 2) for r in runs],
                         runs[-1]["accepted_egress"], runs[-1]["accepted_ingress"]), flush=True)
    finally:
        backend.stop()
        pki.cleanup()

    print()
    print("Mode: %s (%d CPUs; proxies: 1 worker on %s, %d workers on %s; load on %s)"
          % (mode, ncpu, placement[1], w, placement[w], cpus_load))
    print()
    print("| c | 1 worker req/s | %d workers req/s | 1 worker req/proxy-CPU-s | %d workers req/proxy-CPU-s | scaling |"
          % (w, w))
    print("|---:|---:|---:|---:|---:|---:|")
    for conns in conns_list:
        one = results["figures"]["1/%d" % conns]
        many = results["figures"]["%d/%d" % (w, conns)]
        rps1, rpsn = median([r["rps"] for r in one]), median([r["rps"] for r in many])
        eff1, effn = median([r["req_per_cpu_s"] for r in one]), median([r["req_per_cpu_s"] for r in many])
        if mode == "direct":
            scaling = "%.2fx measured" % (rpsn / rps1)
        elif effn >= eff1:
            # More efficient per CPU than 1 worker (fewer migrations and
            # wake-ups per request): no multi-core cost to see. Never more
            # than N x from N cores.
            scaling = "%.2fx projected (capped; CPU efficiency %.0f%% of 1 worker's)" % (w, 100 * effn / eff1)
        else:
            scaling = "%.2fx projected (%d x %.0f%% CPU efficiency)" % (w * effn / eff1, w, 100 * effn / eff1)
        print("| %d | %.0f | %.0f | %.0f | %.0f | %s |" % (conns, rps1, rpsn, eff1, effn, scaling))
    if mode != "direct":
        print()
        print("req/s here is bounded by wrk and the backend sharing the same CPUs; the scaling column is")
        print("the per-CPU throughput of %d workers running at once, relative to 1 worker, times %d" % (w, w))
        print("(at most %d)." % w)
    if opts.json:
        with open(opts.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

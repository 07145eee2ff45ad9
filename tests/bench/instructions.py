#!/usr/bin/env python3
"""instructions: user-space instructions per keep-alive request, per proxy,
counted by valgrind's callgrind (NOT a test: it asserts nothing).

    wrk -> egress (callgrind) -> TLS 1.3 mTLS -> ingress (callgrind) -> backend nginx

Wall-clock figures on a shared or virtual machine move by 10-30% from one
minute to the next; instruction counts do not. This gives a repeatable
before/after figure for changes to the request path: both proxies run under
callgrind (one worker each), wrk warms the pair up until every pooled mTLS
connection exists, the counters are zeroed, wrk runs again, and the counters
are dumped. Instructions executed in the kernel are not counted, nor are
handshakes (any left in the measured window are subtracted, and reported).

    python3 tests/bench/instructions.py [--bin A --bin B ...] [--conns 16] [--seconds 8] [--big]

Needs valgrind, wrk and nginx. Only 127.0.0.1; every process started here is
stopped by its PID; temp files are removed.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from benchlib.common import run_wrk  # noqa: E402
from benchlib.impls import BIG_PATH, HOST, ROUTE, Backend, BenchPki, Fedproxy, running_pair  # noqa: E402

HANDSHAKE_FNS = ("mbedtls_ssl_handshake_step", "mbedtls_ssl_handshake ")


def totals(path: str) -> tuple[int, int]:
    """(all instructions, instructions inside the TLS handshake) of one dump."""
    out = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", path],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, timeout=120).stdout
    total = handshake = 0
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+)\s", line)
        if not m:
            continue
        n = int(m.group(1).replace(",", ""))
        if "PROGRAM TOTALS" in line:
            total = n
        elif any(f in line for f in HANDSHAKE_FNS):
            handshake = max(handshake, n)
    return total, handshake


def measure(index: int, binary: str, pki, backend_port: int, conns: int, seconds: int, warmup: int,
            work: str, path: str) -> dict:
    tag = "b%d" % index
    wrapper = os.path.join(work, "fedproxy-callgrind-" + tag)
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\nexec valgrind --tool=callgrind --callgrind-out-file=%s/cg.%s.%%p %s \"$@\"\n"
                % (work, tag, binary))
    os.chmod(wrapper, 0o755)
    os.environ["FEDPROXY_BIN"] = wrapper
    impl = Fedproxy(pki, backend_port, None, None)
    # Everything is ~50x slower under valgrind: generous timeouts.
    impl._timeouts = lambda: {"handshake_ms": 60000, "header_ms": 60000, "idle_ms": 60000,
                              "upstream_connect_ms": 30000, "upstream_response_ms": 60000}
    with running_pair(impl) as (eg, ing):
        url = "http://127.0.0.1:%d%s" % (eg.port, path)
        run_wrk(url, conns, warmup, None, HOST, timeout_s=30)
        for pid in (eg.pid, ing.pid):
            subprocess.run(["callgrind_control", "-z", str(pid)], capture_output=True, timeout=60)
        r = run_wrk(url, conns, seconds, None, HOST, timeout_s=30)
        for pid in (eg.pid, ing.pid):
            subprocess.run(["callgrind_control", "-d", str(pid)], capture_output=True, timeout=60)
        time.sleep(1)
        n = r.get("requests", 0)
        res = {"binary": binary, "requests": n}
        for name, pid in (("egress", eg.pid), ("ingress", ing.pid)):
            dumps = [p for p in glob.glob("%s/cg.%s.%d.*" % (work, tag, pid))]
            total = hs = 0
            for d in dumps:
                t, h = totals(d)
                total, hs = max(total, t), max(hs, h)
            res[name] = (total - hs) / n if n else float("nan")
            res[name + "_handshake_share"] = hs / total if total else 0.0
        return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", action="append", help="fedproxy binary (repeat to compare; default build-bench)")
    ap.add_argument("--conns", type=int, default=16)
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=12, help="seconds; the pool must be complete before counting")
    ap.add_argument("--big", action="store_true", help="1 MiB responses instead of 64 bytes (per response)")
    ap.add_argument("--keep", metavar="DIR",
                    help="keep the callgrind dumps in DIR (for callgrind_annotate) instead of a temporary directory")
    opts = ap.parse_args()
    for tool in ("valgrind", "callgrind_control", "callgrind_annotate", "wrk", "nginx"):
        if not shutil.which(tool) and not os.path.exists("/usr/sbin/" + tool):
            print("instructions: %s not found (apt-get install valgrind wrk nginx)" % tool, file=sys.stderr)
            return 2
    repo = os.path.dirname(os.path.dirname(HERE))
    bins = [os.path.abspath(b) for b in (opts.bin or [os.path.join(repo, "build-bench/proxy/app/fedproxy")])]
    pki = BenchPki()
    backend = Backend(None).start()
    if opts.keep:
        os.makedirs(opts.keep, exist_ok=True)
    work = os.path.abspath(opts.keep) if opts.keep else tempfile.mkdtemp(prefix="fedbench-callgrind-")
    rows = []
    try:
        for i, b in enumerate(bins):
            rows.append(measure(i, b, pki, backend.port, opts.conns, opts.seconds, opts.warmup, work,
                                BIG_PATH if opts.big else ROUTE))
    finally:
        backend.stop()
        pki.cleanup()
        if not opts.keep:
            shutil.rmtree(work, ignore_errors=True)
    print("| binary | requests counted | egress instructions/request | ingress instructions/request |")
    print("|---|---:|---:|---:|")
    for r in rows:
        note = ""
        if r["egress_handshake_share"] > 0.05 or r["ingress_handshake_share"] > 0.05:
            note = " (handshakes in the window: %.0f%% / %.0f%%, subtracted)" % (
                100 * r["egress_handshake_share"], 100 * r["ingress_handshake_share"])
        print("| %s | %d | %.0f | %.0f |%s" % (r["binary"], r["requests"], r["egress"], r["ingress"], note))
    return 0


if __name__ == "__main__":
    sys.exit(main())

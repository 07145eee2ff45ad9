#!/usr/bin/env python3
"""bench_pair: a benchmark of a fedproxy egress -> ingress pair (NOT a test: it asserts nothing).

Usage (from the repository root, after building):

    python3 tests/bench/bench_pair.py                        # build/proxy/app/fedproxy
    python3 tests/bench/bench_pair.py --bin /tmp/build-bp/proxy/app/fedproxy \
        --seconds 8 --conns 16,64,256

What it does, all on 127.0.0.1 with ports chosen at run time:
  1. generates a test PKI with the openssl CLI (tests/integration/fedtest/pki.py);
  2. starts nginx (required) answering `200` with a 64-byte body to everything;
  3. starts fedproxy B (partner-labs): ingress -> nginx, peer acme-corp with one
     active grant on the route `tasks` (/api/v1/tasks), no rate limit;
  4. starts fedproxy A (acme-corp): egress on 127.0.0.1:0, peer partner-labs with
     endpoints ["https://127.0.0.1:<B ingress port>"]. A's node certificate
     (pki.server) carries acme-corp's URI SAN, B's carries partner-labs' URI SAN;
     both have serverAuth+clientAuth;
  5. for each --conns value runs, bounded in time,
       wrk -t2 -c<N> -d<seconds>s --latency -H 'Host: partner-labs' \
           http://127.0.0.1:<A egress>/api/v1/tasks
     (plain HTTP/1.1 keep-alive into A; A -> B is mTLS), and the same wrk
     straight to nginx as the ceiling of the load generator on this machine;
  6. prints the machine (nproc, CPU model) and a table: connections, req/s,
     p50, p99, errors (non-2xx responses + socket errors), and stops every
     process it started, by PID.

wrk, both fedproxy processes and nginx share the same CPUs: the figures are a
measurement of the whole pair on this machine, not of one process in isolation.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

from bench_ingress import App, machine_info  # noqa: E402
from fedtest.pki import NODE_URI, PARTNER_URI, Pki  # noqa: E402
from fedtest.policy import grant, new_id, peer  # noqa: E402
from fedtest.proxy import Proxy, base_config  # noqa: E402

BODY = "x" * 63 + "\n"   # 64 bytes
ROUTE = "/api/v1/tasks"
ROUTES = [{"prefix": ROUTE, "resource": "tasks"}]
WRK_SLACK = 30           # seconds beyond -d before wrk is killed


class Nginx(App):
    """bench_ingress.App (its stop() by PID), with nginx only and a 64-byte body."""

    def start(self):
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        if not os.access(nginx, os.X_OK):
            raise RuntimeError("nginx not found")
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write("""daemon off; worker_processes 1; pid %s/nginx.pid;
error_log %s/error.log; events { worker_connections 4096; }
http { access_log off; client_body_temp_path %s;
  server { listen 127.0.0.1:%d; keepalive_requests 1000000;
    location / { default_type text/plain; return 200 "%s"; } } }
""" % (self.dir, self.dir, self.dir, self.port, BODY.replace("\n", "\\n")))
        self.proc = subprocess.Popen([nginx, "-c", conf, "-p", self.dir],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                self.kind = "nginx"
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("nginx did not start")


def config_b(pki, cert, upstream: str) -> dict:
    cfg = base_config(pki, upstream,
                      node={"org": "partner-labs", "entity_uri": PARTNER_URI},
                      tls={"cert": cert.crt, "key": cert.key})
    cfg["peers"] = [peer("acme-corp", NODE_URI)]
    g = grant(new_id(), "acme-corp", ["tasks"], methods=["GET", "HEAD"])
    g.pop("rate_limit", None)   # no rate limit (docs/policy.md: default none)
    cfg["grants"] = [g]
    cfg["routes"] = ROUTES
    cfg.pop("authenticate_only", None)
    return cfg


def config_a(pki, upstream: str, b_port: int) -> dict:
    cfg = base_config(pki, upstream, egress={"listen": "127.0.0.1:0"})
    cfg["peers"] = [peer("partner-labs", PARTNER_URI,
                         endpoints=["https://127.0.0.1:%d" % b_port])]
    cfg["grants"] = []
    cfg["routes"] = ROUTES
    cfg.pop("authenticate_only", None)
    return cfg


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def _ms(v: str, unit: str) -> float:
    return float(v) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


def run_wrk(wrk: str, url: str, conns: int, seconds: int, host: str | None):
    cmd = [wrk, "-t%d" % min(2, conns), "-c%d" % conns, "-d%ds" % seconds, "--timeout", "5s", "--latency"]
    if host:
        cmd += ["-H", "Host: " + host]
    cmd.append(url)
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = p.communicate(timeout=seconds + WRK_SLACK)
    except subprocess.TimeoutExpired:
        os.kill(p.pid, 9)
        p.wait(5)
        return {"conns": conns, "rps": float("nan"), "p50": float("nan"),
                "p99": float("nan"), "errors": -1, "requests": 0, "raw": "timeout"}
    r = {"conns": conns, "raw": out}
    m = re.search(r"Requests/sec:\s*([\d.]+)", out)
    r["rps"] = float(m.group(1)) if m else float("nan")
    m = re.search(r"(\d+) requests in", out)
    r["requests"] = int(m.group(1)) if m else 0
    for pct in ("50", "99"):
        m = re.search(r"^\s*%s(?:\.000)?%%\s+([\d.]+)(us|ms|s|m)\s*$" % pct, out, re.M)
        r["p" + pct] = _ms(*m.groups()) if m else float("nan")
    errs = 0
    m = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
    if m:
        errs += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errs += sum(int(x) for x in m.groups())
    r["errors"] = errs
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", help="fedproxy binary (default $FEDPROXY_BIN or build/...)")
    ap.add_argument("--seconds", type=int, default=8, help="duration of each wrk phase")
    ap.add_argument("--conns", default="16,64,256", help="comma-separated wrk -c values")
    ap.add_argument("--verbose", action="store_true", help="print wrk's own output")
    opts = ap.parse_args()
    if opts.bin:
        os.environ["FEDPROXY_BIN"] = os.path.abspath(opts.bin)
    opts.seconds = max(1, min(opts.seconds, 120))
    conns = [max(1, min(int(c), 4000)) for c in opts.conns.split(",") if c.strip()]
    wrk = shutil.which("wrk") or "/usr/bin/wrk"

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, 4 * max(conns) + 256))
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))  # inherited by children

    pki = Pki.create()
    app = a = b = None
    rows = []
    try:
        app = Nginx(max_seconds=0).start()
        b_cert = pki.issue_client("bench-node-b", PARTNER_URI, dns=("localhost",), server=True)
        b = Proxy(config_b(pki, b_cert, "127.0.0.1:%d" % app.port),
                  wait_for=("ingress", "admin")).start()
        a = Proxy(config_a(pki, "127.0.0.1:%d" % free_port(), b.ingress_port),
                  wait_for=("ingress", "egress", "admin")).start()
        eg = a.ports["egress"]
        print("nginx pid %d :%d; fedproxy B pid %d ingress :%d; fedproxy A pid %d egress :%d"
              % (app.proc.pid, app.port, b.pid, b.ingress_port, a.pid, eg), file=sys.stderr)

        # one probe request so a misconfiguration shows before the load phases
        with socket.create_connection(("127.0.0.1", eg), timeout=10) as s:
            s.sendall(b"GET %s HTTP/1.1\r\nHost: partner-labs\r\nConnection: close\r\n\r\n"
                      % ROUTE.encode())
            resp = b""
            while len(resp) < 65536:
                d = s.recv(65536)
                if not d:
                    break
                resp += d
        status = resp.split(b"\r\n", 1)[0].decode(errors="replace")
        print("probe through the pair: %s" % status, file=sys.stderr)
        if " 200 " not in status + " ":
            print(resp.decode(errors="replace")[:2000], file=sys.stderr)

        for n in conns:
            for target, url, host in (
                    ("nginx direct (ceiling)", "http://127.0.0.1:%d%s" % (app.port, ROUTE), None),
                    ("A egress -> B ingress", "http://127.0.0.1:%d%s" % (eg, ROUTE),
                     "partner-labs")):
                r = run_wrk(wrk, url, n, opts.seconds, host)
                r["target"] = target
                rows.append(r)
                if opts.verbose:
                    print(r["raw"], file=sys.stderr)
                print("  %-24s c=%-4d %10.0f req/s" % (target, n, r["rps"]), file=sys.stderr)
    finally:
        for p in (a, b):
            if p is not None:
                p.stop()
        if app is not None:
            app.stop()
        pki.cleanup()

    info = machine_info()
    try:
        ver = subprocess.run([os.environ.get("FEDPROXY_BIN") or
                              os.path.join(REPO, "build", "proxy", "app", "fedproxy"), "version"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        ver = "?"
    try:
        wver = subprocess.run([wrk, "-v"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=10).stdout.strip().splitlines()[0]
    except (OSError, subprocess.TimeoutExpired, IndexError):
        wver = "wrk ?"
    print()
    print("machine: nproc=%s cpu=%s kernel=%s" % (info["nproc"], info["cpu"], info["kernel"]))
    print("load:    %s, -t2, %d s per phase, keep-alive, 64-byte body; fedproxy: %s"
          % (wver, opts.seconds, ver))
    print()
    print("| path | connections | req/s | p50 | p99 | errors |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print("| %s | %d | %.0f | %.2f ms | %.2f ms | %d |"
              % (r["target"], r["conns"], r["rps"], r["p50"], r["p99"], r["errors"]))


if __name__ == "__main__":
    main()

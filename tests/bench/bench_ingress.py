#!/usr/bin/env python3
"""bench_ingress: a benchmark of fedproxy's ingress (NOT a test: it asserts nothing).

Usage (from the repository root, after building):

    python3 tests/bench/bench_ingress.py                     # build/proxy/app/fedproxy
    python3 tests/bench/bench_ingress.py --bin /path/to/fedproxy --seconds 10 \
        --procs 2 --conns 16 --idle 500

What it does, all on 127.0.0.1 with ports chosen at run time:
  1. generates a test PKI with the openssl CLI (tests/integration/fedtest/pki.py);
  2. starts a fast local app: nginx if installed, else a small selectors-based
     Python server in a child process answering `200 ok` to every request;
  3. starts fedproxy with ingress -> that app, then measures
     a. keep-alive requests/s through fedproxy: --procs load processes, each with
        --conns/--procs threads holding one keep-alive mTLS connection (Python
        ssl; wrk cannot send client certificates); the same load straight to the
        app (plain HTTP) is printed as the load generator's ceiling;
     b. full mTLS handshakes/s: new connection + handshake + one request with
        `Connection: close`, no session resumption, --procs processes; plus
        `openssl s_time -new` (client-side handshake completions) if present;
     c. memory per idle TLS connection: VmRSS of fedproxy before and after
        opening --idle mTLS connections (after the handshake, and again after
        one request each), divided by the count;
  4. prints a table with the machine (nproc, CPU model) and stops every process
     it started, by PID.

Every loop is bounded in time (--seconds) and count. The load generator is
Python: on a 2-core machine it shares the CPUs with fedproxy and the app, so
the numbers are a floor for fedproxy, not its ceiling — compare runs on the
same machine, not against other proxies' published numbers.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import re
import resource
import selectors
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

from fedtest.pki import Pki  # noqa: E402
from fedtest.proxy import Proxy, base_config, client_context  # noqa: E402

MAX_REQUESTS_PER_WORKER = 10_000_000
REQ = b"GET /bench HTTP/1.1\r\nHost: app\r\n\r\n"
REQ_CLOSE = b"GET /bench-hs HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n"


# --- the local app ------------------------------------------------------------

def fast_app_main(port_q, stop_after: float):
    """A selectors HTTP/1.1 keep-alive server answering 200 'ok' to everything
    (bodyless requests only). Runs in a child process for at most stop_after s."""
    sel = selectors.DefaultSelector()
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(1024)
    ls.setblocking(False)
    sel.register(ls, selectors.EVENT_READ, None)
    port_q.put(ls.getsockname()[1])
    resp = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
    bufs = {}
    deadline = time.monotonic() + stop_after
    while time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.5):
            if key.data is None:
                for _ in range(64):
                    try:
                        c, _ = ls.accept()
                    except BlockingIOError:
                        break
                    c.setblocking(False)
                    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    bufs[c] = bytearray()
                    sel.register(c, selectors.EVENT_READ, True)
                continue
            c = key.fileobj
            try:
                data = c.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if not data:
                sel.unregister(c)
                bufs.pop(c, None)
                c.close()
                continue
            buf = bufs[c]
            buf += data
            n = buf.count(b"\r\n\r\n")
            if n:
                close = b"connection: close" in buf.lower()
                del buf[:buf.rfind(b"\r\n\r\n") + 4]
                try:
                    c.sendall(resp * n)
                except OSError:
                    close = True
                if close:
                    sel.unregister(c)
                    bufs.pop(c, None)
                    c.close()


class App:
    def __init__(self, max_seconds: float):
        self.kind = None
        self.proc = None
        self.mp_proc = None
        self.port = None
        self.dir = tempfile.mkdtemp(prefix="fedbench-app-")
        self.max_seconds = max_seconds

    def start(self):
        nginx = shutil.which("nginx")
        if nginx:
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
    location / { return 200 "ok"; } } }
""" % (self.dir, self.dir, self.dir, self.port))
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
        q = mp.Queue()
        self.mp_proc = mp.Process(target=fast_app_main, args=(q, self.max_seconds), daemon=True)
        self.mp_proc.start()
        self.port = q.get(timeout=10)
        self.kind = "python selectors"
        return self

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if self.mp_proc is not None and self.mp_proc.is_alive():
            os.kill(self.mp_proc.pid, signal.SIGTERM)
            self.mp_proc.join(5)
        shutil.rmtree(self.dir, ignore_errors=True)


# --- load generators ------------------------------------------------------------

def _read_response(sock, buf: bytearray) -> bool:
    """Read one small response (Content-Length framed) from sock; False on EOF."""
    while True:
        i = buf.find(b"\r\n\r\n")
        if i >= 0:
            head = bytes(buf[:i]).lower()
            m = re.search(rb"content-length:\s*(\d+)", head)
            n = int(m.group(1)) if m else 0
            while len(buf) < i + 4 + n:
                d = sock.recv(65536)
                if not d:
                    return False
                buf += d
            del buf[:i + 4 + n]
            return True
        d = sock.recv(65536)
        if not d:
            return False
        buf += d


def keepalive_worker(args):
    """One process: `threads` keep-alive connections for `seconds`. Returns
    (requests, errors, latencies sample)."""
    port, pki_paths, threads, seconds, use_tls = args
    if use_tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.load_verify_locations(pki_paths["ca"])
        ctx.load_cert_chain(pki_paths["crt"], pki_paths["key"])
    counts = [0] * threads
    errors = [0] * threads
    lat = []
    start_barrier = threading.Barrier(threads + 1, timeout=30)
    end = [0.0]

    def run(i):
        try:
            raw = socket.create_connection(("127.0.0.1", port), timeout=10)
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s = ctx.wrap_socket(raw, server_hostname="localhost") if use_tls else raw
        except OSError:
            errors[i] += 1
            start_barrier.abort()
            return
        buf = bytearray()
        try:
            start_barrier.wait()
        except threading.BrokenBarrierError:
            s.close()
            return
        n = 0
        while n < MAX_REQUESTS_PER_WORKER:
            t0 = time.perf_counter()
            if t0 >= end[0]:
                break
            try:
                s.sendall(REQ)
                if not _read_response(s, buf):
                    errors[i] += 1
                    break
            except OSError:
                errors[i] += 1
                break
            n += 1
            if n % 64 == 0:
                lat.append(time.perf_counter() - t0)
        counts[i] = n
        s.close()

    ts = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(threads)]
    for t in ts:
        t.start()
    try:
        start_barrier.wait()
    except threading.BrokenBarrierError:
        pass
    t_start = time.perf_counter()
    end[0] = t_start + seconds
    for t in ts:
        t.join(timeout=seconds + 15)
    elapsed = time.perf_counter() - t_start
    return sum(counts), sum(errors), lat, elapsed


def handshake_worker(args):
    port, pki_paths, seconds = args
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(pki_paths["ca"])
    ctx.load_cert_chain(pki_paths["crt"], pki_paths["key"])
    n = errors = 0
    t_start = time.perf_counter()
    end = t_start + seconds
    while time.perf_counter() < end and n < MAX_REQUESTS_PER_WORKER:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
                with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                    s.sendall(REQ_CLOSE)
                    if _read_response(s, bytearray()):
                        n += 1
                    else:
                        errors += 1
        except OSError:
            errors += 1
    return n, errors, time.perf_counter() - t_start


def run_pool(fn, jobs):
    with mp.Pool(len(jobs)) as pool:
        return pool.map(fn, jobs)


def percentile(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


# --- measurements -----------------------------------------------------------------

def bench_keepalive(port, pki_paths, procs, conns, seconds, use_tls):
    per = max(1, conns // procs)
    res = run_pool(keepalive_worker, [(port, pki_paths, per, seconds, use_tls)] * procs)
    total = sum(r[0] for r in res)
    errs = sum(r[1] for r in res)
    lat = [x for r in res for x in r[2]]
    elapsed = max(r[3] for r in res)
    return total / elapsed, errs, percentile(lat, 50) * 1e3, percentile(lat, 99) * 1e3, per * procs


def bench_handshakes(port, pki_paths, procs, seconds):
    res = run_pool(handshake_worker, [(port, pki_paths, seconds)] * procs)
    n = sum(r[0] for r in res)
    return n / max(r[2] for r in res), sum(r[1] for r in res)


def bench_s_time(port, pki, seconds):
    if not shutil.which("openssl"):
        return None
    try:
        p = subprocess.run(["openssl", "s_time", "-connect", "127.0.0.1:%d" % port, "-new",
                            "-tls1_3", "-cert", pki.client.crt, "-key", pki.client.key,
                            "-CAfile", pki.ca.crt, "-time", str(seconds)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=seconds + 30, text=True)
    except subprocess.TimeoutExpired:
        return None
    m = re.search(r"(\d+) connections in (\d+) real seconds", p.stdout)
    if not m or int(m.group(2)) == 0:
        return None
    return int(m.group(1)) / int(m.group(2))


def bench_idle_memory(proxy, pki, count, seconds_cap):
    ctx = client_context(pki, pki.client)
    time.sleep(0.5)
    before = proxy.memory_kib()["VmRSS"]
    socks = []
    deadline = time.monotonic() + seconds_cap
    try:
        for _ in range(count):
            if time.monotonic() > deadline:
                break
            raw = socket.create_connection(("127.0.0.1", proxy.ingress_port), timeout=10)
            socks.append(ctx.wrap_socket(raw, server_hostname="localhost"))
        time.sleep(1.0)
        after_hs = proxy.memory_kib()["VmRSS"]
        n = len(socks)
        for s in socks:
            if time.monotonic() > deadline:
                break
            s.sendall(REQ)
            _read_response(s, bytearray())
        time.sleep(1.0)
        after_req = proxy.memory_kib()["VmRSS"]
    finally:
        for s in socks:
            try:
                s.close()
            except OSError:
                pass
    return n, before, after_hs, after_req


def machine_info():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": model, "kernel": platform.release(),
            "python": platform.python_version(),
            "openssl": ssl.OPENSSL_VERSION}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", help="fedproxy binary (default $FEDPROXY_BIN or build/...)")
    ap.add_argument("--seconds", type=float, default=5.0, help="duration of each phase")
    ap.add_argument("--procs", type=int, default=2, help="load generator processes")
    ap.add_argument("--conns", type=int, default=16, help="keep-alive connections in total")
    ap.add_argument("--idle", type=int, default=500, help="idle TLS connections for memory")
    opts = ap.parse_args()
    if opts.bin:
        os.environ["FEDPROXY_BIN"] = os.path.abspath(opts.bin)
    opts.seconds = max(1.0, min(opts.seconds, 120.0))
    opts.idle = max(1, min(opts.idle, 20000))

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, 2 * opts.idle + 256))
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))  # inherited by fedproxy

    pki = Pki.create()
    pki_paths = {"ca": pki.ca.crt, "crt": pki.client.crt, "key": pki.client.key}
    app = App(max_seconds=opts.seconds * 8 + 120).start()
    proxy = None
    rows = []
    try:
        proxy = Proxy(base_config(pki, "127.0.0.1:%d" % app.port)).start()
        port = proxy.ingress_port
        print("fedproxy pid %d on 127.0.0.1:%d, app (%s) on 127.0.0.1:%d"
              % (proxy.pid, port, app.kind, app.port), file=sys.stderr)

        rps, errs, p50, p99, nconn = bench_keepalive(app.port, pki_paths, opts.procs,
                                                     opts.conns, opts.seconds, False)
        rows.append(("app direct, plain keep-alive (%d conns)" % nconn,
                     "%.0f req/s" % rps, "p50 %.2f ms, p99 %.2f ms, errors %d" % (p50, p99, errs)))
        rps, errs, p50, p99, nconn = bench_keepalive(port, pki_paths, opts.procs,
                                                     opts.conns, opts.seconds, True)
        rows.append(("fedproxy ingress, mTLS keep-alive (%d conns)" % nconn,
                     "%.0f req/s" % rps, "p50 %.2f ms, p99 %.2f ms, errors %d" % (p50, p99, errs)))
        hs, errs = bench_handshakes(port, pki_paths, opts.procs, opts.seconds)
        rows.append(("full mTLS handshake + 1 request (%d procs)" % opts.procs,
                     "%.0f /s" % hs, "errors %d, no resumption" % errs))
        st = bench_s_time(port, pki, max(1, int(opts.seconds)))
        rows.append(("openssl s_time -new (1 proc, client view)",
                     "%.0f /s" % st if st else "n/a", ""))
        n, before, after_hs, after_req = bench_idle_memory(proxy, pki, opts.idle,
                                                           opts.seconds * 4 + 30)
        rows.append(("VmRSS before idle connections", "%d KiB" % before, ""))
        rows.append(("per idle TLS conn (after handshake)",
                     "%.1f KiB" % ((after_hs - before) / max(1, n)),
                     "%d conns, VmRSS %d KiB" % (n, after_hs)))
        rows.append(("per idle TLS conn (after 1 request)",
                     "%.1f KiB" % ((after_req - before) / max(1, n)),
                     "VmRSS %d KiB" % after_req))
        mem = proxy.memory_kib()
        rows.append(("fedproxy VmHWM at end", "%d KiB" % mem["VmHWM"], ""))
    finally:
        if proxy is not None:
            proxy.stop()
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
    print()
    print("machine: nproc=%s cpu=%s kernel=%s" % (info["nproc"], info["cpu"], info["kernel"]))
    print("client:  python %s, %s; app: %s; fedproxy: %s" % (info["python"], info["openssl"],
                                                           app.kind, ver))
    print("phase:   %.0f s each, %d load processes" % (opts.seconds, opts.procs))
    w = max(len(r[0]) for r in rows)
    print()
    print("%-*s  %14s  %s" % (w, "measurement", "result", "notes"))
    print("%s  %s  %s" % ("-" * w, "-" * 14, "-" * 30))
    for name, val, note in rows:
        print("%-*s  %14s  %s" % (w, name, val, note))


if __name__ == "__main__":
    main()

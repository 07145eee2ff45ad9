#!/usr/bin/env python3
"""conn_memory: what one connection costs fedproxy in memory (NOT a test).

Prints the numbers behind the memory limit of a deployment
(examples/kubernetes/README.md, "Sizing the memory limit"):

    python3 tests/bench/conn_memory.py                  # build/proxy/app/fedproxy
    python3 tests/bench/conn_memory.py --bin PATH --conns 1000

On 127.0.0.1 with ports chosen at run time, against the test backend
(tests/integration/fedtest/backend.py), it measures fedproxy's VmRSS:
  base    after start, before any connection;
  idle    N mTLS connections after the handshake;
  used    the same N after one small request each (the app's connection is
          pooled, so this includes the upstream side);
  stalled N more connections, each with a 1 MiB response in flight to a client
          that does not read (fedproxy holds what its flow control allows:
          the worst case of a live connection).
and divides each step by N. Then it prints the formula
    limit = base + max_connections x stalled-per-connection x 1.25
with the numbers filled in for a few max_connections values. Every loop is
bounded in count and time; it stops only the processes it started.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

from fedtest.backend import Backend  # noqa: E402
from fedtest.pki import Pki  # noqa: E402
from fedtest.proxy import Proxy, base_config, client_context  # noqa: E402

HEADROOM = 1.25


def tcp_mem_kib() -> int:
    """Kernel memory of all TCP sockets on the machine (/proc/net/sockstat,
    pages): socket buffers are charged to a pod's memory cgroup, not to RSS."""
    with open("/proc/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                m = re.search(r"\bmem (\d+)", line)
                return int(m.group(1)) * (os.sysconf("SC_PAGE_SIZE") // 1024) if m else 0
    return 0


def socket_buffers_kib(pid: int) -> float:
    """Kernel buffer memory of one process's TCP sockets (ss -tmp: receive
    queue r, send queue w and forward allocation f of each socket)."""
    try:
        out = subprocess.run(["ss", "-tmpnH"], stdout=subprocess.PIPE, text=True,
                             timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return float("nan")
    total = 0
    mine = False
    for line in out.splitlines():
        if "users:(" in line:
            mine = ("pid=%d," % pid) in line
        m = re.search(r"skmem:\((.*?)\)", line)
        if m and mine:
            fields = dict(re.findall(r"([a-z]+)(\d+)", m.group(1)))
            total += sum(int(fields.get(k, 0)) for k in ("r", "w", "f"))
            mine = False
    return total / 1024.0


def settle(proxy, seconds=1.0):
    time.sleep(seconds)
    return proxy.memory_kib()["VmRSS"]


def read_head_and_body(sock, want_body: int, deadline: float) -> None:
    buf = bytearray()
    while b"\r\n\r\n" not in buf and time.monotonic() < deadline:
        chunk = sock.recv(4096)
        if not chunk:
            return
        buf += chunk
    head, _, body = bytes(buf).partition(b"\r\n\r\n")
    got = len(body)
    while got < want_body and time.monotonic() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            return
        got += len(chunk)


def open_tls(ctx, port, n, deadline):
    socks = []
    for _ in range(n):
        if time.monotonic() > deadline:
            break
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        socks.append(ctx.wrap_socket(raw, server_hostname="localhost"))
    return socks


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", help="fedproxy binary (default $FEDPROXY_BIN or build/...)")
    ap.add_argument("--conns", type=int, default=500, help="connections per step (default 500)")
    ap.add_argument("--seconds", type=float, default=120, help="bound on each step")
    opts = ap.parse_args()
    if opts.bin:
        os.environ["FEDPROXY_BIN"] = os.path.abspath(opts.bin)
    n = max(10, min(opts.conns, 5000))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, 6 * n + 256))
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))  # inherited by fedproxy

    pki = Pki.create()
    backend = Backend().start()
    proxy = None
    held = []
    try:
        cfg = base_config(pki, backend.address, limits={"max_connections": 4 * n + 100})
        proxy = Proxy(cfg).start()
        ctx = client_context(pki, pki.client)
        port = proxy.ingress_port
        base = settle(proxy)
        kmem_base = tcp_mem_kib()

        idle_socks = open_tls(ctx, port, n, time.monotonic() + opts.seconds)
        held += idle_socks
        idle = settle(proxy)

        deadline = time.monotonic() + opts.seconds
        for s in idle_socks:
            s.sendall(b"GET /bytes/64 HTTP/1.1\r\nHost: app\r\n\r\n")
            read_head_and_body(s, 64, deadline)
        used = settle(proxy)
        kmem_used = tcp_mem_kib()
        own_used = socket_buffers_kib(proxy.pid)

        stalled_socks = open_tls(ctx, port, n, time.monotonic() + opts.seconds)
        held += stalled_socks
        for s in stalled_socks:
            s.sendall(b"GET /bytes/1048576 HTTP/1.1\r\nHost: app\r\n\r\n")
        stalled = settle(proxy, 3.0)
        hwm = proxy.memory_kib()["VmHWM"]
        kmem_stalled = tcp_mem_kib()
        own_stalled = socket_buffers_kib(proxy.pid)
    finally:
        for s in held:
            try:
                s.close()
            except OSError:
                pass
        if proxy is not None:
            proxy.stop()
        backend.stop()
        pki.cleanup()

    n_idle = len(idle_socks)
    n_stalled = len(stalled_socks)
    per_idle = (idle - base) / max(1, n_idle)
    per_used = (used - base) / max(1, n_idle)
    per_stalled = (stalled - used) / max(1, n_stalled)
    kper_stalled = (kmem_stalled - kmem_used) / max(1, n_stalled)
    own_per_stalled = (own_stalled - own_used) / max(1, n_stalled)
    worst = max(per_used, per_stalled + max(0.0, own_per_stalled))
    print("fedproxy VmRSS (KiB): base %d, %d idle %d, after a request each %d, "
          "+%d stalled downloads %d, VmHWM %d" % (base, n_idle, idle, used, n_stalled,
                                                  stalled, hwm))
    print()
    print("%-48s %10s" % ("per connection", "KiB"))
    print("%-48s %10.1f" % ("idle after the handshake", per_idle))
    print("%-48s %10.1f" % ("idle after one request (incl. upstream side)", per_used))
    print("%-48s %10.1f" % ("1 MiB response stalled at a non-reading client", per_stalled))
    print("%-48s %10.1f" % ("fedproxy's socket buffers, stalled (ss -tm)", own_per_stalled))
    print("%-48s %10.1f" % ("all TCP buffers on the host, stalled", kper_stalled))
    print()
    print("limit = base + max_connections x (RSS + socket buffers = %.1f KiB) x %.2f headroom"
          % (worst, HEADROOM))
    for mc in (1000, 2000, 5000, 10000):
        mib = (base + mc * worst * HEADROOM) / 1024.0
        print("  max_connections %5d -> %6.0f MiB" % (mc, mib))


if __name__ == "__main__":
    main()

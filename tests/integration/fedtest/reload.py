"""Hot-reload helpers (SPEC §8): the admin API (/status, /metrics, POST /reload),
file replacement the way operators and Kubernetes do it, the server certificate
a client sees, and a bounded background load that counts failed requests.

    srv_b = issue_server(pki, "rl-b")                 # same SANs as pki.server
    atomic_copy(srv_b.key, live_key); atomic_copy(srv_b.crt, live_crt)
    assert wait_fingerprint(port, ctx, srv_b.der_sha256(), 1.2) is not None
    with Load(port, ctx) as load: ...                 # load.failures == []

Every wait and loop in here is bounded in time and in count.
"""

from __future__ import annotations

import collections
import hashlib
import http.client
import json
import os
import secrets
import socket
import ssl
import tempfile
import threading
import time

from . import promtext, wire
from .pki import NODE_URI, Issued
from .proxy import Conn, tls_connect

# --- the admin API -------------------------------------------------------------


def admin_request(port: int, method: str, path: str, timeout: float = 10,
                  token: str | None = None):
    """One request to the admin listener (plain HTTP), with `Authorization:
    Bearer <token>` when a token is given. Returns (status, body bytes)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {"Connection": "close"}
    if token is not None:
        headers["Authorization"] = "Bearer " + token
    try:
        c.request(method, path, headers=headers)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def admin_exchange(port: int, method: str, path: str, *, token: str | None = None,
                   body: bytes | None = None, headers: dict | None = None, timeout: float = 10):
    """admin_request with a body and extra request headers (the management
    API, SPEC §12). Returns (status, response headers with lower-case
    names, body bytes)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    h = {"Connection": "close"}
    if token is not None:
        h["Authorization"] = "Bearer " + token
    if body is not None:
        h["Content-Type"] = "application/json"
    h.update(headers or {})
    try:
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def write_admin_token(path: str, token: str | None = None, mode: int = 0o600) -> str:
    """Write an admin token file (a random 64-hex-digit token unless given,
    with the newline `echo` would add) with `mode`, atomically. Returns the token."""
    token = token if token is not None else secrets.token_hex(32)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(token + "\n")
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    return token


def admin_status(port: int, token: str | None = None) -> dict:
    status, body = admin_request(port, "GET", "/status", token=token)
    if status != 200:
        raise AssertionError("GET /status answered %d: %r" % (status, body[:300]))
    return json.loads(body)


def admin_reload(port: int, timeout: float = 30, token: str | None = None):
    """POST /reload. Returns (http status, parsed JSON body)."""
    status, body = admin_request(port, "POST", "/reload", timeout, token=token)
    try:
        return status, json.loads(body)
    except ValueError:
        raise AssertionError("POST /reload body is not JSON: %r" % body[:300])


def metric_value(text: str, name: str, **labels) -> float | None:
    """The value of the sample `name{labels...}` in Prometheus text (other labels
    of the sample are ignored), summed over matching samples; None if absent.
    The text goes through the strict parser (promtext.py) first."""
    total = None
    for fam in promtext.parse(text).values():
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total = (total or 0.0) + s.value
    return total


def reloads_total(port: int, result: str) -> float:
    """fedproxy_reloads_total{result=...} (0 when the sample is not there yet)."""
    status, body = admin_request(port, "GET", "/metrics")
    if status != 200:
        raise AssertionError("GET /metrics answered %d" % status)
    return metric_value(body.decode("utf-8", "replace"), "fedproxy_reloads_total",
                        result=result) or 0.0


def wait_until(fn, timeout: float, interval: float = 0.05, max_tries: int = 10000):
    """Call fn() until it returns something truthy (returned), at most timeout
    seconds and max_tries calls; None if it never did."""
    deadline = time.monotonic() + timeout
    for _ in range(max_tries):
        v = fn()
        if v:
            return v
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)
    return None


def wait_status(port: int, pred, timeout: float = 10):
    """Poll /status until pred(status) holds; returns the status dict or None."""
    last = {}

    def check():
        last["s"] = admin_status(port)
        return last["s"] if pred(last["s"]) else None
    return wait_until(check, timeout) or None


# --- logs of a fedtest.proxy.Proxy -------------------------------------------------

def log_mark(proxy) -> int:
    """Position in proxy.logs; wait_log_after() looks only at later records."""
    with proxy._cond:
        return len(proxy.logs)


def logs_after(proxy, mark: int, pred=lambda r: True) -> list[dict]:
    with proxy._cond:
        return [r for r in proxy.logs[mark:] if pred(r)]


def wait_log_after(proxy, mark: int, pred, timeout: float = 5.0) -> dict | None:
    """The first record after `mark` that satisfies pred, waiting up to timeout."""
    deadline = time.monotonic() + timeout
    with proxy._cond:
        seen = mark
        for _ in range(1_000_000):  # woken once per log line at most
            for r in proxy.logs[seen:]:
                if pred(r):
                    return r
            seen = len(proxy.logs)
            left = deadline - time.monotonic()
            if left <= 0 or not proxy.running():
                return None
            proxy._cond.wait(min(left, 0.2))
    return None


def is_reload_result(r: dict) -> bool:
    return r.get("msg") in ("reloaded", "reload failed")


# --- certificates and files ------------------------------------------------------

def issue_server(pki, name: str) -> Issued:
    """Another node certificate from the test CA with the SANs of pki.server
    (a fresh key), so clients accept either one."""
    return pki.ca.issue(pki.root, name, server=True,
                        sans=["DNS:localhost", "IP:127.0.0.1", "URI:" + NODE_URI])


def sha256_of_pem_cert(path: str) -> str:
    with open(path) as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    return hashlib.sha256(der).hexdigest()


def atomic_write(path: str, data: bytes, mode: int | None = None) -> None:
    """Write to a temp file in the same directory, fsync, then rename over path."""
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600 if mode is None else mode)
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_copy(src: str, dst: str, mode: int | None = None) -> None:
    with open(src, "rb") as f:
        atomic_write(dst, f.read(), mode)


class K8sSecretDir:
    """A directory laid out like a Kubernetes Secret volume:

        tls.crt -> ..data/tls.crt      (one symlink per key, never changed)
        ..data  -> ..2026_01_01_00_00_00.000000001   (swapped atomically)
        ..2026_.../tls.crt             (the real files)

    swap() writes a new timestamped directory, points a temp symlink at it,
    renames that over ..data (atomic), then removes the old directory — what
    the kubelet's AtomicWriter does."""

    def __init__(self, root: str, files: dict[str, str]):
        self.root = root
        self.n = 0
        os.makedirs(root, exist_ok=True)
        self.current = self._make_version(files)
        os.symlink(self.current, os.path.join(root, "..data"))
        for name in files:
            os.symlink(os.path.join("..data", name), os.path.join(root, name))

    def path(self, name: str) -> str:
        return os.path.join(self.root, name)

    def _make_version(self, files: dict[str, str]) -> str:
        self.n += 1
        name = "..%s.%09d" % (time.strftime("%Y_%m_%d_%H_%M_%S", time.gmtime()), self.n)
        d = os.path.join(self.root, name)
        os.mkdir(d, 0o755)
        for key, src in files.items():
            with open(src, "rb") as f:
                data = f.read()
            dst = os.path.join(d, key)
            with open(dst, "wb") as f:
                f.write(data)
            os.chmod(dst, 0o600 if key.endswith(".key") else 0o644)
        return name

    def swap(self, files: dict[str, str]) -> None:
        old = self.current
        new = self._make_version(files)
        tmp_link = os.path.join(self.root, "..data_tmp")
        if os.path.lexists(tmp_link):
            os.unlink(tmp_link)
        os.symlink(new, tmp_link)
        os.rename(tmp_link, os.path.join(self.root, "..data"))
        self.current = new
        old_dir = os.path.join(self.root, old)
        for name in os.listdir(old_dir):
            os.unlink(os.path.join(old_dir, name))
        os.rmdir(old_dir)


# --- what a client sees ------------------------------------------------------------

def server_fingerprint(port: int, ctx: ssl.SSLContext, timeout: float = 5) -> str:
    """A new handshake; SHA-256 of the server certificate DER it presented."""
    s = tls_connect(port, ctx, timeout)
    try:
        return hashlib.sha256(s.getpeercert(binary_form=True)).hexdigest()
    finally:
        s.close()


def wait_fingerprint(port: int, ctx: ssl.SSLContext, expected: str, timeout: float,
                     max_tries: int = 2000):
    """New handshakes until the server presents `expected`. Returns the seconds
    it took, or None (with the last fingerprint or error in .last)."""
    start = time.monotonic()
    wait_fingerprint.last = None
    for _ in range(max_tries):
        try:
            got = server_fingerprint(port, ctx)
        except (OSError, ssl.SSLError) as e:
            got = "error: %r" % e
        wait_fingerprint.last = got
        elapsed = time.monotonic() - start
        if got == expected:
            return elapsed
        if elapsed >= timeout:
            return None
        time.sleep(0.01)
    return None


class Load:
    """Bounded background traffic against the ingress: `keepalive` threads each
    sending requests on one kept-alive connection, `fresh` threads each opening
    a new connection (full handshake, server fingerprint recorded) per request.
    Every request must be answered 200 by the test backend with its own target;
    anything else is a failure. A connection the proxy closes after a response
    that announced it (Connection: close) is reopened and not a failure.

    Threads stop at stop(), after max_seconds, or after max_requests each."""

    def __init__(self, port: int, ctx: ssl.SSLContext | None, *, keepalive: int = 2,
                 fresh: int = 1, max_seconds: float = 60, max_requests: int = 1_000_000,
                 pause: float = 0.002, tag: str = "load"):
        self.port = port
        self.ctx = ctx
        self.max_seconds = max_seconds
        self.max_requests = max_requests
        self.pause = pause
        self.tag = tag
        self.lock = threading.Lock()
        self.ok = 0
        self.failures: list[str] = []
        self.failure_count = 0
        self.fingerprints: collections.Counter = collections.Counter()
        self.reconnects = 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._keepalive, args=(i,), daemon=True)
                         for i in range(keepalive)]
        self._threads += [threading.Thread(target=self._fresh, args=(i,), daemon=True)
                          for i in range(fresh)]
        self.started = self.stopped = None

    def _fail(self, what: str) -> None:
        with self.lock:
            self.failure_count += 1
            if len(self.failures) < 20:
                self.failures.append("%.3fs %s" % (time.monotonic() - self.started, what))

    def _check(self, resp: wire.Response, target: str) -> bool:
        if resp.status != 200:
            self._fail("%s: status %d %r" % (target, resp.status, resp.body[:200]))
            return False
        try:
            got = resp.json().get("target")
        except ValueError:
            got = None
        if got != target:
            self._fail("%s: answered for %r" % (target, got))
            return False
        with self.lock:
            self.ok += 1
        return True

    def _running(self, n: int) -> bool:
        return (not self._stop.is_set() and n < self.max_requests
                and time.monotonic() - self.started < self.max_seconds)

    def _keepalive(self, idx: int) -> None:
        conn = None
        n = 0
        while self._running(n):
            n += 1
            target = "/%s/ka%d/%d" % (self.tag, idx, n)
            try:
                if conn is None:
                    conn = Conn.open(self.port, self.ctx, timeout=10)
                resp = conn.request("GET", target)
                self._check(resp, target)
                if resp.wants_close():
                    conn.close()
                    conn = None
                    with self.lock:
                        self.reconnects += 1
            except (OSError, ssl.SSLError, ValueError, wire.ConnectionClosed) as e:
                self._fail("%s: %r" % (target, e))
                if conn is not None:
                    conn.close()
                conn = None
            self._stop.wait(self.pause)
        if conn is not None:
            conn.close()

    def _fresh(self, idx: int) -> None:
        n = 0
        while self._running(n):
            n += 1
            target = "/%s/new%d/%d" % (self.tag, idx, n)
            try:
                with Conn.open(self.port, self.ctx, timeout=10) as c:
                    if self.ctx is not None:
                        fp = hashlib.sha256(c.sock.getpeercert(binary_form=True)).hexdigest()
                        with self.lock:
                            self.fingerprints[fp] += 1
                    resp = c.request("GET", target, [("Connection", "close")])
                    self._check(resp, target)
            except (OSError, ssl.SSLError, ValueError, wire.ConnectionClosed) as e:
                self._fail("%s: %r" % (target, e))
            self._stop.wait(self.pause)

    def start(self) -> "Load":
        self.started = time.monotonic()
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> "Load":
        self._stop.set()
        for t in self._threads:
            t.join(timeout=15)
        self.stopped = time.monotonic()
        return self

    def alive(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def summary(self) -> str:
        with self.lock:
            return ("%d ok, %d failed, %d reconnects, server certs seen %s; first failures: %s"
                    % (self.ok, self.failure_count, self.reconnects,
                       dict((k[:12], v) for k, v in self.fingerprints.items()),
                       self.failures[:5]))

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def vm_rss_kib(pid: int) -> int:
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def plain_request(port: int, method: str, target: str, headers=(), timeout: float = 10):
    """One plain-HTTP request on its own connection (insecure-mode ingress)."""
    with Conn(socket.create_connection(("127.0.0.1", port), timeout=timeout)) as c:
        return c.request(method, target, list(headers) + [("Connection", "close")])

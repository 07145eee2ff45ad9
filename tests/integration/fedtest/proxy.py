"""Run fedproxy under test and talk to it.

    cfg = base_config(pki, backend.address)
    with Proxy(cfg) as p:                # starts, waits for the ingress port
        conn = Conn.open(p.ingress_port, client_context(pki, pki.client))
        resp = conn.request("GET", "/echo")

The binary is $FEDPROXY_BIN, else <repo>/build/proxy/app/fedproxy. The proxy is
stopped with SIGTERM to its own PID (SIGKILL to the same PID if it does not exit
within the bound). Every wait in here is bounded.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

from . import wire
from .pki import NODE_URI

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
TLS13_SUITES = {"TLS_AES_256_GCM_SHA384", "TLS_AES_128_GCM_SHA256",
                "TLS_CHACHA20_POLY1305_SHA256"}


def fedproxy_bin() -> str:
    path = os.environ.get("FEDPROXY_BIN") or os.path.join(
        REPO_ROOT, "build", "proxy", "app", "fedproxy")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise RuntimeError("fedproxy binary not found at %s (set FEDPROXY_BIN)" % path)
    return path


def clean_env(extra: dict | None = None) -> dict:
    """The environment for fedproxy: ours minus FEDPROXY_* overrides (§8), which
    would change what the config says."""
    env = {k: v for k, v in os.environ.items()
           if not (k.startswith("FEDPROXY_") and k != "FEDPROXY_BIN")}
    env.update(extra or {})
    return env


def deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def base_config(pki, upstream: str, **over) -> dict:
    cfg = {
        "node": {"org": "acme-corp", "entity_uri": NODE_URI},
        "tls": {"cert": pki.server.crt, "key": pki.server.key,
                "ca_bundle": pki.ca_bundle, "crl": None},
        "ingress": {"listen": "127.0.0.1:0", "upstream": upstream},
        "egress": None,
        "admin": {"listen": "127.0.0.1:0"},
    }
    out = deep_merge(cfg, over)
    # Data-path tests need no peer policy: fedproxy refuses to start without
    # peers unless this is explicit.
    if not out.get("peers") and not out.get("grants"):
        out.setdefault("authenticate_only", True)
    return out


def run_cli(args, timeout: float = 20, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `fedproxy ARGS` to completion (bounded); text stdout/stderr."""
    return subprocess.run([fedproxy_bin(), *args], stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout, env=clean_env(env), text=True, errors="replace")


def write_config(cfg: dict, directory: str | None = None, name: str = "fedproxy.json") -> str:
    directory = directory or tempfile.mkdtemp(prefix="fedtest-cfg-")
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2)
    return path


class Proxy:
    """One fedproxy `run` process with its stderr parsed into JSON log records."""

    def __init__(self, config: dict, *, env: dict | None = None, start_timeout: float = 15,
                 wait_for=("ingress",)):
        self.config = config
        self.env = env
        self.start_timeout = start_timeout
        self.wait_for = wait_for
        self.dir = tempfile.mkdtemp(prefix="fedtest-proxy-")
        self.config_path = None
        self.proc: subprocess.Popen | None = None
        self.lines: list[str] = []        # every stderr line
        self.logs: list[dict] = []        # the ones that parsed as JSON objects
        self.stdout_lines: list[str] = []
        self.bad_lines: list[str] = []    # stderr lines that are not JSON objects
        self._cond = threading.Condition()
        self._threads = []
        self.ports: dict[str, int] = {}
        self.unix_paths: dict[str, str] = {}
        self.returncode = None

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> "Proxy":
        self.config_path = write_config(self.config, self.dir)
        self.proc = subprocess.Popen(
            [fedproxy_bin(), "run", "--config", self.config_path],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=clean_env(self.env), cwd=self.dir)
        for stream, fn in ((self.proc.stderr, self._on_stderr),
                           (self.proc.stdout, self._on_stdout)):
            t = threading.Thread(target=self._pump, args=(stream, fn), daemon=True)
            t.start()
            self._threads.append(t)
        for name in self.wait_for:
            self.wait_listening(name, self.start_timeout)
        return self

    def _pump(self, stream, fn):
        for raw in iter(stream.readline, b""):
            fn(raw.decode("utf-8", errors="replace").rstrip("\r\n"))
        with self._cond:
            self._cond.notify_all()

    def _on_stderr(self, line: str):
        rec = None
        try:
            v = json.loads(line)
            if isinstance(v, dict):
                rec = v
        except ValueError:
            pass
        with self._cond:
            self.lines.append(line)
            if rec is not None:
                self.logs.append(rec)
            elif line.strip():
                self.bad_lines.append(line)
            self._cond.notify_all()

    def _on_stdout(self, line: str):
        with self._cond:
            self.stdout_lines.append(line)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig) -> None:
        if self.running():
            os.kill(self.proc.pid, sig)

    def wait_exit(self, timeout: float):
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        for t in self._threads:
            t.join(timeout=2)
        for stream in (self.proc.stdout, self.proc.stderr):
            try:
                stream.close()
            except OSError:
                pass
        return self.returncode

    def stop(self, timeout: float = 15) -> int | None:
        """SIGTERM, wait up to timeout, then SIGKILL (same PID). Returns the exit
        code of the SIGTERM path, or None if it had to be killed.
        FEDTEST_VERBOSE=1 prints fedproxy's stderr afterwards."""
        try:
            return self._stop(timeout)
        finally:
            if os.environ.get("FEDTEST_VERBOSE") and self.proc is not None:
                print("\n--- fedproxy pid %d stderr (%s) ---\n%s\n--- end ---"
                      % (self.proc.pid, self.config_path, self.tail(10 ** 6)), file=sys.stderr)
            if not os.environ.get("FEDTEST_KEEP"):
                shutil.rmtree(self.dir, ignore_errors=True)

    def _stop(self, timeout: float) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is not None:
            return self.wait_exit(2)
        self.signal(signal.SIGTERM)
        rc = self.wait_exit(timeout)
        if rc is None:
            self.signal(signal.SIGKILL)
            self.wait_exit(5)
            return None
        return rc

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc):
        self.stop()

    # -- logs ----------------------------------------------------------------
    def find_logs(self, pred) -> list[dict]:
        with self._cond:
            return [r for r in self.logs if pred(r)]

    def wait_log(self, pred, timeout: float = 5.0) -> dict | None:
        deadline = time.monotonic() + timeout
        with self._cond:
            seen = 0
            while True:
                for r in self.logs[seen:]:
                    if pred(r):
                        return r
                seen = len(self.logs)
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                if self.proc.poll() is not None and all(not t.is_alive() for t in self._threads):
                    return None
                self._cond.wait(min(left, 0.2))

    def wait_listening(self, listener: str, timeout: float = 10.0) -> int:
        rec = self.wait_log(lambda r: r.get("msg") == "listening"
                            and r.get("listener") == listener, timeout)
        if rec is None:
            raise RuntimeError("fedproxy did not log listening for %r within %.0fs "
                               "(exit=%r); stderr tail:\n%s"
                               % (listener, timeout, self.proc.poll(), self.tail()))
        addr = str(rec.get("address", ""))
        if addr.startswith("unix:"):  # a unix-socket listener has a path, no port
            self.unix_paths[listener] = addr[len("unix:"):]
            return 0
        port = int(addr.rsplit(":", 1)[1])
        self.ports[listener] = port
        return port

    def tail(self, n: int = 40) -> str:
        with self._cond:
            return "\n".join(self.lines[-n:])

    @property
    def ingress_port(self) -> int:
        return self.ports["ingress"]

    @property
    def admin_port(self) -> int:
        if "admin" not in self.ports:
            self.wait_listening("admin", 5)
        return self.ports["admin"]

    # -- process facts -------------------------------------------------------
    def memory_kib(self) -> dict:
        """VmRSS / VmHWM / VmSize of the process in KiB, from /proc/PID/status."""
        out = {}
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM", "VmSize", "Threads"):
                    out[k] = int(v.split()[0])
        return out


class RssSampler:
    """Samples a process's VmRSS every `interval` seconds in a thread (bounded
    by `max_seconds`) and keeps the maximum."""

    def __init__(self, proxy: Proxy, interval: float = 0.05, max_seconds: float = 120):
        self.proxy = proxy
        self.interval = interval
        self.max_seconds = max_seconds
        self.max_rss = 0
        self.samples = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        deadline = time.monotonic() + self.max_seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                rss = self.proxy.memory_kib().get("VmRSS", 0)
            except OSError:
                return
            self.max_rss = max(self.max_rss, rss)
            self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join(timeout=2)


# --- clients ---------------------------------------------------------------

def client_context(pki, issued=None, *, ca: str | None = None, max_tls12: bool = False,
                   ciphersuites: str | None = None) -> ssl.SSLContext:
    """An mTLS client context: TLS 1.3 only (or TLS 1.2 max with max_tls12),
    verifying the server against the test CA; issued=None sends no certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if max_tls12:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    else:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(ca or pki.ca.crt)
    ctx.check_hostname = True
    if issued is not None:
        ctx.load_cert_chain(issued.crt, issued.key)
    return ctx


def tls_connect(port: int, ctx: ssl.SSLContext, timeout: float = 10,
                server_hostname: str = "localhost", session=None) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        return ctx.wrap_socket(raw, server_hostname=server_hostname, session=session)
    except BaseException:
        raw.close()
        raise


class Conn:
    """A client connection (TLS or plain) with a response reader."""

    def __init__(self, sock):
        self.sock = sock
        self.reader = wire.Reader(sock)

    @classmethod
    def open(cls, port: int, ctx: ssl.SSLContext | None, timeout: float = 10) -> "Conn":
        if ctx is None:
            return cls(socket.create_connection(("127.0.0.1", port), timeout=timeout))
        return cls(tls_connect(port, ctx, timeout))

    @property
    def local_port(self) -> int:
        return self.sock.getsockname()[1]

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_response(self, method: str = "GET", **kw) -> wire.Response:
        return wire.read_response(self.reader, method, **kw)

    def request(self, method: str, target: str, headers=None, body: bytes = b"",
                **kw) -> wire.Response:
        self.send(wire.build_request(method, target, headers, body))
        return self.read_response(method, **kw)

    def closed_within(self, timeout: float) -> tuple[bool, bytes]:
        buffered = bytes(self.reader.buf)
        self.reader.buf.clear()
        closed, got = wire.is_closed(self.sock, timeout)
        return closed, buffered + got

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def free_port() -> int:
    """A 127.0.0.1 port that nothing listens on right now (for 'dead app')."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def assert_json_error(tc, resp: wire.Response, status: int, code: str) -> dict:
    """SPEC §6: status, Content-Type application/json, body {error, message, request_id}."""
    tc.assertEqual(resp.status, status, "body: %r" % resp.body[:300])
    ctype = (resp.header("content-type") or "").split(";")[0].strip().lower()
    tc.assertEqual(ctype, "application/json", "Content-Type of a fedproxy error")
    try:
        body = resp.json()
    except ValueError:
        tc.fail("error body is not JSON: %r" % resp.body[:300])
    tc.assertEqual(body.get("error"), code, "body: %r" % body)
    tc.assertIsInstance(body.get("message"), str)
    tc.assertTrue(body.get("message"), "message must be a non-empty sentence")
    tc.assertIsInstance(body.get("request_id"), str)
    tc.assertTrue(body.get("request_id"), "request_id must be set")
    return body

"""Shared pieces of the benchmarks: processes pinned with taskset and stopped by
PID, RSS of a process tree, wrk runs and their parsing, statistics, machine info.

Nothing here kills by name: every process is stopped through the PID it was
started with (SIGTERM, then SIGKILL to the same PID after a bound).
"""

from __future__ import annotations

import os
import platform
import re
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH_DIR = os.path.dirname(HERE)
REPO = os.path.abspath(os.path.join(BENCH_DIR, "..", ".."))
INTEGRATION = os.path.join(REPO, "tests", "integration")

WRK_SLACK = 30  # seconds beyond -d before a wrk run is killed


def free_port() -> int:
    """A port that was free a moment ago (for programs that cannot bind :0 and
    report it). Racy by nature; the caller retries nothing, it just fails loudly."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def raise_nofile(want: int) -> tuple[int, int]:
    """Raise RLIMIT_NOFILE (inherited by children) towards want; returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    new = min(hard, max(soft, want)) if hard != resource.RLIM_INFINITY else max(soft, want)
    if new > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def wait_port(port: int, timeout: float, proc: subprocess.Popen | None = None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def taskset_prefix(cpus: str | None) -> list[str]:
    if not cpus:
        return []
    ts = shutil.which("taskset")
    if not ts:
        raise RuntimeError("taskset not found (util-linux)")
    return [ts, "-c", cpus]


class Service:
    """One foreground process, optionally pinned with `taskset -c CPUS` (taskset
    execs the program, so the PID is the program's), its output in a log file
    inside its own temp dir. stop() signals that PID only."""

    def __init__(self, name: str, argv: list[str], cpus: str | None, workdir: str | None = None,
                 env: dict | None = None):
        self.name = name
        self.argv = argv
        self.cpus = cpus
        self.dir = workdir or tempfile.mkdtemp(prefix="fedbench-%s-" % name)
        self.env = env
        self.proc: subprocess.Popen | None = None
        self.log_path = os.path.join(self.dir, "output.log")
        self._log = None

    def start(self) -> "Service":
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(taskset_prefix(self.cpus) + self.argv, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT, cwd=self.dir,
                                     env=self.env)
        return self

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n: int = 3000) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 10) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
            except ProcessLookupError:
                pass
        if self._log is not None:
            self._log.close()
            self._log = None

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


# --- /proc ---------------------------------------------------------------------------

def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces and parentheses
        ppid = int(st[st.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids


def process_tree(pid: int) -> list[int]:
    kids = _children_map()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def status_kib(pid: int, field: str = "VmRSS") -> int:
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_kib(pid: int) -> int:
    """VmRSS summed over pid and its descendants (nginx master + workers, ...)."""
    return sum(status_kib(p) for p in process_tree(pid))


def affinity_of_tree(pid: int) -> dict[str, str]:
    """'pid/tid' -> Cpus_allowed_list for every thread of pid and its descendants."""
    out = {}
    for p in process_tree(pid):
        try:
            tids = os.listdir("/proc/%d/task" % p)
        except OSError:
            continue
        for t in tids:
            try:
                with open("/proc/%d/task/%s/status" % (p, t)) as f:
                    for line in f:
                        if line.startswith("Cpus_allowed_list:"):
                            out["%d/%s" % (p, t)] = line.split(":", 1)[1].strip()
            except OSError:
                pass
    return out


def cpu_list(spec: str) -> set[int]:
    out = set()
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            a, b = part.split("-", 1)
            out.update(range(int(a), int(b) + 1))
        else:
            out.add(int(part))
    return out


def check_affinity(pid: int, cpus: str) -> list[str]:
    """Threads of pid's tree not pinned exactly to cpus (empty = all fine)."""
    want = cpu_list(cpus)
    return ["%s=%s" % (k, v) for k, v in affinity_of_tree(pid).items() if cpu_list(v) != want]


def proc_cpu_seconds(pid: int) -> float:
    """utime+stime of pid and its descendants (seconds)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in process_tree(pid):
        try:
            with open("/proc/%d/stat" % p) as f:
                st = f.read()
            fields = st[st.rindex(")") + 2:].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, ValueError, IndexError):
            pass
    return total / tick


def cpu_jiffies() -> dict[int, tuple[int, int]]:
    """Per CPU (busy, total) jiffies from /proc/stat (busy = all but idle+iowait)."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3:4].isdigit():
                parts = line.split()
                vals = [int(x) for x in parts[1:]]
                idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
                total = sum(vals[:8])
                out[int(parts[0][3:])] = (total - idle, total)
    return out


def cpu_busy(before: dict, after: dict) -> dict[int, float]:
    """Fraction of time each CPU was busy between two cpu_jiffies() samples
    (every process on the machine, not only ours)."""
    out = {}
    for c, (b1, t1) in after.items():
        b0, t0 = before.get(c, (0, 0))
        out[c] = (b1 - b0) / (t1 - t0) if t1 > t0 else float("nan")
    return out


# --- statistics ----------------------------------------------------------------------

def median(xs):
    xs = sorted(x for x in xs if x == x)  # drop NaN
    if not xs:
        return float("nan")
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def summary(xs) -> dict:
    ys = [x for x in xs if x == x]
    if not ys:
        return {"median": float("nan"), "min": float("nan"), "max": float("nan"), "n": 0, "values": list(xs)}
    return {"median": median(ys), "min": min(ys), "max": max(ys), "n": len(ys), "values": list(xs)}


# --- wrk ---------------------------------------------------------------------------------

def _ms(v: str, unit: str) -> float:
    return float(v) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


def parse_wrk(out: str) -> dict:
    r: dict = {}
    m = re.search(r"Requests/sec:\s*([\d.]+)", out)
    r["rps"] = float(m.group(1)) if m else float("nan")
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", out)
    r["requests"] = int(m.group(1)) if m else 0
    r["duration_s"] = _ms(m.group(2), m.group(3)) / 1e3 if m else float("nan")
    for pct in ("50", "99"):
        m = re.search(r"^\s*%s(?:\.000)?%%\s+([\d.]+)(us|ms|s|m)\s*$" % pct, out, re.M)
        r["p" + pct] = _ms(*m.groups()) if m else float("nan")
    non2xx = 0
    m = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
    if m:
        non2xx = int(m.group(1))
    sock = 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        sock = sum(int(x) for x in m.groups())
    r["non2xx"] = non2xx
    r["socket_errors"] = sock
    r["errors"] = non2xx + sock
    return r


def run_wrk(url: str, conns: int, seconds: float, cpus: str | None, host: str | None = None,
            threads: int = 1, timeout_s: int = 5) -> dict:
    """One bounded wrk run (keep-alive, --latency); killed by PID if it overruns."""
    wrk = shutil.which("wrk") or "/usr/bin/wrk"
    secs = max(1, int(round(seconds)))
    cmd = taskset_prefix(cpus) + [wrk, "-t%d" % max(1, min(threads, conns)), "-c%d" % conns,
                                  "-d%ds" % secs, "--timeout", "%ds" % timeout_s, "--latency"]
    if host:
        cmd += ["-H", "Host: " + host]
    cmd.append(url)
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = p.communicate(timeout=secs + WRK_SLACK)
    except subprocess.TimeoutExpired:
        os.kill(p.pid, signal.SIGKILL)
        p.communicate(timeout=5)
        return {"conns": conns, "rps": float("nan"), "p50": float("nan"), "p99": float("nan"),
                "errors": -1, "non2xx": 0, "socket_errors": -1, "requests": 0, "raw": "timeout"}
    except BaseException:  # Ctrl-C / SIGTERM: do not leave wrk running
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
            p.wait(5)
        raise
    r = parse_wrk(out)
    r["conns"] = conns
    r["raw"] = out
    return r


# --- HTTP probes ------------------------------------------------------------------------

def http_get(port: int, path: str, host: str, timeout: float = 10.0, keepalive_count: int = 1,
             ssl_ctx: ssl.SSLContext | None = None) -> list[tuple[int, int]]:
    """keepalive_count GETs over one connection; [(status, body length)].
    Content-Length framed responses only (what every backend here sends)."""
    out = []
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        s = ssl_ctx.wrap_socket(raw, server_hostname="localhost") if ssl_ctx else raw
        buf = bytearray()
        for i in range(keepalive_count):
            last = i == keepalive_count - 1
            s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\n"
                       % (path, host, "Connection: close\r\n" if last else "")).encode())
            while b"\r\n\r\n" not in buf:
                d = s.recv(65536)
                if not d:
                    raise OSError("connection closed before the response head")
                buf += d
            i_end = buf.index(b"\r\n\r\n")
            head = bytes(buf[:i_end]).decode(errors="replace")
            status = int(head.split(" ", 2)[1])
            m = re.search(r"(?im)^content-length:\s*(\d+)", head)
            n = int(m.group(1)) if m else 0
            del buf[:i_end + 4]
            while len(buf) < n:
                d = s.recv(1 << 20)
                if not d:
                    raise OSError("connection closed in the body")
                buf += d
            del buf[:n]
            out.append((status, n))
        if ssl_ctx:
            s.close()
    return out


# --- machine and versions ------------------------------------------------------------

def machine_info() -> dict:
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        load = os.getloadavg()
    except OSError:
        load = (float("nan"),) * 3
    return {"nproc": os.cpu_count(), "cpu": model, "kernel": platform.release(),
            "python": platform.python_version(), "python_openssl": ssl.OPENSSL_VERSION,
            "loadavg_at_start": [round(x, 2) for x in load]}


def tool_version(argv: list[str], pattern: str | None = None) -> str:
    try:
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    out = p.stdout.strip()
    if pattern:
        m = re.search(pattern, out)
        return m.group(0) if m else out.splitlines()[0] if out else "?"
    return out.splitlines()[0] if out else "?"

"""A real redis-server (Debian's package) for the shared-limit tests: on a
free port, no persistence, ended by PID."""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from .proxy import free_port


def redis_server_bin() -> str | None:
    return shutil.which("redis-server") or (os.path.exists("/usr/bin/redis-server") and "/usr/bin/redis-server") or None


class RedisServer:
    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.proc = None
        self.dir = tempfile.mkdtemp(prefix="fedtest-redis-")

    @property
    def url(self) -> str:
        return "redis://127.0.0.1:%d/0" % self.port

    def start(self, timeout: float = 10) -> "RedisServer":
        binary = redis_server_bin()
        if not binary:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server; packaging/install-deps.sh does)")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.dir, "--daemonize", "no", "--protected-mode", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.command("PING") == b"+PONG":
                return self
            if self.proc.poll() is not None:
                raise RuntimeError("redis-server exited with %s" % self.proc.returncode)
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("redis-server did not answer PING within %ss" % timeout)

    def command(self, *args: str) -> bytes | None:
        """One command, its first reply line (enough for PING, DBSIZE, FLUSHALL)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                req = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a.encode()), a.encode()) for a in args)
                s.sendall(req)
                return s.recv(4096).split(b"\r\n", 1)[0]
        except OSError:
            return None

    def cli(self, *args: str) -> str:
        """redis-cli (Debian's redis-tools) against this server: its stdout."""
        out = subprocess.run(["redis-cli", "-p", str(self.port), *args], capture_output=True, timeout=10)
        return out.stdout.decode()

    def pause(self) -> None:
        """SIGSTOP: connections stay open, nothing answers (a hung server)."""
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL: the data is gone (no persistence), as after a crash."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.resume()
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

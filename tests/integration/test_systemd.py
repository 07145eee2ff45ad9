#!/usr/bin/env python3
"""systemd integration (SPEC §10 "systemd", issue 15 part 3) without systemd:
a fake notify socket (an AF_UNIX datagram socket passed as $NOTIFY_SOCKET)
records what fedproxy tells the service manager, sockets are handed over the
way systemd's socket activation does ($LISTEN_PID/$LISTEN_FDS, fds from 3),
and `fedproxy reload` (ExecReload) is checked for the exit code systemd sees.

Run: FEDPROXY_BIN=build/proxy/app/fedproxy python3 tests/integration/test_systemd.py
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fedtest.backend import Backend  # noqa: E402
from fedtest.case import BackendTestCase, main, shared_pki  # noqa: E402
from fedtest.proxy import (Conn, Proxy, base_config, clean_env, client_context,  # noqa: E402
                           fedproxy_bin, free_port, run_cli, write_config)
from fedtest.reload import admin_request, write_admin_token  # noqa: E402


def monotonic_usec() -> int:
    # time.monotonic() is CLOCK_MONOTONIC on Linux, the clock MONOTONIC_USEC uses.
    return int(time.clock_gettime(time.CLOCK_MONOTONIC) * 1_000_000)


def can_connect(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return True
    except OSError:
        return False


class FakeNotifySocket:
    """What systemd's notify socket receives: one entry per datagram, as a
    dict of its KEY=VALUE lines, with the time it arrived. on_ready(msg) runs
    in the receiving thread as soon as a READY=1 arrives (before the next
    datagram is read), so it can observe the state READY=1 claims."""

    def __init__(self, on_ready=None):
        self.dir = tempfile.mkdtemp(prefix="fedtest-notify-")
        self.path = os.path.join(self.dir, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.on_ready = on_ready
        self.messages = []
        self.cond = threading.Condition()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            msg = {"_raw": data.decode(), "_at": monotonic_usec()}
            for line in data.decode().splitlines():
                k, _, v = line.partition("=")
                msg[k] = v
            if msg.get("READY") == "1" and self.on_ready:
                self.on_ready(msg)
            with self.cond:
                self.messages.append(msg)
                self.cond.notify_all()

    def wait(self, pred, timeout=10.0, start=0):
        """The first message at index >= start matching pred, or None."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for m in self.messages[start:]:
                    if pred(m):
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)

    def count(self):
        with self.cond:
            return len(self.messages)

    def close(self):
        self._stop.set()
        self._t.join(timeout=2)
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def is_ready(m):
    return m.get("READY") == "1"


class NotifyTest(BackendTestCase):
    """READY=1 once every listener accepts, RELOADING=1/READY=1 around each
    reload (SIGHUP, POST /reload, failed or not), STOPPING=1 at SIGTERM."""

    def setUp(self):
        self.ports = {"ingress": free_port(), "admin": free_port()}
        self.accepting_at_ready = None

        def on_ready(msg):
            # Only the first READY=1 (start-up) is about the listeners.
            if self.accepting_at_ready is None:
                self.accepting_at_ready = {k: can_connect(p) for k, p in self.ports.items()}

        self.notify = FakeNotifySocket(on_ready)
        self.addCleanup(self.notify.close)
        cfg = base_config(self.pki, self.backend.address,
                          ingress={"listen": "127.0.0.1:%d" % self.ports["ingress"]},
                          admin={"listen": "127.0.0.1:%d" % self.ports["admin"]})
        self.proxy = Proxy(cfg, env={"NOTIFY_SOCKET": self.notify.path})
        self.proxy.start()
        self.addCleanup(self.proxy.stop)

    def test_ready_only_once_listeners_accept(self):
        ready = self.notify.wait(is_ready, 10)
        self.assertIsNotNone(ready, "no READY=1; stderr:\n" + self.proxy.tail())
        self.assertEqual(self.accepting_at_ready, {"ingress": True, "admin": True},
                         "READY=1 arrived before every port accepted")
        self.assertIn("STATUS", ready, ready)
        self.assertIn("ingress 127.0.0.1:%d" % self.ports["ingress"], ready["STATUS"])
        self.assertIn("admin 127.0.0.1:%d" % self.ports["admin"], ready["STATUS"])
        # Nothing else claims readiness: the first message is READY=1, once.
        time.sleep(0.3)
        self.assertEqual(sum(1 for m in self.notify.messages if is_ready(m)), 1, self.notify.messages)
        self.assertIs(self.notify.messages[0], ready)

    def assert_reload_cycle(self, trigger, want_status_word):
        start = self.notify.count()
        before = monotonic_usec()
        trigger()
        reloading = self.notify.wait(lambda m: m.get("RELOADING") == "1", 10, start)
        self.assertIsNotNone(reloading, "no RELOADING=1; stderr:\n" + self.proxy.tail())
        after = monotonic_usec()
        usec = int(reloading.get("MONOTONIC_USEC", "0"))
        self.assertTrue(before <= usec <= after,
                        "MONOTONIC_USEC=%d not between %d and %d" % (usec, before, after))
        idx = self.notify.messages.index(reloading)
        ready = self.notify.wait(is_ready, 10, idx + 1)
        self.assertIsNotNone(ready, "no READY=1 after RELOADING=1")
        self.assertIn(want_status_word, ready.get("STATUS", ""), ready)
        return ready

    def test_reload_by_sighup_and_post(self):
        self.assertIsNotNone(self.notify.wait(is_ready, 10))
        self.assert_reload_cycle(lambda: self.proxy.signal(signal.SIGHUP), "reloaded")
        self.assert_reload_cycle(lambda: admin_request(self.ports["admin"], "POST", "/reload"),
                                 "reloaded")

    def test_failed_reload_is_ready_again_with_the_reason(self):
        self.assertIsNotNone(self.notify.wait(is_ready, 10))
        cfg = json.load(open(self.proxy.config_path))
        missing = os.path.join(self.proxy.dir, "no-such-cert.pem")
        cfg["tls"]["cert"] = missing
        write_config(cfg, self.proxy.dir)
        ready = self.assert_reload_cycle(lambda: admin_request(self.ports["admin"], "POST", "/reload"),
                                         "reload failed")
        self.assertIn(missing, ready["STATUS"])
        self.assertIn("previous configuration", ready["STATUS"])

    def test_stopping_on_sigterm(self):
        self.assertIsNotNone(self.notify.wait(is_ready, 10))
        start = self.notify.count()
        self.proxy.signal(signal.SIGTERM)
        stopping = self.notify.wait(lambda m: m.get("STOPPING") == "1", 10, start)
        self.assertIsNotNone(stopping, "no STOPPING=1; stderr:\n" + self.proxy.tail())
        self.assertIn("SIGTERM", stopping.get("STATUS", ""))
        self.assertEqual(self.proxy.wait_exit(15), 0)


class AbstractNotifySocketTest(unittest.TestCase):
    """$NOTIFY_SOCKET=@name is a Linux abstract socket (what systemd uses in
    some containers)."""

    def test_abstract_name(self):
        pki = shared_pki()
        backend = Backend().start()
        self.addCleanup(backend.stop)
        name = "fedtest-notify-%d-%d" % (os.getpid(), time.monotonic_ns())
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.bind("\0" + name)
        s.settimeout(10)
        self.addCleanup(s.close)
        p = Proxy(base_config(pki, backend.address), env={"NOTIFY_SOCKET": "@" + name})
        p.start()
        self.addCleanup(p.stop)
        self.assertIn(b"READY=1", s.recv(4096))


class BindFailureTest(unittest.TestCase):
    """A listener that cannot be bound: exit 2, one fatal line naming the
    listener, address and reason, no "listening" line for any listener (also
    not for those bound before it), and no READY=1."""

    @classmethod
    def setUpClass(cls):
        cls.pki = shared_pki()
        cls.dir = tempfile.mkdtemp(prefix="fedtest-bind-")
        cls.upstream = "127.0.0.1:%d" % free_port()

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def run_and_fail(self, name, cfg, listener, address, reason):
        notify = FakeNotifySocket()
        self.addCleanup(notify.close)
        path = write_config(cfg, self.dir, name + ".json")
        p = run_cli(["run", "--config", path], timeout=15, env={"NOTIFY_SOCKET": notify.path})
        self.assertEqual(p.returncode, 2, p.stderr)
        recs = [json.loads(ln) for ln in p.stderr.splitlines() if ln.strip()]
        self.assertFalse([r for r in recs if r.get("msg") == "listening"],
                         "a listener claimed to be listening:\n" + p.stderr)
        self.assertFalse([r for r in recs if "listening" in json.dumps(r) and r.get("level") != "fatal"],
                         p.stderr)
        fatal = [r for r in recs if r.get("level") == "fatal"]
        self.assertEqual(len(fatal), 1, p.stderr)
        self.assertEqual(fatal[0].get("listener"), listener, fatal[0])
        self.assertEqual(fatal[0].get("address"), address, fatal[0])
        self.assertIn(address, fatal[0]["msg"])
        self.assertIn(reason, fatal[0]["msg"].lower())
        time.sleep(0.2)
        self.assertFalse([m for m in notify.messages if is_ready(m)], notify.messages)

    def busy_port(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        self.addCleanup(s.close)
        return s.getsockname()[1]

    def test_ingress_port_in_use(self):
        addr = "127.0.0.1:%d" % self.busy_port()
        cfg = base_config(self.pki, self.upstream, ingress={"listen": addr})
        self.run_and_fail("ingress-busy", cfg, "ingress", addr, "address already in use")

    def test_admin_port_in_use_after_ingress_bound(self):
        # ingress binds first and succeeds: it must still not say "listening".
        addr = "127.0.0.1:%d" % self.busy_port()
        cfg = base_config(self.pki, self.upstream, admin={"listen": addr})
        self.run_and_fail("admin-busy", cfg, "admin", addr, "address already in use")

    def test_egress_port_in_use(self):
        addr = "127.0.0.1:%d" % self.busy_port()
        cfg = base_config(self.pki, self.upstream, egress={"listen": addr})
        self.run_and_fail("egress-busy", cfg, "egress", addr, "address already in use")

    def test_address_not_local(self):
        addr = "192.0.2.1:%d" % free_port()  # TEST-NET-1: on no interface here
        cfg = base_config(self.pki, self.upstream, ingress={"listen": addr})
        self.run_and_fail("not-local", cfg, "ingress", addr, "address not available")


# Runs fedproxy the way systemd does after socket activation: same pid as
# the one LISTEN_PID names (exec keeps it), inherited sockets from fd 3.
WRAPPER = r"""
import fcntl, os, sys
fds = [int(x) for x in sys.argv[1].split(",")]
names = sys.argv[2]
# First move every source above the target range, then onto 3, 4, ...: a
# source may itself sit on one of the target numbers.
high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for fd in fds]
for fd in fds:
    os.close(fd)
for i, fd in enumerate(high):
    os.dup2(fd, 3 + i)  # inheritable
    os.close(fd)
os.environ["LISTEN_PID"] = os.environ.get("FEDTEST_LISTEN_PID", str(os.getpid()))
os.environ["LISTEN_FDS"] = str(len(fds))
if names:
    os.environ["LISTEN_FDNAMES"] = names
os.execv(sys.argv[3], sys.argv[3:])
"""


class SocketActivationTest(BackendTestCase):
    """$LISTEN_FDS sockets are used instead of binding: matched by address
    (ingress) or by $LISTEN_FDNAMES (admin, whose config port 0 matches no
    address), and a real mTLS request goes through the inherited socket."""

    def listening_socket(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        self.addCleanup(s.close)
        return s

    def start(self, cfg, socks, names="", env=None):
        d = tempfile.mkdtemp(prefix="fedtest-sockact-")
        self.addCleanup(shutil.rmtree, d, True)
        path = write_config(cfg, d)
        fds = [s.fileno() for s in socks]
        p = subprocess.Popen(
            [sys.executable, "-c", WRAPPER, ",".join(map(str, fds)), names,
             fedproxy_bin(), "run", "--config", path],
            pass_fds=fds, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=clean_env(env), text=True, errors="replace")
        self.addCleanup(lambda: p.poll() is None and (p.kill(), p.wait()))
        return p

    def read_logs_until(self, p, pred, timeout=10):
        """stderr JSON records up to the first matching pred (bounded)."""
        recs = []
        deadline = time.monotonic() + timeout
        result = {}

        def reader():
            for line in p.stderr:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                recs.append(rec)
                if pred(rec):
                    result["hit"] = rec
                    return

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        t.join(max(0.0, deadline - time.monotonic()))
        return result.get("hit"), recs

    def test_inherited_sockets_serve(self):
        ingress = self.listening_socket()
        admin = self.listening_socket()
        ingress_addr = "127.0.0.1:%d" % ingress.getsockname()[1]
        cfg = base_config(self.pki, self.backend.address, ingress={"listen": ingress_addr},
                          admin={"listen": "127.0.0.1:0"})
        # fd 3 = admin (by name), fd 4 = ingress (by address; its name says nothing)
        p = self.start(cfg, [admin, ingress], names="admin:fedproxy.socket")
        started, recs = self.read_logs_until(p, lambda r: r.get("msg") == "started")
        self.assertIsNotNone(started, "no start: %s" % recs)
        listening = {r["listener"]: r for r in recs if r.get("msg") == "listening"}
        self.assertEqual(listening["ingress"]["address"], ingress_addr)
        self.assertTrue(listening["ingress"]["inherited"])
        self.assertEqual(listening["admin"]["address"], "127.0.0.1:%d" % admin.getsockname()[1])
        self.assertTrue(listening["admin"]["inherited"])
        # Our copies closed: only fedproxy holds the sockets now.
        port = ingress.getsockname()[1]
        admin_port = admin.getsockname()[1]
        ingress.close()
        admin.close()
        conn = Conn.open(port, client_context(self.pki, self.pki.client))
        resp = conn.request("GET", "/socket-activated")
        conn.close()
        self.assertEqual(resp.status, 200)
        self.assertTrue(any(r.target == "/socket-activated" for r in self.backend.requests))
        status, _ = admin_request(admin_port, "GET", "/healthz")
        self.assertEqual(status, 200)
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(15), 0)

    def test_inherited_socket_with_two_workers(self):
        # Worker 1 listens on its own duplicate of the inherited socket (a
        # failure there is a fatal start); requests keep working.
        ingress = self.listening_socket()
        port = ingress.getsockname()[1]
        cfg = base_config(self.pki, self.backend.address, workers=2,
                          ingress={"listen": "127.0.0.1:%d" % port})
        p = self.start(cfg, [ingress])
        started, recs = self.read_logs_until(p, lambda r: r.get("msg") == "started")
        self.assertIsNotNone(started, recs)
        ingress.close()
        ctx = client_context(self.pki, self.pki.client)
        for i in range(40):
            conn = Conn.open(port, ctx)
            self.assertEqual(conn.request("GET", "/two-workers/%d" % i).status, 200)
            conn.close()
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(15), 0)

    def test_unused_socket_is_closed_with_a_warning(self):
        extra = self.listening_socket()
        cfg = base_config(self.pki, self.backend.address)
        p = self.start(cfg, [extra], names="metrics")
        started, recs = self.read_logs_until(p, lambda r: r.get("msg") == "started")
        self.assertIsNotNone(started, recs)
        warn = [r for r in recs if r.get("msg", "").startswith("inherited socket matches no listener")]
        self.assertEqual(len(warn), 1, recs)
        self.assertIn("metrics", warn[0]["socket"])
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(15), 0)

    def test_other_pid_is_ignored(self):
        # LISTEN_PID names another process: the sockets are not ours, so
        # fedproxy binds the address itself, which the socket still holds.
        ingress = self.listening_socket()
        addr = "127.0.0.1:%d" % ingress.getsockname()[1]
        cfg = base_config(self.pki, self.backend.address, ingress={"listen": addr})
        p = self.start(cfg, [ingress], env={"FEDTEST_LISTEN_PID": "1"})
        out, err = p.communicate(timeout=15)
        self.assertEqual(p.returncode, 2, err)
        self.assertIn("address already in use", err)

    def test_wrong_kind_of_socket_is_fatal(self):
        # A datagram socket named "ingress" cannot serve connections.
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        self.addCleanup(s.close)
        cfg = base_config(self.pki, self.backend.address)
        p = self.start(cfg, [s], names="ingress")
        out, err = p.communicate(timeout=15)
        self.assertEqual(p.returncode, 2, err)
        self.assertIn("not a stream socket", err)
        self.assertNotIn('"msg":"listening"', err)


class ReloadCommandTest(BackendTestCase):
    """`fedproxy reload` (ExecReload): 0 only when the reload applied
    everything; 1 when it failed or needs a restart or was refused; 2 on a
    usage error; 3 when nothing answers."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="fedtest-reloadcmd-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.token_file = os.path.join(self.dir, "admin.token")
        write_admin_token(self.token_file)
        self.sock = os.path.join(self.dir, "admin.sock")

    def start(self, admin_listen):
        self.cfg = base_config(self.pki, self.backend.address,
                               admin={"listen": admin_listen, "token_file": self.token_file})
        p = Proxy(self.cfg, wait_for=("ingress", "admin"))
        p.start()
        self.addCleanup(p.stop)
        return p

    def rewrite(self, p, **over):
        cfg = json.loads(json.dumps(self.cfg))
        for k, v in over.items():
            cfg[k] = {**cfg.get(k, {}), **v}
        write_config(cfg, p.dir)

    def reload(self, *args):
        return run_cli(["reload", *args], timeout=30)

    def test_exit_codes_over_tcp(self):
        p = self.start("127.0.0.1:0")
        # The config says port 0: --admin names the port it got.
        admin = "127.0.0.1:%d" % p.admin_port
        r = self.reload("--config", p.config_path, "--admin", admin)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("reloaded", r.stdout)

        missing = os.path.join(p.dir, "gone.crt")
        self.rewrite(p, tls={"cert": missing})
        r = self.reload("--config", p.config_path, "--admin", admin)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("reload failed", r.stderr)
        self.assertIn(missing, r.stderr)
        self.assertTrue(p.running())

        # Config text that does not even parse: --admin still reaches it,
        # and the reload fails (exit 1), naming the problem.
        with open(p.config_path, "w") as f:
            f.write("{ not json")
        r = self.reload("--config", p.config_path, "--admin", admin)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        # Without --admin it cannot know where to ask: a usage error.
        r = self.reload("--config", p.config_path)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)

        # A change only a restart applies: not a success.
        self.rewrite(p, ingress={"listen": "127.0.0.1:%d" % free_port()})
        r = self.reload("--config", p.config_path, "--admin", admin, "--json")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("ingress.listen", r.stderr)
        body = json.loads(r.stdout)
        self.assertEqual(body["result"], "restart_required", body)
        self.assertEqual(body["restart_required"], ["ingress.listen"])
        self.assertFalse(body["ok"])

        # Back to the running config: success again.
        self.rewrite(p)
        r = self.reload("--config", p.config_path, "--admin", admin)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

        # A wrong token: refused by the admin API (1), not "reloaded".
        wrong = os.path.join(self.dir, "wrong.token")
        write_admin_token(wrong)
        r = self.reload("--admin", admin, "--token-file", wrong)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("401", r.stderr)

        # Nothing answers: 3.
        r = self.reload("--admin", "127.0.0.1:%d" % free_port(), "--token-file", self.token_file)
        self.assertEqual(r.returncode, 3, r.stdout + r.stderr)

    def test_unix_admin_socket_from_config(self):
        # ExecReload's form: only --config; address and token come from it.
        p = self.start("unix:" + self.sock)
        r = self.reload("--config", p.config_path)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        reloaded = p.wait_log(lambda rec: rec.get("msg") == "reloaded" and rec.get("trigger") == "admin", 5)
        self.assertIsNotNone(reloaded, p.tail())
        self.assertEqual(reloaded.get("result"), "ok")
        self.rewrite(p, tls={"key": os.path.join(p.dir, "gone.key")})
        r = self.reload("--config", p.config_path)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)

    def test_usage_errors(self):
        for args in (["--bogus"], ["extra"], ["--admin"], ["--timeout-ms", "soon", "--admin", "127.0.0.1:1"]):
            with self.subTest(args=args):
                r = self.reload(*args)
                self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
                self.assertIn("Usage: fedproxy reload", r.stderr)
        cfg = write_config(base_config(self.pki, self.backend.address, admin=None), self.dir, "noadmin.json")
        r = self.reload("--config", cfg)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("admin.listen", r.stderr)
        r = run_cli(["reload", "--help"])
        self.assertEqual(r.returncode, 0)
        for code in ("0 ", "1 ", "2 ", "3 "):
            self.assertIn("  " + code, r.stdout)


if __name__ == "__main__":
    main()

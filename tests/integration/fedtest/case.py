"""Shared fixtures for the integration tests: one PKI per test process, limits
read from the environment, small client helpers used by several files."""

from __future__ import annotations

import atexit
import os
import socket
import ssl
import subprocess
import sys
import unittest

from . import wire
from .backend import Backend
from .pki import Pki

_PKI = None


def shared_pki() -> Pki:
    """The PKI of this test process (generated once, removed at exit)."""
    global _PKI
    if _PKI is None:
        _PKI = Pki.create()
        if not os.environ.get("FEDTEST_KEEP"):
            atexit.register(_PKI.cleanup)
        else:
            print("fedtest: PKI kept in", _PKI.root, file=sys.stderr)
    return _PKI


class BackendTestCase(unittest.TestCase):
    """A test class whose tests share the process's PKI (cls.pki) and one
    recording backend (cls.backend), started once and stopped at the end.
    Subclasses that need more call super().setUpClass() first."""

    @classmethod
    def setUpClass(cls):
        cls.pki = shared_pki()
        cls.backend = Backend().start()

    @classmethod
    def tearDownClass(cls):
        cls.backend.stop()


def start_class_proxy(cls) -> None:
    """setUpClass helper: start cls.proxy (cls.backend already runs); if it
    fails, stop both so the class leaves no process behind."""
    try:
        cls.proxy.start()
    except BaseException:
        cls.proxy.stop()
        cls.backend.stop()
        raise


def stop_class_proxy(cls) -> None:
    """tearDownClass helper: the counterpart of start_class_proxy."""
    cls.proxy.stop()
    cls.backend.stop()


def rss_limit_kib() -> int:
    """Upper bound for fedproxy's VmHWM during 64 MiB transfers: it proves no
    whole-body buffering. FEDTEST_RSS_LIMIT_MIB overrides (e.g. for ASan builds)."""
    return int(os.environ.get("FEDTEST_RSS_LIMIT_MIB", "64")) * 1024


def try_mtls_request(port: int, ctx: ssl.SSLContext, target: str, timeout: float = 8):
    """Connect, handshake, send one request and read what comes back.
    Returns (outcome, local_port, detail) with outcome one of
    handshake_error | alert | closed | reset | timeout | data."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    local = raw.getsockname()[1]
    try:
        try:
            s = ctx.wrap_socket(raw, server_hostname="localhost")
        except ssl.SSLError as e:
            return "handshake_error", local, str(e)
        except (ConnectionResetError, BrokenPipeError) as e:
            return "reset", local, str(e)
        try:
            s.sendall(wire.build_request("GET", target, [("Connection", "close")]))
            data = s.recv(65536)
            if not data:
                return "closed", local, ""
            return "data", local, data
        except ssl.SSLError as e:
            return "alert", local, str(e)
        except (ConnectionResetError, BrokenPipeError) as e:
            return "reset", local, str(e)
        except (socket.timeout, TimeoutError):
            return "timeout", local, ""
        finally:
            s.close()
    finally:
        raw.close()


def s_client(pki, port: int, *args: str, send: bytes = b"", timeout: float = 15):
    """Run `openssl s_client` against 127.0.0.1:port (bounded by timeout).
    Returns CompletedProcess with bytes stdout/stderr."""
    cmd = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
           "-servername", "localhost", "-CAfile", pki.ca.crt, "-verify_return_error",
           "-ign_eof", *args]
    return subprocess.run(cmd, input=send, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout)


def main():
    unittest.main(verbosity=2)


def assert_not_received(tc: unittest.TestCase, backend, marker: bytes, msg: str = "") -> None:
    """Fail if the app (test backend) received bytes containing marker; the
    failure message shows only the surroundings of the first hit."""
    raw = backend.raw_bytes()
    i = raw.find(marker)
    if i >= 0:
        tc.fail("%sthe app received %r: ...%r..." % (msg + ": " if msg else "", marker,
                                                     raw[max(0, i - 200):i + 300]))

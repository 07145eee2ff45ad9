"""Faults a sidecar meets in production (issue 16), judged by what the app received.

  * uploads on a cold upstream pool: the request body streams in while the
    connection to the app is still being opened (a fresh process has no
    pooled connection). The bytes queued before the connection existed
    pushed the upstream side above its high watermark, the client's side was
    paused, and the queue then left by a synchronous write, with no write
    callback and so no "drained" edge: the upload hung until idle_ms. Every
    change of the queue now goes through one place that emits the edge.
  * 16 concurrent 4 MiB uploads on one process, all answered, bodies intact.
  * a client that stops reading for longer than upstream_response_ms still
    gets its whole response: the response deadline measures the app's
    silence, not the time fedproxy itself holds the app back for a slow
    client;
  * a download that takes longer than idle_ms while it flows is not cut
    (idle_ms is a deadline on progress), and one whose client stops reading
    for good is cut at idle_ms.

    FEDPROXY_BIN=build/proxy/app/fedproxy python3 tests/integration/test_faults.py
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import ssl
import struct
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fedtest import wire  # noqa: E402
from fedtest.case import BackendTestCase, main  # noqa: E402
from fedtest.policy import replace_config  # noqa: E402
from fedtest.proxy import Conn, Proxy, base_config, client_context  # noqa: E402
from fedtest.reload import admin_reload  # noqa: E402

MIB = 1 << 20
# Each upload must be answered well before idle_ms (where a hung one ended).
ANSWER_WITHIN_S = 10


def upload(port: int, ctx, size: int, chunked: bool) -> dict:
    """One upload of `size` pattern bytes on a new connection; the app's echo."""
    headers = [("Content-Type", "application/octet-stream")]
    if chunked:
        headers.append(("Transfer-Encoding", "chunked"))
    else:
        headers.append(("Content-Length", str(size)))
    with Conn.open(port, ctx, timeout=ANSWER_WITHIN_S) as conn:
        conn.send(wire.build_request("POST", "/upload", headers))
        for piece in wire.pattern_chunks(size):
            conn.send(wire.chunk(piece) if chunked else piece)
        if chunked:
            conn.send(wire.LAST_CHUNK)
        resp = conn.read_response("POST")
    assert resp.status == 200, (resp.status, resp.body[:200])
    return json.loads(resp.body)


def small_window_client(pki, port: int):
    """An mTLS client with a 32 KiB receive window, so fedproxy's queue
    towards it fills (and it pauses the app) as soon as it stops reading."""
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    raw.settimeout(ANSWER_WITHIN_S)
    raw.connect(("127.0.0.1", port))
    return client_context(pki, pki.client).wrap_socket(raw, server_hostname="localhost")


def read_head(sock) -> tuple[bytes, bytes]:
    """The response head, and the body bytes that came with it."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            raise AssertionError("closed before the response head: %r" % buf[:200])
        buf += data
    head, _, body = buf.partition(b"\r\n\r\n")
    return head, body


class ColdPoolUploadTest(BackendTestCase):

    def check_echo(self, echo: dict, size: int, chunked: bool):
        self.assertEqual(echo["body_len"], size)
        self.assertEqual(echo["body_sha256"], wire.pattern_sha256(size))
        self.assertEqual(echo["framing"], "chunked" if chunked else "length")

    def test_first_uploads_of_fresh_processes(self):
        # Four fresh processes, the first requests each gets are uploads
        # (before: 7 of 8 hung on a fresh process).
        ctx = client_context(self.pki, self.pki.client)
        for round_ in range(4):
            with Proxy(base_config(self.pki, self.backend.address)) as p:
                for chunked in (False, True):
                    with self.subTest(round=round_, chunked=chunked):
                        self.check_echo(upload(p.ingress_port, ctx, MIB, chunked), MIB, chunked)

    def test_sequential_uploads_from_start(self):
        ctx = client_context(self.pki, self.pki.client)
        with Proxy(base_config(self.pki, self.backend.address)) as p:
            for i in range(20):
                chunked = bool(i % 2)
                with self.subTest(upload=i):
                    self.check_echo(upload(p.ingress_port, ctx, MIB, chunked), MIB, chunked)

    def test_concurrent_large_uploads(self):
        ctx = client_context(self.pki, self.pki.client)
        size = 4 * MIB
        results, errors = {}, {}
        with Proxy(base_config(self.pki, self.backend.address)) as p:
            def run(i):
                try:
                    results[i] = upload(p.ingress_port, ctx, size, bool(i % 2))
                except Exception as e:  # noqa: BLE001 - reported below
                    errors[i] = repr(e)
            threads = [threading.Thread(target=run, args=(i,)) for i in range(16)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
        self.assertEqual(errors, {})
        self.assertEqual(len(results), 16)
        for i, echo in results.items():
            self.check_echo(echo, size, bool(i % 2))


class AbortedUploadTest(BackendTestCase):

    def open_fds(self, pid: int) -> int:
        return len(os.listdir("/proc/%d/fd" % pid))

    def test_aborted_uploads_free_their_connections(self):
        ctx = client_context(self.pki, self.pki.client)
        with Proxy(base_config(self.pki, self.backend.address)) as p:
            baseline = self.open_fds(p.pid)
            for how in ("fin", "rst"):
                with self.subTest(abort=how):
                    conn = Conn.open(p.ingress_port, ctx)
                    conn.send(wire.build_request("POST", "/upload", [("Content-Length", str(MIB))]))
                    conn.send(b"x" * (300 * 1024))  # past the upstream's high watermark
                    self.assertTrue(self.backend.wait_for(
                        lambda reqs: any(r.path == "/upload" for r in reqs), 5), "no upload at the app")
                    self.assertGreater(self.open_fds(p.pid), baseline)
                    if how == "rst":
                        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    conn.close()
                    deadline = time.monotonic() + 1.0
                    while time.monotonic() < deadline and self.open_fds(p.pid) > baseline:
                        time.sleep(0.02)
                    self.assertLessEqual(self.open_fds(p.pid), baseline,
                                         "descriptors still open 1 s after the client aborted")
                    self.backend.reset()


class SlowReaderTest(BackendTestCase):
    RESPONSE_MS = 400

    def test_client_paused_longer_than_the_response_timeout(self):
        size = 16 * MIB
        cfg = base_config(self.pki, self.backend.address,
                          timeouts={"upstream_response_ms": self.RESPONSE_MS})
        with Proxy(cfg) as p:
            sock = small_window_client(self.pki, p.ingress_port)
            try:
                sock.sendall(wire.build_request("GET", "/bytes/%d" % size))
                head, body_start = read_head(sock)
                self.assertTrue(head.startswith(b"HTTP/1.1 200"), head[:100])
                time.sleep(3 * self.RESPONSE_MS / 1000)  # we stop reading
                h = hashlib.sha256(body_start)
                got = len(body_start)
                while got < size:
                    data = sock.recv(1 << 20)
                    if not data:
                        break
                    h.update(data)
                    got += len(data)
            finally:
                sock.close()
        self.assertEqual(got, size, "the response was cut after %d of %d bytes" % (got, size))
        self.assertEqual(h.hexdigest(), wire.pattern_sha256(size))


class LongDownloadTest(BackendTestCase):
    IDLE_MS = 1000

    def test_flowing_download_outlasts_idle_ms(self):
        size = 16 * MIB
        with Proxy(base_config(self.pki, self.backend.address,
                               timeouts={"idle_ms": self.IDLE_MS})) as p:
            sock = small_window_client(self.pki, p.ingress_port)
            try:
                sock.sendall(wire.build_request("GET", "/bytes/%d" % size))
                _, body = read_head(sock)
                got, t0 = len(body), time.monotonic()
                while got < size:
                    data = sock.recv(65536)
                    if not data:
                        break
                    got += len(data)
                    time.sleep(0.004)  # a slow reader: the whole takes > idle_ms
                took = time.monotonic() - t0
            finally:
                sock.close()
        self.assertEqual(got, size, "cut after %d of %d bytes (%.1f s)" % (got, size, took))
        self.assertGreater(took, self.IDLE_MS / 1000)

    def test_client_that_stops_reading_is_cut_at_idle_ms(self):
        with Proxy(base_config(self.pki, self.backend.address,
                               timeouts={"idle_ms": self.IDLE_MS})) as p:
            sock = small_window_client(self.pki, p.ingress_port)
            try:
                sock.sendall(wire.build_request("GET", "/bytes/%d" % (64 * MIB)))
                time.sleep(3 * self.IDLE_MS / 1000)  # never read
                got, deadline = 0, time.monotonic() + ANSWER_WITHIN_S
                while time.monotonic() < deadline:
                    try:
                        data = sock.recv(1 << 20)
                    except (ConnectionError, ssl.SSLError):
                        break
                    if not data:
                        break
                    got += len(data)
            finally:
                sock.close()
        self.assertLess(got, 64 * MIB, "the stalled download was not cut")


class ReloadAppliesTimeoutsTest(BackendTestCase):

    def header_cut_after(self, port) -> float:
        """Seconds until fedproxy closes a connection whose head never ends."""
        with Conn.open(port, client_context(self.pki, self.pki.client), timeout=15) as conn:
            conn.send(b"GET / HTTP/1.1\r\nHost: x\r\n")
            t0 = time.monotonic()
            closed, _ = conn.closed_within(12)
            self.assertTrue(closed, "the slow head was never cut")
            return time.monotonic() - t0

    def test_header_ms_changed_by_a_reload(self):
        cfg = base_config(self.pki, self.backend.address, timeouts={"header_ms": 6000})
        with Proxy(cfg) as p:
            before = self.header_cut_after(p.ingress_port)
            self.assertGreater(before, 5)
            cfg["timeouts"]["header_ms"] = 300
            replace_config(cfg, os.path.dirname(p.config_path), os.path.basename(p.config_path))
            status, body = admin_reload(p.admin_port)
            self.assertEqual((status, body["result"], body["restart_required"]), (200, "ok", []))
            after = self.header_cut_after(p.ingress_port)
            self.assertLess(after, 2.5, "header_ms 300 from the reload did not apply")


if __name__ == "__main__":
    main()

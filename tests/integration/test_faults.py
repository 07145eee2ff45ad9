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
  * every exchange that was read ends in exactly one audit record whose
    `outcome` names how it ended (SPEC §10): the app resetting mid-response
    or mid-upload, the client aborting, a stalled client, a silent app, a
    request still running when the shutdown grace ends; `audit verify`
    passes on the file.

    FEDPROXY_BIN=build/proxy/app/fedproxy python3 tests/integration/test_faults.py
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import ssl
import struct
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fedtest import wire  # noqa: E402
from fedtest.case import BackendTestCase, main  # noqa: E402
from fedtest.policy import read_audit, replace_config, wait_audit  # noqa: E402
from fedtest.proxy import Conn, Proxy, base_config, client_context, run_cli  # noqa: E402
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
            for i in range(50):
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


class OutcomeTest(BackendTestCase):
    """One audit record per exchange, with the outcome of its end."""

    def audit_config(self, tmp: str, **over) -> dict:
        return base_config(self.pki, self.backend.address, audit={"path": os.path.join(tmp, "audit.jsonl")},
                           **over)

    def record(self, path: str, rid: str) -> dict:
        rec = wait_audit(path, lambda r: r.get("request_id") == rid, 5)
        self.assertIsNotNone(rec, "no audit record for %s" % rid)
        self.assertEqual(sum(1 for r in read_audit(path) if r.get("request_id") == rid), 1,
                         "more than one record for %s" % rid)
        return rec

    def verify(self, path: str):
        p = run_cli(["audit", "verify", path], timeout=20)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_each_end_has_its_outcome(self):
        tmp = tempfile.mkdtemp(prefix="fedtest-outcome-")
        cfg = self.audit_config(tmp, timeouts={"idle_ms": 800, "upstream_response_ms": 600})
        path = cfg["audit"]["path"]
        ctx = client_context(self.pki, self.pki.client)
        with Proxy(cfg) as p:
            # The app resets half way through its response: the client's
            # connection is closed (it cannot be told otherwise).
            with Conn.open(p.ingress_port, ctx) as conn:
                conn.send(wire.build_request("GET", "/resetbody/%d" % MIB, [("X-Request-Id", "o-reset-resp")]))
                closed, _ = conn.closed_within(5)
                self.assertTrue(closed, "the client's connection stayed open after the app reset")
            rec = self.record(path, "o-reset-resp")
            self.assertEqual(rec["outcome"], "upstream_error")
            self.assertEqual(rec["status"], 200)
            self.assertGreater(rec["bytes_out"], 0)

            # The app resets while the upload streams in: 502, the app saw a
            # partial body only.
            with Conn.open(p.ingress_port, ctx) as conn:
                conn.send(wire.build_request("POST", "/resetread", [("Content-Length", str(MIB)),
                                                                     ("X-Request-Id", "o-reset-up")]))
                try:
                    for piece in wire.pattern_chunks(MIB):
                        conn.send(piece)
                    resp = conn.read_response("POST")
                    self.assertEqual(resp.status, 502)
                except OSError:
                    pass  # the close may race the rest of the upload: the record decides
            rec = self.record(path, "o-reset-up")
            self.assertEqual(rec["outcome"], "upstream_error")

            # The client aborts mid-upload.
            conn = Conn.open(p.ingress_port, ctx)
            conn.send(wire.build_request("POST", "/upload", [("Content-Length", str(MIB)),
                                                             ("X-Request-Id", "o-abort")]))
            conn.send(b"x" * 1000)
            self.assertTrue(self.backend.wait_for(lambda reqs: any(r.path == "/upload" for r in reqs), 5))
            conn.close()
            self.assertEqual(self.record(path, "o-abort")["outcome"], "client_aborted")

            # The client stops sending its body: cut at idle_ms.
            with Conn.open(p.ingress_port, ctx) as conn:
                conn.send(wire.build_request("POST", "/upload", [("Content-Length", "100"),
                                                                 ("X-Request-Id", "o-stall")]))
                conn.send(b"x" * 10)
                closed, _ = conn.closed_within(5)
                self.assertTrue(closed)
            self.assertEqual(self.record(path, "o-stall")["outcome"], "client_timeout")

            # The app does not answer within upstream_response_ms: 504.
            with Conn.open(p.ingress_port, ctx) as conn:
                resp = conn.request("GET", "/slow/2000", [("X-Request-Id", "o-slow")])
                self.assertEqual(resp.status, 504)
            self.assertEqual(self.record(path, "o-slow")["outcome"], "upstream_timeout")

            # A normal exchange, and a refusal of ours.
            with Conn.open(p.ingress_port, ctx) as conn:
                self.assertEqual(conn.request("GET", "/ok", [("X-Request-Id", "o-ok")]).status, 200)
            self.assertEqual(self.record(path, "o-ok")["outcome"], "completed")
            with Conn.open(p.ingress_port, ctx) as conn:
                conn.send(b"GET /a%00b HTTP/1.1\r\nHost: x\r\nX-Request-Id: o-bad\r\n\r\n")
                self.assertEqual(conn.read_response().status, 400)
            self.assertEqual(self.record(path, "o-bad")["outcome"], "denied")
        self.verify(path)

    def test_shutdown_cut_is_recorded(self):
        tmp = tempfile.mkdtemp(prefix="fedtest-outcome-")
        cfg = self.audit_config(tmp, timeouts={"shutdown_grace_ms": 300})
        path = cfg["audit"]["path"]
        ctx = client_context(self.pki, self.pki.client)
        p = Proxy(cfg).start()
        try:
            conn = Conn.open(p.ingress_port, ctx)
            conn.send(wire.build_request("GET", "/slow/3000", [("X-Request-Id", "o-cut")]))
            self.assertTrue(self.backend.wait_for(lambda reqs: any(r.path == "/slow/3000" for r in reqs), 5))
            p.signal(signal.SIGTERM)
            self.assertEqual(p.wait_exit(10), 0)
            conn.close()
        finally:
            p.stop()
        rec = self.record(path, "o-cut")
        self.assertEqual(rec["outcome"], "shutdown_cut")
        self.verify(path)


if __name__ == "__main__":
    main()

"""WebSocket and streaming through fedproxy (SPEC §1), with real clients and
servers: Python's `websockets` (RFC 6455) on both ends, mTLS in front.

  * `Upgrade: websocket` on a granted route is forwarded; after the app's
    101 bytes pass both ways, in order, at sizes up to 1 MiB; one audit
    record at the close with status 101 and the bytes of each direction;
  * the same upgrade on a route the peer has no grant for is refused (403)
    and the app never sees it;
  * a tunnel with no byte either way is closed at timeouts.tunnel_idle_ms;
  * a response without a length (server-sent events) reaches the client
    event by event as the app writes it, not when it ends.

    FEDPROXY_BIN=build/proxy/app/fedproxy python3 tests/integration/test_websocket.py
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fedtest import wire  # noqa: E402
from fedtest.case import main, shared_pki  # noqa: E402
from fedtest.policy import (grant, new_id, peer, policy_config, read_audit,  # noqa: E402
                            wait_audit)
from fedtest.proxy import Conn, Proxy, client_context  # noqa: E402

try:
    import websockets  # Debian: python3-websockets
    import websockets.exceptions
except ImportError:  # pragma: no cover - install-deps.sh installs it
    websockets = None

PEER_A = "ws-partner"
URI_A = "spiffe://ws-partner.example/nodes/a"


class EchoApp:
    """The local app: a real WebSocket server (echo), on its own loop thread.
    Records the path and headers of every handshake it accepted."""

    def __init__(self):
        self.handshakes: list[tuple[str, dict]] = []
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    async def _echo(self, ws, path=None):
        self.handshakes.append((ws.path, {k.lower(): v for k, v in ws.request_headers.raw_items()}))
        try:
            async for msg in ws:
                await ws.send(msg)
        except websockets.exceptions.ConnectionClosed:
            pass

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(
            websockets.serve(self._echo, "127.0.0.1", 0, max_size=None))
        self.port = self.server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()

    def start(self) -> "EchoApp":
        self.thread.start()
        assert self.ready.wait(10), "websocket app did not start"
        return self

    def stop(self):
        async def close():
            self.server.close()
            await self.server.wait_closed()
        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def ws_run(coro):
    return asyncio.new_event_loop().run_until_complete(asyncio.wait_for(coro, 30))


@unittest.skipIf(websockets is None, "python3-websockets is not installed")
class WebSocketTest(unittest.TestCase):
    TUNNEL_IDLE_MS = 800

    @classmethod
    def setUpClass(cls):
        cls.pki = shared_pki()
        cls.tmp = tempfile.mkdtemp(prefix="fedtest-ws-")
        cls.audit_path = os.path.join(cls.tmp, "audit.jsonl")
        gid = new_id()
        cls.cert = cls.pki.issue_client("ws-a", URI_A, grant_id=gid)
        cls.app = EchoApp().start()
        cfg = policy_config(cls.pki, "127.0.0.1:%d" % cls.app.port,
                            peers=[peer(PEER_A, URI_A)], grants=[grant(gid, PEER_A, ["tasks"])],
                            audit={"path": cls.audit_path},
                            timeouts={"tunnel_idle_ms": cls.TUNNEL_IDLE_MS})
        cls.proxy = Proxy(cfg)
        try:
            cls.proxy.start()
        except BaseException:
            cls.proxy.stop()
            cls.app.stop()
            raise
        cls.ctx = client_context(cls.pki, cls.cert)

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        cls.app.stop()

    def url(self, path: str) -> str:
        return "wss://localhost:%d%s" % (self.proxy.ingress_port, path)

    def test_messages_pass_both_ways_in_order_and_one_record_at_close(self):
        sizes = [1, 125, 126, 65535, 65536, 300_000, 1 << 20]
        before = len(self.app.handshakes)

        async def session():
            async with websockets.connect(self.url("/api/v1/tasks/live?x=1"), ssl=self.ctx,
                                          max_size=None, compression=None,
                                          extra_headers={"X-Request-Id": "ws-rid-1"}) as ws:
                got = []
                for i, n in enumerate(sizes):
                    payload = bytes((i + j) % 251 for j in range(n))
                    await ws.send(payload)
                    got.append(await ws.recv() == payload)
                await ws.send("text frame")
                got.append(await ws.recv() == "text frame")
                return got

        self.assertEqual(ws_run(session()), [True] * (len(sizes) + 1))
        self.assertEqual(len(self.app.handshakes), before + 1)
        path, headers = self.app.handshakes[-1]
        self.assertEqual(path, "/api/v1/tasks/live?x=1")
        self.assertEqual(headers.get("upgrade", "").lower(), "websocket")
        self.assertIn("sec-websocket-key", headers)
        self.assertEqual(headers.get("x-request-id"), "ws-rid-1")
        self.assertEqual(headers.get("x-forwarded-proto"), "https")
        rec = wait_audit(self.audit_path, lambda r: r.get("request_id") == "ws-rid-1", 5)
        self.assertIsNotNone(rec, "no audit record for the tunnel")
        self.assertEqual(rec["status"], 101)
        self.assertEqual(rec["decision"], "allow")
        total = sum(sizes) + len("text frame")
        # Both directions carry every payload plus frame headers (and the
        # client's masking keys and the close frames).
        self.assertGreaterEqual(rec["bytes_in"], total)
        self.assertGreaterEqual(rec["bytes_out"], total)
        self.assertEqual(sum(1 for r in read_audit(self.audit_path) if r.get("request_id") == "ws-rid-1"), 1)

    def test_upgrade_without_a_grant_is_refused_before_the_app(self):
        before = len(self.app.handshakes)

        async def session():
            async with websockets.connect(self.url("/api/v1/notes/live"), ssl=self.ctx):
                pass

        with self.assertRaises(websockets.exceptions.InvalidStatusCode) as cm:
            ws_run(session())
        self.assertEqual(cm.exception.status_code, 403)
        self.assertEqual(len(self.app.handshakes), before)

    def test_idle_tunnel_closed_at_tunnel_idle_ms(self):
        async def session():
            async with websockets.connect(self.url("/api/v1/tasks/idle"), ssl=self.ctx,
                                          ping_interval=None, extra_headers={"X-Request-Id": "ws-idle"}) as ws:
                await ws.send("hello")
                await ws.recv()
                t0 = time.monotonic()
                try:
                    await asyncio.wait_for(ws.recv(), 10)
                except websockets.exceptions.ConnectionClosed:
                    return time.monotonic() - t0
                return None

        elapsed = ws_run(session())
        self.assertIsNotNone(elapsed, "the idle tunnel was not closed")
        self.assertGreater(elapsed, self.TUNNEL_IDLE_MS / 1000 * 0.8)
        self.assertLess(elapsed, self.TUNNEL_IDLE_MS / 1000 + 3)
        rec = wait_audit(self.audit_path, lambda r: r.get("request_id") == "ws-idle", 5)
        self.assertIsNotNone(rec, "no audit record for the idle tunnel")
        self.assertEqual(rec["status"], 101)


class SseApp:
    """A raw-socket app answering with an event stream without a length: one
    event, then (after `gate` is set) a second one, then the close."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.gate = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        # Every connection gets its own thread: fedproxy's readiness probe
        # connects too.
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn):
        with conn:
            buf = b""
            while b"\r\n\r\n" not in buf:
                data = conn.recv(4096)
                if not data:
                    return
                buf += data
            if not buf.startswith(b"GET /events "):
                conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                return
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                         b"Connection: close\r\n\r\ndata: first\n\n")
            self.gate.wait(10)
            conn.sendall(b"data: second\n\n")

    def stop(self):
        self.gate.set()
        self.sock.close()
        self.thread.join(10)


class ServerSentEventsTest(unittest.TestCase):

    def test_events_arrive_as_the_app_writes_them(self):
        pki = shared_pki()
        app = SseApp()
        from fedtest.proxy import base_config
        try:
            with Proxy(base_config(pki, "127.0.0.1:%d" % app.port)) as p:
                with Conn.open(p.ingress_port, client_context(pki, pki.client)) as conn:
                    conn.send(wire.build_request("GET", "/events", [("Accept", "text/event-stream")]))
                    buf = b""
                    deadline = time.monotonic() + 5
                    while b"data: first" not in buf and time.monotonic() < deadline:
                        data = conn.sock.recv(4096)
                        if not data:
                            break
                        buf += data
                    # The first event is here while the app still holds the
                    # stream open: nothing was held back.
                    self.assertIn(b"data: first", buf)
                    self.assertNotIn(b"data: second", buf)
                    self.assertIn(b"Transfer-Encoding: chunked", buf)
                    app.gate.set()
                    while not buf.endswith(b"0\r\n\r\n") and time.monotonic() < deadline + 5:
                        data = conn.sock.recv(4096)
                        if not data:
                            break
                        buf += data
                    self.assertIn(b"data: second", buf)
                    self.assertTrue(buf.endswith(b"0\r\n\r\n"), buf[-40:])
        finally:
            app.stop()


if __name__ == "__main__":
    main()

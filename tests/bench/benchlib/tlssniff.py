"""A TCP relay that reads the cleartext part of TLS 1.3 handshakes passing through
it: the ClientHello (offered suites, whether a PSK/ticket is offered) and the
ServerHello (negotiated version, suite, key-exchange group, whether the PSK was
accepted = resumption). Implementation-agnostic: it tells what fedproxy,
nginx and HAProxy actually negotiated between their egress and ingress.

    relay = SniffRelay(target_port).start()   # listens on 127.0.0.1:relay.port
    ... point an egress at relay.port, send a few requests ...
    relay.stop(); relay.connections -> [{"suite": ..., "resumed": ...}, ...]

Used only by the short probes, never on a measured path. Every socket it opens
is closed by stop(); its threads are daemons and end with their sockets.
"""

from __future__ import annotations

import socket
import struct
import threading

SUITES = {0x1301: "TLS_AES_128_GCM_SHA256", 0x1302: "TLS_AES_256_GCM_SHA384",
          0x1303: "TLS_CHACHA20_POLY1305_SHA256", 0x1304: "TLS_AES_128_CCM_SHA256",
          0x1305: "TLS_AES_128_CCM_8_SHA256"}
GROUPS = {0x0017: "secp256r1", 0x0018: "secp384r1", 0x0019: "secp521r1", 0x001d: "x25519",
          0x001e: "x448"}
HRR_RANDOM = bytes.fromhex("CF21AD74E59A6111BE1D8C021E65B891C2A211167ABB8C5E079E09E2C8A8339C")
EXT_PSK, EXT_VERSIONS, EXT_KEY_SHARE = 41, 43, 51


def _extensions(body: bytes, off: int) -> dict[int, bytes]:
    out = {}
    if off + 2 > len(body):
        return out
    (n,) = struct.unpack_from("!H", body, off)
    off += 2
    end = min(len(body), off + n)
    while off + 4 <= end:
        t, ln = struct.unpack_from("!HH", body, off)
        out[t] = body[off + 4:off + 4 + ln]
        off += 4 + ln
    return out


def parse_client_hello(body: bytes) -> dict:
    off = 2 + 32
    sid = body[off]
    off += 1 + sid
    (n,) = struct.unpack_from("!H", body, off)
    suites = [struct.unpack_from("!H", body, off + 2 + 2 * i)[0] for i in range(n // 2)]
    off += 2 + n
    off += 1 + body[off]
    ext = _extensions(body, off)
    groups = []
    if EXT_KEY_SHARE in ext and len(ext[EXT_KEY_SHARE]) >= 2:
        ks = ext[EXT_KEY_SHARE]
        i = 2
        while i + 4 <= len(ks):
            g, ln = struct.unpack_from("!HH", ks, i)
            groups.append(GROUPS.get(g, hex(g)))
            i += 4 + ln
    return {"offered_suites": [SUITES.get(s, hex(s)) for s in suites if (s >> 8) == 0x13],
            "offered_psk": EXT_PSK in ext, "key_shares": groups}


def parse_server_hello(body: bytes) -> dict:
    random = body[2:34]
    off = 2 + 32
    sid = body[off]
    off += 1 + sid
    (suite,) = struct.unpack_from("!H", body, off)
    off += 2 + 1
    ext = _extensions(body, off)
    version = "TLSv1.2 or older"
    if EXT_VERSIONS in ext and len(ext[EXT_VERSIONS]) == 2:
        v = struct.unpack("!H", ext[EXT_VERSIONS])[0]
        version = "TLSv1.3" if v == 0x0304 else hex(v)
    group = None
    if EXT_KEY_SHARE in ext and len(ext[EXT_KEY_SHARE]) >= 2:
        group = GROUPS.get(struct.unpack_from("!H", ext[EXT_KEY_SHARE])[0], "?")
    return {"hrr": random == HRR_RANDOM, "version": version, "suite": SUITES.get(suite, hex(suite)),
            "group": group, "resumed": EXT_PSK in ext}


class _HandshakeReader:
    """Collects handshake messages from cleartext records (content type 22) at the
    start of one direction of a stream, until `want` messages are parsed or an
    encrypted record shows up."""

    def __init__(self, msg_type: int, parse):
        self.msg_type = msg_type
        self.parse = parse
        self.buf = bytearray()
        self.hs = bytearray()
        self.done = False
        self.results: list[dict] = []

    def feed(self, data: bytes) -> None:
        if self.done:
            return
        self.buf += data
        while len(self.buf) >= 5 and not self.done:
            ctype, _ver, ln = struct.unpack_from("!BHH", self.buf, 0)
            if len(self.buf) < 5 + ln:
                return
            payload = bytes(self.buf[5:5 + ln])
            del self.buf[:5 + ln]
            if ctype == 20:      # ChangeCipherSpec (compatibility mode)
                continue
            if ctype != 22:      # encrypted from here on
                self.done = True
                return
            self.hs += payload
            while len(self.hs) >= 4:
                t = self.hs[0]
                n = int.from_bytes(self.hs[1:4], "big")
                if len(self.hs) < 4 + n:
                    break
                body = bytes(self.hs[4:4 + n])
                del self.hs[:4 + n]
                if t == self.msg_type:
                    try:
                        r = self.parse(body)
                    except (IndexError, struct.error) as e:
                        r = {"parse_error": str(e)}
                    self.results.append(r)
                    if not r.get("hrr"):
                        self.done = True
                        return


class SniffRelay:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1"):
        self.target = (target_host, target_port)
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(256)
        self.port = self.ls.getsockname()[1]
        self.connections: list[dict] = []
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stop = False

    def start(self) -> "SniffRelay":
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def _accept(self):
        self.ls.settimeout(0.2)
        while not self._stop:
            try:
                c, _ = self.ls.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                u = socket.create_connection(self.target, timeout=10)
            except OSError:
                c.close()
                continue
            for s in (c, u):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                s.settimeout(None)
            rec = {"client": _HandshakeReader(1, parse_client_hello),
                   "server": _HandshakeReader(2, parse_server_hello)}
            with self._lock:
                self._socks += [c, u]
                self.connections.append(rec)
            threading.Thread(target=self._pump, args=(c, u, rec["client"]), daemon=True).start()
            threading.Thread(target=self._pump, args=(u, c, rec["server"]), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket, reader: _HandshakeReader):
        try:
            while True:
                d = src.recv(65536)
                if not d:
                    break
                reader.feed(d)
                dst.sendall(d)
        except OSError:
            pass
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def results(self) -> list[dict]:
        """One dict per relayed connection: ClientHello fields + ServerHello fields."""
        out = []
        with self._lock:
            conns = list(self.connections)
        for rec in conns:
            d: dict = {}
            if rec["client"].results:
                d.update(rec["client"].results[0])
            sh = [r for r in rec["server"].results if not r.get("hrr")]
            d["hello_retry"] = any(r.get("hrr") for r in rec["server"].results)
            if sh:
                d.update(sh[0])
            out.append(d)
        return out

    def stop(self):
        self._stop = True
        try:
            self.ls.close()
        except OSError:
            pass
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)  # wakes the pump blocked in recv()
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass

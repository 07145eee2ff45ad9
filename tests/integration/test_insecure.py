#!/usr/bin/env python3
"""Insecure local/dev mode (SPEC §9) and the world-readable key refusal (§8):
no tls.cert/key → exit 2 unless FEDPROXY_INSECURE=1; then plain HTTP ingress,
a warning at start, "insecure": true in /status; a non-loopback listen also
needs FEDPROXY_ALLOW_INSECURE_NON_LOOPBACK=1; with a policy the peer identity
comes from X-Federation-Dev-Peer (never forwarded). Real clients: curl and
raw sockets; the key-permission part uses Python ssl with test-time certs.

Run: FEDPROXY_BIN=build/proxy/app/fedproxy python3 tests/integration/test_insecure.py
"""

import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fedtest import wire  # noqa: E402
from fedtest.backend import Backend  # noqa: E402
from fedtest.case import start_class_proxy, stop_class_proxy, assert_not_received, main, shared_pki  # noqa: E402
from fedtest.pki import PARTNER_URI  # noqa: E402
from fedtest.policy import grant, new_id, peer, policy_config  # noqa: E402
from fedtest.proxy import (Conn, Proxy, assert_json_error, base_config,  # noqa: E402
                           client_context, run_cli, write_config)
from fedtest.reload import admin_request, admin_status, plain_request  # noqa: E402

INSECURE = {"FEDPROXY_INSECURE": "1"}


def insecure_config(pki, upstream: str, **over) -> dict:
    """base_config without any TLS file (the §9 trigger)."""
    cfg = base_config(pki, upstream, **over)
    cfg["tls"] = None
    return cfg


def stderr_lines(text: str):
    return [ln for ln in text.splitlines() if ln.strip()]


def curl_http(port: int, path: str, *headers: str):
    args = ["curl", "-sS", "--max-time", "10", "-w", "\n%{http_code}"]
    for h in headers:
        args += ["-H", h]
    p = subprocess.run(args + ["http://127.0.0.1:%d%s" % (port, path)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
    body, _, code = p.stdout.rpartition(b"\n")
    return p.returncode, code.decode(), body, p.stderr.decode(errors="replace")


class InsecureStartupTest(unittest.TestCase):
    """Who may start without TLS, and where."""

    @classmethod
    def setUpClass(cls):
        cls.pki = shared_pki()
        cls.dir = tempfile.mkdtemp(prefix="fedtest-insecure-")
        cls.backend = Backend().start()

    @classmethod
    def tearDownClass(cls):
        cls.backend.stop()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def fails_at_start(self, path: str, env: dict, *words: str) -> str:
        p = run_cli(["run", "--config", path], timeout=15, env=env)
        lines = stderr_lines(p.stderr)
        self.assertEqual(p.returncode, 2, "env %r: stderr %s" % (env, p.stderr))
        self.assertEqual(len(lines), 1, "want one line on stderr:\n" + p.stderr)
        for w in words:
            self.assertIn(w, lines[0])
        self.assertNotIn('"listening"', p.stderr)
        return lines[0]

    def test_no_tls_files_refused_without_flag(self):
        null_tls = write_config(insecure_config(self.pki, self.backend.address), self.dir,
                                "null-tls.json")
        no_tls = insecure_config(self.pki, self.backend.address)
        del no_tls["tls"]
        no_tls = write_config(no_tls, self.dir, "no-tls.json")
        for path in (null_tls, no_tls):
            for env in ({}, {"FEDPROXY_INSECURE": "0"}, {"FEDPROXY_INSECURE": ""}):
                with self.subTest(config=os.path.basename(path), env=env):
                    self.fails_at_start(path, env, "FEDPROXY_INSECURE")

    def test_non_loopback_needs_second_flag(self):
        cfg = insecure_config(self.pki, self.backend.address,
                              ingress={"listen": "0.0.0.0:0", "upstream": self.backend.address})
        path = write_config(cfg, self.dir, "any-addr.json")
        self.fails_at_start(path, INSECURE, "FEDPROXY_ALLOW_INSECURE_NON_LOOPBACK")
        self.fails_at_start(path, dict(INSECURE, FEDPROXY_ALLOW_INSECURE_NON_LOOPBACK="0"),
                            "FEDPROXY_ALLOW_INSECURE_NON_LOOPBACK")
        # the second flag alone is not enough either
        self.fails_at_start(path, {"FEDPROXY_ALLOW_INSECURE_NON_LOOPBACK": "1"},
                            "FEDPROXY_INSECURE")
        with Proxy(cfg, env=dict(INSECURE, FEDPROXY_ALLOW_INSECURE_NON_LOOPBACK="1")) as p:
            rec = p.find_logs(lambda r: r.get("msg") == "listening"
                              and r.get("listener") == "ingress")[0]
            self.assertTrue(str(rec.get("address")).startswith("0.0.0.0:"), rec)
            # tests talk to 127.0.0.1 only
            resp = plain_request(p.ingress_port, "GET", "/insecure/any-addr")
            self.assertEqual(resp.status, 200, resp)
            self.assertIsNotNone(self.backend.wait_path("/insecure/any-addr", 2))


class InsecureModeTest(unittest.TestCase):
    """FEDPROXY_INSECURE=1, no policy (authenticate_only)."""

    @classmethod
    def setUpClass(cls):
        cls.pki = shared_pki()
        cls.backend = Backend().start()
        cls.proxy = Proxy(insecure_config(cls.pki, cls.backend.address), env=INSECURE)
        start_class_proxy(cls)
        cls.port = cls.proxy.ingress_port

    @classmethod
    def tearDownClass(cls):
        stop_class_proxy(cls)

    def test_plain_http_forwarded(self):
        with Conn.open(self.port, None) as c:
            for i in range(3):  # keep-alive works too
                resp = c.request("GET", "/insecure/plain/%d" % i)
                self.assertEqual(resp.status, 200, resp)
                self.assertEqual(resp.json()["target"], "/insecure/plain/%d" % i)
        rc, code, body, err = curl_http(self.port, "/insecure/curl?x=1")
        self.assertEqual((rc, code), (0, "200"), err)
        self.assertIn(b'"/insecure/curl?x=1"', body)
        self.assertIsNotNone(self.backend.wait_path("/insecure/curl", 2))

    def test_tls_client_gets_no_tls(self):
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        try:
            with self.assertRaises((ssl.SSLError, OSError)):
                client_context(self.pki, self.pki.client).wrap_socket(
                    raw, server_hostname="localhost").close()
        finally:
            raw.close()

    def test_warning_logged_at_start(self):
        warn = self.proxy.find_logs(lambda r: "insecure mode" in str(r.get("msg", "")).lower())
        self.assertTrue(warn, "no 'insecure mode' warning; logs:\n" + self.proxy.tail(20))
        self.assertEqual(warn[0].get("level"), "warn", warn[0])
        started = [i for i, r in enumerate(self.proxy.logs) if r.get("msg") == "started"]
        first = self.proxy.logs.index(warn[0])
        self.assertTrue(not started or first <= started[0], "the warning must come at start")
        rec = self.proxy.find_logs(lambda r: r.get("msg") == "listening"
                                   and r.get("listener") == "ingress")[0]
        self.assertIs(rec.get("tls"), False, rec)

    def test_status_says_insecure(self):
        st = admin_status(self.proxy.admin_port)
        self.assertIs(st.get("insecure"), True, st)
        status, body = admin_request(self.proxy.admin_port, "GET", "/healthz")
        self.assertEqual(status, 200, body)

    def test_dev_and_identity_headers_not_forwarded(self):
        resp = plain_request(self.port, "GET", "/insecure/spoof", [
            ("X-Federation-Dev-Peer", "partner-labs"), ("X-Federation-Peer", "evil-corp"),
            ("X-Forwarded-Client-Cert", "Hash=00;URI=spiffe://evil")])
        self.assertEqual(resp.status, 200, resp)
        hs = resp.json()["headers"]
        names = [k.lower() for k, _ in hs]
        self.assertNotIn("x-federation-dev-peer", names)
        self.assertNotIn("evil-corp", [v for _, v in hs])
        assert_not_received(self, self.backend, b"spiffe://evil")


class InsecureDevPeerTest(unittest.TestCase):
    """Insecure mode with peers, routes and grants: identity from the dev header."""

    @classmethod
    def setUpClass(cls):
        cls.pki = shared_pki()
        cls.gid = new_id()
        cls.backend = Backend().start()
        cfg = policy_config(cls.pki, cls.backend.address, peers=[peer("partner-labs", PARTNER_URI)],
                            grants=[grant(cls.gid, "partner-labs", ["tasks"])])
        cfg["tls"] = None
        cls.proxy = Proxy(cfg, env=INSECURE)
        start_class_proxy(cls)
        cls.port = cls.proxy.ingress_port

    @classmethod
    def tearDownClass(cls):
        stop_class_proxy(cls)

    def test_dev_header_gives_identity(self):
        resp = plain_request(self.port, "GET", "/api/v1/tasks?probe=dev-ok", [
            ("X-Federation-Dev-Peer", "partner-labs"), ("X-Federation-Peer", "evil-corp")])
        self.assertEqual(resp.status, 200, resp)
        hs = resp.json()["headers"]
        self.assertEqual(wire.header_all(hs, "X-Federation-Peer"), ["partner-labs"])
        self.assertEqual(wire.header_all(hs, "X-Federation-Grant"), [self.gid])
        self.assertEqual(wire.header_all(hs, "X-Federation-Resource"), ["tasks"])
        self.assertEqual(wire.header_all(hs, "X-Federation-Entity"), [PARTNER_URI])
        self.assertEqual(wire.header_all(hs, "X-Federation-Dev-Peer"), [],
                         "the dev header itself must not reach the app")
        assert_not_received(self, self.backend, b"X-Federation-Dev-Peer")
        assert_not_received(self, self.backend, b"x-federation-dev-peer")

    def test_curl_with_dev_header(self):
        rc, code, body, err = curl_http(self.port, "/api/v1/tasks/curl-dev",
                                        "X-Federation-Dev-Peer: partner-labs")
        self.assertEqual((rc, code), (0, "200"), err + body.decode(errors="replace"))
        self.assertIn(b"partner-labs", body)

    def denied(self, target, headers, status, code=None):
        resp = plain_request(self.port, "GET", target, headers)
        if code:
            assert_json_error(self, resp, status, code)
        else:  # the code is not fixed by SPEC §9; the §6 shape is
            self.assertEqual(resp.status, status, resp)
            self.assertEqual((resp.header("content-type") or "").split(";")[0], "application/json")
            self.assertTrue(resp.json().get("error"), resp)
        marker = target.split("probe=")[1].encode()
        assert_not_received(self, self.backend, marker)
        return resp

    def test_no_dev_header_no_identity(self):
        self.denied("/api/v1/tasks?probe=dev-none", [], 403)

    def test_unknown_dev_peer_refused(self):
        self.denied("/api/v1/tasks?probe=dev-unknown", [("X-Federation-Dev-Peer", "nobody-org")], 403)

    def test_policy_still_applies(self):
        self.denied("/api/v1/notes?probe=dev-notes", [("X-Federation-Dev-Peer", "partner-labs")],
                    403, "resource_not_granted")
        self.denied("/nowhere?probe=dev-noroute", [("X-Federation-Dev-Peer", "partner-labs")],
                    403, "no_route")


class KeyPermissionsTest(unittest.TestCase):
    """A world-readable private key is refused at start (exit 2, naming the file)
    unless FEDPROXY_ALLOW_INSECURE_KEY_PERMS=1."""

    @classmethod
    def setUpClass(cls):
        cls.pki = shared_pki()
        cls.dir = tempfile.mkdtemp(prefix="fedtest-keyperm-")
        cls.backend = Backend().start()
        cls.key = os.path.join(cls.dir, "world-readable.key")
        shutil.copyfile(cls.pki.server.key, cls.key)
        os.chmod(cls.key, 0o644)
        cls.cfg = base_config(cls.pki, cls.backend.address, tls={"key": cls.key})

    @classmethod
    def tearDownClass(cls):
        cls.backend.stop()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def test_refused(self):
        path = write_config(self.cfg, self.dir, "keyperm.json")
        for env in ({}, {"FEDPROXY_ALLOW_INSECURE_KEY_PERMS": "0"}, INSECURE):
            with self.subTest(env=env):
                p = run_cli(["run", "--config", path], timeout=15, env=env)
                lines = stderr_lines(p.stderr)
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertEqual(len(lines), 1, p.stderr)
                self.assertIn(self.key, lines[0])

    def test_override(self):
        with Proxy(self.cfg, env={"FEDPROXY_ALLOW_INSECURE_KEY_PERMS": "1"}) as p:
            with Conn.open(p.ingress_port, client_context(self.pki, self.pki.client)) as c:
                self.assertEqual(c.request("GET", "/keyperm/override").status, 200)
            self.assertIs(admin_status(p.admin_port).get("insecure"), False)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""`policy explain` (SPEC §12): for every row of the policy test table
(fedtest/policy_table.py, the requests test_policy.py sends), the real
request through a running fedproxy (mTLS, recording backend), the admin API
(GET /v1/explain) and the offline CLI (`fedproxy policy explain --config`)
must agree: decision, error code and status; for a forwarded request, the
target and the X-Federation-* and forwarding headers the app received must be
the ones explain announced, in the same order. Plus the API's refusals (400
for bad parameters, 401 without the token), an unknown peer, and the online
CLI (--admin) with its exit codes.

Run: FEDPROXY_BIN=build/proxy/app/fedproxy python3 tests/integration/test_explain.py
"""

import json
import os
import shutil
import sys
import tempfile
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fedtest.backend import Backend  # noqa: E402
from fedtest.case import main, shared_pki, start_class_proxy  # noqa: E402
from fedtest.policy import wait_audit  # noqa: E402
from fedtest.policy_table import PEER_A, PEER_NOBODY, PolicyCase, PolicyTable, probe  # noqa: E402
from fedtest.proxy import Proxy, free_port, run_cli  # noqa: E402
from fedtest.reload import admin_request, write_admin_token  # noqa: E402

# What explain reports in place of what only a real request has.
CERT_HASH_PLACEHOLDER = "<sha256 of the client certificate>"
FORWARDING = ("x-forwarded-for", "x-forwarded-proto", "forwarded")


def identity_headers(headers) -> list:
    """The headers fedproxy writes for the app (SPEC §5), in order, with
    their values: X-Federation-* and the forwarding headers."""
    return [(k.lower(), v) for k, v in headers
            if k.lower().startswith("x-federation-") or k.lower() in FORWARDING]


class ExplainTest(PolicyCase):
    @classmethod
    def setUpClass(cls):
        cls.pki = pki = shared_pki()
        cls.tmp = tempfile.mkdtemp(prefix="fedtest-explain-")
        cls.audit_path = os.path.join(cls.tmp, "audit.jsonl")
        cls.table = PolicyTable(pki, cls.tmp)
        cls.token_file = os.path.join(cls.tmp, "admin.token")
        cls.token = write_admin_token(cls.token_file)
        cls.backend = Backend().start()
        cls.proxy = Proxy(cls.table.config(cls.backend.address, audit={"path": cls.audit_path},
                                           admin={"listen": "127.0.0.1:0", "token_file": cls.token_file}))
        start_class_proxy(cls)

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        cls.backend.stop()
        if not os.environ.get("FEDTEST_KEEP"):
            shutil.rmtree(cls.tmp, ignore_errors=True)

    # -- the three ways of asking ------------------------------------------------
    def api(self, token="default", **params):
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        status, body = admin_request(self.proxy.admin_port, "GET", "/v1/explain?" + query,
                                     token=self.token if token == "default" else token)
        return status, json.loads(body)

    def cli(self, *args, env=None):
        p = run_cli(["policy", "explain", *args], env=env)
        out = json.loads(p.stdout) if p.stdout.strip() else None
        return p.returncode, out, p.stderr

    def explain_args(self, peer, method, target, grant=None):
        args = ["--peer", peer, "--method", method, "--target", target]
        return args + (["--grant", grant] if grant else [])

    # -- every row of the policy table ---------------------------------------------
    def test_every_row_agrees_with_the_live_decision(self):
        rows = self.table.rows()
        self.assertGreater(len(rows), 40)
        for row in rows:
            with self.subTest(row=row.name):
                rid = "explain-" + probe()
                resp = self.call(row.cert, row.method, row.target,
                                 row.headers() + [("X-Request-Id", rid)])
                target = row.target + ("&" if "?" in row.target else "?") + "probe=" + resp.marker
                status, online = self.api(peer=row.peer, method=row.method, target=target,
                                          grant=row.grant)
                self.assertEqual(status, 200, online)
                rc, offline, err = self.cli("--config", self.proxy.config_path,
                                            *self.explain_args(row.peer, row.method, target, row.grant))
                self.assertIsNotNone(offline, err)
                self.assertEqual(offline, online, "offline and online explain differ")
                self.assertEqual(rc, 0 if online["decision"] == "allow" else 1, err)

                # the table's own expectation holds live
                self.assertEqual(resp.status, row.status, resp.body[:300])
                if resp.status == 200:
                    self.assert_allowed(resp)
                    self.assertEqual(online["decision"], "allow")
                    self.assertEqual(online["status"], 200)
                    self.assertEqual(online["error"], row.code)
                    self.assertEqual(online["shadow"], row.code is not None)
                    self.assert_app_got_what_explain_said(resp.marker, online, row)
                    rec = wait_audit(self.audit_path, lambda r: r.get("request_id") == rid)
                    self.assertIsNotNone(rec, "no audit record")
                    self.assertEqual(rec.get("decision"), "shadow_deny" if row.code else "allow", rec)
                    if row.code:
                        self.assertEqual(rec.get("reason"), row.code, rec)
                    self.assertEqual(rec.get("grant"), online["grant"], rec)
                    self.assertEqual(rec.get("resource") or None, (online["route"] or {}).get("resource"), rec)
                else:
                    body = self.assert_denied(resp, row.status, row.code)
                    self.assertEqual(online["decision"], "deny")
                    self.assertEqual((online["status"], online["error"]), (resp.status, body["error"]))
                    self.assertEqual(online["target"], None)
                    self.assertEqual(online["headers"], [])

    def assert_app_got_what_explain_said(self, marker, explained, row):
        got = self.forwarded(marker)
        self.assertEqual(len(got), 1, got)
        received = got[0]
        self.assertEqual(received.method, row.method)
        self.assertEqual(received.target, explained["target"], "the target the app received")
        self.assertEqual(identity_headers(received.headers), identity_headers(explained["headers"]))
        self.assertTrue(identity_headers(explained["headers"]), explained)
        xfcc = [v for k, v in received.headers if k.lower() == "x-forwarded-client-cert"]
        said = [v for k, v in explained["headers"] if k.lower() == "x-forwarded-client-cert"]
        self.assertEqual(len(xfcc), 1)
        self.assertEqual(len(said), 1)
        hash_said = said[0].split(";")[0]
        # The pin is the certificate's hash; without one explain cannot know it.
        if hash_said != "Hash=" + CERT_HASH_PLACEHOLDER:
            self.assertEqual(hash_said, "Hash=" + row.cert.der_sha256())
        self.assertEqual(xfcc[0].split(";")[1:], said[0].split(";")[1:])
        self.assertEqual(received.header("authorization"), None)
        self.assertEqual((explained["route"] or {}).get("resource"), received.header("x-federation-resource"))

    # -- the API's refusals ------------------------------------------------------------
    def test_bad_parameters_400(self):
        bad = {
            "no peer": "method=GET&target=%2F",
            "no method": "peer=partner-labs&target=%2F",
            "no target": "peer=partner-labs&method=GET",
            "method not a token": "peer=partner-labs&method=G%20T&target=%2F",
            "target with a space": "peer=partner-labs&method=GET&target=%2Fa%20b",
            "bad escape": "peer=partner-labs&method=GET&target=%2",
            "unknown parameter": "peer=partner-labs&method=GET&target=%2F&limit=5",
            "twice": "peer=partner-labs&peer=beta-org&method=GET&target=%2F",
            "bad source": "peer=partner-labs&method=GET&target=%2F&source=10.0.0.999",
        }
        for name, query in bad.items():
            with self.subTest(name):
                status, body = admin_request(self.proxy.admin_port, "GET", "/v1/explain?" + query,
                                             token=self.token)
                self.assertEqual(status, 400, body)
                err = json.loads(body)
                self.assertEqual(err["error"], "bad_request", err)
                self.assertTrue(err["message"] and err["request_id"], err)
        status, body = admin_request(self.proxy.admin_port, "POST", "/v1/explain?peer=a&method=GET&target=%2F",
                                     token=self.token)
        self.assertEqual(status, 405, body)

    def test_no_token_401(self):
        for token in (None, "not-the-token"):
            with self.subTest(token=token):
                status, body = admin_request(self.proxy.admin_port, "GET",
                                             "/v1/explain?peer=partner-labs&method=GET&target=%2F",
                                             token=token)
                self.assertEqual(status, 401, body)
                self.assertEqual(json.loads(body)["error"], "unauthorized")

    def test_unknown_peer(self):
        for peer in (PEER_NOBODY, "x"):
            with self.subTest(peer=peer):
                status, out = self.api(peer=peer, method="GET", target="/api/v1/tasks")
                self.assertEqual(status, 200, out)
                self.assertEqual((out["decision"], out["error"], out["status"], out["peer"]),
                                 ("deny", "san_mismatch", 403, None), out)

    def test_source_parameter(self):
        g = self.table.g["a_main"]  # source_cidrs 127.0.0.0/8
        _, inside = self.api(peer=PEER_A, method="GET", target="/api/v1/tasks", grant=g, source="127.9.9.9")
        self.assertEqual(inside["decision"], "allow", inside)
        self.assertIn(["X-Forwarded-For", "127.9.9.9"], inside["headers"])
        _, outside = self.api(peer=PEER_A, method="GET", target="/api/v1/tasks", grant=g, source="192.0.2.1")
        self.assertEqual((outside["decision"], outside["error"]), ("deny", "source_not_allowed"), outside)
        rc, offline, err = self.cli("--config", self.proxy.config_path, "--source", "192.0.2.1",
                                    *self.explain_args(PEER_A, "GET", "/api/v1/tasks", g))
        self.assertEqual((rc, offline), (1, outside), err)

    # -- the CLI online and its exit codes ---------------------------------------------
    def test_cli_online_matches_api(self):
        admin = "127.0.0.1:%d" % self.proxy.admin_port
        g = self.table.g["a_main"]
        for method, target, rc_expected in (("GET", "/api/v1/tasks?limit=9999", 0),
                                            ("DELETE", "/api/v1/tasks/1", 1)):
            with self.subTest(method=method):
                rc, out, err = self.cli("--admin", admin, "--token-file", self.token_file,
                                        *self.explain_args(PEER_A, method, target, g))
                self.assertEqual(rc, rc_expected, err)
                _, api = self.api(peer=PEER_A, method=method, target=target, grant=g)
                self.assertEqual(out, api)
        # the token from the environment
        rc, out, err = self.cli("--admin", admin, *self.explain_args(PEER_A, "GET", "/api/v1/tasks", g),
                                env={"FEDPROXY_ADMIN_TOKEN": self.token})
        self.assertEqual((rc, out["decision"]), (0, "allow"), err)
        self.assertEqual(out["target"], "/api/v1/tasks")
        # no token: the API refuses, exit 1
        rc, out, err = self.cli("--admin", admin, *self.explain_args(PEER_A, "GET", "/api/v1/tasks", g))
        self.assertEqual(rc, 1, err)
        self.assertIn("401", err)
        # nothing listening: exit 3
        rc, out, err = self.cli("--admin", "127.0.0.1:%d" % free_port(), "--timeout-ms", "3000",
                                *self.explain_args(PEER_A, "GET", "/api/v1/tasks", g))
        self.assertEqual(rc, 3, err)

    def test_cli_usage(self):
        rc, _, err = self.cli("--config", self.proxy.config_path, "--method", "GET", "--target", "/")
        self.assertEqual(rc, 2, err)
        self.assertIn("--peer", err)
        rc, _, err = self.cli("--config", self.proxy.config_path,
                              *self.explain_args(PEER_A, "GET", "/", None), "--source", "nowhere")
        self.assertEqual(rc, 2, err)
        rc, _, err = self.cli(*self.explain_args(PEER_A, "GET", "/"))
        self.assertEqual(rc, 2, err)
        p = run_cli(["policy", "explain", "--help"])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("--target", p.stdout)
        p = run_cli(["policy", "nonsense", "--peer", "a"])
        self.assertEqual(p.returncode, 2, p.stderr)


if __name__ == "__main__":
    main()

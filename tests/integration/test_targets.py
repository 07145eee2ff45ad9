#!/usr/bin/env python3
"""One canonical request target (SPEC §4, issue 14) through the real binary:
raw request lines sent over mTLS, and for each class of path confusion what
the recording app received, byte for byte, or that it received nothing and
the peer got 400 ambiguous_path. Under both http.path_policy values; then
the limit parameter in every form a framework reads, method overrides,
absolute-form targets (origin-form + Host), and the audit record of a
canonicalized and of a refused target.

The grant: one peer, resource "tasks" with the excluded child "archive"
(and "root", the catch-all route), methods GET, HEAD and POST,
max_rows_per_query 100; "credentials" is not granted.

Run: FEDPROXY_BIN=build/proxy/app/fedproxy python3 tests/integration/test_targets.py
"""

import hashlib
import os
import shutil
import sys
import tempfile
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fedtest import wire  # noqa: E402
from fedtest.backend import Backend  # noqa: E402
from fedtest.case import main, shared_pki, start_class_proxy, stop_class_proxy  # noqa: E402
from fedtest.pki import PARTNER_URI  # noqa: E402
from fedtest.policy import grant, new_id, peer, policy_config, read_audit, wait_audit  # noqa: E402
from fedtest.proxy import Conn, Proxy, assert_json_error, client_context  # noqa: E402

PEER = "partner-labs"
MAX_ROWS = 100
ROUTES = [
    {"prefix": "/api/v1/tasks", "resource": "tasks"},
    {"prefix": "/api/v1/tasks/archive", "resource": "archive"},
    {"prefix": "/api/v1/credentials", "resource": "credentials"},
    {"prefix": "/", "resource": "root"},
]

# Outcomes. FWD(target, resource): the app received exactly `target` (before
# the probe parameter the test appends). DENY(status, codes): the peer got
# that JSON error and the app received nothing.
AMB = ("deny", 400, ("ambiguous_path",))
BAD = ("deny", 400, ("bad_request",))
# Bytes the HTTP parser itself refuses before fedproxy reads the target
# (raw controls, raw bytes >= 0x80): a 400 either way, never forwarded.
UNREADABLE = ("deny", 400, ("bad_request", "ambiguous_path"))


def FWD(target, resource="tasks"):
    return ("fwd", target, resource)


def DENY(status, code):
    return ("deny", status, (code,))


# (raw target, under "reject", under "rewrite"). The path classes of the
# issue and SPEC §4; targets whose path stays inside "tasks" only if read
# one way reach "credentials" or "archive" when read another.
CLASSES = [
    # benign: unchanged, or only escapes normalised
    (b"/api/v1/tasks/42", FWD("/api/v1/tasks/42"), FWD("/api/v1/tasks/42")),
    (b"/api/v1/tasks/", FWD("/api/v1/tasks/"), FWD("/api/v1/tasks/")),
    (b"/api/v1/tasks/%7euser", FWD("/api/v1/tasks/~user"), FWD("/api/v1/tasks/~user")),
    (b"/api/v1/%74asks/1", FWD("/api/v1/tasks/1"), FWD("/api/v1/tasks/1")),
    (b"/api/v1/tasks/caf%c3%a9", FWD("/api/v1/tasks/caf%C3%A9"), FWD("/api/v1/tasks/caf%C3%A9")),
    (b"/api/v1/tasks/a%20b", FWD("/api/v1/tasks/a%20b"), FWD("/api/v1/tasks/a%20b")),
    (b"/api/v1/tasks/..x/...", FWD("/api/v1/tasks/..x/..."), FWD("/api/v1/tasks/..x/...")),
    (b"/api/v1/tasks?next=/../credentials&q=%2F",
     FWD("/api/v1/tasks?next=/../credentials&q=%2F"), FWD("/api/v1/tasks?next=/../credentials&q=%2F")),
    (b"/api/v1/tasks/a|b{c}", FWD("/api/v1/tasks/a%7Cb%7Bc%7D"), FWD("/api/v1/tasks/a%7Cb%7Bc%7D")),
    (b"/api/v1/tasks/%252e%252e/credentials",
     FWD("/api/v1/tasks/%252e%252e/credentials"), FWD("/api/v1/tasks/%252e%252e/credentials")),
    # empty segments: an empty segment is a segment (RFC 3986 §5.2.4)
    (b"/api/v1/credentials//../tasks", AMB, DENY(403, "resource_not_granted")),
    (b"//api/v1/tasks/1", AMB, FWD("/api/v1/tasks/1")),
    (b"/api/v1//tasks/1", AMB, FWD("/api/v1/tasks/1")),
    (b"/api/v1/tasks//archive", AMB, DENY(403, "resource_excluded")),
    (b"/.//../api/v1/tasks", AMB, FWD("/api/v1/tasks")),
    (b"//%2e%2e/api/v1/tasks", AMB, FWD("/api/v1/tasks")),
    # dot segments, plain and encoded
    (b"/api/v1/tasks/./1", AMB, FWD("/api/v1/tasks/1")),
    (b"/api/v1/tasks/x/../1", AMB, FWD("/api/v1/tasks/1")),
    (b"/api/v1/credentials/../tasks/1", AMB, FWD("/api/v1/tasks/1")),
    (b"/api/v1/tasks/../credentials", AMB, DENY(403, "resource_not_granted")),
    (b"/api/v1/tasks/%2e%2e/credentials", AMB, DENY(403, "resource_not_granted")),
    (b"/api/v1/tasks/%2E%2E/credentials", AMB, DENY(403, "resource_not_granted")),
    (b"/api/v1/tasks/.%2e/credentials", AMB, DENY(403, "resource_not_granted")),
    (b"/api/v1/tasks/%2e./credentials", AMB, DENY(403, "resource_not_granted")),
    (b"/api/v1/tasks/x/%2e%2e/archive/1", AMB, DENY(403, "resource_excluded")),
    (b"/api/v1/tasks/%2e/1", AMB, FWD("/api/v1/tasks/1")),
    # climbing above "/"
    (b"/../api/v1/tasks", AMB, AMB),
    (b"/api/v1/../../../etc/passwd", AMB, AMB),
    (b"/%2e%2e/%2e%2e/api/v1/tasks", AMB, AMB),
    # encoded "/" and "\"
    (b"/api/v1/tasks/..%2fcredentials", AMB, AMB),
    (b"/api/v1/tasks%2F..%2Fcredentials", AMB, AMB),
    (b"/api/v1/tasks/..%5Ccredentials", AMB, AMB),
    (b"/api/v1/tasks/..%5ccredentials", AMB, AMB),
    # raw "\" (WHATWG URL: a separator for http(s))
    (b"/api/v1/tasks/..\\credentials", AMB, AMB),
    (b"/api/v1/tasks\\..\\credentials", AMB, AMB),
    # ";" path parameters (servlet containers strip them)
    (b"/api/v1/tasks/..;/credentials", AMB, AMB),
    (b"/api/v1/credentials;/../tasks", AMB, AMB),
    (b"/api/v1/tasks;jsessionid=0123", AMB, AMB),
    (b"/api/v1/tasks/1%3bx", AMB, AMB),
    # NUL and other controls, encoded
    (b"/api/v1/tasks%00/../credentials", AMB, AMB),
    (b"/api/v1/tasks/1%00.json", AMB, AMB),
    (b"/api/v1/tasks/%0d%0aX-Injected:%201", AMB, AMB),
    (b"/api/v1/tasks?x=%0a", AMB, AMB),
    # raw controls and bytes >= 0x80
    (b"/api/v1/tasks/\x01", UNREADABLE, UNREADABLE),
    (b"/api/v1/tasks/caf\xc3\xa9", UNREADABLE, UNREADABLE),
    (b"/api/v1/tasks/\xc0\xae\xc0\xae/credentials", UNREADABLE, UNREADABLE),
    # overlong UTF-8 (IIS read %c0%ae as ".")
    (b"/api/v1/tasks/%c0%ae%c0%ae/credentials", AMB, AMB),
    (b"/api/v1/tasks/%e0%80%ae%e0%80%ae/credentials", AMB, AMB),
    # raw "#": a fragment some servers drop and others read
    (b"/api/v1/tasks#/../credentials", AMB, AMB),
    (b"/api/v1/tasks/1?x=1#y", AMB, AMB),
    # malformed escapes
    (b"/api/v1/tasks/%zz", BAD, BAD),
    (b"/api/v1/tasks/%u002e%u002e/credentials", BAD, BAD),
    (b"/api/v1/tasks?x=%zz", AMB, AMB),
    # routes match ASCII case-insensitively; the app gets the case sent
    (b"/API/V1/TASKS/7", FWD("/API/V1/TASKS/7"), FWD("/API/V1/TASKS/7")),
    (b"/Api/v1/Credentials", DENY(403, "resource_not_granted"), DENY(403, "resource_not_granted")),
    (b"/api/v1/TASKS/Archive/1", DENY(403, "resource_excluded"), DENY(403, "resource_excluded")),
    (b"/api/v1/tasks/%41RCHIVE", DENY(403, "resource_excluded"), DENY(403, "resource_excluded")),
    # target forms
    (b"api/v1/tasks", BAD, BAD),
    (b"ftp://acme.example/api/v1/tasks", BAD, BAD),
    (b"http://user:pw@acme.example/api/v1/tasks", BAD, BAD),
    (b"http:///api/v1/tasks", BAD, BAD),
]


def tag(raw: bytes, marker: str) -> bytes:
    """The target with a probe parameter appended to its query (before any
    fragment), so what reached the app can be found."""
    h = raw.find(b"#")
    head, frag = (raw, b"") if h < 0 else (raw[:h], raw[h:])
    return head + (b"&" if b"?" in head else b"?") + b"probe=" + marker.encode() + frag


def expected_target(target: str, marker: str) -> str:
    return target + ("&" if "?" in target else "?") + "probe=" + marker


class TargetCase(unittest.TestCase):
    """A proxy with the grant above; subclasses set PATH_POLICY."""

    PATH_POLICY = None  # None = the default

    @classmethod
    def setUpClass(cls):
        cls.pki = pki = shared_pki()
        cls.tmp = tempfile.mkdtemp(prefix="fedtest-targets-")
        cls.audit_path = os.path.join(cls.tmp, "audit.jsonl")
        cls.gid = new_id()
        cls.cert = pki.issue_client("targets-" + uuid.uuid4().hex[:8], PARTNER_URI, grant_id=cls.gid)
        over = {"audit": {"path": cls.audit_path}}
        if cls.PATH_POLICY:
            over["http"] = {"path_policy": cls.PATH_POLICY}
        cls.backend = Backend().start()
        cfg = policy_config(
            pki, cls.backend.address, routes=ROUTES, peers=[peer(PEER, PARTNER_URI)],
            grants=[grant(cls.gid, PEER, ["tasks", "root"], excluded_resources=["archive"],
                          methods=["GET", "HEAD", "POST"], max_rows_per_query=MAX_ROWS)],
            **over)
        cls.proxy = Proxy(cfg)
        start_class_proxy(cls)
        cls.ctx = client_context(pki, cls.cert)

    @classmethod
    def tearDownClass(cls):
        stop_class_proxy(cls)
        if not os.environ.get("FEDTEST_KEEP"):
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def send(self, method: bytes, raw_target: bytes, headers=(), host: bytes = b"acme.example"):
        """One raw request line on a new connection; returns (response,
        marker, request_id, what the app received with that marker)."""
        marker = uuid.uuid4().hex
        rid = "tgt-" + marker[:12]
        head = b"%s %s HTTP/1.1\r\nHost: %s\r\nX-Request-Id: %s\r\n" % (
            method, tag(raw_target, marker), host, rid.encode())
        head += b"".join(b"%s: %s\r\n" % (k.encode(), v.encode()) for k, v in headers)
        conn = Conn.open(self.proxy.ingress_port, self.ctx, timeout=15)
        self.addCleanup(conn.close)
        conn.send(head + b"Connection: close\r\n\r\n")
        resp = conn.read_response(method.decode())
        got = self.backend.wait_for(
            lambda reqs: [r for r in reqs if marker in r.target and r.complete], 2
        ) if resp.status == 200 else [r for r in self.backend.snapshot() if marker in r.target]
        return resp, marker, rid, got or []

    def check(self, method: bytes, raw: bytes, outcome, headers=()):
        resp, marker, _, got = self.send(method, raw, headers)
        if outcome[0] == "fwd":
            _, target, resource = outcome
            self.assertEqual(resp.status, 200, "body: %r" % resp.body[:300])
            self.assertEqual(len(got), 1, "the app received %r" % got)
            self.assertEqual(got[0].target, expected_target(target, marker),
                             "the bytes the app received")
            self.assertEqual(got[0].header("X-Federation-Resource"), resource)
            return got[0]
        _, status, codes = outcome
        self.assertEqual(resp.status, status, "body: %r" % resp.body[:300])
        body = resp.json()
        self.assertIn(body.get("error"), codes, body)
        assert_json_error(self, resp, status, body["error"])
        self.assertEqual(got, [], "a refused request reached the app: %r" % got)
        self.assertNotIn(marker.encode(), self.backend.raw_bytes())
        return None


class RejectPolicyTest(TargetCase):
    """http.path_policy "reject" (the default)."""

    def test_path_classes(self):
        for raw, reject, _ in CLASSES:
            with self.subTest(target=raw):
                self.check(b"GET", raw, reject)

    def test_refusal_is_audited_once_with_the_peer(self):
        resp, _, rid, got = self.send(b"GET", b"/api/v1/tasks/..;/credentials")
        assert_json_error(self, resp, 400, "ambiguous_path")
        self.assertEqual(got, [])
        rec = wait_audit(self.audit_path, lambda r: r.get("request_id") == rid)
        self.assertIsNotNone(rec, "no audit record for the refused request")
        self.assertEqual((rec["decision"], rec["reason"], rec["status"]), ("deny", "ambiguous_path", 400))
        self.assertEqual(rec["peer"], PEER)
        records = [r for r in read_audit(self.audit_path) if r.get("request_id") == rid]
        self.assertEqual(len(records), 1, records)

    def test_refused_request_with_a_body_closes_without_reading_it(self):
        marker = uuid.uuid4().hex
        conn = Conn.open(self.proxy.ingress_port, self.ctx, timeout=15)
        self.addCleanup(conn.close)
        conn.send(b"POST /api/v1/tasks/%2e%2e/credentials?probe=" + marker.encode() +
                  b" HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello")
        resp = conn.read_response("POST")
        assert_json_error(self, resp, 400, "ambiguous_path")
        self.assertTrue(resp.wants_close())
        self.assertNotIn(marker.encode(), self.backend.raw_bytes())

    def test_pipelined_requests_after_a_refusal_are_answered_in_order(self):
        m1, m2 = uuid.uuid4().hex, uuid.uuid4().hex
        conn = Conn.open(self.proxy.ingress_port, self.ctx, timeout=15)
        self.addCleanup(conn.close)
        conn.send(b"GET /api/v1//tasks?probe=%s HTTP/1.1\r\nHost: a\r\n\r\n"
                  b"GET /api/v1/tasks?probe=%s HTTP/1.1\r\nHost: a\r\n\r\n" % (m1.encode(), m2.encode()))
        assert_json_error(self, conn.read_response(), 400, "ambiguous_path")
        second = conn.read_response()
        self.assertEqual(second.status, 200)
        self.assertEqual(second.json()["target"], "/api/v1/tasks?probe=" + m2)
        self.assertNotIn(m1.encode(), self.backend.raw_bytes())


class RewritePolicyTest(TargetCase):
    """http.path_policy "rewrite": "//" and dot segments are resolved, and
    what was resolved is what the app receives."""

    PATH_POLICY = "rewrite"

    def test_path_classes(self):
        for raw, _, rewrite in CLASSES:
            with self.subTest(target=raw):
                self.check(b"GET", raw, rewrite)

    def test_audit_records_the_canonical_path_and_its_hash(self):
        resp, marker, rid, got = self.send(b"GET", b"/api/v1/credentials/..//tasks/%2e/7?limit=5")
        self.assertEqual(resp.status, 200, resp.body[:300])
        self.assertEqual(got[0].target, "/api/v1/tasks/7?limit=5&probe=" + marker)
        rec = wait_audit(self.audit_path, lambda r: r.get("request_id") == rid)
        self.assertIsNotNone(rec)
        self.assertEqual(rec["path"], "/api/v1/tasks/7")
        self.assertEqual(rec["resource"], "tasks")
        query = "limit=5&probe=" + marker
        self.assertEqual(rec["query_hash"],
                         hashlib.sha256(("GET\n/api/v1/tasks/7\n" + query).encode()).hexdigest())

    def test_limit_rewrite_is_applied_to_the_canonical_target(self):
        self.check(b"GET", b"/api/v1//tasks/./1?limit=100000", FWD("/api/v1/tasks/1?limit=%d" % MAX_ROWS))


class LimitAndOverrideTest(TargetCase):
    """The row limit in every form a framework reads (SPEC §4), method
    overrides, absolute-form and asterisk-form targets."""

    def test_limit_forms(self):
        m = MAX_ROWS
        cases = [
            (b"/api/v1/tasks?limit=100000", "/api/v1/tasks?limit=%d" % m),
            (b"/api/v1/tasks?limit=50", "/api/v1/tasks?limit=50"),
            (b"/api/v1/tasks?LIMIT=100000", "/api/v1/tasks?LIMIT=%d" % m),
            (b"/api/v1/tasks?Limit=100000", "/api/v1/tasks?Limit=%d" % m),
            (b"/api/v1/tasks?a=1;limit=100000", "/api/v1/tasks?a=1;limit=%d" % m),
            (b"/api/v1/tasks?limit[]=100000", "/api/v1/tasks?limit[]=%d" % m),
            (b"/api/v1/tasks?limit[0]=100000", "/api/v1/tasks?limit[0]=%d" % m),
            (b"/api/v1/tasks?limit%5B%5D=100000", "/api/v1/tasks?limit%%5B%%5D=%d" % m),
            (b"/api/v1/tasks?%6Cimit=100000", "/api/v1/tasks?%%6Cimit=%d" % m),
            (b"/api/v1/tasks?limit=5&LIMIT=500", "/api/v1/tasks?limit=5&LIMIT=%d" % m),
            (b"/api/v1/tasks?limit=-1", "/api/v1/tasks?limit=%d" % m),
            (b"/api/v1/tasks?limit=1e9", "/api/v1/tasks?limit=%d" % m),
            (b"/api/v1/tasks?limit", "/api/v1/tasks?limit=%d" % m),
            (b"/api/v1/tasks?limits=100000", "/api/v1/tasks?limits=100000"),
        ]
        for raw, forwarded in cases:
            with self.subTest(target=raw):
                self.check(b"GET", raw, FWD(forwarded))

    def test_method_overrides(self):
        cases = [
            (b"POST", [("X-HTTP-Method-Override", "DELETE")], b"/api/v1/tasks/1", DENY(403, "method_not_allowed")),
            (b"POST", [("X-HTTP-Method", "PUT")], b"/api/v1/tasks/1", DENY(403, "method_not_allowed")),
            (b"GET", [("X-Method-Override", "delete")], b"/api/v1/tasks/1", DENY(403, "method_not_allowed")),
            (b"GET", [("x-http-method-override", "GET"), ("X-HTTP-Method-Override", "PATCH")],
             b"/api/v1/tasks/1", DENY(403, "method_not_allowed")),
            (b"GET", [], b"/api/v1/tasks/1?_method=DELETE", DENY(403, "method_not_allowed")),
            (b"POST", [], b"/api/v1/tasks/1?_METHOD=delete", DENY(403, "method_not_allowed")),
            (b"POST", [], b"/api/v1/tasks/1?x=1;_method=PUT", DENY(403, "method_not_allowed")),
            (b"POST", [], b"/api/v1/tasks/1?%5Fmethod=PUT", DENY(403, "method_not_allowed")),
            (b"POST", [], b"/api/v1/tasks/1?_method[]=PUT", DENY(403, "method_not_allowed")),
            (b"DELETE", [("X-HTTP-Method-Override", "GET")], b"/api/v1/tasks/1", DENY(403, "method_not_allowed")),
            (b"POST", [("X-HTTP-Method-Override", "GET")], b"/api/v1/tasks/1", FWD("/api/v1/tasks/1")),
            (b"GET", [], b"/api/v1/tasks/1?_method=head", FWD("/api/v1/tasks/1?_method=head")),
        ]
        for method, headers, raw, outcome in cases:
            with self.subTest(method=method, headers=headers, target=raw):
                got = self.check(method, raw, outcome, headers)
                if got is not None:
                    self.assertEqual(got.method, method.decode())

    def test_absolute_form_becomes_origin_form_with_host(self):
        cases = [
            (b"http://acme.example/api/v1/tasks/1", "/api/v1/tasks/1", "acme.example"),
            (b"HTTPS://Acme.Example:8443/api/v1/tasks?x=1", "/api/v1/tasks?x=1", "acme.example:8443"),
            (b"http://other.example/api/v1/./tasks/2", None, None),  # a dot segment: refused
            (b"http://[::1]:9/api/v1/%74asks", "/api/v1/tasks", "[::1]:9"),
        ]
        for raw, target, host in cases:
            with self.subTest(target=raw):
                resp, marker, _, got = self.send(b"GET", raw, host=b"sent-host.example")
                if target is None:
                    assert_json_error(self, resp, 400, "ambiguous_path")
                    self.assertEqual(got, [])
                    continue
                self.assertEqual(resp.status, 200, resp.body[:300])
                self.assertEqual(len(got), 1)
                self.assertEqual(got[0].target, expected_target(target, marker))
                self.assertEqual(wire.header_all(got[0].headers, "Host"), [host])

    def test_absolute_form_without_a_path_is_the_root(self):
        resp, marker, _, got = self.send(b"GET", b"http://acme.example")
        self.assertEqual(resp.status, 200, resp.body[:300])
        self.assertEqual(got[0].target, "/?probe=" + marker)
        self.assertEqual(got[0].header("X-Federation-Resource"), "root")
        self.assertEqual(got[0].header("Host"), "acme.example")

    def test_asterisk_form(self):
        conn = Conn.open(self.proxy.ingress_port, self.ctx, timeout=15)
        self.addCleanup(conn.close)
        conn.send(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n")
        assert_json_error(self, conn.read_response("OPTIONS"), 403, "method_not_allowed")
        conn.send(b"GET * HTTP/1.1\r\nHost: a\r\n\r\n")
        assert_json_error(self, conn.read_response(), 400, "bad_request")

    def test_authority_form(self):
        conn = Conn.open(self.proxy.ingress_port, self.ctx, timeout=15)
        self.addCleanup(conn.close)
        conn.send(b"GET acme.example:443 HTTP/1.1\r\nHost: a\r\n\r\n")
        assert_json_error(self, conn.read_response(), 400, "bad_request")


if __name__ == "__main__":
    main()

"""The policy test table, shared by test_policy.py (live requests) and
test_explain.py (the same requests explained online and offline, SPEC §12):
the peers, grants and client certificates of test_policy.py's main proxy,
and one row per request whose outcome the policy decides.

    t = PolicyTable(pki, tmpdir)          # certificates, ids, manifests
    cfg = t.config(backend.address, audit={"path": ...})
    for row in t.rows(): ...              # Row(cert, peer, grant, method, target, status, code)

A row names the client twice: the certificate a live request presents
(`cert`, with the grant in its OID or, with `bearer`, in an
`Authorization: Bearer fg-<id>` header) and what explain is asked (`peer`
slug, `grant` id). Requests whose outcome depends on the certificate's own
bytes rather than on the configuration (another key under a pinned peer)
are not rows: explain describes the configured peer's certificate.
"""

from __future__ import annotations

import os
import unittest
import uuid
from dataclasses import dataclass

from .pki import PARTNER_URI
from .policy import bearer, grant, new_id, peer, policy_config, write_manifest
from .proxy import Conn, assert_json_error, client_context

PEER_A = "partner-labs"
URI_A = PARTNER_URI
PEER_B = "beta-org"
URI_B = "spiffe://beta.example/nodes/primary"
PEER_PIN = "pinned-org"
URI_PIN = "spiffe://pinned.example/nodes/a"
PEER_BLOCKED = "blocked-org"
URI_BLOCKED = "spiffe://blocked.example/nodes/a"
PEER_OLD = "old-org"
URI_OLD = "spiffe://old.example/nodes/a"
URI_NOBODY = "spiffe://stranger.example/nodes/x"
PEER_NOBODY = "stranger-org"  # configured nowhere: what explain is asked for URI_NOBODY

A_FILTERS = {"tasks": {"include_teams": ["t1", "t2"], "include_personal": True},
             "notes": {"include_teams": ["t1"]}}
B_FILTERS = {"notes": {"include_teams": ["b1"], "include_personal": False}}
A_MAX_ROWS = 500
RATE_BURST = 5
RATE_CONC_BURST = 20

TRAVERSALS = ("/api/v1/tasks/../credentials", "/api/v1/tasks/%2e%2e/credentials",
              "/api/v1/tasks/%2E%2E/credentials", "/api/v1/tasks/.%2e/credentials",
              "/api/v1/tasks/%2e./credentials", "/api/v1/tasks/./../credentials/1",
              "/api/v1//tasks/../../v1/credentials", "/api/v1/tasks/%2e%2e/%2e%2e/v1/reports",
              "/api/v1/notes/%2e%2e/reports", "/api/v1/notes/../tasks/archive/x",
              "/../../etc/passwd", "/api/v1/../../../etc", "/%2e%2e/etc/passwd",
              "/api/%2E%2E/%2e%2e/..", "/api/v1/tasks/../../../../x")


@dataclass
class Row:
    name: str
    cert: object          # fedtest.pki.Issued: what a live request presents
    peer: str             # what explain is asked
    grant: str | None
    method: str
    target: str           # without the probe parameter the live call adds
    status: int           # the live answer (200: forwarded)
    code: str | None      # the SPEC §6 code (for a 200: the shadow-mode code, or None)
    bearer: bool = False  # the live request names the grant in a Bearer header

    def headers(self) -> list:
        return [bearer(self.grant)] if self.bearer else []


class PolicyTable:
    """Ids, certificates, manifests and config of test_policy.py's main proxy."""

    def __init__(self, pki, tmp: str):
        self.pki = pki
        g = self.g = {k: new_id() for k in (
            "a_main", "a_pending", "a_revoked", "a_expired", "a_cidr", "a_rate", "a_rate_conc",
            "a_shadow", "b", "b_pending", "pin", "blocked", "old")}
        self.unknown_grant = new_id()
        issue = pki.issue_client
        self.c_a = issue("pol-a", URI_A)
        self.c_a_main = issue("pol-a-main", URI_A, grant_id=g["a_main"])
        self.c_a_unknown = issue("pol-a-unknown", URI_A, grant_id=self.unknown_grant)
        self.c_a_pending = issue("pol-a-pending", URI_A, grant_id=g["a_pending"])
        self.c_a_revoked = issue("pol-a-revoked", URI_A, grant_id=g["a_revoked"])
        self.c_a_expired = issue("pol-a-expired", URI_A, grant_id=g["a_expired"])
        self.c_a_cidr = issue("pol-a-cidr", URI_A, grant_id=g["a_cidr"])
        self.c_a_oid_b = issue("pol-a-oid-b", URI_A, grant_id=g["b"])
        self.c_a_multi = issue("pol-a-multi", URI_NOBODY, URI_A, grant_id=g["a_main"])
        self.c_b = issue("pol-b", URI_B)
        self.c_b_other_key = issue("pol-b-other-key", URI_B)
        self.c_pin = issue("pol-pin", URI_PIN)
        self.c_pin_other_key = issue("pol-pin-other-key", URI_PIN)
        self.c_blocked = issue("pol-blocked", URI_BLOCKED)
        self.c_old = issue("pol-old", URI_OLD)
        self.c_nobody = issue("pol-nobody", URI_NOBODY, grant_id=g["a_main"])
        self.c_near = issue("pol-near", URI_A + "/", grant_id=g["a_main"])
        self.c_case = issue("pol-case", URI_A.replace("partner-labs", "Partner-Labs"),
                            grant_id=g["a_main"])
        self.c_dns_only = issue("pol-dns-only", dns=("partner-labs.example",),
                                grant_id=g["a_main"])
        self.manifests = os.path.join(tmp, "peers")
        write_manifest(self.manifests, PEER_B, URI_B)

    def config(self, upstream: str, **over) -> dict:
        g = self.g
        peers = [
            peer(PEER_A, URI_A, allowed_regions=["eu-west", "eu-central"],
                 allowed_artifact_types=["dataset"]),
            peer(PEER_B, None, trust_level="full"),  # entity_uri from the manifest file
            peer(PEER_PIN, URI_PIN, cert_fingerprint=self.c_pin.der_sha256()),
            peer(PEER_BLOCKED, URI_BLOCKED, trust_level="none"),
            peer(PEER_OLD, URI_OLD, expires_at="2020-01-01T00:00:00Z"),
        ]
        grants = [
            grant(g["a_main"], PEER_A, ["tasks", "notes"], excluded_resources=["archive"],
                  filters=A_FILTERS, max_rows_per_query=A_MAX_ROWS,
                  source_cidrs=["127.0.0.0/8"]),
            grant(g["a_pending"], PEER_A, ["tasks"], status="pending"),
            grant(g["a_revoked"], PEER_A, ["tasks"], status="revoked"),
            grant(g["a_expired"], PEER_A, ["tasks"], expires_at="2020-01-01T00:00:00Z"),
            grant(g["a_cidr"], PEER_A, ["tasks"], source_cidrs=["10.0.0.0/8"]),
            grant(g["a_rate"], PEER_A, ["tasks"], rate_limit={"rps": 1, "burst": RATE_BURST}),
            grant(g["a_rate_conc"], PEER_A, ["tasks"],
                  rate_limit={"rps": 1, "burst": RATE_CONC_BURST}),
            grant(g["a_shadow"], PEER_A, ["tasks"], methods=["GET"], enforce=False),
            grant(g["b"], PEER_B, ["tasks", "notes"], filters=B_FILTERS, max_rows_per_query=250),
            grant(g["b_pending"], PEER_B, ["tasks", "notes", "reports"], status="pending"),
            grant(g["pin"], PEER_PIN, ["tasks"]),
            grant(g["blocked"], PEER_BLOCKED, ["tasks"]),
            grant(g["old"], PEER_OLD, ["tasks"]),
        ]
        return policy_config(self.pki, upstream, peers=peers, grants=grants,
                             manifests_dir=self.manifests, **over)

    def rows(self) -> list[Row]:
        g = self.g
        main = g["a_main"]

        def a_main(name, method, target, status=200, code=None):
            return Row(name, self.c_a_main, PEER_A, main, method, target, status, code)

        rows = [
            # what the app receives (§5)
            a_main("allowed", "GET", "/api/v1/tasks/42"),
            a_main("allowed notes", "GET", "/api/v1/notes/1"),
            Row("bearer grant", self.c_a, PEER_A, main, "GET", "/api/v1/tasks", 200, None, bearer=True),
            Row("only active grant", self.c_b, PEER_B, None, "GET", "/api/v1/notes/1", 200, None),
            Row("only active grant, resource", self.c_b, PEER_B, None, "GET", "/api/v1/reports", 403,
                "resource_not_granted"),
            Row("several URI SANs", self.c_a_multi, PEER_A, main, "GET", "/api/v1/tasks", 200, None),
            # identity (§3)
            Row("unknown SAN", self.c_nobody, PEER_NOBODY, main, "GET", "/api/v1/tasks", 403,
                "san_mismatch"),
            Row("pinned", self.c_pin, PEER_PIN, None, "GET", "/api/v1/tasks", 200, None),
            Row("blocked", self.c_blocked, PEER_BLOCKED, None, "GET", "/api/v1/tasks", 403,
                "peer_blocked"),
            Row("expired peer", self.c_old, PEER_OLD, None, "GET", "/api/v1/tasks", 403,
                "peer_expired"),
            # grant selection (§4)
            Row("unknown grant (OID)", self.c_a_unknown, PEER_A, self.unknown_grant, "GET",
                "/api/v1/tasks", 403, "unknown_grant"),
            Row("unknown grant (Bearer)", self.c_a, PEER_A, self.unknown_grant, "GET", "/api/v1/tasks",
                403, "unknown_grant", bearer=True),
            Row("several active grants, none named", self.c_a, PEER_A, None, "GET", "/api/v1/tasks",
                403, "unknown_grant"),
            Row("pending", self.c_a_pending, PEER_A, g["a_pending"], "GET", "/api/v1/tasks", 403,
                "grant_inactive"),
            Row("revoked (Bearer)", self.c_a, PEER_A, g["a_revoked"], "GET", "/api/v1/tasks", 403,
                "grant_inactive", bearer=True),
            Row("expired grant", self.c_a_expired, PEER_A, g["a_expired"], "GET", "/api/v1/tasks", 403,
                "grant_expired"),
            Row("another peer's grant (OID)", self.c_a_oid_b, PEER_A, g["b"], "GET", "/api/v1/tasks",
                403, "grant_peer_mismatch"),
            Row("another peer's grant (Bearer)", self.c_b, PEER_B, main, "GET", "/api/v1/tasks", 403,
                "grant_peer_mismatch", bearer=True),
            # decision steps (§4)
            Row("source", self.c_a_cidr, PEER_A, g["a_cidr"], "GET", "/api/v1/tasks", 403,
                "source_not_allowed"),
            a_main("method DELETE", "DELETE", "/api/v1/tasks/1", 403, "method_not_allowed"),
            a_main("method PUT", "PUT", "/api/v1/tasks/1", 403, "method_not_allowed"),
            a_main("method before route", "DELETE", "/api/v1/tasks/archive/1", 403,
                   "method_not_allowed"),
            Row("blocked before method", self.c_blocked, PEER_BLOCKED, None, "DELETE", "/nothing", 403,
                "peer_blocked"),
            Row("source before method", self.c_a_cidr, PEER_A, g["a_cidr"], "DELETE", "/nothing", 403,
                "source_not_allowed"),
            a_main("no route /", "GET", "/", 403, "no_route"),
            a_main("no route", "GET", "/nothing/here", 403, "no_route"),
            a_main("no route v2", "GET", "/api/v2/tasks", 403, "no_route"),
            a_main("no route, prefix of a route", "GET", "/api/v1", 403, "no_route"),
            a_main("not granted", "GET", "/api/v1/reports", 403, "resource_not_granted"),
            a_main("not granted, sensitive", "GET", "/api/v1/credentials/1", 403, "resource_not_granted"),
            a_main("excluded, longest prefix", "GET", "/api/v1/tasks/archive/2024", 403,
                   "resource_excluded"),
            a_main("excluded, escaped", "GET", "/api/v1/tasks/%61rchive/x", 403, "resource_excluded"),
            a_main("excluded, upper case", "GET", "/API/V1/TASKS/ARCHIVE/x", 403, "resource_excluded"),
            a_main("excluded, mixed case", "GET", "/api/v1/Tasks/Archive", 403, "resource_excluded"),
            a_main("segment boundary", "GET", "/api/v1/tasks/archived"),
            # max_rows_per_query (§4)
            a_main("limit rewritten", "GET", "/api/v1/tasks?team=t1&limit=100000&sort=asc"),
            a_main("limit kept", "GET", "/api/v1/tasks?limit=20"),
            a_main("every limit", "GET", "/api/v1/tasks?limit=5&limit=100000"),
            # shadow mode (§4)
            Row("shadow method", self.c_a, PEER_A, g["a_shadow"], "DELETE", "/api/v1/tasks/1", 200,
                "method_not_allowed", bearer=True),
            Row("shadow resource", self.c_a, PEER_A, g["a_shadow"], "GET", "/api/v1/reports", 200,
                "resource_not_granted", bearer=True),
        ]
        rows += [a_main("traversal " + t, "GET", t, 400, "ambiguous_path") for t in TRAVERSALS]
        return rows


def probe() -> str:
    return uuid.uuid4().hex


def with_probe(target: str, marker: str) -> str:
    return target + ("&" if "?" in target else "?") + "probe=" + marker


def headers_of(echo: dict) -> list:
    return [(k, v) for k, v in echo["headers"]]


class PolicyCase(unittest.TestCase):
    """Shared client helpers; subclasses set cls.proxy, cls.backend, cls.pki."""

    _ctx_cache: dict = {}

    @classmethod
    def ctx(cls, cert):
        key = cert.crt
        if key not in cls._ctx_cache:
            cls._ctx_cache[key] = client_context(cls.pki, cert)
        return cls._ctx_cache[key]

    def conn(self, cert) -> Conn:
        c = Conn.open(self.proxy.ingress_port, self.ctx(cert), timeout=15)
        self.addCleanup(c.close)
        return c

    def call(self, cert, method, target, headers=(), body=b"", conn=None):
        """One request on a new (or the given) connection, tagged with a
        unique probe parameter; returns the response with .marker set."""
        marker = probe()
        c = conn or self.conn(cert)
        resp = c.request(method, with_probe(target, marker), list(headers), body)
        resp.marker = marker
        return resp

    def forwarded(self, marker: str):
        return [r for r in self.backend.snapshot() if marker in r.target]

    def assert_denied(self, resp, status: int, code: str) -> dict:
        body = assert_json_error(self, resp, status, code)
        got = self.forwarded(resp.marker)
        self.assertEqual(got, [], "a %d %s request reached the app: %r" % (status, code, got))
        return body

    def assert_allowed(self, resp) -> dict:
        self.assertEqual(resp.status, 200, "body: %r" % resp.body[:400])
        echo = resp.json()
        self.assertIn(resp.marker, echo["target"], "the response did not come from the app")
        return echo

#!/usr/bin/env python3
"""Regenerates the committed seed corpora of tests/fuzz/corpus/.

    python3 tests/fuzz/make_corpus.py [BUILD_DIR]

HTTP and config seeds come from the tables below (taken from the unit tests
and SPEC examples). TLS seeds hold ClientHellos captured from a real
in-memory client: they are written by the fuzz target itself
(FUZZ_TLS_WRITE_SEEDS=DIR BUILD_DIR/tests/fuzz/fuzz_tls_server), so that
needs a fuzz build (default build-fuzz); without one the TLS seeds are left
as they are. Each seed starts with the control bytes its target reads first
(see the comment at the top of each fuzz_*.cpp). Files are rewritten, never
accumulated: the directories hold exactly what this script makes.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def slug(name):
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60]


def write_dir(target, seeds):
    d = os.path.join(CORPUS, target)
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    seen = set()
    for name, data in seeds:
        fn = slug(name)
        assert fn not in seen, fn
        seen.add(fn)
        with open(os.path.join(d, fn), "wb") as f:
            f.write(data)
    print(f"{target}: {len(seeds)} seeds")


# ---- HTTP requests: [split control][limits control] + bytes ---------------
# split control % 5: 0 whole, 1 byte by byte, 2 fixed step, 3/4 random sizes.
# limits control % 8 >= 4: small limits (else the defaults).
REQ = "GET / HTTP/1.1\r\nHost: a\r\n"
CHUNKED_POST = "POST /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"


def many_headers(n):
    return "".join(f"X-H{i}: v\r\n" for i in range(n))


REQUESTS = [
    ("simple GET", REQ + "\r\n"),
    ("POST with Content-Length", "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"),
    ("chunked with extension and trailer",
     CHUNKED_POST + "5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n"),
    ("TE case-insensitive", "POST / HTTP/1.1\r\nTransfer-Encoding: CHUNKED\r\n\r\n1\r\nx\r\n0\r\n\r\n"),
    ("absolute-form target", "GET http://peer/api?x=1 HTTP/1.1\r\nHost: peer\r\n\r\n"),
    ("OPTIONS star", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"),
    ("empty lines before", "\r\n\r\n" + REQ + "\r\n"),
    ("HTTP/1.0", "GET /old HTTP/1.0\r\n\r\n"),
    ("HTTP/1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"),
    ("HTAB and obs-text", REQ + "X-A: a\tb\xff\r\n\r\n"),
    ("upgrade then next", REQ + "Upgrade: websocket\r\nConnection: Upgrade\r\n\r\nGET /next HTTP/1.1\r\n\r\n"),
    ("upgrade with body",
     "POST / HTTP/1.1\r\nUpgrade: h2c\r\nConnection: upgrade\r\nContent-Length: 21\r\n\r\nGET /admin HTTP/1.1\r\n"),
    ("pipelined three",
     "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
     "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
     "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"),
    ("head fields",
     "POST /api/v1/tasks?x=1 HTTP/1.1\r\nHost:   peer.example  \r\nX-Empty:\r\nX-Tabbed:\t a b \t\r\n"
     "Expect: 100-Continue\r\nContent-Length: 0003\r\n\r\nabc"),
    ("expect continue 1.0", "PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx"),
    ("connection close list", "GET / HTTP/1.1\r\nConnection: keep-alive, CLOSE, X-Hop\r\nX-Hop: 1\r\n\r\n"),
    ("hop-by-hop headers",
     "GET / HTTP/1.1\r\nHost: a\r\nKeep-Alive: timeout=5\r\nProxy-Authorization: Basic x\r\nTE: trailers\r\n"
     "Trailer: X\r\nProxy-Connection: close\r\nAuthorization: Bearer fg-6f1c7c0e-8a9b-4c1d-9e2f-0123456789ab\r\n\r\n"),
    ("100 header fields", "GET / HTTP/1.1\r\n" + many_headers(100) + "\r\n"),
    ("CL then TE", "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("TE then CL", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n"),
    ("duplicate CL", "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"),
    ("CL list", "POST / HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\nabc"),
    ("TE gzip chunked", "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"),
    ("TE chunked chunked", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n"),
    ("TE identity", "POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n"),
    ("TE trailing space", "POST / HTTP/1.1\r\nTransfer-Encoding:  chunked \r\n\r\n0\r\n\r\n"),
    ("TE two fields", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("duplicate Host", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
    ("obs-fold", REQ + "X-A: a\r\n b\r\n\r\n"),
    ("bare LF", "GET / HTTP/1.1\nHost: a\r\n\r\n"),
    ("bare CR in value", REQ + "X-A: a\rb\r\n\r\n"),
    ("NUL in value", REQ + "X-A: a\0b\r\n\r\n"),
    ("space before colon", REQ + "Host : b\r\n\r\n"),
    ("lower-case method", "get / HTTP/1.1\r\n\r\n"),
    ("HTTP/2.0 line", "GET / HTTP/2.0\r\nHost: a\r\n\r\n"),
    ("HTTP/0.9 simple", "GET /\r\n\r\n"),
    ("RTSP", "GET / RTSP/1.0\r\n\r\n"),
    ("ICE", "SOURCE / ICE/1.0\r\n\r\n"),
    ("h2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
    ("CONNECT", "CONNECT peer:443 HTTP/1.1\r\nHost: peer:443\r\n\r\n"),
    ("CL plus", "POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\nhello"),
    ("CL above INT64_MAX", "POST / HTTP/1.1\r\nContent-Length: 9223372036854775808\r\n\r\n"),
    ("chunk size overflow", CHUNKED_POST + "10000000000000001\r\n"),
    ("chunk size 0x", CHUNKED_POST + "0x5\r\nhello\r\n0\r\n\r\n"),
    ("chunk data no CRLF", CHUNKED_POST + "5\r\nhelloXX0\r\n\r\n"),
    ("smuggle CL.TE",
     "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 13\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nSMUGGLED"),
    ("smuggle TE.CL",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n"),
    ("smuggle TE space colon",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\nGET /x HTTP/1.1\r\n\r\n"),
    ("smuggle chunked body with request",
     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1b\r\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n0\r\n\r\n"
     "GET /after HTTP/1.1\r\n\r\n"),
    ("trailers", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\nT: " + "t" * 45 + "\r\n\r\n"),
    ("leading OWS", "GET / HTTP/1.1\r\nX:" + " " * 200 + "v\r\n\r\n"),
    ("policy style request",
     "GET /api/v1/tasks/../notes/%2e%2e/tasks?limit=100000&x=1 HTTP/1.1\r\nHost: acme.example\r\n"
     "Authorization: Bearer fg-6f1c7c0e-8a9b-4c1d-9e2f-0123456789ab\r\nX-Request-Id: abc-123\r\n\r\n"),
    # chunk extensions at and over the per-chunk (1 KiB) and per-message (16 KiB) bounds
    ("chunk extension at the per-chunk limit", CHUNKED_POST + "1;" + "e" * 1023 + "\r\nx\r\n0\r\n\r\n"),
    ("chunk extension over the per-chunk limit", CHUNKED_POST + "1;" + "e" * 1024 + "\r\nx\r\n0\r\n\r\n"),
    ("chunk extension name=value pairs", CHUNKED_POST + "1;a=1;b=\"q\";c\r\nx\r\n0;last=1\r\n\r\n"),
    ("chunk extensions over the per-message limit",
     CHUNKED_POST + ("1;" + "e" * 199 + "\r\nx\r\n") * 90 + "0\r\n\r\n"),
]


def request_seeds():
    seeds = []
    for i, (name, text) in enumerate(REQUESTS):
        data = text.encode("latin-1")
        split = [0x00, 0x01, 0x07, 0x03, 0x04][i % 5]
        seeds.append((name, bytes([split, 0x00]) + data))
    # Small limits (limits control 0x04 | n << 3) on inputs near them.
    seeds.append(("small limits long line", bytes([0x01, 0x04 | (2 << 3)]) + b"GET /" + b"a" * 30 + b" HTTP/1.1\r\n\r\n"))
    seeds.append(("small limits many headers", bytes([0x00, 0x04 | (3 << 3)]) + ("GET / HTTP/1.1\r\n" + many_headers(6) + "\r\n").encode()))
    seeds.append(("small limits blank lines", bytes([0x02, 0x04]) + b"\r\n" * 40 + b"GET / HTTP/1.1\r\n\r\n"))
    return seeds


# ---- HTTP responses: [split control][HEAD mask][header budget] + bytes ----
# HEAD mask >= 0xC0: bit i = response i answers HEAD. budget >= 0xC0: small.
RESPONSES = [
    ("200 CL", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 0),
    ("chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nT: 1\r\n\r\n", 0),
    ("100 continue swallowed", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 0),
    ("103 and 102",
     "HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n"
     "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n", 0),
    ("1xx never has a body", "HTTP/1.1 150 Odd\r\nContent-Length: 3\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx", 0),
    ("response to HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", 0xC1),
    ("HEAD without framing", "HTTP/1.1 200 OK\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", 0xC1),
    ("HEAD chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz", 0xC1),
    ("204 304 200",
     "HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n"
     "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz", 0),
    ("until close", "HTTP/1.1 200 OK\r\n\r\nall the rest", 0),
    ("HTTP/1.0 until close", "HTTP/1.0 200 OK\r\n\r\nold", 0),
    ("HTTP/1.0 keep-alive CL", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nokHTTP/1.0 404 Nope\r\n\r\n", 0),
    ("no reason", "HTTP/1.1 200\r\nContent-Length: 1\r\n\r\nq", 0),
    ("head fields",
     "HTTP/1.1 404 Not Found Here\r\nContent-Type: text/plain \r\nX-Multi:  a ,b\t\r\nContent-Length: 4\r\n\r\nnope", 0),
    ("connection close", "HTTP/1.1 200 OK\r\nConnection: close, X-Hop\r\nX-Hop: 1\r\nContent-Length: 1\r\n\r\nx", 0),
    ("EOF in CL body", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", 0),
    ("EOF in chunked body", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", 0),
    ("EOF in head", "HTTP/1.1 200 OK\r\nContent-Le", 0),
    ("101", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n", 0),
    ("CL and TE", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n", 0),
    ("duplicate CL", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok", 0),
    ("TE gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nabc", 0),
    ("HTTP/2.0", "HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nok", 0),
    ("bad status", "HTTP/1.1 99 X\r\n\r\n", 0),
    ("obs-fold", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n", 0),
    ("bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n", 0),
    ("keep-alive pipeline",
     "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n"
     "1\r\nx\r\n0\r\n\r\nHTTP/1.1 404 Not Found\r\n\r\ntail", 0),
]


def response_seeds():
    seeds = []
    for i, (name, text, mask) in enumerate(RESPONSES):
        split = [0x00, 0x01, 0x07, 0x03, 0x04][i % 5]
        seeds.append((name, bytes([split, mask, 0x00]) + text.encode("latin-1")))
    seeds.append(("small head budget", bytes([0x01, 0x00, 0xC2]) + b"HTTP/1.1 200 OK\r\nX-A: 0123456789abcdef\r\nContent-Length: 0\r\n\r\n"))
    return seeds


# ---- configs: config JSON, "\n----\n", manifests / "#req" segments ---------
NODE = '"node": {"org": "acme-corp", "entity_uri": "spiffe://acme.example/nodes/a"}'
PEERS = '''"peers": [
    {"org": "partner-labs", "entity_uri": "spiffe://partner-labs.example/nodes/primary",
     "allowed_regions": ["eu", "us"]},
    {"org": "other-org", "entity_uri": "spiffe://other-org.example/nodes/a", "trust_level": "full"},
    {"org": "blocked-org", "entity_uri": "spiffe://blocked.example/nodes/a", "trust_level": "none"},
    {"org": "expired-org", "entity_uri": "spiffe://expired.example/nodes/a",
     "expires_at": "2025-06-01T00:00:00Z"},
    {"org": "pinned-org", "entity_uri": "spiffe://pinned.example/nodes/a",
     "cert_fingerprint": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}]'''
ROUTES = '''"routes": [
    {"prefix": "/api/v1/tasks", "resource": "tasks"},
    {"prefix": "/api/v1/tasks/archive", "resource": "archive"},
    {"prefix": "/api/v1/notes", "resource": "notes"},
    {"prefix": "/api/v1/credentials", "resource": "credentials"},
    {"prefix": "/api/v1/secrets", "resource": "secrets", "sensitive": true},
    {"prefix": "/static/", "resource": "static"}]'''
GRANT_A = '''{"id": "6f1c7c0e-8a9b-4c1d-9e2f-0123456789ab", "peer": "partner-labs",
    "resources": ["tasks","notes"], "excluded_resources": ["archive"], "methods": ["GET","HEAD"],
    "filters": {"tasks": {"include_teams": ["t1"], "include_personal": true}},
    "max_rows_per_query": 500, "rate_limit": {"rps": 50, "burst": 100},
    "source_cidrs": ["10.0.0.0/8", "2001:db8::/32"], "expires_at": "2027-04-13T00:00:00Z",
    "status": "active", "approved_sensitive": false}'''
GRANT_B = '''{"id": "11111111-2222-3333-4444-555555555555", "peer": "other-org",
    "resources": ["tasks", "secrets", "static"], "methods": ["GET", "POST", "DELETE"],
    "max_rows_per_query": 1, "rate_limit": {"rps": 0.5}, "approved_sensitive": true,
    "enforce": false, "status": "active"}'''
GRANT_C = '''{"id": "22222222-2222-3333-4444-555555555555", "peer": "pinned-org",
    "resources": ["notes"], "status": "revoked"}'''

SPEC_EXAMPLE = '''{
  "node": {"org": "acme-corp", "entity_uri": "spiffe://acme.example/nodes/a"},
  "tls": {"cert": "tls/node.crt", "key": "tls/node.key", "ca_bundle": "tls/ca.crt",
          "crl": null, "crl_fail_open": false, "watch_interval_ms": 5000},
  "ingress": {"listen": "0.0.0.0:8443", "upstream": "127.0.0.1:8080"},
  "egress": {"listen": "127.0.0.1:15001"},
  "admin": {"listen": "127.0.0.1:9901"},
  "workers": 1,
  "manifests_dir": "peers/",
  "peers": [{"org": "partner-labs", "trust_level": "verified",
             "cert_fingerprint": null, "expires_at": null,
             "allowed_regions": null, "allowed_artifact_types": null}],
  "routes": [{"prefix": "/api/v1/tasks", "resource": "tasks"}],
  "grants": [{"id": "6f1c7c0e-8a9b-4c1d-9e2f-0123456789ab", "peer": "partner-labs",
              "resources": ["tasks","notes"], "excluded_resources": [],
              "methods": ["GET","HEAD"],
              "filters": {"tasks": {"include_teams": ["t1"], "include_personal": true}},
              "max_rows_per_query": 500, "rate_limit": {"rps": 50, "burst": 100},
              "source_cidrs": ["10.0.0.0/8"], "expires_at": "2027-04-13T00:00:00Z",
              "status": "active", "approved_sensitive": false}],
  "audit": {"path": "audit.jsonl"},
  "limits": {"max_connections": 10000, "max_header_bytes": 16384},
  "timeouts": {"handshake_ms": 10000, "header_ms": 10000, "idle_ms": 60000,
               "upstream_connect_ms": 5000, "upstream_response_ms": 60000}
}'''
MANIFEST = '''{"org": "partner-labs",
  "entity_uri": "spiffe://partner-labs.example/nodes/primary",
  "endpoints": ["https://partner-labs.example:8443", "https://[2001:db8::1]:8443"],
  "tls_cert_fingerprint": "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
  "future_field": {"anything": [1, 2, 3]}}'''
DEMO = '''{
  "node": {"org": "acme-corp", "entity_uri": "spiffe://acme.example/nodes/a"},
  "tls": {"cert": "pki/node.crt", "key": "pki/node.key", "ca_bundle": "pki/ca.crt", "watch_interval_ms": 1000},
  "ingress": {"listen": "127.0.0.1:0", "upstream": "127.0.0.1:8080"},
  "egress": null,
  "admin": {"listen": "127.0.0.1:0"},
  "peers": [{"org": "partner-labs", "entity_uri": "spiffe://partner-labs.example/nodes/primary"}],
  "routes": [{"prefix": "/api/v1/tasks", "resource": "tasks"},
             {"prefix": "/api/v1/notes", "resource": "notes"},
             {"prefix": "/api/v1/credentials", "resource": "credentials"}],
  "grants": [{"id": "7d0c6a8e-3f7b-4e55-9a51-2b7f4c1d9e21", "peer": "partner-labs",
              "resources": ["tasks", "notes"], "methods": ["GET", "HEAD"],
              "filters": {"tasks": {"include_teams": ["t1"]}}, "max_rows_per_query": 100,
              "rate_limit": {"rps": 5, "burst": 5}, "status": "active"}],
  "audit": {"path": "audit.jsonl"}
}'''
ALL_OPTIONS = '''{''' + NODE + ''',
    "tls": {"cert": "/abs/node.crt", "key": "node.key", "ca_bundle": "ca.crt", "ticket_rotation_ms": 60000,
            "session_tickets": false, "crl": "crl.pem", "crl_fail_open": true, "watch_interval_ms": 250},
    "ingress": {"listen": "[::]:0", "upstream": "unix:/run/app.sock", "upstream_pool_max_idle": 0},
    "egress": {"listen": "0.0.0.0:15001", "allow_non_loopback": true, "heartbeat_interval_ms": 1000},
    "limits": {"max_request_line_bytes": 4096, "max_header_count": 50,
               "max_conn_lifetime_ms": 600000, "max_requests_per_conn": 1000},
    "timeouts": {"shutdown_grace_ms": 2500},
    "enforce": false, "limit_param": "page_size", "on_limit": "reject",
    "peers": [{"org": "partner-labs", "trust_level": "full",
               "cert_fingerprint": "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
               "expires_at": "2027-04-13T00:00:00.5+02:00",
               "allowed_regions": ["eu-west"], "allowed_artifact_types": ["model", "dataset"],
               "entity_uri": "spiffe://partner-labs.example/nodes/primary",
               "endpoints": ["https://partner-labs.example:8443", "https://[2001:db8::1]:8443/"]}],
    "routes": [{"prefix": "/api/v1/credentials", "resource": "credentials", "sensitive": true}],
    "grants": [{"id": "6f1c7c0e-8a9b-4c1d-9e2f-0123456789ab", "peer": "partner-labs",
                "resources": ["credentials"], "approved_sensitive": true, "status": "active",
                "max_rows_per_query": 10}],
    "workers": "auto"}'''

REQS = '''#req
GET /api/v1/tasks?limit=999&limit&page_size=0 Bearer fg-6f1c7c0e-8a9b-4c1d-9e2f-0123456789ab
POST /api/v1/secrets/%2F..%2f/x?limit=%31%30
HEAD //api//v1/./tasks/archive/../x
DELETE /static/%7Euser?limit=-5 Bearer fg-11111111-2222-3333-4444-555555555555'''


def config_seeds():
    sep = "\n----\n"
    full = "{" + NODE + ",\n" + PEERS + ",\n" + ROUTES + ',\n"grants": [' + GRANT_A + ",\n" + GRANT_B + ",\n" + GRANT_C + "]}"
    return [(n, t.encode()) for n, t in [
        ("spec example", SPEC_EXAMPLE + sep + MANIFEST),
        ("demo config", DEMO),
        ("all options", ALL_OPTIONS),
        ("policy fixture three grants", full + sep + REQS),
        ("policy fixture rewrite limits",
         full.replace('"max_rows_per_query": 500', '"max_rows_per_query": 10000') + sep + REQS),
        ("authenticate only", "{" + NODE + ', "authenticate_only": true}'),
        ("manifest peers", "{" + NODE + ', "peers": [{"org": "partner-labs"}], ' + ROUTES + ', "grants": [' + GRANT_A + "]}" + sep + MANIFEST
         + sep + '{"org": "other-org", "entity_uri": "spiffe://other-org.example/nodes/a", "endpoints": []}'),
        ("manifest mismatch", "{" + NODE + ', "peers": [{"org": "partner-labs", "entity_uri": "spiffe://x.example/a"}]}' + sep + MANIFEST),
        ("bad values", "{" + NODE + ', "limits": {"max_header_bytes": -1}, "on_limit": "rewite", "workers": 0, '
         '"ingress": {"listen": "[::1:80", "upstream": "unix:"}, "peers": [{"org": "-bad-", "trust_level": "some"}], '
         '"grants": [{"id": "x", "peer": "nobody", "resources": [], "status": "active", "source_cidrs": ["10.0.0.1/8"]}]}'),
        ("duplicate key", '{"node": {"org": "a"}, "node": {"org": "b"}}'),
        ("manifest only bad", "{}" + sep + '{"org": "a", "org": "b", "entity_uri": "x:y", "endpoints": []}'),
        ("manifest null fingerprint", "{" + NODE + "}" + sep +
         '{"org": "a", "entity_uri": "spiffe://a.example/n", "endpoints": [], "tls_cert_fingerprint": null}'),
    ]]


# ---- request-targets: [control] + raw target ----------------------------
# control bit 0: path_policy (0 reject, 1 rewrite); bits 1-2: method (GET,
# POST, OPTIONS, HEAD); bit 3: a method-override header "GET" is sent.
TARGETS = [
    b"/", b"/api/v1/tasks", b"/api/v1/tasks/", b"/api/v1/tasks/42?limit=10&x=%2F",
    b"/api/v1/tasks?LIMIT=500;limit[]=7&limit%5B0%5D=0&%6Cimit", b"/api/v1/tasks?_method=DELETE",
    b"/api/v1/%74asks/%7euser", b"/API/V1/TASKS/Archive/1", b"/caf%c3%a9/menu", b"/CAF%C3%A9",
    b"/a/b%20c/d", b"/x:y/@z/!$&'()*+,=", b"/static/", b"/static", b"/a/{b}|c^`<>\"[]",
    b"//api/v1/tasks", b"/api/v1/credentials//../tasks", b"/.//../", b"//%2e%2e/", b"/a//b/../c",
    b"/api/v1/tasks/../credentials", b"/api/v1/tasks/%2e%2E/credentials", b"/api/v1/tasks/.%2e/x",
    b"/api/v1/tasks/%2e./x", b"/api/v1/tasks/./1", b"/a/b/..", b"/a/.", b"/..", b"/%2e%2e/etc",
    b"/api/v1/tasks/..%2fcredentials", b"/a%5cb", b"/a\\..\\b", b"/api/v1/tasks/..;/credentials",
    b"/a;jsessionid=1", b"/a/%3B", b"/a%00", b"/a%0d%0a", b"/a?b=%00", b"/a#b", b"/a\xc3\xa9",
    b"/%c0%ae%c0%ae/", b"/a/%e0%80%ae", b"/a/%ed%a0%80", b"/a/%f0%9f%98%80", b"/a/%c3", b"/a/%zz",
    b"/a?x=%zz", b"/a/%252e%252e/b", b"*", b"api/v1", b"acme:443", b"http://acme/api/v1/tasks?limit=99",
    b"HTTPS://Acme.Example:8443", b"http://[::1]:80/a/%2e%2e/b", b"http://user@acme/a", b"http:///a",
    b"ftp://acme/a",
]


def target_seeds():
    seeds = []
    for i, t in enumerate(TARGETS):
        for control in (0, 1):
            seeds.append(("%02d-%s-%s" % (i, "rewrite" if control else "reject", t.decode("latin-1")),
                          bytes([control]) + t))
    seeds.append(("options-asterisk", bytes([4]) + b"*"))
    seeds.append(("post-override", bytes([2 | 8]) + b"/api/v1/tasks?limit=100000"))
    return seeds


def tls_seeds(build_dir):
    exe = os.path.join(build_dir, "tests", "fuzz", "fuzz_tls_server")
    if not os.access(exe, os.X_OK):
        print(f"fuzz_tls_server: {exe} not built; TLS seeds left as they are")
        return
    d = os.path.join(CORPUS, "fuzz_tls_server")
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, FUZZ_TLS_WRITE_SEEDS=tmp, ASAN_OPTIONS="detect_leaks=0")
        subprocess.run([exe], env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if os.path.isdir(d):
            shutil.rmtree(d)
        shutil.copytree(tmp, d)
        os.chmod(d, 0o755)
    print(f"fuzz_tls_server: {len(os.listdir(d))} seeds")


def identity_seeds(build_dir):
    exe = os.path.join(build_dir, "tests", "fuzz", "fuzz_peer_identity")
    if not os.access(exe, os.X_OK):
        print(f"fuzz_peer_identity: {exe} not built; seeds left as they are")
        return
    d = os.path.join(CORPUS, "fuzz_peer_identity")
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, FUZZ_IDENTITY_WRITE_SEEDS=tmp, ASAN_OPTIONS="detect_leaks=0")
        subprocess.run([exe], env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if os.path.isdir(d):
            shutil.rmtree(d)
        shutil.copytree(tmp, d)
        os.chmod(d, 0o755)
    print(f"fuzz_peer_identity: {len(os.listdir(d))} seeds")


def main():
    build_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "build-fuzz")
    write_dir("fuzz_http_request", request_seeds())
    write_dir("fuzz_http_response", response_seeds())
    write_dir("fuzz_config", config_seeds())
    write_dir("fuzz_target", target_seeds())
    tls_seeds(build_dir)
    identity_seeds(build_dir)


if __name__ == "__main__":
    main()

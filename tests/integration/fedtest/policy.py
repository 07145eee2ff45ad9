"""Policy and audit helpers shared by test_policy.py and test_audit.py:
config pieces for peers / routes / grants (SPEC §3, §4, §11), requests that
carry a grant, and the audit log reader / hash-chain check of SPEC §10.

    cfg = policy_config(pki, backend.address, peers=[peer(...)], grants=[grant(...)])
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid

from .proxy import base_config, write_config

GENESIS = "0" * 64

# The route table every policy test uses. "credentials" is sensitive by name
# (SPEC §4), "vault" by the route table flag; /slow and /bytes reach the test
# backend's special routes.
ROUTES = [
    {"prefix": "/api/v1/tasks", "resource": "tasks"},
    {"prefix": "/api/v1/tasks/archive", "resource": "archive"},
    {"prefix": "/api/v1/notes", "resource": "notes"},
    {"prefix": "/api/v1/reports", "resource": "reports"},
    {"prefix": "/api/v1/credentials", "resource": "credentials"},
    {"prefix": "/api/v1/api-keys", "resource": "api_keys"},
    {"prefix": "/api/v1/vault", "resource": "vault", "sensitive": True},
    {"prefix": "/slow", "resource": "slow"},
    {"prefix": "/bytes", "resource": "files"},
]


def new_id() -> str:
    return str(uuid.uuid4())


def peer(org: str, entity_uri: str | None, **kw) -> dict:
    """A peers[] entry; entity_uri None = it comes from a manifest file."""
    out = {"org": org, "trust_level": kw.pop("trust_level", "verified"),
           "cert_fingerprint": kw.pop("cert_fingerprint", None),
           "expires_at": kw.pop("expires_at", None)}
    if entity_uri is not None:
        out["entity_uri"] = entity_uri
        out["endpoints"] = kw.pop("endpoints", ["https://%s.example:8443" % org])
    out.update(kw)
    return out


def grant(gid: str, peer_org: str, resources, **kw) -> dict:
    """A grants[] entry in the SPEC §4 shape with permissive defaults."""
    out = {
        "id": gid, "peer": peer_org, "resources": list(resources),
        "excluded_resources": [], "methods": ["GET", "HEAD"], "filters": {},
        "max_rows_per_query": 1000, "rate_limit": {"rps": 1000, "burst": 1000},
        "expires_at": "2099-01-01T00:00:00Z", "status": "active",
        "approved_sensitive": False,
    }
    out.update(kw)
    return out


def write_manifest(directory: str, org: str, entity_uri: str, fingerprint: str | None = None) -> str:
    os.makedirs(directory, exist_ok=True)
    m = {"org": org, "entity_uri": entity_uri, "endpoints": ["https://%s.example:8443" % org]}
    if fingerprint:
        m["tls_cert_fingerprint"] = fingerprint
    path = os.path.join(directory, org + ".json")
    with open(path, "w") as f:
        json.dump(m, f)
    return path


def policy_config(pki, upstream: str, *, peers, grants, routes=None, **over) -> dict:
    cfg = base_config(pki, upstream, **over)
    cfg["peers"] = peers
    cfg["grants"] = grants
    cfg["routes"] = ROUTES if routes is None else routes
    cfg.pop("authenticate_only", None)
    return cfg


def replace_config(cfg: dict, directory: str, name: str = "fedproxy.json") -> str:
    """Rewrite a running proxy's config atomically (write + rename), so its
    file poller never reads a half-written file."""
    tmp = write_config(cfg, directory, "." + name + ".tmp")
    path = os.path.join(directory, name)
    os.replace(tmp, path)
    return path


def bearer(gid: str) -> tuple:
    return ("Authorization", "Bearer fg-" + gid)


# --- audit log ---------------------------------------------------------------

def read_lines(path: str) -> list[bytes]:
    """The file's lines as bytes, each without its trailing newline."""
    with open(path, "rb") as f:
        data = f.read()
    if not data:
        return []
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return lines


def read_audit(path: str) -> list[dict]:
    return [json.loads(ln) for ln in read_lines(path)] if os.path.exists(path) else []


def wait_audit(path: str, pred, timeout: float = 5.0):
    """Poll the audit file (bounded) until a record satisfies pred; return it or None."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            for rec in read_audit(path):
                if pred(rec):
                    return rec
        except ValueError:
            pass  # a line being written right now
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.05)


def is_request(rec: dict) -> bool:
    """A per-request line (SPEC §10). Event lines carry an event name."""
    return rec.get("type") == "request" or ("request_id" in rec and "event" not in rec)


def chain_problems(lines: list[bytes], first_prev: str | None = GENESIS) -> list[str]:
    """Check prev = sha256(previous line). The line is hashed without its
    newline (what fedproxy documents); hashing it with the newline is
    accepted too, but one convention must hold for the whole file.
    first_prev None = the first line may point anywhere (a continued chain)."""
    errors = {False: [], True: []}
    for with_nl in (False, True):
        expected = first_prev
        for i, raw in enumerate(lines, 1):
            try:
                prev = json.loads(raw).get("prev")
            except ValueError:
                errors[with_nl].append("line %d: not JSON" % i)
                break
            if expected is not None and prev != expected:
                errors[with_nl].append("line %d: prev %r, expected %r" % (i, prev, expected))
                break
            expected = hashlib.sha256(raw + (b"\n" if with_nl else b"")).hexdigest()
    return [] if not errors[False] or not errors[True] else errors[False]


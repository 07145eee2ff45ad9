"""Two organisations on loopback for the join and rotation tests: each with
its own CA, node certificate, recording app, admin token, state file, audit
log, and a peering listener (SPEC §13)."""

import hashlib
import os
import re
import ssl

from fedtest.backend import Backend
from fedtest.case import shared_pki
from fedtest.pki import CertAuthority
from fedtest.policy import peer
from fedtest.proxy import Proxy, base_config, free_port
from fedtest.reload import admin_status, write_admin_token

ORG_A = "alpha-org"
ORG_B = "beta-org"
URI_A = "spiffe://alpha.example/nodes/primary"
URI_B = "spiffe://beta.example/nodes/primary"
ROUTES = [{"prefix": "/api/v1/tasks", "resource": "tasks"}]
TOKEN_RE = re.compile(r"^fpj1\.([0-9a-f]{16})\.([0-9a-f]{64})\.([0-9a-f]{64})$")
# A placeholder so each side starts with a peer policy (fedproxy refuses an
# empty one); it is never reached.
OTHER = peer("placeholder-org", "spiffe://placeholder.example/n", endpoints=["https://127.0.0.1:9"])


def der_sha256(pem_path: str) -> str:
    with open(pem_path) as f:
        return hashlib.sha256(ssl.PEM_cert_to_DER_cert(f.read())).hexdigest()


class Side:
    """One organisation: its CA, node certificate, app, token, state and audit."""

    def __init__(self, root: str, org: str, uri: str, **over):
        self.org, self.uri = org, uri
        self.dir = os.path.join(root, org)
        os.makedirs(self.dir)
        self.ca = CertAuthority(os.path.join(self.dir, "ca"), org + " CA")
        self.cert = self.ca.issue(self.dir, "node", server=True, sans=["URI:" + uri, "DNS:localhost", "IP:127.0.0.1"])
        self.app = Backend().start()
        self.token_file = os.path.join(self.dir, "admin.token")
        self.token = write_admin_token(self.token_file)
        self.state_path = os.path.join(self.dir, "state.json")
        self.audit_path = os.path.join(self.dir, "audit.jsonl")
        self.ingress = free_port()
        cfg = base_config(shared_pki(), self.app.address,
                          node={"org": org, "entity_uri": uri, "endpoints": ["https://127.0.0.1:%d" % self.ingress]},
                          tls={"cert": self.cert.crt, "key": self.cert.key, "ca_bundle": self.ca.crt},
                          ingress={"listen": "127.0.0.1:%d" % self.ingress},
                          egress={"listen": "127.0.0.1:0", "heartbeat_interval_ms": 1500},
                          admin={"listen": "127.0.0.1:0", "token_file": self.token_file},
                          audit={"path": self.audit_path}, state={"path": self.state_path},
                          peering={"listen": "127.0.0.1:0"})
        for key, value in over.items():  # e.g. node / tls additions of a test
            cfg[key] = {**cfg.get(key, {}), **value}
        cfg.update(peers=[OTHER], routes=ROUTES, grants=[])
        cfg.pop("authenticate_only", None)
        self.proxy = Proxy(cfg, wait_for=("ingress", "egress", "admin", "peering"))

    def admin_args(self):
        return ["--admin", "127.0.0.1:%d" % self.proxy.admin_port, "--token-file", self.token_file]

    def status(self):
        return admin_status(self.proxy.admin_port, token=self.token)

    def peer_state(self, org):
        for p in self.status()["peers"]:
            if p["org"] == org:
                return p["state"]
        return None

    def stop(self):
        self.proxy.stop()
        self.app.stop()

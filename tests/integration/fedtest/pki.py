"""Test PKI generated at test time with the `openssl` CLI (OpenSSL 3.0 works).

Everything is signed with `openssl ca` backed by a minimal CA database, so the
same machinery gives us backdated (expired) certificates (`-startdate/-enddate`,
which `openssl x509 -req` of 3.0 lacks), revocation and CRLs.

    pki = Pki.create()            # temp dir, removed by pki.cleanup()
    pki.ca.crt, pki.server.crt, pki.server.key, pki.client.crt, pki.crl ...

Key files are chmod 600 (fedproxy refuses world-readable keys).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass

NODE_URI = "spiffe://acme.example/nodes/a"
PARTNER_URI = "spiffe://partner-labs.example/nodes/primary"
GRANT_OID = "1.3.6.1.4.1.99999.1"

_OPENSSL_TIMEOUT = 30


def openssl(*args: str, cwd: str | None = None, input: bytes | None = None) -> bytes:
    """Run `openssl ARGS`, raise with its stderr on failure, return stdout."""
    proc = subprocess.run(["openssl", *args], cwd=cwd, input=input,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=_OPENSSL_TIMEOUT)
    if proc.returncode != 0:
        raise RuntimeError("openssl %s failed (%d): %s" % (
            " ".join(args), proc.returncode, proc.stderr.decode(errors="replace")))
    return proc.stdout


@dataclass
class Issued:
    name: str
    crt: str
    key: str
    uris: tuple = ()
    grant_id: str | None = None

    def der_sha256(self) -> str:
        der = openssl("x509", "-in", self.crt, "-outform", "der")
        import hashlib
        return hashlib.sha256(der).hexdigest()


def genkey(path: str, alg: str = "ec256") -> str:
    if alg == "ec256":
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-out", path)
    elif alg == "ec384":
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384",
                "-out", path)
    elif alg == "rsa2048":
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                "-out", path)
    elif alg == "ed25519":
        openssl("genpkey", "-algorithm", "ED25519", "-out", path)
    else:
        raise ValueError(alg)
    os.chmod(path, 0o600)
    return path


_REQ_CNF = """\
[ req ]
distinguished_name = dn
prompt = no
[ dn ]
CN = unused
"""

_CA_CNF = """\
[ ca ]
default_ca = CA_default
[ CA_default ]
dir = {dir}
database = {dir}/index.txt
new_certs_dir = {dir}/newcerts
serial = {dir}/serial
crlnumber = {dir}/crlnumber
certificate = {dir}/ca.crt
private_key = {dir}/ca.key
default_md = sha256
default_days = 30
default_crl_days = 7
policy = policy_any
unique_subject = no
copy_extensions = none
email_in_dn = no
[ policy_any ]
commonName = supplied
organizationName = optional
[ v3_ca ]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[ crl_ext ]
authorityKeyIdentifier = keyid:always
"""


class CertAuthority:
    """A self-signed root with an `openssl ca` database in its own directory."""

    def __init__(self, directory: str, name: str, alg: str = "ec256"):
        self.dir = directory
        self.name = name
        os.makedirs(os.path.join(directory, "newcerts"), exist_ok=True)
        with open(os.path.join(directory, "index.txt"), "w"):
            pass
        with open(os.path.join(directory, "index.txt.attr"), "w") as f:
            f.write("unique_subject = no\n")
        with open(os.path.join(directory, "serial"), "w") as f:
            f.write("1000\n")
        with open(os.path.join(directory, "crlnumber"), "w") as f:
            f.write("1000\n")
        self.cnf = os.path.join(directory, "ca.cnf")
        with open(self.cnf, "w") as f:
            f.write(_CA_CNF.format(dir=directory))
        self.key = genkey(os.path.join(directory, "ca.key"), alg)
        self.crt = os.path.join(directory, "ca.crt")
        openssl("req", "-config", self.cnf, "-new", "-x509", "-key", self.key,
                "-subj", "/O=fedproxy tests/CN=%s" % name, "-days", "3650",
                "-extensions", "v3_ca", "-sha256", "-out", self.crt)

    def issue(self, out_dir: str, name: str, *, alg: str = "ec256",
              sans: list[str] | None = None, server: bool = False,
              grant_id: str | None = None, startdate: str | None = None,
              enddate: str | None = None, days: int = 30,
              extra_ext: list[str] | None = None) -> Issued:
        """Issue a leaf certificate. sans: ['DNS:x', 'IP:1.2.3.4', 'URI:...']."""
        key = genkey(os.path.join(out_dir, name + ".key"), alg)
        csr = os.path.join(out_dir, name + ".csr")
        req_cnf = os.path.join(out_dir, name + ".req.cnf")
        with open(req_cnf, "w") as f:
            f.write(_REQ_CNF)
        openssl("req", "-config", req_cnf, "-new", "-key", key,
                "-subj", "/O=fedproxy tests/CN=%s" % name, "-out", csr)
        ext = os.path.join(out_dir, name + ".ext")
        if alg == "ed25519" or alg.startswith("ec"):
            ku = "critical,digitalSignature"
        else:
            ku = "critical,digitalSignature,keyEncipherment"
        lines = [
            "basicConstraints = critical,CA:FALSE",
            "keyUsage = " + ku,
            "extendedKeyUsage = " + ("serverAuth,clientAuth" if server else "clientAuth"),
            "subjectKeyIdentifier = hash",
            "authorityKeyIdentifier = keyid",
        ]
        if sans:
            lines.append("subjectAltName = " + ",".join(sans))
        if grant_id:
            # non-critical on purpose: mbedTLS fails a handshake on an unknown
            # critical extension (SPEC §4)
            lines.append("%s = ASN1:UTF8String:%s" % (GRANT_OID, grant_id))
        lines += extra_ext or []
        with open(ext, "w") as f:
            f.write("\n".join(lines) + "\n")
        crt = os.path.join(out_dir, name + ".crt")
        args = ["ca", "-config", self.cnf, "-batch", "-notext", "-in", csr,
                "-out", crt, "-extfile", ext]
        if startdate or enddate:
            args += ["-startdate", startdate, "-enddate", enddate]
        else:
            args += ["-days", str(days)]
        openssl(*args)
        uris = tuple(s[4:] for s in (sans or []) if s.startswith("URI:"))
        return Issued(name=name, crt=crt, key=key, uris=uris, grant_id=grant_id)

    def revoke(self, issued: Issued) -> None:
        openssl("ca", "-config", self.cnf, "-batch", "-revoke", issued.crt,
                "-crl_reason", "keyCompromise")

    def gencrl(self, out: str, *, der: bool = False, lastupdate: str | None = None,
               nextupdate: str | None = None) -> str:
        pem = out if not der else out + ".pem"
        args = ["ca", "-config", self.cnf, "-batch", "-gencrl", "-crlexts", "crl_ext",
                "-out", pem]
        if lastupdate:
            args += ["-crl_lastupdate", lastupdate]
        if nextupdate:
            args += ["-crl_nextupdate", nextupdate]
        openssl(*args)
        if der:
            openssl("crl", "-in", pem, "-outform", "DER", "-out", out)
        return out


class Pki:
    """The full set of certificates the integration tests use."""

    def __init__(self, root: str):
        self.root = root

    @classmethod
    def create(cls, root: str | None = None) -> "Pki":
        own = root is None
        if own:
            root = tempfile.mkdtemp(prefix="fedtest-pki-")
        pki = cls(root)
        pki._owned = own
        pki._build()
        return pki

    def cleanup(self) -> None:
        if getattr(self, "_owned", False):
            shutil.rmtree(self.root, ignore_errors=True)

    def path(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    def issue_client(self, name: str, *uris: str, grant_id: str | None = None,
                     dns: tuple = (), **kw) -> Issued:
        """One more client certificate from the trusted CA: URI SANs given,
        optional grant OID (non-critical UTF8String), fresh key. `name` must be
        unique within this PKI (it names the files)."""
        sans = ["URI:" + u for u in uris] + ["DNS:" + d for d in dns]
        return self.ca.issue(self.root, name, sans=sans or None, grant_id=grant_id, **kw)

    def _build(self) -> None:
        d = self.root
        self.ca = CertAuthority(self.path("ca"), "fedtest root CA")
        self.ca2 = CertAuthority(self.path("ca2"), "fedtest untrusted CA")
        self.server = self.ca.issue(
            d, "server", server=True,
            sans=["DNS:localhost", "IP:127.0.0.1", "URI:" + NODE_URI])
        self.client = self.ca.issue(d, "client", sans=["URI:" + PARTNER_URI])
        self.client_rsa = self.ca.issue(d, "client-rsa", alg="rsa2048",
                                        sans=["URI:" + PARTNER_URI])
        self.client_p384 = self.ca.issue(d, "client-p384", alg="ec384",
                                         sans=["URI:" + PARTNER_URI])
        self.grant_id = str(uuid.uuid4())
        self.client_grant = self.ca.issue(d, "client-grant", sans=["URI:" + PARTNER_URI],
                                          grant_id=self.grant_id)
        self.client_expired = self.ca.issue(
            d, "client-expired", sans=["URI:" + PARTNER_URI],
            startdate="20200101000000Z", enddate="20200102000000Z")
        self.client_revoked = self.ca.issue(d, "client-revoked",
                                            sans=["URI:" + PARTNER_URI])
        self.client_untrusted = self.ca2.issue(d, "client-untrusted",
                                               sans=["URI:" + PARTNER_URI])
        self.client_ca2 = self.client_untrusted  # trusted only with the dual bundle
        self.ed25519 = self.ca.issue(d, "node-ed25519", alg="ed25519", server=True,
                                     sans=["DNS:localhost", "IP:127.0.0.1",
                                           "URI:" + NODE_URI])
        self.ca.revoke(self.client_revoked)
        self.crl = self.ca.gencrl(self.path("ca.crl.pem"))
        self.crl_der = self.ca.gencrl(self.path("ca.crl.der"), der=True)
        # past its nextUpdate: ingress must fail closed unless tls.crl_fail_open
        self.crl_stale = self.ca.gencrl(self.path("ca.crl-stale.pem"),
                                        lastupdate="20200101000000Z",
                                        nextupdate="20200108000000Z")
        self.ca_bundle = self.ca.crt
        self.ca_bundle_dual = self.path("ca-dual.pem")
        with open(self.ca_bundle_dual, "w") as out:
            for p in (self.ca.crt, self.ca2.crt):
                with open(p) as f:
                    out.write(f.read())


def verify(pki: Pki, issued: Issued, *, crl: bool = False, ca: str | None = None) -> tuple[bool, str]:
    """`openssl verify` a certificate against the test CA (self-check helper)."""
    args = ["openssl", "verify", "-CAfile", ca or pki.ca_bundle]
    if crl:
        args += ["-crl_check", "-CRLfile", pki.crl]
    args.append(issued.crt)
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=_OPENSSL_TIMEOUT)
    return p.returncode == 0, p.stdout.decode(errors="replace")


if __name__ == "__main__":  # manual self-check: python3 -m fedtest.pki
    import sys
    pki = Pki.create()
    try:
        for name in ("server", "client", "client_rsa", "client_p384", "client_grant",
                     "client_expired", "client_revoked", "client_untrusted", "ed25519"):
            it = getattr(pki, name)
            ok, out = verify(pki, it, crl=True)
            print("%-18s %s %s" % (name, "OK " if ok else "BAD", out.strip().splitlines()[-1]))
        print("root:", pki.root)
    finally:
        if "--keep" not in sys.argv:
            pki.cleanup()

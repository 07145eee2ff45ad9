#!/usr/bin/env python3
"""The management API of SPEC §12 through the real binary: /v1/peers and
/v1/grants with every status code (200/201/401/404/409/412/413/422,
Location, ETag); a grant revoked through the API is denied at the next
request of a kept-alive TLS connection and the app never sees it; changes
survive a restart (the state file is overlaid on the config, also by
`fedproxy check`); 100 concurrent PATCHes with one If-Match: one winner,
99 × 412, state equal to that serial order; SIGKILL during 1,000 writes
leaves a state file that parses and holds the last acknowledged change;
the CLI verbs and their exit codes; audit events with actor and digests.

Run: FEDPROXY_BIN=build/proxy/app/fedproxy python3 tests/integration/test_management_api.py
"""

import hashlib
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fedtest.case import BackendTestCase, assert_not_received, main  # noqa: E402
from fedtest.pki import PARTNER_URI  # noqa: E402
from fedtest.policy import bearer, grant, new_id, peer, policy_config, read_audit  # noqa: E402
from fedtest.proxy import (Conn, Proxy, assert_json_error, client_context, free_port, run_cli,  # noqa: E402
                           tls_connect)
from fedtest.reload import admin_exchange, write_admin_token  # noqa: E402

PEER = "partner-labs"


def canonical(obj) -> str:
    """picojson's serialisation: members sorted, no spaces."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest(obj) -> str:
    return hashlib.sha256(canonical(obj).encode()).hexdigest()


class ApiProxy:
    """A proxy with a token, an audit log and a state file in one directory
    that outlives the process (restarts reuse it)."""

    def __init__(self, pki, backend):
        self.dir = tempfile.mkdtemp(prefix="fedtest-mgmt-")
        self.token_file = os.path.join(self.dir, "admin.token")
        self.token = write_admin_token(self.token_file)
        self.state_path = os.path.join(self.dir, "state.json")
        self.audit_path = os.path.join(self.dir, "audit.jsonl")
        self.grant_id = new_id()
        self.config = policy_config(
            pki, backend.address, peers=[peer(PEER, PARTNER_URI)],
            grants=[grant(self.grant_id, PEER, ["tasks"])],
            admin={"listen": "127.0.0.1:0", "token_file": self.token_file},
            audit={"path": self.audit_path}, state={"path": self.state_path})
        self.proxy = None

    def start(self):
        self.proxy = Proxy(self.config, wait_for=("ingress", "admin")).start()
        return self

    def kill(self):
        self.proxy.signal(signal.SIGKILL)
        self.proxy.wait_exit(15)

    def stop(self):
        if self.proxy:
            self.proxy.stop()

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def api(self, method, path, body=None, headers=None, token="default", raw: bytes | None = None):
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        status, hdrs, payload = admin_exchange(
            self.proxy.admin_port, method, path, body=data, headers=headers,
            token=self.token if token == "default" else token, timeout=30)
        try:
            parsed = json.loads(payload) if payload else None
        except ValueError:
            parsed = None
        return status, hdrs, parsed


class ManagementApiTest(BackendTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.ap = ApiProxy(cls.pki, cls.backend)
        try:
            cls.ap.start()
        except BaseException:
            cls.ap.cleanup()
            cls.backend.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.ap.cleanup()
        super().tearDownClass()

    def assert_error(self, result, status, code):
        got_status, hdrs, body = result
        self.assertEqual(got_status, status, body)
        self.assertEqual(hdrs.get("content-type", "").split(";")[0], "application/json")
        self.assertEqual(body["error"], code, body)
        self.assertTrue(body["message"])
        self.assertTrue(body["request_id"])
        return body

    def test_crud_status_codes(self):
        ap = self.ap
        self.assert_error(ap.api("GET", "/v1/grants", token=None), 401, "unauthorized")
        self.assert_error(ap.api("POST", "/v1/grants", body=grant(new_id(), PEER, ["tasks"]), token="wrong"),
                          401, "unauthorized")

        status, _, listed = ap.api("GET", "/v1/grants")
        self.assertEqual(status, 200)
        by_id = {g["id"]: g for g in listed["grants"]}
        self.assertIn(ap.grant_id, by_id)
        status, hdrs, one = ap.api("GET", "/v1/grants/" + ap.grant_id)
        self.assertEqual(status, 200)
        self.assertEqual(hdrs["etag"], by_id[ap.grant_id]["etag"])
        self.assertEqual(hdrs["etag"], '"%s"' % digest(one))
        self.assert_error(ap.api("GET", "/v1/grants/" + new_id()), 404, "not_found")
        self.assert_error(ap.api("GET", "/v1/peers/nobody-here"), 404, "not_found")

        gid = new_id()
        created = grant(gid, PEER, ["notes"], status="pending")
        status, hdrs, body = ap.api("POST", "/v1/grants", body=created)
        self.assertEqual(status, 201, body)
        self.assertEqual(hdrs["location"], "/v1/grants/" + gid)
        self.assertEqual(hdrs["etag"], '"%s"' % digest(created))
        self.assertEqual(body, created)
        self.assert_error(ap.api("POST", "/v1/grants", body=created), 409, "conflict")
        self.assert_error(ap.api("POST", "/v1/peers", body=peer("other-org", PARTNER_URI)), 409, "conflict")
        self.assert_error(ap.api("POST", "/v1/peers", body=peer(PEER, "spiffe://x.example/n")), 409, "conflict")

        # Validation is fedproxy check's: unknown resource, overlap, range.
        bad = self.assert_error(ap.api("POST", "/v1/grants", body=grant(new_id(), PEER, ["nosuch"])), 422, "invalid")
        self.assertIn("resources", [f["field"] for f in bad["fields"]], bad)
        bad = self.assert_error(ap.api("POST", "/v1/grants", body=grant(new_id(), PEER, ["tasks"],
                                                                       max_rows_per_query=0)), 422, "invalid")
        self.assertIn("max_rows_per_query", [f["field"] for f in bad["fields"]], bad)
        bad = self.assert_error(ap.api("POST", "/v1/grants", body={"peer": PEER}), 422, "invalid")
        self.assertEqual(bad["fields"][0]["field"], "id")
        self.assert_error(ap.api("POST", "/v1/grants", raw=b'{"id": '), 400, "bad_request")
        self.assert_error(ap.api("POST", "/v1/grants", raw=b"x" * (2 << 20)), 413, "payload_too_large")

        # PATCH: stale If-Match 412, good one 200 with a new ETag, invalid 422.
        etag = hdrs["etag"]
        self.assert_error(ap.api("PATCH", "/v1/grants/" + gid, body={"status": "active"},
                                 headers={"If-Match": '"' + "0" * 64 + '"'}), 412, "precondition_failed")
        status, hdrs2, patched = ap.api("PATCH", "/v1/grants/" + gid, body={"status": "active", "filters": None},
                                        headers={"If-Match": etag})
        self.assertEqual(status, 200, patched)
        self.assertEqual(patched["status"], "active")
        self.assertNotIn("filters", patched)
        self.assertNotEqual(hdrs2["etag"], etag)
        self.assert_error(ap.api("PATCH", "/v1/grants/" + gid, body={"status": "pending"},
                                 headers={"If-Match": etag}), 412, "precondition_failed")
        bad = self.assert_error(ap.api("PATCH", "/v1/grants/" + gid, body={"resources": []}), 422, "invalid")
        self.assertIn("resources", [f["field"] for f in bad["fields"]], bad)
        self.assert_error(ap.api("PATCH", "/v1/grants/" + gid, body={"id": new_id()}), 422, "invalid")
        self.assert_error(ap.api("PATCH", "/v1/grants/" + new_id(), body={}), 404, "not_found")

        # DELETE: kept, revoked.
        status, _, revoked = ap.api("DELETE", "/v1/grants/" + gid)
        self.assertEqual(status, 200)
        self.assertEqual(revoked["status"], "revoked")
        status, _, again = ap.api("GET", "/v1/grants/" + gid)
        self.assertEqual((status, again["status"]), (200, "revoked"))

        # A peer: created, then revoked (trust_level none, kept, trust revoked audited).
        org = "crud-org"
        status, hdrs, body = ap.api("POST", "/v1/peers", body=peer(org, "spiffe://crud.example/nodes/a"))
        self.assertEqual((status, hdrs["location"]), (201, "/v1/peers/" + org), body)
        status, _, body = ap.api("DELETE", "/v1/peers/" + org)
        self.assertEqual((status, body["trust_level"]), (200, "none"))
        status, _, listed = ap.api("GET", "/v1/peers")
        self.assertIn(org, {p["org"]: p for p in listed["peers"]})
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if any(r.get("event") == "trust_policy.revoked" and r.get("peer") == org for r in read_audit(ap.audit_path)):
                break
            time.sleep(0.05)
        else:
            self.fail("no trust_policy.revoked audit event for " + org)

        # The state file holds what the API answers.
        with open(ap.state_path) as f:
            state = json.load(f)
        self.assertEqual(state["version"], 1)
        self.assertEqual({g["id"]: g for g in state["grants"]}[gid], revoked)

    def test_revoke_applies_on_the_same_kept_alive_connection(self):
        ap = self.ap
        gid = new_id()
        status, _, body = ap.api("POST", "/v1/grants", body=grant(gid, PEER, ["tasks"]))
        self.assertEqual(status, 201, body)
        ctx = client_context(self.pki, self.pki.client)
        with Conn.open(self.ap.proxy.ingress_port, ctx) as c:
            resp = c.request("GET", "/api/v1/tasks/ka-before", [bearer(gid)])
            self.assertEqual(resp.status, 200, resp.body)
            got = self.backend.wait_path("/api/v1/tasks/ka-before")
            self.assertEqual(got.header("x-federation-grant"), gid)
            status, _, body = ap.api("DELETE", "/v1/grants/" + gid)
            self.assertEqual(status, 200, body)
            resp = c.request("GET", "/api/v1/tasks/ka-after", [bearer(gid)])
            assert_json_error(self, resp, 403, "grant_inactive")
        assert_not_received(self, self.backend, b"ka-after", "a revoked grant's request reached the app")

    def test_grant_change_keeps_tls_sessions_resuming(self):
        """A grant change swaps the policy, not the TLS contexts: a session
        from before it resumes (a reload would rotate the ticket keys)."""
        ap = self.ap
        gid = new_id()
        self.assertEqual(ap.api("POST", "/v1/grants", body=grant(gid, PEER, ["tasks"]))[0], 201)
        ctx = client_context(self.pki, self.pki.client)
        with Conn(tls_connect(ap.proxy.ingress_port, ctx)) as c:
            self.assertEqual(c.request("GET", "/api/v1/tasks/resume-1", [bearer(gid)]).status, 200)
            session = c.sock.session
        self.assertIsNotNone(session)
        self.assertEqual(ap.api("PATCH", "/v1/grants/" + gid, body={"methods": ["GET"]})[0], 200)
        with Conn(tls_connect(ap.proxy.ingress_port, ctx, session=session)) as c:
            self.assertEqual(c.request("GET", "/api/v1/tasks/resume-2", [bearer(gid)]).status, 200)
            self.assertTrue(c.sock.session_reused, "the session did not resume after a grant change")
            # The change itself applies: HEAD is no longer granted.
            resp = c.request("HEAD", "/api/v1/tasks/resume-3", [bearer(gid)])
            self.assertEqual(resp.status, 403)

    def test_concurrent_patches_with_if_match(self):
        ap = self.ap
        gid = new_id()
        status, hdrs, _ = ap.api("POST", "/v1/grants", body=grant(gid, PEER, ["notes"]))
        self.assertEqual(status, 201)
        etag = hdrs["etag"]
        results = [None] * 100
        barrier = threading.Barrier(100, timeout=30)

        def worker(i):
            barrier.wait()
            results[i] = ap.api("PATCH", "/v1/grants/" + gid, body={"max_rows_per_query": 100 + i},
                                headers={"If-Match": etag})

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(100)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertTrue(all(r is not None for r in results), "a PATCH did not finish")
        winners = [i for i, r in enumerate(results) if r[0] == 200]
        losers = [i for i, r in enumerate(results) if r[0] == 412]
        self.assertEqual(len(winners), 1, [r[0] for r in results])
        self.assertEqual(len(losers), 99)
        for i in losers:
            self.assertEqual(results[i][2]["error"], "precondition_failed")
        status, hdrs, final = ap.api("GET", "/v1/grants/" + gid)
        self.assertEqual(final["max_rows_per_query"], 100 + winners[0])
        self.assertEqual(hdrs["etag"], results[winners[0]][1]["etag"])
        with open(ap.state_path) as f:
            self.assertEqual({g["id"]: g for g in json.load(f)["grants"]}[gid], final)

    def test_audit_events_carry_actor_and_digests(self):
        ap = self.ap
        gid = new_id()
        created = grant(gid, PEER, ["notes"], status="pending")
        self.assertEqual(ap.api("POST", "/v1/grants", body=created)[0], 201)
        status, _, patched = ap.api("PATCH", "/v1/grants/" + gid, body={"methods": ["GET"]})
        self.assertEqual(status, 200)
        deadline = time.monotonic() + 5
        events = []
        while time.monotonic() < deadline and len(events) < 2:
            events = [r for r in read_audit(ap.audit_path)
                      if r.get("event") == "config.changed" and r.get("key") == gid]
            time.sleep(0.05)
        self.assertEqual(len(events), 2, events)
        create, update = events
        self.assertEqual((create["actor"], create["kind"], create["action"]), ("admin", "grant", "create"))
        self.assertEqual(create["before_sha256"], "null")
        self.assertEqual(create["after_sha256"], digest(created))
        self.assertEqual(update["action"], "update")
        self.assertEqual(update["before_sha256"], digest(created))
        self.assertEqual(update["after_sha256"], digest(patched))
        r = run_cli(["audit", "verify", ap.audit_path])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_cli_verbs(self):
        ap = self.ap
        admin = ["--admin", "127.0.0.1:%d" % ap.proxy.admin_port, "--token-file", ap.token_file]
        r = run_cli(["grants", "list", *admin])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(ap.grant_id, r.stdout)
        gid = new_id()
        body = json.dumps(grant(gid, PEER, ["reports"], status="pending"))
        r = run_cli(["grants", "add", body, *admin])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(gid, r.stdout)
        r = run_cli(["grants", "add", body, *admin])
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("409", r.stderr)
        r = run_cli(["grants", "set", gid, '{"status":"active"}', "--if-match", '"stale"', *admin])
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("412", r.stderr)
        patch_file = os.path.join(ap.dir, "patch.json")
        with open(patch_file, "w") as f:
            f.write('{"methods": ["GET"]}')
        r = run_cli(["grants", "set", gid, "--file", patch_file, "--json", *admin])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["methods"], ["GET"])
        r = run_cli(["grants", "set", gid, '{"resources": ["nosuch"]}', *admin])
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("resources", r.stderr)
        r = run_cli(["grants", "revoke", gid, *admin])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(ap.api("GET", "/v1/grants/" + gid)[2]["status"], "revoked")
        # Peers, with the token from the environment and the address from --config.
        r = run_cli(["peers", "add", json.dumps(peer("cli-org", "spiffe://cli.example/nodes/a")),
                     "--config", ap.proxy.config_path, "--admin", "127.0.0.1:%d" % ap.proxy.admin_port],
                    env={"FEDPROXY_ADMIN_TOKEN": ap.token})
        self.assertEqual(r.returncode, 0, r.stderr)
        r = run_cli(["peers", "list", "--json", *admin])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("cli-org", [p["org"] for p in json.loads(r.stdout)["peers"]])
        r = run_cli(["peers", "revoke", "cli-org", *admin])
        self.assertEqual(r.returncode, 0, r.stderr)
        r = run_cli(["peers", "list", "--admin", "127.0.0.1:%d" % ap.proxy.admin_port])
        self.assertEqual(r.returncode, 1, "no token: 401 is a refusal")
        # Usage errors and an unreachable proxy.
        self.assertEqual(run_cli(["grants", "frobnicate", *admin]).returncode, 2)
        self.assertEqual(run_cli(["grants", "add", "{not json", *admin]).returncode, 2)
        self.assertEqual(run_cli(["peers", "set", *admin]).returncode, 2)
        self.assertEqual(run_cli(["peers", "list", "--admin", "127.0.0.1:%d" % free_port()]).returncode, 3)
        for noun in ("peers", "grants"):
            r = run_cli([noun, "--help"])
            self.assertEqual(r.returncode, 0)
            self.assertIn("revoke", r.stdout)


class StateSurvivesTest(BackendTestCase):
    """A change survives a restart, `fedproxy check` sees the state, and a
    SIGKILL in the middle of writing leaves a state file that parses and
    holds the last change acknowledged with 2xx."""

    def setUp(self):
        self.ap = ApiProxy(self.pki, self.backend)
        self.addCleanup(self.ap.cleanup)
        self.ap.start()

    def test_change_survives_restart_and_check_sees_it(self):
        ap = self.ap
        gid = new_id()
        self.assertEqual(ap.api("POST", "/v1/grants", body=grant(gid, PEER, ["notes"]))[0], 201)
        self.assertEqual(ap.api("DELETE", "/v1/grants/" + ap.grant_id)[0], 200)
        ap.stop()
        ap.start()
        status, _, body = ap.api("GET", "/v1/grants/" + gid)
        self.assertEqual(status, 200)
        self.assertEqual(ap.api("GET", "/v1/grants/" + ap.grant_id)[2]["status"], "revoked")
        ctx = client_context(self.pki, self.pki.client)
        with Conn.open(ap.proxy.ingress_port, ctx) as c:
            resp = c.request("GET", "/api/v1/tasks/after-restart", [bearer(ap.grant_id)])
            assert_json_error(self, resp, 403, "grant_inactive")
        config_path = ap.proxy.config_path
        r = run_cli(["check", "--config", config_path])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        # check validates what run loads: a broken state file fails it.
        with open(ap.state_path, "w") as f:
            f.write('{"version":1,"peers":[],"grants":[{"id":"x"}')
        r = run_cli(["check", "--config", config_path])
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("state", r.stdout + r.stderr)
        # A state grant that fails validation is located like a config one.
        with open(ap.state_path, "w") as f:
            json.dump({"version": 1, "peers": [], "grants": [grant(new_id(), PEER, ["nosuch"])]}, f)
        r = run_cli(["check", "--config", config_path])
        self.assertEqual(r.returncode, 1)
        self.assertIn("grants[1]", r.stdout + r.stderr)

    def test_sigkill_during_writes_keeps_the_last_acknowledged_change(self):
        ap = self.ap
        gid = new_id()
        self.assertEqual(ap.api("POST", "/v1/grants", body=grant(gid, PEER, ["notes"]))[0], 201)
        acked = {}  # key -> object, the last 2xx answer of each
        last = [None]
        progress = [0]  # writes sent
        stop = threading.Event()

        def writer():
            for i in range(1000):
                if stop.is_set():
                    return
                progress[0] = i
                try:
                    if i % 2:
                        new = new_id()
                        status, _, body = ap.api("POST", "/v1/grants", body=grant(new, PEER, ["notes"], status="pending"))
                        key = new
                    else:
                        status, _, body = ap.api("PATCH", "/v1/grants/" + gid, body={"max_rows_per_query": 1 + i})
                        key = gid
                except OSError:
                    return
                if 200 <= status < 300:
                    acked[key] = body
                    last[0] = key

        # The kill falls at a random write of the 1,000 (a few ms into it).
        kill_at = random.randrange(50, 1000)
        t = threading.Thread(target=writer)
        t.start()
        deadline = time.monotonic() + 120
        while progress[0] < kill_at and t.is_alive() and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(random.uniform(0, 0.02))
        ap.kill()
        stop.set()
        t.join(60)
        self.assertFalse(t.is_alive())
        self.assertIsNotNone(last[0], "no write was acknowledged before the kill")
        with open(ap.state_path) as f:
            state = json.load(f)
        ap.start()
        # A PATCH of gid may have been written but not answered before the
        # kill: then the file holds that later value (rows only grow).
        status, _, body = ap.api("GET", "/v1/grants/" + gid)
        self.assertEqual(status, 200)
        self.assertGreaterEqual(body["max_rows_per_query"], acked[gid]["max_rows_per_query"])
        if last[0] != gid:
            status, _, body = ap.api("GET", "/v1/grants/" + last[0])
            self.assertEqual((status, body), (200, acked[last[0]]))
        self.assertIn(last[0], [g["id"] for g in state["grants"]])
        writes = len([k for k in acked if k != gid])
        print("SIGKILL at write %d of 1000 (%d creations acknowledged)" % (kill_at, writes), file=sys.stderr)


if __name__ == "__main__":
    main()

# SPDX-License-Identifier: Apache-2.0
"""Tests of ca-simserver itself, through urllib: the protocol endpoints and their strict
checks, paging, leases, duplicates, every fault kind, heartbeats, TLS and mTLS, and a
clean exit (which under AddressSanitizer also means no leak). Run: python3 this_file."""

import http.client
import json
import os
import shutil
import socket
import ssl
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SimServer, make_order, make_test_ca, wait_for  # noqa: E402

RESULTS = "/api/Connectors/Provisioning/ProvisioningResults"


def data_path(connector="c1"):
    return "/api/Connectors/Provisioning/ProvisioningData/" + connector


def result_for(order, state="Executed", **extra):
    r = {"AssignmentId": order["AssignedResourceTypeId"], "ProvisioningState": state,
         "ChangeType": order["ChangeType"], "Message": "" if state == "Executed" else "failed",
         "ExecutedAt": "2026-11-22T10:15:02Z"}
    if "Id" in order:
        r["Id"] = order["Id"]
    r.update(extra)
    return r


def results_body(results, connector="c1"):
    return {"ConnectorId": connector, "AgentIdentifier": "agent-test-01",
            "ProvisioningResults": results}


class SimTestCase(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="simserver-test-")
        self.sims = []

    def tearDown(self):
        failed = []
        for sim in self.sims:
            try:
                sim.stop()
            except RuntimeError as exc:
                failed.append(str(exc))
        shutil.rmtree(self.dir, ignore_errors=True)
        if failed:
            self.fail("ca-simserver did not exit cleanly:\n" + "\n".join(failed))

    def start(self, **kw):
        sim = SimServer(os.path.join(self.dir, "s%d" % len(self.sims)), **kw)
        self.sims.append(sim)
        return sim.start()

    def fetch(self, sim, connector="c1", token=None, extra_query=""):
        status, _, body = sim.api("GET", data_path(connector), token=token,
                                  extra_query=extra_query)
        self.assertEqual(status, 200, body)
        return json.loads(body)

    def assertViolation(self, sim, fragment):
        violations = sim.state()["violations"]
        self.assertTrue(any(fragment in v for v in violations),
                        "no violation mentioning %r in %r" % (fragment, violations))


class TokenTests(SimTestCase):
    def form(self, sim, fields, ctype="application/x-www-form-urlencoded"):
        return sim.http("POST", "/connect/token", body=urllib.parse.urlencode(fields, safe="@"),
                        headers={"Content-Type": ctype})

    def good_fields(self, sim):
        return {"grant_type": "client_credentials", "client_id": sim.client_id,
                "client_secret": sim.secret, "scope": "usercube_api"}

    def test_token_issued(self):
        sim = self.start(token_ttl=120)
        status, headers, body = self.form(sim, self.good_fields(sim))
        self.assertEqual(status, 200)
        tok = json.loads(body)
        self.assertEqual(tok["token_type"], "Bearer")
        self.assertEqual(tok["expires_in"], 120)
        self.assertEqual(len(tok["access_token"]), 64)
        self.assertEqual(sim.state()["token_requests"], 1)
        self.assertEqual(sim.state()["violations"], [])
        # The "@" of the client id goes as is (protocol.md §2); escaped, it is refused.
        raw = "grant_type=client_credentials&client_id=agent@test&client_secret=test-secret" \
              "&scope=usercube_api"
        status, _, _ = sim.http("POST", "/connect/token", body=raw, headers={
            "Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(status, 200)
        self.assertEqual(sim.state()["violations"], [])
        status, _, body = sim.http("POST", "/connect/token", body=raw.replace("@", "%40"),
                                   headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(status, 400)
        self.assertEqual(json.loads(body)["error"], "invalid_request")
        self.assertViolation(sim, "escaped as %40")

    def test_bad_credentials_refused_without_violation(self):
        sim = self.start()
        f = self.good_fields(sim)
        f["client_secret"] = "wrong"
        status, _, body = self.form(sim, f)
        self.assertEqual(status, 401)
        self.assertEqual(json.loads(body)["error"], "invalid_client")
        f = self.good_fields(sim)
        f["client_id"] = "someone@else"
        self.assertEqual(self.form(sim, f)[0], 401)
        f = self.good_fields(sim)
        f["scope"] = "other"
        status, _, body = self.form(sim, f)
        self.assertEqual(status, 400)
        self.assertEqual(json.loads(body)["error"], "invalid_scope")
        self.assertEqual(sim.state()["violations"], [])

    def test_malformed_token_requests_are_violations(self):
        sim = self.start()
        f = self.good_fields(sim)
        del f["grant_type"]
        self.assertEqual(self.form(sim, f)[0], 400)
        self.assertViolation(sim, "missing grant_type")
        f = self.good_fields(sim)
        f["grant_type"] = "password"
        status, _, body = self.form(sim, f)
        self.assertEqual((status, json.loads(body)["error"]), (400, "unsupported_grant_type"))
        status, _, _ = sim.http("POST", "/connect/token", body=self.good_fields(sim))
        self.assertEqual(status, 400)  # JSON, not a form
        self.assertViolation(sim, "x-www-form-urlencoded")
        status, _, _ = sim.http("GET", "/connect/token")
        self.assertEqual(status, 405)
        self.assertEqual(len(sim.state()["violations"]), 4)


class AuthAndHeaderTests(SimTestCase):
    def test_auth_required(self):
        sim = self.start()
        status, _, _ = sim.api("GET", data_path(), headers={"Authorization": None})
        self.assertEqual(status, 401)
        self.assertViolation(sim, "missing Authorization")
        n = len(sim.state()["violations"])
        status, headers, _ = sim.api("GET", data_path(), token="not-a-token")
        self.assertEqual(status, 401)
        self.assertIn("invalid_token", headers.get("www-authenticate", ""))
        # An unknown or expired token is no violation: tokens do expire.
        self.assertEqual(len(sim.state()["violations"]), n)
        self.assertEqual(sim.api("GET", data_path())[0], 200)

    def test_token_expires(self):
        sim = self.start(token_ttl=1)
        tok = sim.token()
        self.assertEqual(sim.api("GET", data_path(), token=tok)[0], 200)
        time.sleep(1.2)
        self.assertEqual(sim.api("GET", data_path(), token=tok)[0], 401)

    def test_strict_headers(self):
        sim = self.start(generate=3)
        tok = sim.token()
        status, _, body = sim.api("GET", data_path(), token=tok, api_version=None)
        self.assertEqual(status, 400)
        self.assertIn("api-version", json.loads(body)["error_description"])
        self.assertViolation(sim, "missing api-version")
        self.assertEqual(sim.api("GET", data_path(), token=tok, api_version="2.0")[0], 400)
        self.assertViolation(sim, "api-version '2.0'")
        self.assertEqual(sim.api("GET", data_path(), token=tok, headers={"Accept": None})[0],
                         400)
        self.assertViolation(sim, "Accept")
        self.assertEqual(sim.api("GET", data_path(), token=tok,
                                 headers={"User-Agent": ""})[0], 400)
        self.assertViolation(sim, "User-Agent")
        self.assertEqual(sim.api("GET", data_path(), token=tok, extra_query="foo=1")[0], 400)
        self.assertViolation(sim, "'foo'")
        body = results_body([result_for(make_order(1, "c1"))])
        status, _, _ = sim.api("PUT", RESULTS, token=tok, body=json.dumps(body),
                               headers={"Content-Type": "text/plain"})
        self.assertEqual(status, 415)
        self.assertViolation(sim, "Content-Type")
        self.assertEqual(sim.api("POST", RESULTS, token=tok, body=body)[0], 405)
        self.assertEqual(sim.api("GET", "/api/Nope", token=tok)[0], 404)
        self.assertViolation(sim, "no such endpoint")
        # None of those refusals delivered anything.
        self.assertTrue(all(o["delivered"] == 0 for o in sim.state()["orders"]))

    def test_unknown_connector_is_404(self):
        sim = self.start(connectors=("c1",))
        self.assertEqual(sim.api("GET", data_path("nope"))[0], 404)


class DeliveryTests(SimTestCase):
    def test_paging_with_continuation_token(self):
        sim = self.start(generate=5, page_size=2)
        tok = sim.token()
        ids, token, pages = [], None, 0
        while True:
            q = "ContinuationToken=" + urllib.parse.quote(token) if token else ""
            page = self.fetch(sim, token=tok, extra_query=q)
            pages += 1
            ids += [o["Id"] for o in page["ProvisioningOrdersList"]]
            token = page["ContinuationToken"]
            if not token:
                break
            self.assertIsInstance(token, str)
            self.assertLess(pages, 10)
        self.assertEqual(pages, 3)
        self.assertEqual(ids, ["gen-%06d" % i for i in range(1, 6)])
        # Nothing left: an empty list and a null token.
        page = self.fetch(sim, token=tok)
        self.assertEqual(page, {"ProvisioningOrdersList": [], "ContinuationToken": None})
        status, _, _ = sim.api("GET", data_path(), token=tok,
                               extra_query="ContinuationToken=forged")
        self.assertEqual(status, 400)
        self.assertViolation(sim, "ContinuationToken 'forged'")

    def test_long_continuation_tokens(self):
        sim = self.start(generate=5, page_size=2, extra_args=("--continuation-bytes", "70000"))
        tok = sim.token()
        page = self.fetch(sim, token=tok)
        token = page["ContinuationToken"]
        self.assertEqual(len(token), 70000)
        self.assertTrue(set("+/=") <= set(token), "no character that needs escaping")
        # Cut short: refused as such, a violation.
        cut = "ContinuationToken=" + urllib.parse.quote(token[:2000], safe="")
        status, _, _ = sim.api("GET", data_path(), token=tok, extra_query=cut)
        self.assertEqual(status, 400)
        self.assertViolation(sim, "is cut short (2000 bytes)")
        # Whole: the next page, even at 70,000 bytes (210,000 escaped).
        whole = "ContinuationToken=" + urllib.parse.quote(token, safe="")
        status, _, body = sim.api("GET", data_path(), token=tok, extra_query=whole)
        self.assertEqual(status, 200, body[:200])
        self.assertEqual(len(json.loads(body)["ProvisioningOrdersList"]), 2)

    def test_page_size_parameter(self):
        sim = self.start(generate=5, page_size=3)
        page = self.fetch(sim, extra_query="PageSize=1")
        self.assertEqual(len(page["ProvisioningOrdersList"]), 1)
        self.assertTrue(page["ContinuationToken"])
        page = self.fetch(sim, extra_query="PageSize=50")  # capped by --page-size
        self.assertEqual(len(page["ProvisioningOrdersList"]), 3)
        self.assertEqual(sim.api("GET", data_path(), extra_query="PageSize=0")[0], 400)
        self.assertEqual(sim.api("GET", data_path(), extra_query="PageSize=x")[0], 400)
        self.assertViolation(sim, "PageSize")

    def test_generated_orders_are_realistic(self):
        sim = self.start(generate=20, generate_connector="ldap")
        orders = self.fetch(sim, "ldap")["ProvisioningOrdersList"]
        self.assertEqual(len(orders), 20)
        first = orders[0]
        self.assertEqual(first["Changes"]["uid"], "user00001")
        self.assertTrue(first["Changes"]["mail"].endswith("@example.com"))
        self.assertTrue(first["Changes"]["memberOf_add"][0].startswith("cn="))
        self.assertEqual(first["ResourceType"]["Identifier"], "User")
        kinds = [o["ChangeType"] for o in orders]
        self.assertGreater(kinds.count("Added"), 10)
        self.assertIn("Modified", kinds)
        self.assertIn("Deleted", kinds)
        added = {o["Changes"]["uid"] for o in orders if o["ChangeType"] == "Added"}
        for o in orders:
            if o["ChangeType"] != "Added":
                self.assertIn(o["Resource"]["uid"], added)
        self.assertEqual(len({o["Id"] for o in orders}), 20)

    def test_lease_redelivery(self):
        sim = self.start(generate=2, lease=2)  # 2 s: room for a loaded CI machine
        tok = sim.token()
        first = self.fetch(sim, token=tok)["ProvisioningOrdersList"]
        self.assertEqual(len(first), 2)
        self.assertEqual(self.fetch(sim, token=tok)["ProvisioningOrdersList"], [])
        self.assertEqual({o["state"] for o in sim.state()["orders"]}, {"leased"})
        # Answer one; the other's lease runs out and it comes again.
        status, _, body = sim.api("PUT", RESULTS, token=tok,
                                  body=results_body([result_for(first[0])]))
        self.assertEqual(status, 200, body)
        time.sleep(2.3)
        again = self.fetch(sim, token=tok)["ProvisioningOrdersList"]
        self.assertEqual([o["Id"] for o in again], [first[1]["Id"]])
        st = {o["key"]: o for o in sim.state()["orders"]}
        self.assertEqual(st[first[0]["Id"]]["state"], "answered")
        self.assertEqual(st[first[1]["Id"]]["delivered"], 2)

    def test_control_orders_generate_and_redeliver(self):
        sim = self.start(connectors=())
        sim.add_orders("files", [make_order(i, "files") for i in range(1, 4)])
        sim.generate("sql", 2, resource_type="Account", ids=False)
        self.assertEqual(set(sim.state()["connectors"]), {"files", "sql"})
        files = self.fetch(sim, "files")["ProvisioningOrdersList"]
        self.assertEqual(len(files), 3)
        sql = self.fetch(sim, "sql")["ProvisioningOrdersList"]
        self.assertEqual([o["ResourceType"]["Identifier"] for o in sql], ["Account"] * 2)
        self.assertTrue(all("Id" not in o for o in sql))
        body = results_body([result_for(o) for o in files], "files")
        self.assertEqual(sim.api("PUT", RESULTS, body=body)[0], 200)
        self.assertEqual(self.fetch(sim, "files")["ProvisioningOrdersList"], [])
        sim.redeliver("files")
        again = self.fetch(sim, "files")["ProvisioningOrdersList"]
        self.assertEqual([o["Id"] for o in again], [o["Id"] for o in files])
        # Answering a redelivered order again counts as duplicates, no violation.
        status, _, resp = sim.api("PUT", RESULTS, body=body)
        self.assertEqual(json.loads(resp), {"Received": 3, "Duplicates": 3})
        # A duplicate Id is refused; a bad control request is no violation.
        with self.assertRaises(RuntimeError):
            sim.add_orders("files", [make_order(1, "files")])
        self.assertEqual(sim.state()["violations"], [])


class ResultTests(SimTestCase):
    def setUp(self):
        super().setUp()
        self.sim = self.start(generate=4)
        self.tok = self.sim.token()
        self.orders = self.fetch(self.sim, token=self.tok)["ProvisioningOrdersList"]

    def put(self, results, **kw):
        status, _, body = self.sim.api("PUT", RESULTS, token=self.tok,
                                       body=results_body(results, **kw))
        return status, json.loads(body)

    def test_results_and_duplicates(self):
        o1, o2 = self.orders[0], self.orders[1]
        self.assertEqual(self.put([result_for(o1), result_for(o2, "Errored")]),
                         (200, {"Received": 2, "Duplicates": 0}))
        self.assertEqual(self.put([result_for(o1)]), (200, {"Received": 1, "Duplicates": 1}))
        self.assertEqual(self.put([result_for(o2, "Executed")]),
                         (200, {"Received": 1, "Duplicates": 1}))
        st = self.sim.state()
        self.assertEqual((st["received"], st["duplicates"], st["conflicting_duplicates"]),
                         (4, 2, 1))
        self.assertEqual(st["violations"], [])
        by_key = {o["key"]: o for o in st["orders"]}
        self.assertEqual(by_key[o1["Id"]]["results"], 2)
        self.assertEqual(by_key[o2["Id"]]["result"]["ProvisioningState"], "Executed")
        res = self.sim.results()
        self.assertEqual([r["duplicate"] for r in res], [False, False, True, True])
        self.assertEqual(res[0]["connector"], "c1")
        self.assertIn("received_at", res[0])

    def test_invalid_results_are_refused_whole(self):
        o1, o2 = self.orders[0], self.orders[1]
        cases = [
            ([result_for(o1), result_for(o2, ExecutedAt="2026-11-22 10:15:02")], "ExecutedAt"),
            ([result_for(o1, ProvisioningState="Done")], "ProvisioningState"),
            ([result_for(o1, Message=None)], "Message"),
            ([result_for(o1, Extra=1)], "'Extra'"),
            ([result_for(o1, Id="gen-999999")], "no order with Id 'gen-999999'"),
            ([result_for(o1, AssignmentId="0")], "AssignmentId '0'"),
            ([result_for(o1, ChangeType="Deleted")], "ChangeType 'Deleted'"),
            ([{k: v for k, v in result_for(o1).items() if k != "Id"}], "lacks the order's Id"),
        ]
        for results, fragment in cases:
            status, body = self.put(results)
            self.assertEqual(status, 400, fragment)
            self.assertIn(fragment, body["error_description"])
        self.assertEqual(self.put([], connector="c1")[0], 400)
        self.assertEqual(self.put([result_for(o1)], connector="zz")[0], 404)
        status, _, _ = self.sim.api("PUT", RESULTS, token=self.tok, body=b"{not json",
                                    headers={"Content-Type": "application/json"})
        self.assertEqual(status, 400)
        st = self.sim.state()
        self.assertEqual(st["received"], 0)  # nothing of a refused PUT was kept
        self.assertEqual(len(st["violations"]), len(cases) + 3)

    def test_result_for_never_delivered_order(self):
        sim = self.start(generate=3, page_size=1)
        tok = sim.token()
        self.fetch(sim, token=tok)  # only gen-000001
        undelivered = make_order(0, "c1")
        undelivered.update({"Id": "gen-000002", "AssignedResourceTypeId": "3900002"})
        status, _, body = sim.api("PUT", RESULTS, token=tok,
                                  body=results_body([result_for(undelivered)]))
        self.assertEqual(status, 400)
        self.assertViolation(sim, "no order with Id 'gen-000002' was delivered")

    def test_orders_without_id_match_by_assignment_and_change(self):
        sim = self.start(connectors=(), extra_args=("--generate", "12", "--generate-connector",
                                                    "c1", "--no-ids"))
        orders = self.fetch(sim)["ProvisioningOrdersList"]
        self.assertTrue(all("Id" not in o for o in orders))
        status, _, body = sim.api("PUT", RESULTS, body=results_body(
            [result_for(o) for o in orders]))
        self.assertEqual(json.loads(body), {"Received": 12, "Duplicates": 0})
        self.assertEqual({o["state"] for o in sim.state()["orders"]}, {"answered"})
        self.assertIn("3900001|Added", {o["key"] for o in sim.state()["orders"]})


class HeartbeatTests(SimTestCase):
    def beat(self, **over):
        b = {"Identifier": "agent-01", "Status": "CONNECTED", "Version": "1.0.0",
             "Hostname": "idm-agent-01", "StartedAt": "2026-11-22T09:00:00Z",
             "LastConnected": "2026-11-22T10:15:00Z",
             "Connectors": [{"Id": "c1", "Status": "CONNECTED", "LastError": None,
                             "PendingResults": 0, "OrdersExecuted": 12, "OrdersErrored": 1}]}
        b.update(over)
        return b

    def test_heartbeat_validation(self):
        sim = self.start(extra_args=("--latest-version", "2.1.0"))
        status, _, body = sim.api("PUT", "/api/Connectors/Agent/agent-01", body=self.beat())
        self.assertEqual((status, json.loads(body)), (200, {"LatestVersion": "2.1.0"}))
        self.assertEqual(sim.api("PUT", "/api/Connectors/Agent/agent-01",
                                 body=self.beat(Status="DISCONNECTED",
                                                LastConnected=None))[0], 200)
        bad = [
            self.beat(Status="UP"),
            self.beat(Identifier="other"),
            self.beat(StartedAt="yesterday"),
            self.beat(Connectors={"Id": "c1"}),
            self.beat(Connectors=[{"Id": "c1", "Status": "CONNECTED", "PendingResults": -1}]),
            self.beat(Connectors=[{"Id": "c1", "Status": "CONNECTED"}]),
            self.beat(Version=""),
            self.beat(Unknown=True),
        ]
        for b in bad:
            status, _, body = sim.api("PUT", "/api/Connectors/Agent/agent-01", body=b)
            self.assertEqual(status, 400, b)
        hb = sim.heartbeats()
        self.assertEqual([h["Status"] for h in hb], ["CONNECTED", "DISCONNECTED"])
        self.assertIn("received_at", hb[0])
        self.assertEqual(len(sim.state()["violations"]), len(bad))


    def test_agent_status_view(self):
        sim = self.start(extra_args=("--latest-version", "1.0.0", "--heartbeat-interval", "1"))
        self.assertEqual(sim.api("PUT", "/api/Connectors/Agent/agent-01",
                                 body=self.beat())[0], 200)
        self.assertEqual(sim.api("PUT", "/api/Connectors/Agent/agent-01",
                                 body=self.beat())[0], 200)
        old = dict(self.beat(Identifier="agent-02", Version="0.9.0"))
        self.assertEqual(sim.api("PUT", "/api/Connectors/Agent/agent-02", body=old)[0], 200)
        agents = {a["identifier"]: a for a in sim.state()["agents"]}
        self.assertEqual(agents["agent-01"]["status"], "CONNECTED")
        self.assertEqual(agents["agent-01"]["heartbeats"], 2)
        self.assertTrue(agents["agent-01"]["is_latest_version"])
        self.assertFalse(agents["agent-02"]["is_latest_version"])
        # Silent for three intervals: the server marks it DISCONNECTED.
        wait_for(lambda: {a["status"] for a in sim.state()["agents"]} == {"DISCONNECTED"},
                 timeout=6, what="agents marked DISCONNECTED")
        a = sim.state()["agents"][0]
        self.assertEqual(a["reported_status"], "CONNECTED")


class FaultTests(SimTestCase):
    def setUp(self):
        super().setUp()
        self.sim = self.start(generate=3)
        self.tok = self.sim.token()

    def get_raw(self, timeout=10):
        return self.sim.api("GET", data_path(), token=self.tok, timeout=timeout)

    def test_status_fault_with_retry_after(self):
        self.sim.fault("data", "status", count=2, status=503, retry_after="2")
        for _ in range(2):
            status, headers, _ = self.get_raw()
            self.assertEqual(status, 503)
            self.assertEqual(headers.get("retry-after"), "2")
        self.assertEqual(self.get_raw()[0], 200)
        self.sim.fault("token", "status", status=429, body={"error": "slow down"})
        status, _, body = self.sim.http("POST", "/connect/token", body="x=1", headers={
            "Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual((status, json.loads(body)), (429, {"error": "slow down"}))
        self.sim.fault("any", "status", status=204)
        status, _, body = self.get_raw()
        self.assertEqual((status, body), (204, b""))

    def test_faults_match_their_endpoint_only(self):
        self.sim.fault("results", "status", status=500)
        self.assertEqual(self.get_raw()[0], 200)  # a data call does not consume it
        status, _, _ = self.sim.api("PUT", RESULTS, token=self.tok, body=results_body([]))
        self.assertEqual(status, 500)

    def test_slow(self):
        self.sim.fault("data", "slow", delay_ms=400)
        t0 = time.monotonic()
        status, _, body = self.get_raw()
        elapsed = time.monotonic() - t0
        self.assertEqual(status, 200)
        self.assertEqual(len(json.loads(body)["ProvisioningOrdersList"]), 3)
        self.assertGreaterEqual(elapsed, 0.38)
        self.assertLess(elapsed, 5)

    def test_slow_answer_after_client_gave_up(self):
        self.sim.fault("data", "slow", delay_ms=500)
        with self.assertRaises((socket.timeout, TimeoutError, urllib.error.URLError)):
            self.get_raw(timeout=0.1)
        time.sleep(0.7)
        # The server survived the vanished client and still answers.
        self.assertEqual(self.get_raw()[0], 200)

    def test_drop(self):
        self.sim.fault("data", "drop")
        with self.assertRaises((http.client.RemoteDisconnected, ConnectionError,
                                urllib.error.URLError)):
            self.get_raw()
        self.assertEqual(self.get_raw()[0], 200)
        self.assertIn(0, [r["status"] for r in self.sim.requests()])

    def test_malformed_and_truncated(self):
        self.sim.fault("data", "malformed")
        status, _, body = self.get_raw()
        self.assertEqual(status, 200)
        with self.assertRaises(ValueError):
            json.loads(body)
        for ep in ("data", "heartbeat"):
            self.sim.fault(ep, "truncated")
        status, headers, body = self.get_raw()
        self.assertEqual(status, 200)
        self.assertEqual(int(headers["content-length"]), len(body))
        with self.assertRaises(ValueError):
            json.loads(body)
        status, _, body = self.sim.api("PUT", "/api/Connectors/Agent/a", token=self.tok,
                                       body={})
        self.assertEqual(status, 200)
        with self.assertRaises(ValueError):
            json.loads(body)
        # No order was handed out by the broken answers.
        self.assertTrue(all(o["delivered"] == 0 for o in self.sim.state()["orders"]))

    def test_truncated_in_transport(self):
        self.sim.fault("data", "truncated", transport=True)
        conn = http.client.HTTPConnection("127.0.0.1", self.sim.port, timeout=10)
        conn.request("GET", data_path() + "?api-version=1.0", headers={
            "Authorization": "Bearer " + self.tok, "Accept": "application/json",
            "User-Agent": "t/1"})
        resp = conn.getresponse()
        self.assertEqual(resp.status, 200)
        announced = int(resp.getheader("Content-Length"))
        with self.assertRaises(http.client.IncompleteRead) as cm:
            resp.read()
        self.assertEqual(len(cm.exception.partial), announced // 2)
        conn.close()
        self.assertEqual(self.get_raw()[0], 200)

    def test_oversized_is_streamed(self):
        n = 3 * 1024 * 1024 + 17
        self.sim.fault("data", "oversized", bytes=n)
        status, _, body = self.get_raw(timeout=30)
        self.assertEqual(status, 200)
        self.assertEqual(len(body), n)
        doc = json.loads(body)
        self.assertEqual(doc["ProvisioningOrdersList"], [])

    def test_oversized_client_hangs_up(self):
        self.sim.fault("data", "oversized", bytes=64 * 1024 * 1024)
        conn = http.client.HTTPConnection("127.0.0.1", self.sim.port, timeout=10)
        conn.request("GET", data_path() + "?api-version=1.0", headers={
            "Authorization": "Bearer " + self.tok, "Accept": "application/json",
            "User-Agent": "t/1"})
        resp = conn.getresponse()
        self.assertEqual(resp.status, 200)
        resp.read(100000)
        conn.close()  # gone mid-stream: the server must free its side and carry on
        time.sleep(0.3)
        self.assertEqual(self.get_raw()[0], 200)

    def test_wrongtypes_keeps_one_good_order(self):
        self.sim.fault("data", "wrongtypes")
        status, _, body = self.get_raw()
        self.assertEqual(status, 200)
        page = json.loads(body)
        lst = page["ProvisioningOrdersList"]
        self.assertTrue(any(not isinstance(o, dict) for o in lst))
        self.assertTrue(any(isinstance(o, dict) and not isinstance(o.get("ChangeType"), str)
                            for o in lst))
        self.assertTrue(any(isinstance(o, dict) and isinstance(o.get("Changes"), list)
                            for o in lst))
        good = [o for o in lst if isinstance(o, dict) and o.get("Id") == "gen-000001"]
        self.assertEqual(len(good), 1)
        # The agent errors the bad ones and executes the good one: no violation.
        bad = next(o for o in lst if isinstance(o, dict) and o.get("ChangeType") == 7)
        results = [result_for(good[0]),
                   {"Id": bad["Id"], "AssignmentId": bad["AssignedResourceTypeId"],
                    "ProvisioningState": "Errored", "ChangeType": "7",
                    "Message": "ChangeType is not a string", "ExecutedAt": "2026-11-22T10:15:02Z"}]
        status, _, body = self.sim.api("PUT", RESULTS, token=self.tok, body=results_body(results))
        self.assertEqual(status, 200, body)
        self.assertEqual(self.sim.state()["violations"], [])
        self.sim.fault("data", "wrongtypes", variant="list_object")
        page = json.loads(self.get_raw()[2])
        self.assertIsInstance(page["ProvisioningOrdersList"], dict)
        # The bad orders are never delivered again; the good ones go on normally.
        nxt = json.loads(self.get_raw()[2])["ProvisioningOrdersList"]
        self.assertEqual([o["Id"] for o in nxt], ["gen-000002", "gen-000003"])

    def test_wrongtypes_other_endpoints(self):
        self.sim.fault("token", "wrongtypes")
        status, _, body = self.sim.http("POST", "/connect/token", body="a=b", headers={
            "Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(status, 200)
        self.assertIsInstance(json.loads(body)["expires_in"], str)
        self.sim.fault("results", "wrongtypes")
        status, _, body = self.sim.api("PUT", RESULTS, token=self.tok, body={})
        self.assertIsInstance(json.loads(body)["Received"], str)

    def test_expire_token(self):
        self.assertEqual(self.get_raw()[0], 200)
        self.sim.fault("any", "expire_token")
        self.assertEqual(self.get_raw()[0], 401)
        self.assertEqual(self.sim.api("GET", data_path())[0], 200)  # a new token works
        self.assertEqual(self.sim.state()["violations"], [])

    def test_bad_fault_requests(self):
        for kw in ({"endpoint": "nowhere", "kind": "drop"}, {"endpoint": "data", "kind": "x"},
                   {"endpoint": "data", "kind": "status"},
                   {"endpoint": "data", "kind": "slow", "delay_ms": -1}):
            with self.assertRaises(RuntimeError):
                self.sim.fault(**kw)

    def test_reset_and_request_ring(self):
        self.sim.fault("data", "status", count=5, status=500)
        self.get_raw()
        reqs = self.sim.requests()
        self.assertEqual(reqs[-1]["path"], data_path())
        self.assertEqual(reqs[-1]["query"], "api-version=1.0")
        self.assertEqual(reqs[-1]["status"], 500)
        self.assertEqual(reqs[-1]["method"], "GET")
        self.assertIsInstance(reqs[-1]["at_ms"], int)
        self.assertFalse(any(r["path"].startswith("/_control/") for r in reqs))
        self.sim.reset()
        self.assertEqual(self.sim.requests(), [])
        self.assertEqual(self.get_raw()[0], 200)  # the remaining faults were cleared
        st = self.sim.state()
        self.assertEqual(st["requests"], 1)
        self.assertEqual(len(st["orders"]), 3)  # orders survive a reset


class LimitTests(SimTestCase):
    def test_body_limit(self):
        sim = self.start(extra_args=("--max-body", "4096"))
        big = results_body([result_for(make_order(i)) for i in range(100)])
        status, _, _ = sim.api("PUT", RESULTS, body=big)
        self.assertEqual(status, 413)
        self.assertEqual(sim.api("GET", data_path())[0], 200)

    def test_many_connections(self):
        sim = self.start()
        tok = sim.token()
        socks = []
        try:
            for _ in range(300):
                s = socket.create_connection(("127.0.0.1", sim.port), timeout=5)
                s.sendall(("GET %s?api-version=1.0 HTTP/1.1\r\nHost: x\r\n"
                           "Authorization: Bearer %s\r\nAccept: application/json\r\n"
                           "User-Agent: t\r\n\r\n" % (data_path(), tok)).encode())
                socks.append(s)
            statuses = []
            for s in socks:
                head = s.recv(64).decode("latin-1")
                statuses.append(int(head.split()[1]))
        finally:
            for s in socks:
                s.close()
        self.assertEqual(statuses.count(200), 256)
        self.assertEqual(statuses.count(503), 300 - 256)
        wait_for(lambda: sim.state()["connections"] <= 1, timeout=5, what="connections closed")
        self.assertEqual(sim.api("GET", data_path())[0], 200)


class ShutdownTests(SimTestCase):
    def test_stop_with_answers_in_flight(self):
        """SIGTERM while a slow answer waits and an oversized one streams: the server
        exits 0 (and, under ASan, without a leak)."""
        sim = self.start(generate=2)
        tok = sim.token()
        sim.fault("data", "slow", delay_ms=30000)
        sim.fault("data", "oversized", bytes=256 * 1024 * 1024)
        conns = []
        for _ in range(2):
            c = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=10)
            c.request("GET", data_path() + "?api-version=1.0", headers={
                "Authorization": "Bearer " + tok, "Accept": "application/json",
                "User-Agent": "t/1"})
            conns.append(c)
        wait_for(lambda: sim.state()["requests"] >= 3, timeout=5, what="both requests")
        t0 = time.monotonic()
        self.assertEqual(sim.stop(), 0)
        self.assertLess(time.monotonic() - t0, 5)
        for c in conns:
            c.close()

    def test_quiet(self):
        sim = self.start(extra_args=("--quiet",))
        sim.api("GET", data_path(), api_version=None)
        self.assertEqual(len(sim.state()["violations"]), 1)
        sim.stop()
        self.assertNotIn("ProvisioningData", sim.log_tail(1000))


class TlsTests(SimTestCase):
    @classmethod
    def setUpClass(cls):
        cls.cadir = tempfile.mkdtemp(prefix="simserver-ca-")
        cls.ca = make_test_ca(cls.cadir)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.cadir, ignore_errors=True)

    def test_https(self):
        sim = self.start(tls={"cert": self.ca["cert"], "key": self.ca["key"],
                              "ca": self.ca["ca"]}, generate=1)
        self.assertTrue(sim.url.startswith("https://127.0.0.1:"))
        self.assertEqual(len(self.fetch(sim)["ProvisioningOrdersList"]), 1)
        # A client that does not trust the test CA refuses the server.
        with self.assertRaises(urllib.error.URLError):
            sim.http("GET", "/_control/state", context=ssl.create_default_context())
        # Plain HTTP on the TLS port gets nowhere.
        with self.assertRaises((http.client.HTTPException, ConnectionError, OSError)):
            c = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=5)
            c.request("GET", "/_control/state")
            c.getresponse().read()

    def test_mtls_requires_client_certificate(self):
        sim = self.start(tls={"cert": self.ca["cert"], "key": self.ca["key"],
                              "client_ca": self.ca["ca"], "ca": self.ca["ca"],
                              "client_cert": self.ca["client_cert"],
                              "client_key": self.ca["client_key"]})
        self.assertEqual(sim.state()["violations"], [])  # with the client certificate
        with self.assertRaises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
            sim.http("GET", "/_control/state", context=sim.ssl_context(client_cert=False))
        self.assertEqual(sim.api("GET", data_path())[0], 200)


class CommandLineTests(SimTestCase):
    def test_orders_file_and_bad_options(self):
        orders = {"c1": [make_order(1, "c1"), make_order(2, "c1", "Modified")],
                  "c2": [make_order(3, "c2", with_id=False)]}
        sim = self.start(connectors=("c1", "c2", "c3"), orders=orders)
        st = sim.state()
        self.assertEqual(st["connectors"], ["c1", "c2", "c3"])
        self.assertEqual(len(st["orders"]), 3)
        self.assertEqual(self.fetch(sim, "c3")["ProvisioningOrdersList"], [])
        bad = SimServer(os.path.join(self.dir, "bad"), extra_args=("--page-size", "0"))
        with self.assertRaises(RuntimeError):
            bad.start()
        bad.stop(check=False)

    def test_secret_file_is_used(self):
        sim = SimServer(os.path.join(self.dir, "sec"))
        sim.secret = "another secret with spaces & signs"
        self.sims.append(sim)
        sim.start()
        self.assertEqual(os.stat(sim.secret_file).st_mode & 0o777, 0o600)
        self.assertEqual(sim.api("GET", data_path())[0], 200)
        log = sim.log_tail(1000)
        self.assertNotIn(sim.secret, log)
        self.assertIn("POST /connect/token -> 200", log)


if __name__ == "__main__":
    unittest.main(verbosity=2)

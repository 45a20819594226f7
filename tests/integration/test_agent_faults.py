# SPDX-License-Identifier: Apache-2.0
"""The agent against a server that misbehaves: every injected fault is survived, each
order is still answered exactly once, Retry-After is respected, and credentials errors
do not turn into a tight loop."""
import os
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import SimServer  # noqa: E402
from agent_harness import Agent, wait_for  # noqa: E402

N = 30


def all_answered(server, n=None):
    orders = server.state()["orders"]
    return len(orders) >= (n or 1) and all(o["results"] > 0 for o in orders)


class FaultTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="ca-faults-")
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def run_with_fault(self, endpoint, kind, count=2, check=None, server_keys=None, **kw):
        """Runs N orders through the agent with a fault injected; check(server, log) runs
        while the server is still up."""
        with SimServer(self.dir, connectors=("c1",), generate=N, generate_connector="c1",
                       page_size=10) as server:
            server.fault(endpoint, kind, count=count, **kw)
            agent = Agent(self.dir, server, name="agent-%s-%s" % (endpoint, kind),
                          agent={"shutdown_deadline": "5s"}, server_keys=server_keys,
                          connectors={"c1": {"backend": "testbackend", "poll_interval": "1s",
                                             "state_file": os.path.join(self.dir, "applied-%s-%s" % (endpoint, kind))}})
            agent.applied_file = agent.connectors["c1"]["state_file"]
            agent.start()
            try:
                wait_for(lambda: all_answered(server, N), timeout=90,
                         what="all results after %s/%s" % (endpoint, kind))
            finally:
                rc = agent.stop()
            log = agent.log()
            self.assertEqual(rc, 0, log[-3000:])
            state = server.state()
            self.assertEqual(state["violations"], [])
            self.assertTrue(all(o["results"] == 1 for o in state["orders"]),
                            "an order answered twice")
            applied = agent.applied()
            self.assertEqual(len(applied), len(set(applied)), "an order applied twice")
            if check:
                check(server, log)
            return log

    def test_data_5xx(self):
        self.run_with_fault("data", "status", status=500)

    def test_results_5xx(self):
        self.run_with_fault("results", "status", status=502)

    def test_heartbeat_5xx(self):
        self.run_with_fault("heartbeat", "status", status=500)

    def test_token_5xx(self):
        self.run_with_fault("token", "status", status=503)

    def test_dropped_connections(self):
        self.run_with_fault("any", "drop", count=3)

    def test_malformed_json(self):
        log = self.run_with_fault("data", "malformed")
        self.assertIn("ProvisioningData answer rejected", log)

    def test_truncated_json(self):
        self.run_with_fault("data", "truncated")

    def test_wrong_types(self):
        def check(server, log):
            by_id = {r.get("Id"): r for r in server.results()}
            bad = [r for i, r in by_id.items() if i and i.startswith("wrongtypes-")]
            self.assertEqual(len(bad), 3)
            self.assertTrue(all(r["ProvisioningState"] == "Errored" for r in bad))
        self.run_with_fault("data", "wrongtypes", count=1, check=check)

    def test_wrong_top_level_types(self):
        log = self.run_with_fault("data", "wrongtypes", count=1, variant="list_object")
        self.assertIn("ProvisioningData answer rejected", log)

    def test_oversized_body(self):
        log = self.run_with_fault("data", "oversized", count=1, bytes=3 * 1024 * 1024,
                                  server_keys={"max_body": "1M"})
        self.assertIn("larger than the 1048576-byte limit", log)

    def test_slow_answer_times_out(self):
        log = self.run_with_fault("data", "slow", count=1, delay_ms=8000)
        self.assertRegex(log, r"ProvisioningData for c1 failed: .*[Tt]imed out")

    def test_results_ack_malformed(self):
        self.run_with_fault("results", "malformed")

    def test_token_expiry_renews_once(self):
        with SimServer(self.dir, connectors=("c1",), generate=5, generate_connector="c1") as server:
            agent = Agent(self.dir, server, connectors={"c1": {
                "backend": "testbackend", "poll_interval": "1s",
                "state_file": os.path.join(self.dir, "applied")}})
            agent.applied_file = os.path.join(self.dir, "applied")
            agent.start()
            try:
                wait_for(lambda: all_answered(server) or None, timeout=30, what="first batch")
                self.assertEqual(server.state()["token_requests"], 1)
                server.fault("any", "expire_token")
                server.generate("c1", 5)
                wait_for(lambda: len(agent.applied()) == 10, timeout=30, what="second batch")
                wait_for(lambda: all(o["results"] == 1 for o in server.state()["orders"]),
                         timeout=30, what="second batch answered")
            finally:
                self.assertEqual(agent.stop(), 0)
            self.assertEqual(server.state()["token_requests"], 2)
            self.assertEqual(server.state()["violations"], [])

    def test_retry_after_respected(self):
        def check(server, log):
            reqs = [r for r in server.requests() if "ProvisioningData" in r["path"]]
            i = next(i for i, r in enumerate(reqs) if r["status"] == 429)
            gap = reqs[i + 1]["at_ms"] - reqs[i]["at_ms"]
            self.assertGreaterEqual(gap, 3000, "came back %d ms after Retry-After: 3" % gap)
        self.run_with_fault("data", "status", count=1, status=429, retry_after="3", check=check)

    def test_retry_after_http_date(self):
        import email.utils
        when = email.utils.formatdate(time.time() + 4, usegmt=True)
        def check(server, log):
            reqs = [r for r in server.requests() if "ProvisioningResults" in r["path"]]
            i = next(i for i, r in enumerate(reqs) if r["status"] == 503)
            gap = reqs[i + 1]["at_ms"] - reqs[i]["at_ms"]
            self.assertGreaterEqual(gap, 2000, "came back %d ms after a Retry-After date" % gap)
        self.run_with_fault("results", "status", count=1, status=503, retry_after=when, check=check)

    def test_token_cached(self):
        def check(server, log):
            self.assertEqual(server.state()["token_requests"], 1)
        self.run_with_fault("heartbeat", "status", count=1, status=500, check=check)

    def test_bad_credentials_no_tight_loop(self):
        with SimServer(self.dir, connectors=("c1",), generate=3, generate_connector="c1") as server:
            bad = os.path.join(self.dir, "wrong-secret")
            with open(bad, "w") as f:
                f.write("not-the-secret\n")
            os.chmod(bad, 0o600)
            agent = Agent(self.dir, server, server_keys={"client_secret_file": bad})
            agent.start()
            time.sleep(6)
            agent.stop()
            log = agent.log()
            self.assertIn("refused the client credentials", log)
            # The cause is logged once as an error; the calls it holds back only warn.
            errors = [l for l in log.splitlines()
                      if " error " in l and "refused the client credentials" in l]
            self.assertEqual(len(errors), 1, "logged more than once: %r" % errors)
            self.assertNotIn("not-the-secret", log)
            # The token endpoint is retried after half a window at least, the window
            # doubling from 1 s, whatever the stages' own rhythm: 0, >= 0.5 s, >= 1.5 s,
            # >= 3.5 s, so at most four tries in 6 s (a tight loop makes hundreds).
            at = [r["at_ms"] for r in server.requests() if r["path"] == "/connect/token"]
            self.assertEqual(len(at), server.state()["token_requests"])
            self.assertGreaterEqual(len(at), 2, "the token request was never retried")
            self.assertLessEqual(len(at), 4)
            for k in range(len(at) - 1):
                self.assertGreaterEqual(at[k + 1] - at[k], (500 << k) - 5,
                                        "token retry %d came too soon: %r" % (k + 1, at))

    def test_unknown_connector_reported_not_looping(self):
        with SimServer(self.dir, connectors=("c1",)) as server:
            agent = Agent(self.dir, server,
                          connectors={"c1": {"backend": "testbackend", "state_file": os.path.join(self.dir, "a1")},
                                      "ghost": {"backend": "testbackend", "state_file": os.path.join(self.dir, "a2")}})
            agent.start()
            wait_for(lambda: any(c["Id"] == "ghost" and c["LastError"]
                                 for h in server.heartbeats() for c in h["Connectors"]),
                     timeout=20, what="ghost connector reported")
            time.sleep(2)
            agent.stop()
            ghost = [r for r in server.requests() if "ghost" in r["path"] and "ProvisioningData" in r["path"]]
            self.assertLessEqual(len(ghost), 2)
            self.assertEqual(agent.log().count("refuses connector ghost"), 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)

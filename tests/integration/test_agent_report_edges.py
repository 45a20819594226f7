# SPDX-License-Identifier: Apache-2.0
"""What the agent does with the answers to its results and heartbeats (issue 13): a 400
on a results PUT holds nothing else back and the refused body is never sent again
unchanged; the first heartbeat says when the agent last talked to the server."""
import json
import os
import sys
import tempfile
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from harness import SimServer, free_port  # noqa: E402
from agent_harness import Agent, wait_for  # noqa: E402

N = 40


def answered(server):
    return sum(1 for o in server.state()["orders"] if o["results"] > 0)


class ReportEdgesTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="ca-report-edges-")
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def agent(self, server, name, status_port=None):
        keys = {"shutdown_deadline": "3s"}
        if status_port:
            keys["status_port"] = str(status_port)
        a = Agent(self.dir, server, name=name, agent=keys,
                  connectors={"c1": {"backend": "testbackend", "poll_interval": "1s",
                                     "state_file": os.path.join(self.dir, name + "-applied")}})
        a.applied_file = a.connectors["c1"]["state_file"]
        return a

    def test_results_400_splits_and_never_repeats_the_body(self):
        with SimServer(self.dir, connectors=("c1",), generate=N, generate_connector="c1",
                       page_size=N) as server:
            server.fault("results", "status", count=1, status=400,
                         body='{"error":"invalid_request","error_description":"refused"}')
            agent = self.agent(server, "r400")
            t0 = time.monotonic()
            agent.start()
            try:
                # At 3aee884 the whole batch waited a minute and then went again unchanged.
                wait_for(lambda: answered(server) >= N, timeout=15,
                         what="every result soon after a 400")
                took = time.monotonic() - t0
            finally:
                rc = agent.stop()
            log = agent.log()
            self.assertEqual(rc, 0, log[-3000:])
            self.assertLess(took, 15)
            self.assertIn("splitting it to find the refused one", log)
            self.assertEqual(server.violations(), [])
            self.assertTrue(all(o["results"] == 1 for o in server.state()["orders"]))

    def test_refused_result_kept_for_an_operator(self):
        """A result the server always refuses: the others are delivered, the refused one is
        kept in the journal with the server's answer (journal list refused, the metric, the
        heartbeat's LastError), a restart does not send it again, and journal resend does."""
        bad = "gen-000007"
        port = free_port()
        with SimServer(self.dir, connectors=("c1",), generate=N, generate_connector="c1",
                       page_size=N) as server:
            server.fault("results", "status", count=100000, status=400, match='"%s"' % bad,
                         body='{"error":"invalid_request","error_description":"ExecutedAt '
                              'is in the future"}')
            agent = self.agent(server, "kept", status_port=port)
            agent.start()
            try:
                wait_for(lambda: answered(server) >= N - 1, timeout=20,
                         what="every other result delivered")
                wait_for(lambda: "1 refused entry" in self.journal(agent, "list", "refused"),
                         timeout=20, what="the refusal kept in the journal")
                listed = self.journal(agent, "list", "refused")
                self.assertIn(bad, listed)
                self.assertIn("REFUSED", listed)
                self.assertIn("the server refused it: {", listed)
                doc = json.loads(self.journal(agent, "list", "--json", "refused"))
                self.assertEqual([e["key"] for e in doc["entries"]], [bad])
                self.assertIn("ExecutedAt is in the future", doc["entries"][0]["refused_by_server"])
                self.assertEqual(doc["counts"]["refused"], 1)
                metrics = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port,
                                                 timeout=10).read().decode()
                self.assertIn('connector_agent_results_refused{connector="c1"} 1', metrics)
                wait_for(lambda: "1 result(s) refused by the server" in (server.heartbeats()[-1][
                    "Connectors"][0].get("LastError") or ""), timeout=20,
                    what="LastError says so")
            finally:
                self.assertEqual(agent.stop(), 0, agent.log()[-3000:])

            # A restart keeps it back: it is not sent, and the heartbeat still says so.
            agent.start()
            try:
                wait_for(lambda: "refused by the server" in (server.heartbeats()[-1][
                    "Connectors"][0].get("LastError") or ""), timeout=20,
                    what="LastError after the restart")
                time.sleep(2)  # two poll intervals: nothing is sent again
            finally:
                self.assertEqual(agent.stop(), 0, agent.log()[-3000:])
            log = agent.log()
            self.assertEqual(log.count("the server refused the result of order %s" % bad), 1,
                             log[-3000:])
            self.assertEqual(answered(server), N - 1)

            self.assertEqual(server.violations(), [])
            # The operator puts the server right and sends it again.
            server.reset()  # clears the fault; orders and results stay
            rc, out = agent.run("journal", "resend", "c1", bad)
            self.assertEqual(rc, 0, out)
            self.assertIn("1 refused result(s)", out)
            agent.start()
            try:
                wait_for(lambda: answered(server) >= N, timeout=20, what="the resent result")
            finally:
                self.assertEqual(agent.stop(), 0, agent.log()[-3000:])
            self.assertIn("0 refused entries", self.journal(agent, "list", "refused"))
            self.assertTrue(all(o["results"] == 1 for o in server.state()["orders"]))
            self.assertEqual(server.violations(), [])

    def journal(self, agent, *args):
        rc, out = agent.run("journal", *args)
        self.assertEqual(rc, 0, out)
        return out

    def test_first_heartbeat_carries_last_connected(self):
        with SimServer(self.dir, connectors=("c1",), generate=3, generate_connector="c1") as server:
            agent = self.agent(server, "beat")
            agent.start()
            try:
                wait_for(lambda: len(server.heartbeats()) >= 1, timeout=20, what="a heartbeat")
                first = server.heartbeats()[0]
            finally:
                rc = agent.stop()
            self.assertEqual(rc, 0, agent.log()[-3000:])
            self.assertEqual(first["Status"], "CONNECTED")
            self.assertIsNotNone(first["LastConnected"], first)
            self.assertEqual(server.violations(), [])


if __name__ == "__main__":
    unittest.main(verbosity=2)

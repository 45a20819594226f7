# SPDX-License-Identifier: Apache-2.0
"""What the agent does with the answers to its results and heartbeats (issue 13): a 400
on a results PUT holds nothing else back and the refused body is never sent again
unchanged; the first heartbeat says when the agent last talked to the server."""
import os
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import SimServer  # noqa: E402
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

    def agent(self, server, name):
        a = Agent(self.dir, server, name=name, agent={"shutdown_deadline": "3s"},
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

# SPDX-License-Identifier: Apache-2.0
"""The main job end to end: orders flow from the simulated server through the real agent
binary and its testbackend plug-in, and every result arrives back exactly once."""
import collections
import os
import signal
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import SimServer, make_order  # noqa: E402
from agent_harness import Agent, wait_for  # noqa: E402


def answered(server):
    return [o for o in server.state()["orders"] if o["results"] > 0]


class FlowTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="ca-flow-")
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def assert_exactly_once(self, server, agent, total):
        state = server.state()
        self.assertEqual(state["violations"], [], "protocol violations")
        orders = state["orders"]
        self.assertEqual(len(orders), total)
        for o in orders:
            self.assertEqual(o["results"], 1, "order %s answered %d times" % (o["key"], o["results"]))
        applied = collections.Counter(agent.applied())
        dup = [k for k, n in applied.items() if n > 1]
        self.assertEqual(dup, [], "orders applied more than once")

    def test_orders_answered_exactly_once_across_pages(self):
        with SimServer(self.dir, connectors=("c1",), generate=250, generate_connector="c1",
                       page_size=40) as server:
            agent = Agent(self.dir, server)
            agent.start()
            try:
                wait_for(lambda: len(answered(server)) == 250, timeout=60, what="250 results")
            finally:
                self.assertEqual(agent.stop(), 0, agent.log())
            self.assert_exactly_once(server, agent, 250)
            self.assertEqual(len(agent.applied()), 250)
            results = server.results()
            self.assertTrue(all(r["ProvisioningState"] == "Executed" for r in results))
            self.assertTrue(all(r["ResourceIdentifier"].startswith("test:") for r in results))
            # Paging: the agent followed ContinuationToken, i.e. fetched more than one page.
            gets = [r for r in server.requests()
                    if r["method"] == "GET" and "ProvisioningData" in r["path"]]
            self.assertTrue(any("ContinuationToken" in (r.get("query") or "") for r in gets))

    def test_heartbeats_connected_then_disconnected(self):
        with SimServer(self.dir, connectors=("c1",)) as server:
            agent = Agent(self.dir, server)
            agent.start()
            wait_for(lambda: len(server.heartbeats()) >= 2, timeout=20,
                     what="two heartbeats")
            self.assertEqual(agent.stop(), 0)
            beats = server.heartbeats()
            self.assertEqual(beats[0]["Status"], "CONNECTED")
            self.assertEqual(beats[-1]["Status"], "DISCONNECTED")
            self.assertTrue(all(b["Status"] == "CONNECTED" for b in beats[:-1]))
            first = beats[0]
            self.assertEqual(first["Identifier"], "agent-test-01")
            self.assertEqual([c["Id"] for c in first["Connectors"]], ["c1"])
            self.assertEqual(first["Connectors"][0]["Status"], "CONNECTED")
            self.assertEqual(server.state()["violations"], [])

    def test_heartbeats_not_starved_by_work(self):
        with SimServer(self.dir, connectors=("c1",), generate=400, generate_connector="c1",
                       page_size=100) as server:
            state_file = os.path.join(self.dir, "applied")
            agent = Agent(self.dir, server, connectors={"c1": {
                "backend": "testbackend", "state_file": state_file, "delay": "25ms",
                "max_parallel": "2"}})
            agent.applied_file = state_file
            agent.start()
            try:
                wait_for(lambda: len(answered(server)) == 400, timeout=120, what="400 results")
            finally:
                self.assertEqual(agent.stop(), 0)
            beats = [r["at_ms"] for r in server.requests()
                     if r["method"] == "PUT" and "/api/Connectors/Agent/" in r["path"]]
            # About five seconds of work with a 1 s heartbeat: no gap near the three
            # intervals after which the server would call the agent dead.
            self.assertGreaterEqual(len(beats), 4)
            gaps = [b - a for a, b in zip(beats, beats[1:])]
            self.assertLess(max(gaps), 1600, gaps)

    def test_whole_pages_past_a_small_in_flight_bound(self):
        # The in-flight bound is checked before a poll: a page of 100 with a bound of 10
        # and one worker must still be taken whole, not refused to wait for the lease.
        with SimServer(self.dir, connectors=("c1",), generate=300, generate_connector="c1",
                       page_size=100, lease=60) as server:
            state_file = os.path.join(self.dir, "applied")
            agent = Agent(self.dir, server, connectors={"c1": {
                "backend": "testbackend", "state_file": state_file, "max_parallel": "1",
                "max_in_flight": "10", "poll_interval": "200ms"}})
            agent.applied_file = state_file
            agent.start()
            try:
                wait_for(lambda: len(answered(server)) == 300, timeout=40, what="300 results")
            finally:
                self.assertEqual(agent.stop(), 0)
            self.assertNotIn("cannot queue", agent.log())
            self.assert_exactly_once(server, agent, 300)

    def test_bad_orders_errored_good_ones_executed(self):
        orders = [make_order(1, "c1"), make_order(2, "c1"), make_order(3, "c1"),
                  make_order(4, "c1", resource_type="NoSuchMapping")]
        orders[1]["ChangeType"] = "Renamed"
        orders[2]["Arguments"] = {"test_outcome": "errored"}
        with SimServer(self.dir, connectors=("c1",), orders={"c1": orders}) as server:
            agent = Agent(self.dir, server)
            rc, out = agent.run("--once")
            self.assertEqual(rc, 1, out)  # --once: some orders errored
            self.assert_exactly_once(server, agent, 4)
            by_id = {r["Id"]: r for r in server.results()}
            self.assertEqual(by_id[orders[0]["Id"]]["ProvisioningState"], "Executed")
            self.assertEqual(by_id[orders[1]["Id"]]["ProvisioningState"], "Errored")
            self.assertIn("Renamed", by_id[orders[1]["Id"]]["Message"])
            self.assertEqual(by_id[orders[2]["Id"]]["ProvisioningState"], "Errored")
            self.assertEqual(by_id[orders[3]["Id"]]["ProvisioningState"], "Errored")
            self.assertIn("NoSuchMapping", by_id[orders[3]["Id"]]["Message"])
            self.assertEqual(agent.applied(), [orders[0]["Id"]])

    def test_once_succeeds_with_zero(self):
        with SimServer(self.dir, connectors=("c1",), generate=30, generate_connector="c1") as server:
            agent = Agent(self.dir, server)
            rc, out = agent.run("--once")
            self.assertEqual(rc, 0, out)
            self.assert_exactly_once(server, agent, 30)
            beats = server.heartbeats()
            self.assertEqual(beats[-1]["Status"], "DISCONNECTED")

    def test_redelivered_orders_answered_from_journal(self):
        with SimServer(self.dir, connectors=("c1",), generate=20, generate_connector="c1") as server:
            agent = Agent(self.dir, server)
            agent.start()
            try:
                wait_for(lambda: len(answered(server)) == 20, what="20 results")
                server.redeliver("c1")
                wait_for(lambda: server.state()["duplicates"] == 20, timeout=30,
                         what="stored results sent again")
            finally:
                self.assertEqual(agent.stop(), 0)
            self.assertEqual(len(agent.applied()), 20, "a re-delivered order ran again")
            self.assertEqual(server.state()["conflicting_duplicates"], 0)

    def test_results_survive_restart(self):
        with SimServer(self.dir, connectors=("c1",), generate=10, generate_connector="c1") as server:
            # The results endpoint is down for the first run: results wait in the journal.
            server.fault("results", "status", status=503, count=1000)
            agent = Agent(self.dir, server, agent={"shutdown_deadline": "2s"})
            agent.start()
            wait_for(lambda: len(agent.applied()) == 10, what="10 applications")
            self.assertEqual(agent.stop(), 0)
            self.assertEqual(len(answered(server)), 0)
            server.reset()
            agent.start()
            try:
                wait_for(lambda: len(answered(server)) == 10, what="results after restart")
            finally:
                self.assertEqual(agent.stop(), 0)
            self.assert_exactly_once(server, agent, 10)


if __name__ == "__main__":
    unittest.main(verbosity=2)

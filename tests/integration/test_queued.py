# SPDX-License-Identifier: Apache-2.0
"""Orders taken but not started are QUEUED, not EXECUTING: a crash leaves in doubt only
what was running or next in line, and an orderly stop keeps the rest journaled, to run
first, in the server's order, at the next start.

The server holds 600 orders: Added for users 1..200, then Modified for the same users,
then Deleted; each user's three orders are one assignment. The agent takes at most 200
at a time and applies one every 20 ms per worker, so when it is stopped after about 60
applications it holds about 140 Added orders it has not started, while the server still
has the Modified and Deleted ones of the same users to deliver."""
import collections
import json
import os
import signal
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import SimServer, make_order  # noqa: E402
from agent_harness import Agent, wait_for  # noqa: E402

USERS = 200
WORKERS = 2
# What a worker may hold submitted (dispatch.h): a slow target keeps it at its minimum,
# so this bound has room for the window growing a little on a loaded machine.
MAX_IN_DOUBT = WORKERS * 8


def orders():
    return [make_order(i, "c1", change) for change in ("Added", "Modified", "Deleted")
            for i in range(1, USERS + 1)]


class QueuedTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="ca-queued-")
        self.dir = self.tmp.name
        self.orders = orders()

    def tearDown(self):
        if not os.environ.get("KEEP"):
            self.tmp.cleanup()

    def agent(self, server):
        keys = {"backend": "testbackend", "state_file": os.path.join(self.dir, "applied"),
                "max_parallel": str(WORKERS), "max_in_flight": "200", "delay": "20ms"}
        agent = Agent(self.dir, server, connectors={"c1": keys})
        agent.applied_file = keys["state_file"]
        return agent

    def counts(self, agent):
        rc, out = agent.run("journal", "list", "--json", "all")
        self.assertEqual(rc, 0, out)
        return json.loads(out[out.index("{"):])["counts"]

    def run_to_the_end(self, server):
        agent = self.agent(server)
        agent.start()
        try:
            wait_for(lambda: len(server.results()) >= len(self.orders), timeout=90,
                     what="every order answered")
        finally:
            self.assertEqual(agent.stop(), 0, agent.log()[-3000:])
        return agent

    def assert_applied_once_in_order(self, agent, server):
        applied = agent.applied()
        counts = collections.Counter(applied)
        self.assertEqual(set(counts), {o["Id"] for o in self.orders})
        self.assertEqual([k for k, n in counts.items() if n > 1], [], "applied twice")
        by_user = collections.defaultdict(list)
        for key in applied:
            by_user[key.split("-")[1]].append(key.split("-")[2])
        wrong = {u: seq for u, seq in by_user.items() if seq != ["Added", "Modified", "Deleted"]}
        self.assertEqual(wrong, {}, "an assignment's orders ran out of the server's order")
        states = collections.Counter(r["ProvisioningState"] for r in server.results())
        self.assertEqual(states.get("Errored", 0), 0, server.results()[:3])

    def test_kill_with_a_backlog_leaves_only_the_window_in_doubt(self):
        with SimServer(self.dir, orders={"c1": self.orders}, lease=60) as server:
            agent = self.agent(server)
            agent.start()
            wait_for(lambda: len(agent.applied()) >= 60, timeout=30, what="60 applied")
            agent.kill()
            n = self.counts(agent)
            print("queued test: killed with %d executing, %d queued, %d applied"
                  % (n["executing"], n["queued"], len(set(agent.applied()))), file=sys.stderr)
            # Before QUEUED existed, every order taken was EXECUTING: ~140 in doubt here.
            self.assertLessEqual(n["executing"], MAX_IN_DOUBT, n)
            self.assertGreaterEqual(n["queued"], 100, n)
            agent = self.run_to_the_end(server)
            log = agent.log()
            self.assertIn("had not started: they run first", log)
            self.assert_applied_once_in_order(agent, server)
            self.assertEqual(self.counts(agent)["queued"], 0)

    def test_orderly_stop_keeps_what_did_not_start_and_runs_it_first(self):
        with SimServer(self.dir, orders={"c1": self.orders}, lease=60) as server:
            agent = self.agent(server)
            agent.start()
            wait_for(lambda: len(agent.applied()) >= 60, timeout=30, what="60 applied")
            agent.signal(signal.SIGTERM)
            self.assertEqual(agent.wait(30), 0, agent.log()[-3000:])
            self.assertIn("stay queued in the journal", agent.log())
            n = self.counts(agent)
            self.assertEqual(n["executing"], 0, n)  # an orderly stop leaves nothing in doubt
            self.assertGreaterEqual(n["queued"], 100, n)
            # The server has not seen an answer for them and will not re-deliver them for
            # a minute; it delivers their assignments' later orders first. The restarted
            # agent must still apply each assignment's orders in order (before, 32 of
            # these accounts ended up existing: a Deleted ran before its Added).
            agent = self.run_to_the_end(server)
            self.assert_applied_once_in_order(agent, server)
            self.assertEqual(self.counts(agent)["queued"], 0)


if __name__ == "__main__":
    unittest.main()

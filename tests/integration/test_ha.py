# SPDX-License-Identifier: Apache-2.0
"""Several agents serve one connector through one PostgreSQL journal (tests/pg/pg.sh on
loopback), fed by the simulated server, their target one file that every instance
appends to (the testbackend: one line per application, so that a second application of
an order shows).

One instance at a time holds the connector's role: it polls, executes and reports; the
others stand by, and their heartbeats name the one that polls. The tests take that
instance away in the ways an outage does, and check that another takes over and that, at
the end, at the target and at the server, every order was answered, none was applied
twice, and each assignment's orders were applied in the server's order:
  - SIGKILL of the polling instance mid-run (three instances, 3,000 orders);
  - SIGSTOP past its lease, then SIGCONT: the paused instance comes back with an outcome
    its successor already settled by probe; the outcome is refused, the instance says so
    and stops with exit code 6;
  - PostgreSQL stopped mid-run: nothing is applied while it is down, the serving
    instance says the journal fails, and the run finishes once it is back."""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from harness import SimServer, free_port, make_order  # noqa: E402
from agent_harness import Agent, wait_for  # noqa: E402
from pg_harness import PgCluster  # noqa: E402

PASSWORD = "ha-Pass-51e0"
CHANGES = ("Added", "Modified", "Deleted")
EXIT_ROLE_LOST = 6
# A page the instance that goes had fetched but not yet journaled reaches its successor
# only as the server re-delivers it, after the server's lease (5 s here). A server keeps
# an assignment's later orders back while an earlier one is out on a lease, as
# --assignment-order makes the simulated one do: without that, no agent could apply an
# order it never received before the later ones it is given.
SERVER_ORDER = ("--assignment-order",)


def get(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode()


def lifecycle_orders(count, first=0):
    """count assignments of three orders each (Added, Modified, Deleted), interleaved as
    a server sends them: every assignment's Added before any Modified, and so on."""
    return [make_order(i, "c1", change) for change in CHANGES
            for i in range(first, first + count)]


class HighAvailability(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="ca-ha-")
        self.dir = self.tmp.name
        self.pg = PgCluster(self.dir, PASSWORD)
        self.target = os.path.join(self.dir, "target")
        self.agents = []

    def tearDown(self):
        for a in self.agents:
            if a.proc and a.proc.poll() is None:
                a.proc.send_signal(signal.SIGCONT)
                a.kill()
        self.pg.stop()
        if os.environ.get("CA_KEEP_TMP"):
            subprocess.run(["cp", "-r", self.dir, os.environ["CA_KEEP_TMP"]])
        self.tmp.cleanup()

    def agent(self, server, name, lease="30s", connector=None, agent=None):
        keys = {"identifier": name,
                "journal": "postgresql",
                "journal_connection": self.pg.conninfo,
                "journal_password_file": self.pg.pwfile,
                "journal_lease": lease}
        keys.update(agent or {})
        conn = {"backend": "testbackend", "state_file": self.target, "poll_interval": "200ms",
                "max_parallel": "4"}
        conn.update(connector or {})
        a = Agent(self.dir, server, agent=keys, connectors={"c1": conn}, name=name)
        a.applied_file = self.target
        # Every instance on one journal needs the same seal key (agent.conf(5)): the
        # first one made it.
        if self.agents:
            key = os.path.join(self.agents[0].state_dir, "journal.key")
            wait_for(lambda: os.path.exists(key), what="the journal's seal key")
            shutil.copy2(key, os.path.join(a.state_dir, "journal.key"))
        self.agents.append(a)
        return a

    @staticmethod
    def pollers_said(server, identifier):
        """What the heartbeats of instance identifier said polls c1, in order."""
        return [c.get("Poller") for h in server.heartbeats() if h["Identifier"] == identifier
                for c in h["Connectors"] if c["Id"] == "c1"]

    @staticmethod
    def took_over(agent):
        return "serves the connector now" in agent.log()

    def check_the_end(self, server, orders, agent):
        """Every order answered; at the target each applied once and in its assignment's
        order; at the server no violation and no conflicting answer."""
        state = server.state()
        answered = [o for o in state["orders"] if o["results"]]
        self.assertEqual(len(answered), len(orders))
        applied = agent.applied()
        self.assertEqual(len(applied), len(set(applied)), "an order applied twice")
        self.assertEqual(sorted(applied), sorted(o["Id"] for o in orders))
        at = {key: n for n, key in enumerate(applied)}
        for o in orders:
            if o["ChangeType"] == "Added":
                continue
            before = o["Id"].rsplit("-", 1)[0] + "-" + CHANGES[CHANGES.index(o["ChangeType"]) - 1]
            self.assertLess(at[before], at[o["Id"]], "%s applied before %s" % (o["Id"], before))
        self.assertEqual(state["violations"], [])
        self.assertEqual(state["conflicting_duplicates"], 0)
        for a in self.agents:
            self.assertNotIn(PASSWORD, a.log())

    def test_one_polls_and_another_takes_over_when_it_is_killed(self):
        orders = lifecycle_orders(1000)
        with SimServer(self.dir, orders={"c1": orders}, page_size=50, lease=5,
                       extra_args=SERVER_ORDER) as server:
            first = self.agent(server, "ha-1", connector={"delay": "5ms"})
            first.start()
            wait_for(lambda: self.pollers_said(server, "ha-1")[-1:] == ["ha-1"], timeout=30,
                     what="ha-1 polling")
            status_port = free_port()
            others = [self.agent(server, "ha-2", connector={"delay": "5ms"},
                                 agent={"status_port": str(status_port)}),
                      self.agent(server, "ha-3", connector={"delay": "5ms"})]
            metrics = "http://127.0.0.1:%d/metrics" % status_port
            for a in others:
                a.start()
            for a in others:
                wait_for(lambda: "served by instance ha-1" in a.log(), timeout=30,
                         what="%s standing by" % a.name)
                wait_for(lambda: self.pollers_said(server, a.name)[-1:] == ["ha-1"],
                         timeout=30, what="%s's heartbeat naming ha-1" % a.name)
            wait_for(lambda: len(first.applied()) >= 1000, timeout=120,
                     what="a part of the run")
            self.assertIn('connector_agent_connector_serving{connector="c1"} 0', get(metrics))
            # The operator's view from a standby: doctor names the instance that polls.
            rc, out = others[1].run("doctor")
            self.assertIn("PostgreSQL journal reachable", out)
            self.assertIn("connector c1: served by instance ha-1", out)
            self.assertFalse(any(self.took_over(a) for a in others))
            self.assertLess(len(first.applied()), len(orders), "the run ended too soon")
            first.kill()
            killed_at = time.monotonic()
            wait_for(lambda: any(self.took_over(a) for a in others), timeout=30,
                     what="another instance taking over")
            # The lock goes with the killed session at once; the standby tries every 2 to
            # 4 s.
            self.assertLess(time.monotonic() - killed_at, 10)
            heir = [a for a in others if self.took_over(a)]
            self.assertEqual(len(heir), 1, "two instances took over")
            heir = heir[0]
            wait_for(lambda: all(o["results"] for o in server.state()["orders"]), timeout=120,
                     what="every order answered after the take-over")
            for a in others:
                wait_for(lambda: self.pollers_said(server, a.name)[-1:] == [heir.name],
                         timeout=30, what="%s's heartbeat naming %s" % (a.name, heir.name))
            self.assertIn('connector_agent_connector_serving{connector="c1"} %d'
                          % (heir is others[0]), get(metrics))
            for a in others:
                self.assertEqual(a.stop(), 0, a.log()[-2000:])
            self.check_the_end(server, orders, first)

    def test_paused_instance_is_refused_after_its_lease(self):
        # Order 0 is applied at once and answered 4 s later: the instance is paused in
        # between, with the order applied and its outcome not yet recorded.
        orders = lifecycle_orders(60)
        orders[0]["Arguments"] = {"test_outcome": "linger:4000"}
        first_key = orders[0]["Id"]
        with SimServer(self.dir, orders={"c1": orders}, page_size=50, lease=5,
                       extra_args=SERVER_ORDER) as server:
            first = self.agent(server, "ha-1", lease="2s", connector={"max_parallel": "1"})
            first.start()
            wait_for(lambda: self.pollers_said(server, "ha-1")[-1:] == ["ha-1"], timeout=30,
                     what="ha-1 polling")
            # A standby talks to the server only by its heartbeat: the first goes at once,
            # not an interval later (30 s here), and names the instance that polls.
            second = self.agent(server, "ha-2", lease="2s", agent={"heartbeat_interval": "30s"})
            second.start()
            wait_for(lambda: "served by instance ha-1" in second.log(), timeout=30,
                     what="ha-2 standing by")
            wait_for(lambda: self.pollers_said(server, "ha-2")[-1:] == ["ha-1"], timeout=10,
                     what="ha-2's first heartbeat")
            wait_for(lambda: first_key in first.applied(), timeout=30, what="order 0 applied")
            first.signal(signal.SIGSTOP)
            try:
                # Past the lease the server ends ha-1's session and its lock: ha-2 takes
                # over, probes order 0 (applied) and runs the rest.
                wait_for(lambda: self.took_over(second), timeout=30, what="ha-2 taking over")
                wait_for(lambda: all(o["results"] for o in server.state()["orders"]),
                         timeout=120, what="every order answered by ha-2")
            finally:
                first.signal(signal.SIGCONT)
            self.assertEqual(first.wait(30), EXIT_ROLE_LOST, first.log()[-3000:])
            log = first.log()
            self.assertIn("while this one was cut off from the journal", log)
            self.assertIn("stopping, so that nothing this instance still holds lands", log)
            self.assertIn("were running when the agent stopped", second.log())
            results = [r for r in server.results() if r["Id"] == first_key]
            self.assertTrue(results)
            self.assertEqual({r["ProvisioningState"] for r in results}, {"Executed"})
            # Restarted, as its supervisor would, ha-1 stands by.
            first.start()
            wait_for(lambda: "served by instance ha-2" in first.log(), timeout=30,
                     what="ha-1 standing by after its restart")
            self.assertEqual(first.stop(), 0)
            self.assertEqual(second.stop(), 0, second.log()[-2000:])
            self.check_the_end(server, orders, first)

    def test_postgresql_down_mid_run(self):
        orders = lifecycle_orders(500)
        with SimServer(self.dir, orders={"c1": orders}, page_size=50, lease=5,
                       extra_args=SERVER_ORDER) as server:
            agents = [self.agent(server, "ha-1", connector={"delay": "10ms"})]
            agents[0].start()
            wait_for(lambda: self.pollers_said(server, "ha-1")[-1:] == ["ha-1"], timeout=30,
                     what="ha-1 polling")
            agents.append(self.agent(server, "ha-2", connector={"delay": "10ms"}))
            agents[1].start()
            wait_for(lambda: "served by instance ha-1" in agents[1].log(), timeout=30,
                     what="ha-2 standing by")
            wait_for(lambda: len(agents[0].applied()) >= 300, timeout=60,
                     what="a part of the run")
            self.pg.pause()
            wait_for(lambda: "database unreachable" in agents[0].log(), timeout=30,
                     what="the journal failing noticed")
            time.sleep(1.5)  # orders inside the back-end when it went may end
            held = len(agents[0].applied())
            time.sleep(8)
            self.assertEqual(len(agents[0].applied()), held,
                             "orders ran while the journal could not record them")
            self.assertLess(held, len(orders), "the run was over before PostgreSQL stopped")
            self.pg.resume()
            # Either instance may take the role first once the server is back; an
            # instance that finds the other took it over stops (exit 6) and is restarted
            # as its supervisor would.
            deadline = time.monotonic() + 120
            while not all(o["results"] for o in server.state()["orders"]):
                self.assertLess(time.monotonic(), deadline, "the run did not finish")
                for a in agents:
                    if a.proc.poll() is not None:
                        self.assertEqual(a.proc.returncode, EXIT_ROLE_LOST, a.log()[-3000:])
                        a.wait(5)
                        a.start()
                time.sleep(0.2)
            for a in agents:
                self.assertIn(a.stop(), (0, EXIT_ROLE_LOST), a.log()[-2000:])
            self.check_the_end(server, orders, agents[0])


if __name__ == "__main__":
    unittest.main(verbosity=2)

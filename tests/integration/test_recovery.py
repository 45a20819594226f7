# SPDX-License-Identifier: Apache-2.0
"""Recovery of orders a crash left in doubt: the in_doubt gauge follows the probes, and an
order whose probe answers during a drain stays in doubt for the next start instead of
being answered Errored or forgotten."""
import collections
import os
import signal
import socket
import sqlite3
import sys
import tempfile
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from harness import SimServer, make_order  # noqa: E402
from agent_harness import Agent, wait_for  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gauge(port, name, connector="c1"):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
        text = r.read().decode()
    prefix = '%s{connector="%s"} ' % (name, connector)
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix):])
    raise AssertionError("no %s in /metrics" % name)


class RecoveryTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="ca-recovery-")
        self.dir = self.tmp.name
        self.applied = os.path.join(self.dir, "applied")
        self.trace = os.path.join(self.dir, "trace")
        self.port = free_port()

    def tearDown(self):
        if not os.environ.get("KEEP"):
            self.tmp.cleanup()

    @staticmethod
    def read(path):
        with open(path) as f:
            return f.read()

    def agent(self, server, **conn):
        keys = {"backend": "testbackend", "state_file": self.applied, "max_parallel": "1",
                "trace_file": self.trace}
        keys.update(conn)
        agent = Agent(self.dir, server, connectors={"c1": keys},
                      agent={"status_port": str(self.port), "shutdown_deadline": "10s"})
        agent.applied_file = self.applied
        return agent

    def crash_during(self, server, order_id):
        """Runs the agent until order_id is inside its back-end call, then SIGKILLs it."""
        agent = self.agent(server)
        agent.start()
        wait_for(lambda: os.path.exists(self.trace) and order_id in self.read(self.trace),
                 what="order started")
        time.sleep(0.3)
        agent.kill()
        rc, out = agent.run("journal", "list", "pending")
        self.assertIn(order_id, out, agent.log()[-3000:])

    def orders(self):
        orders = [make_order(1, "c1")]
        # Applied only after 1.5 s: a SIGKILL before that leaves it in doubt, not applied.
        orders[0]["Arguments"] = {"test_outcome": "hang:1500"}
        return orders

    def test_in_doubt_gauge_drops_when_the_probe_says_not_applied(self):
        orders = self.orders()
        with SimServer(self.dir, orders={"c1": orders}, lease=1) as server:
            self.crash_during(server, orders[0]["Id"])
            agent = self.agent(server)
            agent.start()
            try:
                wait_for(lambda: server.state()["orders"][0]["results"] >= 1, timeout=30,
                         what="the in-doubt order answered")
                wait_for(lambda: gauge(self.port, "connector_agent_orders_in_doubt") == 0,
                         timeout=5, what="in_doubt gauge back to 0")
            finally:
                self.assertEqual(agent.stop(), 0)
            self.assertIn("was not applied", agent.log())
            self.assertEqual(agent.applied(), [orders[0]["Id"]])
            self.assertEqual(server.results()[0]["ProvisioningState"], "Executed")

    def test_probe_answering_during_a_drain_leaves_the_order_in_doubt(self):
        orders = self.orders()
        with SimServer(self.dir, orders={"c1": orders}, lease=1) as server:
            self.crash_during(server, orders[0]["Id"])
            # The probe takes 1.5 s; the stop comes while it runs.
            agent = self.agent(server, probe_delay="1500ms")
            agent.start()
            wait_for(lambda: "asking the target" in agent.log(), what="probe under way")
            time.sleep(0.3)
            agent.signal(signal.SIGTERM)
            self.assertEqual(agent.wait(20), 0, agent.log()[-2000:])
            self.assertEqual([r for r in server.results() if r.get("Id") == orders[0]["Id"]],
                             [], "a not-applied probe during a drain must not be answered")
            rc, out = agent.run("journal", "list", "pending")
            self.assertIn(orders[0]["Id"], out, "the order must stay in doubt, journaled")
            # The next start settles it: probed, executed once, answered Executed.
            agent = self.agent(server)
            agent.start()
            try:
                wait_for(lambda: server.state()["orders"][0]["results"] >= 1, timeout=30,
                         what="the in-doubt order answered")
            finally:
                self.assertEqual(agent.stop(), 0)
            self.assertEqual(collections.Counter(agent.applied()), {orders[0]["Id"]: 1})
            self.assertEqual(server.results()[-1]["ProvisioningState"], "Executed")

    def test_exec_program_does_not_outlive_a_killed_agent(self):
        # The program records its pid, then takes 3 s before it "applies" the order. A
        # SIGKILL of the agent must end it too: otherwise it applies the order behind the
        # back of the restarted agent, whose probe has just answered "not applied".
        prog = os.path.join(self.dir, "slow.sh")
        pid_file = os.path.join(self.dir, "pid")
        done = os.path.join(self.dir, "done")
        with open(prog, "w") as f:
            f.write("#!/bin/sh\necho $$ > %s\ncat > /dev/null\nsleep 3\necho applied >> %s\n"
                    % (pid_file, done))
        os.chmod(prog, 0o755)
        with SimServer(self.dir, orders={"c1": [make_order(1, "c1")]}) as server:
            agent = Agent(self.dir, server, connectors={"c1": {
                "backend": "exec", "command": prog, "order_timeout": "20s"}})
            agent.start()
            wait_for(lambda: os.path.exists(pid_file) and self.read(pid_file).strip(),
                     what="program started")
            pid = int(self.read(pid_file))
            agent.kill()

            def gone():
                try:
                    with open("/proc/%d/stat" % pid) as f:
                        return f.read().split(") ")[1][0] == "Z"  # a zombie has ended
                except FileNotFoundError:
                    return True
            wait_for(gone, timeout=2, what="the program ended with the agent")
            time.sleep(3.5)
            self.assertFalse(os.path.exists(done), "the program applied its order after the "
                             "agent was killed")


if __name__ == "__main__":
    unittest.main()

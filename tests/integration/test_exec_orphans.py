# SPDX-License-Identifier: Apache-2.0
"""An exec program's own children do not outlive a killed agent into its next run.

PR_SET_PDEATHSIG ends the program the agent started, but not what that program started
in turn: a script that applies its order from a background child would still apply it
after a SIGKILL of the agent, while the restarted agent probes the order, hears "not
applied" and runs it a second time. The exec back-end records each program's process
group in the state directory and, when it starts, ends the groups an earlier run left.
These tests kill the agent in the middle of such an order, restart it at once, and check
at the target that the order was applied exactly once and that the old group is gone."""
import os
import shutil
import signal
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import SimServer, make_order  # noqa: E402
from agent_harness import Agent, wait_for  # noqa: E402

# How long the background child takes before it applies the order: longer than the
# restart takes, so that without the clean-up its late write lands after the new probe.
APPLY_DELAY_S = 3

# The program: its background child applies the order (one line with the order's Id in
# the target file) after APPLY_DELAY_S; the program itself only waits for it. Each run
# appends its child's pid to the pid file, before the child sleeps.
PROGRAM = """#!/bin/sh
input=$(cat)
id=$(printf '%%s' "$input" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["Id"])')
( %(trap)s sleep %(delay)d; echo "$id" >> %(target)s ) &
echo $! >> %(pids)s
wait
echo '{"ProvisioningState": "Executed"}'
"""

# The probe: applied when the target file names the order.
PROBE = """#!/usr/bin/python3
import json, sys
order = json.load(sys.stdin)
try:
    with open(%(target)r) as f:
        applied = order["Id"] in f.read().split()
except FileNotFoundError:
    applied = False
print(json.dumps({"Applied": applied}))
"""


def running(pid):
    """Whether pid is a live process (a zombie has ended)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return False


class ExecOrphansTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="ca-exec-orphans-")
        self.target = os.path.join(self.dir, "target")
        self.pids = os.path.join(self.dir, "pids")
        self.leftover = []

    def tearDown(self):
        for pid in self.leftover:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if not os.environ.get("KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o755)
        return path

    def child_pids(self):
        try:
            with open(self.pids) as f:
                return [int(l) for l in f if l.strip()]
        except FileNotFoundError:
            return []

    def applied(self):
        try:
            with open(self.target) as f:
                return f.read().split()
        except FileNotFoundError:
            return []

    def run_case(self, trap):
        prog = self.write("apply.sh", PROGRAM % {"trap": trap, "delay": APPLY_DELAY_S,
                                                 "target": self.target, "pids": self.pids})
        probe = self.write("probe.py", PROBE % {"target": self.target})
        order = make_order(1, "c1")
        with SimServer(self.dir, orders={"c1": [order]}, lease=1) as server:
            agent = Agent(self.dir, server, connectors={"c1": {
                "backend": "exec", "command": prog, "probe_command": probe,
                "order_timeout": "20s", "max_parallel": "1"}})
            agent.start()
            wait_for(lambda: self.child_pids(), what="the program's child started")
            old = self.child_pids()[0]
            self.leftover.append(old)
            group = os.getpgid(old)  # the program's group, which its child shares
            agent.kill()
            self.assertTrue(running(old), "the test needs a child that outlives the agent")

            agent.start()
            try:
                # The old group is ended before the order is probed: by the time the
                # order's second run has started its own child, the first one is gone.
                wait_for(lambda: len(self.child_pids()) >= 2, timeout=20,
                         what="the order run again after the restart")
                self.assertFalse(running(old), "the earlier run's child still runs")
                wait_for(lambda: server.state()["orders"][0]["results"] >= 1,
                         timeout=APPLY_DELAY_S + 20, what="the order answered")
            finally:
                self.assertEqual(agent.stop(), 0, agent.log()[-3000:])
            log = agent.log()
            self.assertIn("exec: %s process group %d " % (
                "killed" if trap else "ended", group), log)
            self.assertEqual(server.results()[-1]["ProvisioningState"], "Executed")
        # Past the old child's moment to apply: it must not have.
        time.sleep(0.5)
        self.assertEqual(self.applied(), [order["Id"]], log[-3000:])
        self.assertEqual(os.listdir(os.path.join(agent.state_dir, "exec-children")), [])

    def test_child_that_honours_sigterm(self):
        self.run_case("")

    def test_child_that_ignores_sigterm_is_killed(self):
        self.run_case("trap '' TERM;")


if __name__ == "__main__":
    unittest.main()

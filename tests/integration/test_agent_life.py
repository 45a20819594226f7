# SPDX-License-Identifier: Apache-2.0
"""Process life: readiness and status through sd_notify, the watchdog, graceful and
forced shutdown, reload, and the command line."""
import collections
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import SimServer, make_order  # noqa: E402
from agent_harness import Agent, AGENT_BIN, wait_for  # noqa: E402


class NotifyListener:
    """A NOTIFY_SOCKET for the agent: collects every datagram it sends."""

    def __init__(self, workdir):
        self.path = os.path.join(workdir, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.messages = []
        self.running = True
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        while self.running:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            self.messages.append(data.decode())

    def has(self, prefix):
        return any(line.startswith(prefix) for m in self.messages for line in m.split("\n"))

    def index(self, prefix, start=0):
        """Index of the first datagram from START on with a line starting with PREFIX."""
        for i, m in enumerate(self.messages[start:], start):
            if any(line.startswith(prefix) for line in m.split("\n")):
                return i
        return None

    def close(self):
        self.running = False
        self.thread.join(2)
        self.sock.close()


class LifeTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="ca-life-")
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def test_notify_ready_status_watchdog_stopping(self):
        listener = NotifyListener(self.dir)
        try:
            with SimServer(self.dir, connectors=("c1",), generate=5, generate_connector="c1") as server:
                agent = Agent(self.dir, server)
                agent.start(env={"NOTIFY_SOCKET": listener.path, "WATCHDOG_USEC": "1000000"})
                wait_for(lambda: listener.has("READY=1"), what="READY=1")
                wait_for(lambda: listener.has("WATCHDOG=1"), what="WATCHDOG=1")
                wait_for(lambda: any("5 executed" in m for m in listener.messages),
                         what="STATUS with the orders done")
                # A reload says RELOADING=1, then READY=1 again: both must come after the
                # signal, READY=1 after RELOADING=1 (the first READY=1 proves nothing).
                mark = len(listener.messages)
                agent.signal(signal.SIGHUP)
                wait_for(lambda: listener.index("RELOADING=1", mark) is not None,
                         what="RELOADING=1 after SIGHUP")
                reloading = listener.index("RELOADING=1", mark)
                self.assertRegex(listener.messages[reloading], r"(^|\n)MONOTONIC_USEC=\d+")
                wait_for(lambda: listener.index("READY=1", reloading + 1) is not None,
                         what="READY=1 after RELOADING=1")
                self.assertEqual(agent.stop(), 0)
                self.assertTrue(listener.has("STOPPING=1"))
                self.assertTrue(listener.has("STATUS=connected"))
        finally:
            listener.close()

    def test_not_ready_until_server_answers(self):
        listener = NotifyListener(self.dir)
        try:
            with SimServer(self.dir, connectors=("c1",)) as server:
                server.fault("token", "status", status=503, count=1000)
                agent = Agent(self.dir, server)
                agent.start(env={"NOTIFY_SOCKET": listener.path})
                time.sleep(2)
                self.assertFalse(listener.has("READY=1"))
                server.reset()
                wait_for(lambda: listener.has("READY=1"), timeout=30, what="READY after recovery")
                agent.stop()
        finally:
            listener.close()

    def test_graceful_shutdown_under_load_loses_nothing(self):
        with SimServer(self.dir, connectors=("c1",), generate=300, generate_connector="c1",
                       page_size=50, lease=3) as server:
            state_file = os.path.join(self.dir, "applied.txt")
            conns = {"c1": {"backend": "testbackend", "state_file": state_file, "delay": "20ms",
                            "max_parallel": "4", "poll_interval": "1s"}}
            agent = Agent(self.dir, server, connectors=conns)
            agent.applied_file = state_file
            for _ in range(3):
                agent.start()
                wait_for(lambda: len(agent.applied()) > 0, what="work under way")
                time.sleep(0.5)
                self.assertEqual(agent.stop(timeout=30), 0, agent.log()[-2000:])
            agent.start()
            try:
                wait_for(lambda: all(o["results"] >= 1 for o in server.state()["orders"]),
                         timeout=120, what="every order answered")
            finally:
                self.assertEqual(agent.stop(), 0)
            state = server.state()
            self.assertEqual(state["violations"], [])
            self.assertEqual(len(state["orders"]), 300)
            self.assertTrue(all(o["results"] == 1 for o in state["orders"]))
            applied = collections.Counter(agent.applied())
            self.assertEqual(len(applied), 300)
            self.assertEqual([k for k, n in applied.items() if n > 1], [])

    def test_second_signal_exits_at_once(self):
        with SimServer(self.dir, connectors=("c1",), generate=50, generate_connector="c1") as server:
            server.fault("results", "status", status=503, count=100000)
            agent = Agent(self.dir, server, agent={"shutdown_deadline": "60s"})
            agent.start()
            wait_for(lambda: len(agent.applied()) == 50, what="orders applied")
            agent.signal(signal.SIGTERM)
            time.sleep(0.5)
            self.assertIsNone(agent.proc.poll(), "first SIGTERM must wait for results")
            t0 = time.monotonic()
            agent.signal(signal.SIGTERM)
            self.assertEqual(agent.wait(10), 0)
            self.assertLess(time.monotonic() - t0, 5)

    def test_reload_keeps_old_config_when_new_is_bad(self):
        with SimServer(self.dir, connectors=("c1",)) as server:
            agent = Agent(self.dir, server, connectors={"c1": {
                "backend": "testbackend", "poll_interval": "500ms",
                "state_file": os.path.join(self.dir, "applied")}})
            agent.applied_file = os.path.join(self.dir, "applied")
            agent.start()
            try:
                wait_for(lambda: server.heartbeats(), what="first heartbeat")
                # A bad file (and a bad mapping only the plug-in can judge) is refused
                # whole; the agent goes on with what it had.
                with open(agent.config_path, "a") as f:
                    f.write("\n[agent]\nno_such_key = 1\n")
                agent.signal(signal.SIGHUP)
                wait_for(lambda: "reload refused" in agent.log(), what="reload refused")
                n = len(server.heartbeats())
                wait_for(lambda: len(server.heartbeats()) > n, what="still running")
                # A good one: a new resource-type mapping applies at once...
                server.add_orders("c1", [make_order(1, "c1", resource_type="Group")])
                wait_for(lambda: server.results(), what="the Group order answered")
                self.assertEqual(server.results()[0]["ProvisioningState"], "Errored")
                agent.resource_types["Group"] = {"connector": "c1"}
                agent.write_config()
                agent.signal(signal.SIGHUP)
                wait_for(lambda: "everything applies now" in agent.log(), what="reload accepted")
                server.add_orders("c1", [make_order(2, "c1", resource_type="Group")])
                wait_for(lambda: len(server.results()) == 2, what="the second Group order")
                self.assertEqual(server.results()[1]["ProvisioningState"], "Executed")
                # ...a new server URL needs a restart, and says so.
                agent.server_keys["url"] = "http://127.0.0.1:1"
                agent.agent_keys["log_level"] = "notice"
                agent.write_config()
                agent.signal(signal.SIGHUP)
                wait_for(lambda: "apply at the next restart: [server]" in agent.log(),
                         what="restart needed for [server]")
                server.add_orders("c1", [make_order(3, "c1")])
                wait_for(lambda: len(server.results()) == 3, what="still talking to the server")
            finally:
                self.assertEqual(agent.stop(), 0)
            self.assertEqual(server.violations(), [])


class CommandLineTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="ca-cli-")
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def run_agent(self, *args, env=None):
        p = subprocess.run([AGENT_BIN, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=30, env=env)
        return p.returncode, p.stdout.decode()

    def test_version_and_help(self):
        rc, out = self.run_agent("--version")
        self.assertEqual(rc, 0)
        self.assertRegex(out, r"connector-agent \d+\.\d+\.\d+")
        rc, out = self.run_agent("--help")
        self.assertEqual(rc, 0)
        for word in ("--once", "--check-config", "--dry-run", "Exit codes"):
            self.assertIn(word, out)
        rc, _ = self.run_agent("--no-such-option")
        self.assertEqual(rc, 2)

    def test_check_config_reports_file_line_key(self):
        with SimServer(self.dir, connectors=("c1",)) as server:
            agent = Agent(self.dir, server)
            rc, out = agent.run("--check-config")
            self.assertEqual(rc, 0, out)
            self.assertIn("is valid", out)
            with open(agent.config_path) as f:
                lines = f.read().split("\n")
            lines.insert(2, "heartbeat_interval = soon")
            with open(agent.config_path, "w") as f:
                f.write("\n".join(lines))
            rc, out = agent.run("--check-config")
            self.assertEqual(rc, 3, out)
            self.assertIn("%s:3:" % agent.config_path, out)
            self.assertIn("heartbeat_interval", out)
            # A bad configuration never starts a daemon.
            rc, out = agent.run()
            self.assertEqual(rc, 3)

    def test_check_config_validates_backend_settings(self):
        with SimServer(self.dir, connectors=("c1",)) as server:
            agent = Agent(self.dir, server, connectors={"c1": {"backend": "testbackend"}})
            rc, out = agent.run("--check-config")
            self.assertEqual(rc, 3, out)
            self.assertIn("state_file", out)
            agent = Agent(self.dir, server, name="nobackend",
                          connectors={"c1": {"backend": "nosuchbackend"}})
            rc, out = agent.run("--check-config")
            self.assertEqual(rc, 3, out)
            self.assertIn("nosuchbackend", out)

    def test_env_overrides_file(self):
        with SimServer(self.dir, connectors=("c1",), generate=3, generate_connector="c1") as server:
            agent = Agent(self.dir, server, server_keys={"url": "http://127.0.0.1:1"})
            rc, out = agent.run("--once", env={"CONNECTOR_AGENT_SERVER_URL": server.url})
            self.assertEqual(rc, 0, out)
            self.assertEqual(len(agent.applied()), 3)

    def test_refuses_root_unless_allowed(self):
        if os.geteuid() != 0:
            self.skipTest("runs as root only")
        with SimServer(self.dir, connectors=("c1",)) as server:
            agent = Agent(self.dir, server, agent={"allow_root": "no"})
            rc, out = agent.run("--once")
            self.assertEqual(rc, 2)
            self.assertIn("refusing to run as root", out)


if __name__ == "__main__":
    unittest.main(verbosity=2)

# SPDX-License-Identifier: Apache-2.0
"""The container's way of running the agent, without a container engine: the built binary
as a non-root numeric uid with no passwd entry (10001, the image's user), no
configuration file at all, configuration from CONNECTOR_AGENT_* variables only (the
secret too), logs on stderr. Against the simulated server with the test back-end it must
process every order, deliver every result, and stop on SIGTERM within the deadline with
exit status 0. tests/deploy/container_test.sh checks the real image (minutes; not run by
default).

Needs root (to drop to uid 10001 with setpriv, from util-linux).
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from harness import SimServer  # noqa: E402  (tests/integration/harness.py)

AGENT = os.environ.get("CA_AGENT_BIN")
BACKENDS = os.environ.get("CA_BACKEND_BUILD_DIR")
UID = GID = 10001          # the image's user (packaging/docker/Dockerfile)
ORDERS = 20
CONNECTOR = "c1"
# The ResourceType.Identifier of the orders ca-simserver --generate makes (its default,
# as harness.make_order's).
RESOURCE_TYPE = "User"
SHUTDOWN_DEADLINE_S = 10
FAREWELL_S = 5             # AGENT_FAREWELL_TIMEOUT_MS in agent/core/agent.c
PROCESS_TIMEOUT_S = 90     # for all orders to be applied and their results delivered
# Variables a sanitizer build needs to pass on; nothing else of the test's environment.
PASS_THROUGH = ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "PATH")


class ContainerEnvironment(unittest.TestCase):
    def setUp(self):
        self.assertIsNotNone(AGENT, "CA_AGENT_BIN is not set (run through ctest)")
        self.assertIsNotNone(BACKENDS, "CA_BACKEND_BUILD_DIR is not set (run through ctest)")
        self.assertEqual(os.geteuid(), 0, "needs root to run the agent as uid %d" % UID)
        self.tmp = tempfile.TemporaryDirectory(prefix="ca-container-env-")
        self.addCleanup(self.tmp.cleanup)
        os.chmod(self.tmp.name, 0o755)
        # The agent's uid may not be able to read the build tree (a clone in a private
        # directory such as /root): it gets its own copy of the binary and the plug-ins,
        # as the image has them, readable by everyone.
        self.agent = os.path.join(self.tmp.name, "connector-agent")
        shutil.copy2(AGENT, self.agent)
        self.backends = os.path.join(self.tmp.name, "backends")
        shutil.copytree(BACKENDS, self.backends)
        for root, dirs, files in os.walk(self.backends):
            os.chmod(root, 0o755)
            for f in files:
                os.chmod(os.path.join(root, f), 0o755)
        os.chmod(self.agent, 0o755)
        # What the image's volume is: a directory owned by the agent's uid, and nothing
        # else writable for it.
        self.volume = os.path.join(self.tmp.name, "volume")
        os.mkdir(self.volume, 0o700)
        os.chown(self.volume, UID, GID)
        self.state_file = os.path.join(self.volume, "applied.txt")
        self.server = SimServer(os.path.join(self.tmp.name, "server"), connectors=(CONNECTOR,),
                                generate=ORDERS, generate_connector=CONNECTOR)
        self.server.start()
        self.addCleanup(self.server.stop)

    def environment(self):
        with open(self.server.secret_file) as f:
            secret = f.read().strip()
        rt = RESOURCE_TYPE
        env = {k: os.environ[k] for k in PASS_THROUGH if k in os.environ}
        env.update({
            "HOME": "/nonexistent",
            "CONNECTOR_AGENT_SERVER_URL": self.server.url,
            "CONNECTOR_AGENT_SERVER_CLIENT_ID": self.server.client_id,
            "CONNECTOR_AGENT_SERVER_CLIENT_SECRET": secret,
            "CONNECTOR_AGENT_AGENT_STATE_DIR": self.volume,
            "CONNECTOR_AGENT_AGENT_BACKEND_DIR": self.backends,
            "CONNECTOR_AGENT_AGENT_IDENTIFIER": "container-env-test",
            "CONNECTOR_AGENT_AGENT_SHUTDOWN_DEADLINE": "%ds" % SHUTDOWN_DEADLINE_S,
            "CONNECTOR_AGENT_AGENT_HEARTBEAT_INTERVAL": "2s",
            "CONNECTOR_AGENT_CONNECTORS": CONNECTOR,
            "CONNECTOR_AGENT_CONNECTOR_C1_BACKEND": "testbackend",
            "CONNECTOR_AGENT_CONNECTOR_C1_STATE_FILE": self.state_file,
            "CONNECTOR_AGENT_CONNECTOR_C1_POLL_INTERVAL": "1s",
            "CONNECTOR_AGENT_RESOURCE_TYPES": rt,
            "CONNECTOR_AGENT_AGENT_STATUS_PORT": str(self.status_port),
        })
        rt_prefix = "CONNECTOR_AGENT_RESOURCE_TYPE_" + "".join(
            c.upper() if c.isascii() and c.isalnum() else "_" for c in rt) + "_"
        env[rt_prefix + "CONNECTOR"] = CONNECTOR
        return env

    def as_agent_user(self, args):
        return ["setpriv", "--reuid=%d" % UID, "--regid=%d" % GID, "--clear-groups", "--",
                self.agent] + args

    def run_agent(self, args, env, timeout=60):
        return subprocess.run(self.as_agent_user(args), env=env, cwd=self.volume,
                              capture_output=True, text=True, timeout=timeout)

    def applied(self):
        try:
            with open(self.state_file) as f:
                return [l for l in f.read().splitlines() if l.strip()]
        except FileNotFoundError:
            return []

    def test_env_only_non_root_processes_orders_and_stops_on_sigterm(self):
        from harness import free_port
        self.status_port = free_port()
        env = self.environment()

        check = self.run_agent(["--check-config"], env)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        self.assertIn("configuration (environment) is valid: 1 connector(s), 1 resource type(s)",
                      check.stdout, "the agent did not take its configuration from the "
                      "environment alone")

        stderr_path = os.path.join(self.tmp.name, "agent.stderr")
        with open(stderr_path, "w") as err:
            agent = subprocess.Popen(self.as_agent_user(["--foreground"]), env=env,
                                     cwd=self.volume, stdout=subprocess.DEVNULL, stderr=err)
        self.addCleanup(lambda: agent.poll() is None and agent.kill())

        deadline = time.monotonic() + PROCESS_TIMEOUT_S
        while len(self.applied()) < ORDERS and agent.poll() is None \
                and time.monotonic() < deadline:
            time.sleep(0.2)
        with open(stderr_path) as f:
            log = f.read()
        self.assertIsNone(agent.poll(), "the agent exited (%s):\n%s" % (agent.returncode, log))
        self.assertEqual(len(self.applied()), ORDERS,
                         "%d of %d orders applied in %d s; agent log:\n%s"
                         % (len(self.applied()), ORDERS, PROCESS_TIMEOUT_S, log[-6000:]))
        # Every order once (the test back-end writes "<key> <change type>").
        keys = [l.split()[0] for l in self.applied()]
        self.assertEqual(len(set(keys)), ORDERS, "an order was applied twice")
        # The process really is uid 10001.
        with open("/proc/%d/status" % agent.pid) as f:
            uids = [l.split()[1:] for l in f if l.startswith("Uid:")][0]
        self.assertEqual(uids, [str(UID)] * 4)
        # The image's HEALTHCHECK: the agent's own probe of its status endpoint.
        for args in (["healthcheck"], ["healthcheck", "--ready"]):
            probe = self.run_agent(args, env)
            self.assertEqual(probe.returncode, 0, probe.stdout + probe.stderr)
            self.assertIn(" 200 ", probe.stdout)

        # Give the reporter a moment to deliver the last results, then stop.
        time.sleep(3)
        start = time.monotonic()
        agent.send_signal(signal.SIGTERM)
        try:
            code = agent.wait(timeout=SHUTDOWN_DEADLINE_S + FAREWELL_S + 10)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait()
            self.fail("no exit within %d s of SIGTERM" % (SHUTDOWN_DEADLINE_S + FAREWELL_S + 10))
        took = time.monotonic() - start
        with open(stderr_path) as f:
            log = f.read()
        self.assertEqual(code, 0, "exit status %d after SIGTERM; log:\n%s" % (code, log[-6000:]))
        self.assertLess(took, SHUTDOWN_DEADLINE_S + FAREWELL_S,
                        "SIGTERM took %.1f s (deadline %d s + %d s)"
                        % (took, SHUTDOWN_DEADLINE_S, FAREWELL_S))
        # Nothing answers any more: the health check says so.
        self.assertEqual(self.run_agent(["healthcheck"], env).returncode, 1)
        # Logs on stderr (no journald in a container), and no secret in them.
        self.assertTrue(log.strip(), "nothing logged on stderr")
        self.assertNotIn(env["CONNECTOR_AGENT_SERVER_CLIENT_SECRET"], log)

        # The journal, in the volume: every order Executed and every result delivered.
        listing = self.run_agent(["journal", "list", "all"], env)
        self.assertEqual(listing.returncode, 0, listing.stdout + listing.stderr)
        self.assertIn("%d all entries" % ORDERS, listing.stdout, listing.stdout)
        rows = [l for l in listing.stdout.splitlines() if l.startswith(CONNECTOR + " ")]
        self.assertEqual(len(rows), ORDERS, listing.stdout)
        for row in rows:
            self.assertEqual(row.split()[3], "Executed", row)
        unreported = self.run_agent(["journal", "list", "unreported"], env)
        self.assertEqual(unreported.returncode, 0, unreported.stdout + unreported.stderr)
        self.assertIn("0 unreported entries", unreported.stdout, unreported.stdout)
        # The server's side: every result received, and nothing the protocol forbids.
        state = self.server.state()
        self.assertEqual(state["received"], ORDERS, state)
        self.assertEqual(self.server.violations(), [])
        beats = self.server.heartbeats()
        self.assertTrue(beats, "no heartbeat")
        self.assertEqual(beats[-1].get("Status"), "DISCONNECTED",
                         "no DISCONNECTED heartbeat on SIGTERM: %r" % beats[-1])
        # Everything the agent wrote is the agent's uid's, in the volume only.
        for name in os.listdir(self.volume):
            self.assertEqual(os.stat(os.path.join(self.volume, name)).st_uid, UID, name)


    def test_arbitrary_uid_with_group_0_or_a_hint(self):
        """docker/podman run --user UID:0 on a named volume made from the image's
        /var/lib/connector-agent (same owner, group and mode): it works; with another
        group the agent refuses with a message that says what to do."""
        with open(os.path.join(HERE, "..", "..", "packaging", "docker", "Dockerfile")) as f:
            dockerfile = f.read()
        m = re.search(r"install -d -o agent -g (\d+) -m (0[0-7]{3}) /var/lib/connector-agent",
                      dockerfile)
        self.assertIsNotNone(m, "the Dockerfile no longer creates the state directory")
        gid, mode = int(m.group(1)), int(m.group(2), 8)
        self.assertEqual(gid, 0, "the state directory is not group 0's")
        os.chown(self.volume, UID, gid)
        os.chmod(self.volume, mode)
        from harness import free_port
        self.status_port = free_port()
        env = self.environment()
        other = 12345

        def as_user(uid, gid_, args):
            return subprocess.run(["setpriv", "--reuid=%d" % uid, "--regid=%d" % gid_,
                                   "--clear-groups", "--", self.agent] + args, env=env,
                                  cwd=self.tmp.name, capture_output=True, text=True,
                                  timeout=60)

        ok = as_user(other, 0, ["journal", "list", "all"])
        self.assertEqual(ok.returncode, 0, ok.stdout + ok.stderr)
        self.assertIn("0 all entries", ok.stdout)
        for name in os.listdir(self.volume):
            self.assertEqual(os.stat(os.path.join(self.volume, name)).st_uid, other, name)

        refused = as_user(other + 1, other + 1, ["journal", "list", "all"])
        self.assertNotEqual(refused.returncode, 0, refused.stdout)
        words = refused.stdout + refused.stderr
        self.assertIn("is not writable by uid %d gid %d" % (other + 1, other + 1), words)
        self.assertIn("--user UID:0", words)


if __name__ == "__main__":
    unittest.main(verbosity=2)

# SPDX-License-Identifier: Apache-2.0
"""The command line as an operator meets it: every usage error exits 2 and names the
word it could not use (before any configuration is read), `journal list --json` with
counts, and `config show` printing the effective configuration without its secrets."""
import json
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import SimServer, make_order  # noqa: E402
from agent_harness import Agent, wait_for  # noqa: E402
import subprocess  # noqa: E402
from agent_harness import AGENT_BIN  # noqa: E402


def run(*args, env=None):
    p = subprocess.run([AGENT_BIN, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       stdin=subprocess.DEVNULL, timeout=30, env=env)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


class CommandLineTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="ca-cli-")
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def test_usage_errors_exit_2_and_name_the_word(self):
        # The configuration does not exist: a usage error must win over it (exit 2, not 3).
        cfg = ["--config", os.path.join(self.dir, "missing.conf")]
        cases = [
            (["--no-such-option"], "--no-such-option"),
            (["-x"], "-x"),
            (["--config"], "--config"),
            (["--log-level", "loud"], "loud"),
            (cfg + ["frobnicate"], "frobnicate"),
            (cfg + ["journal"], "journal"),
            (cfg + ["journal", "lst"], "lst"),
            (cfg + ["journal", "list", "--yaml"], "--yaml"),
            (cfg + ["journal", "list", "pending", "all"], "all"),
            (cfg + ["journal", "resolve", "c1", "k"], "resolve"),
            (cfg + ["journal", "resolve", "c1", "k", "maybe", "msg"], "maybe"),
            (cfg + ["healthcheck", "--now"], "--now"),
            (cfg + ["doctor", "please"], "please"),
            (cfg + ["config"], "config"),
            (cfg + ["config", "dump"], "dump"),
            (cfg + ["config", "show", "extra"], "extra"),
        ]
        for args, word in cases:
            rc, out, err = run(*args)
            self.assertEqual(rc, 2, (args, out, err))
            self.assertIn(word, err, args)
            self.assertIn("--help", err, args)
            self.assertEqual(out, "", args)

    def test_journal_list_json_with_counts(self):
        with SimServer(self.dir, generate=3) as server:
            agent = Agent(self.dir, server)
            rc, out = agent.run("--once")
            self.assertEqual(rc, 0, out)
            for args in (["journal", "list", "--json"], ["journal", "list", "all", "--json"],
                         ["journal", "list", "--json", "all"]):
                rc, out, err = run("--config", agent.config_path, *args)
                self.assertEqual(rc, 0, err)
                doc = json.loads(out)
                self.assertEqual(doc["selection"], "all")
                self.assertEqual(doc["counts"], {"total": 3, "executing": 0, "finished": 0,
                                                 "reported": 3, "queued": 0, "held": 0,
                                                 "refused": 0})
                self.assertEqual(sorted(e["key"] for e in doc["entries"]),
                                 ["gen-000001", "gen-000002", "gen-000003"])
                for e in doc["entries"]:
                    self.assertEqual(e["connector"], "c1")
                    self.assertEqual(e["state"], "REPORTED")
                    self.assertEqual(e["result"], "Executed")
                    self.assertRegex(e["reported"], r"^\d{4}-\d\d-\d\dT")
            rc, out, err = run("--config", agent.config_path, "journal", "list", "pending",
                               "--json")
            self.assertEqual(rc, 0, err)
            doc = json.loads(out)
            self.assertEqual(doc["entries"], [])
            self.assertEqual(doc["counts"]["total"], 0)
            rc, out, err = run("--config", agent.config_path, "journal", "list")
            self.assertEqual(rc, 0, err)
            self.assertIn("3 all entries: 0 executing, 0 finished, 3 reported, 0 queued", out)

    def test_config_show_hides_secrets_and_names_sources(self):
        with SimServer(self.dir, generate=1) as server:
            agent = Agent(self.dir, server, agent={"heartbeat_interval": "90s"})
            with open(server.secret_file) as f:
                secret = f.read().strip()
            self.assertTrue(secret)
            env = dict(os.environ, CONNECTOR_AGENT_AGENT_RESULTS_BATCH="42",
                       CONNECTOR_AGENT_CONNECTOR_C1_EXTRA_PASSWORD="hunter2-env")
            rc, out, err = run("--config", agent.config_path, "config", "show", env=env)
            self.assertEqual(rc, 0, err)
            self.assertNotIn(secret, out)
            self.assertNotIn(secret, err)
            self.assertNotIn("hunter2-env", out)
            lines = out.splitlines()
            self.assertIn("[agent]", lines)
            self.assertIn("[server]", lines)
            self.assertIn("[connector c1]", lines)
            self.assertIn("[resource-type User]", lines)
            self.assertIn("client_secret = (secret from file %s)" % server.secret_file, lines)
            self.assertIn("heartbeat_interval = 90s", lines)  # from the file
            self.assertIn("max_body = 16M", lines)  # a default
            self.assertIn("url = %s" % server.url, lines)
            self.assertIn("results_batch = 42  # from the environment, "
                          "CONNECTOR_AGENT_AGENT_RESULTS_BATCH", lines)
            self.assertIn("state_file = %s" % agent.applied_file, lines)  # a back-end setting
            self.assertTrue(any(l.startswith("extra_password = (secret from the environment)")
                                for l in lines), out)
            # The secret from the environment: named by its variable, never shown.
            env = dict(os.environ, CONNECTOR_AGENT_SERVER_CLIENT_SECRET="s3cr3t-from-env")
            agent.server_keys.pop("client_secret_file")
            agent.write_config()
            rc, out, err = run("--config", agent.config_path, "config", "show", env=env)
            self.assertEqual(rc, 0, err)
            self.assertNotIn("s3cr3t-from-env", out)
            self.assertIn("client_secret = (secret from environment "
                          "CONNECTOR_AGENT_SERVER_CLIENT_SECRET)  # from the environment, "
                          "CONNECTOR_AGENT_SERVER_CLIENT_SECRET", out.splitlines())


class SummaryTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="ca-summary-")
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def test_summary_at_the_end_of_once_and_at_shutdown(self):
        orders = [make_order(i, "c1") for i in range(1, 6)]
        orders[4]["Arguments"] = {"test_outcome": "errored"}
        with SimServer(self.dir, orders={"c1": orders}) as server:
            agent = Agent(self.dir, server, agent={"log_level": "notice"})
            rc, out = agent.run("--once")
            self.assertEqual(rc, 1, out)  # one order errored
            self.assertIn("summary: 4 orders executed, 1 errored, 5 results delivered; "
                          "still pending: 0 orders, 0 results", out)
            self.assertEqual(out.count("summary:"), 1, out)
        # The daemon: the summary when it stops, counting this run only.
        with SimServer(self.dir, generate=3) as server:
            agent = Agent(self.dir, server, agent={"log_level": "notice"}, name="daemon")
            agent.start()
            try:
                wait_for(lambda: len(server.results()) == 3, what="3 results")
            finally:
                self.assertEqual(agent.stop(), 0)
            log = agent.log()
            self.assertIn("summary: 3 orders executed, 0 errored, 3 results delivered; "
                          "still pending: 0 orders, 0 results", log)
            self.assertEqual(log.count("summary:"), 1, log)


if __name__ == "__main__":
    unittest.main(verbosity=2)

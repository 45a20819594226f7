# SPDX-License-Identifier: Apache-2.0
"""Secrets stay secret: a full run's logs, the results and heartbeats the server received,
and --check-config output hold none of the configured secrets; the process writes no core
file."""
import json
import os
import signal
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import SimServer, make_order  # noqa: E402
from agent_harness import Agent, wait_for  # noqa: E402

SECRET = "S3cr3t-Zebra-7f31c9a2"


class SecretsTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="ca-secrets-")
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def test_no_secret_anywhere(self):
        server = SimServer(self.dir, generate=20)
        server.secret = SECRET
        orders = [make_order(100 + i, "c1") for i in range(3)]
        orders[0]["ChangeType"] = "Bogus"
        orders[1]["Arguments"] = {"test_outcome": "errored"}
        server.orders = {"c1": orders}
        with server:
            agent = Agent(self.dir, server)
            rc, out = agent.run("--check-config")
            self.assertEqual(rc, 0, out)
            agent.start()
            try:
                wait_for(lambda: all(o["results"] for o in server.state()["orders"])
                         and len(server.state()["orders"]) == 23, what="all answered")
                # A revoked token makes the agent fetch another one: the secret travels again.
                server.fault("any", "expire_token")
                server.generate("c1", 2)
                wait_for(lambda: all(o["results"] for o in server.state()["orders"])
                         and len(server.state()["orders"]) == 25, what="all answered again")
                with open("/proc/%d/limits" % agent.proc.pid) as f:
                    core = [l for l in f if l.startswith("Max core file size")][0]
                self.assertEqual(core.split()[4:6], ["0", "0"], core)
            finally:
                self.assertEqual(agent.stop(), 0)
            # A wrong secret: the error must not quote it either.
            wrong = os.path.join(self.dir, "wrong")
            with open(wrong, "w") as f:
                f.write(SECRET + "-wrong\n")
            os.chmod(wrong, 0o600)
            bad = Agent(self.dir, server, name="bad", server_keys={"client_secret_file": wrong})
            bad.start()
            wait_for(lambda: "refused the client credentials" in bad.log(), what="refusal")
            bad.stop()
            # A secret file others can read is refused, and not quoted.
            os.chmod(wrong, 0o644)
            rc, refusal = bad.run("--check-config")
            self.assertEqual(rc, 3)
            self.assertIn(wrong, refusal)
            seen = {
                "agent log": agent.log() + out,
                "bad agent log": bad.log() + refusal,
                "results": json.dumps(server.results()),
                "heartbeats": json.dumps(server.heartbeats()),
            }
            for where, text in seen.items():
                self.assertNotIn(SECRET, text, "the client secret leaked into the " + where)
            self.assertIn("Bogus", seen["results"])


if __name__ == "__main__":
    unittest.main(verbosity=2)

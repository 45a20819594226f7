# SPDX-License-Identifier: Apache-2.0
"""A password in an order never reaches the disk in the clear: after a run in which the
agent is killed several times while orders are in flight (so the journal holds them, in
doubt, for the next start to settle), the journal file, its WAL, the agent's log and the
results the server received hold none of the orders' passwords; the journal key is a
0600 file next to the journal."""
import json
import os
import random
import signal
import sqlite3
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import SimServer, make_order  # noqa: E402
from agent_harness import Agent, wait_for  # noqa: E402

ORDERS = 40
KILLS = 6


def password(i):
    return "Pw-Zebra-%05d-q7" % i


class JournalSecretsTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="ca-journal-secrets-")
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def disk_texts(self, agent):
        out = {}
        for name in ("journal.db", "journal.db-wal"):
            path = os.path.join(agent.state_dir, name)
            if os.path.exists(path):
                with open(path, "rb") as f:
                    out[name] = f.read()
        return out

    def assert_clean(self, agent, where):
        for name, data in self.disk_texts(agent).items():
            self.assertFalse(b"Pw-Zebra-" in data, "a password is in %s (%s)" % (name, where))

    def test_no_password_on_disk_through_crashes(self):
        orders = []
        for i in range(ORDERS):
            o = make_order(200 + i, "c1")
            o["Changes"]["password"] = password(i)
            orders.append(o)
        server = SimServer(self.dir, orders={"c1": orders})
        random.seed(14)
        with server:
            agent = Agent(self.dir, server, connectors={
                "c1": {"backend": "testbackend", "delay": "150ms",
                       "state_file": os.path.join(self.dir, "applied.txt")}})
            in_doubt_seen = 0
            for _ in range(KILLS):
                agent.start()
                time.sleep(random.uniform(0.4, 1.2))
                agent.kill()
                self.assert_clean(agent, "after a kill")
                db = sqlite3.connect(os.path.join(agent.state_dir, "journal.db"))
                rows = db.execute("SELECT order_json FROM entries WHERE state = 1").fetchall()
                db.close()
                in_doubt_seen += len(rows)
                for (text,) in rows:
                    # The order is there, its Changes sealed.
                    self.assertIn('"$sealed":"v1:', text)
            self.assertGreater(in_doubt_seen, 0, "no kill left an order in the journal")
            beats = len(server.heartbeats())
            agent.start()
            wait_for(lambda: all(o["results"] for o in server.state()["orders"]),
                     timeout=120, what="every order answered")
            # Up and talking (its signal handlers set) before it is asked to stop.
            wait_for(lambda: len(server.heartbeats()) > beats, what="a heartbeat")
            self.assertEqual(agent.stop(), 0)
            self.assert_clean(agent, "at the end")
            key = os.path.join(agent.state_dir, "journal.key")
            self.assertEqual(os.stat(key).st_mode & 0o777, 0o600)
            # Finished orders keep no order text at all.
            db = sqlite3.connect(os.path.join(agent.state_dir, "journal.db"))
            left = db.execute("SELECT count(*) FROM entries WHERE order_json IS NOT NULL "
                              "AND state <> 1").fetchone()[0]
            db.close()
            self.assertEqual(left, 0)
            seen = {"agent log": agent.log(), "results": json.dumps(server.results())}
            for where, text in seen.items():
                self.assertNotIn("Pw-Zebra-", text, "a password leaked into the " + where)


if __name__ == "__main__":
    unittest.main(verbosity=2)

# SPDX-License-Identifier: Apache-2.0
"""--dry-run fetches orders and shows what each back-end would do, without touching the
target, recording anything, or reporting results."""
import os
import sqlite3
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import SimServer  # noqa: E402
from agent_harness import Agent  # noqa: E402


class DryRunTest(unittest.TestCase):
    def test_dry_run_touches_nothing(self):
        with tempfile.TemporaryDirectory(prefix="ca-dry-") as d:
            db = os.path.join(d, "accounts.db")
            con = sqlite3.connect(db)
            con.execute("CREATE TABLE accounts (uid TEXT PRIMARY KEY, given_name TEXT, surname TEXT)")
            con.execute("CREATE TABLE memberships (uid TEXT, group_dn TEXT, PRIMARY KEY (uid, group_dn))")
            con.commit()
            con.close()
            with SimServer(d, connectors=("c1",), generate=6, lease=1) as server:
                agent = Agent(d, server,
                              connectors={"c1": {"backend": "sql", "driver": "sqlite", "database": db}},
                              resource_types={"User": {"connector": "c1", "table": "accounts",
                                                       "key_column": "uid", "key_change": "uid",
                                                       "columns": "givenName:given_name,sn:surname",
                                                       "membership_table": "memberships",
                                                       "membership_key_column": "uid",
                                                       "membership_value_column": "group_dn",
                                                       "ignore_unmapped": "yes"}})
                rc, out = agent.run("--dry-run")
                self.assertEqual(rc, 0, out)
                self.assertIn("INSERT INTO", out)
                self.assertIn("user00001", out)
                self.assertEqual(server.results(), [])
                self.assertEqual(server.heartbeats(), [])
                con = sqlite3.connect(db)
                self.assertEqual(con.execute("SELECT count(*) FROM accounts").fetchone()[0], 0)
                con.close()
                # Nothing was recorded: once the server's lease on the orders the dry run
                # fetched runs out, a real run executes every one of them.
                time.sleep(1.5)
                rc, out = agent.run("--once")
                self.assertEqual(rc, 0, out)
                con = sqlite3.connect(db)
                self.assertGreater(con.execute("SELECT count(*) FROM accounts").fetchone()[0], 0)
                con.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)

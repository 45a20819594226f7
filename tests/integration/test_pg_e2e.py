# SPDX-License-Identifier: Apache-2.0
"""The agent provisioning a real PostgreSQL 15 (on loopback, started by tests/pg/pg.sh)
through the sql back-end, fed by the simulated server: rows and membership links as the
database shows them, idempotent re-delivery, and PostgreSQL stopped mid-run (orders
wait, the connector is DISCONNECTED, then everything completes exactly once)."""
import os
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import SimServer  # noqa: E402
from agent_harness import Agent, wait_for  # noqa: E402
from pg_harness import PgCluster  # noqa: E402

PASSWORD = "pg-Pass-4d1e"


class PgEndToEnd(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="ca-pg-e2e-")
        self.dir = self.tmp.name
        self.pg = PgCluster(self.dir, PASSWORD)
        self.pwfile = self.pg.pwfile
        self.sql("CREATE TABLE accounts (uid text PRIMARY KEY, given_name text, surname text,"
                 " cn text, mail text, title text);"
                 "CREATE TABLE memberships (uid text NOT NULL, group_dn text NOT NULL,"
                 " PRIMARY KEY (uid, group_dn));")

    def tearDown(self):
        self.pg.stop()
        self.tmp.cleanup()

    def sql(self, text):
        return self.pg.sql(text)

    def agent(self, server):
        conn = {"backend": "sql", "driver": "postgresql",
                "connection": self.pg.conninfo,
                "password_file": self.pwfile, "poll_interval": "300ms", "order_timeout": "5s"}
        rt = {"connector": "db", "table": "accounts", "key_column": "uid", "key_change": "uid",
              "columns": "givenName:given_name,sn:surname,cn:cn,mail:mail,title:title",
              "membership_table": "memberships", "membership_key_column": "uid",
              "membership_value_column": "group_dn"}
        return Agent(self.dir, server, connectors={"db": conn}, resource_types={"User": rt})

    def test_orders_into_postgresql(self):
        with SimServer(self.dir, connectors=("db",), generate=60, generate_connector="db") as server:
            agent = self.agent(server)
            rc, out = agent.run("--once")
            self.assertEqual(rc, 0, out)
            states = {o["result"]["ProvisioningState"] for o in server.state()["orders"]}
            self.assertEqual(states, {"Executed"})
            added = [o for o in server.state()["orders"] if o["change_type"] == "Added"]
            deleted = [o for o in server.state()["orders"] if o["change_type"] == "Deleted"]
            rows = int(self.sql("SELECT count(*) FROM accounts"))
            self.assertEqual(rows, len(added) - len(deleted))
            self.assertGreater(int(self.sql("SELECT count(*) FROM memberships")), 0)
            modified = self.sql("SELECT count(*) FROM accounts WHERE title = 'Senior Engineer'")
            self.assertGreater(int(modified), 0)
            # Re-delivered orders are answered from the journal, the database is untouched.
            before = self.sql("SELECT md5(string_agg(a::text, ',' ORDER BY uid)) FROM accounts a")
            server.redeliver("db")
            rc, out = agent.run("--once")
            self.assertEqual(rc, 0, out)
            self.assertEqual(server.state()["duplicates"], 60)
            self.assertEqual(server.state()["conflicting_duplicates"], 0)
            after = self.sql("SELECT md5(string_agg(a::text, ',' ORDER BY uid)) FROM accounts a")
            self.assertEqual(before, after)
            self.assertNotIn(PASSWORD, agent.log())

    def test_database_down_then_back(self):
        with SimServer(self.dir, connectors=("db",)) as server:
            agent = self.agent(server)
            agent.start()
            try:
                wait_for(lambda: server.heartbeats(), what="first heartbeat")
                self.pg.pause()
                server.generate("db", 10)
                wait_for(lambda: any(c["Status"] == "DISCONNECTED"
                                     for h in server.heartbeats() for c in h["Connectors"]),
                         timeout=30, what="connector DISCONNECTED")
                time.sleep(1)
                self.assertEqual(server.results(), [])
                self.pg.resume()
                wait_for(lambda: len(server.state()["orders"]) == 10 and
                         all(o["results"] == 1 for o in server.state()["orders"]),
                         timeout=90, what="every order after recovery")
            finally:
                self.assertEqual(agent.stop(), 0)
            self.assertEqual(server.state()["violations"], [])
            self.assertTrue(all(o["result"]["ProvisioningState"] == "Executed"
                                for o in server.state()["orders"]))


if __name__ == "__main__":
    unittest.main(verbosity=2)

# SPDX-License-Identifier: Apache-2.0
"""The real agent with its journal in a real PostgreSQL 15 (on loopback, tests/pg/pg.sh),
fed by the simulated server: a whole run recorded in the database and nothing on disk,
the operator's journal commands against it, a guardrail's held orders released by the
operator while the agent runs, a newer schema refused with exit 4, the
journal's table locked by another session past lock_timeout mid-run, and PostgreSQL
stopped mid-run for several seconds: the agent stops taking orders, says the
journal fails (DISCONNECTED heartbeats, /readyz 503, the metric), resumes by itself, and
in the end every order is answered, none applied twice, none out of order."""
import os
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from harness import SimServer, free_port, make_order  # noqa: E402
from agent_harness import Agent, wait_for  # noqa: E402
from pg_harness import PSQL, PgCluster  # noqa: E402

PASSWORD = "jr-Pass-8c2f"
DOWN_SECONDS = 8


def all_answered(server, n):
    orders = server.state()["orders"]
    return len(orders) == n and all(o["results"] for o in orders)


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (urllib.error.URLError, ConnectionError):
        return 0, ""


class JournalOnPostgres(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="ca-journal-pg-")
        self.dir = self.tmp.name
        self.pg = PgCluster(self.dir, PASSWORD)
        self.pwfile = self.pg.pwfile
        self.applied_file = os.path.join(self.dir, "applied")

    def tearDown(self):
        self.pg.stop()
        if os.environ.get("CA_KEEP_TMP"):
            subprocess.run(["cp", "-r", self.dir, os.environ["CA_KEEP_TMP"]])
        self.tmp.cleanup()

    def sql(self, text):
        return self.pg.sql(text)

    def agent(self, server, agent=None, connector=None):
        keys = {"journal": "postgresql",
                "journal_connection": self.pg.conninfo,
                "journal_password_file": self.pwfile}
        keys.update(agent or {})
        conn = {"backend": "testbackend", "state_file": self.applied_file,
                "poll_interval": "200ms"}
        conn.update(connector or {})
        a = Agent(self.dir, server, agent=keys, connectors={"c1": conn})
        a.applied_file = self.applied_file
        return a

    def test_run_recorded_in_postgresql(self):
        with SimServer(self.dir, generate=120, page_size=40) as server:
            agent = self.agent(server)
            rc, out = agent.run("--once")
            self.assertEqual(rc, 0, out)
            self.assertTrue(all_answered(server, 120))
            applied = agent.applied()
            self.assertEqual(sorted(applied), sorted(set(applied)))
            self.assertEqual(len(applied), 120)
            # The journal is the database's: no file in the state directory.
            self.assertFalse(os.path.exists(os.path.join(agent.state_dir, "journal.db")))
            self.assertEqual(self.sql("SELECT count(*) FROM ca_journal"), "120")
            self.assertEqual(self.sql("SELECT count(*) FROM ca_journal WHERE state = 3"), "120")
            # Re-delivered orders are answered from the shared journal, never run again.
            server.redeliver("c1")
            rc, out = agent.run("--once")
            self.assertEqual(rc, 0, out)
            self.assertEqual(len(agent.applied()), 120)
            self.assertEqual(server.state()["conflicting_duplicates"], 0)
            rc, out = agent.run("journal", "list", "all")
            self.assertEqual(rc, 0, out)
            self.assertIn("120 all entries: 0 executing, 0 finished, 120 reported", out)
            self.assertNotIn(PASSWORD, agent.log())

    def test_operator_commands_against_postgresql(self):
        orders = [make_order(1, "c1"), make_order(2, "c1")]
        orders[1]["Arguments"] = {"test_outcome": "hang:30000"}
        with SimServer(self.dir, orders={"c1": orders}) as server:
            agent = self.agent(server)
            agent.start()
            wait_for(lambda: server.state()["orders"][0]["results"], what="first order answered")
            time.sleep(0.5)
            agent.kill()  # the second order is running: it is left in doubt
            rc, out = agent.run("journal", "list", "pending")
            self.assertEqual(rc, 0, out)
            self.assertIn(orders[1]["Id"], out)
            self.assertNotIn(orders[0]["Id"], out)
            rc, out = agent.run("journal", "list", "--json", "pending")
            self.assertEqual(rc, 0, out)
            self.assertIn('"executing": 1', out)
            rc, out = agent.run("journal", "resolve", "c1", orders[1]["Id"], "errored",
                                "checked by hand: account left disabled")
            self.assertEqual(rc, 0, out)
            self.assertEqual(self.sql("SELECT state FROM ca_journal WHERE key = '%s'"
                                      % orders[1]["Id"]), "2")
            rc, out = agent.run("journal", "resolve", "c1", "no-such-order", "executed", "x")
            self.assertNotEqual(rc, 0)
            agent.start()
            try:
                wait_for(lambda: all_answered(server, 2), what="resolved result delivered")
            finally:
                agent.stop()
            r = [r for r in server.results() if r.get("Id") == orders[1]["Id"]][0]
            self.assertEqual(r["ProvisioningState"], "Errored")
            self.assertIn("checked by hand", r["Message"])
            self.assertEqual(agent.applied(), [orders[0]["Id"]])

    def test_guardrail_hold_and_release_on_postgresql(self):
        # Held orders in the database (schema version 2 takes state 5); the operator's
        # release from another process is seen by the running agent, which has no
        # data_version on PostgreSQL and notices it by the held count.
        orders = [make_order(i, "c1") for i in range(6)]
        with SimServer(self.dir, orders={"c1": orders}) as server:
            agent = self.agent(server, connector={"max_added": "2/1h"})
            agent.start()
            try:
                wait_for(lambda: len([o for o in server.state()["orders"] if o["results"]])
                         == 2, timeout=30, what="the two allowed orders answered")
                wait_for(lambda: self.sql("SELECT count(*) FROM ca_journal WHERE state = 5")
                         == "4", timeout=30, what="four orders held in PostgreSQL")
                self.assertEqual(self.sql("SELECT version FROM ca_journal_schema"), "5")
                rc, out = agent.run("journal", "list", "held")
                self.assertEqual(rc, 0, out)
                self.assertIn("4 held entries", out)
                time.sleep(1)
                self.assertEqual(len(agent.applied()), 2)
                rc, out = agent.run("journal", "release", "c1", "--all")
                self.assertEqual(rc, 0, out)
                self.assertIn("4 held order(s) released", out)
                wait_for(lambda: all_answered(server, 6), timeout=30,
                         what="the released orders answered")
            finally:
                self.assertEqual(agent.stop(), 0)
            applied = agent.applied()
            self.assertEqual(sorted(applied), sorted(set(applied)))
            self.assertEqual(len(applied), 6)
            self.assertEqual(self.sql("SELECT count(*) FROM ca_journal WHERE state = 5"), "0")
            self.assertNotIn(PASSWORD, agent.log())

    def test_newer_schema_and_unreachable_refused(self):
        with SimServer(self.dir, generate=3) as server:
            agent = self.agent(server)
            rc, out = agent.run("--once")
            self.assertEqual(rc, 0, out)
            self.sql("UPDATE ca_journal_schema SET version = 99")
            rc, out = agent.run("--once")
            self.assertEqual(rc, 4, out)
            self.assertIn("newer connector-agent", out)
            self.sql("UPDATE ca_journal_schema SET version = 1")
            # A journal nobody answers for: the agent does not start without it.
            agent = self.agent(server, agent={
                "journal_connection": "host=127.0.0.1 port=%d dbname=postgres user=ca_test "
                                      "sslmode=disable" % free_port()})
            rc, out = agent.run("--once")
            self.assertNotEqual(rc, 0, out)
            self.assertIn("cannot connect", out)
            self.assertEqual(len(self.agent(server).applied()), 3)

    def test_table_locked_mid_run(self):
        # Another session holds the journal's table past lock_timeout: a statement fails
        # inside the batch (not at its COMMIT, where SQLite's full disk fails), the batch
        # is lost, and the agent must acknowledge it and go on once the lock is gone.
        n = 150
        with SimServer(self.dir, generate=n, page_size=25) as server:
            agent = self.agent(server, connector={"delay": "20ms", "max_parallel": "4"})
            agent.start()
            try:
                wait_for(lambda: len(agent.applied()) >= 30, timeout=60, what="a part of the run")
                locker = subprocess.Popen(
                    [PSQL, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p",
                     str(self.pg.port), "-U", "ca_test", "-d", "postgres", "-c",
                     "BEGIN; LOCK TABLE ca_journal IN ACCESS EXCLUSIVE MODE; "
                     "SELECT pg_sleep(7); COMMIT;"],
                    env=dict(os.environ, PGPASSWORD=PASSWORD, PGSSLMODE="disable"),
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                try:
                    wait_for(lambda: "locked by another process" in agent.log(), timeout=30,
                             what="the lock noticed")
                    self.assertEqual(locker.wait(timeout=60), 0)
                finally:
                    if locker.poll() is None:
                        locker.kill()
                        locker.wait()
                wait_for(lambda: all_answered(server, n), timeout=120,
                         what="every order once the lock is gone")
            finally:
                rc = agent.stop()
            self.assertEqual(rc, 0, agent.log()[-3000:])
            applied = agent.applied()
            self.assertEqual(len(applied), len(set(applied)), "an order applied twice")
            self.assertEqual(len(applied), n)
            self.assertEqual(server.state()["violations"], [])

    def test_postgresql_down_mid_run(self):
        status_port = free_port()
        n = 300
        with SimServer(self.dir, generate=n, page_size=25) as server:
            agent = self.agent(server, agent={"status_port": str(status_port)},
                               connector={"delay": "20ms", "max_parallel": "4"})
            base = "http://127.0.0.1:%d" % status_port
            agent.start()
            try:
                wait_for(lambda: len(agent.applied()) >= 40, timeout=60, what="a part of the run")
                self.assertEqual(get(base + "/readyz")[0], 200)
                self.pg.pause()
                wait_for(lambda: "database unreachable" in agent.log(), timeout=30,
                         what="the journal failing noticed")
                wait_for(lambda: any(c["Status"] == "DISCONNECTED"
                                     for h in server.heartbeats() for c in h["Connectors"]),
                         timeout=30, what="connector DISCONNECTED")
                code, text = get(base + "/readyz")
                self.assertEqual(code, 503, text)
                self.assertIn("journal", text)
                code, text = get(base + "/metrics")
                self.assertIn("connector_agent_journal_writable 0", text)
                # Orders in a back-end when it went away may end; then nothing starts.
                time.sleep(1.5)
                held = len(agent.applied())
                seen = len(server.heartbeats())
                time.sleep(DOWN_SECONDS)
                self.assertEqual(len(agent.applied()), held,
                                 "orders ran while the journal could not record them")
                while_down = [c["Status"] for h in server.heartbeats()[seen:]
                              for c in h["Connectors"]]
                self.assertGreaterEqual(len(while_down), 2, "too few heartbeats while down")
                self.assertEqual(set(while_down), {"DISCONNECTED"})
                self.assertLess(held, n, "the run was over before PostgreSQL stopped")
                self.pg.resume()
                wait_for(lambda: all_answered(server, n), timeout=180,
                         what="every order once PostgreSQL is back")
                wait_for(lambda: get(base + "/readyz")[0] == 200, timeout=30,
                         what="ready again")
            finally:
                rc = agent.stop()
            self.assertEqual(rc, 0, agent.log()[-3000:])
            self.assertIn("taking orders again", agent.log())
            applied = agent.applied()
            self.assertEqual(len(applied), len(set(applied)), "an order applied twice")
            self.assertEqual(len(applied), n)
            self.assertEqual(server.state()["violations"], [])
            self.assertEqual(server.state()["conflicting_duplicates"], 0)
            self.assertEqual(self.sql("SELECT count(*) FROM ca_journal"), str(n))
            self.assertEqual(self.sql("SELECT count(*) FROM ca_journal WHERE state IN (1, 4)"),
                             "0")
            self.assertNotIn(PASSWORD, agent.log())


if __name__ == "__main__":
    unittest.main(verbosity=2)

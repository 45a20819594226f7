# SPDX-License-Identifier: Apache-2.0
"""The journal seen from outside: a corrupt or newer file is refused with exit 4 and a way
out, operators list and resolve what it holds, back-pressure pauses polling instead of
growing memory, reported entries are pruned after the retention, and a full disk stops
the intake without executing anything it cannot record."""
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import SimServer, make_order  # noqa: E402
from agent_harness import Agent, wait_for  # noqa: E402


def all_answered(server, n):
    orders = server.state()["orders"]
    return len(orders) == n and all(o["results"] for o in orders)


class JournalTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="ca-journal-")
        self.dir = self.tmp.name

    def tearDown(self):
        if os.environ.get("CA_KEEP_TMP"):
            subprocess.run(["cp", "-r", self.dir, os.environ["CA_KEEP_TMP"]])
        self.tmp.cleanup()

    def journal_path(self, agent):
        return os.path.join(agent.state_dir, "journal.db")

    def test_corrupt_journal_refused_with_a_way_out(self):
        with SimServer(self.dir, generate=3) as server:
            agent = Agent(self.dir, server)
            with open(self.journal_path(agent), "wb") as f:
                f.write(b"this is not a database, " * 400)
            rc, out = agent.run("--once")
            self.assertEqual(rc, 4, out)
            self.assertIn(self.journal_path(agent), out)
            self.assertIn("move", out.lower())
            self.assertEqual(agent.applied(), [])
            os.rename(self.journal_path(agent), self.journal_path(agent) + ".damaged")
            rc, out = agent.run("--once")
            self.assertEqual(rc, 0, out)
            self.assertEqual(len(agent.applied()), 3)

    def test_newer_schema_refused(self):
        with SimServer(self.dir, generate=3) as server:
            agent = Agent(self.dir, server)
            rc, out = agent.run("--once")
            self.assertEqual(rc, 0, out)
            con = sqlite3.connect(self.journal_path(agent))
            con.execute("PRAGMA user_version = 99")
            con.commit()
            con.close()
            rc, out = agent.run("--once")
            self.assertEqual(rc, 4, out)
            self.assertIn("newer", out)

    def test_operator_lists_and_resolves_in_doubt_orders(self):
        orders = [make_order(1, "c1"), make_order(2, "c1")]
        orders[1]["Arguments"] = {"test_outcome": "hang:30000"}
        with SimServer(self.dir, orders={"c1": orders}) as server:
            agent = Agent(self.dir, server)
            agent.start()
            wait_for(lambda: server.state()["orders"][0]["results"], what="first order answered")
            time.sleep(0.5)
            agent.kill()  # the second order is running: it is left in doubt
            rc, out = agent.run("journal", "list", "pending")
            self.assertEqual(rc, 0, out)
            self.assertIn(orders[1]["Id"], out)
            self.assertNotIn(orders[0]["Id"], out)
            rc, out = agent.run("journal", "resolve", "c1", orders[1]["Id"], "errored",
                                "checked by hand: account left disabled")
            self.assertEqual(rc, 0, out)
            rc, out = agent.run("journal", "list", "unreported")
            self.assertIn(orders[1]["Id"], out)
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

    def test_back_pressure_pauses_polling(self):
        with SimServer(self.dir, generate=60, page_size=10) as server:
            server.fault("results", "status", status=503, count=100000)
            agent = Agent(self.dir, server, agent={"max_pending_results": "5",
                                                   "shutdown_deadline": "2s"},
                          connectors={"c1": {"backend": "testbackend", "poll_interval": "200ms",
                                             "max_in_flight": "5",
                                             "state_file": os.path.join(self.dir, "applied")}})
            agent.applied_file = os.path.join(self.dir, "applied")
            agent.start()
            try:
                # A page is taken whole, so the bounds (5 in flight, 5 unreported) can be
                # passed by at most one page of 10: the agent holds 20 at most, then stops.
                wait_for(lambda: len(agent.applied()) >= 10, what="a page applied")
                time.sleep(2)
                held = len(agent.applied())
                gets = len([r for r in server.requests() if "ProvisioningData" in r["path"]])
                time.sleep(3)
                self.assertLessEqual(held, 20)
                self.assertEqual(len(agent.applied()), held, "the agent kept taking orders")
                self.assertEqual(len([r for r in server.requests()
                                      if "ProvisioningData" in r["path"]]), gets,
                                 "the agent kept polling")
                self.assertIn("not polling", agent.log())
                server.reset()
                wait_for(lambda: all_answered(server, 60), timeout=60, what="everything once the server takes results")
            finally:
                self.assertEqual(agent.stop(), 0)
            self.assertEqual(sorted(agent.applied()), sorted(set(agent.applied())))
            self.assertEqual(len(agent.applied()), 60)

    def test_reported_entries_pruned_after_retention(self):
        with SimServer(self.dir, generate=4) as server:
            agent = Agent(self.dir, server, agent={"journal_retention": "1s"})
            rc, out = agent.run("--once")
            self.assertEqual(rc, 0, out)
            rc, out = agent.run("journal", "list", "all")
            self.assertIn("gen-000001", out)
            time.sleep(2.2)
            rc, out = agent.run("--once")
            self.assertEqual(rc, 0, out)
            self.assertIn("older than the retention deleted", out)
            rc, out = agent.run("journal", "list", "all")
            self.assertNotIn("gen-000001", out)

    def test_full_disk_stops_intake_and_recovers(self):
        if os.geteuid() != 0:
            self.fail("this test mounts a small tmpfs: run it as root (tests/run.sh does)")
        mnt = os.path.join(self.dir, "small")
        os.makedirs(mnt)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", mnt], check=True)
        try:
            with SimServer(self.dir, generate=400, page_size=50) as server:
                state_dir = os.path.join(mnt, "state")
                os.makedirs(state_dir)
                agent = Agent(self.dir, server, agent={"state_dir": state_dir},
                              connectors={"c1": {"backend": "testbackend", "poll_interval": "200ms",
                                                 "state_file": os.path.join(self.dir, "applied")}})
                agent.applied_file = os.path.join(self.dir, "applied")
                filler = os.path.join(mnt, "filler")
                agent.start()
                try:
                    wait_for(lambda: os.path.exists(os.path.join(state_dir, "journal.db")),
                             what="journal created")
                    # Fill the disk: the journal cannot grow any more.
                    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
                    try:
                        while True:
                            os.write(fd, b"\0" * 65536)
                    except OSError:
                        pass  # full
                    finally:
                        os.close(fd)
                    wait_for(lambda: "disk full" in agent.log(), timeout=60, what="disk full noticed")
                    wait_for(lambda: any(c["Status"] == "DISCONNECTED"
                                         for h in server.heartbeats() for c in h["Connectors"]),
                             what="connector DISCONNECTED")
                    # While the disk stays full the agent must keep saying so: a retry that
                    # merely commits nothing is no proof that the journal works again.
                    seen = len(server.heartbeats())
                    time.sleep(4)
                    while_full = [c["Status"] for h in server.heartbeats()[seen:]
                                  for c in h["Connectors"]]
                    self.assertGreaterEqual(len(while_full), 2, "too few heartbeats while full")
                    self.assertEqual(set(while_full), {"DISCONNECTED"},
                                     "CONNECTED reported while the disk was still full")
                    self.assertNotIn("journal writable again", agent.log())
                    os.unlink(filler)
                    wait_for(lambda: all_answered(server, 400), timeout=120,
                             what="everything after space came back")
                finally:
                    rc = agent.stop()
                self.assertEqual(rc, 0, agent.log()[-3000:])
                applied = agent.applied()
                self.assertEqual(len(applied), len(set(applied)), "an order applied twice")
                self.assertEqual(len(applied), 400)
                self.assertEqual(server.state()["violations"], [])
                self.assertEqual(server.state()["conflicting_duplicates"], 0)
                self.assertIn("taking orders again", agent.log())
        finally:
            subprocess.run(["umount", "-l", mnt])


if __name__ == "__main__":
    unittest.main(verbosity=2)

# SPDX-License-Identifier: Apache-2.0
"""Guardrails against the real targets: a real OpenLDAP directory (slapd on loopback,
tests/ldap/slapd.sh) and SQLite, fed by the simulated server.

- a burst of 500 Deleted against max_deleted = 50/1h: the first 50 are applied, 450 are
  HELD (journal list held, metrics, the heartbeat's LastError, one notice); a restart
  keeps them held; journal release --all applies them, and the directory shows it;
- max_group_changes counts, after a restart, the group changes made before it;
- a refused protected group membership leaves the group unchanged; an order outside the
  allowed subtree is refused, nothing of it applied; each refusal names its rule;
- a held order blocks the later orders of its assignment until it is released (the
  assignment's order kept) and not those of other assignments; journal resolve refuses a
  held order (Errored, reported);
- --check-config refuses bad rules, doctor lists them, --dry-run shows what would be
  refused or held, a reload that loosens a rule is logged at notice;
- SQLite: protect_key and allow_table refuse, the table unchanged."""
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from harness import SimServer, free_port  # noqa: E402
from agent_harness import Agent, wait_for  # noqa: E402

SRC = os.environ.get("CA_TEST_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
SLAPD = os.path.join(SRC, "tests", "ldap", "slapd.sh")
BASE = "dc=example,dc=com"
PEOPLE = "ou=people," + BASE
AGENTS = "cn=agents,ou=groups," + BASE


def user_order(oid, change, uid, changes=None, assignment=None):
    return {"Id": oid, "AssignedResourceTypeId": assignment or ("a-" + uid),
            "ChangeType": change, "Owner": {"Id": uid},
            "ResourceType": {"Identifier": "LDAP_User", "SourceEntityType": {"Id": "51"}},
            "Changes": changes if changes is not None else {}, "Resource": {"uid": uid}}


def added(i, uid):
    return user_order("add-%03d" % i, "Added", uid, {"uid": uid, "cn": uid, "sn": uid})


class LdapGuardrails(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="ca-guard-")
        self.dir = self.tmp.name
        self.sdir = os.path.join(self.dir, "slapd")
        ports = (free_port(), free_port())
        out = subprocess.run(["bash", SLAPD, "start", self.sdir, str(ports[0]), str(ports[1])],
                             check=True, capture_output=True, text=True, timeout=60,
                             env=dict(os.environ, CA_SLAPD_OWNER_PID=str(os.getpid()))).stdout
        self.env = dict(l.split("=", 1) for l in out.split() if "=" in l)

    def tearDown(self):
        subprocess.run(["bash", SLAPD, "destroy", self.sdir], timeout=60)
        self.tmp.cleanup()

    def search(self, base, scope="base", attrs=("*",), filt="(objectClass=*)"):
        p = subprocess.run(["ldapsearch", "-LLL", "-o", "ldif-wrap=no", "-x", "-H",
                            self.env["LDAPS_URI"], "-D", self.env["ADMIN_DN"], "-y",
                            self.env["ADMIN_PW_FILE"], "-b", base, "-s", scope, filt, *attrs],
                           capture_output=True, text=True, timeout=60,
                           env=dict(os.environ, LDAPTLS_CACERT=self.env["CA_FILE"]))
        return p.returncode, p.stdout

    def uids(self):
        rc, out = self.search(PEOPLE, scope="one", attrs=("uid",), filt="(uid=*)")
        return set(re.findall(r"^uid: (\S+)$", out, re.M))

    def agent(self, server, status_port=None, **guards):
        conn = {"backend": "ldap", "uri": self.env["LDAPS_URI"], "ca_file": self.env["CA_FILE"],
                "bind_dn": self.env["ADMIN_DN"], "bind_password_file": self.env["ADMIN_PW_FILE"],
                "poll_interval": "200ms", "order_timeout": "10s"}
        # One worker: the orders of different assignments then also run, and are
        # answered, in the order they were taken, which the burst test checks.
        if "max_parallel" not in guards:
            conn["max_parallel"] = "1"
        conn.update(guards)
        agent_keys = {"status_port": str(status_port)} if status_port else None
        return Agent(self.dir, server, connectors={"directory": conn}, agent=agent_keys,
                     resource_types={"LDAP_User": {"connector": "directory", "base_dn": PEOPLE,
                                                   "rdn_attribute": "uid",
                                                   "object_class": "inetOrgPerson"}})

    def journal(self, agent, *args):
        return subprocess.run([os.environ.get("CA_AGENT_BIN", "connector-agent"), "--config",
                               agent.config_path, "journal", *args],
                              capture_output=True, text=True, timeout=60)

    def test_burst_held_restart_release(self):
        n = 500
        uids = ["u%03d" % i for i in range(n)]
        with SimServer(self.dir, connectors=("directory",), lease=300,
                       orders={"directory": [added(i, u) for i, u in enumerate(uids)]}) as server:
            agent = self.agent(server)
            rc, out = agent.run("--once", timeout=300)
            self.assertEqual(rc, 0, out[-2000:])
            self.assertEqual(self.uids(), set(uids))

            port = free_port()
            agent = self.agent(server, status_port=port, max_deleted="50/1h")
            server.add_orders("directory", [user_order("del-%03d" % i, "Deleted", u)
                                            for i, u in enumerate(uids)])
            agent.start()
            try:
                wait_for(lambda: len([r for r in server.results()
                                      if r["Id"].startswith("del-")]) >= 50, timeout=120,
                         what="50 deletions answered")
                wait_for(lambda: "450 order(s) held by guardrail max_deleted" in
                         (server.heartbeats()[-1]["Connectors"][0].get("LastError") or ""),
                         timeout=30, what="the heartbeat says what is held")
                time.sleep(1)  # nothing more is answered
                dels = [r for r in server.results() if r["Id"].startswith("del-")]
                self.assertEqual(len(dels), 50)
                self.assertTrue(all(r["ProvisioningState"] == "Executed" for r in dels), dels)
                # The first 50, in their order: the rest is still in the directory.
                self.assertEqual(self.uids(), set(uids[50:]))
                log = agent.log()
                self.assertEqual(log.count("guardrail max_deleted holds orders"), 1, log[-3000:])
                self.assertIn("held by guardrail max_deleted: max_deleted = 50/1h", log)
                self.assertIn("del-050", log)
                self.assertIn("uid=u050," + PEOPLE, log)  # the target, in the audit line
                metrics = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port,
                                                 timeout=10).read().decode()
                self.assertIn('connector_agent_orders_held{connector="directory"} 450', metrics)
                self.assertIn('connector_agent_guardrail_total{connector="directory",'
                              'rule="max_deleted",action="held"} 450', metrics)
                listed = self.journal(agent, "list", "held")
                self.assertEqual(listed.returncode, 0, listed.stderr)
                self.assertIn("450 held entries", listed.stdout)
                self.assertIn("del-050", listed.stdout)
            finally:
                self.assertEqual(agent.stop(), 0)

            # A restart keeps them held.
            agent.start()
            try:
                wait_for(lambda: "450 order(s) held by a guardrail before the restart" in
                         agent.log(), timeout=30, what="held orders recovered")
                time.sleep(1.5)
                self.assertEqual(len([r for r in server.results()
                                      if r["Id"].startswith("del-")]), 50)
                self.assertEqual(self.uids(), set(uids[50:]))
                # The window did not restart empty: one more deletion is held too.
                server.add_orders("directory", [user_order("del-500", "Deleted", "extra")])
                wait_for(lambda: "del-500" in self.journal(agent, "list", "held").stdout,
                         timeout=30, what="a deletion after the restart held")
                # A key behind nothing held but not itself held is refused by release.
                bad = self.journal(agent, "release", "directory", "del-000")
                self.assertNotEqual(bad.returncode, 0)
                self.assertIn("not HELD", bad.stderr)
                rel = self.journal(agent, "release", "directory", "--all")
                self.assertEqual(rel.returncode, 0, rel.stderr)
                self.assertIn("451 held order(s) released", rel.stdout)
                wait_for(lambda: len([r for r in server.results()
                                      if r["Id"].startswith("del-")]) == n + 1, timeout=180,
                         what="every deletion answered")
                dels = [r for r in server.results() if r["Id"].startswith("del-")]
                self.assertTrue(all(r["ProvisioningState"] == "Executed" for r in dels))
                self.assertEqual(self.uids(), set())
                # Released in their order (one worker: applied and answered so).
                self.assertEqual([r["Id"] for r in dels[50:]],
                                 ["del-%03d" % i for i in range(50, n + 1)])
                self.assertEqual(self.journal(agent, "list", "held").stdout.count("HELD "), 0)
            finally:
                self.assertEqual(agent.stop(), 0)
            self.assertEqual(server.violations(), [])

    def test_group_window_survives_a_restart(self):
        # What an order counted as (here: a group change) is kept by the journal, so a
        # restart does not give the server a fresh max_group_changes window.
        uids = ["g%d" % i for i in range(3)]
        joins = [user_order("join-%d" % i, "Modified", u, {"memberOf_add": [AGENTS]})
                 for i, u in enumerate(uids)]
        with SimServer(self.dir, connectors=("directory",), lease=300,
                       orders={"directory": [added(i, u) for i, u in enumerate(uids)]
                               + joins[:2]}) as server:
            agent = self.agent(server, max_group_changes="2/1h")
            rc, out = agent.run("--once", timeout=120)
            self.assertEqual(rc, 0, out[-2000:])
            self.assertEqual({r["Id"]: r["ProvisioningState"] for r in server.results()
                              if r["Id"].startswith("join-")},
                             {"join-0": "Executed", "join-1": "Executed"})
            server.add_orders("directory", joins[2:])
            agent.start()
            try:
                wait_for(lambda: "join-2" in self.journal(agent, "list", "held").stdout,
                         timeout=30, what="the third group change held after the restart")
                self.assertIn("held by guardrail max_group_changes", agent.log())
            finally:
                self.assertEqual(agent.stop(), 0)
            rc, out = self.search(AGENTS, attrs=("member",))
            self.assertIn("uid=g1," + PEOPLE, out)
            self.assertNotIn("uid=g2," + PEOPLE, out)

    def test_protect_allow_and_ordering(self):
        first = [added(1, "jbond"), added(2, "mone")]
        with SimServer(self.dir, connectors=("directory",), lease=300,
                       orders={"directory": first}) as server:
            agent = self.agent(server)
            rc, out = agent.run("--once")
            self.assertEqual(rc, 0, out)
            rc, group = self.search(AGENTS, attrs=("member",))
            self.assertEqual(rc, 0)
            members_before = sorted(re.findall(r"^member: (.*)$", group, re.M))

            guards = {"protect": "CN=Agents,OU=Groups,DC=example,DC=com",
                      "allow_subtree": "ou=people,dc=example,dc=com; ou=groups,dc=example,dc=com",
                      "max_modified": "1/1h"}
            agent = self.agent(server, **guards)
            rc, out = agent.run("--check-config")
            self.assertEqual(rc, 0, out)
            server.add_orders("directory", [
                user_order("m-01", "Modified", "jbond", {"memberOf_add": [AGENTS]}),
                user_order("m-02", "Added", "x", {"dn": "uid=x,ou=elsewhere," + BASE, "cn": "x",
                                                  "sn": "x"}),
                # assignment a-jbond: one Modified passes, the next is held (1/1h), the
                # one after waits behind it although it is an Added-free Modified too
                user_order("m-03", "Modified", "jbond", {"title": "first"}),
                user_order("m-04", "Modified", "jbond", {"title": "second"}),
                user_order("m-05", "Modified", "jbond", {"title": "third"}),
                # another assignment is not blocked by a-jbond's hold: a Deleted passes
                user_order("m-06", "Deleted", "mone"),
            ])
            agent.start()
            try:
                wait_for(lambda: {"m-01", "m-02", "m-03", "m-06"} <=
                         {r["Id"] for r in server.results()}, timeout=60,
                         what="refusals and the free orders answered")
                time.sleep(1)
                res = {r["Id"]: r for r in server.results()}
                self.assertEqual(res["m-01"]["ProvisioningState"], "Errored")
                self.assertIn("guardrail protect = CN=Agents,OU=Groups,DC=example,DC=com",
                              res["m-01"]["Message"])
                self.assertEqual(res["m-02"]["ProvisioningState"], "Errored")
                self.assertIn("allow_subtree", res["m-02"]["Message"])
                self.assertEqual(res["m-03"]["ProvisioningState"], "Executed")
                self.assertEqual(res["m-06"]["ProvisioningState"], "Executed")
                self.assertNotIn("m-04", res)
                self.assertNotIn("m-05", res)
                rc, group = self.search(AGENTS, attrs=("member",))
                self.assertEqual(sorted(re.findall(r"^member: (.*)$", group, re.M)),
                                 members_before)
                rc, _ = self.search("uid=x,ou=elsewhere," + BASE)
                self.assertEqual(rc, 32)  # noSuchObject: nothing of it applied
                self.assertNotIn("mone", self.uids())
                rc, ldif = self.search("uid=jbond," + PEOPLE, attrs=("title",))
                self.assertIn("title: first", ldif)
                log = agent.log()
                self.assertIn("refused by guardrail protect", log)
                self.assertIn("m-05", log)
                self.assertIn("behind held order m-04", log)
                listed = self.journal(agent, "list", "held").stdout
                self.assertIn("2 held entries", listed)
                # m-05 alone cannot overtake m-04
                bad = self.journal(agent, "release", "directory", "m-05")
                self.assertNotEqual(bad.returncode, 0)
                self.assertIn("comes after HELD order m-04", bad.stderr)
                rel = self.journal(agent, "release", "directory", "m-04", "m-05")
                self.assertEqual(rel.returncode, 0, rel.stderr)
                wait_for(lambda: {"m-04", "m-05"} <= {r["Id"] for r in server.results()},
                         timeout=60, what="released orders answered")
                rc, ldif = self.search("uid=jbond," + PEOPLE, attrs=("title",))
                self.assertIn("title: third", ldif)  # m-04 then m-05, in their order

                # A held order refused by the operator is reported Errored, not applied.
                server.add_orders("directory", [
                    user_order("m-07", "Modified", "jbond", {"title": "never"})])
                wait_for(lambda: "m-07" in self.journal(agent, "list", "held").stdout,
                         timeout=30, what="m-07 held")
                res = self.journal(agent, "resolve", "directory", "m-07", "executed", "x")
                self.assertNotEqual(res.returncode, 0)
                self.assertIn("never applied", res.stderr)
                res = self.journal(agent, "resolve", "directory", "m-07", "errored",
                                   "refused by the directory's owner")
                self.assertEqual(res.returncode, 0, res.stderr)
                wait_for(lambda: "m-07" in {r["Id"] for r in server.results()}, timeout=30,
                         what="the refusal reported")
                r7 = [r for r in server.results() if r["Id"] == "m-07"][0]
                self.assertEqual(r7["ProvisioningState"], "Errored")
                self.assertEqual(r7["Message"], "refused by the directory's owner")
                rc, ldif = self.search("uid=jbond," + PEOPLE, attrs=("title",))
                self.assertIn("title: third", ldif)

                # A reload that loosens a rule says so at notice; the rules still hold.
                agent.connectors["directory"]["max_modified"] = "5/1h"
                agent.connectors["directory"].pop("allow_subtree")
                agent.write_config()
                agent.signal(signal.SIGHUP)
                wait_for(lambda: "the reload loosens the guardrails" in agent.log(),
                         timeout=30, what="the loosening noticed")
                log = agent.log()
                self.assertIn("allow_subtree removed", log)
                self.assertIn("max_modified 1/1h -> 5/1h", log)
                server.add_orders("directory", [
                    user_order("m-08", "Modified", "jbond", {"memberOf_add": [AGENTS]})])
                wait_for(lambda: "m-08" in {r["Id"] for r in server.results()}, timeout=30,
                         what="m-08 answered")
                r8 = [r for r in server.results() if r["Id"] == "m-08"][0]
                self.assertEqual(r8["ProvisioningState"], "Errored")  # protect survived
            finally:
                self.assertEqual(agent.stop(), 0)
            self.assertEqual(server.violations(), [])

    def test_check_config_doctor_dry_run(self):
        with SimServer(self.dir, connectors=("directory",), lease=1,
                       orders={"directory": [
                           user_order("d-01", "Modified", "jbond", {"memberOf_add": [AGENTS]}),
                           user_order("d-02", "Deleted", "a"),
                           user_order("d-03", "Deleted", "b")]}) as server:
            agent = self.agent(server, protect="cn=x,,dc=y", max_deleted="many")
            rc, out = agent.run("--check-config")
            self.assertEqual(rc, 3, out)
            self.assertIn("[connector directory] protect: item 1 (cn=x,,dc=y): not a DN", out)
            self.assertIn("max_deleted = many: expected COUNT/DURATION", out)

            agent = self.agent(server, protect=AGENTS, max_deleted="1/1h")
            rc, out = agent.run("doctor")
            self.assertIn("Guardrails directory: refused or held by the agent:", out)
            self.assertIn("protect = " + AGENTS, out)
            self.assertIn("max_deleted = 1/1h", out)
            time.sleep(1.5)  # doctor's look at the orders leased one of them for 1 s
            rc, out = agent.run("--dry-run")
            self.assertEqual(rc, 0, out)
            self.assertRegex(out, r"d-01 Modified LDAP_User: would refuse: protect = ")
            self.assertIn("d-03 Deleted LDAP_User: would hold: max_deleted = 1/1h", out)
            self.assertEqual(server.results(), [])
            self.assertNotIn("jbond", self.uids())


class SqliteGuardrails(unittest.TestCase):
    def test_protected_key_and_table(self):
        with tempfile.TemporaryDirectory(prefix="ca-guard-sql-") as d:
            db = os.path.join(d, "accounts.db")
            con = sqlite3.connect(db)
            con.execute("CREATE TABLE accounts (uid TEXT PRIMARY KEY, given_name TEXT)")
            con.execute("CREATE TABLE memberships (uid TEXT, group_dn TEXT, "
                        "PRIMARY KEY (uid, group_dn))")
            con.execute("INSERT INTO accounts VALUES ('root', 'Root'), ('svc-backup', 'B')")
            con.commit()
            con.close()

            def o(oid, change, uid, changes):
                return {"Id": oid, "AssignedResourceTypeId": "a-" + oid, "ChangeType": change,
                        "ResourceType": {"Identifier": "User"}, "Resource": {"uid": uid},
                        "Changes": changes}

            orders = [o("s-1", "Deleted", "root", {}),
                      o("s-2", "Modified", "SVC-backup", {"givenName": "x"}),
                      o("s-3", "Modified", "jo", {"memberOf_add": ["g1"]}),
                      o("s-4", "Added", "jo", {"uid": "jo", "givenName": "Jo"})]
            with SimServer(d, connectors=("c1",), orders={"c1": orders}) as server:
                agent = Agent(d, server,
                              connectors={"c1": {"backend": "sql", "driver": "sqlite",
                                                 "database": db,
                                                 "protect_key": "accounts:root; svc-*",
                                                 "allow_table": "accounts"}},
                              resource_types={"User": {"connector": "c1", "table": "accounts",
                                                       "key_column": "uid",
                                                       "columns": "givenName:given_name",
                                                       "membership_table": "memberships",
                                                       "membership_key_column": "uid",
                                                       "membership_value_column": "group_dn"}})
                rc, out = agent.run("--once")
                self.assertEqual(rc, 1, out)  # three Errored
                res = {r["Id"]: r for r in server.results()}
                self.assertIn("protect_key = accounts:root", res["s-1"]["Message"])
                self.assertIn("protect_key = svc-*", res["s-2"]["Message"])
                self.assertIn("allow_table", res["s-3"]["Message"])
                self.assertIn("memberships", res["s-3"]["Message"])
                self.assertEqual(res["s-4"]["ProvisioningState"], "Executed")
                con = sqlite3.connect(db)
                rows = dict(con.execute("SELECT uid, given_name FROM accounts").fetchall())
                self.assertEqual(rows, {"root": "Root", "svc-backup": "B", "jo": "Jo"})
                self.assertEqual(con.execute("SELECT count(*) FROM memberships").fetchone()[0],
                                 0)
                con.close()
                self.assertEqual(server.violations(), [])

    def test_once_with_a_hold_is_incomplete(self):
        with tempfile.TemporaryDirectory(prefix="ca-guard-once-") as d:
            db = os.path.join(d, "accounts.db")
            con = sqlite3.connect(db)
            con.execute("CREATE TABLE accounts (uid TEXT PRIMARY KEY)")
            con.commit()
            con.close()
            orders = [{"Id": "o-%d" % i, "AssignedResourceTypeId": "a-%d" % i,
                       "ChangeType": "Added", "ResourceType": {"Identifier": "User"},
                       "Changes": {"uid": "u%d" % i}} for i in range(2)]
            with SimServer(d, connectors=("c1",), orders={"c1": orders}) as server:
                agent = Agent(d, server,
                              connectors={"c1": {"backend": "sql", "driver": "sqlite",
                                                 "database": db, "max_added": "1/1h"}},
                              resource_types={"User": {"connector": "c1", "table": "accounts",
                                                       "key_column": "uid"}})
                rc, out = agent.run("--once")
                self.assertEqual(rc, 1, out)  # nothing errored, but o-1 waits
                self.assertEqual([r["Id"] for r in server.results()], ["o-0"])
                self.assertIn("held by guardrail max_added", out)
                con = sqlite3.connect(db)
                self.assertEqual(con.execute("SELECT uid FROM accounts").fetchall(), [("u0",)])
                con.close()

    def test_held_orders_bound_polling(self):
        with tempfile.TemporaryDirectory(prefix="ca-guard-bound-") as d:
            db = os.path.join(d, "accounts.db")
            con = sqlite3.connect(db)
            con.execute("CREATE TABLE accounts (uid TEXT PRIMARY KEY)")
            con.commit()
            con.close()
            orders = [{"Id": "b-%02d" % i, "AssignedResourceTypeId": "a-%d" % i,
                       "ChangeType": "Deleted", "ResourceType": {"Identifier": "User"},
                       "Resource": {"uid": "u%d" % i}, "Changes": {}} for i in range(40)]
            with SimServer(d, connectors=("c1",), orders={"c1": orders}, lease=300) as server:
                agent = Agent(d, server, server_keys={"page_size": "2"},
                              connectors={"c1": {"backend": "sql", "driver": "sqlite",
                                                 "database": db, "max_deleted": "1/1h",
                                                 "max_in_flight": "5",
                                                 "poll_interval": "100ms"}},
                              resource_types={"User": {"connector": "c1", "table": "accounts",
                                                       "key_column": "uid"}})
                agent.start()
                try:
                    wait_for(lambda: "(5 held)" in agent.log() or "(6 held)" in agent.log(),
                             timeout=30, what="polling paused by the held orders")
                    time.sleep(1)
                    out = subprocess.run([os.environ.get("CA_AGENT_BIN", "connector-agent"),
                                          "--config", agent.config_path, "journal", "list",
                                          "held"], capture_output=True, text=True).stdout
                    held = int(re.search(r"^(\d+) held entr", out, re.M).group(1))
                    self.assertLessEqual(held, 6)  # max_in_flight, plus at most one page
                    self.assertEqual(len(server.results()), 1)
                    # No page comes while paused: the release is seen all the same.
                    rel = subprocess.run([os.environ.get("CA_AGENT_BIN", "connector-agent"),
                                          "--config", agent.config_path, "journal", "release",
                                          "c1", "--all"], capture_output=True, text=True)
                    self.assertEqual(rel.returncode, 0, rel.stderr)
                    wait_for(lambda: len(server.results()) == 1 + held, timeout=30,
                             what="the released orders answered")
                finally:
                    self.assertEqual(agent.stop(), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)

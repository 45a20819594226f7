# SPDX-License-Identifier: Apache-2.0
"""The agent provisioning a real OpenLDAP directory (slapd on loopback, over ldaps with a
test CA), fed by the simulated server: each change type and group memberships as the
directory itself shows them, a DN full of special characters, re-delivery without
re-application, a directory stopped mid-run (orders wait, the connector is DISCONNECTED,
then everything completes), a wrong bind password (clear error, no secret), and an
account's life as the service account: created disabled with its password (ppolicy's lock,
so its own bind is refused), enabled, disabled again, the password never in a result or
the log."""
import os
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import SimServer, free_port  # noqa: E402
from agent_harness import Agent, wait_for  # noqa: E402

SRC = os.environ.get("CA_TEST_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
SLAPD = os.path.join(SRC, "tests", "ldap", "slapd.sh")
PEOPLE = "ou=people,dc=example,dc=com"
AGENTS = "cn=agents,ou=groups,dc=example,dc=com"
ODD_UID = ' #Zoë, "Ünal"+<x>;\\ '


def order(i, change, changes, uid, resource=None):
    o = {"Id": "ldap-%03d" % i, "AssignedResourceTypeId": "a-" + uid.strip()[:20],
         "ChangeType": change, "Owner": {"Id": str(i)},
         "ResourceType": {"Identifier": "LDAP_User", "SourceEntityType": {"Id": "51"}},
         "Changes": changes, "Resource": resource or {"uid": uid}}
    return o


class LdapEndToEnd(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="ca-ldap-e2e-")
        self.dir = self.tmp.name
        self.sdir = os.path.join(self.dir, "slapd")
        ports = (free_port(), free_port())
        out = subprocess.run(["bash", SLAPD, "start", self.sdir, str(ports[0]), str(ports[1])],
                             check=True, capture_output=True, text=True, timeout=60,
                             env=dict(os.environ, CA_SLAPD_OWNER_PID=str(os.getpid()))).stdout
        self.env = dict(l.split("=", 1) for l in out.split() if "=" in l)
        self.admin_pw = open(self.env["ADMIN_PW_FILE"]).read().strip()

    def tearDown(self):
        subprocess.run(["bash", SLAPD, "destroy", self.sdir], timeout=60)
        self.tmp.cleanup()

    def search(self, base, scope="base", attrs=("*",), filt="(objectClass=*)"):
        p = subprocess.run(["ldapsearch", "-LLL", "-o", "ldif-wrap=no", "-x", "-H",
                            self.env["LDAPS_URI"], "-D", self.env["ADMIN_DN"], "-y",
                            self.env["ADMIN_PW_FILE"], "-b", base, "-s", scope, filt, *attrs],
                           capture_output=True, text=True, timeout=30,
                           env=dict(os.environ, LDAPTLS_CACERT=self.env["CA_FILE"]))
        return p.returncode, p.stdout

    def agent(self, server, **extra):
        conn = {"backend": "ldap", "uri": self.env["LDAPS_URI"], "ca_file": self.env["CA_FILE"],
                "bind_dn": self.env["ADMIN_DN"], "bind_password_file": self.env["ADMIN_PW_FILE"],
                "poll_interval": "300ms", "order_timeout": "5s"}
        conn.update(extra)
        return Agent(self.dir, server, connectors={"directory": conn},
                     resource_types={"LDAP_User": {"connector": "directory", "base_dn": PEOPLE,
                                                   "rdn_attribute": "uid",
                                                   "object_class": "inetOrgPerson"}})

    def test_change_types_memberships_and_special_dn(self):
        orders = [
            order(1, "Added", {"uid": "jbond", "cn": "James Bond", "sn": "Bond",
                               "mail": "james.bond@example.com", "memberOf_add": [AGENTS]}, "jbond"),
            order(2, "Added", {"uid": ODD_UID, "cn": "Zoë Ünal", "sn": "Ünal"}, ODD_UID),
            order(3, "Added", {"uid": "gone", "cn": "Gone", "sn": "Gone"}, "gone"),
        ]
        later = [
            order(4, "Modified", {"mail": "007@example.com", "title": "Commander",
                                  "memberOf_remove": [AGENTS]}, "jbond"),
            order(5, "Deleted", {}, "gone"),
            order(6, "Deleted", {}, "never-existed"),
        ]
        with SimServer(self.dir, connectors=("directory",), orders={"directory": orders}) as server:
            agent = self.agent(server)
            rc, out = agent.run("--once")
            self.assertEqual(rc, 0, out)
            rc, ldif = self.search("uid=jbond," + PEOPLE)
            self.assertEqual(rc, 0)
            self.assertIn("mail: james.bond@example.com", ldif)
            rc, group = self.search(AGENTS, attrs=("member",))
            self.assertIn("member: uid=jbond," + PEOPLE, group)
            # The odd uid: found by an escaped filter, its DN escaped by the agent.
            rc, odd = self.search(PEOPLE, scope="one", attrs=("uid",),
                                  filt="(sn=\\c3\\9cnal)")
            self.assertEqual(rc, 0)
            self.assertIn("uid:: ", odd)  # base64: leading space and non-ASCII
            res = {r["Id"]: r for r in server.results()}
            self.assertTrue(all(r["ProvisioningState"] == "Executed" for r in res.values()), res)
            self.assertEqual(res["ldap-001"]["ResourceIdentifier"], "uid=jbond," + PEOPLE)
            self.assertIn("Zo", res["ldap-002"]["ResourceIdentifier"])

            server.add_orders("directory", later)
            rc, out = agent.run("--once")
            self.assertEqual(rc, 0, out)
            rc, ldif = self.search("uid=jbond," + PEOPLE)
            self.assertIn("mail: 007@example.com", ldif)
            self.assertIn("title: Commander", ldif)
            rc, group = self.search(AGENTS, attrs=("member",))
            self.assertNotIn("uid=jbond", group)
            rc, _ = self.search("uid=gone," + PEOPLE)
            self.assertEqual(rc, 32)  # noSuchObject
            res = {r["Id"]: r for r in server.results()}
            self.assertEqual(res["ldap-006"]["ProvisioningState"], "Executed")  # already gone
            self.assertEqual(server.state()["violations"], [])

    def can_bind(self, dn, password):
        pwf = os.path.join(self.dir, "user.pw")
        with open(pwf, "w") as f:
            f.write(password)
        p = subprocess.run(["ldapsearch", "-x", "-H", self.env["LDAPS_URI"], "-D", dn, "-y", pwf,
                            "-b", "", "-s", "base", "dn"], capture_output=True, text=True,
                           timeout=30, env=dict(os.environ, LDAPTLS_CACERT=self.env["CA_FILE"]))
        os.unlink(pwf)
        self.assertIn(p.returncode, (0, 49), p.stderr)
        return p.returncode == 0

    def test_account_lifecycle(self):
        password = "E2e-Lock-Pass-4711"
        dn = "uid=lifer," + PEOPLE
        first = [order(20, "Added", {"uid": "lifer", "cn": "L", "sn": "L", "password": password,
                                     "enabled": "false"}, "lifer")]
        later = [order(21, "Modified", {"enabled": "true"}, "lifer"),
                 order(22, "Modified", {"enabled": "false"}, "lifer")]
        with SimServer(self.dir, connectors=("directory",), orders={"directory": first}) as server:
            agent = Agent(self.dir, server, connectors={"directory": {
                "backend": "ldap", "uri": self.env["LDAPS_URI"], "ca_file": self.env["CA_FILE"],
                "bind_dn": self.env["AGENT_DN"], "bind_password_file": self.env["AGENT_PW_FILE"],
                "poll_interval": "300ms", "order_timeout": "5s"}},
                resource_types={"LDAP_User": {"connector": "directory", "base_dn": PEOPLE,
                                              "rdn_attribute": "uid",
                                              "object_class": "inetOrgPerson",
                                              "password_change": "password",
                                              "enabled_change": "enabled"}})
            rc, out = agent.run("--once")
            self.assertEqual(rc, 0, out)
            rc, ldif = self.search(dn, attrs=("pwdAccountLockedTime",))
            self.assertIn("pwdAccountLockedTime: 000001010000Z", ldif)
            self.assertFalse(self.can_bind(dn, password))
            server.add_orders("directory", later[:1])
            rc, out = agent.run("--once")
            self.assertEqual(rc, 0, out)
            self.assertTrue(self.can_bind(dn, password))
            server.add_orders("directory", later[1:])
            rc, out = agent.run("--once")
            self.assertEqual(rc, 0, out)
            self.assertFalse(self.can_bind(dn, password))
            res = {r["Id"]: r for r in server.results()}
            self.assertEqual(sorted(res), ["ldap-020", "ldap-021", "ldap-022"])
            self.assertTrue(all(r["ProvisioningState"] == "Executed" for r in res.values()), res)
            self.assertIn("password set, disabled", res["ldap-020"]["Message"])
            self.assertIn("enabled", res["ldap-021"]["Message"])
            for r in res.values():
                self.assertNotIn(password, str(r))
            self.assertNotIn(password, agent.log())
            self.assertEqual(server.state()["violations"], [])

    def test_directory_down_then_back(self):
        orders = [order(10 + i, "Added", {"uid": "u%d" % i, "cn": "U %d" % i, "sn": "U"}, "u%d" % i)
                  for i in range(5)]
        with SimServer(self.dir, connectors=("directory",)) as server:
            agent = self.agent(server)
            agent.start()
            try:
                wait_for(lambda: server.heartbeats(), what="first heartbeat")
                subprocess.run(["bash", SLAPD, "stop", self.sdir], check=True, timeout=60)
                server.add_orders("directory", orders)
                wait_for(lambda: any(c["Status"] == "DISCONNECTED" and c["LastError"]
                                     for h in server.heartbeats() for c in h["Connectors"]),
                         timeout=30, what="connector DISCONNECTED")
                time.sleep(1)
                self.assertEqual(server.results(), [], "orders must wait while the directory is down")
                subprocess.run(["bash", SLAPD, "serve", self.sdir], check=True, timeout=60)
                wait_for(lambda: len(server.results()) == 5, timeout=90, what="orders after recovery")
                wait_for(lambda: server.heartbeats()[-1]["Connectors"][0]["Status"] == "CONNECTED",
                         timeout=30, what="connector CONNECTED again")
            finally:
                self.assertEqual(agent.stop(), 0)
            for i in range(5):
                rc, _ = self.search("uid=u%d,%s" % (i, PEOPLE))
                self.assertEqual(rc, 0)
            self.assertIn("target unreachable", agent.log())

    def test_wrong_password(self):
        wrong = os.path.join(self.dir, "wrong.pw")
        with open(wrong, "w") as f:
            f.write("NotThePassword-91x\n")
        os.chmod(wrong, 0o600)
        orders = [order(20, "Added", {"uid": "w", "cn": "W", "sn": "W"}, "w")]
        with SimServer(self.dir, connectors=("directory",), orders={"directory": orders}) as server:
            agent = self.agent(server, bind_password_file=wrong)
            agent.start()
            try:
                wait_for(lambda: "Invalid credentials" in agent.log(), timeout=30,
                         what="the bind refusal")
                wait_for(lambda: any("Invalid credentials" in (c["LastError"] or "")
                                     for h in server.heartbeats() for c in h["Connectors"]),
                         what="the refusal in the heartbeat")
            finally:
                agent.stop()
            self.assertEqual(server.results(), [])
            for text in (agent.log(), str(server.heartbeats())):
                self.assertNotIn("NotThePassword-91x", text)
                self.assertNotIn(self.admin_pw, text)


if __name__ == "__main__":
    unittest.main(verbosity=2)

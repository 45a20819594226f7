# SPDX-License-Identifier: Apache-2.0
"""Guardrails against a real Active Directory domain controller (Samba's AD DC,
tests/ad/samba-ad.sh, on loopback), the agent's ldap back-end in its active-directory
mode, fed by the simulated server:
- an order adding an account to Domain Admins (protected) is Errored with the rule that
  refused it, and the group is unchanged;
- an order moving an account out of the allowed subtree is refused; the account stays;
- 10 deletions against max_deleted = 4/1h: 4 applied, 6 held; journal release applies
  them, in their order, and the directory shows it.
The DC's ports are fixed: this test takes the ctest resource lock samba-ad-dc."""
import os
import re
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import SimServer  # noqa: E402
from agent_harness import Agent, wait_for  # noqa: E402

SRC = os.environ.get("CA_TEST_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
SAMBA = os.path.join(SRC, "tests", "ad", "samba-ad.sh")
DOMAIN = "DC=example,DC=test"
USERS = "CN=Users," + DOMAIN
ADMINS = "CN=Domain Admins," + USERS
ADMIN_DN = "CN=Administrator," + USERS
OUTSIDE = "OU=Elsewhere," + DOMAIN


def user_order(oid, change, name, changes=None):
    sam = name.lower().replace(" ", "")
    return {"Id": oid, "AssignedResourceTypeId": "a-" + sam, "ChangeType": change,
            "Owner": {"Id": sam},
            "ResourceType": {"Identifier": "AD_User", "SourceEntityType": {"Id": "51"}},
            "Changes": changes if changes is not None else {},
            "Resource": {"cn": name, "sAMAccountName": sam}}


def added(i, name):
    sam = name.lower().replace(" ", "")
    return user_order("add-%02d" % i, "Added", name, {"cn": name, "sAMAccountName": sam})


class AdGuardrails(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="ca-guard-ad-")
        self.dir = self.tmp.name
        self.sdir = os.path.join(self.dir, "samba")
        p = subprocess.run(["bash", SAMBA, "start", self.sdir], capture_output=True, text=True,
                           timeout=240, env=dict(os.environ, CA_SAMBA_OWNER_PID=str(os.getpid())))
        if p.returncode != 0:
            self.fail("samba-ad.sh start failed (%d): %s%s" % (p.returncode, p.stdout, p.stderr))
        self.env = dict(l.split("=", 1) for l in p.stdout.split("\n") if "=" in l)
        self.ldap("ldapadd", "dn: %s\nobjectClass: organizationalUnit\nou: Elsewhere\n" % OUTSIDE)

    def tearDown(self):
        subprocess.run(["bash", SAMBA, "destroy", self.sdir], timeout=120)
        self.tmp.cleanup()

    def ldap(self, tool, ldif=None, *args):
        p = subprocess.run([tool, "-x", "-H", self.env["LDAPS_URI"], "-D", ADMIN_DN, "-y",
                            self.env["ADMIN_PW_FILE"], *args], input=ldif, capture_output=True,
                           text=True, timeout=60,
                           env=dict(os.environ, LDAPTLS_CACERT=self.env["CA_FILE"]))
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stdout

    def search(self, base, filt="(objectClass=*)", *attrs):
        return self.ldap("ldapsearch", None, "-LLL", "-o", "ldif-wrap=no", "-b", base, filt,
                         *attrs)

    def names(self):
        out = self.search(USERS, "(&(objectClass=user)(sAMAccountName=adg*))", "cn")
        return set(re.findall(r"^cn: (.+)$", out, re.M))

    def agent(self, server):
        conn = {"backend": "ldap", "directory": "active-directory",
                "uri": self.env["LDAPS_URI"], "ca_file": self.env["CA_FILE"],
                "bind_dn": ADMIN_DN, "bind_password_file": self.env["ADMIN_PW_FILE"],
                "poll_interval": "200ms", "order_timeout": "20s", "max_parallel": "1",
                "protect": ADMINS, "allow_subtree": USERS, "max_deleted": "4/1h"}
        rt = {"connector": "ad", "base_dn": USERS, "rdn_attribute": "cn",
              "object_class": "user", "key_attribute": "sAMAccountName",
              "move_change": "parent"}
        return Agent(self.dir, server, connectors={"ad": conn}, resource_types={"AD_User": rt})

    def journal(self, agent, *args):
        return subprocess.run([os.environ.get("CA_AGENT_BIN", "connector-agent"), "--config",
                               agent.config_path, "journal", *args],
                              capture_output=True, text=True, timeout=60)

    def test_protect_allow_and_limit(self):
        names = ["Adg %02d" % i for i in range(10)]
        first = [added(i, n) for i, n in enumerate(names)]
        first.append(user_order("admin-00", "Modified", names[0], {"memberOf_add": [ADMINS]}))
        first.append(user_order("move-01", "Modified", names[1], {"parent": OUTSIDE}))
        with SimServer(self.dir, connectors=("ad",), lease=300, orders={"ad": first}) as server:
            agent = self.agent(server)
            rc, out = agent.run("--once", timeout=240)
            self.assertEqual(rc, 1, out[-3000:])  # two orders refused: the run is incomplete
            results = {r["Id"]: r for r in server.results()}
            self.assertEqual(self.names(), set(names))
            refused = results["admin-00"]
            self.assertEqual(refused["ProvisioningState"], "Errored")
            self.assertIn("protect", refused["Message"])
            self.assertNotIn("Adg 00", self.search(ADMINS, "(objectClass=*)", "member"))
            moved = results["move-01"]
            self.assertEqual(moved["ProvisioningState"], "Errored")
            self.assertIn("allow_subtree", moved["Message"])
            self.assertEqual(self.search(OUTSIDE, "(objectClass=user)", "cn").strip(), "")

            server.add_orders("ad", [user_order("del-%02d" % i, "Deleted", n)
                                     for i, n in enumerate(names)])
            agent.start()
            try:
                wait_for(lambda: "6 held entries" in self.journal(agent, "list", "held").stdout,
                         timeout=120, what="six deletions held")
                # The four admitted ones are executed and reported after the six are held:
                # the holds are taken at intake, before any of them runs.
                wait_for(lambda: len([r for r in server.results()
                                      if r["Id"].startswith("del-")]) >= 4, timeout=120,
                         what="four deletions answered")
                dels = [r for r in server.results() if r["Id"].startswith("del-")]
                self.assertEqual([r["Id"] for r in dels], ["del-%02d" % i for i in range(4)])
                self.assertEqual(self.names(), set(names[4:]))
                rel = self.journal(agent, "release", "ad", "--all")
                self.assertEqual(rel.returncode, 0, rel.stderr)
                wait_for(lambda: len([r for r in server.results()
                                      if r["Id"].startswith("del-")]) == 10, timeout=120,
                         what="every deletion answered")
                dels = [r for r in server.results() if r["Id"].startswith("del-")]
                self.assertEqual([r["Id"] for r in dels], ["del-%02d" % i for i in range(10)])
                self.assertTrue(all(r["ProvisioningState"] == "Executed" for r in dels), dels)
                self.assertEqual(self.names(), set())
            finally:
                self.assertEqual(agent.stop(), 0)
            self.assertEqual(server.violations(), [])


if __name__ == "__main__":
    unittest.main(verbosity=2)

# SPDX-License-Identifier: Apache-2.0
"""Each kind of back-end failure gets its own hint from `connector-agent doctor`, checked
one by one against real targets on loopback: slapd (nothing listening, a certificate
from a CA the agent does not trust, with that CA named, over LDAPS and over StartTLS, a
wrong password, an unknown host), PostgreSQL (nothing listening, a wrong password, a CA
it does not trust, named, an unknown host) and SQLite (a missing file, a file the
agent's user may not open). The daemon's log gives the hint too, when a target becomes
unreachable."""
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import SimServer, free_port, make_order  # noqa: E402
from agent_harness import Agent, AGENT_BIN, BACKEND_DIR, wait_for  # noqa: E402

SRC = os.environ.get("CA_TEST_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
SLAPD = os.path.join(SRC, "tests", "ldap", "slapd.sh")
PG = os.path.join(SRC, "tests", "pg", "pg.sh")
PG_PASSWORD = "pg-Hint-7c2a"
PEOPLE = "ou=people,dc=example,dc=com"
LINE = "[FAIL] Back-end c1 "


def issuer_cn(ca_file):
    """The commonName of the CA certificate in ca_file (the issuer a hint must name)."""
    subject = subprocess.run(["openssl", "x509", "-noout", "-subject", "-nameopt", "multiline",
                              "-in", ca_file], capture_output=True, text=True, check=True).stdout
    return [l.split("=", 1)[1].strip() for l in subject.splitlines() if "commonName" in l][0]


def check_hint(test, line, kind):
    test.assertIn(HINTS[kind], line)
    for other, text in HINTS.items():
        if other != kind:
            test.assertNotIn(text, line, "%s hint given for %s" % (other, kind))


def secret_file(directory, name, text):
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write(text + "\n")
    os.chmod(path, 0o600)
    return path


def backend_line(out):
    found = [l for l in out.splitlines() if l.startswith(LINE)]
    return found[0] if found else None


class HintTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="ca-hints-")
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def doctor(self, server, connector, resource_type):
        agent = Agent(self.dir, server, connectors={"c1": connector},
                      resource_types={"User": dict(connector="c1", **resource_type)})
        rc, out = agent.run("doctor", timeout=60)
        self.assertEqual(rc, 1, out)
        line = backend_line(out)
        self.assertIsNotNone(line, out)
        return line


HINTS = {
    "refused": "Nothing listens at",
    "unreachable": "does not answer from this host",
    "tls": "TLS verification failed",
    "auth": "refused the credentials",
    "missing": "does not exist: fix the path",
    "permission": "The agent's user may not use",
    "contact": "could not talk to",
}




class LdapHints(HintTest):
    def setUp(self):
        super().setUp()
        self.sdir = os.path.join(self.dir, "slapd")
        ports = (free_port(), free_port())
        out = subprocess.run(["bash", SLAPD, "start", self.sdir, str(ports[0]), str(ports[1])],
                             check=True, capture_output=True, text=True, timeout=60,
                             env=dict(os.environ, CA_SLAPD_OWNER_PID=str(os.getpid()))).stdout
        self.env = dict(l.split("=", 1) for l in out.split() if "=" in l)

    def tearDown(self):
        subprocess.run(["bash", SLAPD, "destroy", self.sdir], timeout=60)
        super().tearDown()

    def ldap(self, server, **over):
        conn = {"backend": "ldap", "uri": self.env["LDAPS_URI"], "ca_file": self.env["CA_FILE"],
                "bind_dn": self.env["ADMIN_DN"], "bind_password_file": self.env["ADMIN_PW_FILE"],
                "network_timeout": "2s"}
        conn.update(over)
        return self.doctor(server, conn, {"base_dn": PEOPLE, "rdn_attribute": "uid",
                                          "object_class": "inetOrgPerson"})

    def check(self, line, kind):
        self.assertIn(HINTS[kind], line)
        for other, text in HINTS.items():
            if other != kind:
                self.assertNotIn(text, line, "%s hint given for %s" % (other, kind))

    def test_each_failure_has_its_hint(self):
        with SimServer(self.dir, connectors=("c1",)) as server:
            closed = free_port()
            line = self.ldap(server, uri="ldaps://127.0.0.1:%d" % closed)
            self.check(line, "refused")
            self.assertIn("127.0.0.1:%d" % closed, line)

            line = self.ldap(server, ca_file=self.env["WRONG_CA_FILE"])
            self.check(line, "tls")
            # The issuer of the directory's certificate, named (slapd.sh's test CA).
            issuer = subprocess.run(
                ["openssl", "x509", "-noout", "-subject", "-nameopt", "multiline", "-in",
                 self.env["CA_FILE"]], capture_output=True, text=True, check=True).stdout
            cn = [l.split("=", 1)[1].strip() for l in issuer.splitlines()
                  if "commonName" in l][0]
            self.assertIn("issued by %s," % cn, line)
            self.assertIn("set ca_file", line)
            self.assertEqual(cn, issuer_cn(self.env["CA_FILE"]))

            # StartTLS on ldap://: libldap says only "Connect error"; the hint still names
            # the issuer (doctor speaks StartTLS itself to see the certificate).
            line = self.ldap(server, uri=self.env["LDAP_URI"], starttls="yes",
                             ca_file=self.env["WRONG_CA_FILE"])
            self.check(line, "tls")
            self.assertIn("issued by %s," % cn, line)
            self.assertIn("set ca_file", line)

            # Nothing listening on an ldap:// port with StartTLS: not a TLS hint.
            line = self.ldap(server, uri="ldap://127.0.0.1:%d" % closed, starttls="yes")
            self.check(line, "refused")
            self.assertNotIn("TLS verification", line)

            wrong = os.path.join(self.dir, "wrong.pw")
            with open(wrong, "w") as f:
                f.write("NotThePassword\n")
            os.chmod(wrong, 0o600)
            line = self.ldap(server, bind_password_file=wrong)
            self.check(line, "auth")
            self.assertNotIn("NotThePassword", line)

            line = self.ldap(server, uri="ldaps://no-such-host.invalid:636")
            self.check(line, "unreachable")

            # The daemon, given the wrong CA over StartTLS, names the issuer in its log.
            conn = {"backend": "ldap", "uri": self.env["LDAP_URI"], "starttls": "yes",
                    "ca_file": self.env["WRONG_CA_FILE"], "bind_dn": self.env["ADMIN_DN"],
                    "bind_password_file": self.env["ADMIN_PW_FILE"], "network_timeout": "2s"}
            line, diagnosis = daemon_lines(self, conn, {"base_dn": PEOPLE, "rdn_attribute": "uid",
                                                        "object_class": "inetOrgPerson"},
                                           diagnosis=True)
            check_hint(self, line, "contact")
            check_hint(self, diagnosis, "tls")
            self.assertIn("issued by %s," % cn, diagnosis)

            # The right settings: no failure line at all.
            agent = Agent(self.dir, server, name="good",
                          connectors={"c1": {"backend": "ldap", "uri": self.env["LDAPS_URI"],
                                             "ca_file": self.env["CA_FILE"],
                                             "bind_dn": self.env["ADMIN_DN"],
                                             "bind_password_file": self.env["ADMIN_PW_FILE"]}},
                          resource_types={"User": {"connector": "c1", "base_dn": PEOPLE,
                                                   "rdn_attribute": "uid",
                                                   "object_class": "inetOrgPerson"}})
            rc, out = agent.run("doctor", timeout=60)
            self.assertIsNone(backend_line(out), out)


class PgHints(HintTest):
    def setUp(self):
        super().setUp()
        self.port = free_port()
        self.datadir = subprocess.run(["bash", PG, "start", str(self.port)], input=PG_PASSWORD,
                                      check=True, capture_output=True, text=True,
                                      timeout=90).stdout.strip()
        self.pwfile = secret_file(self.dir, "pg.pw", PG_PASSWORD)
        # A CA that did not sign the server's certificate: one of our own making.
        self.wrong_ca = os.path.join(self.dir, "wrong-ca.crt")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=hint-wrong-ca", "-keyout",
                        os.path.join(self.dir, "wrong-ca.key"), "-out", self.wrong_ca],
                       check=True, capture_output=True, timeout=60)
        self.right_ca = os.path.join(os.path.dirname(self.datadir), "tls", "ca.crt")

    def tearDown(self):
        subprocess.run(["bash", PG, "stop", self.datadir], timeout=90)
        super().tearDown()

    def pg(self, server, connection, password_file=None):
        conn = {"backend": "sql", "driver": "postgresql", "connection": connection,
                "password_file": password_file or self.pwfile, "connect_timeout": "2s"}
        return self.doctor(server, conn, {"table": "accounts", "key_column": "uid"})

    def test_each_failure_has_its_hint(self):
        base = "host=127.0.0.1 port=%d dbname=postgres user=ca_test " % self.port
        where = "127.0.0.1:%d" % self.port
        with SimServer(self.dir, connectors=("c1",)) as server:
            closed = free_port()
            line = self.pg(server, "host=127.0.0.1 port=%d dbname=postgres user=ca_test "
                                   "sslmode=disable" % closed)
            check_hint(self, line, "refused")
            self.assertIn("127.0.0.1:%d" % closed, line)

            wrong = secret_file(self.dir, "wrong.pw", "NotThePassword")
            line = self.pg(server, base + "sslmode=disable", wrong)
            check_hint(self, line, "auth")
            self.assertIn(where, line)
            self.assertNotIn("NotThePassword", line)

            line = self.pg(server, base + "sslmode=verify-full sslrootcert=" + self.wrong_ca)
            check_hint(self, line, "tls")
            self.assertIn("issued by %s," % issuer_cn(self.right_ca), line)
            self.assertIn("set sslrootcert", line)
            self.assertNotIn("hint-wrong-ca", line)

            line = self.pg(server, "host=no-such-host.invalid port=5432 dbname=postgres "
                                   "user=ca_test sslmode=disable")
            check_hint(self, line, "unreachable")

        # The daemon: its words say TLS at once, its look names the issuer.
        line, diagnosis = daemon_lines(
            self, {"backend": "sql", "driver": "postgresql", "password_file": self.pwfile,
                   "connect_timeout": "2s",
                   "connection": base + "sslmode=verify-full sslrootcert=" + self.wrong_ca},
            {"table": "accounts", "key_column": "uid"}, diagnosis=True)
        check_hint(self, line, "tls")
        self.assertIn("set sslrootcert", line)
        check_hint(self, diagnosis, "tls")
        self.assertIn("issued by %s," % issuer_cn(self.right_ca), diagnosis)


def daemon_lines(test, connector, rt, diagnosis=False):
    """Runs the daemon with one order for connector until it logs the target unreachable
    (and, with diagnosis, the sharper hint of its look at the target); returns those
    lines."""
    with SimServer(test.dir, connectors=("c1",), orders={"c1": [make_order(1)]}) as server:
        agent = Agent(test.dir, server, connectors={"c1": connector},
                      resource_types={"User": dict(connector="c1", **rt)})
        agent.start()
        try:
            wait_for(lambda: "target unreachable, orders wait" in agent.log() and
                     (not diagnosis or "target diagnosis: " in agent.log()), timeout=30,
                     what="the target unreachable line")
        finally:
            agent.stop()
    lines = agent.log().splitlines()
    unreachable = [l for l in lines if "target unreachable, orders wait" in l][0]
    found = [l for l in lines if "target diagnosis: " in l]
    return unreachable, found[0] if found else None


class DaemonLogHints(HintTest):
    """The hint reaches the daemon's log with "target unreachable", classed from the
    plug-in's words and the settings (the loop never blocks on a probe); where the words
    leave the class open, a look at the target off the loop logs the sharper hint."""

    def unreachable_line(self, connector, rt):
        return daemon_lines(self, connector, rt)[0]

    def test_missing_sqlite_file(self):
        path = os.path.join(self.dir, "gone", "nope.db")
        line = self.unreachable_line({"backend": "sql", "database": path},
                                     SqliteHints.RT)
        check_hint(self, line, "missing")
        self.assertIn(path, line)

    def test_nothing_listening_for_postgresql(self):
        closed = free_port()
        line = self.unreachable_line(
            {"backend": "sql", "driver": "postgresql", "connect_timeout": "2s",
             "connection": "host=127.0.0.1 port=%d dbname=postgres user=ca_test "
                           "sslmode=disable" % closed,
             "password_file": secret_file(self.dir, "pg.pw", "x")},
            {"table": "accounts", "key_column": "uid"})
        check_hint(self, line, "refused")
        self.assertIn("127.0.0.1:%d" % closed, line)

    def test_ldap_over_tls_that_cannot_be_told_apart_says_to_run_doctor(self):
        closed = free_port()
        pw = secret_file(self.dir, "ldap.pw", "x")
        line, diagnosis = daemon_lines(self, 
            {"backend": "ldap", "uri": "ldap://127.0.0.1:%d" % closed, "starttls": "yes",
             "bind_dn": "cn=admin,dc=example,dc=com", "bind_password_file": pw,
             "network_timeout": "2s"},
            {"base_dn": PEOPLE, "rdn_attribute": "uid", "object_class": "inetOrgPerson"},
            diagnosis=True)
        check_hint(self, line, "contact")
        self.assertIn("127.0.0.1:%d" % closed, line)
        self.assertIn("ca_file names the CA", line)
        self.assertIn("connector-agent doctor", line)
        # Then the look at the target tells: nothing listens there.
        check_hint(self, diagnosis, "refused")
        self.assertIn("127.0.0.1:%d" % closed, diagnosis)


class SqliteHints(HintTest):
    RT = {"table": "users", "key_column": "id"}

    def make_db(self, path):
        import sqlite3
        con = sqlite3.connect(path)
        con.execute("CREATE TABLE users (id TEXT PRIMARY KEY)")
        con.commit()
        con.close()

    def check(self, line, kind):
        self.assertIn(HINTS[kind], line)
        for other, text in HINTS.items():
            if other != kind:
                self.assertNotIn(text, line, "%s hint given for %s" % (other, kind))

    def test_missing_file(self):
        with SimServer(self.dir, connectors=("c1",)) as server:
            path = os.path.join(self.dir, "nope.db")
            line = self.doctor(server, {"backend": "sql", "database": path}, self.RT)
            self.check(line, "missing")
            self.assertIn(path, line)

    def test_file_the_agent_may_not_open(self):
        # Root may write anything: run doctor as an unprivileged user with copies of what
        # it needs in a directory it can read.
        if os.geteuid() != 0:
            self.skipTest("needs root to run doctor as another user")
        try:
            nobody = pwd.getpwnam("nobody")
        except KeyError:
            self.skipTest("no user nobody")
        os.chmod(self.dir, 0o755)
        backends = os.path.join(self.dir, "backends")
        shutil.copytree(BACKEND_DIR, backends)
        binary = os.path.join(self.dir, "connector-agent")
        shutil.copy(AGENT_BIN if os.path.isabs(AGENT_BIN) else shutil.which(AGENT_BIN), binary)
        db = os.path.join(self.dir, "target.db")
        self.make_db(db)
        os.chmod(db, 0o600)  # root's: nobody may neither read nor write it
        with SimServer(self.dir, connectors=("c1",)) as server:
            agent = Agent(self.dir, server, connectors={"c1": {"backend": "sql",
                                                               "database": db}},
                          resource_types={"User": dict(connector="c1", **self.RT)},
                          agent={"backend_dir": backends, "allow_root": "no"})
            secret = os.path.join(self.dir, "secret-nobody")
            shutil.copy(server.secret_file, secret)
            os.chown(secret, nobody.pw_uid, nobody.pw_gid)
            os.chmod(secret, 0o600)
            agent.server_keys["client_secret_file"] = secret
            agent.write_config()
            os.chmod(agent.config_path, 0o644)
            os.chown(agent.state_dir, nobody.pw_uid, nobody.pw_gid)
            p = subprocess.run(["setpriv", "--reuid=%d" % nobody.pw_uid,
                                "--regid=%d" % nobody.pw_gid, "--clear-groups", binary,
                                "--config", agent.config_path, "doctor"],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
            line = backend_line(p.stdout)
            self.assertIsNotNone(line, p.stdout + p.stderr)
            self.check(line, "permission")
            self.assertIn(db, line)


if __name__ == "__main__":
    unittest.main(verbosity=2)

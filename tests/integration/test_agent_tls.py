# SPDX-License-Identifier: Apache-2.0
"""TLS to the server: verification always on. A custom CA works, a self-signed or
wrong-name certificate is refused with a message that says so, mutual TLS works, a
public-key pin works and a wrong one is refused, and plain http:// is refused unless the
host is a loopback address. A daemon given the wrong CA logs the cause once, naming the
issuer of the server's certificate and pointing at doctor, then counts its retries."""
import base64
import hashlib
import os
import re
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import SimServer, make_test_ca  # noqa: E402
from agent_harness import Agent, wait_for  # noqa: E402


def spki_pin(cert_path):
    pub = subprocess.run(["openssl", "x509", "-in", cert_path, "-pubkey", "-noout"],
                         check=True, stdout=subprocess.PIPE).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pub,
                         check=True, stdout=subprocess.PIPE).stdout
    return "sha256//" + base64.b64encode(hashlib.sha256(der).digest()).decode()


def wrong_name_cert(ca, d):
    """A certificate from the test CA for another host name."""
    subprocess.run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj",
                    "/CN=other.example", "-keyout", "other.key", "-out", "other.csr"],
                   cwd=d, check=True, capture_output=True)
    with open(os.path.join(d, "other.ext"), "w") as f:
        f.write("subjectAltName=DNS:other.example\nextendedKeyUsage=serverAuth\n")
    subprocess.run(["openssl", "x509", "-req", "-in", "other.csr", "-CA", ca["ca"], "-CAkey",
                    ca["ca_key"], "-CAcreateserial", "-days", "2", "-extfile", "other.ext",
                    "-out", "other.pem"], cwd=d, check=True, capture_output=True)
    os.chmod(os.path.join(d, "other.key"), 0o600)
    return os.path.join(d, "other.pem"), os.path.join(d, "other.key")


class TlsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="ca-tls-")
        cls.ca = make_test_ca(cls.tmp.name)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def setUp(self):
        self.dir = tempfile.mkdtemp(dir=self.tmp.name)

    def once(self, server, **server_keys):
        agent = Agent(self.dir, server, server_keys=server_keys)
        rc, out = agent.run("--once", timeout=60)
        return rc, out, agent

    def test_custom_ca_works(self):
        with SimServer(self.dir, generate=5, tls={"cert": self.ca["cert"], "key": self.ca["key"]}) as server:
            rc, out, agent = self.once(server, ca_file=self.ca["ca"])
            self.assertEqual(rc, 0, out)
            self.assertEqual(len(agent.applied()), 5)

    def test_untrusted_certificate_refused(self):
        with SimServer(self.dir, generate=5, tls={"cert": self.ca["cert"], "key": self.ca["key"]}) as server:
            rc, out, agent = self.once(server)  # the system store does not know the test CA
            self.assertNotEqual(rc, 0)
            self.assertRegex(out, r"SSL certificate problem|certificate verify failed")
            self.assertEqual(agent.applied(), [])
            self.assertEqual(server.state()["token_requests"], 0)

    def test_wrong_ca_logged_once_with_the_issuer(self):
        wrong = os.path.join(self.dir, "wrong-ca.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=not the server's CA", "-keyout",
                        os.path.join(self.dir, "wrong-ca.key"), "-out", wrong],
                       check=True, capture_output=True)
        issuer = subprocess.run(["openssl", "x509", "-noout", "-subject", "-nameopt",
                                 "multiline", "-in", self.ca["ca"]], capture_output=True,
                                text=True, check=True).stdout
        cn = [l.split("=", 1)[1].strip() for l in issuer.splitlines() if "commonName" in l][0]
        problem = "unable to get local issuer certificate"
        with SimServer(self.dir, tls={"cert": self.ca["cert"], "key": self.ca["key"]}) as server:
            agent = Agent(self.dir, server, server_keys={"ca_file": wrong})
            agent.start()
            try:
                # Retries still happen (at debug level): at least five of them.
                wait_for(lambda: sum(1 for l in agent.log().splitlines()
                                     if " debug " in l and "next try in" in l) >= 5,
                         timeout=60, what="five retries")
            finally:
                self.assertEqual(agent.stop(), 0)
        lines = [l for l in agent.log().splitlines() if " debug " not in l]
        cause = [l for l in lines if "cannot reach the server" in l]
        self.assertEqual(len(cause), 1, "\n".join(lines))
        self.assertIn("(the certificate's issuer, %s, is not in ca_file)" % cn, cause[0])
        self.assertIn("run `connector-agent doctor`", cause[0])
        # The cause, not a line per retry: the token endpoint's line and the cause line,
        # the farewell heartbeat's at the stop, and reminders only at 8, 16, 32 ... tries.
        said = [l for l in lines if problem in l]
        reminders = [int(m.group(1)) for m in
                     (re.search(r"still no answer from the server after (\d+) more tries", l)
                      for l in said) if m]
        self.assertLessEqual(len(said) - len(reminders), 3, "\n".join(said))
        self.assertEqual(reminders, [8 << k for k in range(len(reminders))], "\n".join(said))
        self.assertEqual([l for l in lines if "next try in" in l], [])

    def test_wrong_name_refused(self):
        cert, key = wrong_name_cert(self.ca, os.path.join(self.tmp.name, "tls"))
        with SimServer(self.dir, generate=5, tls={"cert": cert, "key": key}) as server:
            rc, out, agent = self.once(server, ca_file=self.ca["ca"])
            self.assertNotEqual(rc, 0)
            self.assertRegex(out, r"does not match target host name|no alternative certificate subject name matches")
            self.assertEqual(agent.applied(), [])

    def test_mutual_tls(self):
        tls = {"cert": self.ca["cert"], "key": self.ca["key"], "client_ca": self.ca["ca"]}
        with SimServer(self.dir, generate=5, tls=tls) as server:
            rc, out, _ = self.once(server, ca_file=self.ca["ca"])
            self.assertNotEqual(rc, 0, "the server requires a client certificate")
            rc, out, agent = self.once(server, ca_file=self.ca["ca"],
                                       client_cert=self.ca["client_cert"],
                                       client_key=self.ca["client_key"])
            self.assertEqual(rc, 0, out)
            self.assertEqual(len(agent.applied()), 5)

    def test_public_key_pin(self):
        tls = {"cert": self.ca["cert"], "key": self.ca["key"]}
        with SimServer(self.dir, generate=5, tls=tls) as server:
            wrong = "sha256//" + base64.b64encode(b"\0" * 32).decode()
            rc, out, agent = self.once(server, ca_file=self.ca["ca"], pinned_pubkey=wrong)
            self.assertNotEqual(rc, 0)
            self.assertRegex(out, r"[Pp]ublic key does not match pinned public key")
            self.assertEqual(agent.applied(), [])
            rc, out, agent = self.once(server, ca_file=self.ca["ca"],
                                       pinned_pubkey=spki_pin(self.ca["cert"]))
            self.assertEqual(rc, 0, out)
            self.assertEqual(len(agent.applied()), 5)

    def test_plain_http_only_to_loopback(self):
        with SimServer(self.dir) as server:
            for url in ("http://10.1.2.3", "http://idm.example.com", "ftp://127.0.0.1"):
                agent = Agent(self.dir, server, server_keys={"url": url})
                rc, out = agent.run("--check-config")
                self.assertEqual(rc, 3, url + ": " + out)
                self.assertIn("url", out)
            for url in ("http://127.0.0.1:1", "http://localhost:1", "http://[::1]:1",
                        "https://idm.example.com"):
                agent = Agent(self.dir, server, server_keys={"url": url})
                rc, out = agent.run("--check-config")
                self.assertEqual(rc, 0, url + ": " + out)


if __name__ == "__main__":
    unittest.main(verbosity=2)

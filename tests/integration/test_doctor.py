# SPDX-License-Identifier: Apache-2.0
"""`connector-agent doctor` against the simulated server over HTTPS: every check passes on
a healthy setup, and each kind of breakage is named by the check it belongs to, with a
hint, exit code 1, and never the client secret in the output."""
import os
import re
import calendar
import email.utils
import http.server
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(__file__))
from harness import SimServer, free_port, make_order, make_test_ca  # noqa: E402
from agent_harness import Agent  # noqa: E402

SECRET = "test-secret"  # SimServer's client secret


class _Url:
    """What Agent needs of a server: its URL and client credentials."""

    def __init__(self, url, workdir, secret=SECRET):
        self.url = url
        self.client_id = "agent@test"
        self.secret_file = os.path.join(workdir, "fake.secret")
        fd = os.open(self.secret_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secret + "\n")


def lines(out):
    """{check name: (verdict, text)} from the doctor's report lines."""
    found = {}
    for line in out.splitlines():
        m = re.match(r"^\[(.{4})\] ([^:]+): (.*)$", line)
        if m:
            found[m.group(2)] = (m.group(1).strip(), m.group(3))
    return found


class ConnectProxy:
    """A minimal HTTP CONNECT proxy on 127.0.0.1 that records the tunnels it opened."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.tunnels = []
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn):
        try:
            conn.settimeout(10)
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 8192:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                head += chunk
            first = head.split(b"\r\n", 1)[0].decode()
            method, target, _ = first.split(" ", 2)
            if method != "CONNECT":
                conn.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
                return
            host, port = target.rsplit(":", 1)
            upstream = socket.create_connection((host, int(port)), timeout=10)
            self.tunnels.append(target)
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")

            def pump(a, b):
                try:
                    while True:
                        data = a.recv(65536)
                        if not data:
                            break
                        b.sendall(data)
                except OSError:
                    pass
                finally:
                    for s in (a, b):
                        try:
                            s.shutdown(socket.SHUT_RDWR)
                        except OSError:
                            pass

            t = threading.Thread(target=pump, args=(upstream, conn), daemon=True)
            t.start()
            pump(conn, upstream)
            t.join(10)
            upstream.close()
        except (OSError, ValueError):
            pass
        finally:
            conn.close()

    def close(self):
        self.stopping = True
        self.sock.close()


class SkewedServer:
    """A plain-http stand-in for the identity server on loopback whose Date header runs
    offset seconds ahead: the simulated server cannot lie about its clock."""

    def __init__(self, offset, echo=False):
        class Handler(http.server.BaseHTTPRequestHandler):
            def date_time_string(self, timestamp=None):
                return email.utils.formatdate(time.time() + offset, usegmt=True)

            def log_message(self, *args):
                pass

            def do_POST(self):
                form = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if echo:  # a careless server that repeats the request in its error
                    body = json.dumps({"error": "invalid_client",
                                       "error_description": "bad: " + form.decode()}).encode()
                    self.send_response(401)
                else:
                    body = json.dumps({"access_token": "tok", "token_type": "Bearer",
                                       "expires_in": 3600}).encode()
                    self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class DoctorTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="ca-doctor-")
        self.dir = self.tmp.name
        self.tls = make_test_ca(self.dir)

    def tearDown(self):
        self.tmp.cleanup()

    def server(self, **kw):
        kw.setdefault("connectors", ("c1",))
        return SimServer(self.dir, tls={"cert": self.tls["cert"], "key": self.tls["key"],
                                        "ca": self.tls["ca"]}, **kw)

    def agent(self, server, server_keys=None, connectors=None):
        keys = {"ca_file": self.tls["ca"]}
        keys.update(server_keys or {})
        return Agent(self.dir, server, server_keys=keys, connectors=connectors)

    def doctor(self, agent, env=None):
        clean = {k: "" for k in ("http_proxy", "https_proxy", "HTTPS_PROXY", "all_proxy",
                                 "ALL_PROXY", "no_proxy", "NO_PROXY")}
        clean.update(env or {})
        rc, out = agent.run("doctor", timeout=60, env=clean)
        self.assertNotIn(SECRET, out, "the client secret was printed")
        return rc, out, lines(out)

    def assert_ok(self, found, name, out):
        self.assertIn(name, found, out)
        self.assertEqual(found[name][0], "ok", out)

    def assert_fail(self, found, name, out):
        self.assertIn(name, found, out)
        self.assertEqual(found[name][0], "FAIL", out)

    def test_all_checks_pass(self):
        with self.server() as server:
            agent = self.agent(server)
            rc, out, found = self.doctor(agent)
            self.assertEqual(rc, 0, out)
            for name in ("DNS", "TCP", "TLS", "Clock", "Token", "Connector c1",
                         "Back-end c1 (testbackend)"):
                self.assert_ok(found, name, out)
            self.assertIn("127.0.0.1:%d" % server.port, found["TCP"][1])
            self.assertIn("ca-simserver test CA", found["TLS"][1])
            self.assertIn("all checks passed", out)
            self.assertNotIn("[FAIL]", out)
            self.assertNotIn("[skip]", out)
            self.assertEqual(server.state()["violations"], [])
            # It only reads: no result, no heartbeat.
            self.assertEqual(server.results(), [])
            self.assertEqual(server.heartbeats(), [])

    def test_through_a_connect_proxy(self):
        proxy = ConnectProxy()
        try:
            with self.server() as server:
                agent = self.agent(server)
                rc, out, found = self.doctor(
                    agent, env={"HTTPS_PROXY": "http://u:proxypass@127.0.0.1:%d" % proxy.port})
                self.assertEqual(rc, 0, out)
                self.assertIn("proxy 127.0.0.1:%d (HTTPS_PROXY)" % proxy.port, found["TCP"][1])
                self.assertIn("127.0.0.1:%d" % server.port, proxy.tunnels)
                self.assertNotIn("proxypass", out, "the proxy's password was printed")
        finally:
            proxy.close()

    def test_proxy_cannot_reach_the_server(self):
        proxy = ConnectProxy()
        try:
            with self.server() as server:
                agent = self.agent(server, server_keys={
                    "url": "https://no-such-host.invalid:%d" % server.port})
                rc, out, found = self.doctor(
                    agent, env={"https_proxy": "127.0.0.1:%d" % proxy.port})
                self.assertEqual(rc, 1, out)
                # Behind a proxy a name that does not resolve here is no failure yet.
                self.assertEqual(found["DNS"][0], "WARN", out)
                self.assertIn("the proxy 127.0.0.1:%d (https_proxy) resolves it" % proxy.port,
                              found["DNS"][1])
                self.assert_fail(found, "TCP", out)
                self.assertIn("through the proxy 127.0.0.1:%d" % proxy.port, found["TCP"][1])
                self.assertIn("The proxy did not open the tunnel", found["TCP"][1])
                self.assertEqual(found["Token"][0], "skip", out)
        finally:
            proxy.close()

    def test_wrong_ca_names_the_issuer(self):
        other = make_test_ca(os.path.join(self.dir, "other"))
        with self.server() as server:
            agent = self.agent(server, server_keys={"ca_file": other["ca"]})
            rc, out, found = self.doctor(agent)
            self.assertEqual(rc, 1, out)
            self.assert_ok(found, "TCP", out)
            self.assert_fail(found, "TLS", out)
            text = found["TLS"][1]
            self.assertIn("issued by 'ca-simserver test CA'", text)
            self.assertIn("not by a CA this host trusts", text)
            self.assertIn("ca_file", text)
            # Both CAs have the same name: the report says the key differs.
            self.assertIn("another key", text)
            self.assertEqual(found["Token"][0], "skip", out)
            self.assertEqual(found["Connector c1"][0], "skip", out)
            # Nothing was sent over the unverified connection.
            self.assertEqual([r for r in server.requests() if r["path"].startswith("/connect")
                              or r["path"].startswith("/api")], [])

    def leaf(self, name, san, days):
        """A server certificate from the test CA: returns SimServer's tls dict."""
        d = os.path.join(self.dir, "tls")
        with open(os.path.join(d, name + ".ext"), "w") as f:
            f.write("subjectAltName=%s\nbasicConstraints=CA:FALSE\n"
                    "extendedKeyUsage=serverAuth\n" % san)
        for args in (["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=" + name,
                      "-keyout", name + ".key", "-out", name + ".csr"],
                     ["x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                      "-CAcreateserial", "-days", str(days), "-extfile", name + ".ext",
                      "-out", name + ".pem"]):
            subprocess.run(["openssl"] + args, cwd=d, check=True, timeout=60,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.chmod(os.path.join(d, name + ".key"), 0o600)
        return {"cert": os.path.join(d, name + ".pem"), "key": os.path.join(d, name + ".key")}

    def test_hostname_mismatch(self):
        tls = self.leaf("idm.example.com", "DNS:idm.example.com", 2)
        with SimServer(self.dir, connectors=("c1",), tls=tls) as server:
            agent = self.agent(server)
            rc, out, found = self.doctor(agent)
            self.assertEqual(rc, 1, out)
            self.assert_fail(found, "TLS", out)
            self.assertIn("hostname mismatch", found["TLS"][1])
            self.assertIn("valid for idm.example.com, not for 127.0.0.1", found["TLS"][1])

    def test_expired_certificate(self):
        tls = self.leaf("expired", "IP:127.0.0.1", -1)  # notAfter a day before notBefore
        with SimServer(self.dir, connectors=("c1",), tls=tls) as server:
            agent = self.agent(server)
            rc, out, found = self.doctor(agent)
            self.assertEqual(rc, 1, out)
            self.assert_fail(found, "TLS", out)
            m = re.search(r"certificate 'expired' expired on (\S+ \S+) UTC", found["TLS"][1])
            self.assertIsNotNone(m, out)
            ended = calendar.timegm(time.strptime(m.group(1), "%Y-%m-%d %H:%M"))
            self.assertLess(abs(time.time() - 86400 - ended), 600, out)
            self.assertIn("clock", found["TLS"][1])

    def test_pinned_key_mismatch(self):
        with self.server() as server:
            agent = self.agent(server, server_keys={
                "pinned_pubkey": "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="})
            rc, out, found = self.doctor(agent)
            self.assertEqual(rc, 1, out)
            self.assert_fail(found, "TLS", out)
            self.assertIn("does not match pinned_pubkey", found["TLS"][1])
            self.assertRegex(found["TLS"][1], r"sha256//[A-Za-z0-9+/]{43}=")

    def test_unreachable_port(self):
        with self.server() as server:
            port = free_port()
            agent = self.agent(server, server_keys={"url": "https://127.0.0.1:%d" % port})
            start = time.monotonic()
            rc, out, found = self.doctor(agent)
            self.assertLess(time.monotonic() - start, 30)
            self.assertEqual(rc, 1, out)
            self.assert_ok(found, "DNS", out)
            self.assert_fail(found, "TCP", out)
            self.assertIn("127.0.0.1:%d" % port, found["TCP"][1])
            for name in ("TLS", "Clock", "Token", "Connector c1"):
                self.assertEqual(found[name][0], "skip", out)
            # The back-end does not depend on the server: still checked.
            self.assert_ok(found, "Back-end c1 (testbackend)", out)

    def test_unresolvable_host(self):
        with self.server() as server:
            agent = self.agent(server, server_keys={
                "url": "https://no-such-host.invalid:%d" % server.port})
            rc, out, found = self.doctor(agent)
            self.assertEqual(rc, 1, out)
            self.assert_fail(found, "DNS", out)
            self.assertIn("cannot resolve no-such-host.invalid: no such name", found["DNS"][1])
            self.assertIn("HTTPS_PROXY", found["DNS"][1])
            for name in ("TCP", "TLS", "Token", "Connector c1"):
                self.assertEqual(found[name][0], "skip", out)

    def test_client_certificate(self):
        tls = {"cert": self.tls["cert"], "key": self.tls["key"], "ca": self.tls["ca"],
               "client_ca": self.tls["ca"], "client_cert": self.tls["client_cert"],
               "client_key": self.tls["client_key"]}
        with SimServer(self.dir, connectors=("c1",), tls=tls) as server:
            agent = self.agent(server)
            rc, out, found = self.doctor(agent)
            self.assertEqual(rc, 1, out)
            self.assert_fail(found, "Token", out)
            self.assertIn("client_cert", found["Token"][1])
            self.assertEqual(found["TLS"][0], "WARN", out)
            self.assertIn("asks for a client certificate", found["TLS"][1])
            agent.server_keys.update(client_cert=self.tls["client_cert"],
                                     client_key=self.tls["client_key"])
            agent.write_config()
            rc, out, found = self.doctor(agent)
            self.assertEqual(rc, 0, out)
            self.assertIn("client certificate offered", found["TLS"][1])

    def test_clock_skew(self):
        for offset, verdict, code in ((600, "FAIL", 1), (-150, "WARN", 0), (20, "ok", 0)):
            fake = SkewedServer(offset)
            try:
                agent = Agent(self.dir, _Url(fake.url, self.dir))
                rc, out, found = self.doctor(agent)
            finally:
                fake.close()
            self.assertEqual(found["Clock"][0], verdict, out)
            self.assertEqual(rc, code, out)
            if offset > 60:
                # The Date header has one-second resolution, so the measured skew
                # may be one more than the offset the fake server applies.
                self.assertRegex(found["Clock"][1],
                                 r"\b(%d|%d) s behind the server" % (offset, offset + 1))
                self.assertIn("timedatectl", found["Clock"][1])
            self.assert_ok(found, "Token", out)
            self.assert_ok(found, "Connector c1", out)

    def test_secret_echoed_by_server_not_printed(self):
        for secret in (SECRET, "p@ss w/rd+%&="):
            fake = SkewedServer(0, echo=True)
            try:
                agent = Agent(self.dir, _Url(fake.url, self.dir, secret))
                rc, out, found = self.doctor(agent)
            finally:
                fake.close()
            self.assertEqual(rc, 1, out)
            self.assert_fail(found, "Token", out)
            self.assertIn("client_id=agent@test", found["Token"][1])
            self.assertIn("client_secret=(secret)&scope", found["Token"][1])
            self.assertNotIn(secret, out)
            self.assertNotIn(urllib.parse.quote(secret, safe=""), out)

    def test_wrong_secret_refused(self):
        with self.server() as server:
            agent = self.agent(server)
            bad = os.path.join(self.dir, "bad.secret")
            fd = os.open(bad, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write("wrong-secret-value\n")
            agent.server_keys["client_secret_file"] = bad
            agent.write_config()
            rc, out, found = self.doctor(agent)
            self.assertEqual(rc, 1, out)
            self.assert_ok(found, "TLS", out)
            self.assert_ok(found, "Clock", out)
            self.assert_fail(found, "Token", out)
            self.assertIn("401", found["Token"][1])
            self.assertIn("client_id", found["Token"][1])
            self.assertNotIn("wrong-secret-value", out)
            self.assertEqual(found["Connector c1"][0], "skip", out)

    def test_unknown_connector(self):
        with self.server(connectors=("c1",)) as server:
            connectors = {
                "c1": {"backend": "testbackend",
                       "state_file": os.path.join(self.dir, "c1.txt")},
                "nosuch": {"backend": "testbackend",
                           "state_file": os.path.join(self.dir, "nosuch.txt")},
            }
            agent = self.agent(server, connectors=connectors)
            rc, out, found = self.doctor(agent)
            self.assertEqual(rc, 1, out)
            self.assert_ok(found, "Connector c1", out)
            self.assert_fail(found, "Connector nosuch", out)
            self.assertIn("does not know connector nosuch or refuses this agent",
                          found["Connector nosuch"][1])

    def test_backend_down(self):
        with self.server() as server:
            down = os.path.join(self.dir, "down")
            open(down, "w").close()
            connectors = {"c1": {"backend": "testbackend",
                                 "state_file": os.path.join(self.dir, "c1.txt"),
                                 "down_file": down}}
            agent = self.agent(server, connectors=connectors)
            rc, out, found = self.doctor(agent)
            self.assertEqual(rc, 1, out)
            self.assert_ok(found, "Connector c1", out)
            self.assert_fail(found, "Back-end c1 (testbackend)", out)
            self.assertIn(down, found["Back-end c1 (testbackend)"][1])

    def test_read_order_is_delivered_again(self):
        orders = [make_order(i, "c1") for i in range(3)]
        with self.server(orders={"c1": orders}, lease=1) as server:
            agent = self.agent(server)
            rc, out, found = self.doctor(agent)
            self.assertEqual(rc, 0, out)
            self.assertIn("orders are waiting", found["Connector c1"][1])
            state = server.state()
            self.assertEqual(sum(o["results"] for o in state["orders"]), 0)
            self.assertLessEqual(sum(o["delivered"] for o in state["orders"]), 1)
            self.assertEqual(server.results(), [])
            time.sleep(1.5)  # past the lease
            rc, out = agent.run("--once")
            self.assertEqual(rc, 0, out)
            state = server.state()
            self.assertEqual(state["violations"], [])
            for o in state["orders"]:
                self.assertEqual(o["results"], 1, "order %s answered %d times"
                                 % (o["key"], o["results"]))
            self.assertEqual(sorted(agent.applied()), sorted(o["Id"] for o in orders))


if __name__ == "__main__":
    unittest.main(verbosity=2)

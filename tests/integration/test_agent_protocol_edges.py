# SPDX-License-Identifier: Apache-2.0
"""The agent at the edges of the wire contract (protocol.md): a ContinuationToken of any
length the server chooses goes back whole, or is refused whole with a clear error; the
client id's '@' goes as is; a refused token request is named as such; a request that
libcurl silently sends again is logged and counted."""
import os
import sys
import tempfile
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from harness import SimServer, free_port  # noqa: E402
from agent_harness import Agent, wait_for  # noqa: E402

N = 10
CONTINUATION_MAX = 65536  # API_CONTINUATION_MAX in agent/net/api.h


def all_answered(server, n):
    orders = server.state()["orders"]
    return len(orders) >= n and all(o["results"] > 0 for o in orders)


class EdgeTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="ca-edges-")
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def agent(self, server, name, server_keys=None, agent_keys=None, **kw):
        state = os.path.join(self.dir, name + "-applied")
        agent = Agent(self.dir, server, name=name, server_keys=server_keys,
                      agent=dict({"shutdown_deadline": "5s"}, **(agent_keys or {})),
                      connectors={"c1": {"backend": "testbackend", "poll_interval": "1s",
                                         "state_file": state}}, **kw)
        agent.applied_file = state
        return agent

    def page_through(self, token_bytes):
        """N orders in pages of 3, each page's ContinuationToken token_bytes long."""
        with SimServer(self.dir, connectors=("c1",), generate=N, generate_connector="c1",
                       page_size=3, extra_args=("--continuation-bytes", str(token_bytes))) as server:
            agent = self.agent(server, "agent-%d" % token_bytes, server_keys={"page_size": "3"})
            agent.start()
            try:
                wait_for(lambda: all_answered(server, N), timeout=30,
                         what="every order answered with %d-byte tokens" % token_bytes)
            finally:
                rc = agent.stop()
            log = agent.log()
            self.assertEqual(rc, 0, log[-3000:])
            state = server.state()
            self.assertEqual(state["violations"], [])
            self.assertTrue(all(o["results"] == 1 for o in state["orders"]), "answered twice")
            paged = [r for r in server.requests()
                     if "ContinuationToken=" in (r.get("query") or "")]
            return log, paged

    def test_long_continuation_tokens_go_back_whole(self):
        for n in (2047, 2048, 4096, CONTINUATION_MAX):
            with self.subTest(token_bytes=n):
                log, paged = self.page_through(n)
                self.assertTrue(paged, "no page was asked for with its token")
                self.assertTrue(all(r["status"] == 200 for r in paged), paged[:1])
                self.assertNotIn("ContinuationToken of", log)

    def test_over_long_continuation_token_refused_whole(self):
        log, paged = self.page_through(CONTINUATION_MAX + 1)
        self.assertEqual(paged, [], "an over-long token was sent")
        self.assertIn("the server sent a ContinuationToken of %d bytes, longer than the %d "
                      "the agent carries: paging starts over" % (CONTINUATION_MAX + 1,
                                                                 CONTINUATION_MAX), log)

    def test_client_id_at_sent_as_is(self):
        # The simulated server refuses "Job%40idm.example.com" as a violation.
        server = SimServer(self.dir, connectors=("c1",), generate=3, generate_connector="c1")
        server.client_id = "Job@idm.example.com"
        with server:
            agent = self.agent(server, "agent-at")
            agent.start()
            try:
                wait_for(lambda: all_answered(server, 3), timeout=30, what="orders answered")
            finally:
                agent.stop()
            self.assertEqual(server.state()["violations"], [])
            self.assertEqual(server.state()["token_requests"], 1)

    def test_refused_credentials_named_as_such(self):
        with SimServer(self.dir, connectors=("c1",), generate=3, generate_connector="c1") as server:
            wrong = os.path.join(self.dir, "wrong-secret")
            with open(wrong, "w") as f:
                f.write("not-the-secret\n")
            os.chmod(wrong, 0o600)
            agent = self.agent(server, "agent-refused", server_keys={"client_secret_file": wrong})
            agent.start()
            token_url = server.url + "/connect/token"
            try:
                wait_for(lambda: "ProvisioningData for c1 failed" in agent.log(), timeout=30,
                         what="the poll held back")
            finally:
                agent.stop()
            log = agent.log()
            # No ProvisioningData request was made: nothing may say it was answered.
            self.assertNotIn("ProvisioningData for c1 answered", log)
            self.assertNotIn("HTTP 401", "\n".join(l for l in log.splitlines()
                                                  if "ProvisioningData" in l and
                                                  "token request" not in l))
            self.assertIn("ProvisioningData for c1 failed: not sent, no access token: token "
                          "request to %s: the server refused the client credentials (HTTP 401)"
                          % token_url, log)
            self.assertFalse([r for r in server.requests() if "ProvisioningData" in r["path"]])
            self.assertNotIn("not-the-secret", log)

    def test_heartbeat_answer_through_the_guarded_parser(self):
        deep = '{"LatestVersion": "9.9.9", "x": %s%s}' % ("[" * 64, "]" * 64)
        fine = '{"LatestVersion": "9.9.8", "x": %s%s}' % ("[" * 63, "]" * 63)
        with SimServer(self.dir, connectors=("c1",)) as server:
            server.fault("heartbeat", "status", count=1, status=200, body=deep)
            server.fault("heartbeat", "status", count=1, status=200, body=fine)
            agent = self.agent(server, "agent-hb")
            agent.start()
            try:
                wait_for(lambda: "9.9.8" in agent.log(), timeout=30, what="second heartbeat")
            finally:
                agent.stop()
            log = agent.log()
            self.assertIn("heartbeat answer: nested deeper than 64 levels", log)
            self.assertNotIn("9.9.9", log)

    def test_silent_resend_logged_and_counted(self):
        port = free_port()
        with SimServer(self.dir, connectors=("c1",)) as server:
            agent = self.agent(server, "agent-resend", agent_keys={"status_port": str(port)})
            agent.start()
            metrics = "http://127.0.0.1:%d/metrics" % port
            try:
                polls = lambda: [r for r in server.requests()
                                 if "ProvisioningData" in r["path"] and r["status"] == 200]
                wait_for(lambda: len(polls()) >= 2, timeout=30, what="two polls")
                # Between polls the connection waits in libcurl's pool; the server drops
                # the next request on it without an answer, and libcurl sends it again.
                server.fault("data", "drop", count=1)
                before = len(polls())
                wait_for(lambda: len(polls()) > before, timeout=30, what="the poll after the drop")
                wait_for(lambda: "sent the request again" in agent.log(), timeout=10,
                         what="the resend logged")
                text = urllib.request.urlopen(metrics, timeout=5).read().decode()
            finally:
                agent.stop()
            line = next(l for l in agent.log().splitlines() if "sent the request again" in l)
            self.assertIn(" info ", line)
            self.assertIn("GET %s/api/Connectors/Provisioning/ProvisioningData/c1:" % server.url,
                          line)
            self.assertIn("(1 time)", line)
            self.assertIn("connector_agent_http_resent_total 1\n", text)
            drops = [r for r in server.requests() if r["status"] == 0]
            self.assertEqual(len(drops), 1, drops)


if __name__ == "__main__":
    unittest.main()

# SPDX-License-Identifier: Apache-2.0
"""The pipeline under load and faults (issue 12): thousands of orders with a fifth of the
API calls failing are all answered, a failed results PUT does not stop delivery, and
during an outage the request rate follows the backoff (a follow-up page fetch waits out
a Retry-After and the backoff even while orders finish)."""
import os
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from harness import SimServer, free_port  # noqa: E402
from agent_harness import Agent, wait_for  # noqa: E402

LOAD_ORDERS = 2000
FAULT_SHARE = 0.20


def answered(server):
    return sum(1 for o in server.state()["orders"] if o["results"] > 0)


class FaultFeeder(threading.Thread):
    """Keeps the simulated server's fault queue topped up so that about FAULT_SHARE of
    all requests fail: 500, 503 with Retry-After: 1, and dropped connections in turn."""

    KINDS = (dict(kind="status", status=500), dict(kind="status", status=503, retry_after="1"),
             dict(kind="drop"))

    def __init__(self, server):
        super().__init__(daemon=True)
        self.server = server
        self.injected = 0
        self.stop_event = threading.Event()

    def run(self):
        while not self.stop_event.is_set():
            seen = len(self.server.requests())
            while self.injected < int(FAULT_SHARE * (seen + 1)) + 1:
                self.server.fault("any", **self.KINDS[self.injected % len(self.KINDS)])
                self.injected += 1
            self.stop_event.wait(0.02)

    def stop(self):
        self.stop_event.set()
        self.join(10)


class LoadFaultTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="ca-loadfaults-")
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def agent(self, server, name, **connector):
        keys = {"backend": "testbackend", "poll_interval": "1s",
                "state_file": os.path.join(self.dir, name + "-applied")}
        keys.update(connector)
        a = Agent(self.dir, server, name=name, agent={"shutdown_deadline": "5s",
                                                      "log_level": "info"},
                  connectors={"c1": keys})
        a.applied_file = keys["state_file"]
        return a

    def test_every_result_delivered_with_a_fifth_of_calls_failing(self):
        with SimServer(self.dir, connectors=("c1",), generate=LOAD_ORDERS,
                       generate_connector="c1", page_size=100, lease=600) as server:
            # Orders keep finishing while results are reported: the journal's commits and
            # the reporter's retries overlap, which is where delivery used to stop.
            agent = self.agent(server, "load", delay="10ms", max_parallel="2")
            feeder = FaultFeeder(server)
            feeder.start()
            agent.start()
            try:
                wait_for(lambda: answered(server) >= LOAD_ORDERS, timeout=240, interval=0.5,
                         what="every result with %d%% of calls failing" % (FAULT_SHARE * 100))
                reqs = server.requests()
            finally:
                feeder.stop()
                rc = agent.stop()
            log = agent.log()
            self.assertEqual(rc, 0, log[-3000:])
            failed = sum(1 for r in reqs if r["status"] not in (200, 204))
            # The faults really bit: a fifth of the calls, give or take the feeder's lag.
            self.assertGreaterEqual(failed, 0.1 * len(reqs), "faults: %d of %d" % (failed, len(reqs)))
            state = server.state()
            self.assertEqual(state["violations"], [])
            self.assertEqual(len(state["orders"]), LOAD_ORDERS)
            self.assertTrue(all(o["results"] >= 1 for o in state["orders"]))
            applied = agent.applied()
            self.assertEqual(len(applied), LOAD_ORDERS)
            self.assertEqual(len(applied), len(set(applied)), "an order applied twice")

    def test_outage_rate_bounded_and_retry_after_on_follow_up_pages(self):
        # Slow orders and small pages: orders finish all through the paging, which is what
        # used to re-arm the poll timer at 0.
        with SimServer(self.dir, connectors=("c1",), generate=600, generate_connector="c1",
                       page_size=20, lease=600) as server:
            agent = self.agent(server, "outage", delay="20ms", max_in_flight="40")
            agent.start()
            try:
                wait_for(lambda: answered(server) >= 40, timeout=60, what="paging under way")
                server.fault("data", "status", count=1, status=429, retry_after="2")
                t0 = time.monotonic()
                wait_for(lambda: any(r["status"] == 429 for r in server.requests()), timeout=20,
                         what="the 429")
                # A 500 outage of the data and results endpoints, about 20 s.
                server.fault("data", "status", count=1000, status=500)
                server.fault("results", "status", count=1000, status=500)
                time.sleep(20)
                reqs = server.requests()
                server.reset()
                wait_for(lambda: answered(server) >= 600, timeout=180, interval=0.5,
                         what="every result after the outage")
            finally:
                rc = agent.stop()
            log = agent.log()
            self.assertEqual(rc, 0, log[-3000:])
            data = [r for r in reqs if "ProvisioningData" in r["path"]]
            i = next(i for i, r in enumerate(data) if r["status"] == 429)
            self.assertLess(i + 1, len(data), "no request after the 429")
            gap = data[i + 1]["at_ms"] - data[i]["at_ms"]
            self.assertGreaterEqual(gap, 2000, "next page %d ms after Retry-After: 2" % gap)
            failing = [r for r in reqs if r["status"] == 500]
            self.assertGreater(len(failing), 0)
            start, end = failing[0]["at_ms"], failing[-1]["at_ms"]
            span = max(1.0, (end - start) / 1000.0)
            polls = sum(1 for r in failing if "ProvisioningData" in r["path"])
            puts = sum(1 for r in failing if "ProvisioningResults" in r["path"])
            # Exponential backoff from 1 s with full jitter: a handful of tries per
            # endpoint in 20 s (at 3aee884: 20 polls per second).
            self.assertLessEqual(polls, 15, "%d polls in %.1f s of outage" % (polls, span))
            self.assertLessEqual(puts, 15, "%d results PUTs in %.1f s of outage" % (puts, span))
            self.assertEqual(server.state()["violations"], [])
            applied = agent.applied()
            self.assertEqual(len(applied), len(set(applied)), "an order applied twice")

    def test_hung_server_is_not_ready_and_said(self):
        """Issue 12 item 7: a server that takes requests and never answers is seen within a
        heartbeat interval (not at the 60 s request timeout): /readyz says so, the log too."""
        port = free_port()
        with SimServer(self.dir, connectors=("c1",), generate=5, generate_connector="c1") as server:
            agent = Agent(self.dir, server, name="hung",
                          agent={"status_port": str(port), "shutdown_deadline": "2s"},
                          server_keys={"request_timeout": "60s"},
                          connectors={"c1": {"backend": "testbackend", "poll_interval": "1s",
                                             "state_file": os.path.join(self.dir, "hung-applied")}})
            agent.applied_file = agent.connectors["c1"]["state_file"]
            base = "http://127.0.0.1:%d" % port
            agent.start()
            try:
                wait_for(lambda: ready(base) == 200, timeout=30, what="ready")
                server.fault("any", "slow", count=1000, delay_ms=8000)
                t0 = time.monotonic()
                wait_for(lambda: ready(base) == 503, timeout=15, what="not ready while hung")
                silent_after = time.monotonic() - t0
                wait_for(lambda: "may hang" in agent.log(), timeout=5, what="the log line")
                self.assertLess(silent_after, 8, "hung server seen after %.1f s" % silent_after)
                server.reset()
                wait_for(lambda: ready(base) == 200, timeout=30, what="ready again")
                self.assertIn("answers again", agent.log())
            finally:
                rc = agent.stop()
            self.assertEqual(rc, 0, agent.log()[-3000:])


def ready(base):
    try:
        with urllib.request.urlopen(base + "/readyz", timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


if __name__ == "__main__":
    unittest.main(verbosity=2)

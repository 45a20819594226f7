# SPDX-License-Identifier: Apache-2.0
"""SIGHUP does not keep old configurations: each replaced one is freed once the jobs
submitted under it are back, while orders keep flowing and none is lost or run twice.

Before, every reload kept the whole previous configuration, secrets included, until the
agent exited (RSS 13.8 -> 20.4 MB after 5,000 reloads of a small one). With 60
resource-type sections a configuration is tens of kilobytes, so 1,000 kept ones would
add well over 10 MB; the bound below allows allocator noise only."""
import collections
import os
import socket
import signal
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import SimServer  # noqa: E402
from agent_harness import Agent, wait_for  # noqa: E402

RELOADS = 1000
ORDERS = 2000
MAX_GROWTH_KB = 3 * 1024


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def held(port):
    import urllib.request
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("connector_agent_configurations_held "):
                return int(line.split()[1])
    raise AssertionError("no connector_agent_configurations_held in /metrics")


def reloads(port):
    """Reloads applied (a reload that changes nothing is not logged: the metric counts)."""
    import urllib.request
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith('connector_agent_reloads_total{outcome="applied"} '):
                return int(line.split()[1])
    raise AssertionError("no connector_agent_reloads_total in /metrics")


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


class ReloadTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="ca-reload-")
        self.dir = self.tmp.name

    def tearDown(self):
        if not os.environ.get("KEEP"):
            self.tmp.cleanup()

    def test_reloads_free_old_configurations_while_orders_flow(self):
        with SimServer(self.dir, generate=ORDERS, page_size=100) as server:
            types = {"User": {"connector": "c1"}}
            for i in range(60):
                types["Other%02d" % i] = {"connector": "c1", "description": "x" * 200}
            port = free_port()
            agent = Agent(self.dir, server, resource_types=types,
                          agent={"log_level": "notice", "status_port": str(port)})
            agent.start()
            try:
                wait_for(lambda: "started" in agent.log(), what="agent started")
                # Warm up: the first reloads allocate what later ones reuse.
                for _ in range(20):
                    agent.signal(signal.SIGHUP)
                    time.sleep(0.005)
                wait_for(lambda: reloads(port) >= 1, what="first reload")
                time.sleep(0.5)
                before = rss_kb(agent.proc.pid)
                with open("/proc/%d/maps" % agent.proc.pid) as f:
                    sanitized = "libasan" in f.read()
                done = reloads(port)
                for _ in range(RELOADS):
                    agent.signal(signal.SIGHUP)
                    time.sleep(0.003)
                # Signals may coalesce; what counts is how many reloads happened.
                time.sleep(1)
                applied = reloads(port) - done
                wait_for(lambda: len(server.results()) >= ORDERS, timeout=90,
                         what="every order answered")
                # The status timer frees what finished jobs released: at most the current
                # configuration and the one the connectors were built with stay.
                wait_for(lambda: held(port) <= 2, timeout=15, what="old configurations freed")
                after = rss_kb(agent.proc.pid)
            finally:
                self.assertEqual(agent.stop(), 0, agent.log()[-3000:])
            print("reload test: %d reloads, RSS %d -> %d kB" % (applied, before, after),
                  file=sys.stderr)
            self.assertGreaterEqual(applied, RELOADS // 4, "too few reloads happened")
            self.assertNotIn("nothing changed", agent.log())  # said nothing (log_level notice)
            # Under AddressSanitizer freed memory waits in its quarantine: RSS says nothing
            # there, the gauge above does.
            if not sanitized:
                self.assertLess(after - before, MAX_GROWTH_KB)
            counts = collections.Counter(agent.applied())
            self.assertEqual(len(counts), ORDERS)
            self.assertEqual(max(counts.values()), 1, "an order applied twice")


if __name__ == "__main__":
    unittest.main()

# SPDX-License-Identifier: Apache-2.0
"""What an operator sees: the status endpoint (/healthz, /readyz, /metrics checked by a
strict Prometheus parser), the watchdog withheld while a worker is wedged, native
journald entries with structured fields, and colour only on a terminal."""
import json
import os
import pty
import select
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from harness import SimServer, free_port, make_order  # noqa: E402
from agent_harness import Agent, AGENT_BIN, wait_for  # noqa: E402
from test_agent_life import NotifyListener  # noqa: E402
import prometheus_text  # noqa: E402


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode(), r.headers.get("Content-Type")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), e.headers.get("Content-Type")
    except (urllib.error.URLError, ConnectionError):
        return 0, "", None  # not listening (yet)


class StatusTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="ca-status-")
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def test_parser_refuses_bad_expositions(self):
        bad = [
            "x 1",  # no newline at the end
            "x 1\n",  # no TYPE
            "# TYPE x gauge\nx one\n",
            "# TYPE x_total counter\nx_total{a=\"1\"} 1\nx_total{a=\"1\"} 2\n",
            "# TYPE x counter\nx 1\n",
            "# TYPE x gauge\nx{a=\"\\q\"} 1\n",
            "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
            "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",
        ]
        for text in bad:
            with self.assertRaises(prometheus_text.FormatError, msg=text):
                prometheus_text.parse(text)

    def test_metrics_health_and_readiness(self):
        port = free_port()
        orders = [make_order(i, "c1") for i in range(1, 6)]
        orders[4]["Arguments"] = {"test_outcome": "errored"}
        with SimServer(self.dir, orders={"c1": orders}) as server:
            agent = Agent(self.dir, server, agent={"status_port": str(port)})
            base = "http://127.0.0.1:%d" % port
            agent.start()
            try:
                wait_for(lambda: all(o["results"] for o in server.state()["orders"]),
                         what="all answered")
                wait_for(lambda: get(base + "/readyz")[0] == 200, what="ready")
                self.assertEqual(get(base + "/healthz")[0], 200)
                wait_for(lambda: "connector_agent_results_pending{connector=\"c1\"} 0"
                         in get(base + "/metrics")[1], what="no pending results")
                status, text, ctype = get(base + "/metrics")
                self.assertEqual(status, 200)
                self.assertTrue(ctype.startswith("text/plain; version=0.0.4"), ctype)
                fams = prometheus_text.parse(text)
                def value(name, **labels):
                    for fam in fams.values():
                        for n, l, v in fam["samples"]:
                            if n == name and all(l.get(k) == w for k, w in labels.items()):
                                return v
                    self.fail("no sample %s %s" % (name, labels))
                self.assertEqual(value("connector_agent_orders_total", connector="c1",
                                       change_type="Added", outcome="executed"), 4)
                self.assertEqual(value("connector_agent_orders_total", connector="c1",
                                       change_type="Added", outcome="errored"), 1)
                self.assertEqual(value("connector_agent_orders_received_total", connector="c1"), 5)
                self.assertEqual(value("connector_agent_token_requests_total"), 1)
                self.assertEqual(value("connector_agent_server_connected"), 1)
                self.assertEqual(value("connector_agent_target_up", connector="c1"), 1)
                self.assertGreaterEqual(value("connector_agent_poll_duration_seconds_count",
                                              connector="c1"), 1)
                self.assertGreaterEqual(value("connector_agent_report_duration_seconds_count",
                                              connector="c1"), 1)
                self.assertGreaterEqual(value("connector_agent_heartbeat_age_seconds"), 0)
                # Back-end time by change type: 5 Added (4 executed, 1 errored), nothing else.
                self.assertEqual(value("connector_agent_order_duration_seconds_count",
                                       connector="c1", change_type="Added"), 5)
                self.assertEqual(value("connector_agent_order_duration_seconds_bucket",
                                       connector="c1", change_type="Added", le="+Inf"), 5)
                self.assertEqual(value("connector_agent_order_duration_seconds_count",
                                       connector="c1", change_type="Deleted"), 0)
                self.assertEqual(fams["connector_agent_order_duration_seconds"]["type"],
                                 "histogram")
                # The process family, with values that fit this process.
                pid = agent.proc.pid
                with open("/proc/%d/stat" % pid) as f:
                    ticks = int(f.read().rsplit(")", 1)[1].split()[19])
                with open("/proc/stat") as f:
                    boot = next(float(l.split()[1]) for l in f if l.startswith("btime"))
                start = boot + ticks / os.sysconf("SC_CLK_TCK")
                self.assertLess(abs(value("process_start_time_seconds") - start), 2.0)
                self.assertGreater(value("process_cpu_seconds_total"), 0)
                self.assertEqual(fams["process_cpu_seconds_total"]["type"], "counter")
                rss = value("process_resident_memory_bytes")
                self.assertGreater(rss, 1 << 20)
                self.assertLess(rss, 1 << 31)
                fds = len(os.listdir("/proc/%d/fd" % pid))
                self.assertLess(abs(value("process_open_fds") - fds), 3)
                self.assertGreater(value("process_max_fds"), value("process_open_fds"))
                # / lists the endpoints.
                status, text, ctype = get(base + "/")
                self.assertEqual(status, 200)
                self.assertTrue(ctype.startswith("text/plain"), ctype)
                for path in ("/healthz", "/readyz", "/metrics"):
                    self.assertIn(path, text)
                self.assertEqual(fams["connector_agent_build_info"]["samples"][0][1]["version"],
                                 agent.run("--version")[1].split()[1])
                self.assertEqual(get(base + "/nothing")[0], 404)
                # The server goes away: not ready any more, still healthy.
                server.fault("any", "status", status=503, count=100000)
                server.fault("any", "expire_token")
                wait_for(lambda: get(base + "/readyz")[0] == 503, timeout=30, what="not ready")
                self.assertEqual(get(base + "/healthz")[0], 200)
            finally:
                self.assertEqual(agent.stop(), 0)

    def test_heartbeat_age_absent_until_accepted(self):
        port = free_port()
        with SimServer(self.dir, generate=1) as server:
            server.fault("heartbeat", "status", status=503, count=100000)
            agent = Agent(self.dir, server, agent={"status_port": str(port)})
            base = "http://127.0.0.1:%d" % port
            agent.start()
            try:
                wait_for(lambda: get(base + "/metrics")[0] == 200, what="metrics")
                wait_for(lambda: "heartbeat answered HTTP 503" in agent.log(),
                         what="a heartbeat refused")
                fams = prometheus_text.parse(get(base + "/metrics")[1])
                fam = fams["connector_agent_heartbeat_age_seconds"]
                self.assertEqual(fam["type"], "gauge")
                self.assertEqual(fam["samples"], [], "a sample before any heartbeat was accepted")
                server.reset()
                def age():
                    fam = prometheus_text.parse(get(base + "/metrics")[1])[
                        "connector_agent_heartbeat_age_seconds"]
                    return fam["samples"]
                samples = wait_for(age, timeout=15, what="a heartbeat accepted")
                self.assertGreaterEqual(samples[0][2], 0)
            finally:
                self.assertEqual(agent.stop(), 0)

    def test_wedged_worker_withholds_watchdog(self):
        listener = NotifyListener(self.dir)
        port = free_port()
        orders = [make_order(1, "c1")]
        orders[0]["Arguments"] = {"test_outcome": "hang:4000"}
        try:
            with SimServer(self.dir, orders={"c1": orders}) as server:
                agent = Agent(self.dir, server, agent={"status_port": str(port),
                                                       "shutdown_deadline": "8s"},
                              connectors={"c1": {"backend": "testbackend", "order_timeout": "300ms",
                                                 "state_file": os.path.join(self.dir, "applied")}})
                agent.start(env={"NOTIFY_SOCKET": listener.path, "WATCHDOG_USEC": "400000"})
                try:
                    base = "http://127.0.0.1:%d" % port
                    wait_for(lambda: get(base + "/healthz")[0] == 503, timeout=10, what="unhealthy")
                    n = listener.messages.count("WATCHDOG=1")
                    time.sleep(1)
                    self.assertEqual(listener.messages.count("WATCHDOG=1"), n,
                                     "WATCHDOG=1 sent while a worker is wedged")
                    self.assertIn("no progress", agent.log())
                    wait_for(lambda: get(base + "/healthz")[0] == 200, timeout=15, what="healthy again")
                    n = listener.messages.count("WATCHDOG=1")
                    wait_for(lambda: listener.messages.count("WATCHDOG=1") > n, what="pings again")
                finally:
                    self.assertEqual(agent.stop(), 0)
        finally:
            listener.close()


JOURNAL_SOCKET = "/run/systemd/journal/socket"


class LoggingTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="ca-logging-")
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def test_native_journal_entries_with_fields(self):
        if os.path.exists(JOURNAL_SOCKET):
            self.skipTest("a real journald owns %s on this machine" % JOURNAL_SOCKET)
        if os.geteuid() != 0:
            self.fail("needs root to stand in for journald at " + JOURNAL_SOCKET)
        made_dir = not os.path.isdir(os.path.dirname(JOURNAL_SOCKET))
        os.makedirs(os.path.dirname(JOURNAL_SOCKET), exist_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(JOURNAL_SOCKET)
        try:
            with SimServer(self.dir, generate=3) as server:
                agent = Agent(self.dir, server, agent={"log_level": "info"})
                stderr_path = os.path.join(self.dir, "stderr")
                with open(stderr_path, "w") as err:
                    st = os.fstat(err.fileno())
                    env = dict(os.environ, JOURNAL_STREAM="%d:%d" % (st.st_dev, st.st_ino))
                    p = subprocess.run([AGENT_BIN, "--config", agent.config_path, "--once"],
                                       stderr=err, stdout=subprocess.DEVNULL, env=env, timeout=60)
                self.assertEqual(p.returncode, 0)
                entries = []
                sock.setblocking(False)
                while select.select([sock], [], [], 0.2)[0]:
                    entries.append(parse_journal(sock.recv(65536)))
            with open(stderr_path) as f:
                self.assertEqual(f.read(), "", "logged to stderr under the journal")
            self.assertTrue(entries)
            self.assertTrue(all(e.get("SYSLOG_IDENTIFIER") == "connector-agent" for e in entries))
            per_order = [e for e in entries if e.get("ORDER_KEY") == "gen-000001"]
            self.assertTrue(per_order, entries[:5])
            self.assertEqual(per_order[0]["CONNECTOR"], "c1")
            self.assertEqual(per_order[0]["PRIORITY"], "6")
            self.assertIn("Executed", per_order[0]["MESSAGE"])
        finally:
            sock.close()
            os.unlink(JOURNAL_SOCKET)
            if made_dir:
                os.rmdir(os.path.dirname(JOURNAL_SOCKET))

    def test_json_lines_carry_the_journal_fields(self):
        with SimServer(self.dir, generate=3) as server:
            agent = Agent(self.dir, server, agent={"log_level": "info", "log_format": "json"})
            rc, out = agent.run("--once")
            self.assertEqual(rc, 0, out)
        lines = [l for l in out.splitlines() if l]
        self.assertTrue(lines)
        records = [json.loads(l) for l in lines]  # every line is one object, nothing else
        for r in records:
            self.assertEqual(r["SYSLOG_IDENTIFIER"], "connector-agent", r)
            self.assertRegex(r["TIMESTAMP"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            self.assertIn(r["PRIORITY"], (3, 4, 5, 6))
            self.assertIsInstance(r["MESSAGE"], str)
        per_order = [r for r in records if r.get("ORDER_KEY") == "gen-000001"]
        self.assertTrue(per_order, records[:5])
        self.assertEqual(per_order[0]["CONNECTOR"], "c1")
        self.assertEqual(per_order[0]["PRIORITY"], 6)
        self.assertIn("Executed", per_order[0]["MESSAGE"])
        # Text stays the default, and a bad value is refused with file:line.
        with SimServer(self.dir, generate=1) as server:
            agent = Agent(self.dir, server, agent={"log_format": "xml"}, name="bad")
            rc, out = agent.run("--check-config")
            self.assertEqual(rc, 3, out)
            self.assertIn("log_format: must be text or json", out)

    def test_colour_only_on_a_terminal(self):
        with SimServer(self.dir, generate=2) as server:
            agent = Agent(self.dir, server, agent={"log_level": "info"})
            rc, out = agent.run("--once")
            self.assertEqual(rc, 0)
            self.assertNotIn("\x1b[", out)
            pid, fd = pty.fork()
            if pid == 0:
                os.execv(AGENT_BIN, [AGENT_BIN, "--config", agent.config_path, "--once"])
            chunks = []
            while True:
                try:
                    data = os.read(fd, 65536)
                except OSError:
                    break
                if not data:
                    break
                chunks.append(data)
            _, status = os.waitpid(pid, 0)
            self.assertEqual(os.waitstatus_to_exitcode(status), 0)
            self.assertIn(b"\x1b[", b"".join(chunks))


def parse_journal(data):
    """The journal's native datagram: KEY=value lines, or KEY\\n<le64 size><value>\\n."""
    fields, i = {}, 0
    while i < len(data):
        nl = data.index(b"\n", i)
        line = data[i:nl]
        if b"=" in line:
            k, v = line.split(b"=", 1)
            fields[k.decode()] = v.decode()
            i = nl + 1
        else:
            size = struct.unpack("<Q", data[nl + 1:nl + 9])[0]
            fields[line.decode()] = data[nl + 9:nl + 9 + size].decode()
            i = nl + 9 + size + 1
    return fields


if __name__ == "__main__":
    unittest.main(verbosity=2)

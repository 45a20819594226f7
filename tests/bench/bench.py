# SPDX-License-Identifier: Apache-2.0
"""Benchmarks for connector-agent: throughput, latency, footprint and the cost over the raw
target, measured in one run on this machine, printed as one table (see tests/bench/run.sh).

Not a test: nothing here fails CI. Every figure says how it was measured. Everything runs
on loopback and is bounded in time (each wait has a deadline).

    python3 bench.py --build build/bench [--scale small|full] [--json out.json]
                     [--only e2e,footprint,ldap,sqlite,pg,ha]
"""
import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SRC, "tests", "integration"))

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = 1000                 # PageSize asked for and the server's page cap
RUN_DEADLINE_S = 900        # no single timed run may take longer
COUNTS_EVERY_S = 0.5        # how often /_control/counts is polled during a timed run
IDLE_WINDOW_S = 60        # wake-ups are counted over this window (no scaling)
START_REPEATS = 5           # start-up time: median of this many starts

# Targets we hold ourselves to (the issue).
T_IDLE_RSS_KIB = 8 * 1024
T_PEAK_RSS_KIB = 64 * 1024
T_ORDERS_PER_S = 10000
T_RAW_RATIO = 1.10
TARGET_ROOT = "/dev/shm"    # tmpfs for the targets' data (slapd, SQLite)

# The agent tuning used for the end-to-end runs (configuration only).
E2E_AGENT = {"results_batch": "2000", "max_pending_results": "20000"}
E2E_CONNECTOR = {"max_parallel": "2", "max_in_flight": "5000", "poll_interval": "1s"}


def log(msg):
    print("[bench %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


# ---------------------------------------------------------------- /proc helpers

def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "Threads"):
                out[k] = int(v.split()[0])
    return out


def proc_cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is state (field 3): utime is field 14, stime field 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def schedstat(pid):
    """{tid: (on-CPU s, waiting-for-a-CPU s)} for every thread (/proc/PID/task/*/schedstat)."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                run, wait, _ = f.read().split()
            out[int(tid)] = (int(run) / 1e9, int(wait) / 1e9)
        except (OSError, ValueError):
            pass
    return out


def sched_delta(before, after):
    """(main thread on-CPU s, its run-queue wait s, all threads' run-queue wait s)."""
    main = min(after)
    d = {t: (after[t][0] - before.get(t, (0, 0))[0], after[t][1] - before.get(t, (0, 0))[1])
         for t in after}
    return d[main][0], d[main][1], sum(v[1] for v in d.values())


def pct(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    k = min(len(v) - 1, max(0, int(round(p / 100.0 * (len(v) - 1)))))
    return v[k]


# ---------------------------------------------------------------- agent + server

class Notify:
    """An AF_UNIX datagram socket for NOTIFY_SOCKET (sd_notify without systemd)."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)

    def wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no READY=1 within %ss" % timeout)
            self.sock.settimeout(left)
            data = self.sock.recv(4096).decode("utf-8", "replace")
            if "READY=1" in data.split("\n"):
                return time.monotonic()

    def close(self):
        self.sock.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def make_server(workdir, connector, lease=3600, **kw):
    from harness import SimServer
    return SimServer(workdir, connectors=(connector,), page_size=PAGE, lease=lease,
                     extra_args=("--max-body", str(1 << 30)), **kw)


def make_agent(workdir, server, connectors, resource_types, agent_keys=None, name="agent"):
    from agent_harness import Agent
    keys = {"heartbeat_interval": "30s", "log_level": "info", "shutdown_deadline": "30s",
            "disconnect_grace": "90s"}
    keys.update(agent_keys or {})
    return Agent(workdir, server, connectors=connectors, resource_types=resource_types,
                 agent=keys, server_keys={"page_size": str(PAGE), "request_timeout": "60s"},
                 name=name)


def start_ready(agent, workdir, timeout=30):
    """Starts the agent with a NOTIFY_SOCKET; returns (seconds from exec to READY=1)."""
    n = Notify(os.path.join(workdir, "notify-%s.sock" % agent.name))
    try:
        t0 = time.monotonic()
        agent.start(env={"NOTIFY_SOCKET": n.path})
        t1 = n.wait_ready(timeout)
        return t1 - t0
    finally:
        n.close()


def counts(server):
    return server._control("GET", "counts")


def wait_received(server, total, deadline_s=RUN_DEADLINE_S, agent=None):
    """Polls the cheap /_control/counts endpoint until total results arrived."""
    deadline = time.monotonic() + deadline_s
    while True:
        c = counts(server)
        if c["received"] >= total:
            return c
        if agent is not None and agent.proc.poll() is not None:
            raise RuntimeError("agent exited (%s): %s" % (agent.proc.returncode, agent.log()[-2000:]))
        if time.monotonic() > deadline:
            raise TimeoutError("only %d of %d results after %ss" % (c["received"], total, deadline_s))
        time.sleep(COUNTS_EVERY_S)


def timings(server, first=0):
    t = server._control("GET", "timings")["timings"]
    return t[first:]


def phase_figures(tim):
    """tim: [available, first_delivered, first_result] (us). Throughput over the span from
    the first delivery to the last result; latencies in ms."""
    start = min(t[1] for t in tim)
    end = max(t[2] for t in tim)
    span = (end - start) / 1e6
    avail = [(t[2] - t[0]) / 1e3 for t in tim]
    deliv = [(t[2] - t[1]) / 1e3 for t in tim]
    return {"orders": len(tim), "span_s": span, "orders_per_s": len(tim) / span if span else 0,
            "avail_p50_ms": pct(avail, 50), "avail_p99_ms": pct(avail, 99),
            "deliv_p50_ms": pct(deliv, 50), "deliv_p99_ms": pct(deliv, 99)}


# ---------------------------------------------------------------- end to end

def bench_e2e(root, n, journal_sync, profile=None):
    """n orders generated at the server while the agent is idle, executed by testbackend
    count_only. Returns the figures, plus agent peak RSS and CPU."""
    d = tempfile.mkdtemp(prefix="e2e-", dir=root)
    server = make_server(d, "c1").start()
    agent = None
    try:
        agent = make_agent(d, server, {"c1": dict({"backend": "testbackend", "count_only": "yes"},
                                                  **E2E_CONNECTOR)},
                           {"User": {"connector": "c1"}},
                           dict(E2E_AGENT, journal_sync="yes" if journal_sync else "no"))
        start_ready(agent, d)
        from harness import wait_for
        wait_for(lambda: any(r["method"] == "GET" and "ProvisioningData" in r["path"]
                             for r in server.requests()), timeout=30, what="the first poll")
        pid = agent.proc.pid
        cpu0 = proc_cpu_s(pid)
        scpu0 = proc_cpu_s(server.proc.pid)
        ss0, sss0 = schedstat(pid), schedstat(server.proc.pid)
        prof = None
        if profile:
            prof = subprocess.Popen(["perf", "record", "-F", "499", "-g", "-o", profile, "-p",
                                     str(pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        t_gen = time.monotonic()
        server.generate("c1", n)
        log("  generated %d orders in %.2f s (server side)" % (n, time.monotonic() - t_gen))
        peak_poll = []
        deadline = time.monotonic() + RUN_DEADLINE_S
        while True:
            c = counts(server)
            peak_poll.append(proc_status(pid)["VmRSS"])
            if c["received"] >= n:
                break
            if agent.proc.poll() is not None:
                raise RuntimeError("agent exited: %s" % agent.log()[-2000:])
            if time.monotonic() > deadline:
                raise TimeoutError("%d of %d after %ss" % (c["received"], n, RUN_DEADLINE_S))
            time.sleep(COUNTS_EVERY_S)
        st = proc_status(pid)
        cpu = proc_cpu_s(pid) - cpu0
        scpu = proc_cpu_s(server.proc.pid) - scpu0
        main_run, main_wait, all_wait = sched_delta(ss0, schedstat(pid))
        srv_run, srv_wait, _ = sched_delta(sss0, schedstat(server.proc.pid))
        if prof:
            prof.send_signal(signal.SIGINT)
            prof.wait(60)
        tim = timings(server)
        fig = phase_figures(tim)
        fig.update({"vm_hwm_kib": st["VmHWM"], "vm_rss_end_kib": st["VmRSS"],
                    "threads": st["Threads"], "agent_cpu_s": cpu,
                    "cpu_ms_per_1000": cpu / n * 1e6,
                    "server_cpu_s": scpu, "violations": c["violations_total"]})
        fig["server_cpu_share"] = scpu / fig["span_s"] if fig["span_s"] else 0
        fig["loadavg_1m"] = loadavg()
        fig.update({"main_thread_cpu_s": main_run, "main_thread_runq_wait_s": main_wait,
                    "agent_runq_wait_s": all_wait, "server_runq_wait_s": srv_wait})
        rc = agent.stop(60)
        fig["agent_exit"] = rc
        return fig
    finally:
        if agent:
            agent.kill()
        server.stop(check=False)
        shutil.rmtree(d, ignore_errors=True)


def bench_ha(root, n):
    """n orders (testbackend count_only) on one connector with the journal in SQLite, then
    in one PostgreSQL (tests/pg/pg.sh: fsync = off) with 1, 2 and 3 instances: the first
    serves the connector, the others stand by (high-availability.md). Same server, same
    tuning, one run each, in one sitting."""
    from harness import free_port, wait_for
    pg = os.path.join(SRC, "tests", "pg", "pg.sh")
    pw = "bench-ha-Pw-1"
    port = free_port()
    pgdir = subprocess.run(["bash", pg, "start", str(port)], input=pw, check=True,
                           capture_output=True, text=True, timeout=120).stdout.strip()
    psql = ["/usr/lib/postgresql/15/bin/psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h",
            "127.0.0.1", "-p", str(port), "-U", "ca_test", "-d", "postgres", "-c"]
    pgenv = dict(os.environ, PGPASSWORD=pw, PGSSLMODE="disable")
    out = {}
    try:
        for journal, instances in (("sqlite", 1), ("postgresql", 1), ("postgresql", 2),
                                   ("postgresql", 3)):
            d = tempfile.mkdtemp(prefix="ha-", dir=root)
            pwfile = os.path.join(d, "pg.pw")
            with open(pwfile, "w") as f:
                f.write(pw + "\n")
            os.chmod(pwfile, 0o600)
            subprocess.run(psql + ["DROP TABLE IF EXISTS ca_journal, ca_journal_schema, "
                                   "ca_journal_roles"], env=pgenv, check=True, timeout=60)
            server = make_server(d, "c1").start()
            agents = []
            try:
                keys = dict(E2E_AGENT)
                if journal == "postgresql":
                    keys.update({"journal": "postgresql", "journal_password_file": pwfile,
                                 "journal_connection": "host=127.0.0.1 port=%d dbname=postgres "
                                                       "user=ca_test sslmode=disable" % port})
                conn = {"c1": dict({"backend": "testbackend", "count_only": "yes"},
                                   **E2E_CONNECTOR)}
                for i in range(instances):
                    a = make_agent(d, server, conn, {"User": {"connector": "c1"}},
                                   dict(keys, identifier="bench-%d" % i), name="agent-%d" % i)
                    if agents:  # one seal key for every instance on the journal
                        shutil.copy2(os.path.join(agents[0].state_dir, "journal.key"),
                                     os.path.join(a.state_dir, "journal.key"))
                    start_ready(a, d)
                    agents.append(a)
                    if i:
                        wait_for(lambda: "served by instance bench-0" in a.log(), timeout=30,
                                 what="a standby")
                wait_for(lambda: any(r["method"] == "GET" and "ProvisioningData" in r["path"]
                                     for r in server.requests()), timeout=30,
                         what="the first poll")
                pid = agents[0].proc.pid
                cpu0 = proc_cpu_s(pid)
                server.generate("c1", n)
                c = wait_received(server, n, agent=agents[0])
                fig = phase_figures(timings(server))
                fig.update({"journal": journal, "instances": instances,
                            "cpu_ms_per_1000": (proc_cpu_s(pid) - cpu0) / n * 1e6,
                            "violations": c["violations_total"]})
                out["%s-%d" % (journal, instances)] = fig
                log("  %s, %d instance(s): %.0f orders/s" % (journal, instances,
                                                             fig["orders_per_s"]))
            finally:
                for a in agents:
                    a.stop(60)
                server.stop(check=False)
                shutil.rmtree(d, ignore_errors=True)
    finally:
        subprocess.run(["bash", pg, "stop", pgdir], timeout=120)
    return out


def bench_open_loop(root, rate, seconds, batch_every_s=0.1):
    """Orders arrive at a fixed rate (a batch every batch_every_s) while the agent runs:
    latency from availability to result without a backlog, polling interval included."""
    d = tempfile.mkdtemp(prefix="open-", dir=root)
    server = make_server(d, "c1").start()
    agent = None
    try:
        agent = make_agent(d, server, {"c1": dict({"backend": "testbackend", "count_only": "yes"},
                                                  **E2E_CONNECTOR)},
                           {"User": {"connector": "c1"}}, E2E_AGENT)
        start_ready(agent, d)
        per = max(1, int(rate * batch_every_s))
        batches = int(seconds / batch_every_s)
        t0 = time.monotonic()
        for b in range(batches):
            server.generate("c1", per)
            nxt = t0 + (b + 1) * batch_every_s
            time.sleep(max(0.0, nxt - time.monotonic()))
        offered_s = time.monotonic() - t0
        wait_received(server, per * batches, agent=agent)
        tim = timings(server)
        avail = [(x[2] - x[0]) / 1e3 for x in tim]
        deliv = [(x[2] - x[1]) / 1e3 for x in tim]
        wait = [(x[1] - x[0]) / 1e3 for x in tim]
        return {"orders": len(tim), "rate_offered": len(tim) / offered_s,
                "avail_p50_ms": pct(avail, 50), "avail_p99_ms": pct(avail, 99),
                "wait_p50_ms": pct(wait, 50), "wait_p99_ms": pct(wait, 99),
                "deliv_p50_ms": pct(deliv, 50), "deliv_p99_ms": pct(deliv, 99),
                "loadavg_1m": loadavg()}
    finally:
        if agent:
            agent.kill()
        server.stop(check=False)
        shutil.rmtree(d, ignore_errors=True)


def bench_server_alone(root, n):
    """The simulated server without the agent: a Python client fetches every page and
    PUTs every result (batches of 2000), to show what the server itself sustains."""
    d = tempfile.mkdtemp(prefix="srv-", dir=root)
    server = make_server(d, "c1").start()
    try:
        server.generate("c1", n)
        tok = server.token()
        t0 = time.monotonic()
        got = []
        ct = None
        while True:
            q = "PageSize=%d" % PAGE + ("&ContinuationToken=" + ct if ct else "")
            st, _, body = server.api("GET", "/api/Connectors/Provisioning/ProvisioningData/c1", token=tok,
                                     extra_query=q, timeout=120)
            if st != 200:
                raise RuntimeError("GET %d %s" % (st, body[:200]))
            js = json.loads(body)
            orders = js["ProvisioningOrdersList"]
            got.extend(orders)
            ct = js.get("ContinuationToken")
            if not orders or not ct:
                break
        t1 = time.monotonic()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        for i in range(0, len(got), 2000):
            res = [{"Id": o["Id"], "AssignmentId": o["AssignedResourceTypeId"],
                    "ChangeType": o["ChangeType"], "ProvisioningState": "Executed", "Message": "",
                    "ExecutedAt": stamp} for o in got[i:i + 2000]]
            st, _, body = server.api("PUT", "/api/Connectors/Provisioning/ProvisioningResults",
                                     body={"ConnectorId": "c1", "AgentIdentifier": "bench",
                                           "ProvisioningResults": res}, token=tok, timeout=120)
            if st != 200:
                raise RuntimeError("PUT %d %s" % (st, body[:300]))
        t2 = time.monotonic()
        return {"orders": len(got), "get_s": t1 - t0, "put_s": t2 - t1,
                "orders_per_s": len(got) / (t2 - t0), "violations": counts(server)["violations_total"]}
    finally:
        server.stop(check=False)
        shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------- footprint

def bench_footprint(root):
    d = tempfile.mkdtemp(prefix="idle-", dir=root)
    server = make_server(d, "c1").start()
    agent = None
    out = {}
    try:
        agent = make_agent(d, server, {"c1": {"backend": "testbackend", "count_only": "yes"}},
                           {"User": {"connector": "c1"}})
        starts = []
        for _ in range(START_REPEATS):
            starts.append(start_ready(agent, d))
            agent.stop(30)
        out["ready_ms_median"] = statistics.median(starts) * 1000
        out["ready_ms_all"] = [round(s * 1000, 1) for s in starts]
        start_ready(agent, d)
        from harness import wait_for
        wait_for(lambda: any(r["method"] == "GET" and "ProvisioningData" in r["path"]
                             for r in server.requests()), timeout=30, what="the first poll")
        time.sleep(1)  # the empty answer handled, the heartbeat sent
        st = proc_status(agent.proc.pid)
        out["idle_rss_kib"], out["idle_hwm_kib"], out["threads"] = st["VmRSS"], st["VmHWM"], st["Threads"]
        with open("/proc/%d/smaps_rollup" % agent.proc.pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("Pss", "Anonymous", "Shared_Clean", "Private_Dirty"):
                    out["idle_" + k.lower() + "_kib"] = int(v.split()[0])
        cpu0 = proc_cpu_s(agent.proc.pid)
        p = subprocess.run(["timeout", "-s", "INT", str(IDLE_WINDOW_S), "strace", "-f", "-c", "-q",
                            "-p", str(agent.proc.pid)], capture_output=True, text=True,
                           timeout=IDLE_WINDOW_S + 30)
        out["idle_cpu_ms_per_min"] = (proc_cpu_s(agent.proc.pid) - cpu0) * 1000 * 60 / IDLE_WINDOW_S
        calls = {}
        for line in p.stderr.splitlines():
            parts = line.split()
            if len(parts) >= 5 and parts[-1].isidentifier() and parts[0][0].isdigit():
                try:
                    calls[parts[-1]] = int(parts[3])
                except ValueError:
                    pass
        out["strace_calls_window"] = calls
        ew = calls.get("epoll_wait", 0) + calls.get("epoll_pwait", 0)
        out["epoll_wakeups_per_min"] = ew * 60.0 / IDLE_WINDOW_S
        out["syscalls_per_min"] = sum(v for k, v in calls.items() if k != "total") * 60.0 / IDLE_WINDOW_S
        out["strace_raw"] = p.stderr[-3000:]
        agent.stop(30)
        return out
    finally:
        if agent:
            agent.kill()
        server.stop(check=False)
        shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------- raw target comparisons

def user(i):
    uid = "bench%06d" % i
    return uid, {"uid": uid, "givenName": "Given%d" % i, "sn": "Surname%d" % i, "cn": "User %d" % i,
                 "mail": "%s@example.com" % uid}


def order(i, change, connector, rt):
    uid, attrs = user(i)
    if change == "Added":
        changes = attrs
    elif change == "Modified":
        changes = {"mail": "%s@corp.example.com" % uid, "title": "Engineer %d" % i}
    else:
        changes = {}
    return {"Id": "%s-%06d-%s" % (connector, i, change), "AssignedResourceTypeId": "a%06d" % i,
            "ChangeType": change, "Owner": {"Id": str(i)},
            "ResourceType": {"Identifier": rt, "SourceEntityType": {"Id": "51"}},
            "Changes": changes, "Resource": {"uid": uid}}


CHANGES = ("Added", "Modified", "Deleted")


def agent_phases(d, server, agent, connector, rt, n):
    """Feeds n orders of each change type in turn to the running agent; returns per-phase
    figures from the server's timings."""
    out = {}
    first = 0
    for ch in CHANGES:
        body = [order(i, ch, connector, rt) for i in range(n)]
        c0, s0 = proc_cpu_s(agent.proc.pid), proc_cpu_s(server.proc.pid)
        server.add_orders(connector, body)
        wait_received(server, first + n, agent=agent)
        c1, s1 = proc_cpu_s(agent.proc.pid), proc_cpu_s(server.proc.pid)
        fig = phase_figures(timings(server, first))
        fig.update({"agent_cpu_s": c1 - c0, "server_cpu_s": s1 - s0, "loadavg_1m": loadavg()})
        out[ch] = fig
        first += n
        log("  agent %s: %d in %.2f s (%.0f/s)" % (ch, n, fig["span_s"], fig["orders_per_s"]))
    v = counts(server)["violations_total"]
    if v:
        raise RuntimeError("%d protocol violations" % v)
    return out


# (key, max_parallel, journal_sync, raw clients compared with). The main comparison is
# two against two: with max_parallel = 1 the agent refuses orders its one worker queue
# cannot hold (see RESULTS.md), which the server re-delivers only after the lease.
AGENT_VARIANTS = (("agent", 2, "yes", 2), ("agent_nosync", 2, "no", 2), ("agent_p1", 1, "yes", 1))
RAW_CLIENTS = (1, 2)
TARGET_LEASE_S = 10  # so that refused orders come back within a bounded time
REFUSED = "cannot queue the order"


def run_agent_variants(d, conn, rt_name, rt, n, res):
    """Each variant on a fresh simulated server and agent: adds, modifies, deletes."""
    for key, par, sync, _ in AGENT_VARIANTS:
        vd = os.path.join(d, key)
        os.makedirs(vd)
        server = make_server(vd, "tgt", lease=TARGET_LEASE_S).start()
        agent = None
        try:
            c = dict(conn, poll_interval="200ms", order_timeout="10s", max_parallel=str(par),
                     max_in_flight="5000")
            agent = make_agent(vd, server, {"tgt": c}, {rt_name: dict(rt, connector="tgt")},
                               dict(E2E_AGENT, journal_sync=sync))
            start_ready(agent, vd)
            log(" %s (max_parallel=%d, journal_sync=%s)" % (key, par, sync))
            res[key] = agent_phases(vd, server, agent, "tgt", rt_name, n)
            res[key]["refused"] = agent.log().count(REFUSED)
            bad = [o for o in server.results() if o.get("ProvisioningState") != "Executed"]
            if bad:
                raise RuntimeError("%d orders not Executed, e.g. %s" % (len(bad), bad[0]))
            agent.stop(60)
            agent = None
        finally:
            if agent:
                agent.kill()
            server.stop(check=False)


def timed(cmds, **kw):
    """Runs the commands at the same time; seconds until the last one is done."""
    t0 = time.monotonic()
    ps = [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, **kw)
          for c in cmds]
    errs = [p.communicate(timeout=RUN_DEADLINE_S)[1] for p in ps]
    dt = time.monotonic() - t0
    for c, p, e in zip(cmds, ps, errs):
        if p.returncode != 0:
            raise RuntimeError("%s: rc=%d %s" % (c[0], p.returncode, e[-1000:]))
    return dt


def split(n, k):
    """k contiguous ranges covering range(n)."""
    return [range(j * n // k, (j + 1) * n // k) for j in range(k)]


PEOPLE = "ou=people,dc=example,dc=com"


def ldif(rng, ch):
    lines = []
    for i in rng:
        uid, a = user(i)
        dn = "uid=%s,%s" % (uid, PEOPLE)
        if ch == "Added":
            lines += ["dn: " + dn, "changetype: add", "objectClass: inetOrgPerson"]
            lines += ["%s: %s" % (k, v) for k, v in a.items()]
        elif ch == "Modified":
            lines += ["dn: " + dn, "changetype: modify", "replace: mail",
                      "mail: %s@corp.example.com" % uid, "-", "replace: title",
                      "title: Engineer %d" % i, "-"]
        else:
            lines += ["dn: " + dn, "changetype: delete"]
        lines.append("")
    return "\n".join(lines) + "\n"


def bench_ldap(root, n):
    """slapd's data on tmpfs (TARGET_ROOT) so that its fsyncs do not drown the comparison;
    the agent's journal stays on the disk under root."""
    from harness import free_port
    d = tempfile.mkdtemp(prefix="ldap-", dir=root)
    sdir = tempfile.mkdtemp(prefix="slapd-", dir=TARGET_ROOT)
    shutil.rmtree(sdir)
    script = os.path.join(SRC, "tests", "ldap", "slapd.sh")
    out = subprocess.run(["bash", script, "start", sdir, str(free_port()), str(free_port())],
                         check=True, capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, CA_SLAPD_OWNER_PID=str(os.getpid()))).stdout
    env = dict(l.split("=", 1) for l in out.split() if "=" in l)
    res = {"raw": {}, "raw2": {}}
    try:
        files = {}
        for k in RAW_CLIENTS:
            for ch in CHANGES:
                for j, rng in enumerate(split(n, k)):
                    files[k, ch, j] = os.path.join(d, "%s-%d-%d.ldif" % (ch, k, j))
                    with open(files[k, ch, j], "w") as f:
                        f.write(ldif(rng, ch))
        lenv = dict(os.environ, LDAPTLS_CACERT=env["CA_FILE"])

        def raw(key):
            for k in RAW_CLIENTS:
                res[key][k] = {}
                for ch in CHANGES:
                    dt = timed([["ldapmodify", "-c", "-x", "-H", env["LDAPS_URI"], "-D",
                                 env["ADMIN_DN"], "-y", env["ADMIN_PW_FILE"], "-f",
                                 files[k, ch, j]] for j in range(k)], env=lenv)
                    res[key][k][ch] = {"s": dt, "orders_per_s": n / dt}
                    log("  raw ldapmodify x%d %s: %d in %.2f s" % (k, ch, n, dt))

        raw("raw")
        conn = {"backend": "ldap", "uri": env["LDAPS_URI"], "ca_file": env["CA_FILE"],
                "bind_dn": env["ADMIN_DN"], "bind_password_file": env["ADMIN_PW_FILE"]}
        rt = {"base_dn": PEOPLE, "rdn_attribute": "uid", "object_class": "inetOrgPerson"}
        run_agent_variants(d, conn, "LDAP_User", rt, n, res)
        raw("raw2")
        return res
    finally:
        subprocess.run(["bash", script, "destroy", sdir], timeout=120)
        shutil.rmtree(d, ignore_errors=True)


def sql_text(rng, ch, q):
    """One transaction per row, as the agent does per order."""
    out = []
    for i in rng:
        uid, a = user(i)
        if ch == "Added":
            s = ("INSERT INTO accounts (uid, given_name, surname, cn, mail) VALUES "
                 "('%s', '%s', '%s', '%s', '%s');" % (uid, a["givenName"], a["sn"], a["cn"], a["mail"]))
        elif ch == "Modified":
            s = ("UPDATE accounts SET mail = '%s@corp.example.com', title = 'Engineer %d' "
                 "WHERE uid = '%s';" % (uid, i, uid))
        else:
            s = "DELETE FROM accounts WHERE uid = '%s';" % uid
        out.append("%s\n%s\nCOMMIT;" % (q, s))
    return "\n".join(out) + "\n"


SQL_TABLE = ("CREATE TABLE accounts (uid text PRIMARY KEY, given_name text, surname text,"
             " cn text, mail text, title text);")
SQL_RT = {"table": "accounts", "key_column": "uid", "key_change": "uid",
          "columns": "givenName:given_name,sn:surname,cn:cn,mail:mail,title:title"}


def bench_sql(root, n, driver):
    """SQLite: the database file on tmpfs (TARGET_ROOT), like PostgreSQL, which tests/pg/pg.sh
    runs with fsync=off: both compare the work per order, not the disk's fsync latency.
    The agent's journal stays on the disk under root."""
    d = tempfile.mkdtemp(prefix="sql-%s-" % driver, dir=root)
    res = {"raw": {}, "raw2": {}}
    pgdir = None
    tdir = tempfile.mkdtemp(prefix="sqlite-", dir=TARGET_ROOT)
    pg = os.path.join(SRC, "tests", "pg", "pg.sh")
    try:
        if driver == "sqlite":
            db = os.path.join(tdir, "bench.db")
            subprocess.run(["sqlite3", db, SQL_TABLE], check=True, timeout=30)
            rawcmd = ["sqlite3", "-cmd", ".timeout 10000", db]
            begin = "BEGIN IMMEDIATE;"
            conn = {"backend": "sql", "driver": "sqlite", "database": db}
            rawenv = None
        else:
            from harness import free_port
            port = free_port()
            pw = "bench-Pg-77x"
            pgdir = subprocess.run(["bash", pg, "start", str(port)], input=pw, check=True,
                                   capture_output=True, text=True, timeout=120).stdout.strip()
            pwfile = os.path.join(d, "pg.pw")
            with open(pwfile, "w") as f:
                f.write(pw + "\n")
            os.chmod(pwfile, 0o600)
            rawcmd = ["/usr/lib/postgresql/15/bin/psql", "-X", "-q", "-v", "ON_ERROR_STOP=1",
                      "-h", "127.0.0.1", "-p", str(port), "-U", "ca_test", "-d", "postgres"]
            rawenv = dict(os.environ, PGPASSWORD=pw, PGSSLMODE="disable")
            subprocess.run(rawcmd + ["-c", SQL_TABLE], check=True, env=rawenv, timeout=30,
                           capture_output=True)
            begin = "BEGIN;"
            conn = {"backend": "sql", "driver": "postgresql", "password_file": pwfile,
                    "connection": "host=127.0.0.1 port=%d dbname=postgres user=ca_test "
                                  "sslmode=disable" % port}
        files = {}
        for k in RAW_CLIENTS:
            for ch in CHANGES:
                for j, rng in enumerate(split(n, k)):
                    files[k, ch, j] = os.path.join(d, "%s-%d-%d.sql" % (ch, k, j))
                    with open(files[k, ch, j], "w") as f:
                        f.write(sql_text(rng, ch, begin))

        def raw(key):
            for k in RAW_CLIENTS:
                res[key][k] = {}
                for ch in CHANGES:
                    cmds = [rawcmd + ([".read " + files[k, ch, j]] if driver == "sqlite"
                                      else ["-f", files[k, ch, j]]) for j in range(k)]
                    dt = timed(cmds, env=rawenv)
                    res[key][k][ch] = {"s": dt, "orders_per_s": n / dt}
                    log("  raw %s x%d %s: %d in %.2f s" % (driver, k, ch, n, dt))

        raw("raw")
        run_agent_variants(d, conn, "User", SQL_RT, n, res)
        raw("raw2")
        return res
    finally:
        if pgdir:
            subprocess.run(["bash", pg, "stop", pgdir], timeout=120)
        shutil.rmtree(d, ignore_errors=True)
        shutil.rmtree(tdir, ignore_errors=True)


# ---------------------------------------------------------------- interleaved rounds

def build_raw_sql(d):
    """Compiles tests/bench/raw_sql.c (the prepared-statement loop) into d."""
    out = os.path.join(d, "raw_sql")
    subprocess.run(["cc", "-O2", "-std=c17", "-I/usr/include/postgresql",
                    os.path.join(HERE, "raw_sql.c"), "-o", out, "-lsqlite3", "-lpq"],
                   check=True, timeout=120)
    return out


def agent_builds(spec, default):
    """[(label, build dir)]: "after" is --build; --compare adds label=dir pairs."""
    builds = [("after", default)]
    for item in filter(None, (spec or "").split(",")):
        label, _, path = item.partition("=")
        builds.append((label, os.path.abspath(path)))
    return builds


def use_build(b):
    """The agent, its plug-ins and its simulated server from build b: an older build meets
    the server it was tested with (the server grows stricter with each fix)."""
    import agent_harness
    agent_harness.AGENT_BIN = os.path.join(b, "agent", "connector-agent")
    agent_harness.BACKEND_DIR = os.path.join(b, "backends")
    sim = os.path.join(b, "tests", "simserver", "ca-simserver")
    if os.path.exists(sim):
        os.environ["CA_SIMSERVER_BIN"] = sim


def agent_round(d, who, build, conn, rt_name, rt, n, rnd, out, cpu):
    """One contestant's turn in a round: a fresh server and agent of that build, n Added,
    Modified, Deleted; appends each phase's span and agent CPU."""
    use_build(build)
    vd = os.path.join(d, "%s-%d" % (who, rnd))
    os.makedirs(vd)
    server = make_server(vd, "tgt", lease=TARGET_LEASE_S).start()
    agent = None
    try:
        c = dict(conn, poll_interval="200ms", order_timeout="10s", max_parallel="2",
                 max_in_flight="5000")
        agent = make_agent(vd, server, {"tgt": c}, {rt_name: dict(rt, connector="tgt")},
                           dict(E2E_AGENT, journal_sync="yes"))
        start_ready(agent, vd)
        ph = agent_phases(vd, server, agent, "tgt", rt_name, n)
        bad = [o for o in server.results() if o.get("ProvisioningState") != "Executed"]
        if bad:
            raise RuntimeError("%d orders not Executed, e.g. %s" % (len(bad), bad[0]))
        for ch in CHANGES:
            out[who][ch].append(ph[ch]["span_s"])
            cpu[who][ch].append(ph[ch]["agent_cpu_s"])
        agent.stop(60)
        agent = None
    finally:
        if agent:
            agent.kill()
        server.stop(check=False)


def bench_ldap_rounds(root, n, rounds, builds):
    """Like bench_sql_rounds against slapd (data on tmpfs, ldaps): raw = raw_ldap.c, one
    synchronous libldap call per entry, 2 clients on halves."""
    from harness import free_port
    d = tempfile.mkdtemp(prefix="rounds-ldap-", dir=root)
    sdir = tempfile.mkdtemp(prefix="slapd-", dir=TARGET_ROOT)
    shutil.rmtree(sdir)
    raw_bin = os.path.join(d, "raw_ldap")
    subprocess.run(["cc", "-O2", "-std=c17", os.path.join(HERE, "raw_ldap.c"), "-o", raw_bin,
                    "-lldap", "-llber"], check=True, timeout=120)
    script = os.path.join(SRC, "tests", "ldap", "slapd.sh")
    txt = subprocess.run(["bash", script, "start", sdir, str(free_port()), str(free_port())],
                         check=True, capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, CA_SLAPD_OWNER_PID=str(os.getpid()))).stdout
    env = dict(l.split("=", 1) for l in txt.split() if "=" in l)
    try:
        lenv = dict(os.environ, LDAPTLS_CACERT=env["CA_FILE"])
        conn = {"backend": "ldap", "uri": env["LDAPS_URI"], "ca_file": env["CA_FILE"],
                "bind_dn": env["ADMIN_DN"], "bind_password_file": env["ADMIN_PW_FILE"]}
        rt = {"base_dn": PEOPLE, "rdn_attribute": "uid", "object_class": "inetOrgPerson"}
        names = ["raw"] + [label for label, _ in builds]
        out = {k: {ch: [] for ch in CHANGES} for k in names}
        cpu = {k: {ch: [] for ch in CHANGES} for k in names[1:]}
        for rnd in range(rounds):
            for who in names[rnd % len(names):] + names[:rnd % len(names)]:
                if who != "raw":
                    agent_round(d, who, dict(builds)[who], conn, "LDAP_User", rt, n, rnd, out,
                                cpu)
                    continue
                for ch in CHANGES:
                    out["raw"][ch].append(timed(
                        [[raw_bin, env["LDAPS_URI"], env["ADMIN_DN"], env["ADMIN_PW_FILE"],
                          PEOPLE, ch, str(r.start), str(r.stop)] for r in split(n, 2)],
                        env=lenv))
                log("  round %d raw: %s" % (rnd, ", ".join(
                    "%s %.2f s" % (ch, out["raw"][ch][-1]) for ch in CHANGES)))
        return {"n": n, "rounds": rounds, "s": out, "agent_cpu_s": cpu, "loadavg_1m": loadavg(),
                "builds": dict(builds)}
    finally:
        subprocess.run(["bash", script, "destroy", sdir], timeout=120)
        shutil.rmtree(d, ignore_errors=True)


def bench_sql_rounds(root, n, driver, rounds, builds):
    """Side by side in one run: per round, the raw prepared-statement loop (raw_sql.c, 2
    clients on halves) and the agent of each build (max_parallel 2, journal_sync yes, a
    fresh agent and server), each doing n Added, then Modified, then Deleted on the same
    table, in an order that rotates every round. Ratios are throughput, agent / raw, per
    round; the figure is their median."""
    d = tempfile.mkdtemp(prefix="rounds-%s-" % driver, dir=root)
    tdir = tempfile.mkdtemp(prefix="sqlr-", dir=TARGET_ROOT)
    pg = os.path.join(SRC, "tests", "pg", "pg.sh")
    pgdir = None
    raw_bin = build_raw_sql(d)
    try:
        if driver == "sqlite":
            db = os.path.join(tdir, "bench.db")
            subprocess.run(["sqlite3", db, SQL_TABLE], check=True, timeout=30)
            target, rawenv = db, None
            conn = {"backend": "sql", "driver": "sqlite", "database": db}
        else:
            from harness import free_port
            port = free_port()
            pw = "bench-Pg-77x"
            pgdir = subprocess.run(["bash", pg, "start", str(port)], input=pw, check=True,
                                   capture_output=True, text=True, timeout=120).stdout.strip()
            pwfile = os.path.join(d, "pg.pw")
            with open(pwfile, "w") as f:
                f.write(pw + "\n")
            os.chmod(pwfile, 0o600)
            target = ("host=127.0.0.1 port=%d dbname=postgres user=ca_test sslmode=disable"
                      % port)
            rawenv = dict(os.environ, PGPASSWORD=pw)
            subprocess.run(["/usr/lib/postgresql/15/bin/psql", "-X", "-q", "-h", "127.0.0.1",
                            "-p", str(port), "-U", "ca_test", "-d", "postgres", "-c", SQL_TABLE],
                           check=True, env=rawenv, timeout=30, capture_output=True)
            conn = {"backend": "sql", "driver": "postgresql", "password_file": pwfile,
                    "connection": target}
        names = ["raw"] + [label for label, _ in builds]
        out = {k: {ch: [] for ch in CHANGES} for k in names}
        cpu = {k: {ch: [] for ch in CHANGES} for k in names[1:]}
        for rnd in range(rounds):
            order = names[rnd % len(names):] + names[:rnd % len(names)]
            for who in order:
                if who == "raw":
                    for ch in CHANGES:
                        dt = timed([[raw_bin, driver, target, ch, str(r.start), str(r.stop)]
                                    for r in split(n, 2)], env=rawenv)
                        out["raw"][ch].append(dt)
                    log("  round %d raw: %s" % (rnd, ", ".join(
                        "%s %.2f s" % (ch, out["raw"][ch][-1]) for ch in CHANGES)))
                    continue
                agent_round(d, who, dict(builds)[who], conn, "User", SQL_RT, n, rnd, out, cpu)
        return {"n": n, "rounds": rounds, "s": out, "agent_cpu_s": cpu, "loadavg_1m": loadavg(),
                "builds": dict(builds)}
    finally:
        if pgdir:
            subprocess.run(["bash", pg, "stop", pgdir], timeout=120)
        shutil.rmtree(d, ignore_errors=True)
        shutil.rmtree(tdir, ignore_errors=True)


def bench_e2e_rounds(root, n, rounds, builds):
    """The pipeline alone (testbackend count_only, journal_sync yes), each build in turn
    per round, rotating: orders/s, agent CPU per 1,000 orders and peak RSS, medians."""
    out = {label: {"orders_per_s": [], "cpu_ms_per_1000": [], "vm_hwm_kib": []}
           for label, _ in builds}
    for rnd in range(rounds):
        for label, path in builds[rnd % len(builds):] + builds[:rnd % len(builds)]:
            use_build(path)
            f = bench_e2e(root, n, True)
            out[label]["orders_per_s"].append(f["orders_per_s"])
            out[label]["cpu_ms_per_1000"].append(f["cpu_ms_per_1000"])
            out[label]["vm_hwm_kib"].append(f["vm_hwm_kib"])
            log("  round %d %s: %.0f orders/s, %.1f ms CPU per 1,000, peak RSS %.1f MiB" % (
                rnd, label, f["orders_per_s"], f["cpu_ms_per_1000"], f["vm_hwm_kib"] / 1024))
    return {"n": n, "rounds": rounds, "builds": out, "loadavg_1m": loadavg()}


def bench_json_micro(rounds, builds):
    """json_micro.c linked against each build's libca_common.a, run in turn per round
    (rotating): CPU ns per order for parse + order text + result + results body."""
    d = tempfile.mkdtemp(prefix="json-micro-")
    try:
        bins = []
        for label, path in builds:
            out = os.path.join(d, "json_micro_" + label)
            subprocess.run(["cc", "-O2", "-std=c17", "-I" + os.path.join(SRC, "common"),
                            os.path.join(HERE, "json_micro.c"),
                            os.path.join(path, "common", "libca_common.a"), "-ljansson", "-lcurl",
                            "-lsystemd", "-lssl", "-lcrypto", "-o", out], check=True, timeout=120)
            bins.append((label, out))
        ns = {label: [] for label, _ in bins}
        for rnd in range(rounds):
            for label, b in bins[rnd % len(bins):] + bins[:rnd % len(bins)]:
                p = subprocess.run([b, "1000", "20"], check=True, capture_output=True, text=True,
                                   timeout=300)
                ns[label].append(float(p.stdout.strip()))
        return {"rounds": rounds, "ns_per_order": ns, "loadavg_1m": loadavg()}
    finally:
        shutil.rmtree(d, ignore_errors=True)


def e2e_rounds_rows(r):
    rows = []
    for label, f in r["builds"].items():
        rows.append(("pipeline alone %d orders (%s)" % (r["n"], label),
                     "%.0f orders/s, %.1f ms CPU per 1,000 orders, peak RSS %.1f MiB (medians "
                     "of %d; orders/s %s)" % (
                         statistics.median(f["orders_per_s"]),
                         statistics.median(f["cpu_ms_per_1000"]),
                         statistics.median(f.get("vm_hwm_kib") or [0]) / 1024,
                         len(f["orders_per_s"]),
                         " ".join("%.0f" % x for x in f["orders_per_s"])),
                     ">= 50000/s", verdict(statistics.median(f["orders_per_s"]) >= 50000),
                     "testbackend count_only, journal_sync yes, e2e tuning; builds in turn "
                     "per round, rotating"))
    return rows


def rounds_rows(name, r):
    rows = []
    raw = r["s"]["raw"]
    for who in r["s"]:
        if who == "raw":
            continue
        for ch in CHANGES:
            ratios = [rs / ag for rs, ag in zip(raw[ch], r["s"][who][ch])]
            rows.append(("%s %d %s: agent (%s) / raw loop" % (name, r["n"], ch, who),
                         "%.2f median of %d (rounds %s; agent median %.2f s, CPU %.2f s; raw "
                         "median %.2f s)" % (statistics.median(ratios), len(ratios),
                                             " ".join("%.2f" % x for x in ratios),
                                             statistics.median(r["s"][who][ch]),
                                             statistics.median(r["agent_cpu_s"][who][ch]),
                                             statistics.median(raw[ch])),
                         ">= 0.95", verdict(statistics.median(ratios) >= 0.95),
                         "throughput ratio (raw s / agent s) per interleaved round, rotating "
                         "order; raw = %s, 2 clients; agent "
                         "max_parallel 2, journal_sync yes" % (
                             "raw_ldap.c synchronous libldap loop" if name == "LDAP"
                             else "raw_sql.c prepared-statement loop")))
    return rows


# ---------------------------------------------------------------- report

def verdict(ok):
    return "PASS" if ok else "MISS"


def ratio_rows(name, r, how):
    rows = []
    for key, par, sync, k in AGENT_VARIANTS:
        if key not in r:
            continue
        main = key == "agent"
        rk = str(k) if str(k) in r["raw"] else k  # JSON round trips make keys strings
        for ch in CHANGES:
            raw = statistics.mean([r["raw"][rk][ch]["s"], r["raw2"][rk][ch]["s"]])
            ag = r[key][ch]["span_s"]
            ratio = ag / raw
            refused = r[key].get("refused", 0)
            f = r[key][ch]
            rows.append(("%s %s, agent p=%d sync=%s / raw x%d" % (name, ch, par, sync, k),
                         "%.2fx (agent %.2f s = %.0f/s, CPU agent %.2f s server %.2f s, load "
                         "%.1f; raw %.2f s, %.2f s)%s" % (
                             ratio, ag, f["orders_per_s"], f.get("agent_cpu_s", -1),
                             f.get("server_cpu_s", -1), f.get("loadavg_1m", -1),
                             r["raw"][rk][ch]["s"], r["raw2"][rk][ch]["s"],
                             "; %d orders refused by the worker queue in this run" % refused
                             if refused else ""),
                         "<= 1.10x" if main else "(info)",
                         verdict(ratio <= T_RAW_RATIO) if main else "-", how if main else
                         "same, max_parallel=%d, journal_sync=%s, vs %d raw client(s)" % (
                             par, sync, k)))
    return rows


def report(R, scale):
    rows = []
    for key in sorted(k for k in R if k.startswith("e2e")):
        f = R[key]
        n, sync = f["n"], f["sync"]
        how = ("POST /_control/generate %d while the agent idles after its first poll; testbackend "
               "count_only; span = first page delivered -> last result accepted (server clock)"
               % n)
        rows.append(("e2e %d orders, journal_sync=%s: throughput" % (n, sync),
                     "%.0f orders/s (%.2f s)" % (f["orders_per_s"], f["span_s"]),
                     ">= 10000/s" if sync == "yes" else "(info)",
                     verdict(f["orders_per_s"] >= T_ORDERS_PER_S) if sync == "yes" else "-", how))
        rows.append(("e2e %d, sync=%s: latency available->result" % (n, sync),
                     "p50 %.0f ms, p99 %.0f ms" % (f["avail_p50_ms"], f["avail_p99_ms"]), "-", "-",
                     "per order, server clock: added -> first result accepted (a backlog: "
                     "queueing dominates)"))
        rows.append(("e2e %d, sync=%s: latency delivered->result" % (n, sync),
                     "p50 %.0f ms, p99 %.0f ms" % (f["deliv_p50_ms"], f["deliv_p99_ms"]), "-", "-",
                     "per order, server clock: put on a page -> first result accepted"))
        rows.append(("e2e %d, sync=%s: agent CPU per 1,000 orders" % (n, sync),
                     "%.1f ms (agent %.2f s CPU = %.0f%% of a core; server %.2f s = %.0f%%; "
                     "load %.1f)" % (
                         f["cpu_ms_per_1000"], f["agent_cpu_s"],
                         100 * f["agent_cpu_s"] / f["span_s"], f["server_cpu_s"],
                         100 * f["server_cpu_share"], f["loadavg_1m"]), "-", "-",
                     "utime+stime from /proc/PID/stat, after the first poll to the last result"))
        rows.append(("e2e %d, sync=%s: agent main thread" % (n, sync),
                     "%.2f s on CPU, %.2f s runnable but waiting for a CPU (server %.2f s "
                     "waiting)" % (f["main_thread_cpu_s"], f["main_thread_runq_wait_s"],
                                   f["server_runq_wait_s"]), "-", "-",
                     "/proc/PID/task/TID/schedstat over the run: shows CPU contention"))
        rows.append(("e2e %d, sync=%s: peak RSS (VmHWM)" % (n, sync),
                     "%.1f MiB (%d threads)" % (f["vm_hwm_kib"] / 1024, f["threads"]),
                     "<= 64 MiB" if n >= 100000 else "(info)",
                     verdict(f["vm_hwm_kib"] <= T_PEAK_RSS_KIB) if n >= 100000 else "-",
                     "/proc/PID/status VmHWM at the end of the run (since exec)"))
    if "open_loop" in R:
        f = R["open_loop"]
        rows.append(("open loop: %d orders at %.0f/s offered" % (f["orders"], f["rate_offered"]),
                     "available->result p50 %.0f ms, p99 %.0f ms (of it waiting to be polled "
                     "p50 %.0f, p99 %.0f; delivered->result p50 %.0f, p99 %.0f; load %.1f)" % (
                         f["avail_p50_ms"], f["avail_p99_ms"], f["wait_p50_ms"],
                         f["wait_p99_ms"], f["deliv_p50_ms"], f["deliv_p99_ms"],
                         f["loadavg_1m"]), "-", "-",
                     "POST /_control/generate every 100 ms while the agent runs (e2e tuning, "
                     "poll_interval 1s); server clock per order"))
    if "server_alone" in R:
        f = R["server_alone"]
        rows.append(("simulated server alone, %d orders" % f["orders"],
                     "%.0f orders/s (GET pages %.2f s, PUT results %.2f s)" % (
                         f["orders_per_s"], f["get_s"], f["put_s"]), "-", "-",
                     "Python client: every page of %d, then PUTs of 2000 results" % PAGE))
    if "footprint" in R:
        f = R["footprint"]
        rows.append(("idle RSS after start and one empty poll",
                     "%.2f MiB (VmHWM %.2f; of it shared clean library pages %.2f, anonymous "
                     "%.2f; PSS %.2f MiB; %d threads)" % (
                         f["idle_rss_kib"] / 1024, f["idle_hwm_kib"] / 1024,
                         f.get("idle_shared_clean_kib", 0) / 1024,
                         f.get("idle_anonymous_kib", 0) / 1024, f.get("idle_pss_kib", 0) / 1024,
                         f["threads"]),
                     "<= 8 MiB", verdict(f["idle_rss_kib"] <= T_IDLE_RSS_KIB),
                     "/proc/PID/status VmRSS, 1 s after the first ProvisioningData GET"))
        rows.append(("idle wake-ups", "%.0f epoll_wait/min (%.0f syscalls/min, %.1f ms CPU/min)" % (
                     f["epoll_wakeups_per_min"], f["syscalls_per_min"], f["idle_cpu_ms_per_min"]),
                     "-", "-", "strace -f -c -p PID over %d s; poll_interval and "
                     "heartbeat_interval 30 s" % IDLE_WINDOW_S))
        rows.append(("start-up to READY=1", "%.1f ms median of %d (%s)" % (
                     f["ready_ms_median"], START_REPEATS, ", ".join(str(x) for x in f["ready_ms_all"])),
                     "-", "-", "NOTIFY_SOCKET listener: Popen (exec) -> READY=1 datagram"))
    n = R.get("raw_n")
    if "ldap" in R:
        rows += ratio_rows("LDAP %d" % n, R["ldap"], "agent span (first page -> last result) "
                           "vs 2 ldapmodify -c -f on halves of the LDIF, ldaps; slapd on tmpfs; raw = "
                           "mean of a run before and after the agent's")
    if "sqlite" in R:
        rows += ratio_rows("SQLite %d" % n, R["sqlite"], "agent span vs 2 sqlite3 CLI .read on "
                           "halves, BEGIN IMMEDIATE; stmt; COMMIT per row; db file on tmpfs, defaults")
    if "pg" in R:
        rows += ratio_rows("PostgreSQL %d" % n, R["pg"], "agent span vs 2 psql -f on halves, "
                           "BEGIN; stmt; COMMIT per row, TCP loopback, same server (fsync=off)")
    if "ha" in R:
        base = R["ha"].get("sqlite-1", {}).get("orders_per_s")
        for key in ("sqlite-1", "postgresql-1", "postgresql-2", "postgresql-3"):
            f = R["ha"].get(key)
            if not f:
                continue
            rows.append(("journal %s, %d instance(s), %d orders" % (
                             f["journal"], f["instances"], f["orders"]),
                         "%.0f orders/s (%.2f of SQLite's; %.1f ms CPU per 1,000 in the serving "
                         "instance)" % (f["orders_per_s"],
                                        f["orders_per_s"] / base if base else 0,
                                        f["cpu_ms_per_1000"]), "-", "-",
                         "one connector, testbackend count_only, e2e tuning; one instance serves, "
                         "the others stand by; PostgreSQL from tests/pg/pg.sh (fsync = off)"))
    if "json_micro" in R:
        for label, v in R["json_micro"]["ns_per_order"].items():
            rows.append(("JSON work per order (%s)" % label,
                         "%.1f us CPU (median of %d: %s)" % (
                             statistics.median(v) / 1000, len(v),
                             " ".join("%.1f" % (x / 1000) for x in v)), "-", "-",
                         "json_micro.c on this build's libca_common.a: page of 1,000 parsed, "
                         "each order's text, a result each, the results body; one thread"))
    if "pipeline_rounds" in R:
        rows += e2e_rounds_rows(R["pipeline_rounds"])
    for key, name in (("sqlite_rounds", "SQLite"), ("pg_rounds", "PostgreSQL"),
                      ("ldap_rounds", "LDAP")):
        if key in R:
            rows += rounds_rows(name, R[key])
    w = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["connector-agent benchmarks (scale=%s, %s, %d cores, load average %s at the "
             "start, %s at the end)" % (scale, time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                        os.cpu_count(), R.get("load_start"), loadavg())]
    lines.append("e2e tuning: [agent] %s; [connector] %s; [server] page_size = %d" % (
        ", ".join("%s = %s" % kv for kv in E2E_AGENT.items()),
        ", ".join("%s = %s" % kv for kv in E2E_CONNECTOR.items()), PAGE))
    hdr = ("measure", "value", "target", "result")
    lines.append(" | ".join(h.ljust(w[i]) for i, h in enumerate(hdr)) + " | how")
    lines.append("-+-".join("-" * x for x in w) + "-+----")
    for r in rows:
        lines.append(" | ".join(r[i].ljust(w[i]) for i in range(4)) + " | " + r[4])
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(SRC, "build", "bench"))
    ap.add_argument("--scale", default=os.environ.get("BENCH_SCALE", "full"))
    ap.add_argument("--json", default=None)
    ap.add_argument("--only", default="e2e,openloop,server,footprint,ldap,sqlite,pg,ha")
    ap.add_argument("--profile", default=None, help="perf record the 100k sync run to this file")
    ap.add_argument("--compare", default=os.environ.get("BENCH_COMPARE"),
                    help="label=build_dir[,...]: other agent builds in the rounds parts")
    ap.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", "5")))
    a = ap.parse_args()
    b = os.path.abspath(a.build)
    os.environ["CA_AGENT_BIN"] = os.path.join(b, "agent", "connector-agent")
    os.environ["CA_SIMSERVER_BIN"] = os.path.join(b, "tests", "simserver", "ca-simserver")
    os.environ["CA_BACKEND_BUILD_DIR"] = os.path.join(b, "backends")
    only = set(a.only.split(","))
    sizes = (1000, 10000) if a.scale == "small" else (10000, 100000)
    raw_n = 1000 if a.scale == "small" else 10000
    root = tempfile.mkdtemp(prefix="ca-bench-")
    R = {"raw_n": raw_n, "load_start": loadavg()}
    try:
        if "e2e" in only:
            for n in sizes:
                for sync in (True, False):
                    log("e2e %d orders, journal_sync=%s" % (n, sync))
                    prof = a.profile if (a.profile and n == sizes[-1] and sync) else None
                    f = bench_e2e(root, n, sync, profile=prof)
                    f.update({"n": n, "sync": "yes" if sync else "no"})
                    R["e2e-%07d-%s" % (n, f["sync"])] = f
                    log("  %.0f orders/s, HWM %d KiB" % (f["orders_per_s"], f["vm_hwm_kib"]))
        if "openloop" in only:
            rate = 1000 if a.scale == "small" else 2000
            log("open loop, %d orders/s for 10 s" % rate)
            R["open_loop"] = bench_open_loop(root, rate, 10)
        if "server" in only:
            log("simulated server alone, %d orders" % sizes[-1])
            R["server_alone"] = bench_server_alone(root, sizes[-1])
        if "footprint" in only:
            log("footprint (idle, start-up)")
            R["footprint"] = bench_footprint(root)
        if "ha" in only:
            log("high availability: %d orders, SQLite and 1, 2, 3 instances on PostgreSQL"
                % sizes[0])
            R["ha"] = bench_ha(root, sizes[0])
        if "ldap" in only:
            log("LDAP %d x 3" % raw_n)
            R["ldap"] = bench_ldap(root, raw_n)
        if "sqlite" in only:
            log("SQLite %d x 3" % raw_n)
            R["sqlite"] = bench_sql(root, raw_n, "sqlite")
        if "pg" in only:
            log("PostgreSQL %d x 3" % raw_n)
            R["pg"] = bench_sql(root, raw_n, "pg")
        for part, driver in (("sqlrounds", "sqlite"), ("pgrounds", "postgresql")):
            if part in only:
                log("%s rounds: %d x 3, %d rounds" % (driver, raw_n // 2, a.rounds))
                R["sqlite_rounds" if driver == "sqlite" else "pg_rounds"] = bench_sql_rounds(
                    root, raw_n // 2, driver, a.rounds, agent_builds(a.compare, b))
        if "json" in only:
            log("JSON micro-benchmark, %d rounds" % a.rounds)
            R["json_micro"] = bench_json_micro(a.rounds, agent_builds(a.compare, b))
        if "e2erounds" in only:
            log("pipeline alone: %d orders, %d rounds" % (sizes[-1] // 5, a.rounds))
            R["pipeline_rounds"] = bench_e2e_rounds(root, sizes[-1] // 5, a.rounds,
                                               agent_builds(a.compare, b))
        if "ldaprounds" in only:
            log("LDAP rounds: %d x 3, %d rounds" % (raw_n // 2, a.rounds))
            R["ldap_rounds"] = bench_ldap_rounds(root, raw_n // 2, a.rounds,
                                                 agent_builds(a.compare, b))
    finally:
        if a.json:
            with open(a.json, "w") as f:
                json.dump(R, f, indent=1, default=str)
        shutil.rmtree(root, ignore_errors=True)
    print(report(R, a.scale))


if __name__ == "__main__":
    main()

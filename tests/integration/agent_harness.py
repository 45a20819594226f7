# SPDX-License-Identifier: Apache-2.0
"""Runs the real connector-agent binary for integration tests.

An Agent writes a configuration file for a SimServer (harness.py), starts the binary
with it, and lets a test wait for it, signal it and read its log. Back-ends are loaded
from the build tree ($CA_BACKEND_BUILD_DIR): the project's plug-ins and the test one
(testbackend), so these tests exercise the same loader and executor as production.
"""
import os
import signal
import subprocess
import time

AGENT_BIN = os.environ.get("CA_AGENT_BIN", "connector-agent")
BACKEND_DIR = os.environ.get("CA_BACKEND_BUILD_DIR", "")


def ini(sections):
    """sections: list of (header, {key: value}) -> INI text."""
    out = []
    for header, keys in sections:
        out.append("[%s]" % header)
        for k, v in keys.items():
            out.append("%s = %s" % (k, v))
        out.append("")
    return "\n".join(out)


class Agent:
    def __init__(self, workdir, server, connectors=None, resource_types=None,
                 agent=None, server_keys=None, name="agent"):
        self.workdir = workdir
        self.server = server
        self.name = name
        self.state_dir = os.path.join(workdir, name + "-state")
        os.makedirs(self.state_dir, exist_ok=True)
        self.applied_file = os.path.join(workdir, name + "-applied.txt")
        if connectors is None:
            connectors = {"c1": {"backend": "testbackend", "state_file": self.applied_file}}
        if resource_types is None:
            resource_types = {"User": {"connector": next(iter(connectors))}}
        self.connectors = connectors
        self.resource_types = resource_types
        self.agent_keys = {
            "identifier": "agent-test-01",
            "state_dir": self.state_dir,
            "backend_dir": BACKEND_DIR,
            "heartbeat_interval": "1s",
            "shutdown_deadline": "10s",
            "disconnect_grace": "2s",
            "log_level": "debug",
            "allow_root": "yes",
        }
        self.agent_keys.update(agent or {})
        self.server_keys = {
            "url": server.url,
            "client_id": server.client_id,
            "client_secret_file": server.secret_file,
            "connect_timeout": "2s",
            "request_timeout": "5s",
        }
        if server_keys:
            self.server_keys.update(server_keys)
        self.config_path = os.path.join(workdir, name + ".conf")
        self.log_path = os.path.join(workdir, name + ".log")
        self.proc = None
        self.write_config()

    def write_config(self, extra=""):
        sections = [("agent", self.agent_keys), ("server", self.server_keys)]
        for name, keys in self.connectors.items():
            sections.append(("connector " + name, keys))
        for ident, keys in self.resource_types.items():
            sections.append(("resource-type " + ident, keys))
        with open(self.config_path, "w") as f:
            f.write(ini(sections) + extra)

    def start(self, *args, env=None):
        assert self.proc is None or self.proc.poll() is not None
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.log_file = open(self.log_path, "a")
        self.proc = subprocess.Popen([AGENT_BIN, "--config", self.config_path, *args],
                                     stdout=self.log_file, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=full_env)
        return self.proc

    def run(self, *args, timeout=60, env=None):
        """Runs the agent to completion (e.g. --once, --check-config); returns (rc, output)."""
        full_env = dict(os.environ)
        full_env.update(env or {})
        p = subprocess.run([AGENT_BIN, "--config", self.config_path, *args],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL, env=full_env, timeout=timeout)
        out = p.stdout.decode("utf-8", "replace")
        with open(self.log_path, "a") as f:
            f.write(out)
        return p.returncode, out

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout=30):
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is not None:
                self.log_file.close()

    def stop(self, timeout=30):
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.wait(5)
            raise

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.wait(10)

    def log(self):
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def applied(self):
        """Lines the testbackend wrote: one per application, 'key changetype'. A record
        torn by a SIGKILL (its write cut short, the order not applied) is left out."""
        try:
            with open(self.applied_file) as f:
                return [l.split()[0] for l in f if len(l.split()) == 2 and
                        l.split()[1] in ("Added", "Modified", "Deleted", "Unknown")]
        except FileNotFoundError:
            return []


def wait_for(predicate, timeout=30, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))

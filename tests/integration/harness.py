# SPDX-License-Identifier: Apache-2.0
"""Harness for integration tests: runs ca-simserver (the simulated identity server) on
127.0.0.1 and drives it through its /_control/ API. Standard library only.

    with SimServer(workdir, connectors=("c1",), generate=10) as sim:
        ... run the agent against sim.url with sim.client_id / sim.secret_file ...
        wait_for(lambda: sim.state()["received"] >= 10, timeout=30)

Everything is bounded in time: start() waits at most 10 s for the port file, every
control call has a timeout, stop() escalates to SIGKILL after 10 s. stop() raises when
the server exits non-zero (an AddressSanitizer leak report makes it do so), unless
called with check=False.
"""

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
HTTP_TIMEOUT_S = 15.0

__all__ = ["SimServer", "free_port", "make_order", "make_test_ca", "wait_for", "simserver_bin"]


def simserver_bin():
    """The ca-simserver binary: $CA_SIMSERVER_BIN, else the usual build folders."""
    env = os.environ.get("CA_SIMSERVER_BIN")
    if env:
        return env
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(os.path.dirname(here))
    for build in ("build", "build-asan", "build/dev", "build/asan"):
        cand = os.path.join(root, build, "tests", "simserver", "ca-simserver")
        if os.access(cand, os.X_OK):
            return cand
    raise RuntimeError("ca-simserver not found: set CA_SIMSERVER_BIN")


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout=10.0, interval=0.05, what="condition"):
    """Polls predicate until it returns something true; returns that value. Raises
    TimeoutError after timeout seconds (the last exception, if any, is chained)."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            value = predicate()
            if value:
                return value
            last_exc = None
        except Exception as exc:  # the server may be starting or restarting
            last_exc = exc
        if time.monotonic() >= deadline:
            raise TimeoutError("timed out after %.1f s waiting for %s" % (timeout, what)) from last_exc
        time.sleep(interval)


_GIVEN = ["James", "Ada", "Grace", "Alan", "Linus", "Barbara", "Ken", "Dennis"]
_SN = ["Bond", "Lovelace", "Hopper", "Turing", "Torvalds", "Liskov", "Thompson", "Ritchie"]


def make_order(i, connector="c1", change="Added", resource_type="User", with_id=True):
    """One order as protocol.md section 3 shows it, for user number i. Its Id is
    "<connector>-<i:06d>-<change>" when with_id; its assignment is "39<i:05d>"."""
    uid = "user%05d" % i
    given, sn = _GIVEN[i % len(_GIVEN)], _SN[i % len(_SN)]
    if change == "Added":
        changes = {
            "uid": uid,
            "givenName": given,
            "sn": sn,
            "cn": uid,
            "mail": "%s.%s.%05d@example.com" % (given, sn, i),
            "memberOf_add": ["cn=staff,ou=groups,dc=example,dc=com"],
            "memberOf_remove": [],
        }
    elif change == "Modified":
        changes = {
            "mail": "%s.%s.%05d@corp.example.com" % (given, sn, i),
            "title": "Senior Engineer",
            "memberOf_add": ["cn=engineering,ou=groups,dc=example,dc=com"],
            "memberOf_remove": ["cn=staff,ou=groups,dc=example,dc=com"],
        }
    else:
        changes = {}
    order = {
        "AssignedResourceTypeId": "39%05d" % i,
        "ChangeType": change,
        "WorkflowInstanceId": str(1000 + i),
        "Owner": {"Id": "2%05d" % i, "Identifier": uid,
                  "InternalDisplayName": "%s - %s %s" % (uid, sn, given)},
        "ResourceType": {
            "Id": "-41",
            "Identifier": resource_type,
            "SourceEntityType": {"Id": "51", "Identifier": "Directory_User"},
            "TargetEntityType": {"Id": "70", "Identifier": "LDAP_User"},
        },
        "Changes": changes,
        "Resource": {"uid": uid},
        "Arguments": {"WorkflowIdentifier": "Directory_User_StartPersonnel"},
    }
    if with_id:
        order["Id"] = "%s-%06d-%s" % (connector, i, change)
    return order


def _openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, timeout=60,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def make_test_ca(workdir):
    """A throwaway CA, a server certificate for 127.0.0.1 and localhost, and a client
    certificate, made with the openssl CLI in workdir/tls. Returns a dict of paths:
    ca, ca_key, cert, key (server), client_cert, client_key. For SimServer pass
    tls={"cert": d["cert"], "key": d["key"]} (plus "client_ca": d["ca"] for mTLS)."""
    d = os.path.join(workdir, "tls")
    os.makedirs(d, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
             "/CN=ca-simserver test CA", "-keyout", "ca.key", "-out", "ca.pem",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    with open(os.path.join(d, "server.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
    with open(os.path.join(d, "client.ext"), "w") as f:
        f.write("basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n")
    for name, ext in (("server", "server.ext"), ("client", "client.ext")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=%s" % (
            "127.0.0.1" if name == "server" else "agent@test"),
            "-keyout", name + ".key", "-out", name + ".csr", cwd=d)
        _openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", name + ".pem",
                 cwd=d)
    for key in ("ca.key", "server.key", "client.key"):
        os.chmod(os.path.join(d, key), 0o600)
    return {
        "ca": os.path.join(d, "ca.pem"),
        "ca_key": os.path.join(d, "ca.key"),
        "cert": os.path.join(d, "server.pem"),
        "key": os.path.join(d, "server.key"),
        "client_cert": os.path.join(d, "client.pem"),
        "client_key": os.path.join(d, "client.key"),
    }


class SimServer:
    """One ca-simserver process on 127.0.0.1 with a picked port."""

    def __init__(self, workdir, connectors=("c1",), orders=None, generate=0,
                 generate_connector="c1", page_size=100, lease=30, token_ttl=3600, tls=None,
                 extra_args=()):
        self.workdir = workdir
        self.connectors = tuple(connectors)
        self.orders = orders
        self.generate_count = generate
        self.generate_connector = generate_connector
        self.page_size = page_size
        self.lease = lease
        self.token_ttl = token_ttl
        self.tls = dict(tls) if tls else None
        self.extra_args = tuple(extra_args)
        self.client_id = "agent@test"
        self.secret = "test-secret"
        self.secret_file = os.path.join(workdir, "simserver.secret")
        self.port_file = os.path.join(workdir, "simserver.port")
        self.log_file = os.path.join(workdir, "simserver.log")
        self.proc = None
        self.port = None
        self._log = None

    # ---- life cycle ----

    @property
    def url(self):
        scheme = "https" if self.tls else "http"
        return "%s://127.0.0.1:%d" % (scheme, self.port)

    def command(self):
        cmd = [simserver_bin(), "--listen", "127.0.0.1:0", "--port-file", self.port_file,
               "--client-id", self.client_id, "--client-secret-file", self.secret_file,
               "--page-size", str(self.page_size), "--lease", str(self.lease),
               "--token-ttl", str(self.token_ttl)]
        if self.connectors:
            cmd += ["--connectors", ",".join(self.connectors)]
        if self.orders is not None:
            path = os.path.join(self.workdir, "simserver-orders.json")
            with open(path, "w") as f:
                json.dump(self.orders, f)
            cmd += ["--orders", path]
        if self.generate_count:
            cmd += ["--generate", str(self.generate_count), "--generate-connector",
                    self.generate_connector]
        if self.tls:
            cmd += ["--tls-cert", self.tls["cert"], "--tls-key", self.tls["key"]]
            if self.tls.get("client_ca"):
                cmd += ["--client-ca", self.tls["client_ca"]]
        return cmd + list(self.extra_args)

    def start(self):
        os.makedirs(self.workdir, exist_ok=True)
        fd = os.open(self.secret_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.secret + "\n")
        os.chmod(self.secret_file, 0o600)
        if os.path.exists(self.port_file):
            os.unlink(self.port_file)
        self._log = open(self.log_file, "ab")
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=self._log)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("ca-simserver exited with %s at start:\n%s"
                                   % (self.proc.returncode, self.log_tail()))
            try:
                with open(self.port_file) as f:
                    text = f.read()
                if text.endswith("\n"):
                    self.port = int(text.strip())
                    return self
            except FileNotFoundError:
                pass
            time.sleep(0.02)
        self.stop(check=False)
        raise RuntimeError("ca-simserver did not listen within %.0f s:\n%s"
                           % (START_TIMEOUT_S, self.log_tail()))

    def stop(self, check=True):
        """Stops the server (SIGTERM, then SIGKILL after 10 s); returns its exit code and
        raises when check and the code is not 0."""
        if not self.proc:
            return 0
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=STOP_TIMEOUT_S)
        if self._log:
            self._log.close()
            self._log = None
        if check and proc.returncode != 0:
            raise RuntimeError("ca-simserver exited with %s:\n%s"
                               % (proc.returncode, self.log_tail()))
        return proc.returncode

    def log_tail(self, lines=40):
        try:
            with open(self.log_file, "rb") as f:
                data = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return ""
        return "\n".join(data[-lines:])

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        # A failing test keeps its own exception; a clean one also checks the exit.
        self.stop(check=exc_type is None)
        return False

    # ---- raw HTTP ----

    def ssl_context(self, client_cert=True):
        """A client context trusting the test CA (tls["ca"] when given), presenting the
        client certificate when mTLS is on and client_cert is true."""
        if not self.tls:
            return None
        if self.tls.get("ca"):
            ctx = ssl.create_default_context(cafile=self.tls["ca"])
        else:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if client_cert and self.tls.get("client_ca") and self.tls.get("client_cert"):
            ctx.load_cert_chain(self.tls["client_cert"], self.tls["client_key"])
        return ctx

    def http(self, method, path, body=None, headers=None, timeout=HTTP_TIMEOUT_S,
             context=None):
        """One request; returns (status, headers dict with lower-case names, body bytes).
        body may be bytes, str or a JSON-able object (sent as application/json unless
        headers say otherwise). Never raises on an HTTP status."""
        hdrs = dict(headers or {})
        data = None
        if body is not None:
            if isinstance(body, (bytes, bytearray)):
                data = bytes(body)
            elif isinstance(body, str):
                data = body.encode()
            else:
                data = json.dumps(body).encode()
                hdrs.setdefault("Content-Type", "application/json")
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=hdrs)
        ctx = context if context is not None else self.ssl_context()
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=ctx) as resp:
                return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
        except urllib.error.HTTPError as e:
            data = e.read()
            return e.code, {k.lower(): v for k, v in e.headers.items()}, data

    def _control(self, method, what, body=None):
        status, _, data = self.http(method, "/_control/" + what, body=body)
        if status != 200:
            raise RuntimeError("control %s %s: %d %s" % (method, what, status, data[:500]))
        return json.loads(data)

    def token(self):
        """A fresh access token, fetched as the agent would."""
        form = urllib.parse.urlencode({"grant_type": "client_credentials",
                                       "client_id": self.client_id,
                                       "client_secret": self.secret,
                                       "scope": "usercube_api"}, safe="@")
        status, _, data = self.http("POST", "/connect/token", body=form, headers={
            "Content-Type": "application/x-www-form-urlencoded"})
        if status != 200:
            raise RuntimeError("token: %d %s" % (status, data[:200]))
        return json.loads(data)["access_token"]

    def api(self, method, path, body=None, token=None, api_version="1.0", extra_query="",
            headers=None, timeout=HTTP_TIMEOUT_S):
        """An API call with the headers the protocol requires (each can be overridden or
        removed by passing None in headers)."""
        hdrs = {"Authorization": "Bearer " + (token or self.token()),
                "Accept": "application/json",
                "User-Agent": "harness/1.0"}
        for k, v in (headers or {}).items():
            if v is None:
                hdrs.pop(k, None)
            else:
                hdrs[k] = v
        query = []
        if api_version is not None:
            query.append("api-version=" + urllib.parse.quote(api_version))
        if extra_query:
            query.append(extra_query)
        full = path + ("?" + "&".join(query) if query else "")
        return self.http(method, full, body=body, headers=hdrs, timeout=timeout)

    # ---- control API ----

    def state(self):
        return self._control("GET", "state")

    def results(self):
        return self._control("GET", "results")["results"]

    def heartbeats(self):
        return self._control("GET", "heartbeats")["heartbeats"]

    def requests(self):
        return self._control("GET", "requests")["requests"]

    def violations(self):
        return self.state()["violations"]

    def add_orders(self, connector, orders):
        return self._control("POST", "orders", {"connector": connector, "orders": list(orders)})

    def generate(self, connector, count, **kw):
        """kw: resource_type="User", ids=True."""
        body = {"connector": connector, "count": count}
        body.update(kw)
        return self._control("POST", "generate", body)

    def redeliver(self, connector):
        return self._control("POST", "redeliver", {"connector": connector})

    def fault(self, endpoint, kind, count=1, **kw):
        """endpoint: token|data|results|heartbeat|any; kind: status (status=, retry_after=,
        body=; match= applies it only to requests whose body holds that text), slow
        (delay_ms=), drop, malformed, truncated (half a valid body; with
        transport=True the full Content-Length is announced and the connection closed
        after half), oversized (bytes=, streamed), wrongtypes (variant="list_object" for a
        list that is an object), expire_token (revokes every token at once)."""
        body = {"endpoint": endpoint, "kind": kind, "count": count}
        body.update(kw)
        return self._control("POST", "fault", body)

    def reset(self):
        return self._control("POST", "reset", {})

    def wait_for(self, predicate, timeout=10.0, what="condition"):
        return wait_for(predicate, timeout=timeout, what=what)


def _self_check():
    """python3 harness.py: starts and stops one server (a smoke test for the harness)."""
    import tempfile
    d = tempfile.mkdtemp(prefix="simserver-")
    try:
        with SimServer(d, generate=3) as sim:
            print(sim.url, len(sim.state()["orders"]), "orders")
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    _self_check()

# SPDX-License-Identifier: Apache-2.0
"""The high-availability deployment files (packaging/ha/compose.yaml and
packaging/ha/kubernetes.yaml) say what the agent understands: each agent's configuration
is run through the real binary's --check-config (which refuses any key it does not know,
from the file or the environment), and the deployment around it keeps the promises of
packaging/doc/high-availability.md: three instances with distinct identifiers on one
PostgreSQL journal, the same seal key for all, a stop grace longer than the drain, a
restart after exit 6, and a disruption budget that leaves a standby. No container engine
runs here: the files are parsed, not deployed."""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import yaml

sys.path.insert(0, os.path.dirname(__file__))
from agent_harness import AGENT_BIN  # noqa: E402

SRC = os.environ.get("CA_TEST_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
HA = os.path.join(SRC, "packaging", "ha")
BACKEND_DIR = os.environ.get("CA_BACKEND_BUILD_DIR", "")
DRAIN_S = 30 + 5  # shutdown_deadline's default and the farewell heartbeat


def seconds(text):
    text = str(text)
    return int(text[:-1]) * {"s": 1, "m": 60}[text[-1]] if text[-1] in "sm" else int(text)


class HaDeploymentFiles(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="ca-ha-files-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def secret_file(self, name):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write("placeholder\n")
        os.chmod(path, 0o600)
        return path

    def check_config(self, env, config=None):
        """--check-config with env (and the file config, when given) in a clean
        environment; state and plug-ins point into the build, secrets at placeholders."""
        env = dict(env)
        env.update({"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                    "CONNECTOR_AGENT_AGENT_STATE_DIR": self.tmp,
                    "CONNECTOR_AGENT_AGENT_BACKEND_DIR": BACKEND_DIR,
                    "CONNECTOR_AGENT_AGENT_ALLOW_ROOT": "yes"})
        args = [AGENT_BIN, "--config", config or os.path.join(self.tmp, "none.conf"),
                "--check-config"]
        p = subprocess.run(args, env=env, capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("is valid: 1 connector(s), 1 resource type(s)", p.stdout + p.stderr)

    def test_compose(self):
        with open(os.path.join(HA, "compose.yaml")) as f:
            doc = yaml.safe_load(f)
        services = doc["services"]
        agents = {n: s for n, s in services.items() if s.get("image", "").startswith(
            "connector-agent")}
        self.assertEqual(len(agents), 3)
        self.assertIn("journal-db", services)
        identifiers = set()
        for name, svc in agents.items():
            env = {k: str(v) for k, v in svc["environment"].items()}
            identifiers.add(env["CONNECTOR_AGENT_AGENT_IDENTIFIER"])
            self.assertEqual(env["CONNECTOR_AGENT_AGENT_JOURNAL"], "postgresql")
            self.assertIn("host=journal-db ", env["CONNECTOR_AGENT_AGENT_JOURNAL_CONNECTION"])
            self.assertNotIn("password", env["CONNECTOR_AGENT_AGENT_JOURNAL_CONNECTION"])
            self.assertEqual(env["CREDENTIALS_DIRECTORY"], "/run/secrets")
            targets = {s["target"] for s in svc["secrets"]}
            self.assertEqual(targets, {"client_secret", "journal_password", "journal-key"})
            self.assertTrue(all(s["mode"] == 0o400 and s["uid"] == "10001"
                                for s in svc["secrets"]))
            self.assertGreaterEqual(seconds(svc["stop_grace_period"]), DRAIN_S)
            self.assertIn(svc["restart"], ("unless-stopped", "always", "on-failure"))
            self.assertTrue(svc["init"])
            self.assertEqual(svc["depends_on"]["journal-db"]["condition"], "service_healthy")
            self.assertEqual(len(svc["volumes"]), 1)
            # The agent itself reads the configuration: every key must be one it knows.
            env["CONNECTOR_AGENT_SERVER_CLIENT_SECRET_FILE"] = self.secret_file("cs-" + name)
            env["CONNECTOR_AGENT_AGENT_JOURNAL_PASSWORD_FILE"] = self.secret_file("jp-" + name)
            del env["CREDENTIALS_DIRECTORY"]
            self.check_config(env)
        self.assertEqual(len(identifiers), 3, "instances must have distinct identifiers")
        self.assertEqual(len({tuple(s["volumes"]) for s in agents.values()}), 3,
                         "each instance needs its own state volume")
        db = services["journal-db"]["environment"]
        self.assertEqual(db["POSTGRES_PASSWORD_FILE"], "/run/secrets/journal_password")
        self.assertEqual(set(doc["secrets"]), {"client_secret", "journal_password",
                                               "journal-key"})

    def test_kubernetes(self):
        with open(os.path.join(HA, "kubernetes.yaml")) as f:
            docs = {d["kind"]: d for d in yaml.safe_load_all(f) if d}
        self.assertEqual(set(docs), {"Secret", "ConfigMap", "Deployment",
                                     "PodDisruptionBudget"})
        deploy = docs["Deployment"]["spec"]
        replicas = deploy["replicas"]
        self.assertEqual(replicas, 3)
        labels = deploy["template"]["metadata"]["labels"]
        self.assertEqual(deploy["selector"]["matchLabels"], labels)
        pdb = docs["PodDisruptionBudget"]["spec"]
        self.assertEqual(pdb["selector"]["matchLabels"], labels)
        self.assertGreaterEqual(pdb["minAvailable"], 2)
        self.assertLess(pdb["minAvailable"], replicas, "a node drain could never proceed")
        pod = deploy["template"]["spec"]
        self.assertGreaterEqual(pod["terminationGracePeriodSeconds"], DRAIN_S)
        (container,) = pod["containers"]
        env = {e["name"]: e for e in container["env"]}
        self.assertEqual(env["CONNECTOR_AGENT_AGENT_IDENTIFIER"]["valueFrom"]["fieldRef"]
                         ["fieldPath"], "metadata.name")
        secrets_dir = env["CREDENTIALS_DIRECTORY"]["value"]
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        self.assertEqual(mounts["secrets"], secrets_dir)
        self.assertEqual(mounts["config"], "/etc/connector-agent")
        volumes = {v["name"]: v for v in pod["volumes"]}
        self.assertEqual(volumes["secrets"]["secret"]["secretName"],
                         docs["Secret"]["metadata"]["name"])
        self.assertEqual(volumes["config"]["configMap"]["name"],
                         docs["ConfigMap"]["metadata"]["name"])
        self.assertEqual(set(docs["Secret"]["stringData"]),
                         {"client_secret", "journal_password", "journal-key"})
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        self.assertEqual(container["livenessProbe"]["httpGet"]["port"], "status")
        self.assertEqual(ports["status"], 9187)
        # The configuration file, with its secret paths at placeholders, through the
        # agent: every key must be one it knows, and its secrets where the Secret is.
        conf = docs["ConfigMap"]["data"]["agent.conf"]
        for key in ("journal_password", "client_secret"):
            self.assertIn("%s/%s" % (secrets_dir, key), conf)
            conf = conf.replace("%s/%s" % (secrets_dir, key), self.secret_file(key))
        path = os.path.join(self.tmp, "agent.conf")
        with open(path, "w") as f:
            f.write(conf)
        self.check_config({"CONNECTOR_AGENT_AGENT_IDENTIFIER": "connector-agent-0"}, path)
        self.assertIn("journal = postgresql", conf)


if __name__ == "__main__":
    unittest.main(verbosity=2)

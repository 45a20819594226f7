# SPDX-License-Identifier: Apache-2.0
"""The systemd unit: verify, security exposure, sysusers entry, agreement with the agent's
defaults. The checks are in tests/deploy/test_systemd_unit.sh (also run by hand); this
wrapper puts them in ctest. Needs the Debian package systemd (systemd-analyze,
systemd-sysusers); systemd need not be running."""
import os
import subprocess
import sys
import unittest

SOURCE = os.environ.get("CA_TEST_SOURCE_DIR",
                        os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BUILD = os.environ.get("CA_TEST_BUILD_DIR")
SCRIPT = os.path.join(SOURCE, "tests", "deploy", "test_systemd_unit.sh")


class SystemdUnit(unittest.TestCase):
    def test_unit_verifies_and_is_hardened(self):
        self.assertIsNotNone(BUILD, "CA_TEST_BUILD_DIR is not set (run through ctest)")
        proc = subprocess.run(["bash", SCRIPT, BUILD], capture_output=True, text=True,
                              timeout=300)
        sys.stdout.write(proc.stdout)
        sys.stderr.write(proc.stderr)
        self.assertEqual(proc.returncode, 0, "tests/deploy/test_systemd_unit.sh failed")
        score = [l for l in proc.stdout.splitlines() if "Overall exposure level" in l]
        self.assertEqual(len(score), 1, "no security score printed")
        self.assertIn("PASS", proc.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)

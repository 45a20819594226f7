# SPDX-License-Identifier: Apache-2.0
"""A throwaway PostgreSQL 15 cluster on loopback for one test (tests/pg/pg.sh): started
on a free port with a password, stopped (crash-like) and started again on demand, and
removed at the end. The password also lands in a file of mode 0600, for the agent's
journal_password_file or a back-end's password_file."""
import os
import subprocess

from harness import free_port

SRC = os.environ.get("CA_TEST_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
PG = os.path.join(SRC, "tests", "pg", "pg.sh")
PSQL = "/usr/lib/postgresql/15/bin/psql"


class PgCluster:
    def __init__(self, workdir, password):
        if not os.access(PSQL, os.X_OK):
            raise AssertionError("PostgreSQL 15 is not installed (%s missing): run "
                                 "tests/run.sh" % PSQL)
        self.password = password
        self.port = free_port()
        self.datadir = subprocess.run(["bash", PG, "start", str(self.port)], input=password,
                                      check=True, capture_output=True, text=True,
                                      timeout=90).stdout.strip()
        self.pwfile = os.path.join(workdir, "pg-%d.pw" % self.port)
        with open(self.pwfile, "w") as f:
            f.write(password + "\n")
        os.chmod(self.pwfile, 0o600)

    @property
    def conninfo(self):
        """A libpq connection string to the cluster's postgres database, no password."""
        return "host=127.0.0.1 port=%d dbname=postgres user=ca_test sslmode=disable" % self.port

    def psql(self, text, check=True):
        """Runs text in psql (unaligned, tuples only); the CompletedProcess."""
        p = subprocess.run([PSQL, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
                            "-p", str(self.port), "-U", "ca_test", "-d", "postgres", "-c", text],
                           capture_output=True, text=True, timeout=30,
                           env=dict(os.environ, PGPASSWORD=self.password, PGSSLMODE="disable"))
        if check and p.returncode != 0:
            raise AssertionError("psql: %s" % p.stderr)
        return p

    def sql(self, text):
        return self.psql(text).stdout.strip()

    def pause(self):
        """Stops the server at once, as a crash would; the data stays."""
        subprocess.run(["bash", PG, "pause", self.datadir], check=True, timeout=60)

    def resume(self):
        subprocess.run(["bash", PG, "resume", self.datadir], check=True, timeout=60)

    def stop(self):
        subprocess.run(["bash", PG, "stop", self.datadir], timeout=90)

"""The Debian package: built with CPack from a Release build, inspected with dpkg-deb,
checked with lintian (when installed) and groff, then installed for real with dpkg -i,
exercised, and purged; the purge must leave no file, no state and no user behind.

Installs into the running system: meant for CI's throwaway machine, as root. Needs the
Debian packages dpkg-dev (dpkg-shlibdeps), groff-base, cmake, gcc and the build
dependencies; lintian is optional (its errors fail the test, its warnings are printed).
"""
import grp
import hashlib
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

SOURCE = os.path.abspath(os.environ.get(
    "CA_TEST_SOURCE_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")))
PKG = "connector-agent"
USER = "connector-agent"
CONF_DIR = "/etc/connector-agent"
STATE_DIR = "/var/lib/connector-agent"
BUILD_TIMEOUT = 900
DPKG_LOCK_WAIT = 120  # seconds to wait for another dpkg/apt to finish
PLUGINS = ("sql.so", "exec.so", "file.so")
# The shared libraries the binary and plug-ins link: shlibdeps must name their packages.
EXPECTED_DEPENDS = ("libc6", "libcurl4", "libevent-2.1-7", "libjansson4", "libsqlite3-0",
                    "libssl3", "libsystemd0", "libinih1",
                    "procps")  # /bin/kill, the unit's ExecReload


def run(cmd, check=True, timeout=BUILD_TIMEOUT, **kw):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if check and proc.returncode != 0:
        raise AssertionError("%s exited %d:\n%s%s" % (" ".join(cmd), proc.returncode,
                                                       proc.stdout[-4000:], proc.stderr[-4000:]))
    return proc


def dpkg(*args):
    """dpkg, waiting for the lock when apt or another dpkg holds it."""
    deadline = time.monotonic() + DPKG_LOCK_WAIT
    while True:
        proc = run(["dpkg"] + list(args), check=False)
        if proc.returncode == 0 or "lock" not in proc.stderr or time.monotonic() > deadline:
            return proc
        time.sleep(2)


def installed():
    proc = run(["dpkg-query", "-W", "-f=${Status}", PKG], check=False)
    return proc.returncode == 0 and "installed" in proc.stdout.split()


def user_exists(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def group_exists(name):
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


def man_text(path):
    """Roff source with the escapes that matter for matching names undone."""
    with open(path, encoding="utf-8") as f:
        return f.read().replace("\\-", "-").replace("\\&", "")


class DebianPackage(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="ca-deb-")
        cls.src = SOURCE
        cls.example = os.path.join(SOURCE, "packaging", "agent.conf.example")
        cls.placeholder_example = not os.path.exists(cls.example)
        if cls.placeholder_example:
            # The example config is someone else's file and may not exist yet: package a
            # copy of the tree with a stand-in, so that the conffile and purge logic are
            # still exercised.
            print("packaging/agent.conf.example is missing: building from a copy of the "
                  "sources with a stand-in example", file=sys.stderr)
            cls.src = os.path.join(cls.tmp, "src")
            def skip(directory, names):  # build trees at the top, and git's file
                top = os.path.samefile(directory, SOURCE)
                return [n for n in names if n == ".git" or (top and n.startswith("build"))]
            shutil.copytree(SOURCE, cls.src, symlinks=True, ignore=skip)
            cls.example = os.path.join(cls.src, "packaging", "agent.conf.example")
            with open(cls.example, "w") as f:
                f.write("# stand-in example written by test_deploy_package.py\n"
                        "[server]\nurl = https://idm.example.com\n")
        cls.build = os.path.join(cls.tmp, "build")
        run(["cmake", "-S", cls.src, "-B", cls.build, "-DCA_TESTS=OFF",
             "-DCMAKE_BUILD_TYPE=Release", "-DCMAKE_INSTALL_PREFIX=/usr"])
        run(["cmake", "--build", cls.build, "-j", str(os.cpu_count() or 2)])
        run(["cpack", "-G", "DEB"], cwd=cls.build)
        debs = [f for f in os.listdir(cls.build) if f.endswith(".deb")]
        assert len(debs) == 1, "cpack made %r" % debs
        cls.deb = os.path.join(cls.build, debs[0])
        cls.contents = run(["dpkg-deb", "-c", cls.deb]).stdout
        cls.paths = {line.split()[5][1:] for line in cls.contents.splitlines()}

    @classmethod
    def tearDownClass(cls):
        if installed():
            dpkg("--purge", PKG)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def field(self, name):
        return run(["dpkg-deb", "-f", self.deb, name]).stdout.strip()

    def find(self, pattern):
        return sorted(p for p in self.paths if re.fullmatch(pattern, p))

    # ---- the package as built ----

    def test_contents(self):
        expected = [
            "/usr/sbin/connector-agent",
            "/usr/include/connector-agent/backend.h",
            "/usr/lib/systemd/system/connector-agent.service",
            "/usr/lib/sysusers.d/connector-agent.conf",
            "/usr/share/man/man8/connector-agent.8.gz",
            "/usr/share/man/man5/agent.conf.5.gz",
            "/usr/share/doc/connector-agent/copyright",
            "/usr/share/doc/connector-agent/changelog.Debian.gz",
            "/usr/share/doc/connector-agent/examples/agent.conf",
            "/etc/connector-agent/agent.conf.example",
        ]
        for p in expected:
            self.assertIn(p, self.paths, "%s missing from the package:\n%s" % (p, self.contents))
        # The package owns the configuration directory, so that systemd never creates it
        # (ConfigurationDirectory= would make it the service user's).
        self.assertIn("/etc/connector-agent/", self.paths)
        for so in PLUGINS:
            self.assertEqual(len(self.find(r"/usr/lib/[^/]+/connector-agent/backends/" + re.escape(so))),
                             1, "plug-in %s missing:\n%s" % (so, self.contents))
        # Nothing outside the directories a Debian package may use, and no test plug-in.
        for p in self.paths:
            self.assertRegex(p, r"^/(usr|etc)/", "unexpected path %s" % p)
            self.assertNotIn("/usr/local", p)
            self.assertNotIn("testbackend", p)
        sbin = [l for l in self.contents.splitlines() if l.endswith("./usr/sbin/connector-agent")]
        self.assertTrue(sbin[0].startswith("-rwxr-xr-x root/root"), sbin[0])

    def test_control_fields(self):
        self.assertEqual(self.field("Package"), PKG)
        self.assertEqual(self.field("Section"), "net")
        self.assertRegex(self.field("Maintainer"), r".+ <[^@ ]+@[^@ ]+>")
        self.assertRegex(self.field("Version"), r"^\d+\.\d+\.\d+-\d+$")
        self.assertTrue(self.field("Description"))
        depends = self.field("Depends")
        print("Depends:", depends, file=sys.stderr)
        names = {re.split(r"[ (]", d.strip())[0] for alt in depends.split(",")
                 for d in alt.split("|")}
        for lib in EXPECTED_DEPENDS:
            self.assertIn(lib, names, "shlibdeps did not name %s: %s" % (lib, depends))
        # Debian's description format: a summary, then lines indented by one space.
        info = run(["dpkg-deb", "-I", self.deb]).stdout
        self.assertIn(" Description: ", info)

    def test_maintainer_scripts_and_conffiles(self):
        ctl = os.path.join(self.tmp, "control")
        run(["dpkg-deb", "-e", self.deb, ctl])
        with open(os.path.join(ctl, "conffiles")) as f:
            self.assertEqual(f.read().split(), ["/etc/connector-agent/agent.conf.example"])
        for script in ("postinst", "prerm", "postrm"):
            path = os.path.join(ctl, script)
            self.assertTrue(os.access(path, os.X_OK), script)
            run(["sh", "-n", path])
            with open(path) as f:
                body = f.read()
            # Nothing starts or enables the service: it has no configuration yet.
            for verb in ("enable", "start", "restart"):
                self.assertNotRegex(body, r"(systemctl|deb-systemd-invoke|deb-systemd-helper)"
                                    r"[^\n]*\b%s\b" % verb, "%s must not %s the service"
                                    % (script, verb))
        with open(os.path.join(ctl, "postrm")) as f:
            body = f.read()
        with open(self.example, "rb") as f:
            self.assertIn(hashlib.sha256(f.read()).hexdigest(), body)

    def test_lintian(self):
        if not shutil.which("lintian"):
            print("lintian is not installed: not run (Debian package lintian)", file=sys.stderr)
            return
        proc = run(["lintian", "--tag-display-limit", "0", self.deb], check=False)
        out = "\n".join(l for l in (proc.stdout + proc.stderr).splitlines()
                        if "root privileges" not in l)
        print("lintian:", out or "(nothing)", file=sys.stderr)
        errors = [l for l in out.splitlines() if l.startswith("E:")]
        self.assertEqual(errors, [], "lintian errors:\n" + out)

    def test_prefix_other_than_usr_is_refused(self):
        other = os.path.join(self.tmp, "build-local")
        run(["cmake", "-S", self.src, "-B", other, "-DCA_TESTS=OFF"])
        proc = run(["cpack", "-G", "DEB"], cwd=other, check=False)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("CMAKE_INSTALL_PREFIX=/usr", proc.stdout + proc.stderr)

    # ---- the man pages ----

    def test_man_pages_render_without_warnings(self):
        for page in ("connector-agent.8", "agent.conf.5"):
            path = os.path.join(SOURCE, "packaging", "man", page)
            proc = run(["groff", "-man", "-Tutf8", "-ww", "-z", path], check=False)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            self.assertEqual(proc.stderr, "", "groff warns on %s:\n%s" % (page, proc.stderr))
            if shutil.which("man"):
                proc = run(["man", "-l", "--warnings", path], check=False,
                           env=dict(os.environ, MANWIDTH="80", MAN_KEEP_STDERR="1"))
                self.assertEqual(proc.returncode, 0, proc.stderr)
                self.assertEqual(proc.stderr, "", "man -l warns on %s:\n%s" % (page, proc.stderr))

    def test_man_pages_match_the_code(self):
        """Every long option of main.c and every key of config_keys.c is documented, and
        so is every exit code of agent.h."""
        with open(os.path.join(SOURCE, "agent", "main.c")) as f:
            main_c = f.read()
        options = re.findall(r'\{"([a-z-]+)", (?:no|required)_argument', main_c)
        self.assertGreater(len(options), 5)
        page8 = man_text(os.path.join(SOURCE, "packaging", "man", "connector-agent.8"))
        for opt in options:
            self.assertTrue("--" + opt in page8, "connector-agent.8 lacks --%s" % opt)
        shorts = re.search(r'getopt_long\(argc, argv, "\+?([^"]*)"', main_c).group(1)
        for ch in shorts.replace(":", ""):
            self.assertTrue('.BR -%s ", " --' % ch in page8, "connector-agent.8 lacks -%s" % ch)
        with open(os.path.join(SOURCE, "agent", "agent.h")) as f:
            codes = re.findall(r"EXIT_[A-Z]+ = (\d+)", f.read())
        self.assertEqual(len(codes), 6)
        exit_section = page8.split(".SH EXIT STATUS")[1].split(".SH")[0]
        for code in codes:
            self.assertTrue(".B %s\n" % code in exit_section, "exit code %s undocumented" % code)

        with open(os.path.join(SOURCE, "common", "config_keys.c")) as f:
            keys_c = f.read()
        page5 = man_text(os.path.join(SOURCE, "packaging", "man", "agent.conf.5"))
        tables = re.findall(r"static const struct ca_keyword (\w+)\[\] = \{(.*?)\n\};", keys_c,
                            re.S)
        self.assertEqual(len(tables), 4)
        for table, body in tables:
            for key, default in re.findall(r'\{"(\w+)", CA_KEY_\w+, [^,]+, ("[^"]*"|NULL|\w+)',
                                           body):
                self.assertTrue(re.search(r"\b%s\b" % key, page5), "agent.conf.5 lacks %s (%s)"
                                % (key, table))
                if default.startswith('"') and default not in ('"0"',):
                    # The documented default, next to the key.
                    value = default.strip('"')
                    block = page5.split(key, 1)[1][:400]
                    self.assertTrue(value in block, "agent.conf.5: %s's default %s not "
                                    "documented" % (key, value))

    # ---- installed for real, then purged ----

    def test_install_and_purge(self):
        self.assertEqual(os.geteuid(), 0, "installs the package: run as root (CI does)")
        if installed():
            self.assertEqual(dpkg("--purge", PKG).returncode, 0)
        self.assertFalse(user_exists(USER), "user %s exists without the package: remove it "
                         "first (userdel %s)" % (USER, USER))
        self.cycle(keep_edited_config=False)
        self.cycle(keep_edited_config=True)

    def cycle(self, keep_edited_config):
        proc = dpkg("-i", self.deb)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        try:
            files = [l for l in run(["dpkg", "-L", PKG]).stdout.splitlines()
                     if os.path.isfile(l)]
            self.assertIn("/usr/sbin/connector-agent", files)
            pw = pwd.getpwnam(USER)
            self.assertEqual(pw.pw_dir, STATE_DIR)
            self.assertEqual(pw.pw_shell, "/usr/sbin/nologin")
            self.assertEqual(grp.getgrgid(pw.pw_gid).gr_name, USER)
            self.assertLess(pw.pw_uid, 1000, "not a system user")
            # Root's, readable by the agent (the file holds no secret: they come from
            # credentials); the mode systemd's ConfigurationDirectory= expects.
            st = os.stat(CONF_DIR)
            self.assertEqual(oct(st.st_mode & 0o7777), oct(0o755))
            self.assertEqual((st.st_uid, st.st_gid), (0, 0))
            # Neither enabled nor started.
            self.assertFalse(os.path.lexists(
                "/etc/systemd/system/multi-user.target.wants/connector-agent.service"))
            out = run(["/usr/sbin/connector-agent", "--version"]).stdout
            self.assertRegex(out, r"^connector-agent \d+\.\d+\.\d+")
            self.check_installed_agent_finds_plugins(pw)

            # What an operator and the running agent leave behind.
            os.makedirs(STATE_DIR, exist_ok=True)
            with open(os.path.join(STATE_DIR, "journal.db"), "w") as f:
                f.write("state")
            os.chown(STATE_DIR, pw.pw_uid, pw.pw_gid)
            shutil.copy(self.example, os.path.join(CONF_DIR, "agent.conf"))
            if keep_edited_config:
                with open(os.path.join(CONF_DIR, "agent.conf"), "a") as f:
                    f.write("# edited by the operator\n")
            with open(os.path.join(CONF_DIR, "client_secret"), "w") as f:
                f.write("not-a-real-secret\n")
        except BaseException:
            dpkg("--purge", PKG)
            raise

        proc = dpkg("--purge", PKG)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        try:
            self.assertFalse(installed())
            for path in files:
                self.assertFalse(os.path.exists(path), "%s left after purge" % path)
            self.assertFalse(os.path.exists(STATE_DIR), "state directory left after purge")
            self.assertFalse(user_exists(USER), "user left after purge")
            self.assertFalse(group_exists(USER), "group left after purge")
            self.assertFalse(os.path.exists(os.path.join(CONF_DIR, "agent.conf.example")))
            # The operator's own files stay: an edited agent.conf and the secret.
            self.assertEqual(os.path.exists(os.path.join(CONF_DIR, "agent.conf")),
                             keep_edited_config)
            self.assertTrue(os.path.exists(os.path.join(CONF_DIR, "client_secret")))
        finally:
            shutil.rmtree(CONF_DIR, ignore_errors=True)

    def check_installed_agent_finds_plugins(self, pw):
        """--check-config as the service user, with the compiled-in backend_dir: the
        packaged plug-ins load from where the package put them."""
        work = tempfile.mkdtemp(prefix="ca-deb-run-")
        try:
            os.chmod(work, 0o755)
            out_dir = os.path.join(work, "out")
            os.mkdir(out_dir)
            secret = os.path.join(work, "secret")
            with open(secret, "w") as f:
                f.write("s3cret\n")
            conf = os.path.join(work, "agent.conf")
            with open(conf, "w") as f:
                f.write("[agent]\nstate_dir = %s\n\n[server]\nurl = http://127.0.0.1:9\n"
                        "client_id = job@example.com\nclient_secret_file = %s\n\n"
                        "[connector files]\nbackend = file\ndirectory = %s\n\n"
                        "[resource-type Doc]\nconnector = files\n" % (work, secret, out_dir))
            for p in (out_dir, secret, conf, work):
                os.chown(p, pw.pw_uid, pw.pw_gid)
            os.chmod(secret, 0o600)
            proc = run(["runuser", "-u", USER, "--", "/usr/sbin/connector-agent",
                        "--check-config", "--config", conf], check=False, timeout=60)
            self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
            self.assertIn("is valid: 1 connector(s), 1 resource type(s)", proc.stdout)
        finally:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)

# SPDX-License-Identifier: Apache-2.0
"""The Debian package: built with CPack from a Release build, inspected with dpkg-deb,
checked with lintian (when installed) and groff, then installed for real with dpkg -i,
exercised, and purged; the purge must leave no file, no state and no user behind.

The installed package is then used as an operator would, from the README: the example
configuration copied unchanged but for the server's URL and client id, the client
secret where the unit's LoadCredential= reads it, --check-config, then the agent started
with the unit's ExecStart, user and credentials through connector-agent-admin (this
machine has no systemd; tests/deploy/systemd_container_test.sh runs the real unit), and
the operator commands (doctor, journal) through connector-agent-admin too.

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
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SimServer, make_order  # noqa: E402

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
                    "libssl3", "libsystemd0",
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


def source_files():
    """The repository's files (git's list when there is one), build trees left out."""
    proc = subprocess.run(["git", "-C", SOURCE, "ls-files", "-z"], capture_output=True)
    if proc.returncode == 0 and proc.stdout:
        names = [n for n in proc.stdout.decode().split("\0") if n]
    else:
        names = []
        for root, dirs, files in os.walk(SOURCE):
            dirs[:] = [d for d in dirs if d != ".git" and not
                       (os.path.samefile(root, SOURCE) and d.startswith("build"))]
            names += [os.path.relpath(os.path.join(root, f), SOURCE) for f in files]
    return [n for n in names if os.path.isfile(os.path.join(SOURCE, n))]


def deb822(text):
    """Paragraphs of a Debian control-style file: [{field: value}], continuation lines
    joined with newlines."""
    paragraphs = []
    for block in re.split(r"\n\s*\n", text.strip()):
        fields, last = {}, None
        for line in block.splitlines():
            if line[:1] in (" ", "\t"):
                assert last, "continuation line with no field: %r" % line
                fields[last] += "\n" + line[1:]
            else:
                name, sep, value = line.partition(":")
                assert sep and re.fullmatch(r"[A-Za-z][A-Za-z0-9-]*", name), \
                    "not a field: %r" % line
                last = name
                fields[name] = value.strip()
        paragraphs.append(fields)
    return paragraphs


class SourceTree(unittest.TestCase):
    """What the package is made of, checked without building it."""

    def test_licence_and_machine_readable_copyright(self):
        with open(os.path.join(SOURCE, "LICENSE")) as f:
            licence = f.read()
        self.assertIn("Apache License\n                           Version 2.0", licence)
        self.assertIn("END OF TERMS AND CONDITIONS", licence)
        with open(os.path.join(SOURCE, "packaging", "debian", "copyright")) as f:
            paragraphs = deb822(f.read())
        header = paragraphs[0]
        self.assertEqual(header["Format"],
                         "https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/")
        self.assertEqual(header["Upstream-Name"], PKG)
        files = [p for p in paragraphs[1:] if "Files" in p]
        self.assertTrue(files and files[0]["Files"] == "*", "no 'Files: *' paragraph")
        standalone = {p["License"].split("\n")[0]: p["License"] for p in paragraphs[1:]
                      if "Files" not in p and "License" in p}
        for p in files:
            self.assertTrue(p.get("Copyright"), "Files: %s has no Copyright" % p["Files"])
            name = p["License"].split("\n")[0]
            self.assertEqual(name, "Apache-2.0")
            # A short name without its text needs a stand-alone License paragraph.
            self.assertTrue("\n" in p["License"] or name in standalone,
                            "License %s has no text" % name)
        self.assertIn("/usr/share/common-licenses/Apache-2.0", standalone["Apache-2.0"])

    def test_nothing_refers_outside_the_repository(self):
        """Documentation and code name only files of the repository or of the installed
        system, never the development machine's shared folders."""
        offenders = []
        for name in source_files():
            if name.startswith("tests/integration/test_deploy_package.py"):
                continue
            try:
                with open(os.path.join(SOURCE, name), encoding="utf-8") as f:
                    text = f.read()
            except UnicodeDecodeError:
                continue
            for n, line in enumerate(text.splitlines(), 1):
                if re.search(r"\.\./shared\b|(^|[\s`'\"(=:])/wor[k]/", line):
                    offenders.append("%s:%d: %s" % (name, n, line.strip()))
        self.assertEqual(offenders, [], "references outside the repository:\n" +
                         "\n".join(offenders))

    def test_readme_links_stay_in_the_repository(self):
        with open(os.path.join(SOURCE, "README.md")) as f:
            readme = f.read()
        for target in re.findall(r"\]\(([^)]+)\)", readme) + \
                re.findall(r"`((?:\.\./|packaging/|tests/|systemd/|common/|agent/)[^` ]+)`",
                           readme):
            if re.match(r"[a-z]+://", target):
                continue
            path = os.path.normpath(os.path.join(SOURCE, target))
            self.assertTrue(path.startswith(SOURCE + os.sep), "README links outside: %s" % target)


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
        debs = {f.split("_")[0]: os.path.join(cls.build, f) for f in os.listdir(cls.build)
                if f.endswith(".deb")}
        assert sorted(debs) == [PKG, PKG + "-dev"], "cpack made %r" % debs
        cls.deb = debs[PKG]
        cls.dev_deb = debs[PKG + "-dev"]
        cls.contents = run(["dpkg-deb", "-c", cls.deb]).stdout
        cls.paths = {line.split()[5][1:] for line in cls.contents.splitlines()}
        cls.dev_contents = run(["dpkg-deb", "-c", cls.dev_deb]).stdout
        cls.dev_paths = {line.split()[5][1:] for line in cls.dev_contents.splitlines()}

    @classmethod
    def tearDownClass(cls):
        if installed():
            dpkg("--purge", PKG + "-dev", PKG)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def field(self, name):
        return run(["dpkg-deb", "-f", self.deb, name]).stdout.strip()

    def find(self, pattern):
        return sorted(p for p in self.paths if re.fullmatch(pattern, p))

    # ---- the package as built ----

    def test_contents(self):
        expected = [
            "/usr/sbin/connector-agent",
            "/usr/sbin/connector-agent-admin",
            "/var/lib/connector-agent/",
            "/usr/lib/systemd/system/connector-agent.service",
            "/usr/lib/sysusers.d/connector-agent.conf",
            "/usr/share/man/man8/connector-agent.8.gz",
            "/usr/share/man/man5/agent.conf.5.gz",
            "/usr/share/doc/connector-agent/copyright",
            "/usr/share/doc/connector-agent/changelog.Debian.gz",
            "/usr/share/doc/connector-agent/protocol.md",
            "/usr/share/doc/connector-agent/backends.md",
            "/usr/share/doc/connector-agent/active-directory.md",
            "/usr/share/doc/connector-agent/guardrails.md",
            "/usr/share/doc/connector-agent/high-availability.md",
            "/usr/share/doc/connector-agent/plugins.md",
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
            self.assertRegex(p, r"^/(usr|etc)/|^/var/(lib/connector-agent/)?$|^/var/lib/$",
                             "unexpected path %s" % p)
            self.assertNotIn("/usr/local", p)
            self.assertNotIn("testbackend", p)
        sbin = [l for l in self.contents.splitlines() if l.endswith("./usr/sbin/connector-agent")]
        self.assertTrue(sbin[0].startswith("-rwxr-xr-x root/root"), sbin[0])
        # The plug-in interface is in connector-agent-dev, not here.
        self.assertFalse([p for p in self.paths if p.startswith("/usr/include")])

    def test_dev_package(self):
        """connector-agent-dev: the plug-in header, the pkg-config file when the project
        has one, its own copyright; it depends on this very version of the agent."""
        for p in ("/usr/include/connector-agent/backend.h",
                  "/usr/share/doc/connector-agent-dev/copyright",
                  "/usr/share/doc/connector-agent-dev/changelog.Debian.gz",
                  "/usr/share/doc/connector-agent-dev/plugins.md"):
            self.assertIn(p, self.dev_paths, "%s missing from %s:\n%s"
                          % (p, PKG + "-dev", self.dev_contents))
        if any(n.endswith("connector-agent.pc.in") or n.endswith("connector-agent.pc")
               for n in source_files()):
            self.assertTrue([p for p in self.dev_paths
                             if re.fullmatch(r"/usr/(lib/[^/]+|share)/pkgconfig/connector-agent\.pc", p)],
                            "connector-agent.pc missing from the -dev package:\n" + self.dev_contents)
        for p in self.dev_paths:
            self.assertRegex(p, r"^/usr/(include|lib|share)(/|$)|^/usr/$", p)
        dev_field = lambda name: run(["dpkg-deb", "-f", self.dev_deb, name]).stdout.strip()
        self.assertEqual(dev_field("Package"), PKG + "-dev")
        self.assertEqual(dev_field("Section"), "libdevel")
        self.assertEqual(dev_field("Depends"), "%s (= %s)" % (PKG, self.field("Version")))

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
            # Nothing starts the service: it has no configuration yet. (What they do
            # with systemd is run with stand-ins in test_maintainer_scripts_with_systemd.)
            # (try-restart restarts only a running agent, on an upgrade.)
            self.assertNotRegex(body, r"(systemctl|deb-systemd-invoke)[^\n]*(?<![-\w])(start|"
                                r"restart|enable)\b", "%s must not start the service" % script)
            self.assertNotIn("userdel", body, "the system user must stay (Debian policy)")
        with open(os.path.join(ctl, "postrm")) as f:
            body = f.read()
        with open(self.example, "rb") as f:
            self.assertIn(hashlib.sha256(f.read()).hexdigest(), body)

    def test_maintainer_scripts_with_systemd(self):
        """The scripts as dpkg runs them on a systemd machine, with stand-ins for
        systemctl, deb-systemd-helper and deb-systemd-invoke that log their arguments,
        in a private mount namespace where /run/systemd/system exists. A fresh install
        starts and enables nothing; an upgrade restarts a running agent (try-restart);
        a removal stops it; an upgrade's prerm does not."""
        if not shutil.which("unshare"):
            self.skipTest("unshare (util-linux) is not installed")
        ctl = os.path.join(self.tmp, "control-systemd")
        run(["dpkg-deb", "-e", self.deb, ctl])
        stubs = os.path.join(self.tmp, "stubs")
        os.makedirs(stubs, exist_ok=True)
        log = os.path.join(self.tmp, "systemd-calls.log")
        for tool in ("systemctl", "deb-systemd-helper", "deb-systemd-invoke",
                     "systemd-sysusers", "dpkg-statoverride", "chown", "chmod"):
            path = os.path.join(stubs, tool)
            with open(path, "w") as f:
                f.write("#!/bin/sh\necho \"%s $*\" >> %s\n%s\n"
                        % (tool, log, "exit 1" if tool == "deb-systemd-helper" else "exit 0"))
            os.chmod(path, 0o755)
        probe = run(["unshare", "--mount", "true"], check=False)
        if probe.returncode != 0:
            self.skipTest("no mount namespace here: %s" % probe.stderr.strip())

        def calls(script, *args):
            if os.path.exists(log):
                os.unlink(log)
            cmd = ("mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/system && "
                   "PATH=%s:$PATH sh %s %s" % (stubs, os.path.join(ctl, script), " ".join(args)))
            proc = run(["unshare", "--mount", "--propagation", "private", "sh", "-c", cmd],
                       check=False, env=dict(os.environ, DPKG_ROOT=""))
            self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
            with open(log) if os.path.exists(log) else open(os.devnull) as f:
                return [l.strip() for l in f if l.startswith(("systemctl", "deb-systemd-"))]

        fresh = calls("postinst", "configure")
        self.assertIn("systemctl --system daemon-reload", fresh)
        self.assertFalse([c for c in fresh if re.search(r"\b(start|restart|try-restart)\b", c)
                          or c.startswith("deb-systemd-helper enable")], fresh)
        upgrade = calls("postinst", "configure", "0.0.9-1")
        self.assertIn("deb-systemd-invoke try-restart connector-agent.service", upgrade)
        self.assertFalse([c for c in upgrade if re.search(r"invoke (start|restart)\b", c)], upgrade)
        self.assertEqual(calls("prerm", "upgrade", "0.2.0-1"), [])
        self.assertIn("deb-systemd-invoke stop connector-agent.service", calls("prerm", "remove"))

    def test_lintian(self):
        if not shutil.which("lintian"):
            self.skipTest("lintian is not installed (Debian package lintian)")
        proc = run(["lintian", "--tag-display-limit", "0", self.deb, self.dev_deb], check=False)
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
        with open(os.path.join(SOURCE, "agent", "core", "main.c")) as f:
            main_c = f.read()
        options = re.findall(r'\{"([a-z-]+)", (?:no|required)_argument', main_c)
        self.assertGreater(len(options), 5)
        page8 = man_text(os.path.join(SOURCE, "packaging", "man", "connector-agent.8"))
        for opt in options:
            self.assertTrue("--" + opt in page8, "connector-agent.8 lacks --%s" % opt)
        shorts = re.search(r'getopt_long\(argc, argv, "\+?([^"]*)"', main_c).group(1)
        for ch in shorts.replace(":", ""):
            self.assertTrue('.BR -%s ", " --' % ch in page8, "connector-agent.8 lacks -%s" % ch)
        with open(os.path.join(SOURCE, "agent", "pipeline", "pipeline.h")) as f:
            codes = re.findall(r"EXIT_[A-Z_]+\s*=\s*(\d+)", f.read())
        self.assertEqual(len(codes), 7)
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
                    # At the key's own entry (a line that starts with it), not at the
                    # first use of a word such as "journal" in another's text.
                    at = re.search(r"(?m)^(\.BR? +)?\s*%s(\s|$)" % key, page5)
                    block = (page5[at.end():] if at else page5.split(key, 1)[1])[:900]
                    self.assertTrue(value in block, "agent.conf.5: %s's default %s not "
                                    "documented" % (key, value))

    # ---- installed for real, then purged ----

    def test_install_and_purge(self):
        self.assertEqual(os.geteuid(), 0, "installs the package: run as root (CI does)")
        for name in (PKG + "-dev", PKG):
            if run(["dpkg-query", "-W", name], check=False).returncode == 0:
                self.assertEqual(dpkg("--purge", name).returncode, 0)
        # The system user outlives a purge (Debian policy): a second cycle reuses it.
        self.cycle(keep_edited_config=False, operate=True)
        uid = pwd.getpwnam(USER).pw_uid
        self.cycle(keep_edited_config=True, operate=False)
        self.assertEqual(pwd.getpwnam(USER).pw_uid, uid, "the user was made again")

    def cycle(self, keep_edited_config, operate):
        proc = dpkg("-i", self.deb, self.dev_deb)
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
            # The package made the journal's directory, the service user's alone.
            st = os.stat(STATE_DIR)
            self.assertEqual((oct(st.st_mode & 0o7777), st.st_uid, st.st_gid),
                             (oct(0o700), pw.pw_uid, pw.pw_gid))
            if operate:
                self.operate_as_the_readme_says(pw)
            # A plug-in builds against the -dev package with pkg-config alone.
            if os.path.exists("/usr/share/pkgconfig/connector-agent.pc") or \
                    run(["pkg-config", "--exists", "connector-agent"], check=False).returncode == 0:
                cflags = run(["pkg-config", "--cflags", "connector-agent"]).stdout.split()
                hello = os.path.join(SOURCE, "tests", "plugins-out-of-tree", "hello.c")
                so = os.path.join(self.tmp, "hello.so")
                run(["cc", "-shared", "-fPIC", "-fvisibility=hidden"] + cflags +
                    ["-o", so, hello])

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
            dpkg("--purge", PKG + "-dev", PKG)
            raise

        proc = dpkg("--purge", PKG + "-dev", PKG)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        try:
            self.assertFalse(installed())
            for path in files:
                self.assertFalse(os.path.exists(path), "%s left after purge" % path)
            self.assertFalse(os.path.exists(STATE_DIR), "state directory left after purge")
            self.assertTrue(user_exists(USER), "the system user was removed on purge")
            self.assertTrue(group_exists(USER), "the system group was removed on purge")
            self.assertFalse(os.path.exists(os.path.join(CONF_DIR, "agent.conf.example")))
            # The operator's own files stay: an edited agent.conf and the secret.
            self.assertEqual(os.path.exists(os.path.join(CONF_DIR, "agent.conf")),
                             keep_edited_config)
            self.assertTrue(os.path.exists(os.path.join(CONF_DIR, "client_secret")))
        finally:
            shutil.rmtree(CONF_DIR, ignore_errors=True)

    def operate_as_the_readme_says(self, pw):
        """README's steps with the example configuration, unchanged but for the two
        values every site has to fill in; then the unit's way of starting the agent and
        the operator commands, all through connector-agent-admin."""
        work = tempfile.mkdtemp(prefix="ca-deb-server-")
        server = SimServer(work, connectors=("db",))
        server.start()
        agent = None
        try:
            conf = os.path.join(CONF_DIR, "agent.conf")
            with open(os.path.join(CONF_DIR, "agent.conf.example")) as f:
                example = f.read()
            edited = re.sub(r"(?m)^url = .*$", "url = " + server.url, example, count=1)
            edited = re.sub(r"(?m)^client_id = .*$", "client_id = " + server.client_id, edited,
                            count=1)
            self.assertEqual(len(edited.splitlines()), len(example.splitlines()))
            self.assertEqual(sum(a != b for a, b in zip(edited.splitlines(),
                                                          example.splitlines())), 2)
            with open(conf, "w") as f:
                f.write(edited)
            secret_path = os.path.join(CONF_DIR, "client_secret")
            run(["install", "-m", "0600", "/dev/null", secret_path])
            with open(server.secret_file) as f, open(secret_path, "w") as out:
                out.write(f.read().strip() + "\n")
            # The README's check, as root, with the credential read where it lies.
            proc = run(["/usr/sbin/connector-agent", "--check-config"], check=False, timeout=60,
                       env=dict(os.environ, CREDENTIALS_DIRECTORY=CONF_DIR))
            self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
            # The example's target: an SQLite database with its table, in the state
            # directory (the one place the unit lets the agent write).
            target = os.path.join(STATE_DIR, "target.sqlite")
            db = sqlite3.connect(target)
            db.execute("CREATE TABLE users (login TEXT PRIMARY KEY)")
            db.commit()
            db.close()
            os.chown(target, pw.pw_uid, pw.pw_gid)
            orders = []
            for i in range(1, 21):
                o = make_order(i, "db", resource_type="SQL_User")
                o["Changes"] = {"login": "user%05d" % i}
                orders.append(o)
            server.add_orders("db", orders)

            # The unit's ExecStart, run as its user with its credentials.
            with open("/usr/lib/systemd/system/connector-agent.service") as f:
                unit = f.read()
            exec_start = re.search(r"(?m)^ExecStart=(\S+) (.*)$", unit)
            self.assertEqual(exec_start.group(1), "/usr/sbin/connector-agent")
            log_path = os.path.join(work, "agent.log")
            with open(log_path, "w") as log:
                agent = subprocess.Popen(["/usr/sbin/connector-agent-admin"] +
                                         exec_start.group(2).split(), stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and agent.poll() is None and \
                    server.state()["received"] < len(orders):
                time.sleep(0.2)
            with open(log_path) as f:
                self.assertEqual(server.state()["received"], len(orders), f.read()[-4000:])
            self.assertTrue(all(r["ProvisioningState"] == "Executed" for r in server.results()),
                            server.results()[:3])
            db = sqlite3.connect(target)
            self.assertEqual(db.execute("SELECT count(*) FROM users").fetchone()[0], len(orders))
            db.close()
            # connector-agent-admin waits for the agent, its child, running as the user.
            children = run(["pgrep", "-P", str(agent.pid)]).stdout.split()
            with open("/proc/%s/status" % children[0]) as f:
                uids = [l.split()[1:] for l in f if l.startswith("Uid:")][0]
            self.assertEqual(uids, [str(pw.pw_uid)] * 4)

            # The operator commands, while the service runs and after.
            for args, expect in ((["journal", "list", "all"], "%d all entries" % len(orders)),
                                 (["doctor"], "db")):
                proc = run(["/usr/sbin/connector-agent-admin"] + args, check=False, timeout=120)
                words = proc.stdout + proc.stderr
                self.assertEqual(proc.returncode, 0, words)
                self.assertIn(expect, words)
                self.assertNotIn("CREDENTIALS_DIRECTORY", words)
            os.killpg(agent.pid, signal.SIGTERM)
            self.assertEqual(agent.wait(60), 0)
            agent = None
            proc = run(["/usr/sbin/connector-agent-admin", "journal", "list", "unreported"])
            self.assertIn("0 unreported entries", proc.stdout)
            # Everything in the state directory is the service user's, and the private
            # copies of the credentials are gone.
            for name in os.listdir(STATE_DIR):
                self.assertEqual(os.stat(os.path.join(STATE_DIR, name)).st_uid, pw.pw_uid, name)
            for base in ("/run", "/dev/shm"):
                self.assertEqual([n for n in os.listdir(base)
                                  if n.startswith("connector-agent-admin.")], [], base)
            # Not as another user: it says why.
            proc = run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                        "/usr/sbin/connector-agent-admin", "doctor"], check=False)
            self.assertNotEqual(proc.returncode, 0)
            self.assertIn("run it as root", proc.stderr)
        finally:
            if agent is not None and agent.poll() is None:
                os.killpg(agent.pid, signal.SIGKILL)
                agent.wait()
            server.stop()
            shutil.rmtree(work, ignore_errors=True)

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

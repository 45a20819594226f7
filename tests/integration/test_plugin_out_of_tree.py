#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A back-end written outside the project builds against the installed header alone, as
packaging/doc/plugins.md says, and loads through the agent's loader.

Installs the "dev" component (the header and connector-agent.pc) into a temporary
prefix, checks that plugins.md shows tests/plugins-out-of-tree/hello.c verbatim, copies
hello.c and nothing else into a temporary directory and compiles it there with
`$(pkg-config --cflags connector-agent)`, then runs the ca-plugin-check tool, which
loads it through backend_load and prints its name and interface version. Also checks
that the plug-in exports exactly one dynamic symbol, and that a plug-in built for
another major interface version is refused by the same tool."""
import os
import shutil
import subprocess
import sys
import tempfile

SRC = os.environ["CA_TEST_SOURCE_DIR"]
BUILD = os.environ["CA_TEST_BUILD_DIR"]
CHECK = os.path.join(BUILD, "tests", "ca-plugin-check")


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kw)


def main():
    include = os.path.join(SRC, "common", "include")
    listed = sorted(os.listdir(include))
    if listed != ["connector-agent"] or os.listdir(os.path.join(include, "connector-agent")) != ["backend.h"]:
        fail("common/include must hold only connector-agent/backend.h, found %r" % listed)
    if not os.access(CHECK, os.X_OK):
        fail("no ca-plugin-check at %s" % CHECK)

    hello_c = os.path.join(SRC, "tests", "plugins-out-of-tree", "hello.c")
    with open(hello_c) as f:
        example = f.read()
    with open(os.path.join(SRC, "packaging", "doc", "plugins.md")) as f:
        page = f.read()
    if "```c\n" + example + "```\n" not in page:
        fail("packaging/doc/plugins.md must show tests/plugins-out-of-tree/hello.c verbatim")

    with tempfile.TemporaryDirectory(prefix="ca-oot-") as tmp:
        prefix = os.path.join(tmp, "prefix")
        r = run(["cmake", "--install", BUILD, "--component", "dev", "--prefix", prefix])
        if r.returncode != 0:
            fail("installing the dev component failed:\n" + r.stdout + r.stderr)
        pcdirs = [d for d, _, files in os.walk(prefix) if "connector-agent.pc" in files]
        if len(pcdirs) != 1:
            fail("the dev component installs no (or several) connector-agent.pc: %r" % pcdirs)
        env = dict(os.environ, PKG_CONFIG_PATH=pcdirs[0])
        r = run(["pkg-config", "--define-prefix", "--cflags", "connector-agent"], env=env)
        if r.returncode != 0:
            fail("pkg-config --cflags connector-agent failed: " + r.stderr)
        cflags = r.stdout.split()
        if cflags != ["-I" + os.path.join(prefix, "include")]:
            fail("pkg-config --cflags connector-agent says %r" % cflags)

        shutil.copy(hello_c, tmp)
        so = os.path.join(tmp, "hello.so")
        cc = os.environ.get("CC", "cc")
        r = run([cc, "-std=c17", "-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter",
                 "-shared", "-fPIC", "-fvisibility=hidden"] + cflags +
                [os.path.join(tmp, "hello.c"), "-o", so])
        if r.returncode != 0:
            fail("building hello.c with pkg-config --cflags connector-agent failed:\n" + r.stderr)

        r = run(["nm", "-D", "--defined-only", so])
        syms = [line.split()[-1] for line in r.stdout.splitlines() if line.strip()]
        if syms != ["connector_agent_backend_entry"]:
            fail("hello.so should export only connector_agent_backend_entry, exports %r" % syms)

        env = dict(os.environ)
        r = run([CHECK, so], env=env)
        if r.returncode != 0:
            fail("ca-plugin-check refused hello.so (%d): %s%s" % (r.returncode, r.stdout, r.stderr))
        want = "name=hello abi=1.1 description=out-of-tree example"
        if r.stdout.strip() != want:
            fail("ca-plugin-check said %r, expected %r" % (r.stdout.strip(), want))

        # The same source claiming interface 2.0 must be refused, with the path named.
        with open(os.path.join(tmp, "hello.c")) as f:
            text = f.read()
        marker = ".abi_version = CA_BACKEND_ABI_VERSION,"
        if marker not in text:
            fail("hello.c no longer has %r" % marker)
        bad = os.path.join(tmp, "v2")
        os.mkdir(bad)
        with open(os.path.join(bad, "hello.c"), "w") as f:
            f.write(text.replace(marker, ".abi_version = (2u << 16),"))
        so2 = os.path.join(bad, "hello.so")
        r = run([cc, "-shared", "-fPIC", "-fvisibility=hidden", "-I" + include,
                 os.path.join(bad, "hello.c"), "-o", so2])
        if r.returncode != 0:
            fail("building the 2.0 variant failed:\n" + r.stderr)
        r = run([CHECK, so2], env=env)
        if r.returncode != 1 or "refused:" not in r.stderr or so2 not in r.stderr \
                or "2.0" not in r.stderr:
            fail("a plug-in for interface 2.0 was not refused clearly: %r" % (r.stdout + r.stderr))

        # A file name that differs from the plug-in's own name is refused too.
        renamed = os.path.join(bad, "other.so")
        shutil.copy(so, renamed)
        r = run([CHECK, renamed], env=env)
        if r.returncode != 1 or "calls itself 'hello'" not in r.stderr:
            fail("a plug-in whose name does not match its file was not refused clearly: %r"
                 % (r.stdout + r.stderr))
    print("ok: out-of-tree plug-in built against the public header alone and loaded")


if __name__ == "__main__":
    main()

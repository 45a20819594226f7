#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Each project plug-in exports exactly one dynamic symbol, the entry point, and carries
none of the agent's own code: plug-ins reach the agent only through the host table."""
import os
import subprocess
import sys

BACKENDS = os.environ["CA_BACKEND_BUILD_DIR"]
ENTRY = "connector_agent_backend_entry"
# Functions of ca_common / ca_agent that would show up if a plug-in linked them.
AGENT_SYMBOLS = ["log_ctx", "config_setting", "order_from_json", "secret_read_file",
                 "backend_load", "backend_host", "ca_error_set", "result_new"]


def symbols(args, path):
    r = subprocess.run(["nm"] + args + [path], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        print("FAIL: nm %s: %s" % (path, r.stderr))
        sys.exit(1)
    return [line.split()[-1] for line in r.stdout.splitlines()
            if line.strip() and len(line.split()) >= 2]


def main():
    failed = False
    for name in ("sql", "exec", "file"):
        so = os.path.join(BACKENDS, name + ".so")
        if not os.path.exists(so):
            print("FAIL: %s was not built" % so)
            failed = True
            continue
        exported = symbols(["-D", "--defined-only"], so)
        if exported != [ENTRY]:
            print("FAIL: %s exports %r, expected only %s" % (so, exported, ENTRY))
            failed = True
        defined = set(symbols(["--defined-only"], so))
        leaked = [s for s in AGENT_SYMBOLS if s in defined]
        if leaked:
            print("FAIL: %s contains agent code: %r" % (so, leaked))
            failed = True
    if failed:
        sys.exit(1)
    print("ok: sql, exec, file export only %s and link no agent code" % ENTRY)


if __name__ == "__main__":
    main()

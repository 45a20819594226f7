#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Runs the Debian package's service under a real systemd, in a podman container with
# systemd as PID 1 (this machine has no systemd of its own), against the simulated
# server. Not part of the default test run: it takes a few minutes.
#
# Usage (as root, Debian 12): tests/deploy/systemd_container_test.sh
#   CA_CONTAINER_BASE / CA_CONTAINER_CACHE: see tests/deploy/podman_common.sh
#   CA_HARNESS_DIR: where harness.py (SimServer) is, default tests/integration
#   CA_SIMSERVER_BIN: the simulated server, when not in build/ (see harness.py)
#   CA_SIM_RESOURCE_TYPE: the ResourceType.Identifier of the generated orders (default
#     User, ca-simserver's)
# Needs: podman runc debootstrap, cmake and the build dependencies, dpkg-dev, python3.
#
# Checks, with the unit's whole sandbox in force: the package installs (creating the
# user, starting nothing); a configuration error (exit 3) is not restarted;
# `systemctl start` returns once the agent is READY; every order is applied (file
# back-end, in the state directory) and every result delivered; the agent runs as
# connector-agent with no capabilities, no_new_privs and a seccomp filter; it pings
# the watchdog; `systemctl reload` works; `systemctl stop` ends it with status 0;
# `dpkg --purge` stops an enabled service and removes its state and its enablement
# (the system user stays); the server saw no protocol violation.
set -euo pipefail

src=$(cd "$(dirname "$0")/../.." && pwd)
harness_dir=${CA_HARNESS_DIR:-$src/tests/integration}
image=localhost/connector-agent-systemd:test
name=ca-systemd-test-$$
orders=20
default_resource_type=User # what ca-simserver --generate makes

fail() {
  echo "FAIL: $*" >&2
  exit 1
}
work=$(mktemp -d)
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
  podman rm -f "$name" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
. "$src/tests/deploy/podman_common.sh"
ca_podman_setup
base=$(ca_base_image)
[ -n "$base" ] || fail "no base image"

echo "== the Debian package"
cmake -S "$src" -B "$work/build" -DCA_TESTS=OFF -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_INSTALL_PREFIX=/usr >"$work/cmake.log" 2>&1 || { cat "$work/cmake.log" >&2; fail cmake; }
cmake --build "$work/build" -j "$(nproc)" >>"$work/cmake.log" 2>&1 || { tail -30 "$work/cmake.log" >&2; fail build; }
(cd "$work/build" && cpack -G DEB >>"$work/cmake.log" 2>&1) || { tail -30 "$work/cmake.log" >&2; fail cpack; }
mkdir "$work/ctx"
cp "$work/build"/connector-agent_*.deb "$work/ctx/connector-agent.deb"
cat >"$work/ctx/Containerfile" <<'CF'
ARG BASE
FROM ${BASE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends systemd systemd-sysv dbus \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
# Not /tmp: podman mounts a tmpfs there for systemd.
COPY connector-agent.deb /opt/
CMD ["/sbin/init"]
CF
echo "== image with systemd (base $base)"
podman build -t "$image" --build-arg BASE="$base" "$work/ctx" >"$work/image.log" 2>&1 ||
  { tail -30 "$work/image.log" >&2; fail "podman build"; }

echo "== simulated server"
cat >"$work/server.py" <<'PY'
import json, os, signal, sys, time
sys.path.insert(0, sys.argv[1])
from harness import SimServer
work, orders, default_rt = sys.argv[2], int(sys.argv[3]), sys.argv[4]
srv = SimServer(os.path.join(work, "server"), connectors=("c1",), generate=orders,
                generate_connector="c1")
srv.start()
rt = os.environ.get("CA_SIM_RESOURCE_TYPE", default_rt)
with open(srv.secret_file) as f:
    secret = f.read().strip()
with open(os.path.join(work, "server.json.tmp"), "w") as f:
    json.dump({"url": srv.url, "client_id": srv.client_id, "secret": secret,
               "resource_type": rt}, f)
os.rename(os.path.join(work, "server.json.tmp"), os.path.join(work, "server.json"))
stopping = []
signal.signal(signal.SIGTERM, lambda *a: stopping.append(1))
while not stopping:
    time.sleep(0.2)
# What the server saw, for the script's last checks; stop() raises when it failed.
state = srv.state()
with open(os.path.join(work, "final.json"), "w") as f:
    json.dump({"received": state["received"], "violations": state["violations"]}, f)
srv.stop()
PY
python3 "$work/server.py" "$harness_dir" "$work" "$orders" "$default_resource_type" \
  >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do [ -f "$work/server.json" ] && break; sleep 0.1; done
[ -f "$work/server.json" ] || { cat "$work/server.log" >&2; fail "the simulated server did not start"; }
field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$work/server.json" "$1"; }
url=$(field url)
echo "$url"

echo "== container with systemd"
podman run -d --name "$name" --network=host --systemd=always "$image" >/dev/null
cx() { podman exec "$name" "$@"; }
cxi() { podman exec -i "$name" "$@"; }
for _ in $(seq 50); do
  state=$(cx systemctl is-system-running 2>/dev/null || true)
  case $state in running | degraded) break ;; esac
  sleep 0.2
done
echo "systemd: $state"

echo "== install"
cx sh -c 'apt-get update -qq && apt-get install -y /opt/connector-agent.deb' >"$work/install.log" 2>&1 ||
  { tail -20 "$work/install.log" >&2; fail "apt-get install of the package"; }
cx getent passwd connector-agent >/dev/null || fail "no user connector-agent"
[ "$(cx systemctl is-enabled connector-agent 2>/dev/null || true)" = disabled ] || fail "the package enabled the service"
[ "$(cx systemctl is-active connector-agent 2>/dev/null || true)" = inactive ] || fail "the package started the service"
echo "user created; service disabled and inactive"

secret=$(field secret)
cx sh -c "umask 077 && printf '%s\n' '$secret' > /etc/connector-agent/client_secret"

echo "== a configuration error is not restarted"
cx sh -c 'printf "[server]\nurl = not a url\n" > /etc/connector-agent/agent.conf'
cx systemctl start connector-agent 2>/dev/null && fail "started with an invalid configuration"
sleep 7 # past RestartSec
[ "$(cx systemctl show connector-agent -p ExecMainStatus --value)" = 3 ] || fail "exit status is not 3"
[ "$(cx systemctl show connector-agent -p NRestarts --value)" = 0 ] || fail "restarted after exit 3"
cx systemctl reset-failed connector-agent
echo "exit 3, no restart"

echo "== configure and start"
cxi sh -c "cat > /etc/connector-agent/agent.conf" <<CONF
[server]
url = $url
client_id = $(field client_id)
client_secret_credential = client_secret

[connector c1]
backend = file
directory = /var/lib/connector-agent/out
poll_interval = 1s

[resource-type $(field resource_type)]
connector = c1
CONF
cx install -d -o connector-agent -g connector-agent -m 0700 /var/lib/connector-agent /var/lib/connector-agent/out
start=$(date +%s)
cx systemctl start connector-agent || { cx journalctl -u connector-agent --no-pager | tail -20 >&2; fail "systemctl start"; }
[ "$(cx systemctl is-active connector-agent)" = active ] || fail "not active after start"
echo "READY after $(($(date +%s) - start)) s"

for _ in $(seq 300); do
  n=$(cx sh -c 'ls /var/lib/connector-agent/out | wc -l')
  [ "$n" -ge "$orders" ] && break
  sleep 0.2
done
[ "$n" -eq "$orders" ] || { cx journalctl -u connector-agent --no-pager | tail -20 >&2; fail "$n of $orders orders applied"; }
echo "$orders orders applied"

pid=$(cx systemctl show connector-agent -p MainPID --value)
status=$(cx cat "/proc/$pid/status")
grep -q "^CapEff:[[:space:]]*0000000000000000$" <<<"$status" || fail "the agent has capabilities"
grep -q "^NoNewPrivs:[[:space:]]*1$" <<<"$status" || fail "no_new_privs is not set"
grep -q "^Seccomp:[[:space:]]*2$" <<<"$status" || fail "no seccomp filter"
[ "$(cx stat -c %U "/proc/$pid")" = connector-agent ] || fail "not running as connector-agent"
echo "runs as connector-agent: no capabilities, no_new_privs, seccomp filter"

# The watchdog: systemd stamps every WATCHDOG=1; the agent pings at least every half
# of WatchdogSec (60 s), so a new stamp must come within 35 s.
wd0=$(cx systemctl show connector-agent -p WatchdogTimestampMonotonic --value)
for _ in $(seq 175); do
  wd1=$(cx systemctl show connector-agent -p WatchdogTimestampMonotonic --value)
  [ "$wd1" != "$wd0" ] && break
  sleep 0.2
done
[ "$wd1" != "$wd0" ] || fail "no watchdog ping within 35 s"
echo "watchdog pinged"

cx systemctl reload connector-agent || fail "systemctl reload"
[ "$(cx systemctl is-active connector-agent)" = active ] || fail "not active after reload"
echo "reloaded"

sleep 3 # the last results
cx systemctl enable connector-agent >/dev/null 2>&1
start=$(date +%s)
cx systemctl stop connector-agent
took=$(($(date +%s) - start))
[ "$(cx systemctl show connector-agent -p Result --value)" = success ] || fail "stop result: $(cx systemctl show connector-agent -p Result --value)"
[ "$(cx systemctl show connector-agent -p ExecMainStatus --value)" = 0 ] || fail "exit status after stop"
# As an operator would (README): through connector-agent-admin, with the unit's user
# and credentials.
unreported=$(cx connector-agent-admin journal list unreported)
grep -q "^0 unreported entries" <<<"$unreported" || fail "results not delivered: $unreported"
echo "stopped in ${took}s, status 0, every result delivered"

echo "== purge an enabled, running service"
cx systemctl start connector-agent
cx dpkg --purge connector-agent >"$work/purge.log" 2>&1 || { cat "$work/purge.log" >&2; fail "dpkg --purge"; }
[ "$(cx systemctl is-active connector-agent 2>/dev/null || true)" != active ] || fail "still running after purge"
cx test ! -e /var/lib/connector-agent || fail "state directory left"
cx test ! -e /etc/systemd/system/multi-user.target.wants/connector-agent.service || fail "enablement left"
cx getent passwd connector-agent >/dev/null || fail "the system user was removed (Debian keeps it)"
cx test -f /etc/connector-agent/client_secret || fail "the operator's secret was removed"
echo "purged: stopped, state and enablement gone; the user and the operator's files kept"
cx journalctl -u connector-agent --no-pager | grep -v "Executed:" | tail -n 8

echo "== the server's view"
kill "$server_pid"
wait "$server_pid" || { cat "$work/server.log" >&2; fail "the simulated server failed"; }
server_pid=
received=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["received"])' "$work/final.json")
violations=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["violations"])' "$work/final.json")
[ "$received" -eq "$orders" ] || fail "the server received $received results, not $orders"
[ "$violations" = "[]" ] || fail "protocol violations: $violations"
echo "$received results received, no protocol violation"
echo "PASS"

#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The agent's main job in one command: builds the agent and the simulated server, starts
# the server with a batch of provisioning orders, runs the agent once against it with
# the embedded SQLite back-end, and shows what the orders did to the target database and
# what the server received. Debian 12, as root (installs its packages once).
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/deps.sh
ca_install_deps test

ORDERS=${DEMO_ORDERS:-40}
build=build/demo
echo "== building (into $build)"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "$(nproc)" --target connector-agent ca-simserver sql >/dev/null

work=$(mktemp -d /tmp/connector-agent-demo.XXXXXX)
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

echo "== the target: an SQLite database with an accounts table and a memberships table"
sqlite3 "$work/accounts.db" <<'SQL'
CREATE TABLE accounts (uid TEXT PRIMARY KEY, given_name TEXT, surname TEXT, cn TEXT,
                       mail TEXT, title TEXT);
CREATE TABLE memberships (uid TEXT NOT NULL, group_dn TEXT NOT NULL,
                          PRIMARY KEY (uid, group_dn));
SQL

echo "== the simulated identity server, with $ORDERS orders for connector 'directory'"
umask 077
printf 'demo-client-secret\n' >"$work/client-secret"
"$build/tests/simserver/ca-simserver" --listen 127.0.0.1:0 --port-file "$work/port" \
  --client-id demo-agent@example.com --client-secret-file "$work/client-secret" \
  --connectors directory --generate "$ORDERS" --generate-connector directory \
  --resource-type Directory_User --quiet &
server_pid=$!
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.05; done
port=$(cat "$work/port")
mkdir -p "$work/state"

cat >"$work/agent.conf" <<EOF2
[agent]
identifier = demo-agent
state_dir = $work/state
backend_dir = $PWD/$build/backends
heartbeat_interval = 30s
# The demo runs as root; the service runs as its own user and never needs this.
allow_root = yes

[server]
url = http://127.0.0.1:$port
client_id = demo-agent@example.com
client_secret_file = $work/client-secret

[connector directory]
backend = sql
driver = sqlite
database = $work/accounts.db

[resource-type Directory_User]
connector = directory
table = accounts
key_column = uid
key_change = uid
columns = givenName:given_name,sn:surname,cn:cn,mail:mail,title:title
membership_table = memberships
membership_key_column = uid
membership_value_column = group_dn
membership_attribute = memberOf
EOF2

echo "== connector-agent --once"
rc=0
"$build/agent/connector-agent" --config "$work/agent.conf" --once || rc=$?

echo
echo "== accounts in the target database"
sqlite3 -header -column "$work/accounts.db" \
  "SELECT uid, given_name, surname, mail, coalesce(title, '') AS title FROM accounts ORDER BY uid"
echo
echo "== group memberships"
sqlite3 -header -column "$work/accounts.db" \
  "SELECT group_dn AS 'group', count(*) AS members, group_concat(uid, ' ') AS uids
   FROM memberships GROUP BY group_dn ORDER BY group_dn"
echo
echo "== what the server received"
python3 - "$port" <<'PY'
import json, sys, urllib.request, collections
base = "http://127.0.0.1:%s/_control/" % sys.argv[1]
state = json.load(urllib.request.urlopen(base + "state"))
beats = json.load(urllib.request.urlopen(base + "heartbeats"))["heartbeats"]
orders = state["orders"]
states = collections.Counter(o["result"]["ProvisioningState"] for o in orders if o.get("result"))
print("orders: %d, answered: %d (%s), duplicates: %d, protocol violations: %d" % (
    len(orders), sum(1 for o in orders if o["results"]), ", ".join(
        "%d %s" % (n, s) for s, n in sorted(states.items())) or "none",
    state["duplicates"], len(state["violations"])))
print("heartbeats: %s" % " -> ".join(b["Status"] for b in beats))
PY
echo
echo "agent exit status: $rc (0: every order executed and reported)"
exit "$rc"

#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# A throwaway PostgreSQL 15 cluster on 127.0.0.1, for tests (never a mock).
#
#   pg.sh start PORT     new cluster in a fresh temp dir, listening on 127.0.0.1:PORT;
#                        the superuser 'ca_test' gets the password read from standard
#                        input (scram-sha-256 only, no trust), TLS on with a test CA
#                        in DATADIR/../tls/ca.crt. Prints the data dir.
#   pg.sh pause DATADIR  stops the server at once (as a crash would), keeps the data
#   pg.sh resume DATADIR starts it again on the same port
#   pg.sh stop DATADIR   stops the server and removes the whole temp dir
#
# Prints nothing else on success; on failure says why on standard error (with the end of
# the server log) and exits non-zero. Every wait is bounded (CA_PG_WAIT seconds, 30).
# initdb refuses to run as root: as root the script re-executes itself as the
# 'postgres' user that the postgresql-common package creates.
#
# Needs Debian's postgresql-15 (installed by tests/run.sh through tests/deps.sh) and
# openssl. Installing it without a default cluster, as root:
#   apt-get install -y --no-install-recommends postgresql-common
#   sed -i 's/^#\?\s*create_main_cluster\s*=.*/create_main_cluster = false/' \
#     /etc/postgresql-common/createcluster.conf
#   apt-get install -y --no-install-recommends postgresql-15
set -euo pipefail
BIN=/usr/lib/postgresql/15/bin
WAIT=${CA_PG_WAIT:-30}
PREFIX=/tmp/ca-pg.

die() {
  echo "pg.sh: $*" >&2
  exit 1
}

if [ ! -x "$BIN/initdb" ] || [ ! -x "$BIN/pg_ctl" ]; then
  die "PostgreSQL 15 is not installed ($BIN/initdb missing): run tests/run.sh, which installs it"
fi
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || die "no 'postgres' user to run the server as (install postgresql-15)"
  # The script's text, not its path: the source tree may be closed to 'postgres'.
  text=$(cat -- "${BASH_SOURCE[0]}") || die "cannot read ${BASH_SOURCE[0]}"
  [ -n "$text" ] || die "${BASH_SOURCE[0]} is empty"
  cd /
  exec runuser -u postgres -- /bin/bash -c "$text" pg.sh "$@"
fi
# Only absolute paths below, and the caller's directory may be closed to 'postgres'.
cd /

# Only our own temp dirs are ever stopped or removed.
check_dir() {
  local data=$1
  case "$data" in
  *..*) die "$data: not a data dir made by pg.sh start" ;;
  "$PREFIX"*/data) ;;
  *) die "$data: not a data dir made by pg.sh start" ;;
  esac
  [ -f "$data/PG_VERSION" ] || die "$data: no cluster there"
}

server_start() {
  local data=$1
  if ! "$BIN/pg_ctl" -D "$data" -l "$data/../server.log" -w -t "$WAIT" start >/dev/null 2>&1; then
    echo "pg.sh: the server did not start within ${WAIT}s; end of its log:" >&2
    tail -n 20 "$data/../server.log" >&2 || true
    exit 1
  fi
}

server_stop() {
  local data=$1
  # -m immediate: like a crash or a pulled plug, which is what the tests want to see.
  if [ -f "$data/postmaster.pid" ]; then
    "$BIN/pg_ctl" -D "$data" -m immediate -w -t "$WAIT" stop >/dev/null 2>&1 ||
      die "the server in $data did not stop within ${WAIT}s"
  fi
}

cmd=${1:-}
case "$cmd" in
start)
  port=${2:-}
  if ! [[ "$port" =~ ^[0-9]{1,5}$ ]] || [ "$port" -eq 0 ] || [ "$port" -gt 65535 ]; then
    die "usage: pg.sh start PORT < password"
  fi
  IFS= read -r password || true
  [ -n "$password" ] || die "start: give the superuser's password on standard input"
  umask 077
  dir=$(mktemp -d "${PREFIX}XXXXXX")
  chmod 755 "$dir" # the caller (often root) reads the log and removes it
  ok=0
  trap '[ $ok = 1 ] || { "$BIN/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1; rm -rf "$dir"; }' EXIT
  printf '%s\n' "$password" >"$dir/pwfile"
  if ! "$BIN/initdb" -D "$dir/data" -U ca_test --pwfile="$dir/pwfile" -A scram-sha-256 \
    -E UTF8 --locale=C.UTF-8 --no-sync >"$dir/initdb.log" 2>&1; then
    cat "$dir/initdb.log" >&2
    die "initdb failed"
  fi
  rm -f "$dir/pwfile"
  # TLS: a test CA (tls/ca.crt, for sslrootcert) signs the server's certificate for
  # 127.0.0.1 only; tls/other-ca.crt is a CA that signed nothing, to see refusals.
  mkdir "$dir/tls"
  if ! (
    cd "$dir/tls" &&
      openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj /CN=ca-pg-test-ca -keyout ca.key -out ca.crt &&
      openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj /CN=ca-pg-other-ca -keyout other-ca.key -out other-ca.crt &&
      openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -subj /CN=127.0.0.1 -keyout server.key -out server.csr &&
      printf 'subjectAltName=IP:127.0.0.1\n' >server.ext &&
      openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
        -extfile server.ext -out server.crt
  ) >"$dir/tls.log" 2>&1; then
    cat "$dir/tls.log" >&2
    die "cannot make the test certificates (openssl)"
  fi
  chmod 755 "$dir/tls"
  chmod 644 "$dir/tls/ca.crt" "$dir/tls/other-ca.crt"
  cat >>"$dir/data/postgresql.conf" <<CONF
ssl = on
ssl_cert_file = '$dir/tls/server.crt'
ssl_key_file = '$dir/tls/server.key'
CONF
  cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
fsync = off
password_encryption = 'scram-sha-256'
CONF
  server_start "$dir/data"
  ok=1
  echo "$dir/data"
  ;;
pause)
  check_dir "${2:-}"
  server_stop "$2"
  ;;
resume)
  check_dir "${2:-}"
  server_start "$2"
  ;;
stop)
  check_dir "${2:-}"
  server_stop "$2"
  rm -rf "$(dirname "$2")"
  ;;
*)
  die "usage: pg.sh start PORT < password | pause DATADIR | resume DATADIR | stop DATADIR"
  ;;
esac

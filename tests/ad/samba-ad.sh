#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# A throwaway Active Directory domain controller (Samba 4, Debian's samba-ad-dc) for the
# ldap back-end's AD tests. Everything lives in DIR; nothing outside it is written.
#
#   samba-ad.sh start DIR     provision the domain EXAMPLE.TEST in DIR (about 8 s), give
#                             it a test CA and a server certificate for 127.0.0.1 and
#                             localhost, start samba, wait until LDAP answers, print
#                             KEY=VALUE lines
#   samba-ad.sh destroy DIR   stop it (bounded) and remove DIR
#
# The DC listens on 127.0.0.1 ports 389 (LDAP, StartTLS) and 636 (LDAPS). They are fixed,
# so only one domain runs on a machine at a time: the tests that use it take the ctest
# resource lock "samba-ad-dc". With CA_SAMBA_OWNER_PID set, start also leaves a watcher
# that stops the DC and removes DIR once that process is gone (a test that crashed before
# its teardown), so that the next run finds the ports free.
# Base DC=example,DC=test; users under CN=Users. Bind as Administrator@EXAMPLE.TEST with
# the password in DIR/admin.pw.
set -euo pipefail

WAIT_TRIES=240 # x 0.25 s: the DC must answer within 60 s
STOP_TRIES=100 # x 0.1 s before SIGKILL
ADMIN_PW='Adm1n-Passw0rd!'

need() {
  command -v "$1" >/dev/null 2>&1 || {
    echo "samba-ad.sh: '$1' is not installed (Debian packages: samba-ad-dc samba winbind" \
         "krb5-user smbclient ldap-utils openssl; tests/run.sh installs them)" >&2
    exit 3
  }
}

stop() {
  local d=$1 pid
  [ -s "$d/samba.pid" ] || return 0
  pid=$(cat "$d/samba.pid")
  kill "$pid" 2>/dev/null || { rm -f "$d/samba.pid"; return 0; }
  for _ in $(seq $STOP_TRIES); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$d/samba.pid"
}

port_busy() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

tls_material() {
  local t=$1/tls
  mkdir -p "$t"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=connector-agent AD test CA" \
    -keyout "$t/ca.key" -out "$t/ca.pem" >/dev/null 2>&1
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
    -keyout "$t/key.pem" -out "$t/req.pem" >/dev/null 2>&1
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$t/ext.cnf"
  openssl x509 -req -in "$t/req.pem" -CA "$t/ca.pem" -CAkey "$t/ca.key" -CAcreateserial \
    -days 2 -extfile "$t/ext.cnf" -out "$t/cert.pem" >/dev/null 2>&1
  chmod 600 "$t/key.pem" "$t/ca.key"
}

start() {
  local d=$1
  need samba-tool
  need samba
  need ldapsearch
  need openssl
  for p in 389 636; do
    if port_busy $p; then
      echo "samba-ad.sh: 127.0.0.1:$p is already in use (another directory, or a DC left" \
           "by an earlier run): the AD tests need ports 389 and 636" >&2
      exit 1
    fi
  done
  mkdir -p "$d"
  printf '%s' "$ADMIN_PW" >"$d/admin.pw"
  chmod 600 "$d/admin.pw"
  if ! samba-tool domain provision --realm=EXAMPLE.TEST --domain=EXAMPLE --server-role=dc \
      --dns-backend=NONE --adminpass="$ADMIN_PW" --use-rfc2307 --targetdir="$d/dc" \
      --option="interfaces=lo" --option="bind interfaces only=yes" >"$d/provision.log" 2>&1; then
    echo "samba-ad.sh: provisioning failed:" >&2
    tail -n 20 "$d/provision.log" >&2
    exit 1
  fi
  tls_material "$d"
  # The provisioned certificate names the host, not 127.0.0.1: use the test CA's so that
  # the agent verifies the DC's certificate as it would in production. Simple binds over
  # plain LDAP are allowed so that a test can prove the agent itself refuses to send a
  # password there; an old password stops working at once, so that a test can tell it
  # was replaced.
  sed -i "/^\[global\]/a\\
\ttls enabled = yes\\
\ttls keyfile = $d/tls/key.pem\\
\ttls certfile = $d/tls/cert.pem\\
\ttls cafile = $d/tls/ca.pem\\
\tldap server require strong auth = no\\
\told password allowed period = 0" "$d/dc/etc/smb.conf"
  samba -s "$d/dc/etc/smb.conf" -i -M single </dev/null >"$d/samba.log" 2>&1 &
  echo $! >"$d/samba.pid"
  local up=0
  for _ in $(seq $WAIT_TRIES); do
    if LDAPTLS_CACERT="$d/tls/ca.pem" ldapsearch -x -o nettimeout=1 -H ldaps://127.0.0.1 \
        -D Administrator@EXAMPLE.TEST -y "$d/admin.pw" -b DC=example,DC=test -s base dn \
        >/dev/null 2>&1; then
      up=1
      break
    fi
    kill -0 "$(cat "$d/samba.pid")" 2>/dev/null || break
    sleep 0.25
  done
  if [ $up = 0 ]; then
    echo "samba-ad.sh: the DC did not answer on ldaps://127.0.0.1 within 60 s:" >&2
    tail -n 20 "$d/samba.log" >&2
    stop "$d"
    exit 1
  fi
  if [ -n "${CA_SAMBA_OWNER_PID:-}" ]; then
    (while kill -0 "$CA_SAMBA_OWNER_PID" 2>/dev/null; do sleep 1; done
     stop "$d"; rm -rf "$d") </dev/null >/dev/null 2>&1 &
  fi
  echo "LDAP_URI=ldap://127.0.0.1"
  echo "LDAPS_URI=ldaps://127.0.0.1"
  echo "CA_FILE=$d/tls/ca.pem"
  echo "BASE_DN=DC=example,DC=test"
  echo "USERS_DN=CN=Users,DC=example,DC=test"
  echo "ADMIN_DN=Administrator@EXAMPLE.TEST"
  echo "ADMIN_PW_FILE=$d/admin.pw"
  echo "PID=$(cat "$d/samba.pid")"
}

case "${1:-}" in
  start) start "$2" ;;
  destroy) stop "$2"; rm -rf "$2" ;;
  *) echo "usage: samba-ad.sh start|destroy DIR" >&2; exit 2 ;;
esac

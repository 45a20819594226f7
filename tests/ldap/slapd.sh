#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# A throwaway OpenLDAP server for the ldap back-end's tests (Debian: slapd, ldap-utils,
# openssl). Everything lives in DIR; nothing outside it is written.
#
#   slapd.sh start DIR PORT PORT2   build DIR (cn=config, test CA, server certificate,
#                                   a second "wrong" CA, the base entries), start slapd on
#                                   ldap://127.0.0.1:PORT (StartTLS) and
#                                   ldaps://127.0.0.1:PORT2, print KEY=VALUE lines
#   slapd.sh serve DIR              start slapd again on an existing DIR (after stop)
#   slapd.sh stop DIR               stop it (bounded), keep DIR
#   slapd.sh destroy DIR            stop it and remove DIR
#
# With CA_SLAPD_OWNER_PID set, start also leaves a watcher that stops the server and
# removes DIR once that process is gone (a test that crashed before its teardown).
# Base dc=example,dc=com with ou=people, ou=groups and the groupOfNames
# cn=agents,ou=groups (its first member is the admin, as groupOfNames needs one).
# Admin: cn=admin,dc=example,dc=com, password in DIR/admin.pw. The admin is the rootdn,
# which no size limit applies to; the service account cn=agent,dc=example,dc=com
# (password in DIR/agent.pw) may write everything but gets at most AGENT_SIZELIMIT entries
# from one search, and only the paged-results control reads more. The ppolicy overlay runs
# with the default policy cn=pwpolicy,dc=example,dc=com: an entry with
# pwdAccountLockedTime 000001010000Z cannot bind.
set -euo pipefail

WAIT_TRIES=100      # x 0.1 s: slapd must answer within 10 s
AGENT_SIZELIMIT=600 # entries cn=agent gets from a search without paging
STOP_TRIES=50  # x 0.1 s before SIGKILL

need() {
  command -v "$1" >/dev/null 2>&1 || {
    echo "slapd.sh: '$1' is not installed (Debian packages: slapd ldap-utils openssl;" \
         "tests/run.sh installs them)" >&2
    exit 3
  }
}

slapd_bin() {
  if command -v slapd >/dev/null 2>&1; then command -v slapd; elif [ -x /usr/sbin/slapd ]; then
    echo /usr/sbin/slapd; else need slapd; fi
}

serve() {
  local d=$1
  . "$d/env"
  rm -f "$d/slapd.pid"
  "$(slapd_bin)" -F "$d/slapd.d" -h "ldap://127.0.0.1:$LDAP_PORT/ ldaps://127.0.0.1:$LDAPS_PORT/" -s 0
  for _ in $(seq $WAIT_TRIES); do
    if [ -s "$d/slapd.pid" ] && LDAPTLS_REQCERT=never ldapsearch -x -o nettimeout=1 \
        -H "ldap://127.0.0.1:$LDAP_PORT" -b "" -s base namingContexts >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.1
  done
  echo "slapd.sh: slapd did not answer on 127.0.0.1:$LDAP_PORT within 10 s" >&2
  stop "$d"
  return 1
}

stop() {
  local d=$1 pid
  [ -s "$d/slapd.pid" ] || return 0
  pid=$(cat "$d/slapd.pid")
  kill "$pid" 2>/dev/null || { rm -f "$d/slapd.pid"; return 0; }
  for _ in $(seq $STOP_TRIES); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$d/slapd.pid"
}

make_ca() { # DIR NAME
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=$2" \
    -keyout "$1/$2.key" -out "$1/$2.crt" 2>/dev/null
}

start() {
  local d=$1 port=$2 port2=$3
  need slapadd; need ldapadd; need ldapsearch; need slappasswd; need openssl; slapd_bin >/dev/null
  mkdir -p "$d/slapd.d" "$d/db"
  local pw agent_pw
  pw=$(openssl rand -hex 12)
  printf %s "$pw" >"$d/admin.pw"
  agent_pw=$(openssl rand -hex 12)
  printf %s "$agent_pw" >"$d/agent.pw"
  chmod 600 "$d/admin.pw" "$d/agent.pw"
  cat >"$d/env" <<EOT
LDAP_PORT=$port
LDAPS_PORT=$port2
EOT

  make_ca "$d" test-ca
  make_ca "$d" wrong-ca
  openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1\n' >"$d/server.ext"
  openssl x509 -req -in "$d/server.csr" -CA "$d/test-ca.crt" -CAkey "$d/test-ca.key" \
    -CAcreateserial -days 2 -extfile "$d/server.ext" -out "$d/server.crt" 2>/dev/null

  cat >"$d/config.ldif" <<EOT
dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: $d/slapd.pid
olcArgsFile: $d/slapd.args
olcTLSCACertificateFile: $d/test-ca.crt
olcTLSCertificateFile: $d/server.crt
olcTLSCertificateKeyFile: $d/server.key

dn: cn=module{0},cn=config
objectClass: olcModuleList
cn: module{0}
olcModulePath: /usr/lib/ldap
olcModuleLoad: back_mdb
olcModuleLoad: ppolicy

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

include: file:///etc/ldap/schema/core.ldif
include: file:///etc/ldap/schema/cosine.ldif
include: file:///etc/ldap/schema/nis.ldif
include: file:///etc/ldap/schema/inetorgperson.ldif

dn: olcDatabase={-1}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {-1}frontend
olcAccess: {0}to * by * read

dn: olcDatabase={0}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {0}config
olcAccess: {0}to * by * none

dn: olcDatabase={1}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {1}mdb
olcDbDirectory: $d/db
olcDbMaxSize: 33554432
olcSuffix: dc=example,dc=com
olcRootDN: cn=admin,dc=example,dc=com
olcRootPW: $(slappasswd -s "$pw")
olcDbIndex: objectClass eq
olcLimits: {0}dn.exact="cn=agent,dc=example,dc=com" size.soft=$AGENT_SIZELIMIT size.hard=$AGENT_SIZELIMIT size.prtotal=unlimited
olcAccess: {0}to attrs=userPassword by self write by dn.exact="cn=agent,dc=example,dc=com" write by anonymous auth by * none
olcAccess: {1}to * by dn.exact="cn=agent,dc=example,dc=com" write by * read

dn: olcOverlay={0}ppolicy,olcDatabase={1}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcPPolicyConfig
olcOverlay: {0}ppolicy
olcPPolicyDefault: cn=pwpolicy,dc=example,dc=com
EOT
  slapadd -n0 -F "$d/slapd.d" -l "$d/config.ldif" >/dev/null
  serve "$d"

  ldapadd -x -o nettimeout=5 -H "ldap://127.0.0.1:$port" -D "cn=admin,dc=example,dc=com" \
    -y "$d/admin.pw" >/dev/null <<EOT
dn: dc=example,dc=com
objectClass: top
objectClass: dcObject
objectClass: organization
o: Example
dc: example

dn: ou=people,dc=example,dc=com
objectClass: organizationalUnit
ou: people

dn: ou=groups,dc=example,dc=com
objectClass: organizationalUnit
ou: groups

dn: cn=agents,ou=groups,dc=example,dc=com
objectClass: groupOfNames
cn: agents
member: cn=admin,dc=example,dc=com

dn: cn=agent,dc=example,dc=com
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: agent
userPassword: $(slappasswd -s "$agent_pw")

dn: cn=pwpolicy,dc=example,dc=com
objectClass: organizationalRole
objectClass: pwdPolicy
cn: pwpolicy
pwdAttribute: userPassword
pwdLockout: TRUE
pwdMaxFailure: 0
EOT
  # A test that dies without its teardown still takes its server with it.
  if [ -n "${CA_SLAPD_OWNER_PID:-}" ]; then
    (while kill -0 "$CA_SLAPD_OWNER_PID" 2>/dev/null; do sleep 1; done
     stop "$d"; rm -rf "$d") </dev/null >/dev/null 2>&1 &
  fi
  echo "LDAP_URI=ldap://127.0.0.1:$port"
  echo "LDAPS_URI=ldaps://127.0.0.1:$port2"
  echo "CA_FILE=$d/test-ca.crt"
  echo "WRONG_CA_FILE=$d/wrong-ca.crt"
  echo "ADMIN_DN=cn=admin,dc=example,dc=com"
  echo "ADMIN_PW_FILE=$d/admin.pw"
  echo "AGENT_DN=cn=agent,dc=example,dc=com"
  echo "AGENT_PW_FILE=$d/agent.pw"
  echo "AGENT_SIZELIMIT=$AGENT_SIZELIMIT"
  echo "PID=$(cat "$d/slapd.pid")"
}

cmd=${1:-}
case "$cmd" in
start) [ $# -eq 4 ] || { echo "usage: $0 start DIR PORT PORT2" >&2; exit 2; }
  trap 'stop "$2"' ERR
  start "$2" "$3" "$4" ;;
serve) serve "$2" ;;
stop) stop "$2" ;;
destroy) stop "$2"; rm -rf "$2" ;;
*) echo "usage: $0 start DIR PORT PORT2 | serve DIR | stop DIR | destroy DIR" >&2; exit 2 ;;
esac

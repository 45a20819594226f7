# SPDX-License-Identifier: Apache-2.0
# Sourced by tests/run.sh and packaging/demo.sh: installs the Debian packages a step
# needs, once (apt-get only when something is missing), without prompts.
ca_build_packages="gcc libc6-dev make cmake pkg-config libevent-dev libcurl4-openssl-dev
  libsystemd-dev libssl-dev libjansson-dev libsqlite3-dev libldap-dev libpq-dev
  libargon2-dev"
ca_test_packages="libcmocka-dev python3 python3-yaml sqlite3 openssl slapd ldap-utils
  systemd dpkg-dev file groff-base man-db procps util-linux lintian
  clang libclang-rt-14-dev
  samba-ad-dc samba-ad-provision samba winbind krb5-user smbclient"

ca_install_deps() {
  local want="$ca_build_packages"
  [ "${1:-}" = test ] && want="$want $ca_test_packages"
  local missing=()
  for p in $want; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    echo "missing Debian packages: ${missing[*]} (run as root to install them)" >&2
    return 1
  fi
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # slapd: no default database; the tests build their own throwaway servers (slapd, and
  # Samba's AD DC, which apt never starts here: tests/ad/samba-ad.sh provisions its own).
  echo "slapd slapd/no_configuration boolean true" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# PostgreSQL 15 for the tests, without the default cluster: the tests start their own
# throwaway servers on loopback ports.
ca_install_postgresql() {
  dpkg-query -W -f='${Status}' postgresql-15 2>/dev/null | grep -q 'install ok installed' && return 0
  if [ "$(id -u)" != 0 ]; then
    echo "missing Debian package: postgresql-15 (run as root to install it)" >&2
    return 1
  fi
  echo "installing: postgresql-15"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends postgresql-common >/dev/null
  sed -i 's/^#\?\s*create_main_cluster\s*=.*/create_main_cluster = false/' \
    /etc/postgresql-common/createcluster.conf
  apt-get install -y -qq --no-install-recommends postgresql-15 >/dev/null
}

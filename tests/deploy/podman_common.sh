# SPDX-License-Identifier: Apache-2.0
# Sourced by the podman tests in tests/deploy: podman settings for this kind of machine
# and a Debian 12 base image without a registry. Expects $work (a scratch directory)
# and a function fail.

# crun refuses hybrid cgroups, and podman's default open-file limit is above what root
# may set here (see the project's RECIPES).
ca_podman_setup() {
  for tool in podman runc; do
    command -v "$tool" >/dev/null || fail "$tool not installed (apt-get install podman runc debootstrap)"
  done
  cat >"$work/containers.conf" <<'CONF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
  export CONTAINERS_CONF=$work/containers.conf
}

# Without systemd as PID 1, podman cannot arm health-check timers and says so on every
# run; the tests run health checks by hand instead.
podman() {
  command podman "$@" 2> >(grep -v 'systemd connection' >&2)
}

# Prints the base image to build on: $CA_CONTAINER_BASE, or a debootstrap minbase of
# bookworm imported as localhost/bookworm-minbase:latest (its tarball cached in
# $CA_CONTAINER_CACHE, default /var/tmp/connector-agent-container; about 45 s once).
ca_base_image() {
  if [ -n "${CA_CONTAINER_BASE:-}" ]; then
    echo "$CA_CONTAINER_BASE"
    return
  fi
  local base=localhost/bookworm-minbase:latest
  local cache=${CA_CONTAINER_CACHE:-/var/tmp/connector-agent-container}
  if ! podman image exists "$base"; then
    mkdir -p "$cache"
    local tarball=$cache/bookworm-minbase.tar
    if [ ! -s "$tarball" ]; then
      command -v debootstrap >/dev/null || fail "debootstrap not installed"
      local mirror
      mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)
      [ -n "$mirror" ] || mirror=$(awk '$1 == "deb" { print $2; exit }' /etc/apt/sources.list)
      [ -n "$mirror" ] || fail "no Debian mirror found in the apt sources"
      echo "== debootstrap bookworm from $mirror" >&2
      debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 ||
        { tail -20 "$work/debootstrap.log" >&2; fail "debootstrap"; }
      tar -C "$work/rootfs" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
      rm -rf "$work/rootfs"
    fi
    podman import "$tarball" "$base" >/dev/null
  fi
  echo "$base"
}

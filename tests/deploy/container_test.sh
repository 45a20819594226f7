#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Builds the container image with podman and runs it. Not part of the default test run:
# it takes minutes (a debootstrap base image, then a full build inside the image).
#
# Usage (as root, Debian 12): tests/deploy/container_test.sh
#   CA_CONTAINER_CACHE=DIR   where the debootstrap base image tarball is kept between
#                            runs (default /var/tmp/connector-agent-container)
#   CA_CONTAINER_BASE=IMAGE  use this base image instead of building one with debootstrap
#                            (e.g. docker.io/library/debian:bookworm-slim when a registry
#                            is reachable)
# Needs: podman runc debootstrap (apt-get install --no-install-recommends podman runc
# debootstrap). Exits non-zero on failure.
#
# Checks: the image builds; --version runs; the process runs as uid 10001, not root;
# --check-config passes with configuration from the environment alone (and is the
# health check); the agent started without a file, with an unreachable server, keeps
# running on a read-only root, and `podman stop` (SIGTERM) ends it with exit status 0
# well within the stop timeout, its journal in the volume; the image carries no compiler.
set -euo pipefail

src=$(cd "$(dirname "$0")/../.." && pwd)
image=localhost/connector-agent:test
name=ca-container-test-$$
stop_timeout=45

fail() {
  echo "FAIL: $*" >&2
  exit 1
}
work=$(mktemp -d)
cleanup() {
  podman rm -f "$name" >/dev/null 2>&1 || true
  podman volume rm -f "$name-state" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
. "$src/tests/deploy/podman_common.sh"
ca_podman_setup
base=$(ca_base_image)
[ -n "$base" ] || fail "no base image"

echo "== podman build (base $base)"
start=$(date +%s)
podman build --format docker -t "$image" -f "$src/packaging/docker/Dockerfile" \
  --build-arg BASE="$base" "$src" >"$work/build.log" 2>&1 ||
  { tail -40 "$work/build.log" >&2; fail "podman build"; }
echo "built in $(($(date +%s) - start)) s; $(podman image inspect --format '{{.Size}}' "$image") bytes"

echo "== --version"
out=$(podman run --rm --network=host "$image" --version)
echo "$out"
grep -Eq '^connector-agent [0-9]+\.[0-9]+\.[0-9]+' <<<"$out" || fail "unexpected --version: $out"

echo "== user"
uid=$(podman run --rm --network=host --entrypoint /usr/bin/id "$image" -u)
[ "$uid" = 10001 ] || fail "runs as uid $uid, not 10001"
podman run --rm --network=host --entrypoint /bin/sh "$image" -c \
  'command -v gcc cc cmake >/dev/null' && fail "the runtime image carries a compiler"
podman image inspect --format '{{json .Config.Healthcheck}}' "$image" | grep -q -- --check-config ||
  fail "no HEALTHCHECK with --check-config in the image"
echo "uid 10001, no compiler, health check present"

# Configuration by the environment alone: the file back-end writing into the volume.
env_args=(
  -e CONNECTOR_AGENT_SERVER_URL=http://127.0.0.1:9
  -e CONNECTOR_AGENT_SERVER_CLIENT_ID=job@example.com
  -e CONNECTOR_AGENT_SERVER_CLIENT_SECRET=not-a-real-secret
  -e CONNECTOR_AGENT_AGENT_SHUTDOWN_DEADLINE=5s
  -e CONNECTOR_AGENT_CONNECTORS=files
  -e CONNECTOR_AGENT_CONNECTOR_FILES_BACKEND=file
  -e CONNECTOR_AGENT_CONNECTOR_FILES_DIRECTORY=/var/lib/connector-agent
  -e CONNECTOR_AGENT_RESOURCE_TYPES=Doc
  -e CONNECTOR_AGENT_RESOURCE_TYPE_DOC_CONNECTOR=files
)

echo "== --check-config from the environment"
out=$(podman run --rm --network=host "${env_args[@]}" "$image" --check-config)
echo "$out"
grep -q "configuration (environment) is valid: 1 connector(s), 1 resource type(s)" <<<"$out" ||
  fail "unexpected --check-config output"

echo "== run, then stop with SIGTERM"
podman run -d --name "$name" --network=host --read-only --stop-timeout "$stop_timeout" \
  -v "$name-state:/var/lib/connector-agent" "${env_args[@]}" \
  "$image" >/dev/null
sleep 3
[ "$(podman inspect --format '{{.State.Running}}' "$name")" = true ] ||
  { podman logs "$name" >&2; fail "the agent did not keep running"; }
podman healthcheck run "$name" || fail "health check failed"
start=$(date +%s)
podman stop -t "$stop_timeout" "$name" >/dev/null
took=$(($(date +%s) - start))
code=$(podman inspect --format '{{.State.ExitCode}}' "$name")
podman logs "$name" 2>&1 | tail -n 5
[ "$code" = 0 ] || fail "exit status $code after SIGTERM"
[ "$took" -lt 20 ] || fail "took ${took}s to stop (shutdown_deadline is 5s)"
echo "stopped in ${took}s with status 0"
# A read-only root: the journal went to the volume.
podman run --rm --network=host -v "$name-state:/var/lib/connector-agent" --entrypoint /bin/ls \
  "$image" /var/lib/connector-agent | grep -qx journal.db || fail "no journal.db in the volume"
echo "journal in the volume, root file system read-only"
echo "PASS"

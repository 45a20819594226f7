#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs every fuzz target (or those named) for MINUTES each, like run.sh, but keeps the
# inputs that reached new coverage in build/fuzz/new-corpus/<name>/, separate from the
# seed corpus, for a person to review and merge:
#   build/fuzz/tests/fuzz/fuzz_X -merge=1 tests/fuzz/corpus/X build/fuzz/new-corpus/X
#
#   tests/fuzz/run-long.sh MINUTES [TARGET...]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(cd "$here/../.." && pwd)
minutes=${1:-}
case $minutes in
''|*[!0-9]*) echo "usage: run-long.sh MINUTES [TARGET...]" >&2; exit 2 ;;
esac
shift
build=${CA_FUZZ_BUILD_DIR:-$src/build/fuzz}
export CA_FUZZ_NEW_CORPUS=${CA_FUZZ_NEW_CORPUS:-$build/new-corpus}
rc=0
"$here/run.sh" $((minutes * 60)) "$@" || rc=$?
echo "== new corpus entries: $CA_FUZZ_NEW_CORPUS"
for d in "$CA_FUZZ_NEW_CORPUS"/*/; do
        [ -d "$d" ] && echo "   $(basename "$d"): $(find "$d" -type f | wc -l) file(s)"
done
exit $rc

#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The kTLS tests inside a kernel-matrix guest: scripts/kernel-matrix.sh --run test/kernels/guest.sh
# (npm test's kernels phase does). Writes doctor's report and the node test runner's TAP to
# $KM_OUT; exits with the test runner's status.
set -uo pipefail
cd "${KM_REPO:?run me through scripts/kernel-matrix.sh --run}"
NODE=${KM_NODE:-node}
echo "guest: $(uname -r)"
timeout 180 "$NODE" dist/src/cli/bin.js doctor -o json >"$KM_OUT/doctor.json" 2>"$KM_OUT/doctor.err"
echo "guest: doctor exit $?"
s0=$(date +%s)
# one file at a time: 2 emulated CPUs. The kTLS file's 10 tests take 5-10 min in all under TCG
# (longer on a busy host), the slowest single test under 2 min: a test that runs 8 min is hung,
# and is failed by name so the others still report (one CI run lost 40 min to a hung guest)
timeout 1300 "$NODE" --test --test-concurrency=1 --test-timeout=480000 \
  --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=tap --test-reporter-destination="$KM_OUT/kernels.tap" \
  dist/test/kernels/*.test.js
rc=$?
cat /proc/net/tls_stat >"$KM_OUT/tls_stat" 2>/dev/null
echo "guest: kTLS tests exit $rc after $(( $(date +%s) - s0 )) s"
exit $rc

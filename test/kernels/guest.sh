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
# one file at a time: 2 emulated CPUs. --test-timeout bounds each file as a whole, not each test
# (the kTLS file's 10 tests: 5-10 min under TCG, up to 18 min on a busy host); the whole run is
# bounded below the VM's 1500 s, so a hung guest still reports its tests (one CI run lost 40 min
# to a 6.1 guest that never finished)
timeout 1300 "$NODE" --test --test-concurrency=1 --test-timeout=1200000 \
  --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=tap --test-reporter-destination="$KM_OUT/kernels.tap" \
  dist/test/kernels/*.test.js
rc=$?
cat /proc/net/tls_stat >"$KM_OUT/tls_stat" 2>/dev/null
echo "guest: kTLS tests exit $rc after $(( $(date +%s) - s0 )) s"
exit $rc

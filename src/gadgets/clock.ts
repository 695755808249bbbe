// SPDX-License-Identifier: Apache-2.0
/**
 * BPF timestamps are CLOCK_MONOTONIC nanoseconds (bpf_ktime_get_ns); so is
 * process.hrtime.bigint(). The offset to wall-clock time is taken once.
 */
const offsetNs = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();

export function monotonicToEpochMs(ns: bigint): number {
  return Number((ns + offsetNs) / 1_000_000n);
}

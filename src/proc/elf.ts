// SPDX-License-Identifier: Apache-2.0
/** The ELF reader moved to src/elf/ (a pure layer that src/ebpf/ may use too); kept for importers. */
export * from '../elf/elf.js';

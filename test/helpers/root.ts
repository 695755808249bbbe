// SPDX-License-Identifier: Apache-2.0
/** Integration tests need root: skip them with that reason otherwise (a unit run still works). */
export const notRoot: string | false = process.getuid?.() === 0 ? false : 'needs root (BPF, namespaces, container runtimes)';

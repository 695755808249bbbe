// SPDX-License-Identifier: Apache-2.0
/** Pure protocol parsers: TLS records and ClientHello, its TCP reassembler, HTTP/1.x. */
export * from './tls.js';
export * from './clienthello-assembler.js';
export * from './http1.js';
export * from './http1-pairer.js';

// SPDX-License-Identifier: Apache-2.0
import { commonFields, type CommonField } from '../../fields/common.js';
import type { SniEvent } from './gadget.js';

export function sniFields(): CommonField<SniEvent>[] {
  return [
    ...commonFields<SniEvent>(),
    { name: 'src', column: 'SRC', width: 22, description: 'client address:port', visible: false, get: (e) => e.src },
    { name: 'dst', column: 'DST', width: 22, description: 'server address:port', visible: false, get: (e) => e.dst },
    { name: 'direction', column: 'DIR', width: 3, description: 'out: sent by a local process; in: received, sender not on this host', visible: false, get: (e) => e.direction },
    { name: 'tlsVersion', column: 'TLSVERSION', width: 10, description: 'highest TLS version the client offered', visible: false, get: (e) => e.tlsVersion },
    { name: 'alpn', column: 'ALPN', width: 16, description: 'application protocols offered (ALPN), comma-separated', visible: false, get: (e) => e.alpn.join(',') },
    { name: 'ech', column: 'ECH', type: 'bool', width: 5, description: 'Encrypted ClientHello offered (the name is then the public name)', visible: false, get: (e) => e.ech },
    { name: 'extensions', column: 'EXTENSIONS', type: 'int', width: 8, align: 'right', description: 'number of extensions in the ClientHello', visible: false, get: (e) => e.hello.extensions.length },
    { name: 'name', column: 'NAME', width: 40, description: 'the TLS server name asked for (SNI)', visible: true, get: (e) => e.name },
  ];
}

// SPDX-License-Identifier: Apache-2.0
/**
 * A dependency loaded on its first use, not with the module that needs it: the heavy ones
 * (iced-x86, grpc-js, proto-loader/protobufjs, cel-js) cost 7-25 MB resident each, which a
 * command that never uses them should not pay.
 */
import { createRequire } from 'node:module';
import { TlscopeError } from './errors.js';

const requireHere = createRequire(import.meta.url);

/** A getter that requires `name` on its first call and returns the same module after. */
export function lazyModule<T>(name: string): () => T {
  let loaded: T | undefined;
  return () => {
    if (loaded === undefined) {
      try {
        loaded = requireHere(name) as T;
      } catch (e) {
        // an ESM-only package (cel-js) is required synchronously: Node.js >= 20.19 does that
        if ((e as { code?: unknown }).code === 'ERR_REQUIRE_ESM') {
          throw new TlscopeError('ERR_INSTALL', `${name} cannot be loaded by Node.js ${process.version}`, { hint: 'tlscope needs Node.js 20.19 or newer' });
        }
        throw e;
      }
    }
    return loaded;
  };
}

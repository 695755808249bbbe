// SPDX-License-Identifier: Apache-2.0
import { TlscopeError } from '../errors.js';
import type { RuntimeName } from './types.js';

/** A runtime's API exists but did not answer as expected. */
export class RuntimeError extends TlscopeError {
  readonly runtime: RuntimeName;
  readonly socketPath: string;
  constructor(runtime: RuntimeName, socketPath: string, message: string, cause?: unknown) {
    super('ERR_RUNTIME', `${runtime} (${socketPath}): ${message}`, {
      hint: `check that ${runtime} is running and answers on ${socketPath}; until it does, tlscope names its containers from their cgroups only`,
      ...(cause === undefined ? {} : { cause }),
    });
    this.runtime = runtime;
    this.socketPath = socketPath;
  }
}

/** The container index (or one of its clients) was used after close(). */
export class ClosedError extends TlscopeError {
  constructor(what: string) {
    super('ERR_CLOSED', `${what} is closed`, { hint: 'this is a bug in tlscope: please report it' });
  }
}

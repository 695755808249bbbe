// SPDX-License-Identifier: Apache-2.0
import { statSync } from 'node:fs';

/** Whether a runtime's API socket is there (a runtime that is not installed has none). */
export function isUnixSocket(path: string): boolean {
  try {
    return statSync(path).isSocket();
  } catch {
    return false;
  }
}

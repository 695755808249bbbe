// SPDX-License-Identifier: Apache-2.0
/**
 * Events as JSON text for a stream between processes (the node agent and its clients): the
 * event object itself, not its -o json view, so that the receiver renders it with the same
 * field declarations as a local session. Byte arrays travel as {"$b64": "…"} and bigints as
 * {"$int": "…"}; everything else is plain JSON. Pure.
 */

const B64 = '$b64';
const INT = '$int';

function replacer(this: Record<string, unknown>, key: string, value: unknown): unknown {
  // JSON.stringify has already called Buffer#toJSON on `value`: look at the holder's own value
  const raw = key === '' ? value : this[key];
  if (raw instanceof Uint8Array) return { [B64]: Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64') };
  if (typeof raw === 'bigint') return { [INT]: raw.toString() };
  return value;
}

function reviver(_key: string, value: unknown): unknown {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const o = value as Record<string, unknown>;
    const keys = Object.keys(o);
    if (keys.length === 1) {
      if (typeof o[B64] === 'string') return Buffer.from(o[B64], 'base64');
      if (typeof o[INT] === 'string') return BigInt(o[INT]);
    }
  }
  return value;
}

export function encodeEvent(e: unknown): string {
  return JSON.stringify(e, replacer);
}

export function decodeEvent<E>(text: string): E {
  return JSON.parse(text, reviver) as E;
}

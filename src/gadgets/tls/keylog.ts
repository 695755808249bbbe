// SPDX-License-Identifier: Apache-2.0
/**
 * `trace tls --keylog FILE`: TLS secrets in the NSS key log format, so that an encrypted capture
 * of the same traffic (`tlscope capture -w`, tcpdump) decrypts in Wireshark/tshark.
 *
 * Source: Go's crypto/tls, at the entry of `crypto/tls.(*Config).writeKeyLog(label string,
 * clientRandom, secret []byte)` (bpf/keylog.bpf.c). crypto/tls calls it on every handshake
 * whether or not the program has a KeyLogWriter, and its arguments are all a key log line
 * needs: no struct offsets, nothing per Go version but the ABI (register ABI from Go 1.17,
 * stack ABI0 before).
 *
 * OpenSSL is not a source: its key log hook (`SSL_CTX_set_keylog_callback`) only fires for
 * programs that set a callback, and the internal function that would see every secret
 * (`ssl_log_secret`, not exported) takes the `SSL*` and reads the client random out of it, at
 * an offset that changes between versions and builds. This module never prints: it hands
 * each line to the caller.
 */
import { errorMessage, TlscopeError } from '../../errors.js';
import { BpfObject } from '../../ebpf/object.js';
import type { BpfLink } from '../../ebpf/link.js';
import { RingBufReader } from '../../ebpf/ringbuf.js';
import { ElfFile } from '../../proc/elf.js';
import { goAbi, goFunctions, isGoBinary, readGoBuildInfo } from '../../proc/go.js';
import { decodeProc, type ProcRecord } from '../proc-record.js';

export const GO_WRITE_KEYLOG = 'crypto/tls.(*Config).writeKeyLog';

/** struct keylog_event (bpf/keylog.bpf.c), checked against BTF in tests. */
export const KEYLOG_EVENT_LAYOUT = {
  size: 256,
  proc: 0,
  ts_ns: 48,
  label_len: 56,
  random_len: 57,
  secret_len: 58,
  flags: 59,
  label: 64,
  random: 128,
  secret: 192,
} as const;

const FLAG_FAULT = 1;
const FLAG_TOO_LONG = 2;

export interface KeylogRecord {
  proc: ProcRecord;
  label: string;
  clientRandom: Uint8Array;
  secret: Uint8Array;
  /** bytes could not be read from the process, or did not fit: no line is written */
  bad: 'fault' | 'too long' | undefined;
}

export function decodeKeylogEvent(dv: DataView, off: number, len: number): KeylogRecord {
  const L = KEYLOG_EVENT_LAYOUT;
  if (len < L.size) throw new Error(`keylog event of ${len} bytes`);
  const bytes = (at: number, n: number): Uint8Array => new Uint8Array(dv.buffer.slice(dv.byteOffset + off + at, dv.byteOffset + off + at + n));
  const flags = dv.getUint8(off + L.flags);
  return {
    proc: decodeProc(dv, off + L.proc),
    label: Buffer.from(bytes(L.label, dv.getUint8(off + L.label_len))).toString('latin1'),
    clientRandom: bytes(L.random, dv.getUint8(off + L.random_len)),
    secret: bytes(L.secret, dv.getUint8(off + L.secret_len)),
    bad: (flags & FLAG_FAULT) !== 0 ? 'fault' : (flags & FLAG_TOO_LONG) !== 0 ? 'too long' : undefined,
  };
}

const LABEL = /^[A-Z0-9_]{1,63}$/;

/** The NSS key log line (`LABEL <client random hex> <secret hex>`), or why there is none. */
export function keylogLine(r: KeylogRecord): { line: string } | { invalid: string } {
  if (r.bad !== undefined) return { invalid: r.bad === 'fault' ? 'unreadable process memory' : 'label or secret longer than the record' };
  if (!LABEL.test(r.label)) return { invalid: 'not a key log label' };
  if (r.clientRandom.length !== 32) return { invalid: `client random of ${r.clientRandom.length} bytes` };
  if (r.secret.length === 0) return { invalid: 'empty secret' };
  return { line: `${r.label} ${Buffer.from(r.clientRandom).toString('hex')} ${Buffer.from(r.secret).toString('hex')}\n` };
}

export interface KeylogStats {
  /** lines handed out */
  lines: number;
  /** records without a line, by reason */
  invalid: Record<string, number>;
  /** records lost to a full ring */
  lost: bigint;
  /** Go programs probed / without writeKeyLog (inlined or removed by the linker) */
  files: number;
  filesWithout: number;
}

export interface KeylogOptions {
  onLine: (line: string, r: KeylogRecord) => void;
  onWarning?: (msg: string) => void;
  signal?: AbortSignal;
}

export class KeylogSource {
  private readonly obj: BpfObject;
  private readonly reader: RingBufReader<KeylogRecord>;
  private readonly links = new Map<string, BpfLink | undefined>();
  private readonly loop: Promise<void>;
  private closed = false;
  readonly stats: KeylogStats = { lines: 0, invalid: {}, lost: 0n, files: 0, filesWithout: 0 };

  private constructor(obj: BpfObject, private readonly opts: KeylogOptions) {
    this.obj = obj;
    this.reader = new RingBufReader(obj.map('keys'), { decode: decodeKeylogEvent, lostCounter: obj.map('tlscope_lost'), ...(opts.signal === undefined ? {} : { signal: opts.signal }) });
    this.loop = this.read();
  }

  static open(opts: KeylogOptions): KeylogSource {
    return new KeylogSource(BpfObject.load('keylog', { programs: ['keylog_go_reg', 'keylog_go_stack'] }), opts);
  }

  /**
   * Probes writeKeyLog in a Go program (once per `key`: the file's identity, plus @pid per
   * process). `shown` names the file in notes and warnings when `path` is only valid now (the
   * exec gate's fd). Returns what was done, for the caller's notes.
   */
  attach(key: string, path: string, pid: number | undefined, shown = path): string | undefined {
    if (this.closed || this.links.has(key)) return undefined;
    let offset: number | undefined;
    let abi: 'register' | 'stack' = 'register';
    try {
      const elf = ElfFile.open(path);
      try {
        if (!isGoBinary(elf)) return undefined;
        abi = goAbi(readGoBuildInfo(elf));
        offset = goFunctions(elf, [GO_WRITE_KEYLOG]).get(GO_WRITE_KEYLOG)?.fileOffset;
      } finally {
        elf.close();
      }
    } catch (e) {
      this.opts.onWarning?.(`--keylog: cannot read ${shown}: ${errorMessage(e)}`);
      return undefined;
    }
    if (offset === undefined) {
      this.links.set(key, undefined);
      this.stats.filesWithout++;
      this.opts.onWarning?.(`--keylog: ${shown} has no ${GO_WRITE_KEYLOG} (inlined or removed by its linker): its TLS secrets cannot be logged`);
      return undefined;
    }
    try {
      const link = this.obj.program(abi === 'register' ? 'keylog_go_reg' : 'keylog_go_stack').attachUprobe({ path, offset, ...(pid === undefined ? {} : { pid }) });
      this.links.set(key, link);
      this.stats.files++;
      return `--keylog: ${GO_WRITE_KEYLOG} in ${shown} (${abi} ABI)`;
    } catch (e) {
      if (e instanceof TlscopeError) this.opts.onWarning?.(`--keylog: cannot probe ${GO_WRITE_KEYLOG} in ${shown}: ${e.message}`);
      else throw e;
      return undefined;
    }
  }

  private async read(): Promise<void> {
    for await (const batch of this.reader) {
      for (const r of batch) {
        const l = keylogLine(r);
        if ('line' in l) {
          this.stats.lines++;
          this.opts.onLine(l.line, r);
        } else {
          this.stats.invalid[l.invalid] = (this.stats.invalid[l.invalid] ?? 0) + 1;
        }
      }
    }
  }

  lost(): bigint {
    return this.reader.lost();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const l of this.links.values()) l?.close();
    this.links.clear();
    await this.reader.close();
    await this.loop;
    this.stats.lost = this.reader.lost();
    this.obj.close();
  }
}

// SPDX-License-Identifier: Apache-2.0
/**
 * The runtime's typed errors: a program the verifier refused (with its log and the reason
 * picked out of it), a failed kernel call (with its errno), and the one function that turns a
 * negative return into the right one of those, a PermissionError or a NotSupportedError.
 * Also the capture of libbpf's log around one call, which those errors carry.
 */
import { NotSupportedError, PermissionError, TlscopeError } from '../errors.js';
import { EACCES, ENOTSUPP, EOPNOTSUPP, EPERM } from '../constants.js';
import { c, setLibbpfPrintSink, strerror } from './native.js';

/** A program the verifier (or the kernel) refused; `log` holds everything libbpf printed. */
export class VerifierError extends TlscopeError {
  readonly program: string | undefined;
  readonly summary: string;
  readonly log: string;
  constructor(object: string, program: string | undefined, summary: string, log: string, cause?: unknown) {
    super('ERR_VERIFIER', `load ${object}${program === undefined ? '' : ` program ${program}`}: ${summary}`, {
      hint: 'run with -v to see the full verifier log',
      ...(cause === undefined ? {} : { cause }),
    });
    this.program = program;
    this.summary = summary;
    this.log = log;
  }
}

/** A failed kernel call, with the errno it returned. */
export class KernelError extends TlscopeError {
  readonly errno: number;
  constructor(what: string, err: number, hint?: string) {
    super('ERR_KERNEL', `${what}: ${strerror(err)} (errno ${err})`, hint === undefined ? {} : { hint });
    this.errno = err;
  }
}

/** Turns a negative libbpf return or errno into the right typed error. */
export function kernelError(what: string, err: number, log?: string): TlscopeError {
  const e = Math.abs(err);
  const tail = log ? `: ${lastLogLine(log)}` : '';
  if ((e === EPERM || e === EACCES) && c.geteuid() !== 0) return new PermissionError(`${what}: ${strerror(e)}${tail}`);
  if (e === ENOTSUPP || e === EOPNOTSUPP) return new NotSupportedError(what, `the kernel answered ${strerror(e)}${tail}`);
  return new KernelError(`${what}${tail}`, e);
}

function lastLogLine(log: string): string {
  const lines = log.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('-- ') && !/^libbpf: prog '.*': -- /.test(l));
  return lines.at(-1)?.replace(/^libbpf: /, '') ?? '';
}

/**
 * The verifier's reason: the lines after the last instruction it printed (before the
 * "processed N insns" totals), plus the source line it stopped at when the object has BTF
 * line info, e.g. "invalid access to map value, value_size=8 off=32 size=8; R0 min value is
 * outside of the allowed memory range (at selftest.bpf.c:74: return *(v + 4);)".
 */
export function summarizeVerifierLog(log: string): string {
  const lines = log.split('\n').map((l) => l.replace(/^libbpf: (prog '[^']*': )?/, '').trim()).filter(Boolean);
  const begin = lines.findIndex((l) => l.includes('BEGIN PROG LOAD LOG'));
  const end = lines.findIndex((l) => l.includes('END PROG LOAD LOG'));
  const body = begin >= 0 && end > begin ? lines.slice(begin + 1, end) : lines;
  const isInsn = (l: string): boolean => /^\d+: \(/.test(l) || /^\d+: R\d/.test(l);
  let lastInsn = -1;
  body.forEach((l, i) => {
    if (isInsn(l)) lastInsn = i;
  });
  const totals = body.findIndex((l) => /^processed \d+ insns/.test(l));
  const reason = body.slice(lastInsn + 1, totals > lastInsn ? totals : undefined).filter((l) => !l.startsWith(';') && !/^(verification time|stack depth)/.test(l));
  const src = body.slice(0, lastInsn + 1).reverse().find((l) => l.startsWith('; '));
  const where = src === undefined ? '' : (/^; (.*?) @ (\S+:\d+)$/.exec(src) ?? undefined);
  const at = where ? ` (at ${where[2]}: ${where[1]})` : '';
  const text = reason.join('; ') || body.filter((l) => !/^(processed|verification time|stack depth)/.test(l)).at(-1) || 'the kernel refused the program';
  return `${text}${at}`;
}

let logLines: string[] = [];
/** Runs `fn` with libbpf's log lines collected; returns its result and the log. */
export function collectLogs<T>(fn: () => T): { result: T; log: string } {
  logLines = [];
  setLibbpfPrintSink((_level, line) => {
    if (logLines.length < 20000) logLines.push(line);
  });
  try {
    const result = fn();
    return { result, log: logLines.join('') };
  } finally {
    setLibbpfPrintSink(undefined);
  }
}

// SPDX-License-Identifier: Apache-2.0
/**
 * One error base for everything a user can cause or meet. Each carries a stable `code` (for
 * scripts and tests), a `hint` that says what to do next, and the process exit code the CLI
 * uses. Lower layers wrap with context, keeping the original as `cause`.
 */
export class TlscopeError extends Error {
  readonly code: string;
  readonly hint: string | undefined;
  readonly exitCode: number;

  constructor(code: string, message: string, opts: { hint?: string; cause?: unknown; exitCode?: number } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.code = code;
    this.hint = opts.hint;
    this.exitCode = opts.exitCode ?? 1;
  }
}

/** A flag or argument the user got wrong (exit 2, like most CLIs). */
export class UsageError extends TlscopeError {
  constructor(message: string, hint?: string) {
    super('ERR_USAGE', message, { exitCode: 2, ...(hint === undefined ? {} : { hint }) });
  }
}

/** The kernel lacks a feature; `reason` says what and, where known, since which version. */
export class NotSupportedError extends TlscopeError {
  readonly feature: string;
  readonly reason: string;
  constructor(feature: string, reason: string, cause?: unknown) {
    super('ERR_NOT_SUPPORTED', `${feature}: not supported: ${reason}`, {
      hint: 'run `tlscope doctor` to see what this kernel can do',
      exitCode: 3,
      ...(cause === undefined ? {} : { cause }),
    });
    this.feature = feature;
    this.reason = reason;
  }
}

/** Operation refused for lack of privilege. */
export class PermissionError extends TlscopeError {
  constructor(message: string, cause?: unknown, hint?: string) {
    super('ERR_PERMISSION', message, {
      hint: hint ?? 'run as root, or with the capabilities `tlscope doctor` names for the command',
      exitCode: 4,
      ...(cause === undefined ? {} : { cause }),
    });
  }
}

export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
/** The `kubectl-tlscope` executable (kubectl runs it for `kubectl tlscope …`). */
import { kubeMain, reportKubeError } from './main.js';

async function run(): Promise<void> {
  const controller = new AbortController();
  let signals = 0;
  const onSignal = (): void => {
    if (++signals > 1) process.exit(130);
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const ctx = { out: process.stdout, err: process.stderr, signal: controller.signal };
  let code: number;
  try {
    code = await kubeMain(process.argv.slice(2), ctx);
  } catch (e) {
    code = reportKubeError(e, ctx);
  }
  process.exitCode = code;
  setImmediate(() => process.exit(code));
}

void run();

// SPDX-License-Identifier: Apache-2.0
/**
 * Memory maps of a process (`/proc/PID/maps`): which files it has mapped, and which of them
 * hold code. Uprobes attach to files, so this is how tracing finds the libraries (and the
 * executable) a process actually runs, in containers too.
 */
import { DEFAULT_PROC_ROOT, readProcText } from './read.js';

export interface MemoryMapping {
  start: bigint;
  end: bigint;
  /** e.g. "r-xp" */
  perms: string;
  offset: bigint;
  /** "major:minor" in hex, as the kernel prints it */
  dev: string;
  inode: number;
  /** The path inside the process's mount namespace; undefined for anonymous mappings. */
  path: string | undefined;
  /** The file was deleted (or replaced) after it was mapped. */
  deleted: boolean;
}

/** Parses the text of /proc/PID/maps. Lines it does not understand are skipped. */
export function parseProcMaps(text: string): MemoryMapping[] {
  const out: MemoryMapping[] = [];
  for (const line of text.split('\n')) {
    // 7f1c2a000000-7f1c2a021000 r-xp 00000000 08:01 1234 /usr/lib/x86_64-linux-gnu/libssl.so.3
    const m = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) ([0-9a-f]+) ([0-9a-f]+:[0-9a-f]+) (\d+)\s*(.*)$/.exec(line);
    if (m === null) continue;
    const [, start = '0', end = '0', perms = '', offset = '0', dev = '', inode = '0', rest = ''] = m;
    let path: string | undefined;
    let deleted = false;
    if (rest.startsWith('/')) {
      path = rest;
      if (path.endsWith(' (deleted)')) {
        deleted = true;
        path = path.slice(0, -' (deleted)'.length);
      }
    }
    out.push({ start: BigInt(`0x${start}`), end: BigInt(`0x${end}`), perms, offset: BigInt(`0x${offset}`), dev, inode: Number(inode), path, deleted });
  }
  return out;
}

export function processMappings(pid: number, procRoot = DEFAULT_PROC_ROOT): MemoryMapping[] | undefined {
  const text = readProcText(`${procRoot}/${pid}/maps`);
  return text === undefined ? undefined : parseProcMaps(text);
}

/** A file some of whose pages a process maps executable. */
export interface MappedCodeFile {
  /** Path inside the process's mount namespace. */
  path: string;
  /** "dev:inode" as /proc/PID/maps gives it (the real file under overlayfs). */
  key: string;
  deleted: boolean;
  /** "start-end" of one of its mappings: `/proc/PID/map_files/<range>` opens the very file. */
  range: string;
}

/** Files mapped with execute permission, each once (by device and inode). */
export function mappedCodeFiles(mappings: readonly MemoryMapping[]): MappedCodeFile[] {
  const seen = new Map<string, MappedCodeFile>();
  for (const m of mappings) {
    if (m.path === undefined || m.inode === 0 || m.perms[2] !== 'x') continue;
    const key = `${m.dev}:${m.inode}`;
    if (seen.has(key)) continue;
    seen.set(key, { path: m.path, key, deleted: m.deleted, range: `${m.start.toString(16)}-${m.end.toString(16)}` });
  }
  return [...seen.values()];
}

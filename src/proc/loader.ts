// SPDX-License-Identifier: Apache-2.0
/**
 * The shared libraries a program will load, found the way its dynamic loader finds them, inside
 * a root filesystem (a container's `/proc/PID/root`) — without ld.so.cache, which musl images
 * and distroless roots do not have. Used before a container's first instruction, when nothing
 * is mapped yet: its first program may load a TLS library from a directory no loader searches
 * by itself (an RPATH, LD_LIBRARY_PATH in the container's environment), and a request made at
 * once is done before any mapping could be seen.
 *
 * The search order, per object that needs a library:
 * - glibc (ld-linux): DT_RPATH of the object and the program (when the object has no
 *   DT_RUNPATH), LD_LIBRARY_PATH, DT_RUNPATH, [ld.so.cache: not read], the default directories.
 * - musl (ld-musl-*): LD_LIBRARY_PATH, DT_RPATH/DT_RUNPATH (musl treats them alike; of the
 *   object, then of the program), the
 *   directories of /etc/ld-musl-ARCH.path, else /lib, /usr/local/lib, /usr/lib. Its libc.so
 *   (and the other names it reserves) is the loader itself.
 * `$ORIGIN` is the object's own directory. Symlinks are followed inside the root (an absolute
 * link target means the root's path, not the host's). Not covered: LD_PRELOAD, dlopen'ed
 * libraries (they are found by their mappings, later), hwcaps subdirectories, setuid rules.
 */
import { lstatSync, readFileSync, readlinkSync } from 'node:fs';
import { posix } from 'node:path';
import { ElfFile } from '../elf/elf.js';

const PT_INTERP = 3;
const DT_NEEDED = 1;
const DT_RPATH = 15;
const DT_RUNPATH = 29;

export interface DynamicInfo {
  /** PT_INTERP: the loader the kernel starts, e.g. /lib64/ld-linux-x86-64.so.2 */
  interp: string | undefined;
  needed: string[];
  rpath: string[];
  runpath: string[];
}

function cstr(b: Buffer, at: number): string {
  const end = b.indexOf(0, at);
  return b.subarray(at, end < 0 ? b.length : end).toString('latin1');
}

/** PT_INTERP and the DT_NEEDED, DT_RPATH, DT_RUNPATH entries (from .dynamic and its string table). */
export function dynamicInfo(elf: ElfFile): DynamicInfo {
  const out: DynamicInfo = { interp: undefined, needed: [], rpath: [], runpath: [] };
  const interp = elf.segments.find((s) => s.type === PT_INTERP);
  if (interp !== undefined && interp.filesz > 0n && interp.filesz < 4096n) out.interp = cstr(elf.readAt(interp.offset, Number(interp.filesz)), 0);
  const dyn = elf.sections.find((s) => s.name === '.dynamic');
  const strs = dyn === undefined ? undefined : elf.sections[dyn.link];
  if (dyn === undefined || strs === undefined) return out;
  const d = elf.readAt(dyn.offset, dyn.size);
  const s = elf.readAt(strs.offset, strs.size);
  for (let i = 0; i + 16 <= d.length; i += 16) {
    const tag = d.readBigInt64LE(i);
    if (tag === 0n) break;
    const val = Number(d.readBigUInt64LE(i + 8));
    if (val >= s.length) continue;
    if (tag === BigInt(DT_NEEDED)) out.needed.push(cstr(s, val));
    else if (tag === BigInt(DT_RPATH)) out.rpath.push(...cstr(s, val).split(':').filter((x) => x !== ''));
    else if (tag === BigInt(DT_RUNPATH)) out.runpath.push(...cstr(s, val).split(':').filter((x) => x !== ''));
  }
  return out;
}

/**
 * `path` (absolute, inside `root`) with every symlink followed inside `root`; undefined when it
 * does not exist or loops. The result is a path inside the root.
 */
export function resolveInRoot(root: string, path: string): string | undefined {
  const todo = path.split('/').filter((c) => c !== '' && c !== '.');
  const done: string[] = [];
  let links = 0;
  while (todo.length > 0) {
    const c = todo.shift() as string;
    if (c === '..') {
      done.pop();
      continue;
    }
    const here = `/${[...done, c].join('/')}`;
    let st;
    try {
      st = lstatSync(`${root}${here}`);
    } catch {
      return undefined;
    }
    if (!st.isSymbolicLink()) {
      done.push(c);
      continue;
    }
    if (++links > 40) return undefined;
    const target = readlinkSync(`${root}${here}`);
    if (target.startsWith('/')) done.length = 0;
    todo.unshift(...target.split('/').filter((x) => x !== '' && x !== '.'));
  }
  return `/${done.join('/')}`;
}

function isFile(root: string, path: string): boolean {
  try {
    return lstatSync(`${root}${path}`).isFile();
  } catch {
    return false;
  }
}

/** Which loader: musl's by its name, else glibc's rules (also for a static program, which loads nothing). */
export function loaderKind(interp: string | undefined): 'musl' | 'glibc' {
  return interp !== undefined && /ld-musl-/.test(posix.basename(interp)) ? 'musl' : 'glibc';
}

const GLIBC_DEFAULT = ['/lib/x86_64-linux-gnu', '/usr/lib/x86_64-linux-gnu', '/lib64', '/usr/lib64', '/lib', '/usr/lib'];
const MUSL_DEFAULT = ['/lib', '/usr/local/lib', '/usr/lib'];
/** Names musl's loader answers with itself. */
const MUSL_RESERVED = new Set(['libc.so', 'libdl.so', 'libm.so', 'libpthread.so', 'librt.so', 'libresolv.so', 'libutil.so', 'libxnet.so', 'libcrypt.so']);

function muslDirs(root: string, interp: string): string[] {
  const arch = /ld-musl-([^.]+)\.so/.exec(posix.basename(interp))?.[1] ?? 'x86_64';
  try {
    return readFileSync(`${root}/etc/ld-musl-${arch}.path`, 'utf8').split(/[:\n]/).map((x) => x.trim()).filter((x) => x.startsWith('/'));
  } catch {
    return MUSL_DEFAULT;
  }
}

export interface ProgramEnvironment {
  /** `KEY=value` entries, as an OCI spec's process.env */
  env: readonly string[];
  cwd?: string;
}

const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

function envValue(env: readonly string[], key: string): string | undefined {
  const e = env.find((x) => x.startsWith(`${key}=`));
  return e?.slice(key.length + 1);
}

/** The program file `arg0` names, as the OCI runtime finds it (PATH of its environment); a path inside the root. */
export function programPath(root: string, arg0: string, p: ProgramEnvironment): string | undefined {
  if (arg0.includes('/')) return resolveInRoot(root, posix.resolve(p.cwd ?? '/', arg0));
  for (const dir of (envValue(p.env, 'PATH') ?? DEFAULT_PATH).split(':')) {
    if (!dir.startsWith('/')) continue;
    const r = resolveInRoot(root, `${dir}/${arg0}`);
    if (r !== undefined && isFile(root, r)) return r;
  }
  return undefined;
}

const MAX_LIBRARIES = 256;

/**
 * The libraries `program` (a path inside `root`) loads at start, breadth-first as the loader
 * does, each a resolved path inside the root. Libraries not found are left out (the loader
 * would fail). Throws what ElfFile.open throws for the program itself.
 */
export function programLibraries(root: string, program: string, p: ProgramEnvironment): string[] {
  const elf = ElfFile.open(`${root}${program}`);
  let main: DynamicInfo;
  try {
    main = dynamicInfo(elf);
  } finally {
    elf.close();
  }
  const kind = loaderKind(main.interp);
  const ldLibraryPath = (envValue(p.env, 'LD_LIBRARY_PATH') ?? '').split(/[:;]/).filter((x) => x !== '');
  const defaults = kind === 'musl' ? muslDirs(root, main.interp ?? '') : GLIBC_DEFAULT;
  const origin = (dirs: readonly string[], object: string): string[] => dirs.map((d) => d.replace(/\$(ORIGIN\b|\{ORIGIN\})/g, posix.dirname(object)));
  const found: string[] = [];
  const seen = new Set<string>();
  const names = new Set<string>();
  const queue: { object: string; info: DynamicInfo }[] = [{ object: program, info: main }];
  const programRpath = main.runpath.length === 0 ? origin(main.rpath, program) : [];
  // musl walks up the chain of objects that needed a library, each one's RPATH/RUNPATH; the
  // program's stands for the chain here (the objects in between rarely carry their own)
  const programMusl = origin([...main.rpath, ...main.runpath], program);
  while (queue.length > 0 && found.length < MAX_LIBRARIES) {
    const { object, info } = queue.shift() as { object: string; info: DynamicInfo };
    const own = origin(info.rpath, object);
    const run = origin(info.runpath, object);
    const dirs = kind === 'musl'
      ? [...ldLibraryPath, ...own, ...run, ...(object === program ? [] : programMusl), ...defaults]
      : [...(info.runpath.length === 0 ? [...own, ...(object === program ? [] : programRpath)] : []), ...ldLibraryPath, ...run, ...defaults];
    for (const name of info.needed) {
      if (names.has(name)) continue;
      names.add(name);
      if (kind === 'musl' && (MUSL_RESERVED.has(name.replace(/\.so(\.\d+)*$/, '.so')) || /^ld-musl-/.test(name))) continue;
      let path: string | undefined;
      if (name.includes('/')) {
        path = resolveInRoot(root, name);
      } else {
        for (const dir of dirs) {
          const r = dir.startsWith('/') ? resolveInRoot(root, `${dir}/${name}`) : undefined;
          if (r !== undefined && isFile(root, r)) {
            path = r;
            break;
          }
        }
      }
      if (path === undefined || seen.has(path)) continue;
      seen.add(path);
      found.push(path);
      try {
        const lib = ElfFile.open(`${root}${path}`);
        try {
          queue.push({ object: path, info: dynamicInfo(lib) });
        } finally {
          lib.close();
        }
      } catch {
        // not an ELF file the loader could load either
      }
    }
  }
  return found;
}

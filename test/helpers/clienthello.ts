// SPDX-License-Identifier: Apache-2.0
/**
 * Crafts ClientHello byte streams for tests and benchmarks: any server name (or none), ALPN,
 * supported_versions, GREASE, a post-quantum-sized key share that pushes the name past the
 * first 1500 bytes, padding to an exact size, any extension order, record-layer fragmentation,
 * and deliberate corruptions (a wrong length at any level, truncation, bad names, bad record
 * type). Everything random comes from a seeded generator, so a seed names a byte stream.
 *
 * Also splits a stream into TCP-like segments with sequence numbers (wrapping at 2^32),
 * optionally reordered, duplicated and overlapped, for the reassembler's tests.
 */

export const GREASE_VALUES: readonly number[] = Array.from({ length: 16 }, (_, i) => (i << 12) | (i << 4) | 0x0a0a);

const EXT = {
  serverName: 0x0000,
  statusRequest: 0x0005,
  supportedGroups: 0x000a,
  ecPointFormats: 0x000b,
  signatureAlgorithms: 0x000d,
  alpn: 0x0010,
  padding: 0x0015,
  extendedMasterSecret: 0x0017,
  sessionTicket: 0x0023,
  supportedVersions: 0x002b,
  pskKeyExchangeModes: 0x002d,
  keyShare: 0x0033,
  encryptedClientHello: 0xfe0d,
  renegotiationInfo: 0xff01,
} as const;

const GROUP_X25519 = 0x001d;
const GROUP_SECP256R1 = 0x0017;
const GROUP_SECP384R1 = 0x0018;
export const GROUP_X25519_MLKEM768 = 0x11ec;
/** X25519MLKEM768 client share: 1184-byte ML-KEM-768 key + 32-byte X25519 key. */
export const X25519_MLKEM768_SHARE_LENGTH = 1216;

const DEFAULT_CIPHER_SUITES: readonly number[] = [
  0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013, 0xc014, 0x009c, 0x009d, 0x002f, 0x0035,
];
const SIGNATURE_ALGORITHMS: readonly number[] = [0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601];

/** Length fields a corruption can shift; each names one level of the ClientHello's nesting. */
export type LengthField =
  | 'record'
  | 'handshake'
  | 'sessionId'
  | 'cipherSuites'
  | 'compressionMethods'
  | 'extensions'
  | 'serverNameExtension'
  | 'serverNameList'
  | 'hostName'
  | 'alpnExtension'
  | 'alpnList'
  | 'alpnProtocol'
  | 'supportedVersionsExtension'
  | 'supportedVersionsList'
  | 'keyShareExtension'
  | 'keyShareList'
  | 'keyShareEntry';

export const LENGTH_FIELDS: readonly LengthField[] = [
  'record',
  'handshake',
  'sessionId',
  'cipherSuites',
  'compressionMethods',
  'extensions',
  'serverNameExtension',
  'serverNameList',
  'hostName',
  'alpnExtension',
  'alpnList',
  'alpnProtocol',
  'supportedVersionsExtension',
  'supportedVersionsList',
  'keyShareExtension',
  'keyShareList',
  'keyShareEntry',
];

export interface KeyShareSpec {
  group: number;
  length: number;
}

export interface ExtensionSpec {
  type: number;
  data: Uint8Array;
}

export interface ClientHelloSpec {
  /** Seeds random, session id, key material, GREASE picks and shuffles (default 1). */
  seed?: number;
  /** Record content type (default 22, handshake); anything else is a corruption. */
  recordType?: number;
  /** legacy_record_version (default 0x0301, what OpenSSL and browsers send). */
  recordVersion?: number;
  /** legacy_version in the hello (default 0x0303). */
  legacyVersion?: number;
  /** Default 32 (a TLS 1.3 middlebox-compatibility session id). */
  sessionIdLength?: number;
  cipherSuites?: readonly number[];
  /**
   * host_name to send; a string is written as Latin-1 bytes (so non-ASCII and control
   * characters can be tested). Omitted: no server_name extension.
   */
  serverName?: string | Uint8Array;
  /** ALPN protocols; omitted or empty: no ALPN extension. */
  alpn?: readonly string[];
  /** Default [0x0304, 0x0303]; empty: no supported_versions extension (a TLS 1.2 hello). */
  supportedVersions?: readonly number[];
  /** Default one 32-byte X25519 share. */
  keyShares?: readonly KeyShareSpec[];
  /** Put a 1216-byte X25519MLKEM768 share first, as Chrome and OpenSSL 3.5 do. */
  postQuantum?: boolean;
  /** Add GREASE values (RFC 8701) to suites, extensions, groups, versions and key shares. */
  grease?: boolean;
  /** Add an encrypted_client_hello extension with a seeded payload of this many bytes. */
  echPayloadLength?: number;
  extraExtensions?: readonly ExtensionSpec[];
  /**
   * 'as-built' (default), 'shuffle' (seeded, like Chrome's permutation), or a list of extension
   * types: those come first in that order, the rest keep their order after them.
   */
  extensionOrder?: 'as-built' | 'shuffle' | readonly number[];
  /** Add a padding extension so the handshake message (header included) is exactly this long. */
  paddedLength?: number;
  /**
   * Record-layer fragmentation: a number of records of near-equal size, or explicit fragment
   * sizes (used until the message runs out; a remainder becomes one more record). Default: one
   * record (split at 16 KiB).
   */
  records?: number | readonly number[];
  /** Adds this much to the named length fields as written (mod the field's width). */
  lengthDelta?: Partial<Record<LengthField, number>>;
}

export interface BuiltClientHello {
  /** The record stream: what a client writes to the socket. */
  bytes: Uint8Array;
  /** The handshake message alone (header included). */
  handshake: Uint8Array;
  /** Extension types in the order written. */
  extensionTypes: number[];
  /** Offset of the host_name bytes in `bytes`, if a name was sent in one piece. */
  serverNameOffset: number | undefined;
  /** Record fragment sizes used. */
  recordSizes: number[];
}

/** Builds a ClientHello record stream from a spec; see ClientHelloSpec for the defaults. */
export function buildClientHello(spec: ClientHelloSpec = {}): BuiltClientHello {
  const random = seededRandom(spec.seed ?? 1);
  const deltas = spec.lengthDelta ?? {};
  const greasePicks = spec.grease === true ? pickDistinctGrease(random, 6) : [];
  const extensions = buildExtensions(spec, random, greasePicks, deltas);
  const { body, hostNameOffset, extensionTypes } = helloBody(spec, random, greasePicks, deltas, extensions);
  const handshake = new ByteWriter();
  handshake.u8(1);
  handshake.u24(body.length + (deltas.handshake ?? 0));
  const bodyOffset = handshake.length;
  handshake.bytes(body);
  const message = handshake.finish();
  const recordSizes = fragmentSizes(message.length, spec.records);
  const bytes = wrapInRecords(message, recordSizes, spec.recordType ?? 22, spec.recordVersion ?? 0x0301, deltas.record ?? 0);
  const nameOffsetInMessage = hostNameOffset === undefined ? undefined : bodyOffset + hostNameOffset;
  return {
    bytes,
    handshake: message,
    extensionTypes,
    serverNameOffset: nameOffsetInMessage === undefined ? undefined : streamOffset(nameOffsetInMessage, recordSizes),
    recordSizes,
  };
}

/** Every corruption a test can ask for; each must make the parser say invalid or need-more. */
export type Corruption =
  | { kind: 'truncate'; at: number }
  | { kind: 'length'; field: LengthField; delta: number }
  | { kind: 'oversized-name'; length: number }
  | { kind: 'non-printable-name'; position: number; byte: number }
  | { kind: 'record-type'; type: number };

/**
 * The stream of `spec` with one corruption applied. Truncation cuts the built stream;
 * the others change what is built. Throws when the corruption does not apply to the spec
 * (e.g. an ALPN length on a hello without ALPN), so tests cannot silently test nothing.
 */
export function buildCorruptedClientHello(spec: ClientHelloSpec, corruption: Corruption): Uint8Array {
  switch (corruption.kind) {
    case 'truncate':
      return buildClientHello(spec).bytes.slice(0, corruption.at);
    case 'length':
      if (!fieldExists(spec, corruption.field)) throw new Error(`length field ${corruption.field} is not in this hello`);
      return buildClientHello({ ...spec, lengthDelta: { ...spec.lengthDelta, [corruption.field]: corruption.delta } }).bytes;
    case 'oversized-name':
      return buildClientHello({ ...withoutPadding(spec), serverName: 'a'.repeat(corruption.length) }).bytes;
    case 'non-printable-name': {
      const name = latin1Bytes(spec.serverName ?? 'example.test');
      const bad = new Uint8Array(Math.max(name.length, corruption.position + 1)).fill(0x61);
      bad.set(name);
      bad[corruption.position] = corruption.byte;
      return buildClientHello({ ...withoutPadding(spec), serverName: bad }).bytes;
    }
    case 'record-type':
      return buildClientHello({ ...spec, recordType: corruption.type }).bytes;
  }
}

/** A longer name may not fit the padded size any more. */
function withoutPadding(spec: ClientHelloSpec): ClientHelloSpec {
  const copy = { ...spec };
  delete copy.paddedLength;
  return copy;
}

/** Whether the hello `spec` describes has the length field, so corrupting it changes bytes. */
export function fieldExists(spec: ClientHelloSpec, field: LengthField): boolean {
  switch (field) {
    case 'serverNameExtension':
    case 'serverNameList':
    case 'hostName':
      return spec.serverName !== undefined;
    case 'alpnExtension':
    case 'alpnList':
    case 'alpnProtocol':
      return (spec.alpn ?? []).length > 0;
    case 'supportedVersionsExtension':
    case 'supportedVersionsList':
      return (spec.supportedVersions ?? [0x0304]).length > 0;
    case 'keyShareEntry':
      return keyShares(spec, []).length > 0;
    default:
      return true;
  }
}

// ---------------------------------------------------------------------------------------------
// TCP-like segmentation

export interface TcpSegment {
  /** Sequence number of the first payload byte (u32, wraps). */
  seq: number;
  payload: Uint8Array;
}

export interface SegmentOptions {
  /** Sequence number of the stream's first byte (default: seeded, anywhere in u32). */
  initialSeq?: number;
  /** Segment sizes in order (a remainder is cut by `mss`); default: all by `mss`. */
  sizes?: readonly number[];
  /** Default 1460 (Ethernet MTU, IPv4, no TCP options). */
  mss?: number;
  /** Shuffle the segments (seeded). */
  shuffle?: boolean;
  /** Send every segment twice, as loopback capture shows it. */
  duplicate?: boolean;
  /** Add this many retransmissions of random byte ranges (consistent bytes, new boundaries). */
  overlaps?: number;
  seed?: number;
}

/** Cuts a stream into segments with wrapping sequence numbers. */
export function splitIntoSegments(stream: Uint8Array, options: SegmentOptions = {}): TcpSegment[] {
  const random = seededRandom(options.seed ?? 7);
  const initialSeq = options.initialSeq ?? Math.floor(random() * 2 ** 32);
  const mss = options.mss ?? 1460;
  const segments: TcpSegment[] = [];
  let offset = 0;
  for (const size of options.sizes ?? []) {
    if (offset >= stream.length) break;
    const end = Math.min(stream.length, offset + Math.max(1, size));
    segments.push({ seq: (initialSeq + offset) >>> 0, payload: stream.slice(offset, end) });
    offset = end;
  }
  for (; offset < stream.length; offset += mss) {
    segments.push({ seq: (initialSeq + offset) >>> 0, payload: stream.slice(offset, Math.min(stream.length, offset + mss)) });
  }
  for (let i = 0; i < (options.overlaps ?? 0) && stream.length > 0; i++) {
    const start = Math.floor(random() * stream.length);
    const end = start + 1 + Math.floor(random() * (stream.length - start));
    segments.push({ seq: (initialSeq + start) >>> 0, payload: stream.slice(start, end) });
  }
  const all = options.duplicate === true ? segments.flatMap((s) => [s, { seq: s.seq, payload: s.payload.slice() }]) : segments;
  if (options.shuffle === true) shuffleInPlace(all, random);
  return all;
}

// ---------------------------------------------------------------------------------------------
// Seeded randomness

/** xorshift32: small, fast, good enough for test data; never 0 state. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0 || 0x9e3779b9;
  return () => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state / 2 ** 32;
  };
}

export function shuffleInPlace<T>(items: T[], random: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const tmp = items[i]!;
    items[i] = items[j]!;
    items[j] = tmp;
  }
  return items;
}

function randomBytes(random: () => number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = Math.floor(random() * 256);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Building blocks

type Deltas = Partial<Record<LengthField, number>>;

function helloBody(
  spec: ClientHelloSpec,
  random: () => number,
  grease: readonly number[],
  deltas: Deltas,
  extensions: readonly BuiltExtension[],
): { body: Uint8Array; hostNameOffset: number | undefined; extensionTypes: number[] } {
  const w = new ByteWriter();
  w.u16(spec.legacyVersion ?? 0x0303);
  w.bytes(randomBytes(random, 32));
  const sessionIdLength = spec.sessionIdLength ?? 32;
  w.u8(sessionIdLength + (deltas.sessionId ?? 0));
  w.bytes(randomBytes(random, sessionIdLength));
  const suites = [...(spec.grease === true ? [grease[0]!] : []), ...(spec.cipherSuites ?? DEFAULT_CIPHER_SUITES)];
  w.u16(suites.length * 2 + (deltas.cipherSuites ?? 0));
  for (const suite of suites) w.u16(suite);
  w.u8(1 + (deltas.compressionMethods ?? 0));
  w.u8(0);
  // Padding is sized before ordering (its size does not depend on order), so it can go anywhere.
  const ordered = orderExtensions(padTo(extensions, spec.paddedLength, w.length), spec.extensionOrder, random);
  const block = extensionBlock(ordered);
  w.u16(block.length + (deltas.extensions ?? 0));
  const blockOffset = w.length;
  w.bytes(block);
  const inBlock = hostNameOffsetInBlock(ordered);
  return {
    body: w.finish(),
    hostNameOffset: inBlock === undefined ? undefined : blockOffset + inBlock,
    extensionTypes: ordered.map((e) => e.type),
  };
}

/** The host_name bytes sit after the extension header (4), list length (2), type (1), length (2). */
function hostNameOffsetInBlock(extensions: readonly BuiltExtension[]): number | undefined {
  let offset = 0;
  for (const e of extensions) {
    if (e.type === EXT.serverName) return offset + 4 + 5;
    offset += 4 + e.data.length;
  }
  return undefined;
}

/** Adds a padding extension (last, unless the order moves it) to hit the target size. */
function padTo(extensions: readonly BuiltExtension[], paddedLength: number | undefined, bodySoFar: number): BuiltExtension[] {
  if (paddedLength === undefined) return [...extensions];
  const unpadded = 4 + bodySoFar + 2 + extensionBlock(extensions).length;
  const paddingData = paddedLength - unpadded - 4;
  if (paddingData < 0) throw new Error(`hello is already ${unpadded} bytes, cannot pad to ${paddedLength}`);
  return [...extensions, { type: EXT.padding, data: new Uint8Array(paddingData) }];
}

function extensionBlock(extensions: readonly BuiltExtension[]): Uint8Array {
  const w = new ByteWriter();
  for (const e of extensions) {
    w.u16(e.type);
    w.u16(e.data.length + (e.lengthDelta ?? 0));
    w.bytes(e.data);
  }
  return w.finish();
}

/** An extension as built, with the corruption of its own length field if one was asked for. */
interface BuiltExtension extends ExtensionSpec {
  lengthDelta?: number;
}

function withDelta(e: ExtensionSpec, delta: number | undefined): BuiltExtension {
  return delta === undefined ? e : { ...e, lengthDelta: delta };
}

function buildExtensions(spec: ClientHelloSpec, random: () => number, grease: readonly number[], deltas: Deltas): BuiltExtension[] {
  const list: BuiltExtension[] = [];
  if (spec.grease === true) list.push({ type: grease[1]!, data: new Uint8Array(0) });
  if (spec.serverName !== undefined) list.push(withDelta(serverNameExtension(spec.serverName, deltas), deltas.serverNameExtension));
  list.push({ type: EXT.extendedMasterSecret, data: new Uint8Array(0) });
  list.push({ type: EXT.renegotiationInfo, data: Uint8Array.of(0) });
  list.push({ type: EXT.supportedGroups, data: u16ListWithLength(groups(spec, grease)) });
  list.push({ type: EXT.ecPointFormats, data: Uint8Array.of(1, 0) });
  list.push({ type: EXT.sessionTicket, data: new Uint8Array(0) });
  if ((spec.alpn ?? []).length > 0) list.push(withDelta(alpnExtension(spec.alpn ?? [], deltas), deltas.alpnExtension));
  list.push({ type: EXT.statusRequest, data: Uint8Array.of(1, 0, 0, 0, 0) });
  list.push({ type: EXT.signatureAlgorithms, data: u16ListWithLength(SIGNATURE_ALGORITHMS) });
  list.push(withDelta(keyShareExtension(keyShares(spec, grease), random, deltas), deltas.keyShareExtension));
  list.push({ type: EXT.pskKeyExchangeModes, data: Uint8Array.of(1, 1) });
  const versions = supportedVersions(spec, grease);
  if (versions.length > 0) list.push(withDelta(supportedVersionsExtension(versions, deltas), deltas.supportedVersionsExtension));
  if (spec.echPayloadLength !== undefined) list.push({ type: EXT.encryptedClientHello, data: randomBytes(random, spec.echPayloadLength) });
  list.push(...(spec.extraExtensions ?? []));
  if (spec.grease === true) list.push({ type: grease[2]!, data: Uint8Array.of(0) });
  return list;
}

function orderExtensions(list: BuiltExtension[], order: ClientHelloSpec['extensionOrder'], random: () => number): BuiltExtension[] {
  if (order === undefined || order === 'as-built') return list;
  if (order === 'shuffle') return shuffleInPlace([...list], random);
  const rank = (e: BuiltExtension): number => {
    const i = order.indexOf(e.type);
    return i < 0 ? order.length : i;
  };
  return list.map((e, i) => ({ e, i })).sort((a, b) => rank(a.e) - rank(b.e) || a.i - b.i).map(({ e }) => e);
}

function serverNameExtension(name: string | Uint8Array, deltas: Deltas): ExtensionSpec {
  const nameBytes = latin1Bytes(name);
  const w = new ByteWriter();
  w.u16(3 + nameBytes.length + (deltas.serverNameList ?? 0));
  w.u8(0);
  w.u16(nameBytes.length + (deltas.hostName ?? 0));
  w.bytes(nameBytes);
  return { type: EXT.serverName, data: w.finish() };
}

function alpnExtension(protocols: readonly string[], deltas: Deltas): ExtensionSpec {
  const names = protocols.map(latin1Bytes);
  const w = new ByteWriter();
  w.u16(names.reduce((sum, n) => sum + 1 + n.length, 0) + (deltas.alpnList ?? 0));
  names.forEach((n, i) => {
    w.u8(n.length + (i === 0 ? deltas.alpnProtocol ?? 0 : 0));
    w.bytes(n);
  });
  return { type: EXT.alpn, data: w.finish() };
}

function supportedVersionsExtension(versions: readonly number[], deltas: Deltas): ExtensionSpec {
  const w = new ByteWriter();
  w.u8(versions.length * 2 + (deltas.supportedVersionsList ?? 0));
  for (const v of versions) w.u16(v);
  return { type: EXT.supportedVersions, data: w.finish() };
}

function keyShareExtension(shares: readonly KeyShareSpec[], random: () => number, deltas: Deltas): ExtensionSpec {
  const entries = new ByteWriter();
  shares.forEach((share, i) => {
    entries.u16(share.group);
    entries.u16(share.length + (i === 0 ? deltas.keyShareEntry ?? 0 : 0));
    entries.bytes(randomBytes(random, share.length));
  });
  const body = entries.finish();
  const w = new ByteWriter();
  w.u16(body.length + (deltas.keyShareList ?? 0));
  w.bytes(body);
  return { type: EXT.keyShare, data: w.finish() };
}

function keyShares(spec: ClientHelloSpec, grease: readonly number[]): KeyShareSpec[] {
  const shares = [...(spec.keyShares ?? [{ group: GROUP_X25519, length: 32 }])];
  if (spec.postQuantum === true) shares.unshift({ group: GROUP_X25519_MLKEM768, length: X25519_MLKEM768_SHARE_LENGTH });
  if (spec.grease === true && grease.length > 3) shares.unshift({ group: grease[3]!, length: 1 });
  return shares;
}

function groups(spec: ClientHelloSpec, grease: readonly number[]): number[] {
  const list = [GROUP_X25519, GROUP_SECP256R1, GROUP_SECP384R1];
  if (spec.postQuantum === true) list.unshift(GROUP_X25519_MLKEM768);
  if (spec.grease === true) list.unshift(grease[3]!);
  return list;
}

function supportedVersions(spec: ClientHelloSpec, grease: readonly number[]): number[] {
  const versions = [...(spec.supportedVersions ?? [0x0304, 0x0303])];
  if (spec.grease === true && versions.length > 0) versions.unshift(grease[4]!);
  return versions;
}

function pickDistinctGrease(random: () => number, count: number): number[] {
  return shuffleInPlace([...GREASE_VALUES], random).slice(0, count);
}

function u16ListWithLength(values: readonly number[]): Uint8Array {
  const w = new ByteWriter();
  w.u16(values.length * 2);
  for (const v of values) w.u16(v);
  return w.finish();
}

function fragmentSizes(total: number, records: ClientHelloSpec['records']): number[] {
  if (Array.isArray(records)) return explicitFragmentSizes(total, records);
  const count = typeof records === 'number' ? Math.min(Math.max(1, records), total) : Math.ceil(total / 16384);
  const sizes: number[] = [];
  for (let i = 0; i < count; i++) sizes.push(Math.floor((total * (i + 1)) / count) - Math.floor((total * i) / count));
  return sizes;
}

/** Uses the given sizes until the message runs out (the last one cut short); a remainder is split by default. */
function explicitFragmentSizes(total: number, requested: readonly number[]): number[] {
  const sizes: number[] = [];
  let used = 0;
  for (const size of requested) {
    if (used >= total) break;
    if (size <= 0) continue;
    const taken = Math.min(size, total - used);
    sizes.push(taken);
    used += taken;
  }
  return used < total ? [...sizes, ...fragmentSizes(total - used, undefined)] : sizes;
}

function wrapInRecords(message: Uint8Array, sizes: readonly number[], type: number, version: number, firstRecordDelta: number): Uint8Array {
  const w = new ByteWriter();
  let offset = 0;
  sizes.forEach((size, i) => {
    w.u8(type);
    w.u16(version);
    w.u16(size + (i === 0 ? firstRecordDelta : 0));
    w.bytes(message.subarray(offset, offset + size));
    offset += size;
  });
  return w.finish();
}

function streamOffset(messageOffset: number, recordSizes: readonly number[]): number {
  let records = 1;
  let covered = 0;
  for (const size of recordSizes) {
    if (messageOffset < covered + size) break;
    covered += size;
    records++;
  }
  return messageOffset + 5 * records;
}

export function latin1Bytes(value: string | Uint8Array): Uint8Array {
  if (typeof value !== 'string') return value;
  const out = new Uint8Array(value.length);
  for (let i = 0; i < value.length; i++) out[i] = value.charCodeAt(i) & 0xff;
  return out;
}

/** Append-only big-endian writer; lengths written wrap to the field width, like a bad encoder. */
class ByteWriter {
  private buffer = new Uint8Array(512);
  length = 0;

  private reserve(n: number): void {
    if (this.length + n <= this.buffer.length) return;
    const grown = new Uint8Array(Math.max(this.buffer.length * 2, this.length + n));
    grown.set(this.buffer.subarray(0, this.length));
    this.buffer = grown;
  }

  u8(value: number): void {
    this.reserve(1);
    this.buffer[this.length++] = value & 0xff;
  }

  u16(value: number): void {
    this.u8(value >>> 8);
    this.u8(value);
  }

  u24(value: number): void {
    this.u8(value >>> 16);
    this.u16(value);
  }

  bytes(data: Uint8Array): void {
    this.reserve(data.length);
    this.buffer.set(data, this.length);
    this.length += data.length;
  }

  finish(): Uint8Array {
    return this.buffer.slice(0, this.length);
  }
}

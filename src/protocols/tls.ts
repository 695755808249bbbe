// SPDX-License-Identifier: Apache-2.0
/**
 * TLS record layer and ClientHello parsing (RFC 8446 §4.1.2, RFC 5246 §7.4.1.2, RFC 6066,
 * RFC 7301). Pure functions over `Uint8Array`s: no I/O, no exception ever leaves them.
 *
 * The bytes come from the network, from any process on the host, so hostile input is the
 * normal case. Every length is checked against the structure that encloses it, nested lengths
 * must agree exactly, and anything inconsistent is reported as `invalid` with the first
 * inconsistency found — never as a hello with a wrong or garbled name.
 *
 * A prefix of a stream is validated as far as it goes: `need-more` means "everything so far is
 * a well-formed beginning of a ClientHello", so garbage is rejected on its first bad byte
 * instead of being buffered while waiting for lengths that will never be satisfied.
 */

export const ContentType = {
  changeCipherSpec: 20,
  alert: 21,
  handshake: 22,
  applicationData: 23,
  heartbeat: 24,
} as const;

export const HandshakeType = { clientHello: 1, serverHello: 2 } as const;

export const TlsVersion = {
  SSL3_0: 0x0300,
  TLS1_0: 0x0301,
  TLS1_1: 0x0302,
  TLS1_2: 0x0303,
  TLS1_3: 0x0304,
} as const;

export const ExtensionType = {
  serverName: 0x0000,
  supportedGroups: 0x000a,
  signatureAlgorithms: 0x000d,
  alpn: 0x0010,
  padding: 0x0015,
  preSharedKey: 0x0029,
  supportedVersions: 0x002b,
  pskKeyExchangeModes: 0x002d,
  keyShare: 0x0033,
  encryptedClientHello: 0xfe0d,
} as const;

export const NamedGroup = {
  secp256r1: 0x0017,
  secp384r1: 0x0018,
  x25519: 0x001d,
  /** Hybrid post-quantum group (draft-kwiatkowski-tls-ecdhe-mlkem): a 1216-byte client share. */
  x25519MLKEM768: 0x11ec,
} as const;

export const RECORD_HEADER_LENGTH = 5;
/** Largest plaintext record fragment (RFC 8446 §5.1); a ClientHello is always plaintext. */
export const MAX_PLAINTEXT_FRAGMENT = 1 << 14;
/** Largest protected record fragment any TLS version allows (TLS 1.2: 2^14 + 2048). */
export const MAX_RECORD_FRAGMENT = MAX_PLAINTEXT_FRAGMENT + 2048;
/** DNS names are at most 255 bytes; a longer host_name is malformed, not truncated. */
export const MAX_HOST_NAME_LENGTH = 255;
const HANDSHAKE_HEADER_LENGTH = 4;
const KNOWN_COMPRESSION_METHODS: ReadonlySet<number> = new Set([0, 1, 64]);
const RANDOM_LENGTH = 32;
const MAX_SESSION_ID_LENGTH = 32;
/**
 * The largest body a ClientHello's own length fields can describe: version, random, a 32-byte
 * session id, 65534 bytes of cipher suites, 255 compression methods and a full extensions block.
 * A handshake header claiming more is garbage, whatever follows.
 */
const MAX_CLIENT_HELLO_BODY = 2 + RANDOM_LENGTH + 1 + MAX_SESSION_ID_LENGTH + 2 + 65534 + 1 + 255 + 2 + 65535;

const VERSION_NAMES: ReadonlyMap<number, string> = new Map([
  [TlsVersion.SSL3_0, 'SSL3.0'],
  [TlsVersion.TLS1_0, 'TLS1.0'],
  [TlsVersion.TLS1_1, 'TLS1.1'],
  [TlsVersion.TLS1_2, 'TLS1.2'],
  [TlsVersion.TLS1_3, 'TLS1.3'],
]);

/** IANA names, used in `invalid` reasons. */
const EXTENSION_NAMES: ReadonlyMap<number, string> = new Map([
  [ExtensionType.serverName, 'server_name'],
  [ExtensionType.supportedGroups, 'supported_groups'],
  [ExtensionType.signatureAlgorithms, 'signature_algorithms'],
  [ExtensionType.alpn, 'application_layer_protocol_negotiation'],
  [ExtensionType.padding, 'padding'],
  [ExtensionType.preSharedKey, 'pre_shared_key'],
  [ExtensionType.supportedVersions, 'supported_versions'],
  [ExtensionType.pskKeyExchangeModes, 'psk_key_exchange_modes'],
  [ExtensionType.keyShare, 'key_share'],
  [ExtensionType.encryptedClientHello, 'encrypted_client_hello'],
]);

/** "TLS1.3" for 0x0304, "GREASE" for reserved GREASE values, "0x7f1c" for anything else. */
export function tlsVersionName(version: number): string {
  const known = VERSION_NAMES.get(version);
  if (known !== undefined) return known;
  if (isGrease(version)) return 'GREASE';
  return hex16(version);
}

/** GREASE values (RFC 8701) are 0x0a0a, 0x1a1a … 0xfafa: both bytes equal, low nibbles 0xa. */
export function isGrease(value: number): boolean {
  return (value & 0x0f0f) === 0x0a0a && value >> 8 === (value & 0xff);
}

export interface TlsRecordHeader {
  contentType: number;
  /** legacy_record_version, e.g. 0x0301 */
  version: number;
  /** Length of the fragment that follows the 5-byte header. */
  length: number;
}

export interface NeedMore {
  status: 'need-more';
  /**
   * The smallest total stream length (counted from the first byte given) that could let parsing
   * finish. Exact when the missing bytes lie in a record whose header has arrived; otherwise
   * a lower bound (later records add their own 5-byte headers).
   */
  needed: number;
}

export interface Invalid {
  status: 'invalid';
  /** The first inconsistency found, precise enough to debug a capture with. */
  reason: string;
}

export type TlsRecordHeaderResult = { status: 'ok'; header: TlsRecordHeader } | NeedMore | Invalid;

export interface TlsExtension {
  type: number;
  /** Length of the extension's data (without its 4-byte type and length header). */
  length: number;
}

export interface ClientHello {
  /** legacy_record_version of the first record (often 0x0301 even for TLS 1.3). */
  recordVersion: number;
  /** legacy_version (client_version) inside the handshake, 0x0303 for TLS 1.2 and 1.3. */
  legacyVersion: number;
  /** The 32-byte client random, copied. */
  random: Uint8Array;
  sessionIdLength: number;
  /** As offered, GREASE values included (fingerprinting wants them). */
  cipherSuites: readonly number[];
  compressionMethods: readonly number[];
  /** Every extension in the order sent, GREASE included. */
  extensions: readonly TlsExtension[];
  /** The host_name entry of server_name: printable ASCII, 1 to 255 bytes, as sent (case kept). */
  serverName: string | undefined;
  /** Protocols offered by ALPN in order; bytes outside printable ASCII appear as `\xNN`. */
  alpn: readonly string[];
  /** supported_versions as offered, GREASE included; empty when the extension is absent. */
  supportedVersions: readonly number[];
  /**
   * The highest version offered, GREASE ignored: the top of supported_versions when present,
   * otherwise legacyVersion (how TLS ≤ 1.2 clients say it).
   */
  highestVersion: number;
  /** supported_groups as offered, GREASE included. */
  supportedGroups: readonly number[];
  /** The group of each key_share entry, in order, GREASE included. */
  keyShareGroups: readonly number[];
  /** An encrypted_client_hello extension is present: serverName is then the ECH public name. */
  ech: boolean;
  /** Some GREASE value appears among suites, extensions, versions, groups or key shares. */
  grease: boolean;
  /** How many TLS records carried the hello (more than one: record-layer fragmentation). */
  recordCount: number;
  /** Length of the handshake message, header included. */
  handshakeLength: number;
  /** Bytes of the stream taken by the records that carried the hello. */
  streamLength: number;
}

export type ClientHelloParseResult = { status: 'ok'; hello: ClientHello } | NeedMore | Invalid;

// ---------------------------------------------------------------------------------------------
// Record layer

/**
 * Reads the 5-byte record header at `offset`. Checks what every TLS version agrees on: a known
 * content type, major version 3, and a fragment no longer than any version allows.
 */
export function parseTlsRecordHeader(bytes: Uint8Array, offset = 0): TlsRecordHeaderResult {
  if (bytes.length - offset < RECORD_HEADER_LENGTH) return { status: 'need-more', needed: offset + RECORD_HEADER_LENGTH };
  const contentType = bytes[offset]!;
  const version = (bytes[offset + 1]! << 8) | bytes[offset + 2]!;
  const length = (bytes[offset + 3]! << 8) | bytes[offset + 4]!;
  if (contentType < ContentType.changeCipherSpec || contentType > ContentType.heartbeat) {
    return invalidResult(`record at byte ${offset}: content type ${contentType} is not a TLS content type (20-24)`);
  }
  if (version >> 8 !== 3) return invalidResult(`record at byte ${offset}: version ${hex16(version)} is not 0x03xx`);
  if (length > MAX_RECORD_FRAGMENT) {
    return invalidResult(`record at byte ${offset}: length ${length} exceeds the TLS maximum ${MAX_RECORD_FRAGMENT}`);
  }
  return { status: 'ok', header: { contentType, version, length } };
}

/**
 * Quick test that `bytes` (at `offset`) begin a TLS handshake record carrying a ClientHello:
 * content type 22, version 0x0300–0x0304, a plausible length and handshake type 1. Needs the
 * first 6 bytes; fewer give false. Used to decide whether a flow is a ClientHello flow.
 */
export function isTlsHandshakeStart(bytes: Uint8Array, offset = 0): boolean {
  if (bytes.length - offset < RECORD_HEADER_LENGTH + 1) return false;
  const length = (bytes[offset + 3]! << 8) | bytes[offset + 4]!;
  return (
    bytes[offset] === ContentType.handshake &&
    bytes[offset + 1] === 3 &&
    bytes[offset + 2]! <= 4 &&
    length >= 1 &&
    length <= MAX_PLAINTEXT_FRAGMENT &&
    bytes[offset + 5] === HandshakeType.clientHello
  );
}

// ---------------------------------------------------------------------------------------------
// ClientHello

/**
 * Parses the ClientHello at the start of `bytes`, the bytes of a TCP stream from its first TLS
 * record on. The hello may span several records (record-layer fragmentation); bytes after the
 * last record that carried it are ignored (early data, or whatever comes next).
 */
export function parseClientHello(bytes: Uint8Array): ClientHelloParseResult {
  try {
    return parseFromRecords(bytes);
  } catch (stop) {
    if (stop instanceof Malformed) return invalidResult(stop.reason);
    // A bug, not an input problem; still never let it escape to the caller's event loop.
    return invalidResult(`internal parser error: ${stop instanceof Error ? stop.message : String(stop)}`);
  }
}

/** The handshake message as reassembled from record fragments, possibly still incomplete. */
interface GatheredHandshake {
  /** Handshake bytes received so far, contiguous, from the handshake header on. */
  message: Uint8Array;
  /** Total message length from its header (4 + body), or undefined before the header arrived. */
  declaredLength: number | undefined;
  recordVersion: number;
  recordCount: number;
  /** Stream offset just after the last complete record taken. */
  streamEnd: number;
  /** Bytes still missing from a record whose header has arrived (0 at a record boundary). */
  missingInRecord: number;
}

function parseFromRecords(bytes: Uint8Array): ClientHelloParseResult {
  const gathered = gatherHandshake(bytes);
  const { message, declaredLength } = gathered;
  const complete = declaredLength !== undefined && message.length === declaredLength;
  if (declaredLength !== undefined) {
    // Parse what we have: on a prefix this rejects garbage early, on a whole message it is the parse.
    const reader = new Reader(message, HANDSHAKE_HEADER_LENGTH, message.length);
    try {
      const hello = parseClientHelloBody(reader, declaredLength, gathered);
      if (complete) return { status: 'ok', hello };
    } catch (stop) {
      if (stop !== OUT_OF_DATA) throw stop;
      if (complete) throw new Malformed('internal: complete message ran out of data');
    }
  }
  return { status: 'need-more', needed: bytesNeeded(bytes.length, gathered) };
}

/** The smallest stream length that could complete the hello, given what has arrived. */
function bytesNeeded(streamLength: number, g: GatheredHandshake): number {
  const handshakeMissing =
    g.declaredLength === undefined ? HANDSHAKE_HEADER_LENGTH - g.message.length : g.declaredLength - g.message.length;
  if (g.missingInRecord > 0) {
    const afterThisRecord = Math.max(0, handshakeMissing - g.missingInRecord);
    return streamLength + g.missingInRecord + withRecordHeaders(afterThisRecord);
  }
  return g.streamEnd + withRecordHeaders(handshakeMissing);
}

/** `n` handshake bytes need at least this many stream bytes: full records, each with a header. */
function withRecordHeaders(n: number): number {
  return n === 0 ? 0 : n + RECORD_HEADER_LENGTH * Math.ceil(n / MAX_PLAINTEXT_FRAGMENT);
}

/**
 * Walks handshake records from the start of the stream and joins their fragments until the
 * ClientHello message is whole or the bytes run out. The common single-record case is a view,
 * not a copy.
 */
function gatherHandshake(bytes: Uint8Array): GatheredHandshake {
  const joined = new FragmentJoiner();
  let declaredLength: number | undefined;
  let recordVersion = 0;
  let recordCount = 0;
  let offset = 0;
  while (declaredLength === undefined || joined.length < declaredLength) {
    if (bytes.length - offset < RECORD_HEADER_LENGTH) {
      checkRecordHeaderPrefix(bytes, offset, recordCount);
      break;
    }
    const fragmentLength = checkHandshakeRecordHeader(bytes, offset, recordCount);
    if (recordCount === 0) recordVersion = (bytes[offset + 1]! << 8) | bytes[offset + 2]!;
    recordCount++;
    const fragmentStart = offset + RECORD_HEADER_LENGTH;
    const fragmentEnd = fragmentStart + fragmentLength;
    const arrivedEnd = Math.min(fragmentEnd, bytes.length);
    joined.append(bytes, fragmentStart, arrivedEnd);
    declaredLength ??= readHandshakeHeader(joined.view());
    if (declaredLength !== undefined && joined.length + (fragmentEnd - arrivedEnd) > declaredLength) {
      throw new Malformed(
        `record ${recordCount} (byte ${offset}) carries ${byteCount(joined.length + (fragmentEnd - arrivedEnd) - declaredLength)} after the ClientHello ends`,
      );
    }
    if (arrivedEnd < fragmentEnd) {
      return { message: joined.view(), declaredLength, recordVersion, recordCount, streamEnd: offset, missingInRecord: fragmentEnd - arrivedEnd };
    }
    offset = fragmentEnd;
  }
  return { message: joined.view(), declaredLength, recordVersion, recordCount, streamEnd: offset, missingInRecord: 0 };
}

/** Validates a full record header that must carry handshake bytes; returns its fragment length. */
function checkHandshakeRecordHeader(bytes: Uint8Array, offset: number, recordIndex: number): number {
  checkRecordHeaderPrefix(bytes, offset, recordIndex);
  const length = (bytes[offset + 3]! << 8) | bytes[offset + 4]!;
  if (length === 0) throw new Malformed(`record ${recordIndex + 1} (byte ${offset}) is an empty handshake fragment`);
  return length;
}

/** Checks as much of a record header as has arrived, so a bad first byte fails at once. */
function checkRecordHeaderPrefix(bytes: Uint8Array, offset: number, recordIndex: number): void {
  const where = (): string => `record ${recordIndex + 1} (byte ${offset})`;
  const arrived = bytes.length - offset;
  if (arrived >= 1 && bytes[offset] !== ContentType.handshake) {
    const what = recordIndex === 0 ? 'is not a TLS handshake' : 'interrupts the handshake';
    throw new Malformed(`${where()}: content type ${bytes[offset]!} ${what} (expected 22)`);
  }
  if (arrived >= 2 && bytes[offset + 1] !== 3) {
    throw new Malformed(`${where()}: version major ${bytes[offset + 1]!}, expected 3`);
  }
  if (arrived >= 3 && bytes[offset + 2]! > 4) {
    throw new Malformed(`${where()}: version 0x03${hex8(bytes[offset + 2]!)} is not SSL 3.0 to TLS 1.3`);
  }
  if (arrived >= 4 && bytes[offset + 3]! << 8 > MAX_PLAINTEXT_FRAGMENT) {
    throw new Malformed(`${where()}: length exceeds ${MAX_PLAINTEXT_FRAGMENT}, the largest plaintext fragment`);
  }
  if (arrived >= 5 && ((bytes[offset + 3]! << 8) | bytes[offset + 4]!) > MAX_PLAINTEXT_FRAGMENT) {
    const length = (bytes[offset + 3]! << 8) | bytes[offset + 4]!;
    throw new Malformed(`${where()}: length ${length} exceeds ${MAX_PLAINTEXT_FRAGMENT}, the largest plaintext fragment`);
  }
}

/** Returns the whole message length once the 4-byte handshake header has arrived. */
function readHandshakeHeader(message: Uint8Array): number | undefined {
  if (message.length >= 1 && message[0] !== HandshakeType.clientHello) {
    throw new Malformed(`handshake type ${message[0]!} is not ClientHello (1)`);
  }
  if (message.length < HANDSHAKE_HEADER_LENGTH) return undefined;
  const bodyLength = (message[1]! << 16) | (message[2]! << 8) | message[3]!;
  if (bodyLength > MAX_CLIENT_HELLO_BODY) {
    throw new Malformed(`handshake length ${bodyLength} exceeds the largest possible ClientHello (${MAX_CLIENT_HELLO_BODY})`);
  }
  return HANDSHAKE_HEADER_LENGTH + bodyLength;
}

/**
 * Joins record fragments into one contiguous message. Stays a view of the input while only one
 * fragment was added; from the second on, copies into a module-wide scratch buffer. Sharing is
 * safe because parsing is synchronous and nothing in a result points into the message (the
 * random is copied, names are strings).
 */
class FragmentJoiner {
  private static scratch = new Uint8Array(4096);
  private source: Uint8Array | undefined;
  private start = 0;
  private joined = false;
  length = 0;

  append(bytes: Uint8Array, start: number, end: number): void {
    if (this.source === undefined && !this.joined) {
      this.source = bytes;
      this.start = start;
      this.length = end - start;
      return;
    }
    if (!this.joined) {
      FragmentJoiner.reserve(this.length + end - start, 0);
      FragmentJoiner.scratch.set(this.source!.subarray(this.start, this.start + this.length));
      this.source = undefined;
      this.joined = true;
    }
    FragmentJoiner.reserve(this.length + end - start, this.length);
    FragmentJoiner.scratch.set(bytes.subarray(start, end), this.length);
    this.length += end - start;
  }

  view(): Uint8Array {
    if (this.joined) return FragmentJoiner.scratch.subarray(0, this.length);
    if (this.source !== undefined) return this.source.subarray(this.start, this.start + this.length);
    return new Uint8Array(0);
  }

  /** Grows the scratch (keeping its first `keep` bytes); never past twice the largest possible ClientHello. */
  private static reserve(length: number, keep: number): void {
    if (length <= FragmentJoiner.scratch.length) return;
    const grown = new Uint8Array(Math.max(length, 2 * FragmentJoiner.scratch.length));
    grown.set(FragmentJoiner.scratch.subarray(0, keep));
    FragmentJoiner.scratch = grown;
  }
}

/** Parses the ClientHello body from reader.pos to `bodyEnd` (offsets within the message). */
function parseClientHelloBody(r: Reader, bodyEnd: number, records: GatheredHandshake): ClientHello {
  const legacyVersion = r.u16(bodyEnd, 'client version');
  if (legacyVersion >> 8 !== 3 || (legacyVersion & 0xff) > 4) {
    throw new Malformed(`client version ${hex16(legacyVersion)} is not SSL 3.0 to TLS 1.3`);
  }
  r.need(RANDOM_LENGTH, bodyEnd, 'random');
  const random = r.bytes.slice(r.pos, r.pos + RANDOM_LENGTH);
  r.pos += RANDOM_LENGTH;
  const sessionIdLength = r.u8(bodyEnd, 'session id length');
  if (sessionIdLength > MAX_SESSION_ID_LENGTH) throw new Malformed(`session id length ${sessionIdLength} exceeds 32`);
  r.skip(sessionIdLength, bodyEnd, 'session id');
  const cipherSuites = readCipherSuites(r, bodyEnd);
  const compressionMethods = readCompressionMethods(r, bodyEnd);
  const hello: ClientHello = {
    recordVersion: records.recordVersion,
    legacyVersion,
    random,
    sessionIdLength,
    cipherSuites,
    compressionMethods,
    extensions: [],
    serverName: undefined,
    alpn: [],
    supportedVersions: [],
    highestVersion: legacyVersion,
    supportedGroups: [],
    keyShareGroups: [],
    ech: false,
    grease: cipherSuites.some(isGrease),
    recordCount: records.recordCount,
    handshakeLength: bodyEnd,
    streamLength: records.streamEnd,
  };
  // SSL 3.0 and early TLS clients may end the hello here, without an extensions block.
  if (r.pos === bodyEnd) return hello;
  readExtensions(r, bodyEnd, hello);
  return hello;
}

function readCipherSuites(r: Reader, bodyEnd: number): number[] {
  const end = r.lengthPrefixed(2, bodyEnd, 'cipher suites', 'the ClientHello');
  const length = end - r.pos;
  if (length === 0) throw new Malformed('cipher suites list is empty');
  if (length % 2 !== 0) throw new Malformed(`cipher suites length ${length} is odd`);
  const suites: number[] = [];
  while (r.pos < end) suites.push(r.u16(end, 'cipher suite'));
  return suites;
}

/**
 * Compression methods: the list must offer null (0) (RFC 5246 §7.4.1.2) and only methods ever
 * defined (null, DEFLATE, LZS). Beyond the RFC, this is what catches a shifted length upstream
 * that would otherwise read key material as a list of methods.
 */
function readCompressionMethods(r: Reader, bodyEnd: number): number[] {
  const end = r.lengthPrefixed(1, bodyEnd, 'compression methods', 'the ClientHello');
  if (end === r.pos) throw new Malformed('compression methods list is empty');
  const methods: number[] = [];
  while (r.pos < end) {
    const method = r.u8(end, 'compression method');
    if (!KNOWN_COMPRESSION_METHODS.has(method)) throw new Malformed(`compression method ${method} is not null, DEFLATE or LZS`);
    methods.push(method);
  }
  if (!methods.includes(0)) throw new Malformed('compression methods do not offer null (0)');
  return methods;
}

function readExtensions(r: Reader, bodyEnd: number, hello: ClientHello): void {
  const blockLength = r.u16(bodyEnd, 'extensions block length');
  if (blockLength !== bodyEnd - r.pos) {
    throw new Malformed(`extensions block length ${blockLength} but ${byteCount(bodyEnd - r.pos)} remain in the ClientHello`);
  }
  const extensions: TlsExtension[] = [];
  hello.extensions = extensions;
  extensionTypesSeen.reset();
  while (r.pos < bodyEnd) {
    const start = r.pos;
    if (bodyEnd - start < 4) {
      throw new Malformed(`extensions block ends with ${byteCount(bodyEnd - start)} too few for an extension header at handshake offset ${start}`);
    }
    const type = r.u16(bodyEnd, 'extension type');
    const length = r.u16(bodyEnd, 'extension length');
    const dataEnd = r.pos + length;
    if (dataEnd > bodyEnd) {
      throw new Malformed(
        `extension ${extensionLabel(type)} length ${length} at handshake offset ${r.pos - 2} runs past the extensions block (${byteCount(bodyEnd - r.pos)} left)`,
      );
    }
    if (!extensionTypesSeen.add(type)) {
      throw new Malformed(`extension ${extensionLabel(type)} appears twice (second at handshake offset ${start})`);
    }
    extensions.push({ type, length: dataEnd - r.pos });
    if (isGrease(type)) hello.grease = true;
    readExtensionData(r, type, dataEnd, hello);
  }
}

/** Parses the extensions whose content we report; skips the rest. Leaves r.pos at dataEnd. */
function readExtensionData(r: Reader, type: number, dataEnd: number, hello: ClientHello): void {
  switch (type) {
    case ExtensionType.serverName:
      hello.serverName = readServerName(r, dataEnd);
      return;
    case ExtensionType.alpn:
      hello.alpn = readAlpn(r, dataEnd);
      return;
    case ExtensionType.supportedVersions: {
      const versions = readU16List(r, 1, dataEnd, SUPPORTED_VERSIONS_NAMES);
      hello.supportedVersions = versions;
      const highest = highestNonGrease(versions);
      if (highest !== undefined) hello.highestVersion = highest;
      if (versions.some(isGrease)) hello.grease = true;
      return;
    }
    case ExtensionType.supportedGroups: {
      const groups = readU16List(r, 2, dataEnd, SUPPORTED_GROUPS_NAMES);
      hello.supportedGroups = groups;
      if (groups.some(isGrease)) hello.grease = true;
      return;
    }
    case ExtensionType.keyShare: {
      const groups = readKeyShareGroups(r, dataEnd);
      hello.keyShareGroups = groups;
      if (groups.some(isGrease)) hello.grease = true;
      return;
    }
    case ExtensionType.encryptedClientHello:
      hello.ech = true;
      r.skip(dataEnd - r.pos, dataEnd, 'encrypted_client_hello');
      return;
    default:
      r.skip(dataEnd - r.pos, dataEnd, 'extension data');
  }
}

/** server_name (RFC 6066 §3): a list of (type, name); we take the host_name (type 0) entry. */
function readServerName(r: Reader, dataEnd: number): string | undefined {
  const listEnd = r.lengthPrefixed(2, dataEnd, 'server_name list', 'the server_name extension');
  if (listEnd !== dataEnd) throw new Malformed(`server_name list ends ${byteCount(dataEnd - listEnd)} before its extension`);
  if (listEnd === r.pos) throw new Malformed('server_name list is empty');
  let hostName: string | undefined;
  while (r.pos < listEnd) {
    const nameType = r.u8(listEnd, 'server_name entry type');
    const nameEnd = r.lengthPrefixed(2, listEnd, 'server_name entry', 'the server_name list');
    if (nameType !== 0) {
      r.skip(nameEnd - r.pos, nameEnd, 'server_name entry');
      continue;
    }
    if (hostName !== undefined) throw new Malformed('server_name carries two host_name entries');
    hostName = readHostName(r, nameEnd);
  }
  return hostName;
}

/** A host_name must look like a DNS name: 1–255 printable ASCII bytes, no spaces or controls. */
function readHostName(r: Reader, nameEnd: number): string {
  const length = nameEnd - r.pos;
  if (length === 0) throw new Malformed('host_name is empty');
  if (length > MAX_HOST_NAME_LENGTH) throw new Malformed(`host_name is ${length} bytes, longer than ${MAX_HOST_NAME_LENGTH}`);
  const start = r.pos;
  const available = Math.min(nameEnd, r.available);
  const bytes = r.bytes;
  for (let i = start; i < available; i++) {
    const b = bytes[i]!;
    if (b <= 0x20 || b >= 0x7f) {
      throw new Malformed(`host_name byte ${i - start} is 0x${hex8(b)}, not printable ASCII`);
    }
  }
  r.need(length, nameEnd, 'host_name');
  r.pos = nameEnd;
  return asciiString(bytes, start, nameEnd);
}

/** ALPN (RFC 7301 §3.1): a non-empty list of non-empty protocol names. */
function readAlpn(r: Reader, dataEnd: number): string[] {
  const listEnd = r.lengthPrefixed(2, dataEnd, 'ALPN list', 'the ALPN extension');
  if (listEnd !== dataEnd) throw new Malformed(`ALPN list ends ${byteCount(dataEnd - listEnd)} before its extension`);
  if (listEnd === r.pos) throw new Malformed('ALPN list is empty');
  const protocols: string[] = [];
  while (r.pos < listEnd) {
    const nameEnd = r.lengthPrefixed(1, listEnd, 'ALPN protocol name', 'the ALPN list');
    if (nameEnd === r.pos) throw new Malformed(`ALPN protocol name ${protocols.length + 1} is empty`);
    r.need(nameEnd - r.pos, nameEnd, 'ALPN protocol name');
    protocols.push(protocolName(r.bytes, r.pos, nameEnd));
    r.pos = nameEnd;
  }
  return protocols;
}

/** Names for reasons, built once rather than per parse. */
interface ListNames {
  extension: string;
  list: string;
  item: string;
}
const SUPPORTED_VERSIONS_NAMES: ListNames = {
  extension: 'the supported_versions extension',
  list: 'supported_versions list',
  item: 'supported version',
};
const SUPPORTED_GROUPS_NAMES: ListNames = {
  extension: 'the supported_groups extension',
  list: 'supported_groups list',
  item: 'supported group',
};

/** A list of u16 values behind a `prefixWidth`-byte length that must fill the extension. */
function readU16List(r: Reader, prefixWidth: 1 | 2, dataEnd: number, names: ListNames): number[] {
  const listEnd = r.lengthPrefixed(prefixWidth, dataEnd, names.list, names.extension);
  if (listEnd !== dataEnd) throw new Malformed(`${names.list} ends ${byteCount(dataEnd - listEnd)} before its extension`);
  const length = listEnd - r.pos;
  if (length === 0) throw new Malformed(`${names.list} is empty`);
  if (length % 2 !== 0) throw new Malformed(`${names.list} length ${length} is odd`);
  const values: number[] = [];
  while (r.pos < listEnd) values.push(r.u16(listEnd, names.item));
  return values;
}

/** key_share (RFC 8446 §4.2.8): entries of (group, key_exchange); an empty list is allowed. */
function readKeyShareGroups(r: Reader, dataEnd: number): number[] {
  const listEnd = r.lengthPrefixed(2, dataEnd, 'key_share list', 'the key_share extension');
  if (listEnd !== dataEnd) throw new Malformed(`key_share list ends ${byteCount(dataEnd - listEnd)} before its extension`);
  const groups: number[] = [];
  while (r.pos < listEnd) {
    groups.push(r.u16(listEnd, 'key_share group'));
    const keyEnd = r.lengthPrefixed(2, listEnd, 'key_share key_exchange', 'the key_share list');
    if (keyEnd === r.pos) throw new Malformed(`key_share entry ${groups.length} has an empty key`);
    r.skip(keyEnd - r.pos, keyEnd, 'key_share key_exchange');
  }
  return groups;
}

function highestNonGrease(versions: readonly number[]): number | undefined {
  let highest: number | undefined;
  for (const v of versions) if (!isGrease(v) && (highest === undefined || v > highest)) highest = v;
  return highest;
}

// ---------------------------------------------------------------------------------------------
// Reading helpers

/** Signals a malformed message inside the parser; carries no stack (it is control flow). */
class Malformed {
  constructor(readonly reason: string) {}
}

/** Signals that the declared structure continues past the bytes that have arrived. */
const OUT_OF_DATA = Object.freeze({ outOfData: true });

/**
 * Cursor over a message whose bytes may not all have arrived. Every read names the end of the
 * structure that encloses it (`limit`): reading past `limit` is malformed input, reading past
 * `available` (but within `limit`) just means "wait for more".
 */
class Reader {
  constructor(
    readonly bytes: Uint8Array,
    public pos: number,
    readonly available: number,
  ) {}

  need(n: number, limit: number, what: string): void {
    if (this.pos + n > limit) {
      throw new Malformed(`${what} at handshake offset ${this.pos} needs ${byteCount(n)}, only ${byteCount(limit - this.pos)} left in its enclosing field`);
    }
    if (this.pos + n > this.available) throw OUT_OF_DATA;
  }

  u8(limit: number, what: string): number {
    this.need(1, limit, what);
    return this.bytes[this.pos++]!;
  }

  u16(limit: number, what: string): number {
    this.need(2, limit, what);
    const value = (this.bytes[this.pos]! << 8) | this.bytes[this.pos + 1]!;
    this.pos += 2;
    return value;
  }

  skip(n: number, limit: number, what: string): void {
    this.need(n, limit, what);
    this.pos += n;
  }

  /**
   * Reads a `width`-byte length and returns the end of the field it announces, which must lie
   * within `limit` — this is where nested lengths are made to agree.
   */
  lengthPrefixed(width: 1 | 2, limit: number, what: string, container: string): number {
    if (this.pos + width > limit) {
      throw new Malformed(`${what} length at handshake offset ${this.pos} needs ${byteCount(width)}, only ${byteCount(limit - this.pos)} left in ${container}`);
    }
    if (this.pos + width > this.available) throw OUT_OF_DATA;
    const length = width === 1 ? this.bytes[this.pos]! : (this.bytes[this.pos]! << 8) | this.bytes[this.pos + 1]!;
    this.pos += width;
    const end = this.pos + length;
    if (end > limit) {
      throw new Malformed(`${what} length ${length} at handshake offset ${this.pos - width} runs past ${container} (${byteCount(limit - this.pos)} left)`);
    }
    return end;
  }
}

/**
 * Extension types seen in the hello being parsed, to reject duplicates (RFC 8446 §4.2: a second
 * server_name could otherwise smuggle a different name past one reader and not another). A
 * type is seen when its stamp equals the current parse's generation, so nothing needs clearing
 * between parses; shared because parsing is synchronous.
 */
class ExtensionTypeSet {
  private readonly stamps = new Uint16Array(0x10000);
  private generation = 0;

  /** Starts a new, empty set. */
  reset(): void {
    this.generation++;
    if (this.generation === 0x10000) {
      this.stamps.fill(0);
      this.generation = 1;
    }
  }

  /** Adds `type`; returns false when it was already there. */
  add(type: number): boolean {
    if (this.stamps[type] === this.generation) return false;
    this.stamps[type] = this.generation;
    return true;
  }
}

const extensionTypesSeen = new ExtensionTypeSet();

function invalidResult(reason: string): Invalid {
  return { status: 'invalid', reason };
}

function extensionLabel(type: number): string {
  const name = EXTENSION_NAMES.get(type) ?? (isGrease(type) ? 'GREASE' : undefined);
  return name === undefined ? hex16(type) : `${name} (${hex16(type)})`;
}

/** Callers have checked every byte is printable ASCII. */
function asciiString(bytes: Uint8Array, start: number, end: number): string {
  return String.fromCharCode.apply(null, bytes.subarray(start, end) as unknown as number[]);
}

/** ALPN names are opaque bytes; printable ASCII stays as is, anything else becomes `\xNN`. */
function protocolName(bytes: Uint8Array, start: number, end: number): string {
  for (let i = start; i < end; i++) {
    const b = bytes[i]!;
    if (b < 0x20 || b >= 0x7f || b === 0x5c) return escapedName(bytes, start, end);
  }
  return asciiString(bytes, start, end);
}

function escapedName(bytes: Uint8Array, start: number, end: number): string {
  const parts: string[] = [];
  for (let i = start; i < end; i++) {
    const b = bytes[i]!;
    parts.push(b >= 0x20 && b < 0x7f && b !== 0x5c ? String.fromCharCode(b) : `\\x${hex8(b)}`);
  }
  return parts.join('');
}

function byteCount(n: number): string {
  return n === 1 ? '1 byte' : `${n} bytes`;
}

function hex8(value: number): string {
  return value.toString(16).padStart(2, '0');
}

function hex16(value: number): string {
  return `0x${value.toString(16).padStart(4, '0')}`;
}

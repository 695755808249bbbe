// SPDX-License-Identifier: Apache-2.0
/** Builds test packets (Ethernet / raw IP, IPv4 / IPv6, TCP / UDP / ICMP / ARP) byte by byte. */

export function ipv4Bytes(a: string): number[] {
  return a.split('.').map(Number);
}

export function ipv6Bytes(a: string): number[] {
  const [head = '', tail = ''] = a.split('::');
  const h = head === '' ? [] : head.split(':');
  const t = tail === '' ? [] : tail.split(':');
  const words = [...h, ...new Array(8 - h.length - t.length).fill('0'), ...t].map((w) => parseInt(w, 16));
  return words.flatMap((w) => [w >> 8, w & 0xff]);
}

function be16(n: number): number[] {
  return [(n >> 8) & 0xff, n & 0xff];
}

function be32(n: number): number[] {
  return [(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
}

export function ethernet(type: number, payload: number[], src = '02:00:00:00:00:01', dst = '02:00:00:00:00:02'): number[] {
  const mac = (m: string): number[] => m.split(':').map((x) => parseInt(x, 16));
  return [...mac(dst), ...mac(src), ...be16(type), ...payload];
}

export interface TcpSpec {
  sport: number;
  dport: number;
  seq?: number;
  ack?: number;
  flags: number;
  win?: number;
  options?: number[];
  payload?: number[] | string;
}

export function tcp(s: TcpSpec): number[] {
  const opts = s.options ?? [];
  const padded = [...opts, ...new Array((4 - (opts.length % 4)) % 4).fill(1)];
  const doff = (20 + padded.length) / 4;
  const payload = typeof s.payload === 'string' ? [...Buffer.from(s.payload)] : (s.payload ?? []);
  return [...be16(s.sport), ...be16(s.dport), ...be32(s.seq ?? 0), ...be32(s.ack ?? 0), doff << 4, s.flags & 0xff, ...be16(s.win ?? 502), 0, 0, 0, 0, ...padded, ...payload];
}

export function udp(sport: number, dport: number, payload: number[] | string): number[] {
  const p = typeof payload === 'string' ? [...Buffer.from(payload)] : payload;
  return [...be16(sport), ...be16(dport), ...be16(8 + p.length), 0, 0, ...p];
}

export function icmpEcho(type: number, id: number, seq: number, data: number[] = []): number[] {
  return [type, 0, 0, 0, ...be16(id), ...be16(seq), ...data];
}

export function ipv4(src: string, dst: string, protocol: number, payload: number[], opts: { fragOffset?: number; ttl?: number } = {}): number[] {
  return [0x45, 0, ...be16(20 + payload.length), 0x12, 0x34, ...be16(opts.fragOffset ? opts.fragOffset / 8 : 0x4000), opts.ttl ?? 64, protocol, 0, 0, ...ipv4Bytes(src), ...ipv4Bytes(dst), ...payload];
}

export function ipv6(src: string, dst: string, next: number, payload: number[]): number[] {
  return [0x60, 0, 0, 0, ...be16(payload.length), next, 64, ...ipv6Bytes(src), ...ipv6Bytes(dst), ...payload];
}

export function arpRequest(senderMac: string, senderIp: string, targetIp: string): number[] {
  const mac = senderMac.split(':').map((x) => parseInt(x, 16));
  return [0, 1, 8, 0, 6, 4, 0, 1, ...mac, ...ipv4Bytes(senderIp), 0, 0, 0, 0, 0, 0, ...ipv4Bytes(targetIp)];
}

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;

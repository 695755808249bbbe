// SPDX-License-Identifier: Apache-2.0
/**
 * Numbers fixed by Linux (x86-64 where it matters), libpcap and the pcap/pcapng file formats:
 * one definition each, imported by every layer that needs one. Pure: imports nothing.
 */

// ---- errno (asm-generic/errno-base.h, errno.h; ENOTSUPP is the kernel-internal 524) ------------
export const EPERM = 1;
export const ENOENT = 2;
export const EINTR = 4;
export const EAGAIN = 11;
export const EACCES = 13;
export const ENODEV = 19;
export const EINVAL = 22;
export const EOPNOTSUPP = 95;
export const ENOTSUPP = 524;

// ---- files, memory, polling (fcntl.h, mman.h, epoll.h, poll.h, eventfd.h, sched.h) ------------
export const O_RDONLY = 0;
export const O_DIRECTORY = 0o200000;
export const O_LARGEFILE = 0o100000;
export const O_CLOEXEC = 0o2000000;
export const AT_FDCWD = -100;
export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const MAP_SHARED = 1;
/** mmap's (void *)-1 as koffi returns it */
export const MAP_FAILED = 0xffffffffffffffffn;
export const _SC_PAGESIZE = 30;
export const EPOLLIN = 1;
export const EPOLL_CTL_ADD = 1;
export const EPOLL_CLOEXEC = 0o2000000;
export const POLLIN = 1;
export const EFD_NONBLOCK = 0o4000;
export const EFD_CLOEXEC = 0o2000000;
export const CLONE_NEWNET = 0x40000000;
/** bpf(2) on x86-64 */
export const SYS_bpf = 321;

// ---- sockets (socket.h, in.h, if_ether.h, if_packet.h, sockios.h) ---------------------------
export const AF_INET = 2;
export const AF_INET6 = 10;
export const AF_PACKET = 17;
export const SOCK_STREAM = 1;
export const SOCK_RAW = 3;
export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;
export const SOL_SOCKET = 1;
export const SO_RCVBUF = 8;
export const SO_ATTACH_FILTER = 26;
export const SO_ATTACH_BPF = 50;
export const SOL_PACKET = 263;
export const PACKET_RX_RING = 5;
export const PACKET_STATISTICS = 6;
export const PACKET_VERSION = 10;
export const TPACKET_V3 = 2;
/** every protocol, in network order when bound */
export const ETH_P_ALL = 0x0003;
export const SIOCGIFNAME = 0x8910;
export const SIOCGIFINDEX = 0x8933;

/** sll_pkttype values (linux/if_packet.h). */
export const PACKET_HOST = 0;
export const PACKET_BROADCAST = 1;
export const PACKET_MULTICAST = 2;
export const PACKET_OTHERHOST = 3;
export const PACKET_OUTGOING = 4;

/** Hardware types (ARPHRD_*, linux/if_arp.h) as sockaddr_ll.sll_hatype carries them. */
export const ARPHRD = {
  ETHER: 1,
  TUNNEL: 768,
  TUNNEL6: 769,
  LOOPBACK: 772,
  SIT: 776,
  RAWIP: 519,
  NONE: 0xfffe,
} as const;

// ---- protocol numbers (in.h, if_ether.h) ------------------------------------------------------
export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
/** setsockopt(IPPROTO_TCP, TCP_ULP, "tls"): attach the kernel TLS upper-layer protocol. */
export const TCP_ULP = 31;
export const IPPROTO_UDP = 17;
export const IPPROTO_ICMPV6 = 58;
export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_IPV6 = 0x86dd;
export const ETHERTYPE_VLAN = 0x8100;
export const ETHERTYPE_QINQ = 0x88a8;

// ---- link types: libpcap's DLT_* (pcap_open_dead) and the files' LINKTYPE_* -------------------
export const DLT_EN10MB = 1;
/** DLT_RAW is 12 everywhere but OpenBSD */
export const DLT_RAW = 12;
export const LINKTYPE_ETHERNET = 1;
export const LINKTYPE_RAW = 101;

// ---- bpf(2) (linux/bpf.h) ---------------------------------------------------------------------
export const BPF_MAP_TYPE_PERCPU_HASH = 5;
export const BPF_MAP_TYPE_PERCPU_ARRAY = 6;
export const BPF_MAP_TYPE_LRU_PERCPU_HASH = 10;
export const BPF_MAP_TYPE_RINGBUF = 27;
export const BPF_LINK_CREATE = 28;
export const BPF_TCX_INGRESS = 46;
export const BPF_TCX_EGRESS = 47;
export const BPF_TRACE_UPROBE_MULTI = 48;
/** classic BPF programs (SO_ATTACH_FILTER) take at most this many instructions */
export const BPF_MAXINSNS = 4096;

/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/* Shared between bpf/tls.bpf.c and src/gadgets/tls/decode.ts (checked against BTF in tests). */
#ifndef TLS_H
#define TLS_H

#include "sock.h"
#include "proc.h"

#define TLS_CHUNK 16384 /* plaintext bytes in one ring record at most (power of two) */

/* Where the plaintext came from. A kTLS source (tls_sw_sendmsg/recvmsg) fits the same event. */
enum tls_source {
	TLS_SRC_OPENSSL = 1, /* libssl 1.1/3, BoringSSL, and binaries exporting SSL_* (node) */
	TLS_SRC_GNUTLS = 2,
	TLS_SRC_GO = 3,      /* crypto/tls */
	TLS_SRC_KTLS = 4,    /* kernel TLS (bpf/ktls.bpf.c) */
	TLS_SRC_RUSTLS = 6,  /* rustls Writer::write / Reader::read (src/gadgets/tls/rustls.ts) */
	TLS_SRC_NSS = 7,     /* NSS, through NSPR's PR_Write/PR_Read/PR_Send/PR_Recv on SSL descriptors */
};

enum tls_func {
	TLS_FN_SSL_WRITE = 1,
	TLS_FN_SSL_READ = 2,
	TLS_FN_SSL_WRITE_EX = 3,
	TLS_FN_SSL_READ_EX = 4,
	TLS_FN_GNUTLS_SEND = 5,
	TLS_FN_GNUTLS_RECV = 6,
	TLS_FN_GO_WRITE = 7,
	TLS_FN_GO_READ = 8,
	TLS_FN_KTLS_SENDMSG = 9,
	TLS_FN_KTLS_RECVMSG = 10,
	/* OpenSSL 3's ssl_write_internal/ssl_read_internal (not exported; found by the finder in
	 * src/gadgets/tls/openssl-finder.ts): what SSL_write(_ex)/SSL_read(_ex) and the SSL BIO
	 * (BIO_f_ssl, e.g. `openssl s_server -www`) all call. Same arguments as the _ex forms. */
	TLS_FN_SSL_WRITE_INTERNAL = 11,
	TLS_FN_SSL_READ_INTERNAL = 12,
	TLS_FN_KTLS_SENDPAGE = 13,    /* before Linux 6.5: sendfile/splice into a kTLS socket */
	TLS_FN_KTLS_SPLICE_READ = 14, /* splice out of a kTLS socket */
	TLS_FN_RUSTLS_WRITE = 20,
	TLS_FN_RUSTLS_READ = 21,
	TLS_FN_RUSTLS_WRITEV = 22, /* Writer::write_vectored: buf is an iovec (IoSlice) array, outlen its count */
	/* NSPR (libnspr4.so) I/O on a descriptor whose stack holds NSS's SSL layer: PRInt32 back */
	TLS_FN_NSS_WRITE = 23,
	TLS_FN_NSS_READ = 24,
	TLS_FN_NSS_SEND = 25,
	TLS_FN_NSS_RECV = 26,
};

enum tls_direction {
	TLS_DIR_WRITE = 0, /* the process gave plaintext to TLS (it goes out) */
	TLS_DIR_READ = 1,  /* TLS gave plaintext to the process (it came in) */
};

/* How the connection tuple of an event was found. */
enum tls_tuple_source {
	TLS_TUPLE_NONE = 0,
	TLS_TUPLE_CALL = 1,    /* the thread did socket I/O during the call: that socket */
	TLS_TUPLE_SESSION = 2, /* remembered for this TLS session (SSL*, session, *tls.Conn) */
	TLS_TUPLE_THREAD = 3,  /* inferred: the thread's latest socket I/O (memory-BIO stacks: node) */
};

#define TLS_F_TRUNCATED 1 /* max_bytes cut the call's data: captured_len < total_len */
/* (2 is TLS_F_FAULT in the objects) */
#define TLS_F_KTLS 4      /* a library call whose bytes went through kTLS (seen by both; shown once) */

/* A call in progress. C libraries: keyed by thread (goid 0). Go: by goroutine (tid 0). */
struct tls_call_key {
	__u32 tgid;
	__u32 tid;
	__u64 goid;
};

struct tls_call {
	__u64 start_ns;
	__u64 conn;
	__u64 buf;
	__u64 outlen; /* size_t * of the *_ex functions */
	__u64 sp;     /* stack pointer at entry: tells an outer call from one nested inside it */
	__u8 source;
	__u8 func;
	__u8 direction;
	__u8 flags;    /* TLS_CALL_* */
	__u32 file_id; /* attach cookie of the entry probe */
};

/* tls_call.flags: the kTLS hooks saw this call's bytes in the kernel (bpf/ktls.bpf.c) */
#define TLS_CALL_KTLS 1


/* One ring record: a chunk of one call's plaintext. A call that moved more than TLS_CHUNK
 * bytes comes as several records in order (offset), all with the same tid and start_ns. */
struct tls_event {
	__u64 ts_ns;    /* when the call returned (CLOCK_MONOTONIC) */
	__u64 start_ns; /* when it was entered */
	__u64 conn_id;  /* the TLS session within the process: SSL*, gnutls_session_t, *tls.Conn */
	struct tlscope_proc proc; /* netns: the task's */
	struct tlscope_tuple tuple; /* the socket's endpoints: s = local, d = remote; family 0: unknown */
	__u32 total_len;    /* bytes the call moved (its return value) */
	__u32 captured_len; /* bytes of them captured, over all records of the call */
	__u32 offset;       /* where this record's bytes sit in the call's data */
	__u32 chunk_len;    /* bytes that follow this header */
	__u8 source;        /* enum tls_source */
	__u8 func;          /* enum tls_func */
	__u8 direction;     /* enum tls_direction */
	__u8 tuple_source;  /* enum tls_tuple_source */
	__u8 flags;         /* TLS_F_* */
	__u8 pad[3];
	__u32 file_id;      /* which probed file (the attach cookie of the entry probe) */
	__u32 pad2;
	/* __u8 data[chunk_len] follows */
};

/* Asks user space to look at a process's memory map again (it exec'd or mapped code). */
enum tls_hint_kind {
	TLS_HINT_EXEC = 1,
	TLS_HINT_MMAP = 2,
};

struct tls_hint {
	__u32 pid;
	__u32 kind;
};

_Static_assert(sizeof(struct tls_event) == 144, "tls_event layout is shared with TypeScript");
_Static_assert(sizeof(struct tls_hint) == 8, "tls_hint layout is shared with TypeScript");

#endif

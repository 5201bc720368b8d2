/* statewall._speedups: optional C versions of the per-packet hot path.
 *
 * Owns: nothing of its own. Every function here has a pure-Python reference with the same
 * name (checksum.l4_checksum_ok_py, decode.decode_ip*_py, tcp.TcpPy) and must give exactly
 * its result. The C code handles the common case only; anything else (an error to report, a
 * rare state transition, an unusual argument type, keyword arguments) is handed to the
 * Python reference *before* any state was changed, so the two paths cannot diverge.
 * Must not know: anything the Python modules do not pass in. Tables (TCP transitions, flag
 * classes, valid flag combinations, timeout sysctl names) and the classes whose slots are
 * read (Packet, Conn, Settings) are given by the Python modules at import (bind_packet,
 * set_fallbacks, tcp_methods); slot offsets come from their member descriptors and the
 * Conn.l4 layout is compared with the constants below, all checked at bind time (a mismatch
 * raises, and the module concerned stays pure Python).
 *
 * Built by setup.py when a compiler is available; importing raises ImportError when the
 * environment variable STATEWALL_PURE is set to anything but "" or "0" (the Python modules
 * then keep their pure code). Follows the Python modules it replaces, which follow
 * net/netfilter/utils.c, net/ipv4/ip_input.c, net/ipv6/ip6_input.c and
 * net/netfilter/nf_conntrack_proto_tcp.c.
 */
#include "_speedups.h"

/* ---------------------------------------------------------------------------------------
 * Checksums (checksum.py). A one's-complement sum of 64-bit native words with end-around
 * carry is congruent to the data's value modulo 0xFFFF up to a byte swap (2**16 == 1), and
 * is zero only when every byte is; that is all ``l4_checksum_ok`` needs.
 */

static PyObject *fb_l4_checksum_ok;

/* Folded sum of ``p[0:n]`` as big-endian 16-bit words (odd tail padded with zero):
 * in [1, 0xFFFF], congruent to the data as a big integer mod 0xFFFF; 0 iff all zero. */
static uint32_t
sum16(const unsigned char *p, Py_ssize_t n)
{
    uint64_t acc = 0, x;
    while (n >= 32) {
        uint64_t a, b, c, d;
        memcpy(&a, p, 8);
        memcpy(&b, p + 8, 8);
        memcpy(&c, p + 16, 8);
        memcpy(&d, p + 24, 8);
        acc += a;
        acc += (acc < a);
        acc += b;
        acc += (acc < b);
        acc += c;
        acc += (acc < c);
        acc += d;
        acc += (acc < d);
        p += 32;
        n -= 32;
    }
    while (n >= 8) {
        memcpy(&x, p, 8);
        acc += x;
        acc += (acc < x);
        p += 8;
        n -= 8;
    }
    if (n) {
        x = 0;
        memcpy(&x, p, (size_t)n);
        acc += x;
        acc += (acc < x);
    }
    while (acc >> 16)
        acc = (acc & 0xFFFF) + (acc >> 16);
    uint32_t r = (uint32_t)acc;
#if PY_LITTLE_ENDIAN
    r = ((r & 0xFF) << 8) | (r >> 8);
#endif
    return r;
}

/* int.from_bytes(a, "big") modulo 0xFFFF, as a sum of right-aligned 16-bit words. */
static inline uint64_t
addr_sum(const unsigned char *a, Py_ssize_t n)
{
    uint64_t s = 0;
    for (Py_ssize_t i = 0; i < n; i++)
        s += ((n - 1 - i) & 1) ? (uint64_t)a[i] << 8 : a[i];
    return s;
}

/* l4_checksum_ok for data ``p[0:cover]`` of a segment of ``total`` bytes. */
static inline int
l4_ok(const unsigned char *p, Py_ssize_t cover, PyObject *src, PyObject *dst, long long proto,
      Py_ssize_t total)
{
    uint64_t v = sum16(p, cover);
    if (proto >= 0)
        v += addr_sum((const unsigned char *)PyBytes_AS_STRING(src), PyBytes_GET_SIZE(src))
             + addr_sum((const unsigned char *)PyBytes_AS_STRING(dst), PyBytes_GET_SIZE(dst))
             + (uint64_t)proto + (uint64_t)total;
    return v != 0 && v % 0xFFFF == 0;
}

static PyObject *
sp_l4_checksum_ok(PyObject *mod, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    long long l4off, proto, length;
    if (kwnames != NULL || nargs < 5 || nargs > 6 || fb_l4_checksum_ok == NULL)
        goto fallback;
    PyObject *buf = args[0], *src = args[2], *dst = args[3];
    const unsigned char *b;
    Py_ssize_t n;
    if (PyBytes_CheckExact(buf)) {
        b = (const unsigned char *)PyBytes_AS_STRING(buf);
        n = PyBytes_GET_SIZE(buf);
    } else if (PyByteArray_CheckExact(buf)) {
        b = (const unsigned char *)PyByteArray_AS_STRING(buf);
        n = PyByteArray_GET_SIZE(buf);
    } else {
        goto fallback;
    }
    if (!obj_ll(args[1], 0, n, &l4off) || !obj_ll(args[4], LLONG_MIN, 0xFFFFFFFFLL, &proto)
            || !PyBytes_CheckExact(src) || !PyBytes_CheckExact(dst))
        goto fallback;
    Py_ssize_t total = n - (Py_ssize_t)l4off, cover = total;
    if (nargs == 6 && args[5] != Py_None) {
        if (!obj_ll(args[5], 0, LLONG_MAX, &length))
            goto fallback;
        if (length < cover)
            cover = (Py_ssize_t)length;
    }
    if (l4_ok(b + l4off, cover, src, dst, proto < 0 ? -1 : proto, total))
        Py_RETURN_TRUE;
    Py_RETURN_FALSE;
fallback:
    if (fb_l4_checksum_ok == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_speedups: l4_checksum_ok fallback not set");
        return NULL;
    }
    return PyObject_Vectorcall(fb_l4_checksum_ok, args, nargs, kwnames);
}

/* ---------------------------------------------------------------------------------------
 * Decoder (decode.py). A Packet is made without running __init__: its slots are copied
 * from a template instance made by __init__, then the decoded fields are stored. Anything
 * the fast path does not take (errors, L4 damage, IPv6 extension headers) goes to the
 * Python decoder, which starts over.
 */

enum {
    P_BUF, P_L3NUM, P_SRC, P_DST, P_PROTO, P_L4OFF, P_TTL, P_IPID, P_FRAGOFF, P_MF, P_TOS,
    P_SPORT, P_DPORT, P_SEQ, P_ACK, P_FLAGS, P_WIN, P_DOFF, P_OPTOFF, P_OPTLEN,
    P_ICMP_TYPE, P_ICMP_CODE, P_L4LEN, P_PAYLOAD_OFF,
    P_CT, P_CTINFO, P_UNTRACKED, P_L4ERR,           /* (read by conntrack_in) */
    P_FRAG_HDR_OFF, P_IFACE, P_MARK, P_REASON, P_N  /* (read by Firewall.process) */
};
static const char *const pkt_names[P_N] = {
    "buf", "l3num", "src", "dst", "proto", "l4off", "ttl", "ipid", "fragoff", "mf", "tos",
    "sport", "dport", "seq", "ack", "flags", "win", "doff", "tcp_optoff", "tcp_optlen",
    "icmp_type", "icmp_code", "l4len", "payload_off",
    "ct", "ctinfo", "untracked", "l4err",
    "frag_hdr_off", "iface", "mark", "reason",
};

static SlotMap pkt_map;
static int pkt_nall;                        /* every slot of the class: */
static Py_ssize_t pkt_all_off[MAX_SLOTS];   /*   offset */
static PyObject *pkt_tmpl[MAX_SLOTS];       /*   value in the template (immutable) */
static PyObject *fb_decode_ip, *fb_decode_ipv4, *fb_decode_ipv6;

static inline unsigned
be16(const unsigned char *p)
{
    return (unsigned)p[0] << 8 | p[1];
}

static inline uint32_t
be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

#define PK(f) pkt_map.off[f]
#define PSET(p, f, v) (slot_set((p), PK(f), (v)) < 0)
#define PSET_INT(p, f, x) PSET(p, f, PyLong_FromLong((long)(x)))

/* A Packet as Packet(buf, l3num, src, dst, proto, l4off) makes it. Steals buf/src/dst. */
static PyObject *
new_packet(PyObject *buf, long l3num, PyObject *src, PyObject *dst, long proto, long l4off)
{
    PyTypeObject *tp = pkt_map.type;
    PyObject *p = tp->tp_alloc(tp, 0);
    if (p == NULL) {
        Py_DECREF(buf);
        Py_XDECREF(src);
        Py_XDECREF(dst);
        return NULL;
    }
    for (int i = 0; i < pkt_nall; i++) {
        PyObject *v = pkt_tmpl[i];
        Py_INCREF(v);
        SLOT(p, pkt_all_off[i]) = v;
    }
    long n = (long)PyBytes_GET_SIZE(buf);
    if (PSET(p, P_BUF, buf) || PSET(p, P_SRC, src) || PSET(p, P_DST, dst)
            || PSET_INT(p, P_L3NUM, l3num) || PSET_INT(p, P_PROTO, proto)
            || PSET_INT(p, P_L4OFF, l4off) || PSET_INT(p, P_L4LEN, n - l4off)
            || PSET_INT(p, P_PAYLOAD_OFF, n)) {
        Py_DECREF(p);
        return NULL;
    }
    return p;
}

/* decode._l4: 1 filled (or nothing to fill), 0 the header is damaged (the Python decoder
 * sets l4err), -1 error. */
static int
fill_l4(PyObject *p, const unsigned char *b, long proto, long off, long n)
{
    long avail = n - off;
    const unsigned char *h = b + off;
    switch (proto) {
    case 6: {
        if (avail < 20)
            return 0;
        long doff = (h[12] >> 4) << 2;
        if (doff < 20 || doff > avail)
            return 0;
        if (PSET_INT(p, P_SPORT, be16(h)) || PSET_INT(p, P_DPORT, be16(h + 2))
                || PSET(p, P_SEQ, PyLong_FromUnsignedLong(be32(h + 4)))
                || PSET(p, P_ACK, PyLong_FromUnsignedLong(be32(h + 8)))
                || PSET_INT(p, P_FLAGS, h[13]) || PSET_INT(p, P_WIN, be16(h + 14))
                || PSET_INT(p, P_DOFF, doff) || PSET_INT(p, P_OPTOFF, off + 20)
                || PSET_INT(p, P_OPTLEN, doff - 20) || PSET_INT(p, P_PAYLOAD_OFF, off + doff))
            return -1;
        return 1;
    }
    case 17:
    case 136:
        if (avail < 8)
            return 0;
        if (PSET_INT(p, P_SPORT, be16(h)) || PSET_INT(p, P_DPORT, be16(h + 2))
                || PSET_INT(p, P_PAYLOAD_OFF, off + 8))
            return -1;
        return 1;
    case 1:
    case 58:
        if (avail < 8)
            return 0;
        if (PSET_INT(p, P_ICMP_TYPE, h[0]) || PSET_INT(p, P_ICMP_CODE, h[1])
                || PSET_INT(p, P_SPORT, be16(h + 4)) || PSET_INT(p, P_DPORT, be16(h))
                || PSET_INT(p, P_PAYLOAD_OFF, off + 8))
            return -1;
        return 1;
    case 132:
        if (avail < 12)
            return 0;
        if (PSET_INT(p, P_SPORT, be16(h)) || PSET_INT(p, P_DPORT, be16(h + 2))
                || PSET_INT(p, P_PAYLOAD_OFF, off + 12))
            return -1;
        return 1;
    case 33: {
        if (avail < 12)
            return 0;
        long doff = (long)h[4] << 2;
        if (doff < 12 || doff > avail)
            return 0;
        if (PSET_INT(p, P_SPORT, be16(h)) || PSET_INT(p, P_DPORT, be16(h + 2))
                || PSET_INT(p, P_PAYLOAD_OFF, off + doff))
            return -1;
        return 1;
    }
    default:
        return 1;
    }
}

/* The datagram as bytes of length ``tot`` (the same object when nothing is trimmed). */
static inline PyObject *
trimmed(PyObject *buf, Py_ssize_t n, Py_ssize_t tot)
{
    if (tot == n) {
        Py_INCREF(buf);
        return buf;
    }
    return PyBytes_FromStringAndSize(PyBytes_AS_STRING(buf), tot);
}

/* 1: *out is the packet; 0: not handled (the Python decoder decides); -1: error. */
static int
fast_ipv4(PyObject *buf, PyObject **out)
{
    const unsigned char *b = (const unsigned char *)PyBytes_AS_STRING(buf);
    Py_ssize_t n = PyBytes_GET_SIZE(buf);
    if (n < 20 || n > 0x7FFFFFFF || (b[0] >> 4) != 4)
        return 0;
    long hl = (b[0] & 15) << 2;
    if (hl < 20 || hl > n || sum16(b, hl) != 0xFFFF)
        return 0;
    long tot = (long)be16(b + 2);
    if (tot > n || tot < hl)
        return 0;
    PyObject *nb = trimmed(buf, n, tot);
    if (nb == NULL)
        return -1;
    PyObject *src = PyBytes_FromStringAndSize((const char *)b + 12, 4);
    PyObject *dst = PyBytes_FromStringAndSize((const char *)b + 16, 4);
    long proto = b[9];
    PyObject *p = new_packet(nb, 2, src, dst, proto, hl);
    if (p == NULL)
        return -1;
    if (PSET_INT(p, P_TTL, b[8]) || PSET_INT(p, P_IPID, be16(b + 4)) || PSET_INT(p, P_TOS, b[1]))
        goto error;
    unsigned frag = be16(b + 6);
    if (frag & 0x3FFF) {
        long fragoff = (long)(frag & 0x1FFF) << 3;
        if (PSET_INT(p, P_FRAGOFF, fragoff))
            goto error;
        PyObject *mf = (frag & 0x2000) ? Py_True : Py_False;
        Py_INCREF(mf);
        slot_set(p, PK(P_MF), mf);
        if (fragoff) {
            *out = p;
            return 1;
        }
    }
    int r = fill_l4(p, b, proto, hl, tot);
    if (r <= 0) {
        Py_DECREF(p);
        return r;
    }
    *out = p;
    return 1;
error:
    Py_DECREF(p);
    return -1;
}

static const unsigned char ip6_loopback[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};

/* The common IPv6 case only: TCP, UDP or ICMPv6 right after the fixed header. */
static int
fast_ipv6(PyObject *buf, PyObject *loopback, PyObject **out)
{
    const unsigned char *b = (const unsigned char *)PyBytes_AS_STRING(buf);
    Py_ssize_t n = PyBytes_GET_SIZE(buf);
    if (n < 40 || n > 0x7FFFFFFF || (b[0] >> 4) != 6)
        return 0;
    const unsigned char *src = b + 8, *dst = b + 24;
    int outside = loopback == Py_False;
    if (dst[0] == 0xFF) {
        int scope = dst[1] & 15;
        if (scope == 0 || (scope == 1 && outside))
            return 0;
    } else if (outside && memcmp(dst, ip6_loopback, 16) == 0) {
        return 0;
    }
    if (src[0] == 0xFF)
        return 0;
    long nxt = b[6];
    if (nxt != 6 && nxt != 17 && nxt != 58)
        return 0;
    long tot = (long)be16(b + 4) + 40;
    if (tot > n)
        return 0;
    PyObject *nb = trimmed(buf, n, tot);
    if (nb == NULL)
        return -1;
    PyObject *s = PyBytes_FromStringAndSize((const char *)src, 16);
    PyObject *d = PyBytes_FromStringAndSize((const char *)dst, 16);
    PyObject *p = new_packet(nb, 10, s, d, nxt, 40);
    if (p == NULL)
        return -1;
    if (PSET_INT(p, P_TTL, b[7]) || PSET_INT(p, P_TOS, (be32(b) >> 20) & 0xFF)) {
        Py_DECREF(p);
        return -1;
    }
    int r = fill_l4(p, b, nxt, 40, tot);
    if (r <= 0) {
        Py_DECREF(p);
        return r;
    }
    *out = p;
    return 1;
}

static PyObject *
fallback_or_error(PyObject *fb, const char *name, PyObject *const *args, Py_ssize_t nargs,
                  PyObject *kwnames)
{
    if (fb == NULL) {
        PyErr_Format(PyExc_RuntimeError, "_speedups: %s fallback not set", name);
        return NULL;
    }
    return PyObject_Vectorcall(fb, args, nargs, kwnames);
}

static PyObject *
sp_decode_ipv4(PyObject *mod, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (kwnames == NULL && nargs == 1 && PyBytes_CheckExact(args[0]) && pkt_map.type) {
        PyObject *p;
        int r = fast_ipv4(args[0], &p);
        if (r > 0)
            return p;
        if (r < 0)
            return NULL;
    }
    return fallback_or_error(fb_decode_ipv4, "decode_ipv4", args, nargs, kwnames);
}

static PyObject *
sp_decode_ipv6(PyObject *mod, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (kwnames == NULL && (nargs == 1 || nargs == 2) && PyBytes_CheckExact(args[0])
            && pkt_map.type) {
        PyObject *p;
        int r = fast_ipv6(args[0], nargs == 2 ? args[1] : Py_None, &p);
        if (r > 0)
            return p;
        if (r < 0)
            return NULL;
    }
    return fallback_or_error(fb_decode_ipv6, "decode_ipv6", args, nargs, kwnames);
}

static PyObject *
sp_decode_ip(PyObject *mod, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (kwnames == NULL && (nargs == 1 || nargs == 2) && PyBytes_CheckExact(args[0])
            && PyBytes_GET_SIZE(args[0]) > 0 && pkt_map.type) {
        PyObject *p;
        int v = ((const unsigned char *)PyBytes_AS_STRING(args[0]))[0] >> 4, r = 0;
        if (v == 4)
            r = fast_ipv4(args[0], &p);
        else if (v == 6)
            r = fast_ipv6(args[0], nargs == 2 ? args[1] : Py_None, &p);
        if (r > 0)
            return p;
        if (r < 0)
            return NULL;
    }
    return fallback_or_error(fb_decode_ip, "decode_ip", args, nargs, kwnames);
}

/* ---------------------------------------------------------------------------------------
 * TCP (conntrack/proto/tcp.py): Tcp.error, Tcp.new and Tcp.packet as method descriptors of
 * the Tcp class. Fast paths: header checks that pass; a SYN opening SYN_SENT; a segment
 * without RST whose transition is a plain one (not ignored, invalid, a reopen or a challenge
 * ACK) and which passes all four window checks, including a SYN/ACK initialising its
 * direction. Everything else is TcpPy's. Tcp.packet works on a copy of Conn.l4 and writes
 * it back only when the packet is its own, so a late fallback leaves no trace.
 */

enum { C_L4, C_STATE, C_STATUS, C_EVENTS, C_N };
static const char *const conn_names[C_N] = {"l4", "state", "status", "events"};
static SlotMap conn_map;

/* Settings: the checksum switch, the retransmission limit and the timeouts used here. */
enum {
    S_CHECKSUM, S_MAX_RETRANS, S_T_MAX_RETRANS, S_T_UNACK, S_T_STATE0,
    S_N = S_T_STATE0 + 10
};
static const char *const settings_fixed[S_T_STATE0] = {
    "nf_conntrack_checksum", "nf_conntrack_tcp_max_retrans",
    "nf_conntrack_tcp_timeout_max_retrans", "nf_conntrack_tcp_timeout_unacknowledged",
};
static SlotMap settings_map;
static int state_has_sysctl[10];            /* 0: fixed timeout (SYN_SENT2) */
static PyObject *syn_sent2_timeout;

static unsigned char tcp_index[256], tcp_flat[2 * 6 * 10], tcp_valid[256];
static PyObject *fb_tcp_error, *fb_tcp_packet, *fb_tcp_new;
static PyObject *l4_factory;        /* makes a zeroed Conn.l4 */
static PyObject *str_settings, *str_refresh_acct;

/* the layout of Conn.l4 and the constants the fast path relies on; tcp_methods checks the
 * Python module's values against these */
#define TD_END 0
#define TD_MAXEND 1
#define TD_MAXWIN 2
#define TD_MAXACK 3
#define TD_SCALE 4
#define TD_FLAGS 5
#define SEEN_SIZE 6
#define LAST_DIR 12
#define RETRANS 13
#define LAST_INDEX 14
#define LAST_SEQ 15
#define LAST_ACK 16
#define LAST_END 17
#define LAST_WIN 18
#define LAST_WSCALE 19
#define LAST_FLAGS 20
#define SEQ_OFFSET 21
#define L4_SIZE 23

#define F_WINDOW_SCALE 0x01
#define F_SACK_PERM 0x02
#define F_CLOSE_INIT 0x04
#define F_BE_LIBERAL 0x08
#define F_DATA_UNACK 0x10
#define F_MAXACK_SET 0x20
#define F_EXP_CHALLENGE_ACK 0x40
#define F_SIMOPEN 0x80

#define TH_FIN 0x01
#define TH_SYN 0x02
#define TH_RST 0x04
#define TH_ACK 0x10

#define S_SYN_SENT 1
#define S_SYN_RECV 2
#define S_ESTABLISHED 3
#define S_FIN_WAIT 4
#define S_LAST_ACK 6
#define S_SYN_SENT2 9
#define S_TIME_WAIT 7
#define S_MAX 10

#define IX_SYN 0
#define IX_ACK 3
#define IX_RST 4
#define IX_NONE 5

#define IPS_SEEN_REPLY 0x2
#define IPS_ASSURED 0x4
#define IPS_SEQ_ADJUST 0x40
#define IPCT_ASSURED 0x10
#define IPS_DYING 0x200
#define IPCT_PROTOINFO 0x20

#define MAXACKWINCONST 66000
#define MAX_WSCALE 14

static const struct { const char *name; long value; } tcp_layout[] = {
    {"TD_END", TD_END}, {"TD_MAXEND", TD_MAXEND}, {"TD_MAXWIN", TD_MAXWIN},
    {"TD_MAXACK", TD_MAXACK}, {"TD_SCALE", TD_SCALE}, {"TD_FLAGS", TD_FLAGS},
    {"SEEN_SIZE", SEEN_SIZE}, {"LAST_DIR", LAST_DIR}, {"RETRANS", RETRANS},
    {"LAST_INDEX", LAST_INDEX}, {"LAST_SEQ", LAST_SEQ}, {"LAST_ACK", LAST_ACK},
    {"LAST_END", LAST_END}, {"LAST_WIN", LAST_WIN}, {"LAST_WSCALE", LAST_WSCALE},
    {"LAST_FLAGS", LAST_FLAGS}, {"SEQ_OFFSET", SEQ_OFFSET}, {"L4_SIZE", L4_SIZE},
    {"IP_CT_TCP_FLAG_WINDOW_SCALE", F_WINDOW_SCALE}, {"IP_CT_TCP_FLAG_SACK_PERM", F_SACK_PERM},
    {"IP_CT_TCP_FLAG_BE_LIBERAL", F_BE_LIBERAL}, {"IP_CT_TCP_FLAG_CLOSE_INIT", F_CLOSE_INIT},
    {"IP_CT_TCP_FLAG_DATA_UNACKNOWLEDGED", F_DATA_UNACK},
    {"IP_CT_TCP_FLAG_MAXACK_SET", F_MAXACK_SET}, {"IP_CT_EXP_CHALLENGE_ACK", F_EXP_CHALLENGE_ACK},
    {"IP_CT_TCP_SIMULTANEOUS_OPEN", F_SIMOPEN},
    {"TCP_CONNTRACK_SYN_SENT", S_SYN_SENT}, {"TCP_CONNTRACK_SYN_RECV", S_SYN_RECV},
    {"TCP_CONNTRACK_ESTABLISHED", S_ESTABLISHED}, {"TCP_CONNTRACK_FIN_WAIT", S_FIN_WAIT},
    {"TCP_CONNTRACK_LAST_ACK", S_LAST_ACK}, {"TCP_CONNTRACK_TIME_WAIT", S_TIME_WAIT},
    {"TCP_CONNTRACK_SYN_SENT2", S_SYN_SENT2},
    {"TCP_CONNTRACK_MAX", S_MAX}, {"TCP_SYN_SET", IX_SYN}, {"TCP_ACK_SET", IX_ACK},
    {"TCP_RST_SET", IX_RST}, {"TCP_NONE_SET", IX_NONE}, {"IPS_SEEN_REPLY", IPS_SEEN_REPLY},
    {"IPS_ASSURED", IPS_ASSURED},
    {"IPS_SEQ_ADJUST", IPS_SEQ_ADJUST}, {"IPCT_ASSURED", IPCT_ASSURED},
    {"IPCT_PROTOINFO", IPCT_PROTOINFO}, {"MAXACKWINCONST", MAXACKWINCONST}, {"NF_ACCEPT", 1},
    {"CONTINUE", 1}, {"TCP_MAX_WSCALE", MAX_WSCALE},
    {"NF_INET_PRE_ROUTING", 0}, {"IPS_CONFIRMED", 0x8}, {"IPS_DYING", IPS_DYING},
};

static inline int
after32(uint32_t a, uint32_t b)     /* after(a, b): (b - a) mod 2**32 >= 2**31 */
{
    return (uint32_t)(b - a) > 0x7FFFFFFFu;
}

/* The core's Tracker (bound by tracker_methods; until then its attributes are looked up) */
enum { T_L4, T_TABLE, T_IS24, T_EXPECT, T_SETTINGS, T_SINK, T_N };
static const char *const tracker_names[T_N] = {"l4", "table", "is_24", "expect", "settings",
                                               "sink"};
static SlotMap tracker_map;

/* tracker.settings (a new reference), or NULL (no exception) */
static PyObject *
tracker_settings(PyObject *tracker)
{
    PyObject *st;
    if (tracker_map.type != NULL && Py_TYPE(tracker) == tracker_map.type) {
        st = SLOT(tracker, tracker_map.off[T_SETTINGS]);
        Py_XINCREF(st);
        return st;
    }
    st = PyObject_GetAttr(tracker, str_settings);
    if (st == NULL)
        PyErr_Clear();
    return st;
}

/* The TCP option at or after *i (NOPs skipped), below end: 1 with its kind and size; 0 at
 * EOL, at the end, or at a malformed length (the kernel's option walks stop there). */
static inline int
next_option(const unsigned char *b, long *i, long end, unsigned *kind, long *size)
{
    while (*i < end) {
        unsigned k = b[*i];
        if (k == 0)
            return 0;
        if (k == 1) {
            (*i)++;
            continue;
        }
        if (*i + 1 >= end)
            return 0;
        long sz = b[*i + 1];
        if (sz < 2 || sz > end - *i)
            return 0;
        *kind = k;
        *size = sz;
        return 1;
    }
    return 0;
}

/* tcpopt.highest_sack (the kernel's tcp_sack) */
static uint32_t
highest_sack(const unsigned char *b, long n, long off, long length, uint32_t sack)
{
    long end = off + length;
    if (end > n)
        end = n;
    if (length == 12 && off + 4 <= n && b[off] == 1 && b[off + 1] == 1 && b[off + 2] == 8
            && b[off + 3] == 10)
        return sack;
    long i = off, size;
    unsigned kind;
    while (next_option(b, &i, end, &kind, &size)) {
        if (kind == 5 && size >= 10 && (size - 2) % 8 == 0) {
            for (long j = i + 6; j < i + size; j += 8) {
                uint32_t edge = be32(b + j);
                if (after32(edge, sack))
                    sack = edge;
            }
            return sack;
        }
        i += size;
    }
    return sack;
}

/* 1: CONTINUE; 0: let TcpPy.error decide (it also sets the reason); -1: error. */
static int
fast_tcp_error(PyObject *tracker, PyObject *pkt, PyObject *hook)
{
    if (Py_TYPE(pkt) != pkt_map.type)
        return 0;
    PyObject *buf = SLOT(pkt, PK(P_BUF));
    if (buf == NULL || !PyBytes_CheckExact(buf))
        return 0;
    Py_ssize_t n = PyBytes_GET_SIZE(buf);
    long long off, h;
    if (!slot_ll(pkt, PK(P_L4OFF), 0, n, &off) || !obj_ll(hook, LLONG_MIN, LLONG_MAX, &h))
        return 0;
    const unsigned char *b = (const unsigned char *)PyBytes_AS_STRING(buf);
    Py_ssize_t tcplen = n - (Py_ssize_t)off;
    if (tcplen < 20)
        return 0;
    long doff = (b[off + 12] >> 4) << 2;
    if (doff < 20 || tcplen < doff)
        return 0;
    if (h == 0) {
        PyObject *settings = tracker_settings(tracker);
        if (settings == NULL)
            return 0;
        int ok = Py_TYPE(settings) == settings_map.type;
        long long check = 0;
        if (ok)
            ok = slot_ll(settings, settings_map.off[S_CHECKSUM], LLONG_MIN, LLONG_MAX, &check);
        Py_DECREF(settings);
        if (!ok)
            return 0;
        if (check) {
            PyObject *src = SLOT(pkt, PK(P_SRC)), *dst = SLOT(pkt, PK(P_DST));
            if (src == NULL || dst == NULL || !PyBytes_CheckExact(src) || !PyBytes_CheckExact(dst))
                return 0;
            if (!l4_ok(b + off, tcplen, src, dst, 6, tcplen))
                return 0;
        }
    }
    if (!tcp_valid[b[off + 13]])
        return 0;
    return 1;
}

static PyObject *
sp_tcp_error(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    /* error(self, tracker, pkt, hook, now) */
    if (kwnames == NULL && nargs == 4) {
        int r = fast_tcp_error(args[0], args[1], args[2]);
        if (r > 0)
            return PyLong_FromLong(1);
        if (r < 0)
            return NULL;
    }
    return call_with_self(fb_tcp_error, self, args, nargs, kwnames);
}

/* A settings value as an exact int (object borrowed). */
static inline int
setting(PyObject *settings, int i, PyObject **obj, long long *val)
{
    PyObject *v = SLOT(settings, settings_map.off[i]);
    if (v == NULL || !obj_ll(v, LLONG_MIN, LLONG_MAX, val))
        return 0;
    *obj = v;
    return 1;
}

/* tcpopt.wscale_sackperm (the kernel's tcp_options): window scale or -1, SACK permitted */
static void
wscale_sackperm(const unsigned char *b, long n, long off, long length, int *wscale,
                int *sack_perm)
{
    long end = off + length;
    if (end > n)
        end = n;
    *wscale = -1;
    *sack_perm = 0;
    long i = off, size;
    unsigned kind;
    while (next_option(b, &i, end, &kind, &size)) {
        if (kind == 4 && size == 2) {
            *sack_perm = 1;
        } else if (kind == 3 && size == 3) {
            *wscale = b[i + 2];
            if (*wscale > MAX_WSCALE)
                *wscale = MAX_WSCALE;
        }
        i += size;
    }
}

/* The packet fields the TCP code reads (checked once). */
typedef struct {
    long long flags, seq, ack, win, l4len, doff, optoff, optlen;
    const unsigned char *b;     /* pkt.buf, NULL when it is not bytes */
    long n;
    uint32_t end;
} Seg;

static int
read_seg(PyObject *pkt, Seg *g)
{
    if (!slot_ll(pkt, PK(P_FLAGS), 0, 255, &g->flags)
            || !slot_ll(pkt, PK(P_SEQ), 0, 0xFFFFFFFFLL, &g->seq)
            || !slot_ll(pkt, PK(P_ACK), 0, 0xFFFFFFFFLL, &g->ack)
            || !slot_ll(pkt, PK(P_WIN), 0, 0xFFFF, &g->win)
            || !slot_ll(pkt, PK(P_L4LEN), 0, 0xFFFFFFFFLL, &g->l4len)
            || !slot_ll(pkt, PK(P_DOFF), 0, 0xFFFFFFFFLL, &g->doff)
            || !slot_ll(pkt, PK(P_OPTOFF), 0, 0xFFFFFFFFLL, &g->optoff)
            || !slot_ll(pkt, PK(P_OPTLEN), 0, 0xFFFFFFFFLL, &g->optlen))
        return 0;
    PyObject *buf = SLOT(pkt, PK(P_BUF));
    if (buf != NULL && PyBytes_CheckExact(buf) && PyBytes_GET_SIZE(buf) <= 0x7FFFFFFF) {
        g->b = (const unsigned char *)PyBytes_AS_STRING(buf);
        g->n = (long)PyBytes_GET_SIZE(buf);
    } else {
        g->b = NULL;
        g->n = 0;
    }
    g->end = (uint32_t)(g->seq + g->l4len - g->doff + (g->flags & TH_FIN)
                        + ((g->flags >> 1) & 1));
    return 1;
}

/* ``l4`` as 23 native u32 (the view must be released). 0: not an array('I') of 23. */
static int
get_st_of(PyObject *l4, Py_buffer *view)
{
    if (PyObject_GetBuffer(l4, view, PyBUF_WRITABLE | PyBUF_FORMAT) < 0) {
        PyErr_Clear();
        return 0;
    }
    if (view->itemsize != 4 || view->len != 4 * L4_SIZE || view->format == NULL
            || strcmp(view->format, "I") != 0) {
        PyBuffer_Release(view);
        return 0;
    }
    return 1;
}

static int
get_st(PyObject *ct, Py_buffer *view)
{
    PyObject *l4 = SLOT(ct, conn_map.off[C_L4]);
    return l4 != NULL && get_st_of(l4, view);
}

/* tcp._init_sender on the working copy. 0: the options cannot be read here. */
static int
init_sender(uint32_t *st, int s, int r, const Seg *g, int dir)
{
    st[s + TD_END] = g->end;
    st[s + TD_MAXEND] = g->end;
    st[s + TD_MAXWIN] = g->win ? (uint32_t)g->win : 1;
    if (g->optlen) {
        if (g->b == NULL)
            return 0;
        int wscale, sack_perm;
        wscale_sackperm(g->b, g->n, (long)g->optoff, (long)g->optlen, &wscale, &sack_perm);
        uint32_t f = st[s + TD_FLAGS] & F_BE_LIBERAL;
        if (sack_perm)
            f |= F_SACK_PERM;
        if (wscale >= 0) {
            f |= F_WINDOW_SCALE;
            st[s + TD_SCALE] = (uint32_t)wscale;
        } else {
            st[s + TD_SCALE] = 0;
        }
        st[s + TD_FLAGS] = f;
    }
    if (dir == 1 && !(st[s + TD_FLAGS] & st[r + TD_FLAGS] & F_WINDOW_SCALE)) {
        st[s + TD_SCALE] = 0;
        st[r + TD_SCALE] = 0;
    }
    return 1;
}

/* tcp.tcp_in_window on the working copy ``st``, for the cases it accepts. 1: accepted
 * (st updated), 0: anything else (IGNORE, INVALID, a case left to Python). */
static int
in_window(uint32_t *st, int old, long long status, int dir, int index, const Seg *g)
{
    int s = SEEN_SIZE * dir, r = SEEN_SIZE - s;
    long long flags = g->flags;
    uint32_t seq = (uint32_t)g->seq, end = g->end;
    uint32_t ack = (uint32_t)g->ack, sack = ack, win_raw = (uint32_t)g->win;
    if ((st[r + TD_FLAGS] & F_SACK_PERM) && g->optlen) {
        if (g->b == NULL)
            return 0;
        sack = highest_sack(g->b, g->n, (long)g->optoff, (long)g->optlen, sack);
    }
    if (status & IPS_SEQ_ADJUST) {
        uint32_t off = st[SEQ_OFFSET + 1 - dir];
        ack -= off;
        sack -= off;
    }
    if (st[s + TD_MAXWIN] == 0) {
        if (!(flags & TH_SYN))
            return 0;               /* mid-stream pickup of this direction: TcpPy */
        if (!init_sender(st, s, r, g, dir))
            return 0;
        if (!(flags & TH_ACK))
            return 1;               /* simultaneous open */
    } else if ((flags & TH_SYN) && after32(end, st[s + TD_END])
               && (old == S_SYN_SENT || old == S_SYN_RECV)) {
        if (!init_sender(st, s, r, g, dir))     /* a reinitialised TCP (higher ISN) */
            return 0;
        if (dir == 1 && !(flags & TH_ACK))
            return 1;
    }
    if (!(flags & TH_ACK))
        ack = sack = st[r + TD_END];
    /* (RST: not here) */
    uint32_t s_end = st[s + TD_END], s_maxend = st[s + TD_MAXEND], r_end = st[r + TD_END];
    uint32_t r_maxwin = st[r + TD_MAXWIN], maxackwin = st[s + TD_MAXWIN];
    if (maxackwin < MAXACKWINCONST)
        maxackwin = MAXACKWINCONST;
    if ((uint32_t)(seq - s_maxend - 1) <= 0x7FFFFFFFu                              /* I */
            || (uint32_t)(sack - r_end - 1) <= 0x7FFFFFFFu                          /* III */
            || (r_maxwin && (uint32_t)(s_end - r_maxwin - 1 - end) <= 0x7FFFFFFFu)  /* II */
            || (uint32_t)(r_end - maxackwin - 1 - sack) <= 0x7FFFFFFFu)             /* IV */
        return 0;                   /* out of window: TcpPy logs, ignores or invalidates */
    uint64_t win = win_raw;
    if (!(flags & TH_SYN)) {
        if (st[s + TD_SCALE] > 31)
            return 0;
        win <<= st[s + TD_SCALE];
    }
    uint32_t swin = (uint32_t)(win + sack - ack);
    if (st[s + TD_MAXWIN] < swin)
        st[s + TD_MAXWIN] = swin;
    if (after32(end, s_end)) {
        st[s + TD_END] = end;
        st[s + TD_FLAGS] |= F_DATA_UNACK;
    }
    if (flags & TH_ACK) {
        if (!(st[s + TD_FLAGS] & F_MAXACK_SET)) {
            st[s + TD_MAXACK] = ack;
            st[s + TD_FLAGS] |= F_MAXACK_SET;
        } else if (after32(ack, st[s + TD_MAXACK])) {
            st[s + TD_MAXACK] = ack;
        }
    }
    if (r_maxwin && after32(end, s_maxend))
        st[r + TD_MAXWIN] = r_maxwin + end - s_maxend;
    uint32_t edge = (uint32_t)(sack + win);
    if (after32(edge, st[r + TD_MAXEND] - 1))
        st[r + TD_MAXEND] = win ? edge : edge + 1;
    if (ack == r_end)
        st[r + TD_FLAGS] &= ~F_DATA_UNACK & 0xFF;
    if (index == IX_ACK) {
        if (st[LAST_DIR] == (uint32_t)dir && st[LAST_SEQ] == seq && st[LAST_ACK] == ack
                && st[LAST_END] == end && st[LAST_WIN] == win_raw) {
            st[RETRANS] = (st[RETRANS] + 1) & 0xFF;
        } else {
            st[LAST_DIR] = (uint32_t)dir;
            st[LAST_SEQ] = seq;
            st[LAST_ACK] = ack;
            st[LAST_END] = end;
            st[LAST_WIN] = win_raw;
            st[RETRANS] = 0;
        }
    }
    return 1;
}

/* ---------------------------------------------------------------------------------------
 * The core (conntrack/core.py Tracker): refresh_acct and conntrack_in's common case.
 */

enum { TB_HASH, TB_SOONEST, TB_N };
static const char *const table_names[TB_N] = {"hash", "soonest"};
static SlotMap table_map;
enum { CX_ORIG, CX_TIMEOUT, CX_BUCKET, CX_ACCT, CX_FC, CX_HELP, CX_N };
static const char *const conn2_names[CX_N] = {"orig", "timeout", "bucket", "acct", "fc",
                                              "help"};
static SlotMap conn2_map;
static PyTypeObject *tcp_cls;                /* the class tcp_methods accelerated */
static PyObject *fb_conntrack_in, *str_file, *int_zero, *int_one, *int_three;

#define IPS_EXPECTED 0x1
#define IPS_CONFIRMED 0x8
#define IPS_FIXED_TIMEOUT 0x400
#define IPCT_REPLY 0x8

/* Tracker.refresh_acct(ct, pkt, dir, now, timeout) (nf_ct_refresh_acct): the timeout moves
 * unless FIXED_TIMEOUT, an entry now due before its expiry bucket is re-filed (Table.file,
 * in Python), the direction's packet and byte counters go up. A tracker of another class,
 * or an entry whose slots are not what the core makes, gets the Python method. */
static int
refresh_acct(PyObject *tracker, PyObject *ct, PyObject *pkt, int dir, PyObject *dirobj,
             PyObject *now, PyObject *timeout)
{
    long long status;
    PyObject *acct = NULL, *buf = NULL;
    int fast = tracker_map.type != NULL && Py_TYPE(tracker) == tracker_map.type
        && Py_TYPE(ct) == conn2_map.type
        && slot_ll(ct, conn_map.off[C_STATUS], 0, LLONG_MAX, &status);
    if (fast) {
        acct = SLOT(ct, conn2_map.off[CX_ACCT]);
        buf = SLOT(pkt, PK(P_BUF));
        fast = acct != NULL && PyList_CheckExact(acct) && PyList_GET_SIZE(acct) == 4
            && PyLong_CheckExact(PyList_GET_ITEM(acct, 2 * dir))
            && PyLong_CheckExact(PyList_GET_ITEM(acct, 2 * dir + 1))
            && buf != NULL && PyBytes_CheckExact(buf)
            && SLOT(ct, conn2_map.off[CX_BUCKET]) != NULL;
    }
    if (!fast) {
        /* stack[0] is scratch space */
        PyObject *stack[7] = {NULL, tracker, ct, pkt, dirobj, now, timeout};
        PyObject *res = PyObject_VectorcallMethod(str_refresh_acct, stack + 1,
                                                  6 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        if (res == NULL)
            return -1;
        Py_DECREF(res);
        return 0;
    }
    if (!(status & IPS_FIXED_TIMEOUT)) {
        PyObject *t = PyNumber_Add(now, timeout);
        if (t == NULL)
            return -1;
        Py_INCREF(t);
        if (slot_set(ct, conn2_map.off[CX_TIMEOUT], t) < 0) {
            Py_DECREF(t);
            return -1;
        }
        int lt = PyObject_RichCompareBool(t, SLOT(ct, conn2_map.off[CX_BUCKET]), Py_LT);
        Py_DECREF(t);
        if (lt < 0)
            return -1;
        if (lt) {
            PyObject *table = SLOT(tracker, tracker_map.off[T_TABLE]);
            if (table == NULL) {
                PyErr_SetString(PyExc_AttributeError, "Tracker.table");
                return -1;
            }
            PyObject *r = PyObject_CallMethodObjArgs(table, str_file, ct, now, NULL);
            if (r == NULL)
                return -1;
            Py_DECREF(r);
        }
    }
    PyObject *np = PyNumber_Add(PyList_GET_ITEM(acct, 2 * dir), int_one);
    if (np == NULL)
        return -1;
    PyList_SetItem(acct, 2 * dir, np);
    PyObject *len = PyLong_FromSsize_t(PyBytes_GET_SIZE(buf));
    if (len == NULL)
        return -1;
    PyObject *nb = PyNumber_Add(PyList_GET_ITEM(acct, 2 * dir + 1), len);
    Py_DECREF(len);
    if (nb == NULL)
        return -1;
    PyList_SetItem(acct, 2 * dir + 1, nb);
    return 0;
}


/* Tcp.packet fast path. 1: *result set; 0: not handled, nothing changed; -1: error.
 * Works on a copy of Conn.l4 and writes it back only once the packet is known to be ours. */
static int
fast_tcp_packet(PyObject *tracker, PyObject *ct, PyObject *pkt, PyObject *dirobj,
                PyObject *now, PyObject **result)
{
    if (Py_TYPE(pkt) != pkt_map.type || Py_TYPE(ct) != conn_map.type)
        return 0;
    long long dirll, oldll, status, events;
    Seg g;
    if (!obj_ll(dirobj, 0, 1, &dirll)
            || !slot_ll(ct, conn_map.off[C_STATE], 0, 9, &oldll)
            || !slot_ll(ct, conn_map.off[C_STATUS], 0, LLONG_MAX, &status)
            || !slot_ll(ct, conn_map.off[C_EVENTS], 0, LLONG_MAX, &events)
            || !read_seg(pkt, &g))
        return 0;
    int dir = (int)dirll, old = (int)oldll;
    int index = tcp_index[g.flags];
    if (index == IX_RST)
        return 0;               /* RST checks: TcpPy */
    int new = tcp_flat[(dir * 6 + index) * 10 + old];
    if (new >= S_MAX || (new == S_SYN_SENT && old >= S_TIME_WAIT))
        return 0;               /* invalid, ignored, reopen: TcpPy */

    Py_buffer view;
    if (!get_st(ct, &view))
        return 0;
    int rc = 0;
    PyObject *settings = NULL;
    uint32_t st[L4_SIZE];
    memcpy(st, view.buf, sizeof(st));
    int s = SEEN_SIZE * dir;

    if (new == S_TIME_WAIT) {
        if (old == S_LAST_ACK && index == IX_ACK && st[LAST_DIR] != (uint32_t)dir
                && st[LAST_INDEX] == IX_SYN && (st[LAST_FLAGS] & F_EXP_CHALLENGE_ACK))
            goto done;          /* challenge ACK: TcpPy */
    } else if (new == S_SYN_SENT2) {
        st[LAST_FLAGS] |= F_SIMOPEN;
    } else if (new == S_SYN_RECV) {
        if (dir == 1 && index == IX_ACK && (st[LAST_FLAGS] & F_SIMOPEN))
            new = S_ESTABLISHED;
    }

    /* settings, for the state actually entered */
    settings = tracker_settings(tracker);
    if (settings == NULL)
        goto done;
    PyObject *o_tmaxre, *o_tunack, *o_tnew, *o_ignored;
    long long maxre, tmaxre, tunack, tnew;
    int ok = Py_TYPE(settings) == settings_map.type
        && setting(settings, S_MAX_RETRANS, &o_ignored, &maxre)
        && setting(settings, S_T_MAX_RETRANS, &o_tmaxre, &tmaxre)
        && setting(settings, S_T_UNACK, &o_tunack, &tunack);
    if (ok) {
        if (state_has_sysctl[new])
            ok = setting(settings, S_T_STATE0 + new, &o_tnew, &tnew);
        else
            ok = obj_ll(o_tnew = syn_sent2_timeout, LLONG_MIN, LLONG_MAX, &tnew);
    }
    if (!ok || !in_window(st, old, status, dir, index, &g))
        goto done;
    /* (the settings objects stay alive through ``settings`` until the end) */

    /* ---- the packet is ours: commit; nothing below may fall back ---- */
    st[LAST_INDEX] = (uint32_t)index;
    st[LAST_DIR] = (uint32_t)dir;
    if (old != new && new == S_FIN_WAIT)
        st[s + TD_FLAGS] |= F_CLOSE_INIT;
    memcpy(view.buf, st, sizeof(st));
    PyBuffer_Release(&view);
    view.obj = NULL;
    rc = -1;
    if (slot_set(ct, conn_map.off[C_STATE], PyLong_FromLong(new)) < 0)
        goto done;
    if (old != new) {
        events |= IPCT_PROTOINFO;
        if (slot_set(ct, conn_map.off[C_EVENTS], PyLong_FromLongLong(events)) < 0)
            goto done;
    }
    PyObject *timeout;
    long long tval;
    if (st[RETRANS] >= maxre && tnew > tmaxre) {
        timeout = o_tmaxre;
        tval = tmaxre;
    } else if (((st[TD_FLAGS] | st[SEEN_SIZE + TD_FLAGS]) & F_DATA_UNACK) && tnew > tunack) {
        timeout = o_tunack;
        tval = tunack;
    } else if (st[LAST_WIN] == 0 && tnew > tmaxre) {
        timeout = o_tmaxre;
        tval = tmaxre;
    } else {
        timeout = o_tnew;
        tval = tnew;
    }
    if (!(status & IPS_SEEN_REPLY)) {
        if (index == IX_SYN && old == S_SYN_SENT) {
            /* a retransmitted SYN must not keep the entry alive: no refresh */
            *result = PyLong_FromLong(1);
            rc = *result ? 1 : -1;
            goto done;
        }
        if (new == S_ESTABLISHED && tval > tunack)
            timeout = o_tunack;
    } else if (!(status & IPS_ASSURED) && (old == S_SYN_RECV || old == S_ESTABLISHED)
               && new == S_ESTABLISHED) {
        if (slot_set(ct, conn_map.off[C_STATUS], PyLong_FromLongLong(status | IPS_ASSURED)) < 0
                || slot_set(ct, conn_map.off[C_EVENTS],
                            PyLong_FromLongLong(events | IPCT_ASSURED)) < 0)
            goto done;
    }
    {
        Py_INCREF(timeout);     /* (borrowed from a Settings slot until now) */
        int ok = refresh_acct(tracker, ct, pkt, dir, dirobj, now, timeout);
        Py_DECREF(timeout);
        if (ok < 0)
            goto done;
    }
    *result = PyLong_FromLong(1);
    rc = *result ? 1 : -1;
done:
    if (view.obj != NULL)
        PyBuffer_Release(&view);
    Py_XDECREF(settings);
    return rc;
}


/* Tcp.new fast path: a SYN opening SYN_SENT. 1: *result set; 0: TcpPy; -1: error. */
static int
fast_tcp_new(PyObject *ct, PyObject *pkt, PyObject **result)
{
    if (Py_TYPE(pkt) != pkt_map.type || Py_TYPE(ct) != conn_map.type || l4_factory == NULL)
        return 0;
    Seg g;
    if (!read_seg(pkt, &g))
        return 0;
    if (tcp_flat[tcp_index[g.flags] * 10] != S_SYN_SENT)
        return 0;               /* invalid new, mid-stream pickup: TcpPy */
    int wscale = -1, sack_perm = 0;
    if (g.optlen) {
        if (g.b == NULL)
            return 0;
        wscale_sackperm(g.b, g.n, (long)g.optoff, (long)g.optlen, &wscale, &sack_perm);
    }
    PyObject *arr = PyObject_CallNoArgs(l4_factory);
    if (arr == NULL)
        return -1;
    Py_buffer view;
    if (!get_st_of(arr, &view)) {
        Py_DECREF(arr);
        return 0;
    }
    uint32_t *st = (uint32_t *)view.buf;
    st[TD_END] = g.end;
    st[TD_MAXWIN] = g.win ? (uint32_t)g.win : 1;
    st[TD_MAXEND] = g.end;
    if (wscale >= 0) {
        st[TD_SCALE] = (uint32_t)wscale;
        st[TD_FLAGS] = F_WINDOW_SCALE;
    }
    if (sack_perm)
        st[TD_FLAGS] |= F_SACK_PERM;
    st[LAST_INDEX] = IX_NONE;
    PyBuffer_Release(&view);
    if (slot_set(ct, conn_map.off[C_L4], arr) < 0
            || slot_set(ct, conn_map.off[C_STATE], PyLong_FromLong(0)) < 0)
        return -1;
    Py_INCREF(Py_True);
    *result = Py_True;
    return 1;
}

static PyObject *
sp_tcp_new(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    /* new(self, tracker, ct, pkt, now) */
    if (kwnames == NULL && nargs == 4) {
        PyObject *res;
        int r = fast_tcp_new(args[1], args[2], &res);
        if (r > 0)
            return res;
        if (r < 0)
            return NULL;
    }
    return call_with_self(fb_tcp_new, self, args, nargs, kwnames);
}

static PyObject *
sp_tcp_packet(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    /* packet(self, tracker, ct, pkt, dir, ctinfo, now) */
    if (kwnames == NULL && nargs == 6) {
        PyObject *res;
        int r = fast_tcp_packet(args[0], args[1], args[2], args[3], args[5], &res);
        if (r > 0)
            return res;
        if (r < 0)
            return NULL;
    }
    return call_with_self(fb_tcp_packet, self, args, nargs, kwnames);
}


/* Tracker.conntrack_in(pkt, now, hook) fast path: a TCP segment (no template, not yet
 * attached, no decoder damage) of a live confirmed entry, in the reply direction or in the
 * original direction once a reply was seen (ctinfo ESTABLISHED / ESTABLISHED_REPLY), that
 * passes tcp_error and Tcp.packet's C path. 1: *result set; 0: TrackerPy's path (nothing
 * was changed); -1: error. */
static int established_in(PyObject *tracker, PyObject *pkt, PyObject *now, PyObject *key,
                          PyObject *ct, PyObject **result);

/* Is the tracker's TCP tracker the accelerated class? */
static inline int
tcp_l4(PyObject *tracker)
{
    PyObject *l4s = SLOT(tracker, tracker_map.off[T_L4]);
    return l4s != NULL && PyList_CheckExact(l4s) && PyList_GET_SIZE(l4s) > 6
        && Py_TYPE(PyList_GET_ITEM(l4s, 6)) == tcp_cls;
}

static int
fast_conntrack_in(PyObject *tracker, PyObject *pkt, PyObject *now, PyObject *hook,
                  PyObject **result)
{
    if (tracker_map.type == NULL || Py_TYPE(tracker) != tracker_map.type
            || Py_TYPE(pkt) != pkt_map.type || tcp_cls == NULL)
        return 0;
    if (SLOT(pkt, PK(P_CT)) != Py_None || SLOT(pkt, PK(P_UNTRACKED)) != Py_False
            || SLOT(pkt, PK(P_L4ERR)) != Py_None
            || SLOT(tracker, tracker_map.off[T_IS24]) != Py_False)
        return 0;
    long long proto;
    if (!slot_ll(pkt, PK(P_PROTO), 6, 6, &proto))
        return 0;
    if (!tcp_l4(tracker))
        return 0;
    PyObject *table = SLOT(tracker, tracker_map.off[T_TABLE]);
    if (table == NULL || Py_TYPE(table) != table_map.type)
        return 0;
    PyObject *hash = SLOT(table, table_map.off[TB_HASH]);
    PyObject *src = SLOT(pkt, PK(P_SRC)), *dst = SLOT(pkt, PK(P_DST));
    PyObject *sport = SLOT(pkt, PK(P_SPORT)), *dport = SLOT(pkt, PK(P_DPORT));
    PyObject *protoobj = SLOT(pkt, PK(P_PROTO));
    if (hash == NULL || !PyDict_CheckExact(hash) || src == NULL || dst == NULL
            || sport == NULL || dport == NULL || !PyFloat_CheckExact(now))
        return 0;
    int r = fast_tcp_error(tracker, pkt, hook);
    if (r <= 0)
        return r;
    PyObject *key = PyTuple_Pack(6, src, dst, protoobj, sport, dport, int_zero);
    if (key == NULL)
        return -1;
    PyObject *ct = PyDict_GetItemWithError(hash, key);     /* borrowed */
    if (ct == NULL) {
        Py_DECREF(key);
        return PyErr_Occurred() ? -1 : 0;
    }
    Py_INCREF(ct);
    r = established_in(tracker, pkt, now, key, ct, result);
    Py_DECREF(ct);
    Py_DECREF(key);
    return r;
}

/* conntrack_in's part after the lookup found ``ct`` by ``key`` (the packet's tuple, zone 0)
 * and tcp_error passed: 1 / 0 / -1 as fast_conntrack_in. */
static int
established_in(PyObject *tracker, PyObject *pkt, PyObject *now, PyObject *key, PyObject *ct,
               PyObject **result)
{
    int r, rc = 0;
    long long status;
    PyObject *timeout, *orig, *res = NULL;
    if (Py_TYPE(ct) != conn2_map.type
            || !slot_ll(ct, conn_map.off[C_STATUS], 0, LLONG_MAX, &status)
            || !(status & IPS_CONFIRMED)
            || (timeout = SLOT(ct, conn2_map.off[CX_TIMEOUT])) == NULL
            || !PyFloat_CheckExact(timeout)
            || PyFloat_AS_DOUBLE(timeout) <= PyFloat_AS_DOUBLE(now)      /* due: reaped */
            || (orig = SLOT(ct, conn2_map.off[CX_ORIG])) == NULL)
        goto out;
    int eq = PyObject_RichCompareBool(key, orig, Py_EQ);
    if (eq < 0) {
        rc = -1;
        goto out;
    }
    int dir = eq ? 0 : 1;
    if (dir == 0 && !(status & IPS_SEEN_REPLY))
        goto out;                   /* NEW / RELATED before a reply: TrackerPy */
    r = fast_tcp_packet(tracker, ct, pkt, dir ? int_one : int_zero, now, &res);
    if (r <= 0) {
        rc = r;
        goto out;
    }
    if (!PyLong_CheckExact(res) || PyLong_AsLong(res) != 1) {
        /* (Tcp.packet's C path only accepts; anything else would be a drift) */
        PyErr_SetString(PyExc_RuntimeError, "Tcp.packet fast path: unexpected verdict");
        rc = -1;
        goto out;
    }
    Py_INCREF(ct);
    if (slot_set(pkt, PK(P_CT), ct) < 0) {
        rc = -1;
        goto out;
    }
    Py_INCREF(dir ? int_three : int_zero);
    slot_set(pkt, PK(P_CTINFO), dir ? int_three : int_zero);
    if (dir == 1) {
        long long st2, ev;
        if (!slot_ll(ct, conn_map.off[C_STATUS], 0, LLONG_MAX, &st2)
                || !slot_ll(ct, conn_map.off[C_EVENTS], 0, LLONG_MAX, &ev)) {
            PyErr_SetString(PyExc_RuntimeError, "Conn.status/events are not ints");
            rc = -1;
            goto out;
        }
        if (!(st2 & IPS_SEEN_REPLY)) {
            if (slot_set(ct, conn_map.off[C_STATUS], PyLong_FromLongLong(st2 | IPS_SEEN_REPLY)) < 0
                    || slot_set(ct, conn_map.off[C_EVENTS], PyLong_FromLongLong(ev | IPCT_REPLY)) < 0) {
                rc = -1;
                goto out;
            }
        }
    }
    *result = PyLong_FromLong(1);       /* VERDICT_ACCEPT */
    rc = *result ? 1 : -1;
out:
    Py_XDECREF(res);
    return rc;
}

static PyObject *
sp_conntrack_in(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    /* conntrack_in(self, pkt, now, hook) */
    if (kwnames == NULL && nargs == 3) {
        PyObject *res;
        int r = fast_conntrack_in(self, args[0], args[1], args[2], &res);
        if (r > 0)
            return res;
        if (r < 0)
            return NULL;
    }
    return call_with_self(fb_conntrack_in, self, args, nargs, kwnames);
}

/* ---------------------------------------------------------------------------------------
 * Binding (called once by the Python modules at import).
 */

static int
is_immutable_default(PyObject *v)
{
    return v == Py_None || PyBool_Check(v) || PyLong_CheckExact(v) || PyFloat_CheckExact(v)
        || PyUnicode_CheckExact(v) || PyBytes_CheckExact(v) || PyFrozenSet_CheckExact(v);
}


/* A slotted class's template: every slot's offset and its value in ``tmpl`` (an instance made
 * by __init__), each value immutable (None, numbers, str, bytes, the empty tuple), so that
 * new instances can share them. Replaces the previous template in (*nall, all_off, vals).
 * 0, or -1 with an exception. */
static int
bind_template(PyObject *cls, PyObject *tmpl, const char *what, int *nall,
              Py_ssize_t *all_off, PyObject **vals)
{
    if (!PyType_Check(cls) || Py_TYPE(tmpl) != (PyTypeObject *)cls) {
        PyErr_SetString(PyExc_TypeError, "the template must be an instance of the class");
        return -1;
    }
    PyObject *slots = PyObject_GetAttrString(cls, "__slots__");
    if (slots == NULL)
        return -1;
    PyObject *seq = PySequence_Fast(slots, "__slots__ must be a sequence");
    Py_DECREF(slots);
    if (seq == NULL)
        return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n > MAX_SLOTS || ((PyTypeObject *)cls)->tp_base != &PyBaseObject_Type) {
        Py_DECREF(seq);
        PyErr_Format(PyExc_TypeError, "%s layout not supported", what);
        return -1;
    }
    Py_ssize_t off[MAX_SLOTS];
    PyObject *val[MAX_SLOTS];
    for (Py_ssize_t i = 0; i < n; i++) {
        const char *name = PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(seq, i));
        if (name == NULL || (off[i] = member_offset(cls, name)) < 0) {
            Py_DECREF(seq);
            return -1;
        }
        val[i] = SLOT(tmpl, off[i]);
        if (val[i] == NULL || !(is_immutable_default(val[i])
                                || (PyTuple_CheckExact(val[i]) && PyTuple_GET_SIZE(val[i]) == 0))) {
            PyErr_Format(PyExc_TypeError, "%s.%s has no immutable default", what, name);
            Py_DECREF(seq);
            return -1;
        }
    }
    Py_DECREF(seq);
    for (int i = 0; i < *nall; i++)
        Py_CLEAR(vals[i]);
    for (Py_ssize_t i = 0; i < n; i++) {
        all_off[i] = off[i];
        Py_INCREF(val[i]);
        vals[i] = val[i];
    }
    *nall = (int)n;
    return 0;
}

static PyObject *
sp_bind_packet(PyObject *mod, PyObject *args)
{
    PyObject *cls, *tmpl;
    if (!PyArg_ParseTuple(args, "OO", &cls, &tmpl))
        return NULL;
    if (bind_map(&pkt_map, cls, pkt_names, P_N) < 0
            || bind_template(cls, tmpl, "Packet", &pkt_nall, pkt_all_off, pkt_tmpl) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
sp_set_fallbacks(PyObject *mod, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"l4_checksum_ok", "decode_ip", "decode_ipv4", "decode_ipv6", NULL};
    PyObject *a = NULL, *b = NULL, *c = NULL, *d = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|$OOOO", kwlist, &a, &b, &c, &d))
        return NULL;
    PyObject **slot[] = {&fb_l4_checksum_ok, &fb_decode_ip, &fb_decode_ipv4, &fb_decode_ipv6};
    PyObject *v[] = {a, b, c, d};
    for (int i = 0; i < 4; i++)
        if (v[i] != NULL) {
            Py_INCREF(v[i]);
            Py_XSETREF(*slot[i], v[i]);
        }
    Py_RETURN_NONE;
}

static int
bytes_table(PyObject *o, unsigned char *dst, Py_ssize_t n, const char *what)
{
    if (!PyBytes_Check(o) || PyBytes_GET_SIZE(o) != n) {
        PyErr_Format(PyExc_ValueError, "%s: expected %zd bytes", what, n);
        return -1;
    }
    memcpy(dst, PyBytes_AS_STRING(o), n);
    return 0;
}

static PyMethodDef tcp_error_def = {
    "error", (PyCFunction)(void (*)(void))sp_tcp_error, METH_FASTCALL | METH_KEYWORDS,
    "tcp_error (C fast path; TcpPy.error for everything else)."};
static PyMethodDef tcp_new_def = {
    "new", (PyCFunction)(void (*)(void))sp_tcp_new, METH_FASTCALL | METH_KEYWORDS,
    "tcp_new (C for a SYN; TcpPy.new for everything else)."};
static PyMethodDef tcp_packet_def = {
    "packet", (PyCFunction)(void (*)(void))sp_tcp_packet, METH_FASTCALL | METH_KEYWORDS,
    "nf_conntrack_tcp_packet (C fast path; TcpPy.packet for everything else)."};

static PyObject *
sp_tcp_methods(PyObject *mod, PyObject *args)
{
    PyObject *cls, *error_py, *packet_py, *new_py, *factory, *conn_cls, *settings_cls;
    PyObject *index, *flat, *valid, *names, *ss2, *layout;
    if (!PyArg_ParseTuple(args, "OOOOOOOOOOOOO", &cls, &error_py, &packet_py, &new_py,
                          &factory, &conn_cls, &settings_cls, &index, &flat, &valid, &names,
                          &ss2, &layout))
        return NULL;
    if (pkt_map.type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "bind_packet first");
        return NULL;
    }
    if (!PyType_Check(cls) || !PyCallable_Check(error_py) || !PyCallable_Check(packet_py)
            || !PyCallable_Check(new_py) || !PyCallable_Check(factory)
            || !PyLong_CheckExact(ss2) || !PyDict_Check(layout)) {
        PyErr_SetString(PyExc_TypeError, "tcp_methods: bad arguments");
        return NULL;
    }
    for (size_t i = 0; i < sizeof(tcp_layout) / sizeof(tcp_layout[0]); i++) {
        PyObject *v = PyDict_GetItemString(layout, tcp_layout[i].name);
        if (v == NULL || !PyLong_Check(v) || PyLong_AsLong(v) != tcp_layout[i].value) {
            PyErr_Format(PyExc_ValueError, "tcp_methods: %s differs from the C code",
                         tcp_layout[i].name);
            return NULL;
        }
    }
    unsigned char ix[256], fl[120], va[256];
    if (bytes_table(index, ix, 256, "index") < 0 || bytes_table(flat, fl, 120, "flat") < 0
            || bytes_table(valid, va, 256, "valid") < 0)
        return NULL;
    for (int i = 0; i < 256; i++)
        if (ix[i] > 5) {
            PyErr_SetString(PyExc_ValueError, "tcp_methods: bad flag class table");
            return NULL;
        }
    PyObject *seq = PySequence_Fast(names, "timeout names must be a sequence");
    if (seq == NULL)
        return NULL;
    if (PySequence_Fast_GET_SIZE(seq) != 10) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_ValueError, "tcp_methods: 10 timeout names expected");
        return NULL;
    }
    const char *snames[S_N];
    int has[10];
    for (int i = 0; i < S_T_STATE0; i++)
        snames[i] = settings_fixed[i];
    int n = S_T_STATE0;
    for (int i = 0; i < 10; i++) {
        const char *nm = PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(seq, i));
        if (nm == NULL) {
            Py_DECREF(seq);
            return NULL;
        }
        has[i] = nm[0] != '\0';
        snames[n++] = has[i] ? nm : settings_fixed[0];   /* placeholder for "" */
    }
    int r = bind_map(&settings_map, settings_cls, snames, n);
    Py_DECREF(seq);      /* (names were only needed while binding) */
    if (r < 0 || bind_map(&conn_map, conn_cls, conn_names, C_N) < 0)
        return NULL;
    for (int i = 0; i < 10; i++)
        state_has_sysctl[i] = has[i];
    memcpy(tcp_index, ix, 256);
    memcpy(tcp_flat, fl, 120);
    memcpy(tcp_valid, va, 256);
    Py_INCREF(ss2);
    Py_XSETREF(syn_sent2_timeout, ss2);
    Py_INCREF(error_py);
    Py_XSETREF(fb_tcp_error, error_py);
    Py_INCREF(packet_py);
    Py_XSETREF(fb_tcp_packet, packet_py);
    Py_INCREF(new_py);
    Py_XSETREF(fb_tcp_new, new_py);
    Py_INCREF(factory);
    Py_XSETREF(l4_factory, factory);
    Py_INCREF(cls);
    Py_XSETREF(tcp_cls, (PyTypeObject *)cls);
    PyObject *e = PyDescr_NewMethod((PyTypeObject *)cls, &tcp_error_def);
    PyObject *p = PyDescr_NewMethod((PyTypeObject *)cls, &tcp_packet_def);
    PyObject *w = PyDescr_NewMethod((PyTypeObject *)cls, &tcp_new_def);
    if (e == NULL || p == NULL || w == NULL) {
        Py_XDECREF(e);
        Py_XDECREF(p);
        Py_XDECREF(w);
        return NULL;
    }
    return Py_BuildValue("{sNsNsN}", "error", e, "packet", p, "new", w);
}


static PyMethodDef conntrack_in_def = {
    "conntrack_in", (PyCFunction)(void (*)(void))sp_conntrack_in, METH_FASTCALL | METH_KEYWORDS,
    "nf_conntrack_in (C for an established TCP segment; TrackerPy's code for the rest)."};

static PyObject *
sp_tracker_methods(PyObject *mod, PyObject *args)
{
    PyObject *cls, *conntrack_in_py, *table_cls, *conn_cls;
    if (!PyArg_ParseTuple(args, "OOOO", &cls, &conntrack_in_py, &table_cls, &conn_cls))
        return NULL;
    if (tcp_cls == NULL || conn_map.type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "tcp_methods first");
        return NULL;
    }
    if (!PyCallable_Check(conntrack_in_py) || (PyObject *)conn_map.type != conn_cls) {
        PyErr_SetString(PyExc_TypeError, "tracker_methods: bad arguments");
        return NULL;
    }
    if (bind_map(&tracker_map, cls, tracker_names, T_N) < 0
            || bind_map(&table_map, table_cls, table_names, TB_N) < 0
            || bind_map(&conn2_map, conn_cls, conn2_names, CX_N) < 0)
        return NULL;
    Py_INCREF(conntrack_in_py);
    Py_XSETREF(fb_conntrack_in, conntrack_in_py);
    PyObject *m = PyDescr_NewMethod((PyTypeObject *)cls, &conntrack_in_def);
    if (m == NULL)
        return NULL;
    return Py_BuildValue("{sN}", "conntrack_in", m);
}

/* ---------------------------------------------------------------------------------------
 * The facade (firewall.py Firewall.process), for a packet that arrives (PREROUTING), is not
 * a fragment, meets no timer due, and is an established TCP segment of an entry conntrack_in
 * takes in C: without rule sets and interfaces (a plain replay) the whole decision; with a
 * rule set, a packet whose direction has a flow cache record (flowcache.py: the recorded
 * counters go up, conntrack_in runs, the recorded decision comes out). Everything else is
 * Firewall.process in Python, called before anything changed. A record whose packet
 * conntrack sees otherwise continues in Firewall._diverged, as in Python.
 */

enum { F_TRACKER, F_DEFRAG, F_ENGINE4, F_ENGINE6, F_HOST, F_WANT_OUTPUT, F_TRACE,
       F_FLOW_CACHE, F_N };
static const char *const fw_names[F_N] = {"tracker", "defrag", "engine4", "engine6", "host",
                                          "want_output", "trace", "flow_cache"};
static SlotMap fw_map;
enum { DF_V4, DF_V6, DF_N };
static const char *const defrag_names[DF_N] = {"v4", "v6"};
static SlotMap defrag_map;
static const char *const family_names[1] = {"queues"};
static SlotMap family_map;
static const char *const expect_names[1] = {"soonest"};
static SlotMap expect_map;
enum { H_IFACES, H_GEN, H_LOCAL, H_N };
static const char *const host_names[H_N] = {"ifaces", "gen", "local"};
static SlotMap host_map;
static const char *const engine_names[1] = {"tables"};
static SlotMap engine_map;
enum { FE_ENGINE, FE_IFACE, FE_MARK, FE_TOS, FE_HOSTGEN, FE_CTINFO, FE_PRE, FE_POST, FE_PATH,
       FE_OUT_IFACE, FE_VERDICT, FE_SOURCE, FE_REASON, FE_N };
static const char *const fe_names[FE_N] = {"engine", "iface", "mark", "tos", "hostgen",
    "ctinfo", "pre", "post", "path", "out_iface", "verdict", "source", "reason"};
static SlotMap fe_map;
enum { D_VERDICT, D_PKT, D_REASON, D_CT, D_CTINFO, D_PATH, D_OUT_IFACE, D_SOURCE,
       D_ROUTE_DROP, D_N };
static const char *const dec_names[D_N] = {"verdict", "pkt", "reason", "ct", "ctinfo", "path",
                                           "out_iface", "source", "route_drop"};
static SlotMap dec_map;
static int dec_nall;
static Py_ssize_t dec_all_off[MAX_SLOTS];
static PyObject *dec_tmpl[MAX_SLOTS];
static PyObject *fb_process, *str_accept, *str_nat, *str_diverged, *str_confirm;
/* the flow cache's recording (Firewall._learn / _walk_after) */
enum { X_NOW, X_IN, X_OUT, X_LOCAL, X_TRACKER, X_N };
static const char *const ctx_names[X_N] = {"now", "in_iface", "out_iface", "local_addrs",
                                           "tracker"};
static SlotMap ctx_map;
static int ctx_nall;
static Py_ssize_t ctx_all_off[MAX_SLOTS];
static PyObject *ctx_tmpl[MAX_SLOTS];
enum { CT_PKTS, CT_BYTES, CT_PPKTS, CT_PBYTES, CT_STEPS, CT_ENTRY, CT_N };
static const char *const ctab_names[CT_N] = {"pkts", "bytes", "ppkts", "pbytes", "steps",
                                             "entry"};
static SlotMap ctab_map;
static PyObject *hook_num, *str_drop, *str_raw, *str_pre, *str_plan, *str_route;
static PyObject *fwd_path;                  /* ("PREROUTING", "FORWARD", "POSTROUTING") */

/* A Decision with the template's defaults (no __init__ run). */
static PyObject *
new_decision(void)
{
    PyTypeObject *tp = dec_map.type;
    PyObject *d = tp->tp_alloc(tp, 0);
    if (d == NULL)
        return NULL;
    for (int i = 0; i < dec_nall; i++) {
        Py_INCREF(dec_tmpl[i]);
        SLOT(d, dec_all_off[i]) = dec_tmpl[i];
    }
    return d;
}

/* Bump recorded counters: ``record`` a tuple of (packets list, bytes list, index). 0: the
 * record is not what flowcache.py makes (nothing was changed); -1: error. */
static int
check_record(PyObject *record)
{
    if (!PyTuple_CheckExact(record))
        return 0;
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(record); k++) {
        PyObject *st = PyTuple_GET_ITEM(record, k);
        if (!PyTuple_CheckExact(st) || PyTuple_GET_SIZE(st) != 3)
            return 0;
        long long i;
        if (!obj_ll(PyTuple_GET_ITEM(st, 2), 0, PY_SSIZE_T_MAX, &i)
                || !counters_ok(PyTuple_GET_ITEM(st, 0), (Py_ssize_t)i)
                || !counters_ok(PyTuple_GET_ITEM(st, 1), (Py_ssize_t)i))
            return 0;
    }
    return 1;
}

/* Bump a record check_record accepted (its counters are u64 memoryviews, indexes in
 * range: added to in place). */
static int
bump(PyObject *record, unsigned long long length)
{
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(record); k++) {
        PyObject *st = PyTuple_GET_ITEM(record, k);
        Py_ssize_t i = PyLong_AsSsize_t(PyTuple_GET_ITEM(st, 2));
        ((unsigned long long *)PyMemoryView_GET_BUFFER(PyTuple_GET_ITEM(st, 0))->buf)[i] += 1;
        ((unsigned long long *)PyMemoryView_GET_BUFFER(PyTuple_GET_ITEM(st, 1))->buf)[i]
            += length;
    }
    return 0;
}

/* Runs nf_conntrack_confirm when it has something to do (events to deliver, a helper);
 * 1: accepted, 0: confirm dropped the packet, -1: error. */
static int
maybe_confirm(PyObject *tracker, PyObject *ct, PyObject *pkt, PyObject *now)
{
    long long events, status;
    PyObject *help = SLOT(ct, conn2_map.off[CX_HELP]);
    if (help == Py_None && slot_ll(ct, conn_map.off[C_EVENTS], 0, 0, &events))
        return 1;
    /* Tracker.confirm for a confirmed entry without helper whose events nobody hears and
     * that do not move it to the assured list: they are dropped */
    if (help == Py_None && SLOT(tracker, tracker_map.off[T_SINK]) == Py_None
            && slot_ll(ct, conn_map.off[C_EVENTS], 1, LLONG_MAX, &events)
            && !(events & IPCT_ASSURED)
            && slot_ll(ct, conn_map.off[C_STATUS], 0, LLONG_MAX, &status)
            && (status & IPS_CONFIRMED) && !(status & IPS_DYING)) {
        Py_INCREF(int_zero);
        return slot_set(ct, conn_map.off[C_EVENTS], int_zero) < 0 ? -1 : 1;
    }
    PyObject *r = PyObject_CallMethodObjArgs(tracker, str_confirm, pkt, now, NULL);
    if (r == NULL)
        return -1;
    long v = PyLong_Check(r) ? PyLong_AsLong(r) : 1;
    Py_DECREF(r);
    return v != 0;
}

/* The decision of an accepted packet (ACCEPT, its reason, its entry) or of one confirm
 * dropped (DROP, the reason, source "conntrack confirm" when rules ran). */
static PyObject *
finish(PyObject *tracker, PyObject *pkt, PyObject *now, PyObject *d, int with_rules)
{
    PyObject *ct = SLOT(pkt, PK(P_CT));
    int c = maybe_confirm(tracker, ct, pkt, now);
    if (c < 0) {
        Py_DECREF(d);
        return NULL;
    }
    if (c == 0) {
        PyObject *drop = PyUnicode_InternFromString("DROP");
        PyObject *reason = SLOT(pkt, PK(P_REASON));
        Py_INCREF(reason);
        if (drop == NULL || slot_set(d, dec_map.off[D_VERDICT], drop) < 0
                || slot_set(d, dec_map.off[D_REASON], reason) < 0
                || (with_rules && slot_set(d, dec_map.off[D_SOURCE],
                                           PyUnicode_FromString("conntrack confirm")) < 0)) {
            Py_DECREF(d);
            return NULL;
        }
        return d;
    }
    ct = SLOT(pkt, PK(P_CT));
    PyObject *ctinfo = SLOT(pkt, PK(P_CTINFO));
    Py_INCREF(ct);
    Py_INCREF(ctinfo);
    if (slot_set(d, dec_map.off[D_CT], ct) < 0 || slot_set(d, dec_map.off[D_CTINFO], ctinfo) < 0) {
        Py_DECREF(d);
        return NULL;
    }
    return d;
}

static inline int
is_false(PyObject *v)
{
    return v == Py_False || (PyLong_CheckExact(v) && PyLong_AsLong(v) == 0);
}

/* flowcache.steps: the counter bumps of one walk's hits, appended to ``out`` (each bump made
 * once and kept in the table's ``steps``). 0, or -1 with an exception. */
static int
add_steps(PyObject *tab, PyObject *hits, PyObject *out)
{
    if (Py_TYPE(tab) != ctab_map.type || !PyList_CheckExact(hits)) {
        PyErr_SetString(PyExc_TypeError, "steps: not a compiled table");
        return -1;
    }
    PyObject *known = SLOT(tab, ctab_map.off[CT_STEPS]);
    if (known == NULL || !PyDict_CheckExact(known)) {
        PyErr_SetString(PyExc_TypeError, "steps: CompiledTable.steps is not a dict");
        return -1;
    }
    for (Py_ssize_t k = 0; k < PyList_GET_SIZE(hits); k++) {
        PyObject *h = PyList_GET_ITEM(hits, k);
        PyObject *st = PyDict_GetItemWithError(known, h);
        if (st == NULL) {
            long long v;
            if (PyErr_Occurred() || !obj_ll(h, LLONG_MIN, LLONG_MAX, &v)) {
                if (!PyErr_Occurred())
                    PyErr_SetString(PyExc_TypeError, "steps: a hit is not an int");
                return -1;
            }
            PyObject *idx = v >= 0 ? (Py_INCREF(h), h) : PyLong_FromLongLong(~v);
            if (idx == NULL)
                return -1;
            st = PyTuple_Pack(3, SLOT(tab, ctab_map.off[v >= 0 ? CT_PKTS : CT_PPKTS]),
                              SLOT(tab, ctab_map.off[v >= 0 ? CT_BYTES : CT_PBYTES]), idx);
            Py_DECREF(idx);
            if (st == NULL)
                return -1;
            int r = PyDict_SetItem(known, h, st);
            Py_DECREF(st);
            if (r < 0)
                return -1;
        }
        if (PyList_Append(out, st) < 0)
            return -1;
    }
    return 0;
}

/* A Context as Firewall._learn makes it (the template's defaults, then these). */
static PyObject *
new_context(PyObject *now, PyObject *in_iface, PyObject *local, PyObject *tracker)
{
    PyTypeObject *tp = ctx_map.type;
    PyObject *c = tp->tp_alloc(tp, 0);
    if (c == NULL)
        return NULL;
    for (int i = 0; i < ctx_nall; i++) {
        Py_INCREF(ctx_tmpl[i]);
        SLOT(c, ctx_all_off[i]) = ctx_tmpl[i];
    }
    PyObject *vals[4] = {now, in_iface, local, tracker};
    int offs[4] = {X_NOW, X_IN, X_LOCAL, X_TRACKER};
    for (int k = 0; k < 4; k++) {
        Py_INCREF(vals[k]);
        if (slot_set(c, ctx_map.off[offs[k]], vals[k]) < 0) {
            Py_DECREF(c);
            return NULL;
        }
    }
    return c;
}

/* The walk of ``table`` at ``hook`` appended to ``steps`` as counter bumps. 1: the walk
 * accepts; 0: it would drop (*verdict_src set, a new reference); 2: not flow-stable (None);
 * -1: error. */
static int
walk_into(PyObject *engine, PyObject *tables, PyObject *table, PyObject *hook, PyObject *pkt,
          PyObject *ctx, PyObject *steps, PyObject **verdict_src)
{
    PyObject *w = chains_walk(engine, table, hook, pkt, ctx);
    if (w == NULL)
        return -1;
    if (w == Py_None) {
        Py_DECREF(w);
        return 2;
    }
    PyObject *tab = PyDict_GetItemWithError(tables, table);
    if (!PyTuple_CheckExact(w) || PyTuple_GET_SIZE(w) != 3 || tab == NULL) {
        Py_DECREF(w);
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "Engine.walk: unexpected result");
        return -1;
    }
    if (add_steps(tab, PyTuple_GET_ITEM(w, 2), steps) < 0) {
        Py_DECREF(w);
        return -1;
    }
    long v = PyLong_AsLong(PyTuple_GET_ITEM(w, 0));
    if (v == -1 && PyErr_Occurred()) {
        Py_DECREF(w);
        return -1;
    }
    if (v != 1) {
        *verdict_src = PyTuple_GET_ITEM(w, 1);
        Py_INCREF(*verdict_src);
        Py_DECREF(w);
        return 0;
    }
    Py_DECREF(w);
    return 1;
}

/* Does the engine load ``table`` with a chain for ``hook`` (Engine.has_chain)? */
static int
has_chain(PyObject *tables, PyObject *table, PyObject *hook)
{
    PyObject *tab = PyDict_GetItemWithError(tables, table);
    if (tab == NULL)
        return PyErr_Occurred() ? -1 : 0;
    if (Py_TYPE(tab) != ctab_map.type || !PyDict_CheckExact(SLOT(tab, ctab_map.off[CT_ENTRY]))) {
        PyErr_SetString(PyExc_TypeError, "has_chain: not a compiled table");
        return -1;
    }
    return PyDict_Contains(SLOT(tab, ctab_map.off[CT_ENTRY]), hook);
}

/* A FlowEntry from its 13 fields (references borrowed). */
static PyObject *
new_flow_entry(PyObject *const *vals)
{
    PyTypeObject *tp = fe_map.type;
    PyObject *e = tp->tp_alloc(tp, 0);
    if (e == NULL)
        return NULL;
    for (int k = 0; k < FE_N; k++) {
        Py_INCREF(vals[k]);
        SLOT(e, fe_map.off[k]) = vals[k];
    }
    return e;
}

/* Firewall._walk_after: the record of an established packet after conntrack (a new
 * reference), Py_None (not flow-stable: the full path from here), NULL on error. */
static PyObject *
walk_after(PyObject *fw, PyObject *engine, PyObject *tables, PyObject *host, PyObject *pkt,
           PyObject *ctx, PyObject *want, PyObject *pre)
{
    PyObject *plan = PyObject_CallMethodOneArg(fw, str_plan, engine);
    PyObject *post = PyList_New(0);
    PyObject *d = new_decision();
    PyObject *hooks = PyTuple_Pack(1, str_pre);
    PyObject *out_iface = Py_None, *source = NULL, *res = NULL;
    Py_INCREF(out_iface);
    if (plan == NULL || post == NULL || d == NULL || hooks == NULL || !PyDict_Check(plan))
        goto done;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(hooks); i++) {
        PyObject *hname = PyTuple_GET_ITEM(hooks, i);
        if (PyUnicode_CompareWithASCIIString(hname, "FORWARD") == 0
                || PyUnicode_CompareWithASCIIString(hname, "POSTROUTING") == 0) {
            Py_INCREF(out_iface);
            if (slot_set(ctx, ctx_map.off[X_OUT], out_iface) < 0)
                goto done;
        }
        PyObject *num = PyDict_GetItemWithError(hook_num, hname);
        PyObject *names = num ? PyDict_GetItemWithError(plan, num) : NULL;
        if (names == NULL || !PyTuple_Check(names)) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "Firewall._plan: unexpected value");
            goto done;
        }
        for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(names); k++) {
            PyObject *table = PyTuple_GET_ITEM(names, k);
            if (PyUnicode_Compare(table, str_nat) == 0)
                continue;                   /* (no nat table: nothing to bind) */
            int r = walk_into(engine, tables, table, hname, pkt, ctx, post, &source);
            if (r < 0)
                goto done;
            if (r == 2) {
                Py_INCREF(Py_None);
                res = Py_None;
                goto done;
            }
            if (r == 0) {                   /* as _absorb: anything else drops */
                PyObject *reason = PyUnicode_FromFormat("dropped by %U", source);
                PyObject *tpost = PyList_AsTuple(post);
                if (reason != NULL && tpost != NULL) {
                    PyObject *vals[FE_N] = {engine, SLOT(pkt, PK(P_IFACE)), SLOT(pkt, PK(P_MARK)),
                        SLOT(pkt, PK(P_TOS)), SLOT(host, host_map.off[H_GEN]), want, pre, tpost,
                        hooks, out_iface, str_drop, source, reason};
                    res = new_flow_entry(vals);
                }
                Py_XDECREF(reason);
                Py_XDECREF(tpost);
                goto done;
            }
        }
        if (i == 0) {
            PyObject *ifaces = SLOT(host, host_map.off[H_IFACES]);
            int any = ifaces != NULL ? PyObject_IsTrue(ifaces) : -1;
            if (any < 0)
                goto done;
            PyObject *nh;
            if (any) {
                PyObject *o = PyObject_CallMethodObjArgs(fw, str_route, pkt, int_zero, d, NULL);
                if (o == NULL)
                    goto done;
                Py_SETREF(out_iface, o);
                if (SLOT(d, dec_map.off[D_ROUTE_DROP]) != Py_None) {
                    Py_INCREF(Py_None);
                    res = Py_None;
                    goto done;
                }
                nh = PySequence_Tuple(SLOT(d, dec_map.off[D_PATH]));
                if (nh == NULL)
                    goto done;
            } else {
                nh = fwd_path;
                Py_INCREF(nh);
            }
            Py_SETREF(hooks, nh);
        }
    }
    {
        PyObject *tpost = PyList_AsTuple(post);
        if (tpost != NULL) {
            PyObject *vals[FE_N] = {engine, SLOT(pkt, PK(P_IFACE)), SLOT(pkt, PK(P_MARK)),
                SLOT(pkt, PK(P_TOS)), SLOT(host, host_map.off[H_GEN]), want, pre, tpost, hooks,
                out_iface, str_accept, Py_None, Py_None};
            res = new_flow_entry(vals);
            Py_DECREF(tpost);
        }
    }
done:
    Py_XDECREF(source);
    Py_XDECREF(plan);
    Py_XDECREF(post);
    Py_XDECREF(d);
    Py_XDECREF(hooks);
    Py_XDECREF(out_iface);
    return res;
}

/* 1: *result set; 0: Firewall.process in Python (nothing changed); -1: error */
static int
fast_process(PyObject *fw, PyObject *pkt, PyObject *now, PyObject **result)
{
    if (fw_map.type == NULL || Py_TYPE(fw) != fw_map.type || Py_TYPE(pkt) != pkt_map.type
            || !PyFloat_CheckExact(now))
        return 0;
    double t = PyFloat_AS_DOUBLE(now);
    PyObject *tracker = SLOT(fw, fw_map.off[F_TRACKER]);
    if (tracker == NULL || Py_TYPE(tracker) != tracker_map.type)
        return 0;
    PyObject *table = SLOT(tracker, tracker_map.off[T_TABLE]);
    PyObject *expect = SLOT(tracker, tracker_map.off[T_EXPECT]);
    if (table == NULL || Py_TYPE(table) != table_map.type || expect == NULL
            || Py_TYPE(expect) != expect_map.type)
        return 0;
    PyObject *s1 = SLOT(table, table_map.off[TB_SOONEST]);
    PyObject *s2 = SLOT(expect, expect_map.off[0]);
    if (s1 == NULL || s2 == NULL || !PyFloat_CheckExact(s1) || !PyFloat_CheckExact(s2)
            || t >= PyFloat_AS_DOUBLE(s1) || t >= PyFloat_AS_DOUBLE(s2))
        return 0;                                   /* timers due: Python expires first */
    PyObject *defrag = SLOT(fw, fw_map.off[F_DEFRAG]);
    if (defrag == NULL || Py_TYPE(defrag) != defrag_map.type)
        return 0;
    for (int f = DF_V4; f <= DF_V6; f++) {
        PyObject *fam = SLOT(defrag, defrag_map.off[f]);
        if (fam == NULL || Py_TYPE(fam) != family_map.type)
            return 0;
        PyObject *q = SLOT(fam, family_map.off[0]);
        if (q == NULL || !PyDict_Check(q) || PyDict_GET_SIZE(q) != 0)
            return 0;
    }
    long long proto, fragoff, fho, l3num;
    PyObject *mf = SLOT(pkt, PK(P_MF));
    if (mf == NULL || !is_false(mf) || !slot_ll(pkt, PK(P_FRAGOFF), 0, 0, &fragoff)
            || !slot_ll(pkt, PK(P_FRAG_HDR_OFF), LLONG_MIN, -1, &fho)
            || !slot_ll(pkt, PK(P_PROTO), 6, 6, &proto)
            || !slot_ll(pkt, PK(P_L3NUM), 0, LLONG_MAX, &l3num))
        return 0;
    PyObject *want_output = SLOT(fw, fw_map.off[F_WANT_OUTPUT]);
    PyObject *host = SLOT(fw, fw_map.off[F_HOST]);
    if (want_output != Py_False || host == NULL || !PyObject_TypeCheck(host, host_map.type))
        return 0;
    PyObject *engine = SLOT(fw, fw_map.off[l3num == 10 ? F_ENGINE6 : F_ENGINE4]);
    if (engine == NULL)
        return 0;

    if (engine == Py_None) {
        /* Firewall._conntrack_only without interfaces */
        PyObject *ifaces = SLOT(host, host_map.off[H_IFACES]);
        if (ifaces == NULL || !PyDict_Check(ifaces) || PyDict_GET_SIZE(ifaces) != 0)
            return 0;
        PyObject *res;
        int r = fast_conntrack_in(tracker, pkt, now, int_zero, &res);
        if (r <= 0)
            return r;
        Py_DECREF(res);
        PyObject *d = new_decision();
        if (d == NULL)
            return -1;
        PyObject *reason = SLOT(pkt, PK(P_REASON));
        Py_INCREF(str_accept);
        Py_INCREF(pkt);
        Py_INCREF(reason);
        if (slot_set(d, dec_map.off[D_VERDICT], str_accept) < 0
                || slot_set(d, dec_map.off[D_PKT], pkt) < 0
                || slot_set(d, dec_map.off[D_REASON], reason) < 0) {
            Py_DECREF(d);
            return -1;
        }
        *result = finish(tracker, pkt, now, d, 0);
        return *result ? 1 : -1;
    }

    /* Firewall._cached */
    if (Py_TYPE(engine) != engine_map.type || SLOT(fw, fw_map.off[F_FLOW_CACHE]) != Py_True
            || SLOT(fw, fw_map.off[F_TRACE]) != Py_False)
        return 0;
    PyObject *tables = SLOT(engine, engine_map.off[0]);
    if (tables == NULL || !PyDict_CheckExact(tables))
        return 0;
    int hasnat = PyDict_Contains(tables, str_nat);
    if (hasnat != 0)
        return hasnat < 0 ? -1 : 0;
    PyObject *hash = SLOT(table, table_map.off[TB_HASH]);
    PyObject *src = SLOT(pkt, PK(P_SRC)), *dst = SLOT(pkt, PK(P_DST));
    PyObject *sport = SLOT(pkt, PK(P_SPORT)), *dport = SLOT(pkt, PK(P_DPORT));
    if (hash == NULL || !PyDict_CheckExact(hash) || src == NULL || dst == NULL
            || sport == NULL || dport == NULL)
        return 0;
    PyObject *key = PyTuple_Pack(6, src, dst, SLOT(pkt, PK(P_PROTO)), sport, dport, int_zero);
    if (key == NULL)
        return -1;
    PyObject *ct = PyDict_GetItemWithError(hash, key);
    if (ct == NULL) {
        Py_DECREF(key);
        return PyErr_Occurred() ? -1 : 0;
    }
    Py_INCREF(ct);
    int rc = 0;
    PyObject *e = NULL, *d = NULL, *ctx = NULL, *pre = NULL, *post = NULL;
    unsigned long long length = 0;
    long long status;
    PyObject *fc, *timeout, *orig;
    if (Py_TYPE(ct) != conn2_map.type || (fc = SLOT(ct, conn2_map.off[CX_FC])) == NULL
            || (fc != Py_None && (!PyList_CheckExact(fc) || PyList_GET_SIZE(fc) != 2))
            || (timeout = SLOT(ct, conn2_map.off[CX_TIMEOUT])) == NULL
            || !PyFloat_CheckExact(timeout) || PyFloat_AS_DOUBLE(timeout) <= t
            || (orig = SLOT(ct, conn2_map.off[CX_ORIG])) == NULL
            || !slot_ll(ct, conn_map.off[C_STATUS], 0, LLONG_MAX, &status))
        goto out;
    int eq = PyObject_RichCompareBool(key, orig, Py_EQ);
    if (eq < 0) {
        rc = -1;
        goto out;
    }
    long want = eq ? 0 : 3;
    PyObject *want_obj = eq ? int_zero : int_three;
    if (eq && !(status & IPS_SEEN_REPLY))
        goto out;
    e = fc == Py_None ? Py_None : PyList_GET_ITEM(fc, eq ? 0 : 1);
    Py_INCREF(e);
    PyObject *piface = SLOT(pkt, PK(P_IFACE)), *hgen = SLOT(host, host_map.off[H_GEN]);
    if (piface == NULL || hgen == NULL)
        goto out;
    /* Firewall._cached: is the record valid for this packet? Else record it (_learn). */
    int learning = 1;
    if (Py_TYPE(e) == fe_map.type) {
        long long ectinfo, emark, pmark, etos, ptos;
        PyObject *eiface = SLOT(e, fe_map.off[FE_IFACE]), *egen = SLOT(e, fe_map.off[FE_HOSTGEN]);
        PyObject *epre = SLOT(e, fe_map.off[FE_PRE]), *epost = SLOT(e, fe_map.off[FE_POST]);
        if (epre == NULL || epost == NULL || eiface == NULL || egen == NULL)
            goto out;
        if (SLOT(e, fe_map.off[FE_ENGINE]) == engine
                && slot_ll(e, fe_map.off[FE_CTINFO], want, want, &ectinfo)
                && slot_ll(e, fe_map.off[FE_MARK], LLONG_MIN, LLONG_MAX, &emark)
                && slot_ll(pkt, PK(P_MARK), LLONG_MIN, LLONG_MAX, &pmark) && emark == pmark
                && slot_ll(e, fe_map.off[FE_TOS], LLONG_MIN, LLONG_MAX, &etos)
                && slot_ll(pkt, PK(P_TOS), LLONG_MIN, LLONG_MAX, &ptos) && etos == ptos) {
            int same = eiface == piface ? 1 : PyObject_RichCompareBool(eiface, piface, Py_EQ);
            int samegen = same > 0 ? PyObject_RichCompareBool(egen, hgen, Py_EQ) : 0;
            if (same < 0 || samegen < 0) {
                rc = -1;
                goto out;
            }
            learning = !samegen;
        }
        if (!learning) {
            if (check_record(epre) <= 0 || check_record(epost) <= 0)
                goto out;
            pre = epre;
            Py_INCREF(pre);
        }
    }
    if (learning) {
        /* the raw table's walk, before conntrack; anything else: Python, nothing changed */
        PyObject *local = SLOT(host, host_map.off[H_LOCAL]);
        if (ctx_map.type == NULL || ctab_map.type == NULL || fe_map.type == NULL || local == NULL)
            goto out;
        ctx = new_context(now, piface, local, tracker);
        PyObject *pre_l = PyList_New(0);
        int hr = ctx != NULL && pre_l != NULL ? has_chain(tables, str_raw, str_pre) : -1;
        int wr = 1;
        PyObject *src = NULL;
        if (hr > 0)
            wr = walk_into(engine, tables, str_raw, str_pre, pkt, ctx, pre_l, &src);
        Py_XDECREF(src);
        if (hr >= 0 && wr == 1)
            pre = PyList_AsTuple(pre_l);
        Py_XDECREF(pre_l);
        if (hr < 0 || wr < 0 || (wr == 1 && pre == NULL)) {
            rc = -1;
            goto out;
        }
        if (wr != 1 || check_record(pre) <= 0)
            goto out;
    }
    /* from here on the packet is ours: no fallback to Firewall.process */
    PyObject *buf = SLOT(pkt, PK(P_BUF));
    if (buf == NULL || !PyBytes_CheckExact(buf))
        goto out;
    length = (unsigned long long)PyBytes_GET_SIZE(buf);
    if (bump(pre, length) < 0) {
        rc = -1;
        goto out;
    }
    PyObject *ret;
    int r = 0;
    if (SLOT(pkt, PK(P_CT)) == Py_None && SLOT(pkt, PK(P_UNTRACKED)) == Py_False
            && SLOT(pkt, PK(P_L4ERR)) == Py_None
            && SLOT(tracker, tracker_map.off[T_IS24]) == Py_False && tcp_l4(tracker)) {
        r = fast_tcp_error(tracker, pkt, int_zero);
        if (r > 0)
            r = established_in(tracker, pkt, now, key, ct, &ret);
    }
    if (r < 0) {
        rc = -1;
        goto out;
    }
    if (r == 0) {
        PyObject *stack[5] = {NULL, tracker, pkt, now, int_zero};
        ret = PyObject_Vectorcall(fb_conntrack_in, stack + 1, 4 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                  NULL);
        if (ret == NULL) {
            rc = -1;
            goto out;
        }
    }
    long long got_ctinfo;
    int same = SLOT(pkt, PK(P_CT)) == ct && slot_ll(pkt, PK(P_CTINFO), want, want, &got_ctinfo)
        && PyLong_Check(ret) && PyLong_AsLong(ret) != 0;
    PyObject *rec = NULL;
    if (same && learning) {
        /* Firewall._walk_after, then the record kept on the entry (flowcache.store) */
        rec = walk_after(fw, engine, tables, host, pkt, ctx, want_obj, pre);
        if (rec == NULL) {
            Py_DECREF(ret);
            rc = -1;
            goto out;
        }
        same = rec != Py_None;
    }
    if (!same) {
        /* conntrack sees it otherwise, or the walk is not flow-stable:
         * Firewall._diverged(engine, pkt, now, ret) */
        Py_XDECREF(rec);
        *result = PyObject_CallMethodObjArgs(fw, str_diverged, engine, pkt, now, ret, NULL);
        Py_DECREF(ret);
        rc = *result ? 1 : -1;
        goto out;
    }
    Py_DECREF(ret);
    if (learning) {
        fc = SLOT(ct, conn2_map.off[CX_FC]);
        if (fc == Py_None || !PyList_CheckExact(fc) || PyList_GET_SIZE(fc) != 2) {
            fc = PyList_New(2);
            if (fc == NULL || slot_set(ct, conn2_map.off[CX_FC], fc) < 0) {
                Py_DECREF(rec);
                rc = -1;
                goto out;
            }
            for (int k = 0; k < 2; k++) {
                Py_INCREF(Py_None);
                PyList_SET_ITEM(fc, k, Py_None);
            }
        }
        Py_INCREF(rec);
        PyList_SetItem(fc, eq ? 0 : 1, rec);
        Py_SETREF(e, rec);
    }
    post = SLOT(e, fe_map.off[FE_POST]);
    if ((learning && check_record(post) <= 0) || bump(post, length) < 0) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_RuntimeError, "flow cache: a record it made is malformed");
        rc = -1;
        goto out;
    }
    d = new_decision();
    if (d == NULL) {
        rc = -1;
        goto out;
    }
    PyObject *verdict = SLOT(e, fe_map.off[FE_VERDICT]);
    int accept = PyUnicode_Check(verdict) && PyUnicode_Compare(verdict, str_accept) == 0;
    PyObject *reason = accept ? SLOT(pkt, PK(P_REASON)) : SLOT(e, fe_map.off[FE_REASON]);
    PyObject *vals[6] = {verdict, pkt, reason, SLOT(e, fe_map.off[FE_PATH]),
                         SLOT(e, fe_map.off[FE_OUT_IFACE]), SLOT(e, fe_map.off[FE_SOURCE])};
    int offs[6] = {D_VERDICT, D_PKT, D_REASON, D_PATH, D_OUT_IFACE, D_SOURCE};
    for (int k = 0; k < 6; k++) {
        Py_INCREF(vals[k]);
        if (slot_set(d, dec_map.off[offs[k]], vals[k]) < 0) {
            rc = -1;
            goto out;
        }
    }
    if (!accept) {
        *result = d;
        d = NULL;
        rc = 1;
        goto out;
    }
    *result = finish(tracker, pkt, now, d, 1);
    d = NULL;
    rc = *result ? 1 : -1;
out:
    Py_XDECREF(d);
    Py_XDECREF(e);
    Py_XDECREF(ctx);
    Py_XDECREF(pre);
    Py_DECREF(ct);
    Py_DECREF(key);
    return rc;
}

static PyObject *
sp_process(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    /* process(self, pkt, now, hook=NF_INET_PRE_ROUTING) */
    long long hook = 0;
    if (kwnames == NULL && (nargs == 2 || (nargs == 3 && obj_ll(args[2], 0, 0, &hook)))) {
        PyObject *res;
        int r = fast_process(self, args[0], args[1], &res);
        if (r > 0)
            return res;
        if (r < 0)
            return NULL;
    }
    return call_with_self(fb_process, self, args, nargs, kwnames);
}

static PyMethodDef process_def = {
    "process", (PyCFunction)(void (*)(void))sp_process, METH_FASTCALL | METH_KEYWORDS,
    "Firewall.process (C for an established TCP segment without rules, or with a flow cache "
    "record; Python for the rest)."};

static PyObject *
sp_firewall_methods(PyObject *mod, PyObject *args)
{
    PyObject *cls, *process_py, *dec_cls, *dec_tmpl_obj, *defrag_cls, *family_cls, *expect_cls;
    PyObject *host_cls, *engine_cls, *fe_cls, *accept, *drop, *ctx_cls, *ctx_tmpl_obj, *ctab_cls;
    PyObject *hooks;
    if (!PyArg_ParseTuple(args, "OOOOOOOOOOUUOOOO!", &cls, &process_py, &dec_cls, &dec_tmpl_obj,
                          &defrag_cls, &family_cls, &expect_cls, &host_cls, &engine_cls,
                          &fe_cls, &accept, &drop, &ctx_cls, &ctx_tmpl_obj, &ctab_cls,
                          &PyDict_Type, &hooks))
        return NULL;
    if (tracker_map.type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "tracker_methods first");
        return NULL;
    }
    if (!PyCallable_Check(process_py) || Py_TYPE(dec_tmpl_obj) != (PyTypeObject *)dec_cls
            || ((PyTypeObject *)dec_cls)->tp_base != &PyBaseObject_Type) {
        PyErr_SetString(PyExc_TypeError, "firewall_methods: bad arguments");
        return NULL;
    }
    if (bind_map(&fw_map, cls, fw_names, F_N) < 0
            || bind_map(&dec_map, dec_cls, dec_names, D_N) < 0
            || bind_template(dec_cls, dec_tmpl_obj, "Decision", &dec_nall, dec_all_off,
                             dec_tmpl) < 0
            || bind_map(&defrag_map, defrag_cls, defrag_names, DF_N) < 0
            || bind_map(&family_map, family_cls, family_names, 1) < 0
            || bind_map(&expect_map, expect_cls, expect_names, 1) < 0
            || bind_map(&host_map, host_cls, host_names, H_N) < 0
            || bind_map(&engine_map, engine_cls, engine_names, 1) < 0
            || bind_map(&fe_map, fe_cls, fe_names, FE_N) < 0
            || bind_map(&ctx_map, ctx_cls, ctx_names, X_N) < 0
            || bind_template(ctx_cls, ctx_tmpl_obj, "Context", &ctx_nall, ctx_all_off,
                             ctx_tmpl) < 0
            || bind_map(&ctab_map, ctab_cls, ctab_names, CT_N) < 0)
        return NULL;
    if (((PyTypeObject *)fe_cls)->tp_base != &PyBaseObject_Type
            || ((PyTypeObject *)ctx_cls)->tp_base != &PyBaseObject_Type) {
        PyErr_SetString(PyExc_TypeError, "firewall_methods: FlowEntry/Context layout");
        return NULL;
    }
    Py_INCREF(hooks);
    Py_XSETREF(hook_num, hooks);
    Py_INCREF(drop);
    Py_XSETREF(str_drop, drop);
    Py_INCREF(process_py);
    Py_XSETREF(fb_process, process_py);
    Py_INCREF(accept);
    Py_XSETREF(str_accept, accept);
    PyObject *m = PyDescr_NewMethod((PyTypeObject *)cls, &process_def);
    if (m == NULL)
        return NULL;
    return Py_BuildValue("{sN}", "process", m);
}

/* ---------------------------------------------------------------------------------------
 * Module.
 */

static PyMethodDef methods[] = {
    {"l4_checksum_ok", (PyCFunction)(void (*)(void))sp_l4_checksum_ok,
     METH_FASTCALL | METH_KEYWORDS, "checksum.l4_checksum_ok in C."},
    {"decode_ip", (PyCFunction)(void (*)(void))sp_decode_ip, METH_FASTCALL | METH_KEYWORDS,
     "decode.decode_ip in C (common cases; the Python decoder for the rest)."},
    {"decode_ipv4", (PyCFunction)(void (*)(void))sp_decode_ipv4, METH_FASTCALL | METH_KEYWORDS,
     "decode.decode_ipv4 in C (common cases; the Python decoder for the rest)."},
    {"decode_ipv6", (PyCFunction)(void (*)(void))sp_decode_ipv6, METH_FASTCALL | METH_KEYWORDS,
     "decode.decode_ipv6 in C (common cases; the Python decoder for the rest)."},
    {"bind_packet", sp_bind_packet, METH_VARARGS,
     "bind_packet(Packet, template): the class the decoder makes and its defaults."},
    {"set_fallbacks", (PyCFunction)(void (*)(void))sp_set_fallbacks,
     METH_VARARGS | METH_KEYWORDS, "The pure-Python functions the C ones defer to."},
    {"tcp_methods", sp_tcp_methods, METH_VARARGS,
     "tcp_methods(Tcp, error_py, packet_py, new_py, l4_factory, Conn, Settings, index, flat, "
     "valid, timeout_names, syn_sent2_timeout, layout) -> {'error': ..., 'packet': ..., "
     "'new': ...}"},
    {"firewall_methods", sp_firewall_methods, METH_VARARGS,
     "firewall_methods(Firewall, process_py, Decision, template, Defrag, defrag family, "
     "ExpectTable, HostModel, Engine, FlowEntry, ACCEPT, DROP, Context, template, "
     "CompiledTable, hook numbers) -> {'process': ...}"},
    {"chains_bind", chains_bind, METH_VARARGS,
     "chains_bind(Engine, CompiledTable, Context, Packet, Conn, RunResult, walk_py, run_py, "
     "verdicts, HotDrop, TraceRecord, CTINFO_BIT, constants) -> {'walk': ..., 'run': ...}"},
    {"tracker_methods", sp_tracker_methods, METH_VARARGS,
     "tracker_methods(Tracker, conntrack_in_py, Table, Conn) -> {'conntrack_in': ...}"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "statewall._speedups",
    "Optional C versions of statewall's per-packet hot path (see _speedups.c).", -1, methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    const char *pure = getenv("STATEWALL_PURE");
    if (pure != NULL && pure[0] != '\0' && strcmp(pure, "0") != 0) {
        PyErr_SetString(PyExc_ImportError, "statewall._speedups disabled by STATEWALL_PURE");
        return NULL;
    }
    str_settings = PyUnicode_InternFromString("settings");
    str_refresh_acct = PyUnicode_InternFromString("refresh_acct");
    str_file = PyUnicode_InternFromString("file");
    str_nat = PyUnicode_InternFromString("nat");
    str_diverged = PyUnicode_InternFromString("_diverged");
    str_confirm = PyUnicode_InternFromString("confirm");
    str_raw = PyUnicode_InternFromString("raw");
    str_pre = PyUnicode_InternFromString("PREROUTING");
    str_plan = PyUnicode_InternFromString("_plan");
    str_route = PyUnicode_InternFromString("_route");
    fwd_path = Py_BuildValue("(sss)", "PREROUTING", "FORWARD", "POSTROUTING");
    if (str_nat == NULL || str_diverged == NULL || str_confirm == NULL || str_raw == NULL
            || str_pre == NULL || str_plan == NULL || str_route == NULL || fwd_path == NULL)
        return NULL;
    int_zero = PyLong_FromLong(0);
    int_one = PyLong_FromLong(1);
    int_three = PyLong_FromLong(3);
    if (str_settings == NULL || str_refresh_acct == NULL || str_file == NULL
            || int_zero == NULL || int_one == NULL || int_three == NULL)
        return NULL;
    return PyModule_Create(&module);
}

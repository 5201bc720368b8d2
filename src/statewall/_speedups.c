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
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>

#define SLOT(o, off) (*(PyObject **)((char *)(o) + (off)))

/* ---------------------------------------------------------------------------------------
 * Slot maps: where a slotted class keeps each named attribute.
 */

#define MAX_SLOTS 64

typedef struct {
    PyTypeObject *type;             /* the exact class (strong reference), NULL: unbound */
    Py_ssize_t off[MAX_SLOTS];
} SlotMap;

/* Offset of the T_OBJECT_EX member ``name`` of ``cls`` (a __slots__ entry), or -1. */
static Py_ssize_t
member_offset(PyObject *cls, const char *name)
{
    PyObject *d = PyObject_GetAttrString(cls, name);
    if (d == NULL)
        return -1;
    Py_ssize_t off = -1;
    if (Py_TYPE(d) == &PyMemberDescr_Type) {
        PyMemberDef *m = ((PyMemberDescrObject *)d)->d_member;
        if (m->type == T_OBJECT_EX && !(m->flags & READONLY) && m->offset > 0)
            off = m->offset;
    }
    Py_DECREF(d);
    if (off < 0)
        PyErr_Format(PyExc_TypeError, "%R.%s is not a plain __slots__ attribute", cls, name);
    return off;
}

static int
bind_map(SlotMap *map, PyObject *cls, const char *const *names, int n)
{
    if (!PyType_Check(cls)) {
        PyErr_SetString(PyExc_TypeError, "expected a class");
        return -1;
    }
    if (((PyTypeObject *)cls)->tp_dictoffset != 0) {
        PyErr_Format(PyExc_TypeError, "%R has a __dict__: only slotted classes are bound", cls);
        return -1;
    }
    Py_ssize_t off[MAX_SLOTS];
    for (int i = 0; i < n; i++) {
        off[i] = member_offset(cls, names[i]);
        if (off[i] < 0)
            return -1;
    }
    memcpy(map->off, off, sizeof(Py_ssize_t) * n);
    Py_INCREF(cls);
    Py_XSETREF(map->type, (PyTypeObject *)cls);
    return 0;
}

/* An exact int slot value as a C integer in [lo, hi]; 0 when absent or out of range. */
static inline int
slot_ll(PyObject *o, Py_ssize_t off, long long lo, long long hi, long long *out)
{
    PyObject *v = SLOT(o, off);
    if (v == NULL || !PyLong_CheckExact(v))
        return 0;
    int overflow;
    long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (overflow || x < lo || x > hi)
        return 0;
    *out = x;
    return 1;
}

static inline int
obj_ll(PyObject *v, long long lo, long long hi, long long *out)
{
    if (!PyLong_CheckExact(v))
        return 0;
    int overflow;
    long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (overflow || x < lo || x > hi)
        return 0;
    *out = x;
    return 1;
}

/* Store a new reference in a slot (NULL: an allocation failed, report it). */
static inline int
slot_set(PyObject *o, Py_ssize_t off, PyObject *v)
{
    if (v == NULL)
        return -1;
    PyObject **p = &SLOT(o, off);
    PyObject *old = *p;
    *p = v;
    Py_XDECREF(old);
    return 0;
}

/* Call ``func(self, *args, **kw)`` with a vectorcall argument array (a method's fallback). */
static PyObject *
call_with_self(PyObject *func, PyObject *self, PyObject *const *args, Py_ssize_t nargs,
               PyObject *kwnames)
{
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    PyObject *small[16];
    PyObject **stack = small;
    if (nargs + nkw + 1 > 16) {
        stack = PyMem_Malloc(sizeof(PyObject *) * (nargs + nkw + 1));
        if (stack == NULL)
            return PyErr_NoMemory();
    }
    stack[0] = self;
    if (nargs + nkw)
        memcpy(stack + 1, args, sizeof(PyObject *) * (nargs + nkw));
    PyObject *res = PyObject_Vectorcall(func, stack, nargs + 1, kwnames);
    if (stack != small)
        PyMem_Free(stack);
    return res;
}

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
    P_ICMP_TYPE, P_ICMP_CODE, P_L4LEN, P_PAYLOAD_OFF, P_N
};
static const char *const pkt_names[P_N] = {
    "buf", "l3num", "src", "dst", "proto", "l4off", "ttl", "ipid", "fragoff", "mf", "tos",
    "sport", "dport", "seq", "ack", "flags", "win", "doff", "tcp_optoff", "tcp_optlen",
    "icmp_type", "icmp_code", "l4len", "payload_off",
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
    {"NF_INET_PRE_ROUTING", 0},
};

static inline int
after32(uint32_t a, uint32_t b)     /* after(a, b): (b - a) mod 2**32 >= 2**31 */
{
    return (uint32_t)(b - a) > 0x7FFFFFFFu;
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
    long i = off;
    while (i < end) {
        unsigned kind = b[i];
        if (kind == 0)
            break;
        if (kind == 1) {
            i++;
            continue;
        }
        if (i + 1 >= end)
            break;
        long size = b[i + 1];
        if (size < 2 || size > end - i)
            break;
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
        PyObject *settings = PyObject_GetAttr(tracker, str_settings);
        if (settings == NULL) {
            PyErr_Clear();
            return 0;
        }
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
    long i = off;
    while (i < end) {
        unsigned kind = b[i];
        if (kind == 0)
            break;
        if (kind == 1) {
            i++;
            continue;
        }
        if (i + 1 >= end)
            break;
        long size = b[i + 1];
        if (size < 2 || size > end - i)
            break;
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
    settings = PyObject_GetAttr(tracker, str_settings);
    if (settings == NULL) {
        PyErr_Clear();
        goto done;
    }
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
        /* tracker.refresh_acct(ct, pkt, dir, now, timeout); stack[0] is scratch space */
        PyObject *stack[7] = {NULL, tracker, ct, pkt, dirobj, now, timeout};
        Py_INCREF(timeout);     /* (borrowed from a Settings slot until now) */
        PyObject *res = PyObject_VectorcallMethod(str_refresh_acct, stack + 1,
                                                  6 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        Py_DECREF(timeout);
        if (res == NULL)
            goto done;
        Py_DECREF(res);
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

/* ---------------------------------------------------------------------------------------
 * Binding (called once by the Python modules at import).
 */

static int
is_immutable_default(PyObject *v)
{
    return v == Py_None || PyBool_Check(v) || PyLong_CheckExact(v) || PyFloat_CheckExact(v)
        || PyUnicode_CheckExact(v) || PyBytes_CheckExact(v);
}

static PyObject *
sp_bind_packet(PyObject *mod, PyObject *args)
{
    PyObject *cls, *tmpl;
    if (!PyArg_ParseTuple(args, "OO", &cls, &tmpl))
        return NULL;
    if (Py_TYPE(tmpl) != (PyTypeObject *)cls) {
        PyErr_SetString(PyExc_TypeError, "the template must be an instance of the class");
        return NULL;
    }
    PyObject *slots = PyObject_GetAttrString(cls, "__slots__");
    if (slots == NULL)
        return NULL;
    PyObject *seq = PySequence_Fast(slots, "__slots__ must be a sequence");
    Py_DECREF(slots);
    if (seq == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n > MAX_SLOTS || ((PyTypeObject *)cls)->tp_base != &PyBaseObject_Type) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_TypeError, "Packet layout not supported");
        return NULL;
    }
    Py_ssize_t off[MAX_SLOTS];
    PyObject *val[MAX_SLOTS];
    for (Py_ssize_t i = 0; i < n; i++) {
        const char *name = PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(seq, i));
        if (name == NULL || (off[i] = member_offset(cls, name)) < 0) {
            Py_DECREF(seq);
            return NULL;
        }
        val[i] = SLOT(tmpl, off[i]);
        if (val[i] == NULL || !is_immutable_default(val[i])) {
            PyErr_Format(PyExc_TypeError, "Packet.%s has no immutable default", name);
            Py_DECREF(seq);
            return NULL;
        }
    }
    Py_DECREF(seq);
    if (bind_map(&pkt_map, cls, pkt_names, P_N) < 0)
        return NULL;
    for (int i = 0; i < pkt_nall; i++)
        Py_CLEAR(pkt_tmpl[i]);
    for (Py_ssize_t i = 0; i < n; i++) {
        pkt_all_off[i] = off[i];
        Py_INCREF(val[i]);
        pkt_tmpl[i] = val[i];
    }
    pkt_nall = (int)n;
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
    if (str_settings == NULL || str_refresh_acct == NULL)
        return NULL;
    return PyModule_Create(&module);
}

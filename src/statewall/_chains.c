/* statewall._speedups, the chain walk: rules/engine.py ``Engine.walk`` and ``Engine.run``
 * in C (``ipt_do_table``), and the common matches evaluated without a Python call.
 *
 * Owns: nothing of its own. ``walk_py`` / ``run_py`` (rules/engine.py) are the reference; the
 * C versions take the compiled tables as rules/compile.py lays them out and give exactly
 * their results, counters and records. A case they do not take (tracing, a table or hook
 * without its chain, an unexpected type, a jump stack deeper than MAX_DEPTH) goes to the
 * Python reference before anything changed.
 *
 * Native matches: rules/compile.py gives each rule, next to its Python test, a tuple of
 * specs, one per predicate: ``(fn, op, args...)``. ``op`` names a test done here on the
 * packet's and context's slots (protocol, addresses under masks, interfaces, conntrack state,
 * tcp/udp ports and flags, multiport); op 0, or a case a native test does not decide (a
 * fragment, a damaged header: what raises HotDrop or reads the raw header), calls ``fn``.
 * Must not know: the hooks or their order (firewall.py), what targets do.
 */
#include "_speedups.h"

enum { OP_PY, OP_VOLATILE, OP_PROTO, OP_ADDR, OP_IFACE, OP_STATE, OP_PORTS, OP_MULTIPORT };
enum { K_NONE, K_VERDICT, K_RETURN, K_JUMP, K_GOTO, K_TARGET };
#define MAX_DEPTH 64

enum { E_TABLES, E_FIXED, E_N };
static const char *const eng_names[E_N] = {"tables", "_fixed"};
static SlotMap eng_map;
enum { T_NAME, T_CHAINS, T_NAMES, T_ENTRY, T_POLICY, T_SOURCES, T_PSOURCES, T_PKTS, T_BYTES,
       T_PPKTS, T_PBYTES, T_PROGS, T_N };
static const char *const tab_names[T_N] = {"name", "chains", "names", "entry", "policy",
    "sources", "policy_sources", "pkts", "bytes", "ppkts", "pbytes", "progs"};
static SlotMap tab_map;
enum { X_HOOK, X_VOLATILE, X_IN, X_OUT, X_TRACE, X_N };
static const char *const ctx_names[X_N] = {"hook", "volatile", "in_iface", "out_iface",
                                           "nf_trace"};
static SlotMap ctx_map;
enum { Q_PROTO, Q_SRC, Q_DST, Q_FRAGOFF, Q_L4ERR, Q_SPORT, Q_DPORT, Q_FLAGS, Q_CT, Q_CTINFO,
       Q_BUF, Q_N };
static const char *const qpkt_names[Q_N] = {"proto", "src", "dst", "fragoff", "l4err", "sport",
    "dport", "flags", "ct", "ctinfo", "buf"};
static SlotMap qpkt_map;
static const char *const qconn_names[1] = {"status"};
static SlotMap qconn_map;
enum { R_VERDICT, R_SOURCE, R_EMITTED, R_N };
static const char *const res_names[R_N] = {"verdict", "source", "emitted"};
static SlotMap res_map;

static PyObject *walk_py, *run_py, *verdicts, *hotdrop, *result_cls, *trace_cls;
static PyObject *s_rule, *s_return, *s_policy, *s_policy_end;
static long ctinfo_bit[8];
static int n_ctinfo_bit;
static long st_snat, st_dnat, st_untracked, st_invalid, ct_untracked, ips_src_nat, ips_dst_nat;
static long xt_continue, xt_return;

static inline long
as_long(PyObject *v)
{
    return PyLong_AsLong(v);        /* specs are made by rules/compile.py: small exact ints */
}

/* The conntrack state bit of the packet (rules/ext/conntrack.py _packet_statebit); -1 when
 * the fields are not what the tracker sets. */
static long
statebit(PyObject *pkt)
{
    PyObject *ct = SLOT(pkt, qpkt_map.off[Q_CT]);
    long long ctinfo;
    if (ct == NULL || !slot_ll(pkt, qpkt_map.off[Q_CTINFO], 0, 7, &ctinfo))
        return -1;
    if (ct == Py_None)
        return ctinfo == ct_untracked ? st_untracked : st_invalid;
    long long status;
    if (Py_TYPE(ct) != qconn_map.type || ctinfo >= n_ctinfo_bit
            || !slot_ll(ct, qconn_map.off[0], 0, LLONG_MAX, &status))
        return -1;
    long bit = ctinfo_bit[ctinfo];
    if (status & ips_src_nat)
        bit |= st_snat;
    if (status & ips_dst_nat)
        bit |= st_dnat;
    return bit;
}

/* One native predicate: 1 true, 0 false, -1 not decided here (call fn). */
static int
native(PyObject *spec, PyObject *pkt, PyObject *ctx)
{
    Py_ssize_t n = PyTuple_GET_SIZE(spec);
    long op = n >= 2 ? as_long(PyTuple_GET_ITEM(spec, 1)) : OP_PY;
    switch (op) {
    case OP_VOLATILE: {             /* (fn, op): the rule may answer otherwise next time */
        Py_INCREF(Py_True);
        slot_set(ctx, ctx_map.off[X_VOLATILE], Py_True);
        return 1;
    }
    case OP_PROTO: {                /* (fn, op, proto, inv) */
        long long proto;
        if (n != 4 || !slot_ll(pkt, qpkt_map.off[Q_PROTO], 0, 255, &proto))
            return -1;
        return (proto == as_long(PyTuple_GET_ITEM(spec, 2)))
            != (PyTuple_GET_ITEM(spec, 3) == Py_True);
    }
    case OP_ADDR: {                 /* (fn, op, dst?, want (masked), mask, inv) */
        if (n != 6)
            return -1;
        PyObject *a = SLOT(pkt, qpkt_map.off[PyTuple_GET_ITEM(spec, 2) == Py_True ? Q_DST
                                                                                  : Q_SRC]);
        PyObject *want = PyTuple_GET_ITEM(spec, 3), *mask = PyTuple_GET_ITEM(spec, 4);
        if (a == NULL || !PyBytes_CheckExact(a) || PyBytes_GET_SIZE(a) != PyBytes_GET_SIZE(mask))
            return -1;
        const unsigned char *pa = (const unsigned char *)PyBytes_AS_STRING(a);
        const unsigned char *pw = (const unsigned char *)PyBytes_AS_STRING(want);
        const unsigned char *pm = (const unsigned char *)PyBytes_AS_STRING(mask);
        int eq = 1;
        for (Py_ssize_t k = 0; k < PyBytes_GET_SIZE(mask); k++)
            if ((pa[k] & pm[k]) != pw[k]) {
                eq = 0;
                break;
            }
        return eq != (PyTuple_GET_ITEM(spec, 5) == Py_True);
    }
    case OP_IFACE: {                /* (fn, op, out?, name, wildcard, inv) */
        if (n != 6)
            return -1;
        PyObject *v = SLOT(ctx, ctx_map.off[PyTuple_GET_ITEM(spec, 2) == Py_True ? X_OUT
                                                                                 : X_IN]);
        PyObject *name = PyTuple_GET_ITEM(spec, 3);
        int eq;
        if (v == NULL)
            return -1;
        if (v == Py_None) {
            eq = PyUnicode_GET_LENGTH(name) == 0;
        } else if (!PyUnicode_CheckExact(v)) {
            return -1;
        } else if (PyTuple_GET_ITEM(spec, 4) == Py_True) {
            Py_ssize_t r = PyUnicode_Tailmatch(v, name, 0, PY_SSIZE_T_MAX, -1);
            if (r < 0)
                return -1;
            eq = (int)r;
        } else {
            eq = PyUnicode_Compare(v, name) == 0;
        }
        return eq != (PyTuple_GET_ITEM(spec, 5) == Py_True);
    }
    case OP_STATE: {                /* (fn, op, mask, inv) */
        long bit = n == 4 ? statebit(pkt) : -1;
        if (bit < 0)
            return -1;
        return ((as_long(PyTuple_GET_ITEM(spec, 2)) & bit) != 0)
            != (PyTuple_GET_ITEM(spec, 3) == Py_True);
    }
    case OP_PORTS: {    /* (fn, op, slo, shi, sinv, dlo, dhi, dinv, fmask, fcmp, finv) */
        long long fragoff, sport, dport, flags;
        if (n != 11 || !slot_ll(pkt, qpkt_map.off[Q_FRAGOFF], 0, 0, &fragoff)
                || SLOT(pkt, qpkt_map.off[Q_L4ERR]) != Py_None
                || !slot_ll(pkt, qpkt_map.off[Q_SPORT], 0, 65535, &sport)
                || !slot_ll(pkt, qpkt_map.off[Q_DPORT], 0, 65535, &dport))
            return -1;
        if ((as_long(PyTuple_GET_ITEM(spec, 2)) <= sport
                && sport <= as_long(PyTuple_GET_ITEM(spec, 3)))
                == (PyTuple_GET_ITEM(spec, 4) == Py_True))
            return 0;
        if ((as_long(PyTuple_GET_ITEM(spec, 5)) <= dport
                && dport <= as_long(PyTuple_GET_ITEM(spec, 6)))
                == (PyTuple_GET_ITEM(spec, 7) == Py_True))
            return 0;
        long fmask = as_long(PyTuple_GET_ITEM(spec, 8));
        int finv = PyTuple_GET_ITEM(spec, 10) == Py_True;
        if (fmask == 0 && !finv)
            return 1;
        if (!slot_ll(pkt, qpkt_map.off[Q_FLAGS], 0, 255, &flags))
            return -1;
        return ((flags & fmask) == as_long(PyTuple_GET_ITEM(spec, 9))) != finv;
    }
    case OP_MULTIPORT: {    /* (fn, op, src?, dst?, ((lo, hi), ...), inv) */
        long long fragoff, sport, dport;
        if (n != 6 || !slot_ll(pkt, qpkt_map.off[Q_FRAGOFF], 0, 0, &fragoff)
                || SLOT(pkt, qpkt_map.off[Q_L4ERR]) != Py_None
                || !slot_ll(pkt, qpkt_map.off[Q_SPORT], 0, 65535, &sport)
                || !slot_ll(pkt, qpkt_map.off[Q_DPORT], 0, 65535, &dport))
            return -1;
        int src = PyTuple_GET_ITEM(spec, 2) == Py_True, dst = PyTuple_GET_ITEM(spec, 3) == Py_True;
        int inv = PyTuple_GET_ITEM(spec, 5) == Py_True;
        PyObject *ranges = PyTuple_GET_ITEM(spec, 4);
        for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(ranges); k++) {
            PyObject *r = PyTuple_GET_ITEM(ranges, k);
            long lo = as_long(PyTuple_GET_ITEM(r, 0)), hi = as_long(PyTuple_GET_ITEM(r, 1));
            if ((src && lo <= sport && sport <= hi) || (dst && lo <= dport && dport <= hi))
                return !inv;
        }
        return inv;
    }
    default:
        return -1;
    }
}

/* Does the rule match? 1/0, -1 error (HotDrop included). ``prog`` None: call ``test``. */
static int
matches(PyObject *test, PyObject *prog, PyObject *pkt, PyObject *ctx)
{
    if (prog == Py_None || !PyTuple_CheckExact(prog)) {
        if (test == Py_None)
            return 1;
        PyObject *args[2] = {pkt, ctx};
        PyObject *r = PyObject_Vectorcall(test, args, 2, NULL);
        if (r == NULL)
            return -1;
        int t = PyObject_IsTrue(r);
        Py_DECREF(r);
        return t;
    }
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(prog); k++) {
        PyObject *spec = PyTuple_GET_ITEM(prog, k);
        if (!PyTuple_CheckExact(spec) || PyTuple_GET_SIZE(spec) < 2) {
            PyErr_SetString(PyExc_TypeError, "malformed native match");
            return -1;
        }
        int t = native(spec, pkt, ctx);
        if (t < 0) {
            PyObject *args[2] = {pkt, ctx};
            PyObject *r = PyObject_Vectorcall(PyTuple_GET_ITEM(spec, 0), args, 2, NULL);
            if (r == NULL)
                return -1;
            t = PyObject_IsTrue(r);
            Py_DECREF(r);
            if (t < 0)
                return -1;
        }
        if (!t)
            return 0;
    }
    return 1;
}

/* The compiled table and the entry chain index for (table, hook), or 0: not taken here. */
static int
lookup(PyObject *engine, PyObject *table, PyObject *hook, PyObject **t, Py_ssize_t *ci)
{
    if (eng_map.type == NULL || Py_TYPE(engine) != eng_map.type)
        return 0;
    PyObject *tables = SLOT(engine, eng_map.off[E_TABLES]);
    if (tables == NULL || !PyDict_CheckExact(tables))
        return 0;
    PyObject *tab = PyDict_GetItemWithError(tables, table);
    if (tab == NULL)
        return PyErr_Occurred() ? -1 : 0;
    if (Py_TYPE(tab) != tab_map.type)
        return 0;
    PyObject *entry = SLOT(tab, tab_map.off[T_ENTRY]);
    if (entry == NULL || !PyDict_CheckExact(entry))
        return 0;
    PyObject *cio = PyDict_GetItemWithError(entry, hook);
    long long c;
    if (cio == NULL)
        return PyErr_Occurred() ? -1 : 0;
    for (int k = T_CHAINS; k < T_N; k++) {
        PyObject *v = SLOT(tab, tab_map.off[k]);
        int counters = k == T_PKTS || k == T_BYTES || k == T_PPKTS || k == T_PBYTES;
        if (v == NULL || (k != T_NAME && k != T_ENTRY
                          && !(counters ? PyMemoryView_Check(v) : PyList_CheckExact(v))))
            return 0;
    }
    PyObject *chains = SLOT(tab, tab_map.off[T_CHAINS]);
    if (!obj_ll(cio, 0, PyList_GET_SIZE(chains) - 1, &c)
            || PyList_GET_SIZE(SLOT(tab, tab_map.off[T_PROGS])) != PyList_GET_SIZE(chains))
        return 0;
    *t = tab;
    *ci = (Py_ssize_t)c;
    return 1;
}

static inline Py_ssize_t
chain_len(PyObject *tab, Py_ssize_t ci)
{
    PyObject *rules = PyList_GET_ITEM(SLOT(tab, tab_map.off[T_CHAINS]), ci);
    return PyList_CheckExact(rules) ? PyList_GET_SIZE(rules) : 0;
}

static inline PyObject *
item(PyObject *list, Py_ssize_t i)
{
    if (i < 0 || i >= PyList_GET_SIZE(list)) {
        PyErr_SetString(PyExc_IndexError, "compiled table index");
        return NULL;
    }
    return PyList_GET_ITEM(list, i);
}

static inline int
is_true_slot(PyObject *o, Py_ssize_t off)
{
    PyObject *v = SLOT(o, off);
    return v != NULL && v != Py_False && v != Py_None && PyObject_IsTrue(v) == 1;
}

static PyObject *
verdict_of(PyObject *code)
{
    long long v;
    if (!obj_ll(code, 0, PyTuple_GET_SIZE(verdicts) - 1, &v)) {
        PyErr_SetString(PyExc_ValueError, "bad verdict code");
        return NULL;
    }
    PyObject *r = PyTuple_GET_ITEM(verdicts, v);
    Py_INCREF(r);
    return r;
}

/* Where a traversal is: the chain, the rule in it, and the return points of jumps. */
typedef struct {
    Py_ssize_t ci, i, sp;
    Py_ssize_t stack[MAX_DEPTH][2];
} Pos;

/* A jump (the return point pushed) or goto to chain ``arg``. 1: done; 0: a malformed table
 * (an exception set); -1: jumps nested deeper than MAX_DEPTH (no exception). */
static int
jump(PyObject *tab, Pos *p, long kind, PyObject *arg)
{
    long long a;
    if (!obj_ll(arg, 0, PyList_GET_SIZE(SLOT(tab, tab_map.off[T_CHAINS])) - 1, &a)) {
        PyErr_SetString(PyExc_TypeError, "malformed compiled table: jump target");
        return 0;
    }
    if (kind == K_JUMP) {
        if (p->sp >= MAX_DEPTH)
            return -1;
        p->stack[p->sp][0] = p->ci;
        p->stack[p->sp][1] = p->i + 1;
        p->sp++;
    }
    p->ci = (Py_ssize_t)a;
    p->i = 0;
    return 1;
}

/* Back to the last return point; 0 when there is none (the built-in chain's policy). */
static inline int
pop(Pos *p)
{
    if (!p->sp)
        return 0;
    p->sp--;
    p->ci = p->stack[p->sp][0];
    p->i = p->stack[p->sp][1];
    return 1;
}

/* "table/chain#n" of counter index ``k`` (borrowed), or NULL with an exception. */
static PyObject *
rule_source(PyObject *tab, PyObject *k)
{
    long long kk;
    PyObject *sources = SLOT(tab, tab_map.off[T_SOURCES]);
    if (!obj_ll(k, 0, PyList_GET_SIZE(sources) - 1, &kk)) {
        PyErr_SetString(PyExc_TypeError, "malformed compiled table: counter index");
        return NULL;
    }
    return PyList_GET_ITEM(sources, kk);
}

/* From rule p->i of chain p->ci on, the next rule that matches: 1 (*rule set, p->i at it);
 * 0: none left in the chain; 2 (``walking``): a rule that may answer otherwise for the
 * flow's next packet was looked at; -1: error (HotDrop included). */
static int
next_match(PyObject *tab, Pos *p, PyObject *pkt, PyObject *ctx, int walking, PyObject **rule)
{
    PyObject *rules = PyList_GET_ITEM(SLOT(tab, tab_map.off[T_CHAINS]), p->ci);
    PyObject *progs = PyList_GET_ITEM(SLOT(tab, tab_map.off[T_PROGS]), p->ci);
    if (!PyList_CheckExact(rules) || !PyList_CheckExact(progs)
            || PyList_GET_SIZE(progs) != PyList_GET_SIZE(rules)) {
        PyErr_SetString(PyExc_TypeError, "malformed compiled chain");
        return -1;
    }
    Py_ssize_t n = PyList_GET_SIZE(rules);
    for (; p->i < n; p->i++) {
        PyObject *prog = PyList_GET_ITEM(progs, p->i);
        *rule = PyList_GET_ITEM(rules, p->i);
        if (!PyTuple_CheckExact(*rule) || PyTuple_GET_SIZE(*rule) != 4) {
            PyErr_SetString(PyExc_TypeError, "malformed compiled rule");
            return -1;
        }
        int m = matches(PyTuple_GET_ITEM(*rule, 0), prog, pkt, ctx);
        if (m < 0)
            return -1;
        if (walking && SLOT(ctx, ctx_map.off[X_VOLATILE]) == Py_True)
            return 2;
        if (m)
            return 1;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * Engine.walk: the traversal without effects (flowcache.py's recording).
 */
PyObject *
chains_walk(PyObject *engine, PyObject *table, PyObject *hook, PyObject *pkt, PyObject *ctx)
{
    PyObject *tab;
    Py_ssize_t ci;
    if (walk_py == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "chains_bind first");
        return NULL;
    }
    int r = (Py_TYPE(ctx) == ctx_map.type && Py_TYPE(pkt) == qpkt_map.type)
        ? lookup(engine, table, hook, &tab, &ci) : 0;
    if (r <= 0) {
        if (r < 0)
            return NULL;
        PyObject *args[5] = {engine, table, hook, pkt, ctx};
        return PyObject_Vectorcall(walk_py, args, 5, NULL);
    }
    Py_INCREF(hook);
    slot_set(ctx, ctx_map.off[X_HOOK], hook);
    Py_INCREF(Py_False);
    slot_set(ctx, ctx_map.off[X_VOLATILE], Py_False);
    PyObject *hits = PyList_New(0);
    if (hits == NULL)
        return NULL;
    Pos p;                              /* (the stack is not cleared: sp counts it) */
    p.ci = ci;
    p.i = p.sp = 0;
    for (;;) {
        PyObject *rule;
        int r = next_match(tab, &p, pkt, ctx, 1, &rule);
        if (r < 0) {
            if (!PyErr_ExceptionMatches(hotdrop))
                goto error;
            PyErr_Clear();
            goto none;
        }
        if (r == 2)
            goto none;
        if (r == 0) {                       /* fell off the end of the chain */
            if (!pop(&p))
                break;
            continue;
        }
        PyObject *k = PyTuple_GET_ITEM(rule, 3), *arg = PyTuple_GET_ITEM(rule, 2);
        long kind = as_long(PyTuple_GET_ITEM(rule, 1));
        if (PyList_Append(hits, k) < 0)
            goto error;
        if (kind == K_VERDICT) {
            PyObject *src = rule_source(tab, k);
            PyObject *v = src ? verdict_of(arg) : NULL;
            if (v == NULL)
                goto error;
            Py_INCREF(src);
            return Py_BuildValue("(NNN)", v, src, hits);
        }
        if (kind == K_TARGET)
            goto none;
        if (kind == K_JUMP || kind == K_GOTO) {
            int j = jump(tab, &p, kind, arg);
            if (j == 0)
                goto error;
            if (j < 0)
                goto deep;
        } else if (kind == K_RETURN) {
            if (!pop(&p))
                break;
        } else {
            p.i++;
        }
    }
    PyObject *h = PyLong_FromSsize_t(~ci);
    if (h == NULL || PyList_Append(hits, h) < 0) {
        Py_XDECREF(h);
        goto error;
    }
    Py_DECREF(h);
    PyObject *pol = item(SLOT(tab, tab_map.off[T_POLICY]), ci);
    PyObject *psrc = pol ? item(SLOT(tab, tab_map.off[T_PSOURCES]), ci) : NULL;
    PyObject *v = psrc ? verdict_of(pol) : NULL;
    if (v == NULL)
        goto error;
    Py_INCREF(psrc);
    return Py_BuildValue("(NNN)", v, psrc, hits);
none:
    Py_DECREF(hits);
    Py_RETURN_NONE;
deep:
    /* (nothing was changed but ctx.hook / ctx.volatile, which walk_py sets again) */
    Py_DECREF(hits);
    {
        PyObject *args[5] = {engine, table, hook, pkt, ctx};
        return PyObject_Vectorcall(walk_py, args, 5, NULL);
    }
error:
    Py_DECREF(hits);
    return NULL;
}

static PyObject *
sp_walk(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (kwnames != NULL || nargs != 4)
        return call_with_self(walk_py, self, args, nargs, kwnames);
    return chains_walk(self, args[0], args[1], args[2], args[3]);
}

PyMethodDef chains_walk_def = {
    "walk", (PyCFunction)(void (*)(void))sp_walk, METH_FASTCALL | METH_KEYWORDS,
    "Engine.walk in C (rules/engine.py walk_py for what it does not take)."};

/* ---------------------------------------------------------------------------------------
 * Engine.run: the traversal with its effects (counters, targets, TRACE lines).
 */

/* TraceRecord(table, chain, what, num) appended to res.emitted */
static int
trace_line(PyObject *res, PyObject *tab, Py_ssize_t ci, PyObject *what, Py_ssize_t num)
{
    PyObject *chain = item(SLOT(tab, tab_map.off[T_NAMES]), ci);
    if (chain == NULL)
        return -1;
    PyObject *rec = PyObject_CallFunction(trace_cls, "OOOn", SLOT(tab, tab_map.off[T_NAME]),
                                          chain, what, num);
    if (rec == NULL)
        return -1;
    PyObject *emitted = SLOT(res, res_map.off[R_EMITTED]);
    int r = (emitted != NULL && PyList_Check(emitted)) ? PyList_Append(emitted, rec) : -1;
    Py_DECREF(rec);
    if (r < 0 && !PyErr_Occurred())
        PyErr_SetString(PyExc_TypeError, "RunResult.emitted is not a list");
    return r;
}

/* Engine._policy: count, trace, apply the built-in chain's policy. */
static int
policy(PyObject *tab, Py_ssize_t ci, PyObject *ctx, PyObject *res, unsigned long long length)
{
    if (counter_add(SLOT(tab, tab_map.off[T_PPKTS]), ci, 1) < 0
            || counter_add(SLOT(tab, tab_map.off[T_PBYTES]), ci, length) < 0)
        return -1;
    if (is_true_slot(ctx, ctx_map.off[X_TRACE])
            && trace_line(res, tab, ci, s_policy, chain_len(tab, ci) + 1) < 0)
        return -1;
    PyObject *pol = item(SLOT(tab, tab_map.off[T_POLICY]), ci);
    PyObject *psrc = pol ? item(SLOT(tab, tab_map.off[T_PSOURCES]), ci) : NULL;
    if (psrc == NULL)
        return -1;
    PyObject *v = verdict_of(pol);
    Py_INCREF(psrc);
    if (slot_set(res, res_map.off[R_VERDICT], v) < 0)
        return -1;
    return slot_set(res, res_map.off[R_SOURCE], psrc);
}

static int
set_verdict(PyObject *tab, PyObject *res, PyObject *code, PyObject *k)
{
    PyObject *src = rule_source(tab, k);
    if (src == NULL || slot_set(res, res_map.off[R_VERDICT], verdict_of(code)) < 0)
        return -1;
    Py_INCREF(src);
    return slot_set(res, res_map.off[R_SOURCE], src);
}

/* 1: *out is the result; 0: run_py decides (nothing changed); -1: error */
static int
fast_run(PyObject *engine, PyObject *table, PyObject *hook, PyObject *pkt, PyObject *ctx,
         PyObject **out)
{
    if (Py_TYPE(ctx) != ctx_map.type || Py_TYPE(pkt) != qpkt_map.type
            || SLOT(ctx, ctx_map.off[X_TRACE]) != Py_False || eng_map.type == NULL
            || Py_TYPE(engine) != eng_map.type)
        return 0;
    PyObject *fixed = SLOT(engine, eng_map.off[E_FIXED]);
    if (fixed == NULL || !PyDict_CheckExact(fixed))
        return 0;
    PyObject *tab;
    Py_ssize_t ci;
    int r = lookup(engine, table, hook, &tab, &ci);
    if (r <= 0)
        return r;
    PyObject *buf = SLOT(pkt, qpkt_map.off[Q_BUF]);
    if (buf == NULL || !PyBytes_CheckExact(buf))
        return 0;
    if (chain_len(tab, ci) == 0) {
        /* an empty built-in chain: run_py's shared result, the underflow counted */
        PyObject *key = PyTuple_Pack(2, table, hook);
        if (key == NULL)
            return -1;
        PyObject *f = PyDict_GetItemWithError(fixed, key);
        Py_DECREF(key);
        if (f == NULL)
            return PyErr_Occurred() ? -1 : 0;
        if (Py_TYPE(f) != res_map.type || SLOT(f, res_map.off[R_SOURCE]) == NULL
                || !PyUnicode_Check(SLOT(f, res_map.off[R_SOURCE])))
            return 0;
        Py_ssize_t tail = PyUnicode_Tailmatch(SLOT(f, res_map.off[R_SOURCE]), s_policy_end, 0,
                                              PY_SSIZE_T_MAX, 1);
        if (tail < 0)
            return -1;
        if (tail) {
            if (counter_add(SLOT(tab, tab_map.off[T_PPKTS]), ci, 1) < 0
                    || counter_add(SLOT(tab, tab_map.off[T_PBYTES]), ci,
                                   (unsigned long long)PyBytes_GET_SIZE(buf)) < 0)
                return -1;
        }
        Py_INCREF(f);
        *out = f;
        return 1;
    }
    PyObject *res = PyObject_CallNoArgs(result_cls);
    if (res == NULL)
        return -1;
    if (Py_TYPE(res) != res_map.type) {
        Py_DECREF(res);
        return 0;
    }
    unsigned long long length = (unsigned long long)PyBytes_GET_SIZE(buf);
    Py_INCREF(hook);
    slot_set(ctx, ctx_map.off[X_HOOK], hook);
    PyObject *pkts = SLOT(tab, tab_map.off[T_PKTS]), *nbytes = SLOT(tab, tab_map.off[T_BYTES]);
    Pos p;                              /* (the stack is not cleared: sp counts it) */
    p.ci = ci;
    p.i = p.sp = 0;
    for (;;) {
        PyObject *rule;
        int r = next_match(tab, &p, pkt, ctx, 0, &rule);
        if (r < 0)
            goto error;
        if (r == 0) {                       /* fell off the end of the chain */
            int tracing = is_true_slot(ctx, ctx_map.off[X_TRACE]);
            PyObject *pol = item(SLOT(tab, tab_map.off[T_POLICY]), p.ci);
            if (pol == NULL)
                goto error;
            if ((p.sp || pol == Py_None) && tracing
                    && trace_line(res, tab, p.ci, s_return, chain_len(tab, p.ci) + 1) < 0)
                goto error;
            if (pop(&p))
                continue;
            if (policy(tab, ci, ctx, res, length) < 0)
                goto error;
            goto done;
        }
        PyObject *k = PyTuple_GET_ITEM(rule, 3), *arg = PyTuple_GET_ITEM(rule, 2);
        long kind = as_long(PyTuple_GET_ITEM(rule, 1));
        Py_ssize_t kk = PyLong_AsSsize_t(k);
        if ((kk == -1 && PyErr_Occurred()) || counter_add(pkts, kk, 1) < 0
                || counter_add(nbytes, kk, length) < 0)
            goto error;
        if (is_true_slot(ctx, ctx_map.off[X_TRACE])
                && trace_line(res, tab, p.ci, s_rule, p.i + 1) < 0)
            goto error;
        if (kind == K_VERDICT) {
            if (set_verdict(tab, res, arg, k) < 0)
                goto error;
            goto done;
        }
        if (kind == K_TARGET) {
            PyObject *targs[3] = {pkt, ctx, res};
            PyObject *vo = PyObject_Vectorcall(arg, targs, 3, NULL);
            if (vo == NULL)
                goto error;
            long v = PyLong_AsLong(vo);
            Py_DECREF(vo);
            if (v == -1 && PyErr_Occurred())
                goto error;
            if (v != xt_continue) {
                if (v != xt_return) {
                    PyObject *code = PyLong_FromLong(v);
                    int sr = code ? set_verdict(tab, res, code, k) : -1;
                    Py_XDECREF(code);
                    if (sr < 0)
                        goto error;
                    goto done;
                }
                kind = K_RETURN;
            }
        }
        if (kind == K_JUMP || kind == K_GOTO) {
            int j = jump(tab, &p, kind, arg);
            if (j < 0)
                PyErr_SetString(PyExc_RecursionError, "chain jumps nested too deep");
            if (j <= 0)
                goto error;
        } else if (kind == K_RETURN) {
            if (!pop(&p)) {
                if (policy(tab, ci, ctx, res, length) < 0)
                    goto error;
                goto done;
            }
        } else {
            p.i++;
        }
    }
done:
    *out = res;
    return 1;
error:
    if (PyErr_ExceptionMatches(hotdrop)) {
        /* a damaged packet: not the flow's answer (run_py's except HotDrop) */
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        PyErr_NormalizeException(&type, &value, &tb);
        PyObject *why = value ? PyObject_Str(value) : NULL;
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(tb);
        PyObject *src = why ? PyUnicode_FromFormat("%U/%U: hot-drop (%U)", table, hook, why)
                            : NULL;
        Py_XDECREF(why);
        PyObject *drop = src ? PyTuple_GET_ITEM(verdicts, 0) : NULL;
        Py_XINCREF(drop);
        Py_INCREF(Py_True);
        if (src != NULL && slot_set(ctx, ctx_map.off[X_VOLATILE], Py_True) == 0
                && slot_set(res, res_map.off[R_VERDICT], drop) == 0
                && slot_set(res, res_map.off[R_SOURCE], src) == 0) {
            *out = res;
            return 1;
        }
    }
    Py_DECREF(res);
    return -1;
}

static PyObject *
sp_run(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    /* run(self, table, hook, pkt, ctx, trace=False) */
    int plain = 0;
    if (nargs == 4 && kwnames == NULL)
        plain = 1;
    else if (nargs == 5 && kwnames == NULL)
        plain = args[4] == Py_False;
    else if (nargs == 4 && PyTuple_GET_SIZE(kwnames) == 1
             && PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0), "trace") == 0)
        plain = args[4] == Py_False;
    if (plain) {
        PyObject *res;
        int r = fast_run(self, args[0], args[1], args[2], args[3], &res);
        if (r > 0)
            return res;
        if (r < 0)
            return NULL;
    }
    return call_with_self(run_py, self, args, nargs, kwnames);
}

static PyMethodDef run_def = {
    "run", (PyCFunction)(void (*)(void))sp_run, METH_FASTCALL | METH_KEYWORDS,
    "Engine.run in C (rules/engine.py run_py for tracing and what it does not take)."};

/* ---------------------------------------------------------------------------------------
 * Binding (rules/engine.py _accelerate).
 */
PyObject *
chains_bind(PyObject *mod, PyObject *args)
{
    PyObject *engine_cls, *table_cls, *ctx_cls, *pkt_cls, *conn_cls, *res_cls, *wpy, *rpy;
    PyObject *verd, *hd, *tcls, *bits, *consts;
    if (!PyArg_ParseTuple(args, "OOOOOOOOO!OOO!O!", &engine_cls, &table_cls, &ctx_cls,
                          &pkt_cls, &conn_cls, &res_cls, &wpy, &rpy, &PyTuple_Type, &verd, &hd,
                          &tcls, &PyTuple_Type, &bits, &PyDict_Type, &consts))
        return NULL;
    if (PyTuple_GET_SIZE(verd) < 4 || PyTuple_GET_SIZE(bits) > 8 || !PyCallable_Check(wpy)
            || !PyCallable_Check(rpy)) {
        PyErr_SetString(PyExc_TypeError, "chains_bind: bad arguments");
        return NULL;
    }
    if (bind_map(&eng_map, engine_cls, eng_names, E_N) < 0
            || bind_map(&tab_map, table_cls, tab_names, T_N) < 0
            || bind_map(&ctx_map, ctx_cls, ctx_names, X_N) < 0
            || bind_map(&qpkt_map, pkt_cls, qpkt_names, Q_N) < 0
            || bind_map(&qconn_map, conn_cls, qconn_names, 1) < 0
            || bind_map(&res_map, res_cls, res_names, R_N) < 0)
        return NULL;
    struct { const char *name; long *dst; } want[] = {
        {"ST_SNAT", &st_snat}, {"ST_DNAT", &st_dnat}, {"ST_UNTRACKED", &st_untracked},
        {"ST_INVALID", &st_invalid}, {"IP_CT_UNTRACKED", &ct_untracked},
        {"IPS_SRC_NAT", &ips_src_nat}, {"IPS_DST_NAT", &ips_dst_nat},
        {"XT_CONTINUE", &xt_continue}, {"XT_RETURN", &xt_return},
        {"OP_VOLATILE", NULL}, {"OP_PROTO", NULL}, {"OP_ADDR", NULL}, {"OP_IFACE", NULL},
        {"OP_STATE", NULL}, {"OP_PORTS", NULL}, {"OP_MULTIPORT", NULL},
        {"K_NONE", NULL}, {"K_VERDICT", NULL}, {"K_RETURN", NULL}, {"K_JUMP", NULL},
        {"K_GOTO", NULL}, {"K_TARGET", NULL},
    };
    const long ours[] = {OP_VOLATILE, OP_PROTO, OP_ADDR, OP_IFACE, OP_STATE, OP_PORTS,
                         OP_MULTIPORT, K_NONE, K_VERDICT, K_RETURN, K_JUMP, K_GOTO, K_TARGET};
    int nours = 0;
    for (size_t k = 0; k < sizeof(want) / sizeof(want[0]); k++) {
        PyObject *v = PyDict_GetItemString(consts, want[k].name);
        long long x;
        if (v == NULL || !obj_ll(v, LONG_MIN, LONG_MAX, &x)) {
            PyErr_Format(PyExc_ValueError, "chains_bind: constant %s missing", want[k].name);
            return NULL;
        }
        if (want[k].dst != NULL) {
            *want[k].dst = (long)x;
        } else if (x != ours[nours++]) {
            PyErr_Format(PyExc_ValueError, "chains_bind: %s differs from _chains.c",
                         want[k].name);
            return NULL;
        }
    }
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(bits); k++) {
        long long x;
        if (!obj_ll(PyTuple_GET_ITEM(bits, k), 0, LONG_MAX, &x)) {
            PyErr_SetString(PyExc_ValueError, "chains_bind: CTINFO_BIT");
            return NULL;
        }
        ctinfo_bit[k] = (long)x;
    }
    n_ctinfo_bit = (int)PyTuple_GET_SIZE(bits);
    Py_INCREF(wpy);
    Py_XSETREF(walk_py, wpy);
    Py_INCREF(rpy);
    Py_XSETREF(run_py, rpy);
    Py_INCREF(verd);
    Py_XSETREF(verdicts, verd);
    Py_INCREF(hd);
    Py_XSETREF(hotdrop, hd);
    Py_INCREF(res_cls);
    Py_XSETREF(result_cls, res_cls);
    Py_INCREF(tcls);
    Py_XSETREF(trace_cls, tcls);
    if (s_rule == NULL) {
        s_rule = PyUnicode_InternFromString("rule");
        s_return = PyUnicode_InternFromString("return");
        s_policy = PyUnicode_InternFromString("policy");
        s_policy_end = PyUnicode_InternFromString(" policy");
        if (s_rule == NULL || s_return == NULL || s_policy == NULL || s_policy_end == NULL)
            return NULL;
    }
    PyObject *w = PyDescr_NewMethod((PyTypeObject *)engine_cls, &chains_walk_def);
    PyObject *r = PyDescr_NewMethod((PyTypeObject *)engine_cls, &run_def);
    if (w == NULL || r == NULL) {
        Py_XDECREF(w);
        Py_XDECREF(r);
        return NULL;
    }
    return Py_BuildValue("{sNsN}", "walk", w, "run", r);
}

/* statewall._speedups: what its C files share (slot maps: reading a slotted Python class's
 * attributes by offset; small conversions). Included by _speedups.c and _chains.c.
 */
#ifndef STATEWALL_SPEEDUPS_H
#define STATEWALL_SPEEDUPS_H

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
static inline Py_ssize_t
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

static inline int
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

/* An exact int as a C integer in [lo, hi]; 0 when it is not one or out of range. */
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

/* The same for a slot's value; 0 also when the slot is empty. */
static inline int
slot_ll(PyObject *o, Py_ssize_t off, long long lo, long long hi, long long *out)
{
    PyObject *v = SLOT(o, off);
    return v != NULL && obj_ll(v, lo, hi, out);
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
static inline PyObject *
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

/* Rule and policy counters (rules/compile.py ``counters``): a memoryview of an array of u64.
 * 1: a valid one with ``i`` in range; 0: not (no exception set). */
static inline int
counters_ok(PyObject *seq, Py_ssize_t i)
{
    if (!PyMemoryView_Check(seq))
        return 0;
    Py_buffer *b = PyMemoryView_GET_BUFFER(seq);
    return b->buf != NULL && !b->readonly && b->ndim == 1 && b->itemsize == 8
        && b->format != NULL && b->format[0] == 'Q' && b->format[1] == '\0'
        && (b->strides == NULL || b->strides[0] == 8) && i >= 0 && i < b->shape[0];
}

/* seq[i] += d, wrapping as the kernel's u64 counters. 0, or -1 with an exception. */
static inline int
counter_add(PyObject *seq, Py_ssize_t i, unsigned long long d)
{
    if (!counters_ok(seq, i)) {
        PyErr_SetString(PyExc_TypeError, "rule counters: not a u64 memoryview, or no such index");
        return -1;
    }
    ((unsigned long long *)PyMemoryView_GET_BUFFER(seq)->buf)[i] += d;
    return 0;
}

/* _chains.c: the rule engine's chain walk (rules/engine.py) */
PyObject *chains_bind(PyObject *mod, PyObject *args);
PyObject *chains_walk(PyObject *engine, PyObject *table, PyObject *hook, PyObject *pkt,
                      PyObject *ctx);
extern PyMethodDef chains_walk_def;

#endif

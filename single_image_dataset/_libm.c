/*
 * libm's cos, sin and tan over float64 buffers, for geometry.py: the same C functions that Python's
 * math module calls, so each element is bit for bit math.cos (and so on) of it, which numpy's own
 * vectorised functions need not be. An optional extension: without it geometry.py maps math's
 * functions over the elements in Python.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>

PyDoc_STRVAR(apply_doc,
"apply(function, x, out)\n--\n\n"
"out[i] = f(x[i]) for f libm's cos (function 0), sin (1) or tan (2); x and out are C-contiguous float64\n"
"buffers of the same length, out writable.");

static PyObject *py_apply(PyObject *self, PyObject *args) {
    int function;
    Py_buffer x, out;
    if (!PyArg_ParseTuple(args, "iy*w*:apply", &function, &x, &out)) return NULL;
    PyObject *result = NULL;
    if (function < 0 || function > 2) {
        PyErr_Format(PyExc_ValueError, "apply: function should be 0 (cos), 1 (sin) or 2 (tan), got %d", function);
        goto done;
    }
    if (x.len != out.len || x.len % (Py_ssize_t)sizeof(double) != 0) {
        PyErr_SetString(PyExc_ValueError, "apply: x and out should be float64 buffers of the same length");
        goto done;
    }
    const double *in = (const double *)x.buf;
    double *dst = (double *)out.buf;
    Py_ssize_t n = x.len / (Py_ssize_t)sizeof(double);
    double (*f)(double) = function == 0 ? cos : function == 1 ? sin : tan;
    for (Py_ssize_t i = 0; i < n; i++) dst[i] = f(in[i]);
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&x);
    PyBuffer_Release(&out);
    return result;
}

static PyMethodDef methods[] = {
    {"apply", py_apply, METH_VARARGS, apply_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_libm", "libm's cos, sin and tan over float64 buffers (see geometry.py).", -1, methods,
};

PyMODINIT_FUNC PyInit__libm(void) { return PyModule_Create(&module); }

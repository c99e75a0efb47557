/*
 * The OpenPAYGO Token hash chain in C.
 *
 * Making or checking a token at count N walks N SipHash-2-4 steps, so this
 * loop is the whole cost of the protocol.  The chain message is always one
 * 8-byte block, which lets the hash be written for exactly that case: the key
 * schedule is done once per chain and no buffer is ever touched.
 *
 * Exposed to Python (the pure-Python backend in backend.py has the same API):
 *   siphash24(key, data) -> int
 *   std_walk(key, code, steps) -> int
 *   std_find(key, code, high, max_count) -> list[int]
 *   ext_walk(key, code, steps) -> int
 *   ext_find(key, code, high, max_count) -> list[int]
 *   std_walk_batch(keys, codes, steps, out) -> None   (releases the GIL)
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define STD_LIMIT 999999999ULL
#define STD_FOLD 73741825ULL
#define EXT_LIMIT 999999999999ULL
#define EXT_FOLD 99511627777ULL

#define ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                         \
    do {                                                                 \
        v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);        \
        v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                           \
        v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                           \
        v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);        \
    } while (0)

static inline uint64_t load_le64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

/* SipHash-2-4 of exactly one 8-byte block (given as its little-endian word). */
static inline uint64_t sip24_block(uint64_t k0, uint64_t k1, uint64_t m)
{
    uint64_t v0 = k0 ^ 0x736f6d6570736575ULL;
    uint64_t v1 = k1 ^ 0x646f72616e646f6dULL;
    uint64_t v2 = k0 ^ 0x6c7967656e657261ULL;
    uint64_t v3 = k1 ^ 0x7465646279746573ULL;
    const uint64_t tail = 8ULL << 56;
    v3 ^= m; SIPROUND; SIPROUND; v0 ^= m;
    v3 ^= tail; SIPROUND; SIPROUND; v0 ^= tail;
    v2 ^= 0xff;
    SIPROUND; SIPROUND; SIPROUND; SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* General SipHash-2-4, used once per device to derive a starting code. */
static uint64_t sip24_bytes(uint64_t k0, uint64_t k1, const unsigned char *in, size_t len)
{
    uint64_t v0 = k0 ^ 0x736f6d6570736575ULL;
    uint64_t v1 = k1 ^ 0x646f72616e646f6dULL;
    uint64_t v2 = k0 ^ 0x6c7967656e657261ULL;
    uint64_t v3 = k1 ^ 0x7465646279746573ULL;
    size_t whole = len - (len % 8);
    for (size_t i = 0; i < whole; i += 8) {
        uint64_t m = load_le64(in + i);
        v3 ^= m; SIPROUND; SIPROUND; v0 ^= m;
    }
    uint64_t last = ((uint64_t)len) << 56;
    for (size_t i = 0; i < len % 8; i++)
        last |= ((uint64_t)in[whole + i]) << (8 * i);
    v3 ^= last; SIPROUND; SIPROUND; v0 ^= last;
    v2 ^= 0xff;
    SIPROUND; SIPROUND; SIPROUND; SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* One step of the standard chain: the 32-bit code is hashed as its four
 * big-endian bytes written twice; the halves of the hash are folded to 30 bits
 * and brought under 10^9. */
static inline uint64_t std_next(uint64_t k0, uint64_t k1, uint64_t code)
{
    uint64_t swapped = __builtin_bswap32((uint32_t)code);
    uint64_t h = sip24_block(k0, k1, swapped | (swapped << 32));
    uint64_t folded = ((h ^ (h >> 32)) & 0xffffffffULL) >> 2;
    return folded > STD_LIMIT ? folded - STD_FOLD : folded;
}

/* One step of the extended chain: the code as 8 big-endian bytes; bits 24..63
 * of the hash, brought under 10^12. */
static inline uint64_t ext_next(uint64_t k0, uint64_t k1, uint64_t code)
{
    uint64_t h = sip24_block(k0, k1, __builtin_bswap64(code));
    uint64_t top = h >> 24;
    return top > EXT_LIMIT ? top - EXT_FOLD : top;
}

/* ---- batch: many independent standard chains, several in lock-step ----
 * Each lane holds one chain; a lane that finishes is refilled with the next
 * job, so chains of different lengths still keep every lane busy.  Written
 * with GCC vector types so that the same source becomes AVX-512, AVX2 or
 * SSE2 code, picked at load time by target_clones. */
#define LANES 8
typedef uint64_t lane_vec __attribute__((vector_size(8 * LANES)));

__attribute__((target_clones("avx512f", "avx2", "default")))
static void std_batch_kernel(const unsigned char *keys, const uint32_t *codes,
                             const uint32_t *steps, uint32_t *out, Py_ssize_t n)
{
    lane_vec k0 = {0}, k1 = {0}, code = {0};
    uint64_t remaining[LANES];
    Py_ssize_t job_of_lane[LANES];
    Py_ssize_t next_job = 0;
    int busy = 0;

    for (int lane = 0; lane < LANES; lane++) {
        remaining[lane] = UINT64_MAX;
        job_of_lane[lane] = -1;
    }
    for (;;) {
        /* Retire finished lanes and load waiting jobs into free ones. */
        for (int lane = 0; lane < LANES; lane++) {
            if (remaining[lane] != 0 && job_of_lane[lane] >= 0)
                continue;
            if (job_of_lane[lane] >= 0) {
                out[job_of_lane[lane]] = (uint32_t)code[lane];
                job_of_lane[lane] = -1;
                remaining[lane] = UINT64_MAX;
                busy--;
            }
            while (next_job < n && steps[next_job] == 0) {
                out[next_job] = codes[next_job];
                next_job++;
            }
            if (next_job < n) {
                const unsigned char *key = keys + 16 * next_job;
                k0[lane] = load_le64(key);
                k1[lane] = load_le64(key + 8);
                code[lane] = codes[next_job];
                remaining[lane] = steps[next_job];
                job_of_lane[lane] = next_job;
                next_job++;
                busy++;
            }
        }
        if (busy == 0)
            break;
        uint64_t run = UINT64_MAX;
        for (int lane = 0; lane < LANES; lane++)
            if (remaining[lane] < run)
                run = remaining[lane];
        for (int lane = 0; lane < LANES; lane++)
            if (job_of_lane[lane] >= 0)
                remaining[lane] -= run;

        const lane_vec c0 = k0 ^ 0x736f6d6570736575ULL;
        const lane_vec c1 = k1 ^ 0x646f72616e646f6dULL;
        const lane_vec c2 = k0 ^ 0x6c7967656e657261ULL;
        const lane_vec c3 = k1 ^ 0x7465646279746573ULL;
        const lane_vec tail = (lane_vec){0} + (8ULL << 56);
        for (uint64_t s = 0; s < run; s++) {
            lane_vec c = code;
            lane_vec swapped = ((c & 0xff) << 24) | ((c & 0xff00) << 8) |
                               ((c >> 8) & 0xff00) | ((c >> 24) & 0xff);
            lane_vec m = swapped | (swapped << 32);
            lane_vec v0 = c0, v1 = c1, v2 = c2, v3 = c3;
            v3 ^= m; SIPROUND; SIPROUND; v0 ^= m;
            v3 ^= tail; SIPROUND; SIPROUND; v0 ^= tail;
            v2 ^= 0xff;
            SIPROUND; SIPROUND; SIPROUND; SIPROUND;
            lane_vec h = v0 ^ v1 ^ v2 ^ v3;
            lane_vec folded = ((h ^ (h >> 32)) & 0xffffffffULL) >> 2;
            /* A true vector comparison is all ones, so the mask selects the fold. */
            lane_vec over = (lane_vec)(folded > STD_LIMIT);
            code = folded - (over & STD_FOLD);
        }
    }
}

/* ---- argument helpers ---- */

static int read_key(PyObject *obj, uint64_t *k0, uint64_t *k1)
{
    Py_buffer view;
    if (PyObject_GetBuffer(obj, &view, PyBUF_SIMPLE) < 0)
        return -1;
    if (view.len != 16) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "the key must be exactly 16 bytes");
        return -1;
    }
    *k0 = load_le64((const unsigned char *)view.buf);
    *k1 = load_le64((const unsigned char *)view.buf + 8);
    PyBuffer_Release(&view);
    return 0;
}

static int read_code(PyObject *obj, uint64_t limit, uint64_t *out, const char *what)
{
    unsigned long long v = PyLong_AsUnsignedLongLong(obj);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Format(PyExc_ValueError, "%s must be a non-negative integer", what);
        return -1;
    }
    if (v > limit) {
        PyErr_Format(PyExc_ValueError, "%s must be at most %llu", what, (unsigned long long)limit);
        return -1;
    }
    *out = v;
    return 0;
}

static PyObject *py_siphash24(PyObject *self, PyObject *args)
{
    PyObject *key_obj;
    Py_buffer data;
    uint64_t k0, k1;
    if (!PyArg_ParseTuple(args, "Oy*", &key_obj, &data))
        return NULL;
    if (read_key(key_obj, &k0, &k1) < 0) {
        PyBuffer_Release(&data);
        return NULL;
    }
    uint64_t h = sip24_bytes(k0, k1, (const unsigned char *)data.buf, (size_t)data.len);
    PyBuffer_Release(&data);
    return PyLong_FromUnsignedLongLong(h);
}

typedef uint64_t (*step_fn)(uint64_t, uint64_t, uint64_t);

static PyObject *walk(PyObject *args, step_fn step, uint64_t limit)
{
    PyObject *key_obj, *code_obj;
    long long steps;
    uint64_t k0, k1, code;
    if (!PyArg_ParseTuple(args, "OOL", &key_obj, &code_obj, &steps))
        return NULL;
    if (read_key(key_obj, &k0, &k1) < 0 || read_code(code_obj, limit, &code, "the code") < 0)
        return NULL;
    if (steps < 0) {
        PyErr_SetString(PyExc_ValueError, "steps must not be negative");
        return NULL;
    }
    if (steps > 4096) {
        Py_BEGIN_ALLOW_THREADS
        for (long long i = 0; i < steps; i++)
            code = step(k0, k1, code);
        Py_END_ALLOW_THREADS
    } else {
        for (long long i = 0; i < steps; i++)
            code = step(k0, k1, code);
    }
    return PyLong_FromUnsignedLongLong(code);
}

/* Counts c in 0..max_count whose chain value has the given digits above the
 * base (code // divisor == high). */
static PyObject *find(PyObject *args, step_fn step, uint64_t limit, uint64_t divisor)
{
    PyObject *key_obj, *code_obj, *high_obj;
    long long max_count;
    uint64_t k0, k1, code, high;
    if (!PyArg_ParseTuple(args, "OOOL", &key_obj, &code_obj, &high_obj, &max_count))
        return NULL;
    if (read_key(key_obj, &k0, &k1) < 0 || read_code(code_obj, limit, &code, "the code") < 0 ||
        read_code(high_obj, UINT64_MAX, &high, "the high digits") < 0)
        return NULL;
    PyObject *found = PyList_New(0);
    if (found == NULL)
        return NULL;
    for (long long count = 0; count <= max_count; count++) {
        if (code / divisor == high) {
            PyObject *c = PyLong_FromLongLong(count);
            if (c == NULL || PyList_Append(found, c) < 0) {
                Py_XDECREF(c);
                Py_DECREF(found);
                return NULL;
            }
            Py_DECREF(c);
        }
        if (count < max_count)
            code = step(k0, k1, code);
    }
    return found;
}

static PyObject *py_std_walk(PyObject *self, PyObject *args) { return walk(args, std_next, 0xffffffffULL); }
static PyObject *py_ext_walk(PyObject *self, PyObject *args) { return walk(args, ext_next, UINT64_MAX); }
static PyObject *py_std_find(PyObject *self, PyObject *args) { return find(args, std_next, 0xffffffffULL, 1000); }
static PyObject *py_ext_find(PyObject *self, PyObject *args) { return find(args, ext_next, UINT64_MAX, 1000000); }

static PyObject *py_std_walk_batch(PyObject *self, PyObject *args)
{
    Py_buffer keys, codes, steps, out;
    if (!PyArg_ParseTuple(args, "y*y*y*w*", &keys, &codes, &steps, &out))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t n = codes.len / 4;
    if (codes.len % 4 || steps.len != codes.len || out.len != codes.len || keys.len != 16 * n) {
        PyErr_SetString(PyExc_ValueError,
                        "batch buffers disagree: need 16 key bytes and one 32-bit code, "
                        "step count and output slot per chain");
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    std_batch_kernel((const unsigned char *)keys.buf, (const uint32_t *)codes.buf,
                     (const uint32_t *)steps.buf, (uint32_t *)out.buf, n);
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&keys);
    PyBuffer_Release(&codes);
    PyBuffer_Release(&steps);
    PyBuffer_Release(&out);
    return result;
}

static PyMethodDef chain_methods[] = {
    {"siphash24", py_siphash24, METH_VARARGS, "SipHash-2-4 of data under a 16-byte key, as an int."},
    {"std_walk", py_std_walk, METH_VARARGS, "Advance a standard chain by a number of steps."},
    {"std_find", py_std_find, METH_VARARGS, "Counts up to max_count whose standard chain value has the given high digits."},
    {"ext_walk", py_ext_walk, METH_VARARGS, "Advance an extended chain by a number of steps."},
    {"ext_find", py_ext_find, METH_VARARGS, "Counts up to max_count whose extended chain value has the given high digits."},
    {"std_walk_batch", py_std_walk_batch, METH_VARARGS,
     "Advance many standard chains: keys (16 bytes each), codes, steps (uint32 arrays), out (uint32 array)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef chain_module = {
    PyModuleDef_HEAD_INIT, "paygkit.token._chain", "Compiled OpenPAYGO Token hash chain.", -1, chain_methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__chain(void) { return PyModule_Create(&chain_module); }

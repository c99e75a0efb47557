/*
 * The OpenPAYGO Token hash chain in C.
 *
 * Making or checking a token at count N walks N SipHash-2-4 steps, so this
 * loop is the whole cost of the protocol.  The chain message is always one
 * 8-byte block, which lets the hash be written for exactly that case: the key
 * schedule is done once per chain and no buffer is ever touched.
 *
 * Exposed to Python (types in _chain.pyi; the pure-Python backend in chain.py
 * has the same chain operations):
 *   siphash24(key, data) -> int
 *   std_walk(key, code, steps) -> int
 *   std_find(key, code, high, max_count[, stop_above]) -> list[int]
 *   ext_walk(key, code, steps) -> int
 *   ext_find(key, code, high, max_count[, stop_above]) -> list[int]
 *   std_walk_batch(keys, codes, steps, out, threads=1, kernel=None) -> None  (no GIL)
 *   batch_kernels() -> list[str]; lockstep_walk(steps, kernel=None) -> int  (benchmark floor)
 *   generate_one(...), generate_batch(...): coding.generate / generate_batch for the usual
 *   request, checks and result objects included
 *   units_maker(device_class, token_class, types) -> generate_one in units, classes bound
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#include <structmember.h>
#include <pythread.h>
#if defined(__unix__) || defined(__APPLE__)
#include <sched.h>
static void yield_core(void) { sched_yield(); }
#else
static void yield_core(void) {}
#endif

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
 * job, so chains of different lengths still keep every lane busy.  The lane
 * bookkeeping below is shared; only `advance` (run every lane some steps) is
 * written per instruction set, and the best one this CPU has is chosen once,
 * at import (AVX-512: 16 lanes in two registers; AVX2: 8 lanes; scalar).
 * Every path computes the same chain step, so results never depend on it. */
#define MAX_LANES 16

/* The keyed SipHash state of every lane (v0..v3 before the message), its
 * current code, and which job it holds. */
typedef struct {
    uint64_t s0[MAX_LANES], s1[MAX_LANES], s2[MAX_LANES], s3[MAX_LANES];
    uint64_t code[MAX_LANES];
} lane_state;

typedef void (*advance_fn)(lane_state *lanes, uint64_t run);

/* Four chains interleaved, so that even without vectors one chain's rounds
 * fill the others' latency. */
#define SCALAR_LANES 4

static void advance_scalar(lane_state *lanes, uint64_t run)
{
    uint64_t k0[SCALAR_LANES], k1[SCALAR_LANES], code[SCALAR_LANES];
    for (int lane = 0; lane < SCALAR_LANES; lane++) {
        /* The keyed state is the key words ^ constants: undo it for std_next. */
        k0[lane] = lanes->s0[lane] ^ 0x736f6d6570736575ULL;
        k1[lane] = lanes->s1[lane] ^ 0x646f72616e646f6dULL;
        code[lane] = lanes->code[lane];
    }
    for (uint64_t s = 0; s < run; s++)
        for (int lane = 0; lane < SCALAR_LANES; lane++)
            code[lane] = std_next(k0[lane], k1[lane], code[lane]);
    for (int lane = 0; lane < SCALAR_LANES; lane++)
        lanes->code[lane] = code[lane];
}

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define HAVE_X86_KERNELS 1
#include <immintrin.h>

/* AVX2 has no 64-bit rotate: shifts, except the 32- and 16-bit rotations,
 * which are a dword and a byte shuffle. */
#define ROTL256(x, b) _mm256_or_si256(_mm256_slli_epi64((x), (b)), _mm256_srli_epi64((x), 64 - (b)))
#define ROTL256_32(x) _mm256_shuffle_epi32((x), 0xb1)
#define SIPROUND256(v0, v1, v2, v3, rot16)                                   \
    do {                                                                     \
        v0 = _mm256_add_epi64(v0, v1); v1 = ROTL256(v1, 13);                 \
        v1 = _mm256_xor_si256(v1, v0); v0 = ROTL256_32(v0);                  \
        v2 = _mm256_add_epi64(v2, v3); v3 = _mm256_shuffle_epi8(v3, rot16);  \
        v3 = _mm256_xor_si256(v3, v2);                                       \
        v0 = _mm256_add_epi64(v0, v3); v3 = ROTL256(v3, 21);                 \
        v3 = _mm256_xor_si256(v3, v0);                                       \
        v2 = _mm256_add_epi64(v2, v1); v1 = ROTL256(v1, 17);                 \
        v1 = _mm256_xor_si256(v1, v2); v2 = ROTL256_32(v2);                  \
    } while (0)

/* One standard step on 4 lanes: the code's bytes swapped and written twice is
 * one byte shuffle; the fold is a compare and a masked subtract. */
__attribute__((target("avx2"))) static inline __m256i
std_step256(__m256i s0, __m256i s1, __m256i s2, __m256i s3, __m256i code, __m256i message_shuffle,
            __m256i rot16)
{
    const __m256i tail = _mm256_set1_epi64x((long long)(8ULL << 56));
    __m256i m = _mm256_shuffle_epi8(code, message_shuffle);
    __m256i v0 = s0, v1 = s1, v2 = s2, v3 = _mm256_xor_si256(s3, m);
    SIPROUND256(v0, v1, v2, v3, rot16);
    SIPROUND256(v0, v1, v2, v3, rot16);
    v0 = _mm256_xor_si256(v0, m);
    v3 = _mm256_xor_si256(v3, tail);
    SIPROUND256(v0, v1, v2, v3, rot16);
    SIPROUND256(v0, v1, v2, v3, rot16);
    v0 = _mm256_xor_si256(v0, tail);
    v2 = _mm256_xor_si256(v2, _mm256_set1_epi64x(0xff));
    SIPROUND256(v0, v1, v2, v3, rot16);
    SIPROUND256(v0, v1, v2, v3, rot16);
    SIPROUND256(v0, v1, v2, v3, rot16);
    SIPROUND256(v0, v1, v2, v3, rot16);
    __m256i h = _mm256_xor_si256(_mm256_xor_si256(v0, v1), _mm256_xor_si256(v2, v3));
    __m256i folded = _mm256_srli_epi64(
        _mm256_and_si256(_mm256_xor_si256(h, _mm256_srli_epi64(h, 32)),
                         _mm256_set1_epi64x(0xffffffffLL)),
        2);
    /* Values are below 2^30, so the signed compare is exact. */
    __m256i over = _mm256_cmpgt_epi64(folded, _mm256_set1_epi64x((long long)STD_LIMIT));
    return _mm256_sub_epi64(folded, _mm256_and_si256(over, _mm256_set1_epi64x((long long)STD_FOLD)));
}

/* Byte shuffles, per 128-bit half: each 64-bit lane's low 4 bytes reversed
 * into both of its halves (the chain message), and a 16-bit rotate left. */
#define MESSAGE_SHUFFLE_BYTES 3, 2, 1, 0, 3, 2, 1, 0, 11, 10, 9, 8, 11, 10, 9, 8
#define ROT16_SHUFFLE_BYTES 6, 7, 0, 1, 2, 3, 4, 5, 14, 15, 8, 9, 10, 11, 12, 13

__attribute__((target("avx2"))) static void advance_avx2(lane_state *lanes, uint64_t run)
{
    const __m256i message_shuffle = _mm256_setr_epi8(MESSAGE_SHUFFLE_BYTES, MESSAGE_SHUFFLE_BYTES);
    const __m256i rot16 = _mm256_setr_epi8(ROT16_SHUFFLE_BYTES, ROT16_SHUFFLE_BYTES);
    __m256i a0 = _mm256_loadu_si256((const __m256i *)lanes->s0);
    __m256i a1 = _mm256_loadu_si256((const __m256i *)lanes->s1);
    __m256i a2 = _mm256_loadu_si256((const __m256i *)lanes->s2);
    __m256i a3 = _mm256_loadu_si256((const __m256i *)lanes->s3);
    __m256i b0 = _mm256_loadu_si256((const __m256i *)(lanes->s0 + 4));
    __m256i b1 = _mm256_loadu_si256((const __m256i *)(lanes->s1 + 4));
    __m256i b2 = _mm256_loadu_si256((const __m256i *)(lanes->s2 + 4));
    __m256i b3 = _mm256_loadu_si256((const __m256i *)(lanes->s3 + 4));
    __m256i ca = _mm256_loadu_si256((const __m256i *)lanes->code);
    __m256i cb = _mm256_loadu_si256((const __m256i *)(lanes->code + 4));
    for (uint64_t s = 0; s < run; s++) {
        /* Two independent registers: one's rounds fill the other's latency. */
        ca = std_step256(a0, a1, a2, a3, ca, message_shuffle, rot16);
        cb = std_step256(b0, b1, b2, b3, cb, message_shuffle, rot16);
    }
    _mm256_storeu_si256((__m256i *)lanes->code, ca);
    _mm256_storeu_si256((__m256i *)(lanes->code + 4), cb);
}

#define SIPROUND512(v0, v1, v2, v3)                                                        \
    do {                                                                                   \
        v0 = _mm512_add_epi64(v0, v1); v1 = _mm512_rol_epi64(v1, 13);                      \
        v1 = _mm512_xor_si512(v1, v0); v0 = _mm512_rol_epi64(v0, 32);                      \
        v2 = _mm512_add_epi64(v2, v3); v3 = _mm512_rol_epi64(v3, 16);                      \
        v3 = _mm512_xor_si512(v3, v2);                                                     \
        v0 = _mm512_add_epi64(v0, v3); v3 = _mm512_rol_epi64(v3, 21);                      \
        v3 = _mm512_xor_si512(v3, v0);                                                     \
        v2 = _mm512_add_epi64(v2, v1); v1 = _mm512_rol_epi64(v1, 17);                      \
        v1 = _mm512_xor_si512(v1, v2); v2 = _mm512_rol_epi64(v2, 32);                      \
    } while (0)

__attribute__((target("avx512f,avx512bw"))) static inline __m512i
std_step512(__m512i s0, __m512i s1, __m512i s2, __m512i s3, __m512i code, __m512i message_shuffle)
{
    const __m512i tail = _mm512_set1_epi64((long long)(8ULL << 56));
    __m512i m = _mm512_shuffle_epi8(code, message_shuffle);
    __m512i v0 = s0, v1 = s1, v2 = s2, v3 = _mm512_xor_si512(s3, m);
    SIPROUND512(v0, v1, v2, v3);
    SIPROUND512(v0, v1, v2, v3);
    v0 = _mm512_xor_si512(v0, m);
    v3 = _mm512_xor_si512(v3, tail);
    SIPROUND512(v0, v1, v2, v3);
    SIPROUND512(v0, v1, v2, v3);
    v0 = _mm512_xor_si512(v0, tail);
    v2 = _mm512_xor_si512(v2, _mm512_set1_epi64(0xff));
    SIPROUND512(v0, v1, v2, v3);
    SIPROUND512(v0, v1, v2, v3);
    SIPROUND512(v0, v1, v2, v3);
    SIPROUND512(v0, v1, v2, v3);
    /* 0x96 is the truth table of a ^ b ^ c. */
    __m512i h = _mm512_ternarylogic_epi64(_mm512_xor_si512(v0, v1), v2, v3, 0x96);
    __m512i folded = _mm512_srli_epi64(
        _mm512_and_si512(_mm512_xor_si512(h, _mm512_srli_epi64(h, 32)),
                         _mm512_set1_epi64(0xffffffffLL)),
        2);
    __mmask8 over = _mm512_cmpgt_epu64_mask(folded, _mm512_set1_epi64((long long)STD_LIMIT));
    return _mm512_mask_sub_epi64(folded, over, folded, _mm512_set1_epi64((long long)STD_FOLD));
}

__attribute__((target("avx512f,avx512bw"))) static void advance_avx512(lane_state *lanes, uint64_t run)
{
    const __m512i message_shuffle = _mm512_broadcast_i32x4(_mm_setr_epi8(MESSAGE_SHUFFLE_BYTES));
    __m512i a0 = _mm512_loadu_si512(lanes->s0), b0 = _mm512_loadu_si512(lanes->s0 + 8);
    __m512i a1 = _mm512_loadu_si512(lanes->s1), b1 = _mm512_loadu_si512(lanes->s1 + 8);
    __m512i a2 = _mm512_loadu_si512(lanes->s2), b2 = _mm512_loadu_si512(lanes->s2 + 8);
    __m512i a3 = _mm512_loadu_si512(lanes->s3), b3 = _mm512_loadu_si512(lanes->s3 + 8);
    __m512i ca = _mm512_loadu_si512(lanes->code), cb = _mm512_loadu_si512(lanes->code + 8);
    for (uint64_t s = 0; s < run; s++) {
        ca = std_step512(a0, a1, a2, a3, ca, message_shuffle);
        cb = std_step512(b0, b1, b2, b3, cb, message_shuffle);
    }
    _mm512_storeu_si512(lanes->code, ca);
    _mm512_storeu_si512(lanes->code + 8, cb);
}
#endif

typedef struct {
    const char *name;
    int lanes;
    advance_fn advance;
} batch_kernel;

static const batch_kernel kernels[] = {
#ifdef HAVE_X86_KERNELS
    {"avx512", 16, advance_avx512},
    {"avx2", 8, advance_avx2},
#endif
    {"scalar", SCALAR_LANES, advance_scalar},
};
#define KERNEL_COUNT ((int)(sizeof(kernels) / sizeof(kernels[0])))

static int kernel_supported(const batch_kernel *kernel)
{
#ifdef HAVE_X86_KERNELS
    __builtin_cpu_init();
    if (kernel->advance == advance_avx512)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
    if (kernel->advance == advance_avx2)
        return __builtin_cpu_supports("avx2");
#endif
    return 1;
}

/* The fastest kernel this CPU runs; set at import. */
static const batch_kernel *best_kernel = &kernels[KERNEL_COUNT - 1];

static void set_lane_key(lane_state *lanes, int lane, uint64_t k0, uint64_t k1)
{
    lanes->s0[lane] = k0 ^ 0x736f6d6570736575ULL;
    lanes->s1[lane] = k1 ^ 0x646f72616e646f6dULL;
    lanes->s2[lane] = k0 ^ 0x6c7967656e657261ULL;
    lanes->s3[lane] = k1 ^ 0x7465646279746573ULL;
}

/* One chain of a batch: its key words, starting code and length in; its
 * end code out. */
typedef struct {
    uint64_t k0, k1;
    uint32_t code, steps, end;
} chain_job;

static void std_batch_kernel(const batch_kernel *kernel, chain_job *jobs, Py_ssize_t n)
{
    lane_state lanes;
    uint64_t remaining[MAX_LANES];
    Py_ssize_t job_of_lane[MAX_LANES];
    Py_ssize_t next_job = 0;
    int busy = 0;

    memset(&lanes, 0, sizeof lanes);
    for (int lane = 0; lane < MAX_LANES; lane++) {
        remaining[lane] = UINT64_MAX;
        job_of_lane[lane] = -1;
    }
    for (;;) {
        /* Retire finished lanes and load waiting jobs into free ones. */
        for (int lane = 0; lane < kernel->lanes; lane++) {
            if (remaining[lane] != 0 && job_of_lane[lane] >= 0)
                continue;
            if (job_of_lane[lane] >= 0) {
                jobs[job_of_lane[lane]].end = (uint32_t)lanes.code[lane];
                job_of_lane[lane] = -1;
                remaining[lane] = UINT64_MAX;
                busy--;
            }
            while (next_job < n && jobs[next_job].steps == 0) {
                jobs[next_job].end = jobs[next_job].code;
                next_job++;
            }
            if (next_job < n) {
                set_lane_key(&lanes, lane, jobs[next_job].k0, jobs[next_job].k1);
                lanes.code[lane] = jobs[next_job].code;
                remaining[lane] = jobs[next_job].steps;
                job_of_lane[lane] = next_job;
                next_job++;
                busy++;
            }
        }
        if (busy == 0)
            break;
        uint64_t run = UINT64_MAX;
        for (int lane = 0; lane < kernel->lanes; lane++)
            if (remaining[lane] < run)
                run = remaining[lane];
        for (int lane = 0; lane < kernel->lanes; lane++)
            if (job_of_lane[lane] >= 0)
                remaining[lane] -= run;
        kernel->advance(&lanes, run);
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
 * base (code // divisor == high), in ascending order.  With stop_above, the
 * walk ends at the first such count above stop_above: decoding takes the
 * first acceptable count, and every count above the device's last count is
 * acceptable, so nothing after it can change the answer. */
static PyObject *find(PyObject *args, step_fn step, uint64_t limit, uint64_t divisor)
{
    PyObject *key_obj, *code_obj, *high_obj, *stop_obj = Py_None;
    long long max_count, stop_above = -1;
    uint64_t k0, k1, code, high;
    if (!PyArg_ParseTuple(args, "OOOL|O", &key_obj, &code_obj, &high_obj, &max_count, &stop_obj))
        return NULL;
    if (read_key(key_obj, &k0, &k1) < 0 || read_code(code_obj, limit, &code, "the code") < 0 ||
        read_code(high_obj, UINT64_MAX, &high, "the high digits") < 0)
        return NULL;
    if (stop_obj != Py_None) {
        stop_above = PyLong_AsLongLong(stop_obj);
        if (stop_above == -1 && PyErr_Occurred())
            return NULL;
    }
    int stops = stop_obj != Py_None;
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
            if (stops && count > stop_above)
                break;
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

/* ---- running a batch on several threads ----
 * The chains are cut into contiguous parts, one per thread; the caller's
 * thread takes the first part.  Threads come from Python's portable thread
 * layer, and only touch the job array, so the GIL stays released. */
typedef struct {
    const batch_kernel *kernel;
    chain_job *jobs;
    Py_ssize_t n;
    PyThread_type_lock done;
} batch_part;

static void run_part(void *arg)
{
    batch_part *part = (batch_part *)arg;
    std_batch_kernel(part->kernel, part->jobs, part->n);
    PyThread_release_lock(part->done);
}

/* Below this many chains a second thread costs more than it saves. */
#define MIN_CHAINS_PER_THREAD 256
#define MAX_THREADS 64

/* Call without the GIL. */
static void run_batch(const batch_kernel *kernel, chain_job *jobs, Py_ssize_t n, Py_ssize_t threads)
{
    if (threads > n / MIN_CHAINS_PER_THREAD)
        threads = n / MIN_CHAINS_PER_THREAD;
    if (threads > MAX_THREADS)
        threads = MAX_THREADS;
    if (threads < 1)
        threads = 1;
    batch_part parts[MAX_THREADS];
    int started[MAX_THREADS] = {0};
    for (Py_ssize_t t = 1; t < threads; t++) {
        Py_ssize_t lo = n * t / threads, hi = n * (t + 1) / threads;
        parts[t] = (batch_part){kernel, jobs + lo, hi - lo, PyThread_allocate_lock()};
        if (parts[t].done == NULL)
            continue;
        PyThread_acquire_lock(parts[t].done, WAIT_LOCK);
        started[t] = PyThread_start_new_thread(run_part, &parts[t]) != PYTHREAD_INVALID_THREAD_ID;
    }
    std_batch_kernel(kernel, jobs, n / threads);
    for (Py_ssize_t t = 1; t < threads; t++) {
        if (started[t])
            PyThread_acquire_lock(parts[t].done, WAIT_LOCK);  /* until the part is done */
        else  /* no thread to be had: the part runs here */
            std_batch_kernel(kernel, parts[t].jobs, parts[t].n);
        if (parts[t].done != NULL)
            PyThread_free_lock(parts[t].done);
    }
}

static const batch_kernel *kernel_named(PyObject *name)
{
    if (name == NULL || name == Py_None)
        return best_kernel;
    const char *text = PyUnicode_AsUTF8(name);
    if (text == NULL)
        return NULL;
    for (int i = 0; i < KERNEL_COUNT; i++)
        if (strcmp(kernels[i].name, text) == 0) {
            if (kernel_supported(&kernels[i]))
                return &kernels[i];
            PyErr_Format(PyExc_ValueError, "this CPU cannot run the %s kernel", text);
            return NULL;
        }
    PyErr_Format(PyExc_ValueError, "no batch kernel is called %R", name);
    return NULL;
}

static PyObject *py_std_walk_batch(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"keys", "codes", "steps", "out", "threads", "kernel", NULL};
    Py_buffer keys, codes, steps, out;
    Py_ssize_t threads = 1;
    PyObject *kernel_name = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "y*y*y*w*|nO", names, &keys, &codes, &steps,
                                     &out, &threads, &kernel_name))
        return NULL;
    PyObject *result = NULL;
    chain_job *jobs = NULL;
    Py_ssize_t n = codes.len / 4;
    const batch_kernel *kernel = kernel_named(kernel_name);
    if (kernel == NULL)
        goto done;
    if (codes.len % 4 || steps.len != codes.len || out.len != codes.len || keys.len != 16 * n) {
        PyErr_SetString(PyExc_ValueError,
                        "batch buffers disagree: need 16 key bytes and one 32-bit code, "
                        "step count and output slot per chain");
        goto done;
    }
    jobs = PyMem_Malloc(sizeof(chain_job) * (size_t)(n ? n : 1));
    if (jobs == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    const unsigned char *key = keys.buf;
    for (Py_ssize_t i = 0; i < n; i++, key += 16) {
        jobs[i].k0 = load_le64(key);
        jobs[i].k1 = load_le64(key + 8);
        jobs[i].code = ((const uint32_t *)codes.buf)[i];
        jobs[i].steps = ((const uint32_t *)steps.buf)[i];
    }
    run_batch(kernel, jobs, n, threads);
    for (Py_ssize_t i = 0; i < n; i++)
        ((uint32_t *)out.buf)[i] = jobs[i].end;
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    PyMem_Free(jobs);
    PyBuffer_Release(&keys);
    PyBuffer_Release(&codes);
    PyBuffer_Release(&steps);
    PyBuffer_Release(&out);
    return result;
}

static PyObject *py_batch_kernels(PyObject *self, PyObject *unused)
{
    PyObject *names = PyList_New(0);
    for (int i = 0; names != NULL && i < KERNEL_COUNT; i++) {
        if (!kernel_supported(&kernels[i]))
            continue;
        PyObject *name = PyUnicode_FromString(kernels[i].name);
        if (name == NULL || PyList_Append(names, name) < 0)
            Py_CLEAR(names);
        Py_XDECREF(name);
    }
    return names;
}

/* The benchmark's floor: one full set of lanes walked in lock-step for
 * `steps` steps, with no jobs to load or retire.  Returns the lane count. */
static PyObject *py_lockstep_walk(PyObject *self, PyObject *args)
{
    long long steps;
    PyObject *kernel_name = Py_None;
    if (!PyArg_ParseTuple(args, "L|O", &steps, &kernel_name))
        return NULL;
    const batch_kernel *kernel = kernel_named(kernel_name);
    if (kernel == NULL)
        return NULL;
    if (steps < 0) {
        PyErr_SetString(PyExc_ValueError, "steps must not be negative");
        return NULL;
    }
    lane_state lanes;
    memset(&lanes, 0, sizeof lanes);
    for (int lane = 0; lane < MAX_LANES; lane++) {
        set_lane_key(&lanes, lane, (uint64_t)lane, ~(uint64_t)lane);
        lanes.code[lane] = (uint64_t)lane;
    }
    Py_BEGIN_ALLOW_THREADS
    kernel->advance(&lanes, (uint64_t)steps);
    Py_END_ALLOW_THREADS
    return PyLong_FromLong(kernel->lanes);
}

/* ---- generate_batch: checks, chains and result objects in one call ----
 * paygkit.token.coding.generate_batch hands its requests here when the C
 * backend runs.  The usual request (an int count, int days or units, a bool
 * `extended`) is checked here; any other is passed to `plan_request`, the
 * Python checks, which either raise the error generate_batch has always
 * raised or return (value, new count).  Results are written straight into
 * the slots of the (frozen, slotted) GeneratedToken class. */

#define MAX_COUNT_VALUE 2147483647LL
#define MAX_ACTIVATION_UNITS 995
#define EXTENDED_MAX_UNITS 999999
#define DISABLE_PAYG_VALUE 998
#define COUNTER_SYNC_VALUE 999
#define MAX_STARTING_CODE 999999999LL

enum { ADD_TIME, SET_TIME, DISABLE_PAYG, COUNTER_SYNC, GENERATED_TYPES };

/* Where a slotted class keeps each named field, or 0 when it is not a plain
 * object slot (then fields are read by name instead). */
static int slot_offsets(PyObject *cls, const char *const *names, int n, Py_ssize_t *offsets)
{
    for (int i = 0; i < n; i++) {
        PyObject *descr = PyObject_GetAttrString(cls, names[i]);
        if (descr == NULL) {
            PyErr_Clear();
            return 0;
        }
        int plain = Py_IS_TYPE(descr, &PyMemberDescr_Type) &&
                    ((PyMemberDescrObject *)descr)->d_member->type == T_OBJECT_EX;
        if (plain)
            offsets[i] = ((PyMemberDescrObject *)descr)->d_member->offset;
        Py_DECREF(descr);
        if (!plain)
            return 0;
    }
    return 1;
}

typedef struct {
    PyTypeObject *type;  /* instances of exactly this type are read through their slots */
    Py_ssize_t offsets[8];
    PyObject *names[8];
} field_reader;

static int reader_init(field_reader *reader, PyObject *cls, const char *const *names, int n)
{
    reader->type = slot_offsets(cls, names, n, reader->offsets) ? (PyTypeObject *)cls : NULL;
    for (int i = 0; i < n; i++) {
        reader->names[i] = PyUnicode_InternFromString(names[i]);
        if (reader->names[i] == NULL)
            return -1;
    }
    return 0;
}

static void reader_clear(field_reader *reader, int n)
{
    for (int i = 0; i < n; i++)
        Py_CLEAR(reader->names[i]);
}

/* A new reference to field i of obj. */
static PyObject *read_field(const field_reader *reader, PyObject *obj, int i)
{
    if (Py_TYPE(obj) == reader->type) {
        PyObject *value = *(PyObject **)((char *)obj + reader->offsets[i]);
        if (value != NULL) {
            Py_INCREF(value);
            return value;
        }
    }
    return PyObject_GetAttr(obj, reader->names[i]);
}

enum { REQ_DEVICE, REQ_COUNT, REQ_TOKEN_TYPE, REQ_DAYS, REQ_UNITS, REQ_EXTENDED, REQ_FIELDS };
static const char *const request_fields[] = {"device", "count", "token_type", "days", "units",
                                             "extended"};
enum { DEV_KEY, DEV_STARTING_CODE, DEV_TIME_DIVIDER, DEV_RESTRICTED, DEV_FIELDS };
static const char *const device_fields[] = {"key", "starting_code", "time_divider",
                                            "restricted_digits"};
enum { TOK_TOKEN_TYPE, TOK_UNITS, TOK_COUNT, TOK_DIGITS, TOK_EXTENDED, TOK_RESTRICTED,
       TOK_TIME_DIVIDER, TOK_FIELDS };
static const char *const token_fields[] = {"token_type", "units", "count", "digits",
                                           "extended", "restricted", "time_divider"};

typedef struct {
    int type_index;
    int extended;
    int restricted;            /* as format_token reads it: its truth */
    PyObject *restricted_obj;  /* stored in the result as given */
    PyObject *time_divider;    /* stored in the result as given */
    long long value;
    long long new_count;
    uint64_t starting_code;
    uint64_t k0, k1;
    uint64_t end;              /* the chain's end code */
} planned_token;

/* A small non-negative exact int, or -1 (then the Python checks decide). */
static long long small_int(PyObject *obj, long long high)
{
    if (!PyLong_CheckExact(obj))
        return -1;
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (overflow || v < 0 || v > high)
        return -1;
    return v;
}

/* The request's value and new count, when it is the usual kind; 0 otherwise. */
static int usual_request(PyObject *const *field, int type_index, PyObject *time_divider,
                         planned_token *plan)
{
    long long count = small_int(field[REQ_COUNT], MAX_COUNT_VALUE);
    if (count < 0 || (field[REQ_EXTENDED] != Py_True && field[REQ_EXTENDED] != Py_False))
        return 0;
    int extended = field[REQ_EXTENDED] == Py_True;
    long long value;
    PyObject *days = field[REQ_DAYS], *units = field[REQ_UNITS];
    if (type_index == ADD_TIME || type_index == SET_TIME) {
        if (days != Py_None && units == Py_None) {
            long long whole_days = small_int(days, 1000000000LL);
            long long divider = small_int(time_divider, 255);
            if (whole_days < 0 || divider < 1)
                return 0;
            value = whole_days * divider;
        } else if (units != Py_None && days == Py_None) {
            value = small_int(units, EXTENDED_MAX_UNITS);
            if (value < 0)
                return 0;
        } else {
            return 0;
        }
        if (extended ? (value > EXTENDED_MAX_UNITS || value == DISABLE_PAYG_VALUE ||
                        value == COUNTER_SYNC_VALUE)
                     : value > MAX_ACTIVATION_UNITS)
            return 0;
    } else {
        if (days != Py_None || units != Py_None)
            return 0;
        value = type_index == DISABLE_PAYG ? DISABLE_PAYG_VALUE : COUNTER_SYNC_VALUE;
    }
    int wanted_parity = type_index == ADD_TIME ? 0 : 1;
    long long new_count = (count + 1) % 2 == wanted_parity ? count + 1 : count + 2;
    if (new_count > MAX_COUNT_VALUE)
        return 0;
    plan->value = value;
    plan->new_count = new_count;
    plan->extended = extended;
    return 1;
}

/* Fill one plan from a request's fields; -1 with an exception set when
 * refused.  `plan_request` (or NULL: then 0 is returned, the request being
 * left to the caller's Python code) decides the unusual ones. */
static int plan_fields(PyObject *const *field, PyObject *request, Py_ssize_t position,
                       const field_reader *devices, PyObject *const *types,
                       PyObject *plan_request, planned_token *plan)
{
    PyObject *device_field[DEV_FIELDS] = {NULL};
    int status = -1;
    for (int i = 0; i < DEV_FIELDS; i++)
        if ((device_field[i] = read_field(devices, field[REQ_DEVICE], i)) == NULL)
            goto done;
    plan->type_index = -1;
    for (int i = 0; i < GENERATED_TYPES; i++)
        if (field[REQ_TOKEN_TYPE] == types[i])
            plan->type_index = i;
    if (plan->type_index < 0 ||
        !usual_request(field, plan->type_index, device_field[DEV_TIME_DIVIDER], plan)) {
        if (plan_request == NULL) {
            status = 0;
            goto done;
        }
        /* The Python checks: they raise the usual error, or accept the request. */
        PyObject *planned = PyObject_CallFunction(plan_request, "nO", position, request);
        if (planned == NULL)
            goto done;
        long long value = -1, new_count = -1;
        int ok = PyArg_ParseTuple(planned, "LL", &value, &new_count);
        Py_DECREF(planned);
        if (!ok)
            goto done;
        int extended = PyObject_IsTrue(field[REQ_EXTENDED]);
        if (extended < 0)
            goto done;
        if (plan->type_index < 0 || value < 0 || value > EXTENDED_MAX_UNITS || new_count < 0 ||
            new_count > MAX_COUNT_VALUE) {
            PyErr_SetString(PyExc_SystemError, "plan_request accepted a request it should not");
            goto done;
        }
        plan->value = value;
        plan->new_count = new_count;
        plan->extended = extended;
    }
    PyObject *key = device_field[DEV_KEY];
    if (!PyBytes_Check(key) || PyBytes_GET_SIZE(key) != 16) {
        PyErr_Format(PyExc_ValueError, "request %zd: the key must be exactly 16 bytes", position);
        goto done;
    }
    plan->k0 = load_le64((const unsigned char *)PyBytes_AS_STRING(key));
    plan->k1 = load_le64((const unsigned char *)PyBytes_AS_STRING(key) + 8);
    long long starting_code = small_int(device_field[DEV_STARTING_CODE], MAX_STARTING_CODE);
    if (starting_code < 0) {
        PyErr_Format(PyExc_ValueError,
                     "request %zd: the starting code must be an integer from 0 to 999999999",
                     position);
        goto done;
    }
    plan->starting_code = (uint64_t)starting_code;
    if ((plan->restricted = PyObject_IsTrue(device_field[DEV_RESTRICTED])) < 0)
        goto done;
    plan->restricted_obj = device_field[DEV_RESTRICTED];
    plan->time_divider = device_field[DEV_TIME_DIVIDER];
    device_field[DEV_RESTRICTED] = device_field[DEV_TIME_DIVIDER] = NULL;  /* the plan owns them */
    status = 1;
done:
    for (int i = 0; i < DEV_FIELDS; i++)
        Py_XDECREF(device_field[i]);
    return status;
}

static int plan_one(PyObject *request, Py_ssize_t position, const field_reader *requests,
                    const field_reader *devices, PyObject *const *types, PyObject *plan_request,
                    planned_token *plan)
{
    PyObject *field[REQ_FIELDS] = {NULL};
    int status = -1;
    for (int i = 0; i < REQ_FIELDS; i++)
        if ((field[i] = read_field(requests, request, i)) == NULL)
            goto done;
    status = plan_fields(field, request, position, devices, types, plan_request, plan);
done:
    for (int i = 0; i < REQ_FIELDS; i++)
        Py_XDECREF(field[i]);
    return status;
}

/* The token's digits: zero-padded decimal, or two bits per digit as 1-4. */
static PyObject *token_digits(uint64_t value, int extended, int restricted)
{
    char text[24];
    int width;
    if (restricted) {
        width = extended ? 20 : 15;
        for (int i = width - 1; i >= 0; i--, value >>= 2)
            text[i] = (char)('1' + (value & 3));
    } else {
        width = extended ? 12 : 9;
        for (int i = width - 1; i >= 0; i--, value /= 10)
            text[i] = (char)('0' + value % 10);
    }
    PyObject *digits = PyUnicode_New(width, 127);
    if (digits != NULL)
        memcpy(PyUnicode_1BYTE_DATA(digits), text, (size_t)width);
    return digits;
}

/* The ints a token's units take, made once: a batch at count 50 spent a tenth
 * of its time allocating and freeing them.  (Python's own cache ends at 256.) */
static PyObject *unit_values[MAX_ACTIVATION_UNITS + 1];

static PyObject *units_int(long long value)
{
    if (value >= 0 && value <= MAX_ACTIVATION_UNITS && unit_values[value] != NULL)
        return Py_NewRef(unit_values[value]);
    return PyLong_FromLongLong(value);
}

/* A value that holds no references: a token stores restricted_digits and
 * time_divider as the caller gave them, which are exact ints and bools from a
 * checked DeviceParams, but nothing forbids a subclass. */
static int atomic_field(PyObject *value)
{
    return value == Py_None || PyLong_CheckExact(value) || PyBool_Check(value);
}

static PyObject *make_token(PyObject *token_class, const field_reader *tokens,
                            const planned_token *plan, PyObject *const *types, uint64_t chain_value)
{
    PyObject *field[TOK_FIELDS];
    int carries_value = plan->type_index == ADD_TIME || plan->type_index == SET_TIME;
    field[TOK_TOKEN_TYPE] = types[plan->type_index];
    Py_INCREF(field[TOK_TOKEN_TYPE]);
    field[TOK_UNITS] = carries_value ? units_int(plan->value) : Py_NewRef(Py_None);
    field[TOK_COUNT] = PyLong_FromLongLong(plan->new_count);
    field[TOK_DIGITS] = token_digits(chain_value, plan->extended, plan->restricted);
    field[TOK_EXTENDED] = Py_NewRef(plan->extended ? Py_True : Py_False);
    field[TOK_RESTRICTED] = Py_NewRef(plan->restricted_obj);
    field[TOK_TIME_DIVIDER] = Py_NewRef(plan->time_divider);
    PyObject *token = NULL;
    if (field[TOK_UNITS] == NULL || field[TOK_COUNT] == NULL || field[TOK_DIGITS] == NULL)
        goto done;
    if (tokens->type != NULL) {
        /* What the dataclass __init__ does, minus its frozen-class detour
         * through object.__setattr__: the fields go into their slots. */
        token = tokens->type->tp_alloc(tokens->type, 0);
        if (token == NULL)
            goto done;
        /* A token whose fields are ints, bools, None, its digits and one of
         * the TokenType members can never be part of a reference cycle, so
         * the collector is told to leave it alone: a batch of 10,000 tracked
         * tokens made the collector walk them over and over, about a third of
         * generate_batch's time at low counts (CPython untracks tuples of
         * atomic values the same way). */
        int atomic = atomic_field(field[TOK_RESTRICTED]) && atomic_field(field[TOK_TIME_DIVIDER]);
        for (int i = 0; i < TOK_FIELDS; i++) {
            *(PyObject **)((char *)token + tokens->offsets[i]) = field[i];
            field[i] = NULL;
        }
        if (atomic && PyObject_IS_GC(token))
            PyObject_GC_UnTrack(token);
    } else {
        PyObject *args = PyTuple_New(0), *kwargs = PyDict_New();
        for (int i = 0; kwargs != NULL && i < TOK_FIELDS; i++)
            if (PyDict_SetItem(kwargs, tokens->names[i], field[i]) < 0)
                Py_CLEAR(kwargs);
        if (args != NULL && kwargs != NULL)
            token = PyObject_Call(token_class, args, kwargs);
        Py_XDECREF(args);
        Py_XDECREF(kwargs);
    }
done:
    for (int i = 0; i < TOK_FIELDS; i++)
        Py_XDECREF(field[i]);
    return token;
}

/* A code's last three (six, extended) digits, each divisor a constant so
 * that no path is left with a 64-bit division. */
static inline uint64_t low_digits(uint64_t code, int extended)
{
    return extended ? code % 1000000 : code % 1000;
}

/* The code that ends a token's chain: the starting code's high digits with
 * the low ones moved on by the value. */
static inline uint64_t chain_end(uint64_t starting_code, uint64_t value, int extended)
{
    return starting_code - low_digits(starting_code, extended) +
           low_digits(starting_code + value, extended);
}

/* The token's value digits on top of the walked code's high digits. */
static inline uint64_t token_code(uint64_t walked, uint64_t starting_code, uint64_t value,
                                  int extended)
{
    return walked - low_digits(walked, extended) + low_digits(starting_code + value, extended);
}

/* A request's token, its six fields (device, count, token_type, days, units,
 * extended) in place and the classes already checked; None for an unusual
 * request, which the Python code then checks (and refuses with its usual
 * error, or makes). */
static PyObject *generate_request(PyObject *device_cls, PyObject *token_cls, PyObject *type_tuple,
                                  PyObject *const *field)
{
    PyObject *types[GENERATED_TYPES];
    for (int i = 0; i < GENERATED_TYPES; i++)
        types[i] = PyTuple_GET_ITEM(type_tuple, i);
    /* The readers' layouts are looked up once per pair of classes. */
    static field_reader devices, tokens;
    static PyObject *device_class, *token_class;
    if (device_class != device_cls || token_class != token_cls) {
        reader_clear(&devices, DEV_FIELDS);
        reader_clear(&tokens, TOK_FIELDS);
        Py_CLEAR(device_class);
        Py_CLEAR(token_class);
        if (reader_init(&devices, device_cls, device_fields, DEV_FIELDS) < 0 ||
            reader_init(&tokens, token_cls, token_fields, TOK_FIELDS) < 0) {
            reader_clear(&devices, DEV_FIELDS);
            reader_clear(&tokens, TOK_FIELDS);
            return NULL;
        }
        device_class = Py_NewRef(device_cls);
        token_class = Py_NewRef(token_cls);
    }
    planned_token plan = {0};
    int status = plan_fields(field, NULL, 0, &devices, types, NULL, &plan);
    if (status <= 0)
        return status < 0 ? NULL : Py_NewRef(Py_None);
    uint64_t code = chain_end(plan.starting_code, (uint64_t)plan.value, plan.extended);
    step_fn step = plan.extended ? ext_next : std_next;
    if (plan.new_count > 4096) {
        Py_BEGIN_ALLOW_THREADS
        for (long long s = 0; s < plan.new_count; s++)
            code = step(plan.k0, plan.k1, code);
        Py_END_ALLOW_THREADS
    } else {
        for (long long s = 0; s < plan.new_count; s++)
            code = step(plan.k0, plan.k1, code);
    }
    PyObject *token = make_token(token_class, &tokens, &plan, types,
                                 token_code(code, plan.starting_code, (uint64_t)plan.value,
                                            plan.extended));
    Py_XDECREF(plan.restricted_obj);
    Py_XDECREF(plan.time_divider);
    return token;
}

/* What generate_request takes on trust: a token class that is a class, and
 * the four generated types. */
static int generation_classes(PyObject *token_class, PyObject *types)
{
    return PyType_Check(token_class) && PyTuple_Check(types) &&
           PyTuple_GET_SIZE(types) == GENERATED_TYPES;
}

/* paygkit.token.coding.generate for the C backend, for the usual request:
 * returns None for any other. */
static PyObject *py_generate_one(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    /* device, count, token_type, days, units, extended, device_class, token_class, types */
    if (nargs != 9 || !generation_classes(args[7], args[8])) {
        PyErr_SetString(PyExc_TypeError, "generate_one: wrong arguments");
        return NULL;
    }
    return generate_request(args[6], args[7], args[8], args);
}

/* A maker's self is the tuple (device_class, token_class, types) it was made
 * with: bound once, so that each call passes only the request. */
static PyObject *py_units_maker_call(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    /* device, count, token_type, units, extended */
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError,
                        "a units maker takes (device, count, token_type, units, extended)");
        return NULL;
    }
    PyObject *const field[REQ_FIELDS] = {args[0], args[1], args[2], Py_None, args[3], args[4]};
    return generate_request(PyTuple_GET_ITEM(self, 0), PyTuple_GET_ITEM(self, 1),
                            PyTuple_GET_ITEM(self, 2), field);
}

static PyMethodDef units_maker_def = {
    "generate_units", (PyCFunction)(void (*)(void))py_units_maker_call, METH_FASTCALL,
    "generate_one(device, count, token_type, None, units, extended, <the bound classes>)."};

static PyObject *py_units_maker(PyObject *self, PyObject *args)
{
    PyObject *device_class, *token_class, *types;
    if (!PyArg_ParseTuple(args, "OOO:units_maker", &device_class, &token_class, &types))
        return NULL;
    if (!generation_classes(token_class, types)) {
        PyErr_SetString(PyExc_TypeError, "units_maker: wrong arguments");
        return NULL;
    }
    PyObject *bound = PyTuple_Pack(3, device_class, token_class, types);
    if (bound == NULL)
        return NULL;
    PyObject *maker = PyCFunction_NewEx(&units_maker_def, bound, NULL);
    Py_DECREF(bound);
    return maker;
}

/* ---- the pipeline of generate_batch ----
 * Three stages overlap: this thread checks the requests (and writes their
 * chains into the job array), helper threads walk the chains in chunks as
 * soon as a chunk's requests are checked, and this thread then turns walked
 * chunks into tokens.  Walking a chain has no effect outside the job array,
 * so walking before every request is checked is invisible: one bad request
 * still fails the whole batch with nothing made.  Chunks are claimed in
 * order by whoever is free; this thread walks one itself whenever the chunk
 * it needs next is not claimed yet. */
#define PIPELINE_CHUNK 512

enum { PLANNING, PLANNED, ABANDONED };

struct pipeline;

typedef struct {
    struct pipeline *line;
    PyThread_type_lock done;  /* held until the helper has no chunk left */
} pipeline_helper;

typedef struct pipeline {
    const batch_kernel *kernel;
    chain_job *jobs;
    Py_ssize_t n;           /* jobs in all; final once state is PLANNED */
    Py_ssize_t ready;       /* jobs written so far (atomic) */
    int state;              /* PLANNING, PLANNED or ABANDONED (atomic) */
    Py_ssize_t next_chunk;  /* the first chunk nobody has claimed (atomic) */
    int *chunk_done;        /* per chunk, set once its chains are walked (atomic) */
    pipeline_helper helpers[MAX_THREADS];
} pipeline;

/* Claim and walk the next unclaimed chunk (waiting for its requests to be
 * checked); 0 when none is left or the batch was refused.  No GIL. */
static int pipeline_walk_one(pipeline *line)
{
    Py_ssize_t chunk = __atomic_fetch_add(&line->next_chunk, 1, __ATOMIC_ACQ_REL);
    Py_ssize_t lo = chunk * PIPELINE_CHUNK, hi = lo + PIPELINE_CHUNK;
    for (;;) {
        int state = __atomic_load_n(&line->state, __ATOMIC_ACQUIRE);
        if (state == ABANDONED)
            return 0;
        if (state == PLANNED) {
            if (lo >= line->n)
                return 0;
            if (hi > line->n)
                hi = line->n;
            break;
        }
        if (__atomic_load_n(&line->ready, __ATOMIC_ACQUIRE) >= hi)
            break;
        yield_core();
    }
    std_batch_kernel(line->kernel, line->jobs + lo, hi - lo);
    __atomic_store_n(&line->chunk_done[chunk], 1, __ATOMIC_RELEASE);
    return 1;
}

static void pipeline_thread(void *arg)
{
    pipeline_helper *helper = (pipeline_helper *)arg;
    while (pipeline_walk_one(helper->line))
        ;
    PyThread_release_lock(helper->done);
}

/* Start the helper threads (threads - 1, fewer for a small batch); returns
 * how many started.  A helper that cannot start only costs speed. */
static Py_ssize_t pipeline_start(pipeline *line, Py_ssize_t threads, Py_ssize_t most_jobs)
{
    if (threads > most_jobs / MIN_CHAINS_PER_THREAD)
        threads = most_jobs / MIN_CHAINS_PER_THREAD;
    if (threads > MAX_THREADS)
        threads = MAX_THREADS;
    Py_ssize_t started = 0;
    for (Py_ssize_t t = 0; t + 1 < threads; t++) {
        pipeline_helper *helper = &line->helpers[started];
        helper->line = line;
        if ((helper->done = PyThread_allocate_lock()) == NULL)
            break;
        PyThread_acquire_lock(helper->done, WAIT_LOCK);
        if (PyThread_start_new_thread(pipeline_thread, helper) == PYTHREAD_INVALID_THREAD_ID) {
            PyThread_release_lock(helper->done);
            PyThread_free_lock(helper->done);
            break;
        }
        started++;
    }
    return started;
}

/* Until the chains of `chunk` are walked, walking chunks here meanwhile.
 * Only once planning is over. */
static void pipeline_wait(pipeline *line, Py_ssize_t chunk)
{
    if (__atomic_load_n(&line->chunk_done[chunk], __ATOMIC_ACQUIRE))
        return;
    Py_BEGIN_ALLOW_THREADS
    while (!__atomic_load_n(&line->chunk_done[chunk], __ATOMIC_ACQUIRE))
        if (!pipeline_walk_one(line))
            /* Claimed by a helper, which is walking it: at most a chunk's
             * time.  Yield, since the helper may be waiting for this core. */
            while (!__atomic_load_n(&line->chunk_done[chunk], __ATOMIC_ACQUIRE))
                yield_core();
    Py_END_ALLOW_THREADS
}

/* Call without the GIL: wait for the helpers (they finish the chunks left). */
static void pipeline_finish(pipeline *line, Py_ssize_t helpers)
{
    for (Py_ssize_t t = 0; t < helpers; t++) {
        PyThread_acquire_lock(line->helpers[t].done, WAIT_LOCK);
        PyThread_free_lock(line->helpers[t].done);
    }
}

/* A batch's requests, their devices and those devices' keys and codes are
 * objects scattered over memory, and usually out of the cache by the time a
 * batch is made: each is fetched a few requests ahead of its use (a request
 * first, its device once the request is in, and so on). */
static void prefetch_request(PyObject **item, Py_ssize_t i, Py_ssize_t n,
                             const field_reader *requests, const field_reader *devices)
{
#define SLOT(obj, reader, f) (*(PyObject **)((char *)(obj) + (reader)->offsets[f]))
    if (i + 12 < n)
        __builtin_prefetch(item[i + 12]);
    if (i + 8 < n && Py_TYPE(item[i + 8]) == requests->type) {
        PyObject *request = item[i + 8];
        if (SLOT(request, requests, REQ_DEVICE) != NULL)
            __builtin_prefetch(SLOT(request, requests, REQ_DEVICE));
        if (SLOT(request, requests, REQ_DAYS) != NULL)
            __builtin_prefetch(SLOT(request, requests, REQ_DAYS));
        if (SLOT(request, requests, REQ_UNITS) != NULL)
            __builtin_prefetch(SLOT(request, requests, REQ_UNITS));
    }
    if (i + 4 < n && Py_TYPE(item[i + 4]) == requests->type) {
        PyObject *device = SLOT(item[i + 4], requests, REQ_DEVICE);
        if (device != NULL && Py_TYPE(device) == devices->type) {
            if (SLOT(device, devices, DEV_KEY) != NULL)
                __builtin_prefetch(SLOT(device, devices, DEV_KEY));
            if (SLOT(device, devices, DEV_STARTING_CODE) != NULL)
                __builtin_prefetch(SLOT(device, devices, DEV_STARTING_CODE));
        }
    }
#undef SLOT
}

static PyObject *py_generate_batch(PyObject *self, PyObject *args)
{
    PyObject *request_seq, *plan_request, *request_class, *device_class, *token_class, *type_seq;
    Py_ssize_t threads;
    if (!PyArg_ParseTuple(args, "OnOOOOO", &request_seq, &threads, &plan_request, &request_class,
                          &device_class, &token_class, &type_seq))
        return NULL;
    PyObject *types[GENERATED_TYPES];
    if (!PyTuple_Check(type_seq) || PyTuple_GET_SIZE(type_seq) != GENERATED_TYPES ||
        !PyType_Check(token_class)) {
        PyErr_SetString(PyExc_TypeError, "need the four generated token types and a token class");
        return NULL;
    }
    for (int i = 0; i < GENERATED_TYPES; i++)
        types[i] = PyTuple_GET_ITEM(type_seq, i);
    field_reader requests = {0}, devices = {0}, tokens = {0};
    PyObject *result = NULL, *items = NULL;
    planned_token *plans = NULL;
    pipeline line = {.kernel = best_kernel, .state = PLANNING};
    Py_ssize_t n = 0, planned = 0, helpers = 0;
    int collecting = 0;
    if (reader_init(&requests, request_class, request_fields, REQ_FIELDS) < 0 ||
        reader_init(&devices, device_class, device_fields, DEV_FIELDS) < 0 ||
        reader_init(&tokens, token_class, token_fields, TOK_FIELDS) < 0)
        goto done;
    if ((items = PySequence_Fast(request_seq, "requests must be a sequence")) == NULL)
        goto done;
    n = PySequence_Fast_GET_SIZE(items);
    size_t slots = (size_t)(n ? n : 1);
    plans = PyMem_Calloc(slots, sizeof(planned_token));
    line.jobs = PyMem_Malloc(slots * sizeof(chain_job));
    line.chunk_done = PyMem_Calloc(slots / PIPELINE_CHUNK + 1, sizeof(int));
    if (plans == NULL || line.jobs == NULL || line.chunk_done == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    helpers = pipeline_start(&line, threads, n);

    /* Check every request; the standard chains go to the helpers as they come. */
    PyObject **item = PySequence_Fast_ITEMS(items);
    Py_ssize_t standard = 0;
    for (; planned < n; planned++) {
        planned_token *plan = &plans[planned];
        prefetch_request(item, planned, n, &requests, &devices);
        if (plan_one(item[planned], planned, &requests, &devices, types, plan_request, plan) < 0)
            goto done;  /* (never 0: plan_request decides every unusual request) */
        plan->end = chain_end(plan->starting_code, (uint64_t)plan->value, plan->extended);
        if (!plan->extended) {
            line.jobs[standard++] = (chain_job){plan->k0, plan->k1, (uint32_t)plan->end,
                                                (uint32_t)plan->new_count, 0};
            if (standard % PIPELINE_CHUNK == 0)
                __atomic_store_n(&line.ready, standard, __ATOMIC_RELEASE);
        }
    }
    line.n = standard;
    __atomic_store_n(&line.state, PLANNED, __ATOMIC_RELEASE);

    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        planned_token *plan = &plans[i];
        if (plan->extended)  /* rare: one scalar chain each */
            for (long long s = 0; s < plan->new_count; s++)
                plan->end = ext_next(plan->k0, plan->k1, plan->end);
    }
    Py_END_ALLOW_THREADS

    /* The tokens made below hold only atomic values and are left untracked
     * (make_token): a collection their allocations set off would find nothing
     * to free, only walk the heap and the half-filled list, 14 times a batch
     * of 10,000. */
    collecting = PyGC_Disable();
    if ((result = PyList_New(n)) == NULL)
        goto done;
    for (Py_ssize_t i = 0, job = 0; i < n; i++) {
        planned_token *plan = &plans[i];
        if (!plan->extended) {
            pipeline_wait(&line, job / PIPELINE_CHUNK);
            plan->end = line.jobs[job++].end;
        }
        PyObject *token = make_token(token_class, &tokens, plan, types,
                                     token_code(plan->end, plan->starting_code,
                                                (uint64_t)plan->value, plan->extended));
        if (token == NULL) {
            Py_CLEAR(result);
            goto done;
        }
        PyList_SET_ITEM(result, i, token);
    }
done:
    if (collecting == 1)
        PyGC_Enable();
    if (result == NULL)
        __atomic_store_n(&line.state, ABANDONED, __ATOMIC_RELEASE);
    /* The helpers may still be walking chunks: the job array outlives them. */
    Py_BEGIN_ALLOW_THREADS
    pipeline_finish(&line, helpers);
    Py_END_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < planned; i++) {
        Py_XDECREF(plans[i].restricted_obj);
        Py_XDECREF(plans[i].time_divider);
    }
    PyMem_Free(plans);
    PyMem_Free(line.jobs);
    PyMem_Free(line.chunk_done);
    Py_XDECREF(items);
    reader_clear(&requests, REQ_FIELDS);
    reader_clear(&devices, DEV_FIELDS);
    reader_clear(&tokens, TOK_FIELDS);
    return result;
}

static PyMethodDef chain_methods[] = {
    {"siphash24", py_siphash24, METH_VARARGS, "SipHash-2-4 of data under a 16-byte key, as an int."},
    {"std_walk", py_std_walk, METH_VARARGS, "Advance a standard chain by a number of steps."},
    {"std_find", py_std_find, METH_VARARGS,
     "Counts up to max_count whose standard chain value has the given high digits."},
    {"ext_walk", py_ext_walk, METH_VARARGS, "Advance an extended chain by a number of steps."},
    {"ext_find", py_ext_find, METH_VARARGS,
     "Counts up to max_count whose extended chain value has the given high digits."},
    {"std_walk_batch", (PyCFunction)(void (*)(void))py_std_walk_batch, METH_VARARGS | METH_KEYWORDS,
     "Advance many standard chains: keys (16 bytes each), codes, steps (uint32 arrays), out "
     "(uint32 array), over `threads` threads with the named kernel (default: the best)."},
    {"batch_kernels", py_batch_kernels, METH_NOARGS,
     "The batch kernels this CPU can run, fastest first."},
    {"lockstep_walk", py_lockstep_walk, METH_VARARGS,
     "Walk one full set of kernel lanes `steps` steps (a benchmark floor); returns the lanes."},
    {"generate_one", (PyCFunction)(void (*)(void))py_generate_one, METH_FASTCALL,
     "paygkit.token.coding.generate for the C backend; None for an unusual request."},
    {"units_maker", py_units_maker, METH_VARARGS,
     "generate_one with the value in units and the classes bound: "
     "maker(device, count, token_type, units, extended)."},
    {"generate_batch", py_generate_batch, METH_VARARGS,
     "paygkit.token.coding.generate_batch for the C backend."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef chain_module = {
    PyModuleDef_HEAD_INIT, "paygkit.token._chain", "Compiled OpenPAYGO Token hash chain.", -1, chain_methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__chain(void)
{
    for (int i = 0; i <= MAX_ACTIVATION_UNITS; i++)
        if (unit_values[i] == NULL && (unit_values[i] = PyLong_FromLong(i)) == NULL)
            return NULL;
    for (int i = 0; i < KERNEL_COUNT; i++)
        if (kernel_supported(&kernels[i])) {
            best_kernel = &kernels[i];
            break;
        }
    return PyModule_Create(&chain_module);
}

/* OpenPAYGO Token decoding for a device, with paygkit's exactly-once rule.
 *
 * Mirrors paygkit.token.decode (src/paygkit/token/coding.py) as the paygkit
 * firmware calls it (src/paygkit/device/firmware.py): the same answers and the
 * same counter state after every token, checked bit for bit by
 * tests/firmware/test_c_token.py.  The rule (SPEC 3.1): a device accepts each
 * count at most once in its life and its last count never goes down.
 *
 * No heap, no floats, no 64-bit division; all state is in the structs below.
 */
#ifndef PGK_TOKEN_H
#define PGK_TOKEN_H

#include <stdint.h>

#include "pgk_config.h"

#if PGK_WINDOW_UNORDERED > 31
#error "PGK_WINDOW_UNORDERED must be at most 31: the used-count record is one 32-bit word"
#endif

/* Counts are 32-bit; paygkit's highest count (paygkit.token.MAX_COUNT).  A
 * device never gets near it (each count costs a hash to reach), and keeping
 * below it leaves room for the windows above the last count. */
#define PGK_MAX_COUNT 0x7fffffffu

#define PGK_DISABLE_PAYG_VALUE 998u
#define PGK_COUNTER_SYNC_VALUE 999u

/* What the factory writes (one row of the device list). */
typedef struct {
    /* The byte field first: the device fills this struct on its stack, and
     * the Cortex-M0 has no byte store relative to the stack pointer, only
     * within 32 bytes of another register.  No time divider: decoding never
     * needs it, and the effects take the device state's. */
    /* 1: tokens are typed with keys 1-4 (15 digits).  Must be 0 when the
     * library is built with PGK_WITH_RESTRICTED 0. */
    uint8_t restricted_digits;
    uint32_t starting_code; /* 0..999 999 999 */
    uint8_t key[16];
} pgk_device;

/* The counter state a device keeps in non-volatile memory, next to the
 * effect of its last token (paygkit's DeviceState.last_count/used_counts).
 *
 * last_count is the highest count ever accepted.  The used-count record is
 * paygkit's used_counts (the counts up to PGK_WINDOW_UNORDERED below the
 * highest used count that were used) held as a bit set: bit i of used_bits
 * says that count used_top - i was used.  used_bits 0 is the empty record
 * (used_top is then 0).  pgk_used_counts_load() and pgk_used_counts_list()
 * convert to and from paygkit's list of counts (docs/storage-layout.md). */
typedef struct {
    uint32_t last_count;
    uint32_t used_top;
    uint32_t used_bits;
} pgk_count_state;

/* What a token turned out to be (paygkit.token.TokenType, plus MALFORMED for
 * what paygkit's parse_token refuses: a wrong length or a digit outside the
 * device's keys, which the firmware counts as an invalid try too). */
typedef enum {
    PGK_ADD_TIME = 0,
    PGK_SET_TIME = 1,
    PGK_DISABLE_PAYG = 2,
    PGK_COUNTER_SYNC = 3,
    PGK_ALREADY_USED = 4, /* matched a count the device may not accept (again) */
    PGK_INVALID = 5,      /* matched no count in the window: not this device's token */
    PGK_MALFORMED = 6
} pgk_token_kind;

/* The first four kinds are accepted tokens: apply the effect and store `next`. */
#define PGK_ACCEPTED(kind) ((kind) <= PGK_COUNTER_SYNC)

typedef struct {
    uint8_t kind;     /* a pgk_token_kind */
    uint8_t extended; /* 1 for a 12/20-digit extended token */
    /* The value units of an accepted token (0..995 standard, 0..999 999
     * extended); only meaningful for ADD_TIME and SET_TIME. */
    uint32_t units;
    /* The count the token matched: accepted, or ALREADY_USED (the lowest
     * matching count, for support staff); 0 otherwise. */
    uint32_t count;
    /* The state to store with the token's effect: the given state unless
     * the token was accepted.  Store both together, or neither. */
    pgk_count_state next;
} pgk_decode_result;

/* Decode a typed token: `length` ASCII digits, as the keypad collected them
 * (no separators).  The device's state is only read; the state to store is
 * result->next.  Returns result->kind.  Checking a token at count N costs up
 * to N + PGK_WINDOW_FORWARD (or PGK_WINDOW_COUNTER_SYNC) hashes. */
pgk_token_kind pgk_decode_token(const pgk_device *device, const pgk_count_state *state,
                                const char *digits, uint8_t length, pgk_decode_result *result);

/* The starting code of a device that has none (SPEC 2.3): the key hashed under itself. */
uint32_t pgk_starting_code_from_key(const uint8_t key[16]);

/* One step of the standard hash chain (SPEC 2.1). */
uint32_t pgk_next_code(const uint8_t key[16], uint32_t code);

/* x / divisor in the low word, x % divisor in the high word (divisor > 0),
 * without libgcc's division routine; the library's own divisions all go
 * through it.  Both come back in registers (r0 and r1 on a Cortex-M0): no
 * variable of the caller's goes through memory for it. */
uint64_t pgk_divide(uint32_t x, uint32_t divisor);
#define PGK_QUOTIENT(division) ((uint32_t)(division))
#define PGK_REMAINDER(division) ((uint32_t)((division) >> 32))

/* A fresh state, as the factory provisions it: last count `count`, nothing used. */
void pgk_count_state_init(pgk_count_state *state, uint32_t count);

/* Fill the used-count record from paygkit's list of used counts (any order).
 * Counts more than PGK_WINDOW_UNORDERED below the highest are dropped: no
 * decision and no stored list ever looks at them. */
void pgk_used_counts_load(pgk_count_state *state, const uint32_t *counts, uint8_t n);

/* The used counts as paygkit lists them (ascending); returns how many (at
 * most PGK_WINDOW_UNORDERED + 1). */
uint8_t pgk_used_counts_list(const pgk_count_state *state,
                             uint32_t counts[PGK_WINDOW_UNORDERED + 1]);

#endif /* PGK_TOKEN_H */

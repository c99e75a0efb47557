/* OpenPAYGO Token decoding with paygkit's exactly-once rule (see pgk_token.h).
 *
 * The names follow paygkit.token.coding.decode, which this mirrors step by
 * step; where the code differs in form (a bit set for the used counts,
 * division-free comparisons) the comment says why.  Shifted constants are
 * written UINT32_C(...) so that the code stays right where int is 16 bits. */
#include "pgk_token.h"

#include "pgk_compiler.h"
#include "pgk_siphash.h"

#define STANDARD_MODULUS 1000u
/* Chain values above this are brought under 10^9 by subtracting the fold. */
#define STANDARD_LIMIT 999999999u
#define STANDARD_FOLD 73741825u

#define STANDARD_DIGITS 9u
#define RESTRICTED_STANDARD_DIGITS 15u

/* Every used count the record can hold: the highest and the window below it. */
#define USED_WINDOW_BITS ((UINT32_C(2) << PGK_WINDOW_UNORDERED) - 1u)

/* Shift-and-subtract: Cortex-M0 has no divide instruction, and libgcc's
 * routine is about 280 bytes against this loop's 34; it runs a few times per
 * token, never per hash.  The device logic shares it for the same reason. */
uint64_t pgk_divide(uint32_t x, uint32_t divisor)
{
    uint32_t remainder = 0;
    for (unsigned bit = 0; bit < 32; bit++) {
        remainder = remainder << 1 | x >> 31;
        x <<= 1;
        if (remainder >= divisor) {
            remainder -= divisor;
            x |= 1;
        }
    }
    return (uint64_t)remainder << 32 | x;
}

static uint32_t standard_fold(const uint32_t digest[2])
{
    uint32_t code = (digest[0] ^ digest[1]) >> 2;
    return code > STANDARD_LIMIT ? code - STANDARD_FOLD : code;
}

uint32_t pgk_next_code(const uint8_t key[16], uint32_t code)
{
    uint8_t message[8];
    uint32_t digest[2];
    for (unsigned i = 0; i < 4; i++) {
        message[i] = message[i + 4] = (uint8_t)(code >> (24 - 8 * i));
    }
    pgk_siphash24(key, message, 8, digest);
    return standard_fold(digest);
}

uint32_t pgk_starting_code_from_key(const uint8_t key[16])
{
    uint32_t digest[2];
    pgk_siphash24(key, key, 16, digest);
    return standard_fold(digest);
}

void pgk_count_state_init(pgk_count_state *state, uint32_t count)
{
    state->last_count = count;
    state->used_top = 0;
    state->used_bits = 0;
}

void pgk_used_counts_load(pgk_count_state *state, const uint32_t *counts, uint8_t n)
{
    uint32_t top = 0;
    uint32_t bits = 0;
    for (unsigned i = 0; i < n; i++) {
        if (counts[i] > top) {
            top = counts[i];
        }
    }
    for (unsigned i = 0; i < n; i++) {
        uint32_t distance = top - counts[i];
        if (distance <= PGK_WINDOW_UNORDERED) {
            bits |= UINT32_C(1) << distance;
        }
    }
    state->used_top = top;
    state->used_bits = bits;
}

uint8_t pgk_used_counts_list(const pgk_count_state *state,
                             uint32_t counts[PGK_WINDOW_UNORDERED + 1])
{
    unsigned n = 0;
    for (unsigned distance = PGK_WINDOW_UNORDERED + 1; distance--;) {
        /* record_use() keeps no bits below count 0, so every bit is a count. */
        if (state->used_bits >> distance & 1u) {
            counts[n++] = state->used_top - distance;
        }
    }
    return n;
}

static uint8_t is_used(const pgk_count_state *state, uint32_t count)
{
    uint32_t distance = state->used_top - count;
    return count <= state->used_top && distance < 32 && (state->used_bits >> distance & 1u);
}

/* paygkit's updated_used_counts: the window is anchored at the highest used
 * count (or at `count` when none is used yet), not at the last count. */
static void record_use(pgk_count_state *next, uint32_t count, uint8_t whole_window)
{
    uint32_t top = next->used_bits ? next->used_top : count;
    uint32_t bits = next->used_bits;
    if (count > top) {
        uint32_t shift = count - top;
        bits = shift < 32 ? bits << shift : 0;
        top = count;
    }
    /* Set Time, Disable PAYG and Counter Sync close every older count. */
    bits = whole_window ? UINT32_MAX : bits | UINT32_C(1) << (top - count);
    bits &= USED_WINDOW_BITS;
    if (top < PGK_WINDOW_UNORDERED) {
        bits &= (UINT32_C(2) << top) - 1u; /* there are no counts below 0 */
    }
    next->used_top = top;
    next->used_bits = bits;
}

/* The value decides the special meanings at either parity; parity only
 * separates Add Time (even) from Set Time (odd). */
static pgk_token_kind kind_at(uint32_t units, uint32_t count)
{
    if (units == PGK_COUNTER_SYNC_VALUE) {
        return PGK_COUNTER_SYNC;
    }
    if (units == PGK_DISABLE_PAYG_VALUE) {
        return PGK_DISABLE_PAYG;
    }
    return (count & 1u) ? PGK_SET_TIME : PGK_ADD_TIME;
}

/* Whether the device takes a token that matched at `count`; if so, the
 * result is filled in.  `highest` is the highest count ever accepted.
 *
 * Exactly once (SPEC 3.1): every count above `highest` is new; at or below
 * it only an even count inside the unordered window that was never used,
 * and never a Counter Sync (the reference takes one up to 64 counts back and
 * moves the count back, re-opening every token above it). */
#if PGK_WITH_EXTENDED
#define ACCEPT_INLINE
#else
#define ACCEPT_INLINE INLINE /* into its one caller: 4 bytes less than GCC's choice */
#endif
static ACCEPT_INLINE uint8_t accept_match(const pgk_count_state *state, uint32_t highest,
                                          uint32_t count, pgk_decode_result *result)
{
    pgk_token_kind kind = kind_at(result->units, count);
    pgk_count_state *next = &result->next;
    if (count <= highest && kind == PGK_COUNTER_SYNC) {
#if PGK_ACCEPT_RESET_TOKEN
        /* The reset token, taken as the reference takes it; at count 0
         * already it would change nothing. */
        if (count != 0 || highest == 0 || highest >= PGK_WINDOW_FORWARD) {
            return 0;
        }
        next->last_count = 0;
        next->used_top = 0;
        next->used_bits = 1;
#else
        return 0;
#endif
    } else {
        if (count <= highest &&
            ((count & 1u) || count + PGK_WINDOW_UNORDERED <= highest || is_used(state, count))) {
            return 0;
        }
        next->last_count = count > highest ? count : highest;
        record_use(next, count, kind != PGK_ADD_TIME);
    }
    result->kind = (uint8_t)kind;
    result->count = count;
    return 1;
}

/* A state written by a reference-rule decoder may hold used counts above a
 * last count that a backward Counter Sync lowered: they were accepted too. */
static uint32_t highest_accepted(const pgk_count_state *state)
{
    uint32_t highest = state->last_count;
    if (state->used_bits && state->used_top > highest) {
        highest = state->used_top;
    }
    return highest;
}

#if PGK_WITH_EXTENDED

#define EXTENDED_MODULUS 1000000u
#define EXTENDED_LIMIT UINT64_C(999999999999)
#define EXTENDED_FOLD UINT64_C(99511627777)

/* Extended tokens are 40-bit numbers; the split into value and high digits
 * is a long division (no 64-bit division routine on the device). */
static uint32_t divide_wide(uint64_t *x, uint32_t divisor)
{
    uint32_t remainder = 0;
    for (unsigned bit = 0; bit < 64; bit++) {
        remainder = remainder << 1 | (uint32_t)(*x >> 63);
        *x <<= 1;
        if (remainder >= divisor) {
            remainder -= divisor;
            *x |= 1;
        }
    }
    return remainder;
}

/* The extended chain step (SPEC 2.6): the code as 8 bytes big-endian, bits 24..63 kept. */
static uint64_t next_extended_code(const uint8_t key[16], uint64_t code)
{
    uint8_t message[8];
    uint32_t digest[2];
    for (unsigned i = 0; i < 8; i++) {
        message[i] = (uint8_t)(code >> (56 - 8 * i));
    }
    pgk_siphash24(key, message, 8, digest);
    code = (uint64_t)digest[1] << 8 | digest[0] >> 24;
    return code > EXTENDED_LIMIT ? code - EXTENDED_FOLD : code;
}

static pgk_token_kind decode_extended(const pgk_device *device, const pgk_count_state *state,
                                      const char *digits, uint8_t length, uint32_t radix,
                                      char first_digit, pgk_decode_result *result)
{
    uint64_t value = 0;
    for (unsigned i = 0; i < length; i++) {
        uint32_t digit = (uint32_t)(digits[i] - first_digit);
        if (digit >= radix) {
            return PGK_MALFORMED;
        }
        value = value * radix + digit;
    }
    result->extended = 1;
    uint32_t base = divide_wide(&value, EXTENDED_MODULUS);
    uint64_t wanted = value * EXTENDED_MODULUS;
    uint32_t starting_base = PGK_REMAINDER(pgk_divide(device->starting_code, EXTENDED_MODULUS));
    result->units = base >= starting_base ? base - starting_base
                                          : base + EXTENDED_MODULUS - starting_base;
    uint64_t code = (uint64_t)(device->starting_code - starting_base + base);
    uint32_t highest = highest_accepted(state);
    /* As the reference: extended Counter Sync gets no wider window. */
    uint32_t last = highest + PGK_WINDOW_FORWARD;
    unsigned matched = 0;
    for (uint32_t count = 0;; count++) {
        if (code - wanted < EXTENDED_MODULUS) {
            if (accept_match(state, highest, count, result)) {
                return (pgk_token_kind)result->kind;
            }
            if (!matched) {
                matched = 1;
                result->count = count;
            }
        }
        if (count == last) {
            break;
        }
        code = next_extended_code(device->key, code);
    }
    result->kind = matched ? PGK_ALREADY_USED : PGK_INVALID;
    return (pgk_token_kind)result->kind;
}

#endif /* PGK_WITH_EXTENDED */

pgk_token_kind pgk_decode_token(const pgk_device *device, const pgk_count_state *state,
                                const char *digits, uint8_t length, pgk_decode_result *result)
{
    uint32_t radix = 10;
    char first_digit = '0';
    uint8_t standard_length = STANDARD_DIGITS;
    result->kind = PGK_MALFORMED;
    result->extended = 0;
    result->units = 0;
    result->count = 0;
    result->next = *state;
#if PGK_WITH_RESTRICTED
    if (device->restricted_digits) {
        radix = 4;
        first_digit = '1';
        standard_length = RESTRICTED_STANDARD_DIGITS;
    }
#endif
#if PGK_WITH_EXTENDED
    /* 12 digits, or 20 with keys 1-4 (two bits a digit): 3 or 5 more than standard. */
    if (length == standard_length + (radix == 4 ? 5 : 3)) {
        return decode_extended(device, state, digits, length, radix, first_digit, result);
    }
#endif
    if (length != standard_length) {
        return PGK_MALFORMED;
    }
    uint32_t value = 0;
    for (unsigned i = 0; i < length; i++) {
        /* One unsigned compare refuses both what is below and above the keys. */
        uint32_t digit = (uint32_t)(digits[i] - first_digit);
        if (digit >= radix) {
            return PGK_MALFORMED;
        }
        value = value * radix + digit;
    }
    uint64_t split = pgk_divide(value, STANDARD_MODULUS);
    uint32_t base = PGK_REMAINDER(split);
    /* A chain value c matches when c / 1000 equals the token's high digits,
     * that is when c - wanted < 1000: no division per hash. */
    uint32_t wanted = PGK_QUOTIENT(split) * STANDARD_MODULUS;
    uint32_t starting_base = PGK_REMAINDER(pgk_divide(device->starting_code, STANDARD_MODULUS));
    uint32_t code = device->starting_code - starting_base + base;
    uint32_t units = base + STANDARD_MODULUS - starting_base;
    result->units = units < STANDARD_MODULUS ? units : units - STANDARD_MODULUS;
    uint32_t highest = highest_accepted(state);
    uint32_t last = highest + (result->units == PGK_COUNTER_SYNC_VALUE ? PGK_WINDOW_COUNTER_SYNC
                                                                       : PGK_WINDOW_FORWARD);
    unsigned matched = 0;
    /* Counts are tried in order and the first acceptable one is taken, as
     * paygkit does: an unused count in the unordered window wins over a
     * (vanishingly rare) second match above the last count. */
    for (uint32_t count = 0;; count++) {
        if (code - wanted < STANDARD_MODULUS) {
            if (accept_match(state, highest, count, result)) {
                return (pgk_token_kind)result->kind;
            }
            if (!matched) {
                matched = 1;
                result->count = count;
            }
        }
        if (count == last) {
            break;
        }
        code = pgk_next_code(device->key, code);
    }
    result->kind = matched ? PGK_ALREADY_USED : PGK_INVALID;
    return (pgk_token_kind)result->kind;
}

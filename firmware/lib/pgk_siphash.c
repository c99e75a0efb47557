/* SipHash-2-4 in 32-bit halves.
 *
 * Cortex-M0 has no 64-bit instructions: 64-bit C compiles to pairs of 32-bit
 * operations plus library calls for the shifts, so each state word vi is
 * kept as two 32-bit halves, vi_low and vi_high.
 *
 * The round is written out in full.  A table-driven loop over the four
 * add-rotate-xor steps was measured 72 bytes smaller but runs about 2.4
 * times as many instructions (it keeps the state in memory); the decoder
 * hashes once per count, so the faster form is worth its bytes.
 *
 * Key and message bytes go into the state as bytes, which on a little-endian
 * MCU is their little-endian word: 26 bytes less than assembling the words,
 * for about 6% more instructions per hash. */
#include "pgk_siphash.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "pgk_siphash keeps the state words little-endian, so it takes bytes into them as bytes"
#endif

/* "somepseudorandomlygeneratedbytes", low half first: v0, v1, v2, v3. */
static const uint32_t initial_state[8] = {
    0x70736575u, 0x736f6d65u, 0x6e646f6du, 0x646f7261u,
    0x6e657261u, 0x6c796765u, 0x79746573u, 0x74656462u,
};

/* a += b on 64-bit values held as halves: the carry is the low sum wrapping. */
#define ADD64(a_low, a_high, b_low, b_high)      \
    do {                                         \
        uint32_t sum_ = (a_low) + (b_low);       \
        (a_high) += (b_high) + (sum_ < (a_low)); \
        (a_low) = sum_;                          \
    } while (0)

/* Rotate left by 0 < r < 32; by 32 is just swapping the halves (SWAP64). */
#define ROTL64(low, high, r)                                 \
    do {                                                     \
        uint32_t low_ = (low) << (r) | (high) >> (32 - (r)); \
        (high) = (high) << (r) | (low) >> (32 - (r));        \
        (low) = low_;                                        \
    } while (0)

#define SWAP64(low, high)        \
    do {                         \
        uint32_t low_ = (high);  \
        (high) = (low);          \
        (low) = low_;            \
    } while (0)

static void sip_rounds(uint32_t v[8], uint8_t rounds)
{
    /* Locals, not v[]: the compiler keeps most of them in registers. */
    uint32_t v0_low = v[0], v0_high = v[1], v1_low = v[2], v1_high = v[3];
    uint32_t v2_low = v[4], v2_high = v[5], v3_low = v[6], v3_high = v[7];
    while (rounds--) {
        ADD64(v0_low, v0_high, v1_low, v1_high);
        ROTL64(v1_low, v1_high, 13);
        v1_low ^= v0_low;
        v1_high ^= v0_high;
        SWAP64(v0_low, v0_high);
        ADD64(v2_low, v2_high, v3_low, v3_high);
        ROTL64(v3_low, v3_high, 16);
        v3_low ^= v2_low;
        v3_high ^= v2_high;
        ADD64(v0_low, v0_high, v3_low, v3_high);
        ROTL64(v3_low, v3_high, 21);
        v3_low ^= v0_low;
        v3_high ^= v0_high;
        ADD64(v2_low, v2_high, v1_low, v1_high);
        ROTL64(v1_low, v1_high, 17);
        v1_low ^= v2_low;
        v1_high ^= v2_high;
        SWAP64(v2_low, v2_high);
    }
    v[0] = v0_low;
    v[1] = v0_high;
    v[2] = v1_low;
    v[3] = v1_high;
    v[4] = v2_low;
    v[5] = v2_high;
    v[6] = v3_low;
    v[7] = v3_high;
}

void pgk_siphash24(const uint8_t key[16], const uint8_t *message, uint8_t length,
                   uint32_t digest[2])
{
    uint32_t v[8];
    uint8_t *bytes = (uint8_t *)v;
    const uint8_t *initial = (const uint8_t *)initial_state;
    for (unsigned i = 0; i < 16; i++) {
        bytes[i] = key[i] ^ initial[i];
        bytes[i + 16] = key[i] ^ initial[i + 16];
    }
    /* The last block carries only the length: messages are whole blocks. */
    for (unsigned offset = 0; offset < length; offset += 8) {
        for (unsigned i = 0; i < 8; i++) {
            bytes[24 + i] ^= message[offset + i];
        }
        sip_rounds(v, 2);
        for (unsigned i = 0; i < 8; i++) {
            bytes[i] ^= message[offset + i];
        }
    }
    v[7] ^= (uint32_t)length << 24;
    sip_rounds(v, 2);
    v[1] ^= (uint32_t)length << 24;
    v[4] ^= 0xffu;
    sip_rounds(v, 4);
    digest[0] = v[0] ^ v[2] ^ v[4] ^ v[6];
    digest[1] = v[1] ^ v[3] ^ v[5] ^ v[7];
}

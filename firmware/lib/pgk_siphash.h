/* SipHash-2-4, as the OpenPAYGO Token hash chain uses it. */
#ifndef PGK_SIPHASH_H
#define PGK_SIPHASH_H

#include <stdint.h>

/* The 64-bit SipHash-2-4 of `message` under a 16-byte key, as two 32-bit
 * halves: digest[0] is the low half, digest[1] the high half (the usual
 * SipHash integer; its little-endian bytes are the reference's digest).
 *
 * `length` must be a multiple of 8 (the chain hashes 8 bytes, the starting
 * code derivation the 16 key bytes): a message tail is never needed, so
 * none is handled. */
void pgk_siphash24(const uint8_t key[16], const uint8_t *message, uint8_t length,
                   uint32_t digest[2]);

#endif /* PGK_SIPHASH_H */

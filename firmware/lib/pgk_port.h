/* What the paygkit device library needs from the product: functions the
 * product implements and links in.  The library calls them; it owns no
 * hardware itself.  Each section is one peripheral.
 */
#ifndef PGK_PORT_H
#define PGK_PORT_H

#include <stddef.h>
#include <stdint.h>

/* ==== Non-volatile memory (used by pgk_storage.c) ========================== */

/* The state store needs PGK_NV_SIZE bytes of memory that keeps its contents
 * without power.  Offsets are 0 .. PGK_NV_SIZE-1 within that area; the port
 * maps them wherever the product keeps the area (an EEPROM address, flash
 * pages).  A dump of these PGK_NV_SIZE bytes, in offset order, is the image
 * paygkit reads (docs/storage-layout.md). */
#define PGK_NV_SIZE 1024u

/* 0: the memory rewrites single bytes in place (EEPROM, FRAM, a battery-backed
 * RAM).  1: NOR flash, where a write can only clear bits: the store then has
 * each 512-byte half (offsets 0..511 and 512..1023) erased before rewriting
 * it, so the port must put the two halves in different erase pages (on a
 * part with 1 KB pages, offset 512 maps to the start of the second page).
 * Between two erases the store programs each 4-byte-aligned word at most
 * twice, within what nRF51-class flash allows. */
#ifndef PGK_NV_NEEDS_ERASE
#define PGK_NV_NEEDS_ERASE 0
#endif

/* Each returns 0 on success, anything else on failure.  A failure is passed
 * on to the caller of the store, never ignored: reading a slot wrongly could
 * make the store pick an older state and later write over the newest one.
 *
 * Writes must become durable in the order they are made: the store writes a
 * slot's commit mark last, and it must not land before the bytes it commits.
 * A power cut during a write may leave each of its bytes old or new; the
 * store's power-cut safety allows for that.  A write may return before it is
 * durable only if the next read or write waits for it. */
int pgk_port_nv_read(uint32_t offset, void *buffer, size_t length);
int pgk_port_nv_write(uint32_t offset, const void *data, size_t length);

#if PGK_NV_NEEDS_ERASE
/* Set bytes offset .. offset+length-1 to 0xFF.  Called only for one whole
 * half (offset 0 or 512, length 512). */
int pgk_port_nv_erase(uint32_t offset, size_t length);
#endif

#endif /* PGK_PORT_H */

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

/* ==== Clock, feedback and output (used by pgk_device.c) ==================== */

/* The RTC in seconds; it keeps running on its backup battery while the device
 * is off.  It may be tampered with (set, stopped, sped up): the device checks
 * it against pgk_port_uptime_seconds().
 *
 * Bound, in a build with PGK_RTC_32BIT (pgk_config.h): the value must lie
 * in 0 .. 2^32 - 2^16 (Unix time, up to the year 2106), tampered or not.
 * The device logic then keeps RTC times in 32 bits, which saves it about
 * 270 bytes of 64-bit arithmetic on a Cortex-M0, and the 2^16 margin lets
 * it add its tolerances and periods (an hour at most by default;
 * pgk_device.c refuses to build with any above 2^16) without overflowing.
 * A port whose clock can read outside (a negative time, an RTC counting
 * from another epoch far away) must map it into the range or leave the
 * option off.  The return type stays 64-bit either way, so that one port
 * serves both builds. */
int64_t pgk_port_rtc_seconds(void);

/* Seconds since power-on, from the MCU's own oscillator, independent of the
 * RTC; restarts at 0 at each power-on and never goes back while on. */
uint32_t pgk_port_uptime_seconds(void);

/* One signal to the user (LEDs, display, buzzer): kind is a
 * pgk_feedback_kind, detail and value are described there (pgk_device.h).
 * The product maps them to its LEDs; the reference patterns are in
 * docs/device-protocol.md section 4.3. */
void pgk_port_feedback(uint8_t kind, uint8_t detail, int64_t value);

/* The output switch (the appliance's power): 1 = may run.  Called after each
 * library call that may change it; the port may get the same value again. */
void pgk_port_output(uint8_t on);

/* ==== UART (used by pgk_protocol.c) ======================================== */

#include "pgk_config.h"

#if PGK_WITH_PROTOCOL
/* Send `length` bytes of protocol answers (115200 8N1 is the usual choice).
 * May block until they are taken; the protocol sends nothing else meanwhile.
 * Received bytes go the other way: the product passes each one to
 * pgk_protocol_receive() from its main loop (never from an interrupt). */
void pgk_port_uart_write(const void *data, size_t length);
#endif

#if PGK_WITH_PROTOCOL && PGK_WITH_SIM_CONTROLS
/* The simulator commands move the clocks the device reads (section 3.8-3.12).
 * Only a test build has these: a real device must not let a UART move its
 * RTC.  Moves the RTC by `seconds`, and the uptime too when `uptime` is 1
 * (the device running) rather than 0 (switched off, the RTC on its battery). */
void pgk_port_sim_advance(uint32_t seconds, uint8_t uptime);
/* Sets the RTC alone, as someone tampering with it would. */
void pgk_port_sim_set_rtc(int64_t t);
/* A power-on: pgk_port_uptime_seconds() starts again from 0. */
void pgk_port_sim_restart_uptime(void);
/* Erases the whole NV area to 0xFF (blank flash); 0 on success. */
int pgk_port_sim_erase(void);
#endif

#endif /* PGK_PORT_H */

/*
 * The BBC micro:bit v1 board (nRF51822: Cortex-M0, 256 KB flash, 16 KB RAM) as
 * QEMU's `-M microbit` emulates it.  This is the board port the device library
 * runs on in tests; see README.md beside this file for what QEMU emulates and
 * what it does not.
 *
 * Everything here is plain C with no libc calls, so the same port links into a
 * build with no C library at all.
 */
#ifndef BOARD_MICROBIT_H
#define BOARD_MICROBIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Clocks, UART (115200 8N1), the tick timer and interrupts.  Call first. */
void board_init(void);

/* ---- UART0 ---------------------------------------------------------------- */

/*
 * Blocking: returns once the transmitter has taken every byte.  For thread
 * context only (no interrupt handler of the board transmits).
 */
void board_uart_write(const void *data, size_t len);

/*
 * The next received byte, or -1 when none is waiting.  Bytes are taken off the
 * UART by its interrupt into a ring, so a long computation in the main loop
 * does not overrun the six-byte hardware FIFO of a real nRF51.
 */
int board_uart_read(void);

/* Receive errors (overrun, framing, parity, break) since boot. */
uint32_t board_uart_errors(void);

/* ---- time ----------------------------------------------------------------- */

/* Milliseconds since boot; wraps after 49.7 days, compare with subtraction. */
uint32_t board_ticks_ms(void);

/*
 * The seconds clock: seconds since boot plus whatever board_set_seconds()
 * asked for.  It is derived from the same timer as the ticks, so both agree.
 * It does not survive a reset (a real product would keep it in RTC0 on the
 * 32 kHz crystal, which QEMU does not emulate).
 */
uint32_t board_seconds(void);
void board_set_seconds(uint32_t seconds);

/*
 * Sleep until the next interrupt (at most one tick, 1 ms).  Lets QEMU idle the
 * host CPU instead of spinning, and a real part save power.
 */
void board_idle(void);

/* ---- non-volatile storage -------------------------------------------------- */

/*
 * The last BOARD_NV_PAGES flash pages, outside the program image.  Flash
 * semantics, as on the chip: erase sets a whole page to 0xFF; a write can only
 * turn 1 bits into 0 bits.  All offsets are from the start of the NV area.
 *
 * In QEMU flash that was never erased reads 0x00, not 0xFF, so the storage
 * layer must not take "all 0xFF" as the only sign of a blank page.
 */
#define BOARD_NV_PAGE_SIZE 1024u
#define BOARD_NV_PAGES 2u
#define BOARD_NV_SIZE (BOARD_NV_PAGE_SIZE * BOARD_NV_PAGES)

/* Copy out; 0, or -1 when the range is outside the NV area. */
int board_nv_read(uint32_t offset, void *buf, size_t len);

/* Erase one page (0 .. BOARD_NV_PAGES-1); 0, or -1 for a bad page. */
int board_nv_erase(uint32_t page);

/*
 * Program len bytes at any offset and alignment (the hardware writes whole
 * words; bytes around the range are written as 0xFF, which leaves them as
 * they were).  0 when the flash reads back as data; -1 for a bad range or when
 * it does not (a bit had to go from 0 to 1: the page needed an erase first).
 */
int board_nv_write(uint32_t offset, const void *data, size_t len);

/* Direct, read-only view of the NV area (memory-mapped flash). */
const volatile uint8_t *board_nv_base(void);

/* ---- reset ----------------------------------------------------------------- */

/*
 * A system reset (AIRCR.SYSRESETREQ), like the reset pin: every peripheral and
 * the CPU restart, RAM contents are not to be relied on, the NV area stays.
 */
void board_reset(void) __attribute__((noreturn));

#endif

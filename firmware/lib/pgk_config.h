/* Compile-time options of the paygkit device library: each has its default
 * here, with one line on why it exists; override one with -D. */
#ifndef PGK_CONFIG_H
#define PGK_CONFIG_H

/* Keys 1-4 (15-digit) tokens for Restricted Digit Mode devices; 0 saves code on 12-key products. */
#ifndef PGK_WITH_RESTRICTED
#define PGK_WITH_RESTRICTED 1
#endif

/* Extended 12/20-digit tokens: not in the standard, and they need 64-bit arithmetic. */
#ifndef PGK_WITH_EXTENDED
#define PGK_WITH_EXTENDED 0
#endif

/* Counts looked at above the last count (DecodeWindows.forward): one hash each. */
#ifndef PGK_WINDOW_FORWARD
#define PGK_WINDOW_FORWARD 64
#endif

/* The same for Counter Sync (DecodeWindows.counter_sync): it catches up a device far behind. */
#ifndef PGK_WINDOW_COUNTER_SYNC
#define PGK_WINDOW_COUNTER_SYNC 100
#endif

/* Counts below the last count open to an unused Add Time (DecodeWindows.unordered); at most 31. */
#ifndef PGK_WINDOW_UNORDERED
#define PGK_WINDOW_UNORDERED 16
#endif

/* The reset token re-opens every token ever taken: factory or workshop builds only (SPEC 3.1). */
#ifndef PGK_ACCEPT_RESET_TOKEN
#define PGK_ACCEPT_RESET_TOKEN 0
#endif

/* ---- Device logic (pgk_device.c); the defaults are paygkit's DeviceConfig() ---- */

/* The test code (a factory check that activates for a few seconds); 0 leaves it out. */
#ifndef PGK_WITH_TEST_CODE
#define PGK_WITH_TEST_CODE 1
#endif

/* RTC tamper checks against the tick source; 0 leaves them out (a product with no RTC worth guarding). */
#ifndef PGK_WITH_TAMPER
#define PGK_WITH_TAMPER 1
#endif

/* 1: RTC times in 32 bits, for an RTC that stays within 0 .. 2^32 - 2^16 (pgk_port.h); saves
 * about 270 bytes on a Cortex-M0.  0: any 64-bit time, as a simulator's settable clock needs. */
#ifndef PGK_RTC_32BIT
#define PGK_RTC_32BIT 0
#endif

/* Tamper tolerance: elapsed ticks / DIVISOR + SECONDS (paygkit's 0.02 ratio is 1/50, integer-exact). */
#ifndef PGK_TAMPER_TOLERANCE_DIVISOR
#define PGK_TAMPER_TOLERANCE_DIVISOR 50
#endif
#ifndef PGK_TAMPER_TOLERANCE_SECONDS
#define PGK_TAMPER_TOLERANCE_SECONDS 60
#endif

/* Waiting period after the n-th invalid token: BASE x 2^(n - FORGIVEN) seconds, capped (WaitingPeriod). */
#ifndef PGK_WAIT_FORGIVEN
#define PGK_WAIT_FORGIVEN 2
#endif
#ifndef PGK_WAIT_BASE_SECONDS
#define PGK_WAIT_BASE_SECONDS 60
#endif
#ifndef PGK_WAIT_CAP_SECONDS
#define PGK_WAIT_CAP_SECONDS (512 * 60)
#endif

/* Test code: seconds it activates, and at most MAX_USES uses (<= 16) per PERIOD seconds. */
#ifndef PGK_TEST_CODE_ACTIVE_SECONDS
#define PGK_TEST_CODE_ACTIVE_SECONDS 30
#endif
#ifndef PGK_TEST_CODE_MAX_USES
#define PGK_TEST_CODE_MAX_USES 5
#endif
#ifndef PGK_TEST_CODE_PERIOD_SECONDS
#define PGK_TEST_CODE_PERIOD_SECONDS 3600
#endif

/* ---- Device protocol (pgk_wire.c, pgk_protocol.c; docs/device-protocol.md) ---- */

/* The line protocol on the UART, for factory setup and certification; 0 leaves it out of a keypad-only product. */
#ifndef PGK_WITH_PROTOCOL
#define PGK_WITH_PROTOCOL 1
#endif

/* ADVANCE, CLOCK, CONFIG, POWER, RESET, WIPE: test builds only, never on a port a customer can reach (section 6). */
#ifndef PGK_WITH_SIM_CONTROLS
#define PGK_WITH_SIM_CONTROLS 0
#endif

/* EVENT lines after RESULT, STATUS and the simulator's answers: optional on a device (section 4.3). */
#ifndef PGK_PROTOCOL_EVENTS
#define PGK_PROTOCOL_EVENTS 1
#endif

/* 1: ERR messages and HELP lines word for word as paygkit's; 0: ERR lines carry only the code
 * and HELP lists the command words, which is all a host program reads (saves about 2.5 KB). */
#ifndef PGK_PROTOCOL_MESSAGES
#define PGK_PROTOCOL_MESSAGES 1
#endif

/* 1: RESULT and EVENT lines carry paygkit's display texts ("+1 day"); 0: text="" (saves about 1.3 KB). */
#ifndef PGK_PROTOCOL_TEXTS
#define PGK_PROTOCOL_TEXTS 1
#endif

#endif /* PGK_CONFIG_H */

/* The PAYG device logic: keypad, tokens and their effects, the waiting period
 * after invalid tokens, clock tamper checks, the test code and provisioning.
 *
 * A C port of paygkit's firmware model (src/paygkit/device/firmware.py, class
 * Firmware, with keypad.py and state.py): for the same events it gives the
 * same outcomes, the same feedback kinds and the same persisted state, saved
 * at the same moments (tests/firmware/test_c_device.py holds the two side by
 * side).  The decisions documented in firmware.py's module docstring hold
 * here too; only where C differs is it said below.
 *
 * The library reads the RTC and the tick source, gives feedback and switches
 * the output through the "Clock, feedback and output" section of pgk_port.h,
 * and keeps its state through pgk_storage (the NV section of pgk_port.h).
 * No heap: everything is in one pgk_firmware the product allocates
 * statically (about 0.2 KB, most of it the persistent state).
 *
 * Calling it: pgk_firmware_power_on() once at start, then from the main loop
 * pgk_firmware_press() for each key, pgk_firmware_poll() every second or so,
 * and pgk_firmware_status() whenever the product wants to show something.
 * Not reentrant: call it from one context only.
 *
 * A simulator (paygkit's ADVANCE, CLOCK, POWER, CONFIG) moves the clocks its
 * port functions return, then calls pgk_firmware_poll(): time passing moves
 * the RTC and, while on, the uptime; a tamperer moves the RTC alone; a power
 * cycle restarts the uptime at 0 and calls pgk_firmware_power_on() again
 * (with new settings for CONFIG), which forgets everything but the memory.
 *
 * Time domain: paygkit takes any integer RTC time, and so does this library
 * by default (64-bit times).  Built with PGK_RTC_32BIT it takes RTC times
 * within the bound of pgk_port_rtc_seconds() only (pgk_port.h: 0 .. 2^32 -
 * 2^16, up to the year 2106), gives paygkit's answers within it, and is
 * about 270 bytes smaller on a Cortex-M0.  A simulator, whose clock may be
 * set anywhere, needs the default.
 *
 * Where C differs from paygkit (which raises exceptions instead):
 *   - a failed save gives PGK_OUTCOME_STORAGE_ERROR (or
 *     PGK_PROVISION_STORAGE_ERROR), no feedback, and the state reloaded from
 *     the memory;
 *   - a key that is not on the keypad is ignored; a token is digits only
 *     (separators are the caller's to strip);
 *   - refused provisioning data gives a PGK_PROVISION_BAD_* code; an empty
 *     test code is no test code.
 */
#ifndef PGK_DEVICE_H
#define PGK_DEVICE_H

#include <stdint.h>

#include "pgk_config.h"
#include "pgk_port.h"
#include "pgk_storage.h"
#include "pgk_token.h"

/* Settings a product may change at run time (paygkit's DeviceConfig; the rest
 * of DeviceConfig is compile-time, in pgk_config.h).  Changing them is a
 * restart: pass them to pgk_firmware_power_on(), as paygkit's simulator does. */
typedef struct {
    /* 0: no waiting period after invalid tokens (WaitingPeriod.enabled). */
    uint8_t waiting_period_enabled;
    /* 1: a tampered clock locks the device until a Set Time token
     * (TamperResponse.LOCK); 0: it is only flagged (REPORT, paygkit's default). */
    uint8_t tamper_lock;
    /* A partial token is dropped after this many seconds without a key (>= 1). */
    uint16_t keypad_timeout_seconds;
} pgk_firmware_config;

/* paygkit's DeviceConfig() defaults. */
#define PGK_FIRMWARE_CONFIG_DEFAULT {1u, 0u, 30u}

/* What became of one token entry (paygkit's OutcomeKind). */
typedef enum {
    PGK_OUTCOME_APPLIED = 0,
    PGK_OUTCOME_ALREADY_USED = 1,
    PGK_OUTCOME_INVALID = 2,
    PGK_OUTCOME_BLOCKED = 3, /* waiting period, or the test code's use limit */
    PGK_OUTCOME_TEST_CODE = 4,
    PGK_OUTCOME_MALFORMED = 5,
    PGK_OUTCOME_NOT_PROVISIONED = 6,
    /* Not in paygkit (it raises StorageError): the memory failed; nothing
     * was applied and no feedback given.  firmware->storage_error says why. */
    PGK_OUTCOME_STORAGE_ERROR = 7
} pgk_outcome_kind;

typedef struct {
    uint8_t kind;       /* a pgk_outcome_kind */
    uint8_t token_type; /* APPLIED: a pgk_token_kind (PGK_ADD_TIME .. PGK_COUNTER_SYNC) */
    /* BLOCKED: 1 when the test code's use limit refused it, 0 for the waiting period. */
    uint8_t test_code_limit;
    uint32_t units; /* APPLIED Add/Set Time: the value units */
    uint32_t count; /* APPLIED and ALREADY_USED: the matched count */
    /* BLOCKED: the wait left; INVALID/MALFORMED: the wait it started (0: none). */
    uint32_t wait_seconds;
} pgk_outcome;

/* Feedback kinds (paygkit's FeedbackKind), as pgk_port_feedback() gets them.
 * The LED pattern of each is the product's: the reference one is in
 * docs/device-protocol.md section 4.3 and paygkit.device.feedback. */
typedef enum {
    PGK_FEEDBACK_INVALID = 0,        /* value: the wait started; detail: 1 if MALFORMED */
    PGK_FEEDBACK_ALREADY_USED = 1,   /* value: the count */
    PGK_FEEDBACK_TIME_CHANGED = 2,   /* value: the duration in seconds; detail: 1 for Set Time */
    PGK_FEEDBACK_COUNTER_SYNCED = 3, /* value: the new count */
    PGK_FEEDBACK_PAYG_DISABLED = 4,
    /* value: the wait left; detail: a PGK_LOCKED_* */
    PGK_FEEDBACK_ENTRY_LOCKED = 5,
    PGK_FEEDBACK_TEST_CODE = 6,      /* value: the seconds of activation */
    /* '#' with nothing typed; detail: a PGK_STATUS_SHOWN_*; value: seconds left
     * (PGK_STATUS_SHOWN_TIME_LEFT only).  Green if active in the reference. */
    PGK_FEEDBACK_STATUS = 7,
    /* value: the flags newly found (PGK_TAMPER_*); detail: 1 if the device is now locked */
    PGK_FEEDBACK_TAMPER = 8,
    /* A key was taken (display only); detail: a PGK_KEY_SHOWN_*; value: the digits typed */
    PGK_FEEDBACK_KEY_PRESS = 9
} pgk_feedback_kind;

/* PGK_FEEDBACK_ENTRY_LOCKED details */
#define PGK_LOCKED_WAITING 0u
#define PGK_LOCKED_TEST_CODE_LIMIT 1u
#define PGK_LOCKED_NOT_PROVISIONED 2u

/* PGK_FEEDBACK_STATUS details (paygkit's status texts) */
#define PGK_STATUS_SHOWN_UNLIMITED 0u       /* "Active, unlimited" (PAYG disabled) */
#define PGK_STATUS_SHOWN_TIME_LEFT 1u       /* "Active, <value> left" */
#define PGK_STATUS_SHOWN_TEST_MODE 2u       /* "Test mode" */
#define PGK_STATUS_SHOWN_NOT_PROVISIONED 3u /* "Not provisioned" */
#define PGK_STATUS_SHOWN_TAMPER_LOCKED 4u   /* "Locked: clock tamper" */
#define PGK_STATUS_SHOWN_INACTIVE 5u        /* "Inactive" */

/* PGK_FEEDBACK_KEY_PRESS details (paygkit's keypad texts) */
#define PGK_KEY_SHOWN_TYPING 0u          /* "*" then the digits so far (firmware->typing) */
#define PGK_KEY_SHOWN_START_HINT 1u      /* a digit with no '*' before it */
#define PGK_KEY_SHOWN_KEY_NOT_USED 2u    /* 0 or 5-9 on a restricted keypad */
#define PGK_KEY_SHOWN_TOO_MANY_DIGITS 3u /* beyond PGK_MAX_TYPED_DIGITS */
#define PGK_KEY_SHOWN_TIMED_OUT 4u       /* a partial token was dropped */

/* The longest token, as the keypad takes it (keypad.MAX_TYPED_DIGITS). */
#define PGK_MAX_TYPED_DIGITS 20u

/* pgk_firmware_press() answers */
typedef enum {
    PGK_PRESS_KEY = 0,    /* the key was taken or ignored; only KEY_PRESS feedback */
    PGK_PRESS_TOKEN = 1,  /* '#' ended a token: *outcome says what became of it */
    PGK_PRESS_STATUS = 2  /* '#' with nothing typed: STATUS feedback was given */
} pgk_press_result;

/* What the factory gives pgk_firmware_provision() (paygkit's Provisioning
 * plus the starting count). */
typedef struct {
    /* Ordered for size: no padding, and each field within a short load's reach. */
    const char *serial; /* the paygkit grammar: 1-32 of A-Z a-z 0-9 . _ : + -, alnum first */
    const char *test_code;  /* digits (1-4 when restricted); NULL or length 0: none */
    uint32_t starting_code; /* 0 .. 999 999 999 */
    uint32_t count;         /* the last count to start from; a new device: 1 */
    uint8_t serial_length;
    uint8_t time_divider; /* value units per day, 1..255 */
    uint8_t restricted_digits;
    uint8_t test_code_length; /* at most PGK_MAX_TYPED_DIGITS */
    uint8_t key[16];
} pgk_provisioning;

/* pgk_firmware_provision() answers */
typedef enum {
    PGK_PROVISION_OK = 0,
    PGK_PROVISION_BAD_SERIAL = 1,
    PGK_PROVISION_BAD_STARTING_CODE = 2,
    PGK_PROVISION_BAD_DIVIDER = 3,
    PGK_PROVISION_BAD_TEST_CODE = 4, /* also: a test code in a build without PGK_WITH_TEST_CODE */
    PGK_PROVISION_BAD_COUNT = 5,
    PGK_PROVISION_BAD_RESTRICTED = 6, /* restricted in a build without PGK_WITH_RESTRICTED */
    PGK_PROVISION_STORAGE_ERROR = 7   /* firmware->storage_error says why */
} pgk_provision_result;

/* The status (paygkit's Status), filled by pgk_firmware_status().  The serial,
 * used counts and typed digits are not copied: read them from the
 * pgk_firmware (state.serial/serial_length, state.used_top/used_bits,
 * typing/typing_length) right after the call. */
typedef struct {
    /* The byte fields first: within a short load's reach on the Cortex-M0. */
    uint8_t provisioned;
    uint8_t active; /* the appliance may run: PAYG time left, PAYG off, or test code */
    uint8_t payg_enabled;
    uint8_t test_active;
    uint8_t tamper; /* PGK_TAMPER_* flags */
    uint8_t restricted_digits;
    uint8_t time_divider; /* 1 before provisioning, as paygkit shows it */
    int64_t now;          /* the RTC */
    int64_t active_until; /* RTC second the PAYG activation ends */
    /* PAYG time left: 0 when inactive (unprovisioned or tamper-locked), -1
     * for "unlimited" (PAYG disabled; paygkit's None). */
    int64_t seconds_left;
    uint32_t count; /* the last accepted count */
    uint32_t invalid_attempts;
    uint32_t blocked_seconds; /* waiting period left, in powered-on seconds */
} pgk_firmware_status_info;

/* Tamper reference: the RTC and the ticks at power-on or the last
 * detection, and the latest RTC time of this power-on.  A struct of its
 * own: it lies past a short load's reach in pgk_firmware, so the code takes
 * its address once and reaches each field from there (18 bytes less than
 * forming each field's address apart). */
typedef struct {
    uint32_t reference_tick;
#if PGK_RTC_32BIT
    uint32_t reference_rtc;
    uint32_t latest_rtc_this_session;
#else
    pgk_i64 reference_rtc;
    pgk_i64 latest_rtc_this_session;
#endif
} pgk_clock_reference;

/* One device.  Fields are the library's; read them, never write them.  The
 * order is for code size: the Cortex-M0 reaches offsets below 128 (words)
 * or 32 (bytes) in one instruction, beyond them it needs more.  So the byte
 * fields come first, then the clocks, then the state (at offset 24 in a
 * PGK_RTC_32BIT build: its byte fields and most of its words within reach);
 * what is passed by address (the store, the typed digits) or rarely used
 * (output_on) comes last. */
typedef struct {
    pgk_firmware_config config;
    /* The storage failure of the last pgk_firmware_* call (PGK_STORAGE_OK
     * when none; each call that may save clears it first), and
     * store.failed_slot the slot it failed on.  After a failed load (at
     * power-on, or reloading after a failed save) the device is halted: it
     * does nothing until powered on again, and both keep the failure. */
    int8_t storage_error;
    uint8_t halted;
    /* The token being typed: typing_started is 0 when no '*' opened one.
     * The two share a halfword, so that clearing both is one store. */
    uint8_t typing_started;
    uint8_t typing_length;
    /* The RTC and the ticks read once at the start of the call being handled:
     * one call sees one instant, as paygkit's methods do.  RTC times here are
     * 32-bit in a PGK_RTC_32BIT build (see Time domain above). */
#if PGK_RTC_32BIT
    uint32_t now;
#else
    pgk_i64 now;
#endif
    uint32_t ticks;
    /* The tick at which the waiting period ends (this power-on's ticks). */
    uint32_t wait_until_tick;
    uint32_t last_key_tick;
    pgk_state state; /* the persistent state, exactly as last saved */
    uint8_t output_on; /* what pgk_port_output() was last told */
#if PGK_WITH_TAMPER
    pgk_clock_reference clocks;
#endif
    pgk_store store;
    char typing[PGK_MAX_TYPED_DIGITS]; /* typing_length of them so far */
} pgk_firmware;

/* Power-on: load the state, restart the waiting period on this power-on's
 * ticks, check the clock.  Returns the load's result; on an error the
 * device is halted until the next power-on (keys are ignored, tokens answer
 * STORAGE_ERROR, provisioning PGK_PROVISION_STORAGE_ERROR, polls do nothing,
 * the output is off), since running on a made-up state could replay or lose
 * tokens. */
pgk_storage_result pgk_firmware_power_on(pgk_firmware *firmware,
                                         const pgk_firmware_config *config);

/* 1 if `serial` is a serial number as paygkit.device.serial_number has it
 * (1-32 of A-Z a-z 0-9 . _ : + -, a letter or digit first): what the
 * factory, the host and the server all accept, and provisioning too. */
uint8_t pgk_serial_ok(const char *serial, uint8_t length);

/* Factory setup over a fresh state.  Everything is checked before anything is
 * written: a refusal leaves the stored state as it was. */
pgk_provision_result pgk_firmware_provision(pgk_firmware *firmware,
                                            const pgk_provisioning *provisioning);

/* One key: '*', '#' or '0'..'9' (anything else is ignored: PGK_PRESS_KEY, no feedback).
 * `outcome` is filled when PGK_PRESS_TOKEN is returned. */
pgk_press_result pgk_firmware_press(pgk_firmware *firmware, char key, pgk_outcome *outcome);

/* A whole token, `length` digits without separators (anything else is
 * MALFORMED, an invalid try, as paygkit counts a token it cannot read).
 * Returns outcome->kind. */
pgk_outcome_kind pgk_firmware_enter_token(pgk_firmware *firmware, const char *digits,
                                          uint8_t length, pgk_outcome *outcome);

/* The main loop's housekeeping, every second or so and after the RTC was set:
 * keypad timeout, tamper check, waiting-period checkpoint, hourly RTC mark,
 * the output switch. */
void pgk_firmware_poll(pgk_firmware *firmware);

/* The status now.  Only reads: no write, no feedback, no tamper check.  On a
 * halted device only `active` (0) is meaningful. */
void pgk_firmware_status(const pgk_firmware *firmware, pgk_firmware_status_info *status);

#endif /* PGK_DEVICE_H */

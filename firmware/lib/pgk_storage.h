/* The device's persistent state and its power-cut-safe store in non-volatile
 * memory: docs/storage-layout.md (layout version 2, version 1 still read),
 * byte for byte as paygkit.device.storage writes and reads it, so a memory
 * dump passes between this library and paygkit either way
 * (tests/firmware/test_c_storage.py checks both directions).
 *
 * Memory goes through the NV section of pgk_port.h.  No heap; the store
 * needs no buffer for a whole record (it streams records in 16-byte pieces),
 * so RAM is the state itself plus a small context.
 */
#ifndef PGK_STORAGE_H
#define PGK_STORAGE_H

#include <stdint.h>

#include "pgk_config.h"
#include "pgk_port.h"

#define PGK_STORAGE_LAYOUT_VERSION 2u

/* 1: records of layout version 1 (paygkit 0.1) are read as the layout says,
 * so a device keeps its state through a firmware update.  0 saves about 170
 * bytes of code where no memory can hold one: such a record is then refused
 * (PGK_STORAGE_ERR_REFUSED), never misread and never overwritten. */
#ifndef PGK_STORAGE_READ_VERSION_1
#define PGK_STORAGE_READ_VERSION_1 1
#endif

#define PGK_STORAGE_SLOT_SIZE 512u
#define PGK_STORAGE_MAX_RECORD_SIZE 510u

/* The longest lists and texts the layout holds (paygkit.device.state). */
#define PGK_MAX_USED_COUNTS 64u
#define PGK_MAX_TEST_CODE_USES 16u
/* Of those, what pgk_state holds: the used counts as a bit set (see
 * pgk_state), and the test code uses its limit can look at. */
#define PGK_STATE_USED_BITS (PGK_WINDOW_UNORDERED + 1u)
#define PGK_STATE_TEST_CODE_USES PGK_TEST_CODE_MAX_USES
#define PGK_SERIAL_MAX_LENGTH 32u
#define PGK_TEST_CODE_MAX_DIGITS 20u
#define PGK_TEST_CODE_PACKED_SIZE 10u
#define PGK_MAX_STARTING_CODE 999999999u

/* pgk_state.flags */
#define PGK_FLAG_PROVISIONED 0x01u
#define PGK_FLAG_RESTRICTED_DIGITS 0x02u /* tokens typed with keys 1-4 */
#define PGK_FLAG_PAYG_ENABLED 0x04u

/* pgk_state.tamper (paygkit's TamperFlag) */
#define PGK_TAMPER_RTC_SLOW 0x01u
#define PGK_TAMPER_RTC_FAST 0x02u
#define PGK_TAMPER_RTC_BACKWARDS 0x04u

/* pgk_state's 64-bit fields, aligned to 4 bytes only: a 32-bit MCU reads
 * them as two words anyway, and 8-byte alignment would cost the state 4
 * bytes of padding at its end and up to 4 more before it. */
#if defined(__GNUC__)
typedef int64_t pgk_i64 __attribute__((aligned(4)));
#else
typedef int64_t pgk_i64;
#endif

/* An RTC time in the state's lists: 32 bits where the RTC is (the record
 * still stores 64, zero-extended). */
#if PGK_RTC_32BIT
typedef uint32_t pgk_rtc_time;
#else
typedef pgk_i64 pgk_rtc_time;
#endif

/* paygkit's DeviceState, field for field as the layout stores it.  Times are
 * RTC seconds except wait_left (seconds of powered-on time).  When
 * PGK_FLAG_PROVISIONED is clear, the provisioning fields (time_divider,
 * starting_code, key, serial, test code, PGK_FLAG_RESTRICTED_DIGITS) must be
 * zero, as pgk_state_init leaves them.  Array entries past their length are
 * neither stored nor compared.
 *
 * The first 68 bytes are the record's fixed payload part, in its order and
 * byte image (a little-endian target is required, and pgk_storage.c checks
 * the offsets at compile time); serial and test code are kept as the record
 * stores them.  The two lists are kept in the form paygkit itself writes
 * them, which is all its decisions look at, in a fraction of the RAM:
 *
 *   - used counts: paygkit's updated_used_counts keeps exactly the used
 *     counts up to PGK_WINDOW_UNORDERED below the highest, ascending.  Bit i
 *     of used_bits says that count used_top - i is used (i <=
 *     PGK_WINDOW_UNORDERED; no bit for a count below 0); used_count_n is the
 *     number of bits set, used_top 0 when none is.  Saved, they are that
 *     ascending list.
 *   - test code uses: paygkit's firmware keeps the recent uses in the order
 *     made, at most PGK_TEST_CODE_MAX_USES of them (one more is refused).
 *
 * A record written by other software may hold other lists (more counts,
 * another order, counts below the window, more uses).  pgk_storage_load
 * keeps what decides anything: the counts within the window below the
 * highest (paygkit's decode refuses every count below it whatever the list
 * says, and updated_used_counts drops them), and the PGK_TEST_CODE_MAX_USES
 * latest use times in their order (the limit is reached exactly when that
 * many are recent, and a use keeps only recent ones).  Decisions are then
 * the same as on the list as stored; the next record saved holds the kept
 * lists, not the foreign bytes (docs/storage-layout.md, "Other writers").
 * So does a PGK_RTC_32BIT build for a use time outside 32 bits: the device
 * compares the low 32 bits anyway. */
typedef struct {
    uint8_t flags;
    uint8_t time_divider; /* value units per day, 1..255 when provisioned */
    uint8_t tamper;
    uint8_t serial_length;    /* 1..32 when provisioned */
    uint8_t test_code_length; /* digits, 0..20; 0 = no test code */
    uint8_t used_count_n;
    uint8_t test_code_use_n;
    uint8_t reserved; /* 0 */
    pgk_i64 active_until;
    pgk_i64 wait_left; /* never negative */
    pgk_i64 latest_rtc_seen;
    pgk_i64 test_active_until;
    uint32_t starting_code;
    uint32_t last_count;
    uint32_t invalid_attempts;
    uint8_t key[16];
    uint32_t used_top;
    uint32_t used_bits;
    pgk_rtc_time test_code_uses[PGK_STATE_TEST_CODE_USES]; /* in the order made */
    char serial[PGK_SERIAL_MAX_LENGTH];             /* printable ASCII, no terminator */
    /* Packed BCD: two digits a byte, the first in the high nibble; an odd
     * last digit is followed by the nibble 0xF ("999333777" is 99 93 33 77 7F). */
    uint8_t test_code[PGK_TEST_CODE_PACKED_SIZE];
} pgk_state;

typedef enum {
    PGK_STORAGE_OK = 0,
    PGK_STORAGE_UNCHANGED = 1, /* save: the memory already holds this state; nothing written */
    PGK_STORAGE_ERR_NV = -1,   /* the port reported a failure */
    PGK_STORAGE_ERR_STATE = -2, /* save: the state does not fit the layout; nothing written */
    /* load: a slot holds a record of a newer layout version: update the
     * firmware.  Neither falls back nor resets, or the device would lose or
     * replay its state; the memory is left as it is. */
    PGK_STORAGE_ERR_NEWER_LAYOUT = -3,
    /* load: the newest record is intact but holds impossible values (foreign
     * or faulty software wrote it); erase and provision again. */
    PGK_STORAGE_ERR_REFUSED = -4,
    /* save: the slot did not read back as written (worn or faulty memory);
     * the previous state is still stored in the other slot. */
    PGK_STORAGE_ERR_VERIFY = -5,
    /* save: no successful pgk_storage_load since the store was set up or
     * since a load failed. */
    PGK_STORAGE_ERR_NOT_LOADED = -6
} pgk_storage_result;

/* What the store knows about the memory between calls.  Zero it (or let
 * pgk_storage_load fill it) before use; its fields are the store's own. */
typedef struct {
    uint32_t sequence;      /* of the newest valid record; 0 when there is none */
    uint8_t newest_slot;    /* 0 (A) or 1 (B); 1 when there is none */
    uint8_t newest_version; /* its layout version; 0 when there is none */
    uint8_t loaded;
    /* A save failed part-way: the slots may no longer match what the store
     * saw, so the next save writes without first asking whether anything
     * changed. */
    uint8_t rewrite;
    /* The last load found a damaged record (paygkit's
     * recovered_from_corruption): the state is the newest intact one, which
     * may be one save older than the last save made. */
    uint8_t recovered_from_corruption;
    /* The slot the last load or save failed on (0 = A, 1 = B), for the message. */
    uint8_t failed_slot;
#if PGK_STORAGE_READ_VERSION_1
    /* A version 1 newest record reads as version 2 with its wait and last
     * count upgraded: those bytes (little-endian wait_left, then last_count)
     * as version 2 would store them, so that saving the loaded state
     * unchanged is recognised and writes nothing. */
    uint8_t upgraded_fields[12];
#endif
} pgk_store;

/* The state of a device whose memory holds none: unprovisioned, last count 1,
 * PAYG enabled, everything else zero (paygkit's DeviceState()). */
void pgk_state_init(pgk_state *state);

/* Read the newest valid state into *state (pgk_state_init's state when the
 * memory holds none) and remember where it is for the next save.  Writes
 * nothing.  On an error *state is not a state to use and saves are refused
 * until a load succeeds: the device should stop and show the error (and
 * store->failed_slot), not run on a state it made up. */
pgk_storage_result pgk_storage_load(pgk_store *store, pgk_state *state);

/* Store *state unless the memory already holds it (PGK_STORAGE_UNCHANGED).
 * On either of these two results the state is what every later load gives,
 * whatever power cut follows: give a token's feedback only then.  If the
 * power fails during the call, the next load gives either this state or the
 * one stored before, never anything else.  After an error the memory may
 * hold either too; the next save stores its state regardless (it writes
 * even an unchanged one). */
pgk_storage_result pgk_storage_save(pgk_store *store, const pgk_state *state);

/* The record that stores *state with this sequence number, into `record`;
 * returns its length, or 0 when the state does not fit the layout.  For
 * tools and tests: a device never needs it (and --gc-sections drops it). */
uint16_t pgk_storage_encode(const pgk_state *state, uint32_t sequence,
                            uint8_t record[PGK_STORAGE_MAX_RECORD_SIZE]);

/* The state's used counts and test code uses as they read from a record:
 * one entry at a time, in the record's order, kept as pgk_state says (the
 * lengths follow).  pgk_state_init's state starts with none.  Loads use them;
 * tools may too. */
void pgk_state_add_used_count(pgk_state *state, uint32_t count);
void pgk_state_add_test_code_use(pgk_state *state, int64_t when);

/* The number of bits set: used_count_n for a used_bits. */
uint8_t pgk_bit_count(uint32_t bits);

/* Byte copy and fill for the library's own use.  newlib's memcpy and memset
 * are unrolled for speed (about 300 bytes together on a Cortex-M0); the
 * library only ever moves a few hundred bytes per call, so loops suffice
 * (and any of its modules that uses these instead links neither). */
void pgk_copy(void *to, const void *from, unsigned length);
void pgk_fill(void *to, uint8_t byte, unsigned length);
/* pgk_fill with 0, the usual case: one argument less at each call. */
void pgk_zero(void *to, unsigned length);

/* CRC-32 as zlib's crc32: pgk_crc32(0, ...) starts, and passing the result
 * back in continues over more bytes. */
uint32_t pgk_crc32(uint32_t crc, const uint8_t *data, uint16_t length);

#endif /* PGK_STORAGE_H */

/* The state store of docs/storage-layout.md, as paygkit.device.storage
 * implements it (see pgk_storage.h).
 *
 * Records are never built whole in RAM: the encoder streams a record's bytes
 * through a sink that, 16 bytes at a time, copies them out, writes the ones
 * that differ from the memory, or compares them with it.  One encoder thus
 * serves encoding, saving, the "nothing changed" test and the read-back
 * check, and a save needs about 200 bytes of stack at its deepest.
 */
#include "pgk_storage.h"

#include <stddef.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "pgk_storage keeps pgk_state in the record's little-endian byte image"
#endif

#include "pgk_compiler.h"

#if PGK_WINDOW_UNORDERED < 0 || PGK_WINDOW_UNORDERED > 31
#error "PGK_WINDOW_UNORDERED must be 0..31: pgk_state keeps the used counts in 32 bits"
#endif

#define SLOT_NONE 0xFFu

#define HEADER_SIZE 12u
#define FIXED_PAYLOAD_SIZE 68u
#define CRC_SIZE 4u
/* zlib's crc32 of a record followed by its little-endian CRC, whatever the
 * record: CRC-32's residue (0xDEBB20E3 in the register, before the final
 * inversion). */
#define CRC_RESIDUE 0x2144DF1Cu

/* "PGKS" read as a little-endian u32; its first byte doubles as the commit mark. */
#define MAGIC 0x534B4750u
#define COMMIT_MARK 0x50u
#define UNCOMMITTED 0x00u
#define ERASED 0xFFu

#define KNOWN_FLAGS (PGK_FLAG_PROVISIONED | PGK_FLAG_RESTRICTED_DIGITS | PGK_FLAG_PAYG_ENABLED)
#define KNOWN_TAMPER (PGK_TAMPER_RTC_SLOW | PGK_TAMPER_RTC_FAST | PGK_TAMPER_RTC_BACKWARDS)

/* Record offsets (docs/storage-layout.md, "Record layout"). */
#define AT_VERSION 4u
#define AT_HEADER_RESERVED 5u
#define AT_PAYLOAD_LENGTH 6u
#define AT_SEQUENCE 8u
#define AT_WAIT_LEFT 28u
#define AT_LAST_COUNT 56u

/* The bytes a sink handles per memory access; also the size of its two buffers. */
#define PIECE 16u

/* pgk_state's first bytes must be the fixed payload's image, or every record
 * would be garbled: a compiler laying the struct out otherwise fails here. */
#define LAYOUT_CHECK(name, holds) typedef char layout_check_##name[(holds) ? 1 : -1]
LAYOUT_CHECK(flags, offsetof(pgk_state, flags) == 0);
LAYOUT_CHECK(reserved, offsetof(pgk_state, reserved) == 7);
LAYOUT_CHECK(active_until, offsetof(pgk_state, active_until) == 8);
LAYOUT_CHECK(wait_left, offsetof(pgk_state, wait_left) == AT_WAIT_LEFT - HEADER_SIZE);
LAYOUT_CHECK(latest_rtc_seen, offsetof(pgk_state, latest_rtc_seen) == 24);
LAYOUT_CHECK(test_active_until, offsetof(pgk_state, test_active_until) == 32);
LAYOUT_CHECK(starting_code, offsetof(pgk_state, starting_code) == 40);
LAYOUT_CHECK(last_count, offsetof(pgk_state, last_count) == AT_LAST_COUNT - HEADER_SIZE);
LAYOUT_CHECK(invalid_attempts, offsetof(pgk_state, invalid_attempts) == 48);
LAYOUT_CHECK(key, offsetof(pgk_state, key) == 52 && sizeof(((pgk_state *)0)->key) == 16);
LAYOUT_CHECK(fixed_end, offsetof(pgk_state, used_top) == FIXED_PAYLOAD_SIZE);
LAYOUT_CHECK(slot_in_pieces, PGK_STORAGE_SLOT_SIZE % PIECE == 0);

/* GCC turns a plain copy loop back into a memcpy call (loop distribution),
 * which would link newlib's again: the volatile access keeps it a loop. */
void pgk_copy(void *to, const void *from, unsigned length)
{
    uint8_t *out = to;
    const uint8_t *in = from;
    while (length--) {
        *(volatile uint8_t *)out++ = *in++;
    }
}

void pgk_fill(void *to, uint8_t byte, unsigned length)
{
    uint8_t *out = to;
    while (length--) {
        *(volatile uint8_t *)out++ = byte;
    }
}

void pgk_zero(void *to, unsigned length)
{
    pgk_fill(to, 0, length);
}

/* zlib's crc32 of one byte more: from the CRC of the bytes before it (0 for
 * none), so that it runs byte by byte from a plain 0.  Out of line: with
 * -flto GCC inlines it into both its callers, 12 bytes more. */
NOINLINE static uint32_t crc_byte(uint32_t crc, unsigned byte)
{
    crc = ~crc ^ byte;
    for (unsigned bit = 0; bit < 8; bit++) {
        crc = crc >> 1 ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

uint32_t pgk_crc32(uint32_t crc, const uint8_t *data, uint16_t length)
{
    while (length--) {
        crc = crc_byte(crc, *data++);
    }
    return crc;
}

/* Serial-number order (RFC 1982), so the sequence may wrap past 2^32: a is
 * newer when a - b is 1 .. 2^31 - 1, one compare. */
static unsigned is_newer(uint32_t a, uint32_t b)
{
    return (uint32_t)(a - b - 1u) < 0x7FFFFFFFu;
}

static unsigned used_counts_size(const pgk_state *state)
{
    return 4u * state->used_count_n;
}

static unsigned test_code_uses_size(const pgk_state *state)
{
    return 8u * state->test_code_use_n;
}

static unsigned test_code_size(const pgk_state *state)
{
    return (state->test_code_length + 1u) / 2u;
}

/* With its signature: 4 bytes less. */
KEEP_SIGNATURE static unsigned payload_length_of(const pgk_state *state)
{
    return FIXED_PAYLOAD_SIZE + used_counts_size(state) + test_code_uses_size(state) +
           state->serial_length + test_code_size(state);
}

/* The most each of the fixed part's first 8 bytes (flags .. reserved) may
 * hold, so that one loop checks them all.  record_limits: the lengths the
 * layout allows, all a load needs before it reads the lists.  state_limits:
 * what a state that reads back equal holds (flags and tamper are masks of
 * their low bits, so "no unknown bit" is "at most the mask"). */
static const uint8_t record_limits[8] = {
    0xFFu, 0xFFu, 0xFFu, PGK_SERIAL_MAX_LENGTH, PGK_TEST_CODE_MAX_DIGITS,
    PGK_MAX_USED_COUNTS, PGK_MAX_TEST_CODE_USES, 0xFFu};
static const uint8_t state_limits[8] = {
    KNOWN_FLAGS, 0xFFu, KNOWN_TAMPER, PGK_SERIAL_MAX_LENGTH, PGK_TEST_CODE_MAX_DIGITS,
    PGK_MAX_USED_COUNTS, PGK_STATE_TEST_CODE_USES, 0};
LAYOUT_CHECK(limits_are_masks, (KNOWN_FLAGS & (KNOWN_FLAGS + 1u)) == 0 &&
                                   (KNOWN_TAMPER & (KNOWN_TAMPER + 1u)) == 0);
LAYOUT_CHECK(limits_order, offsetof(pgk_state, tamper) == 2 &&
                               offsetof(pgk_state, serial_length) == 3 &&
                               offsetof(pgk_state, test_code_length) == 4 &&
                               offsetof(pgk_state, used_count_n) == 5 &&
                               offsetof(pgk_state, test_code_use_n) == 6);
LAYOUT_CHECK(state_uses, PGK_STATE_TEST_CODE_USES <= PGK_MAX_TEST_CODE_USES);

static unsigned bytes_fit(const pgk_state *state, const uint8_t limits[8])
{
    const uint8_t *image = (const uint8_t *)state;
    for (unsigned i = 0; i < 8u; i++) {
        if (image[i] > limits[i]) {
            return 0;
        }
    }
    return 1;
}

/* Out of line: with -flto GCC inlines it into its three callers, 44 bytes more. */
NOINLINE uint8_t pgk_bit_count(uint32_t bits)
{
    unsigned n = 0;
    for (; bits; bits &= bits - 1u) {
        n++;
    }
    return (uint8_t)n;
}

#define USED_BITS_MASK ((UINT32_C(2) << PGK_WINDOW_UNORDERED) - 1u)

/* The lists as pgk_state keeps them (pgk_storage.h): what every load gives,
 * so a state that is anything else could not read back equal. */
static unsigned lists_fit(const pgk_state *state)
{
    uint32_t bits = state->used_bits;
    uint32_t top = state->used_top;
    return !(bits & ~USED_BITS_MASK) &&
           (bits ? top >= PGK_WINDOW_UNORDERED || !(bits >> top >> 1) : !top) &&
           state->used_count_n == pgk_bit_count(bits);
}

void pgk_state_add_used_count(pgk_state *state, uint32_t count)
{
    uint32_t top = state->used_top;
    uint32_t bits = state->used_bits;
    if (count > top) {
        uint32_t shift = count - top;
        bits = shift < 32u ? bits << shift : 0;
        top = count;
    }
    if (top - count <= PGK_WINDOW_UNORDERED) {
        bits |= UINT32_C(1) << (top - count);
    }
    bits &= USED_BITS_MASK;
    state->used_top = top;
    state->used_bits = bits;
    state->used_count_n = pgk_bit_count(bits);
}

void pgk_state_add_test_code_use(pgk_state *state, int64_t when)
{
    pgk_rtc_time *uses = state->test_code_uses;
    pgk_rtc_time use = (pgk_rtc_time)when;
    unsigned n = state->test_code_use_n;
    if (n == PGK_STATE_TEST_CODE_USES) {
        /* Full: the earliest time gives way to a later one, the rest keep their order. */
        unsigned earliest = 0;
        for (unsigned i = 1; i < n; i++) {
            if (uses[i] < uses[earliest]) {
                earliest = i;
            }
        }
        if (use <= uses[earliest]) {
            return;
        }
        n--;
        for (unsigned i = earliest; i < n; i++) {
            uses[i] = uses[i + 1u];
        }
    }
    uses[n] = use;
    state->test_code_use_n = (uint8_t)(n + 1u);
}

/* What paygkit's _check_state accepts (nonzero): a state that reads back
 * equal.  Save refuses anything else before it writes, and load refuses a
 * record that decodes to anything else, so both sides agree on what a record
 * can be. */
static unsigned state_fits_layout(const pgk_state *state)
{
    unsigned digits = state->test_code_length;
    if (!bytes_fit(state, state_limits) || state->wait_left < 0 || !lists_fit(state)) {
        return 0;
    }
    /* Two digits a byte; the low nibble after an odd count's last digit is
     * the 0xF pad, mapped to 0 and anything else above 9 to be checked as a
     * digit. */
    for (unsigned i = 0; i < digits; i += 2) {
        unsigned byte = state->test_code[i / 2u];
        unsigned low = byte & 0x0Fu;
        if (i + 1u == digits) {
            low = (low ^ 0x0Fu) << 4;
        }
        if (byte >> 4 > 9u || low > 9u) {
            return 0;
        }
    }
    /* Both checks hold trivially for the zeros of an unprovisioned state. */
    if (state->starting_code > PGK_MAX_STARTING_CODE) {
        return 0;
    }
    /* Only the layout's byte range: serials provisioned under paygkit
     * 0.1's wider rule must keep loading and saving. */
    for (unsigned i = 0; i < state->serial_length; i++) {
        if ((uint8_t)(state->serial[i] - 0x20) > 0x7Eu - 0x20u) {
            return 0;
        }
    }
    if (state->flags & PGK_FLAG_PROVISIONED) {
        /* Nonzero exactly when both are: one multiply, no branch. */
        return (unsigned)state->serial_length * state->time_divider;
    }
    unsigned set = (state->flags & PGK_FLAG_RESTRICTED_DIGITS) | state->time_divider |
                   state->serial_length | digits | state->starting_code;
    for (unsigned i = 0; i < sizeof state->key; i++) {
        set |= state->key[i];
    }
    return !set;
}

void pgk_state_init(pgk_state *state)
{
    pgk_zero(state, sizeof *state);
    state->last_count = 1;
    state->flags = PGK_FLAG_PAYG_ENABLED;
}

/* DeviceState() is what a blank memory "holds": saving it there changes
 * nothing.  For a state that fits, its fixed part settles it (the lengths
 * are in it): all zero but flags (PAYG enabled) and last_count (1). */
static unsigned is_blank(const pgk_state *fitting)
{
    const uint8_t *image = (const uint8_t *)fitting;
    for (unsigned i = 0; i < FIXED_PAYLOAD_SIZE; i++) {
        unsigned blank = i == offsetof(pgk_state, flags)        ? PGK_FLAG_PAYG_ENABLED
                         : i == offsetof(pgk_state, last_count) ? 1u
                                                                : 0u;
        if (image[i] != blank) {
            return 0;
        }
    }
    return 1;
}

/* -- the record sink ---------------------------------------------------------- */

enum sink_mode {
    SINK_TO_BUFFER,
    SINK_WRITE_CHANGES, /* write the bytes that differ from the slot, all but the commit mark */
    SINK_COMPARE,       /* the whole record against the slot: the read-back check */
#if PGK_STORAGE_READ_VERSION_1
    /* Header and payload only, for the "nothing changed" test: a version 1
     * record's CRC is not the one of the version 2 bytes it reads as. */
    SINK_COMPARE_CONTENT
#else
/* The newest record is intact (loaded as such, or read back after its
 * save), so its CRC matches exactly when its content does: the whole
 * record is compared, one mode less to tell apart. */
#define SINK_COMPARE_CONTENT SINK_COMPARE
#endif
};

enum sink_outcome { SINK_SAME, SINK_DIFFERENT, SINK_NV_FAILED };

/* pending first: indexed by a register, it is then reached without an add. */
typedef struct {
    uint8_t pending[PIECE];
    uint8_t *buffer;
#if PGK_STORAGE_READ_VERSION_1
    /* Set to compare with a version 1 record as it reads in version 2. */
    const uint8_t *upgraded_fields;
#endif
    uint32_t crc; /* of the bytes so far, as zlib's crc32: 0 for none */
    /* Memory offset of pending[0]: the slot's base plus the record offset
     * (SLOT_OFFSET of it; the record offset itself into a buffer).  No base
     * of its own: 2 bytes less, 4 with -flto. */
    unsigned position;
    unsigned pending_length;
    unsigned mode;
    unsigned outcome;
} record_sink;

/* A record offset from a memory offset in its slot: a record never reaches
 * its slot's end. */
#define SLOT_OFFSET(at) ((at) % PGK_STORAGE_SLOT_SIZE)

static void sink_start(record_sink *sink, unsigned mode, unsigned base)
{
    pgk_zero(sink, sizeof *sink);
    sink->mode = mode;
    sink->position = base;
}

/* What the slot's byte at `offset` reads as in version 2. */
static unsigned as_version_2(const record_sink *sink, unsigned offset, unsigned stored)
{
#if PGK_STORAGE_READ_VERSION_1
    const uint8_t *upgraded = sink->upgraded_fields;
    if (upgraded) {
        if (offset == AT_VERSION) {
            return PGK_STORAGE_LAYOUT_VERSION;
        }
        if (offset - AT_WAIT_LEFT < 8u) {
            return upgraded[offset - AT_WAIT_LEFT];
        }
        if (offset - AT_LAST_COUNT < 4u) {
            return upgraded[8u + offset - AT_LAST_COUNT];
        }
    }
#else
    (void)sink;
    (void)offset;
#endif
    return stored;
}

static void sink_flush(record_sink *sink)
{
    uint8_t stored[PIECE];
    unsigned at = sink->position;
    unsigned length = sink->pending_length;
    sink->position = at + length;
    sink->pending_length = 0;
    if (sink->mode == SINK_TO_BUFFER) {
        pgk_copy(sink->buffer + at, sink->pending, length);
        return;
    }
    if (sink->outcome != SINK_SAME) {
        return;
    }
#if PGK_NV_NEEDS_ERASE
    /* The slot was just erased: every byte differs from the record or is
     * already the 0xFF it needs, so writing the piece whole programs each
     * word once, as comparing first would, without the read. */
    if (sink->mode == SINK_WRITE_CHANGES) {
        /* the commit mark: the save writes it last, itself */
        unsigned skip = SLOT_OFFSET(at) == 0;
        if (pgk_port_nv_write(at + skip, sink->pending + skip, length - skip)) {
            sink->outcome = SINK_NV_FAILED;
        }
        return;
    }
#endif
    if (pgk_port_nv_read(at, stored, length)) {
        sink->outcome = SINK_NV_FAILED;
        return;
    }
    for (unsigned i = 0; i < length; i++) {
        if (as_version_2(sink, SLOT_OFFSET(at + i), stored[i]) == sink->pending[i]) {
            continue;
        }
        if (PGK_NV_NEEDS_ERASE || sink->mode != SINK_WRITE_CHANGES) {
            sink->outcome = SINK_DIFFERENT;
            return;
        }
        if (SLOT_OFFSET(at + i) == 0) {
            continue; /* the commit mark: the save writes it last, itself */
        }
        /* Runs rather than single bytes: fewer write cycles on an EEPROM page. */
        unsigned end = i + 1;
        while (end < length && stored[end] != sink->pending[end]) {
            end++;
        }
        if (pgk_port_nv_write(at + i, sink->pending + i, end - i)) {
            sink->outcome = SINK_NV_FAILED;
            return;
        }
        i = end;
    }
}

static void sink_bytes(record_sink *sink, const void *data, unsigned length)
{
    const uint8_t *byte = data;
    while (length--) {
        sink->pending[sink->pending_length] = *byte;
        sink->crc = crc_byte(sink->crc, *byte++);
        if (++sink->pending_length == PIECE) {
            sink_flush(sink);
        }
    }
}

/* Inlined into stream_record, the device's one caller (pgk_storage_encode
 * is for tools): 18 bytes less. */
static INLINE void emit_record(record_sink *sink, const pgk_state *state, uint32_t sequence)
{
    /* Each value passes through `word` in its little-endian image, so the
     * stream's deepest frame holds one scratch buffer: first the header
     * (magic, version, reserved byte, length, sequence: one pass through the
     * sink instead of three), then each list entry, then the CRC. */
    union {
        uint32_t header[3];
        uint32_t count;
        int64_t use;
    } word = {{MAGIC, PGK_STORAGE_LAYOUT_VERSION | payload_length_of(state) << 16, sequence}};
    sink_bytes(sink, &word, sizeof word.header);
    sink_bytes(sink, state, FIXED_PAYLOAD_SIZE);
    for (unsigned distance = PGK_WINDOW_UNORDERED + 1u; distance--;) {
        if (state->used_bits >> distance & 1u) {
            word.count = state->used_top - distance;
            sink_bytes(sink, &word, sizeof word.count);
        }
    }
    for (unsigned i = 0; i < state->test_code_use_n; i++) {
        word.use = state->test_code_uses[i];
        sink_bytes(sink, &word, sizeof word.use);
    }
    sink_bytes(sink, state->serial, state->serial_length);
    sink_bytes(sink, state->test_code, test_code_size(state));
#if PGK_STORAGE_READ_VERSION_1
    if (sink->mode != SINK_COMPARE_CONTENT)
#endif
    {
        word.count = sink->crc;
        sink_bytes(sink, &word, CRC_SIZE);
    }
    sink_flush(sink);
}

uint16_t pgk_storage_encode(const pgk_state *state, uint32_t sequence,
                            uint8_t record[PGK_STORAGE_MAX_RECORD_SIZE])
{
    record_sink sink;
    if (!state_fits_layout(state)) {
        return 0;
    }
    sink_start(&sink, SINK_TO_BUFFER, 0);
    sink.buffer = record;
    emit_record(&sink, state, sequence);
    return (uint16_t)sink.position;
}

/* -- reading ------------------------------------------------------------------------ */

/* A record header as read: in words, so that the little-endian target
 * takes magic, sequence and length each with one load. */
typedef uint32_t record_header[HEADER_SIZE / 4u];
#define HEADER_BYTE(header, at) (((const uint8_t *)(header))[at])

static unsigned payload_length_in(const record_header header)
{
    return header[AT_PAYLOAD_LENGTH / 4u] >> 16;
}

/* What a slot holds; the two that stop a load are its results. */
enum slot_kind {
    SLOT_EMPTY,
    SLOT_DAMAGED,
    SLOT_INTACT,
    SLOT_NEWER = PGK_STORAGE_ERR_NEWER_LAYOUT,
    SLOT_UNREADABLE = PGK_STORAGE_ERR_NV
};

/* docs/storage-layout.md, "Reading", steps 1-3, leaving the header in
 * `header`; step 4 is decode_slot's.  Out of line: inlined into the load's
 * loop over the two slots it is 16 bytes more. */
NOINLINE static int classify_slot(unsigned base, record_header header)
{
    uint8_t piece[PIECE];
    uint32_t crc = 0;
    if (pgk_port_nv_read(base, header, HEADER_SIZE)) {
        return SLOT_UNREADABLE;
    }
    if (HEADER_BYTE(header, 0) == UNCOMMITTED || HEADER_BYTE(header, 0) == ERASED) {
        return SLOT_EMPTY; /* blank, or a save cut before its commit mark: not damage */
    }
    unsigned end = HEADER_SIZE + payload_length_in(header) + CRC_SIZE;
    if (header[0] != MAGIC || end > PGK_STORAGE_SLOT_SIZE) {
        return SLOT_DAMAGED;
    }
    /* The stored CRC is run through the CRC too: the register then ends on
     * CRC-32's residue exactly when the CRC matches (appending 4 bytes maps
     * the register one to one), with no separate read and compare. */
    /* Whole pieces: the slot's size is a multiple of PIECE, so the last
     * one still lies within the slot, past the record's end. */
    for (unsigned at = 0; at < end; at += PIECE) {
        if (pgk_port_nv_read(base + at, piece, PIECE)) {
            return SLOT_UNREADABLE;
        }
        for (unsigned i = 0; i < PIECE && at + i < end; i++) {
            crc = crc_byte(crc, piece[i]);
        }
    }
    if (crc != CRC_RESIDUE) {
        return SLOT_DAMAGED;
    }
    return HEADER_BYTE(header, AT_VERSION) > PGK_STORAGE_LAYOUT_VERSION ? SLOT_NEWER : SLOT_INTACT;
}

/* Reads the next `length` bytes of a record at *at; nonzero if the port failed. */
static INLINE unsigned read_on(unsigned *at, void *into, unsigned length)
{
    unsigned failed = pgk_port_nv_read(*at, into, length) != 0;
    *at += length;
    return failed;
}

/* An intact record of version 2 or older, into *state; steps 4-5 of "Reading". */
static pgk_storage_result decode_slot(pgk_store *store, unsigned base,
                                      const record_header header, pgk_state *state)
{
    unsigned version = HEADER_BYTE(header, AT_VERSION);
    unsigned at = base + HEADER_SIZE;
    if (read_on(&at, state, FIXED_PAYLOAD_SIZE)) {
        return PGK_STORAGE_ERR_NV;
    }
    if (version == 0 || (!PGK_STORAGE_READ_VERSION_1 && version == 1) ||
        HEADER_BYTE(header, AT_HEADER_RESERVED) || !bytes_fit(state, record_limits) ||
        payload_length_in(header) != payload_length_of(state)) {
        return PGK_STORAGE_ERR_REFUSED;
    }
    /* The lists are read entry by entry into pgk_state's form, which
     * recounts them: the record's lengths first. */
    unsigned counts = state->used_count_n;
    unsigned uses = state->test_code_use_n;
    state->used_count_n = 0;
    state->test_code_use_n = 0;
    while (counts--) {
        uint32_t count;
        if (read_on(&at, &count, sizeof count)) {
            return PGK_STORAGE_ERR_NV;
        }
        pgk_state_add_used_count(state, count);
    }
    while (uses--) {
        int64_t use;
        if (read_on(&at, &use, sizeof use)) {
            return PGK_STORAGE_ERR_NV;
        }
        pgk_state_add_test_code_use(state, use);
    }
    if (read_on(&at, state->serial, state->serial_length) |
        read_on(&at, state->test_code, test_code_size(state))) {
        return PGK_STORAGE_ERR_NV;
    }
#if PGK_STORAGE_READ_VERSION_1
    if (version == 1) {
        /* Offset 28 held blocked_until, an RTC time: what was left of the
         * wait at the latest RTC time stored, without overflowing.  And
         * firmware on the reference rule may have moved last_count back with
         * a Counter Sync; the counts it accepted above are still listed. */
        int64_t blocked_until = state->wait_left;
        state->wait_left = 0;
        if (blocked_until > state->latest_rtc_seen) {
            uint64_t left = (uint64_t)blocked_until - (uint64_t)state->latest_rtc_seen;
            state->wait_left = left > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)left;
        }
        if (state->used_bits && state->used_top > state->last_count) {
            state->last_count = state->used_top;
        }
        pgk_copy(store->upgraded_fields, &state->wait_left, 8);
        pgk_copy(store->upgraded_fields + 8, &state->last_count, 4);
    }
#endif
    store->newest_version = (uint8_t)version;
    return state_fits_layout(state) ? PGK_STORAGE_OK : PGK_STORAGE_ERR_REFUSED;
}

pgk_storage_result pgk_storage_load(pgk_store *store, pgk_state *state)
{
    /* Each slot's header, and of the newest one's what its decode reads
     * (version, reserved byte and length; sequence): the decode needs no
     * second pass over the slot. */
    record_header header;
    record_header newest_header = {0, 0, 0};
    unsigned newest = SLOT_NONE;
    pgk_zero(store, sizeof *store);
    store->newest_slot = 1; /* none: see pgk_storage_save */
    for (unsigned slot = 0; slot < 2; slot++) {
        int kind = classify_slot(slot * PGK_STORAGE_SLOT_SIZE, header);
        store->failed_slot = (uint8_t)slot;
        if (kind < 0) {
            return (pgk_storage_result)kind;
        }
        store->recovered_from_corruption |= kind == SLOT_DAMAGED;
        /* A refused record still counts for "newest": falling back past it
         * would load an older state and later overwrite it. */
        if (kind == SLOT_INTACT &&
            (newest == SLOT_NONE ||
             is_newer(header[AT_SEQUENCE / 4u], newest_header[AT_SEQUENCE / 4u]))) {
            newest = slot;
            newest_header[1] = header[1];
            newest_header[2] = header[2];
        }
    }
    pgk_state_init(state);
    if (newest != SLOT_NONE) {
        store->failed_slot = (uint8_t)newest;
        pgk_storage_result result =
            decode_slot(store, newest * PGK_STORAGE_SLOT_SIZE, newest_header, state);
        if (result != PGK_STORAGE_OK) {
            return result;
        }
        store->newest_slot = (uint8_t)newest;
        store->sequence = newest_header[AT_SEQUENCE / 4u];
    }
    store->loaded = 1;
    return PGK_STORAGE_OK;
}

/* -- writing ------------------------------------------------------------------------ */

static const uint8_t commit_mark = COMMIT_MARK;
#if !PGK_NV_NEEDS_ERASE
static const uint8_t uncommitted = UNCOMMITTED;
#endif

/* One pass of the record over the slot at `base`; a sink_outcome.  Out of
 * line: inlined into each of the save's three passes it costs 32 bytes more. */
NOINLINE static unsigned stream_record(unsigned mode, unsigned base, const pgk_state *state,
                              uint32_t sequence, const uint8_t *upgraded_fields)
{
    record_sink sink;
    sink_start(&sink, mode, base);
#if PGK_STORAGE_READ_VERSION_1
    sink.upgraded_fields = upgraded_fields;
#else
    (void)upgraded_fields;
#endif
    emit_record(&sink, state, sequence);
    return sink.outcome;
}

/* How to compare with the newest record: as stored, or as a version 1 record reads. */
static const uint8_t *upgraded_fields_of(const pgk_store *store)
{
#if PGK_STORAGE_READ_VERSION_1
    if (store->newest_version == 1) {
        return store->upgraded_fields;
    }
#endif
    (void)store;
    return NULL;
}

/* docs/storage-layout.md, "Writing: the save procedure". */
pgk_storage_result pgk_storage_save(pgk_store *store, const pgk_state *state)
{
    unsigned outcome;
    if (!state_fits_layout(state)) {
        return PGK_STORAGE_ERR_STATE;
    }
    if (!store->loaded) {
        return PGK_STORAGE_ERR_NOT_LOADED;
    }
    /* Wear: nothing is written when the memory already holds the state. */
    if (!store->rewrite) {
        if (store->newest_version == 0) {
            if (is_blank(state)) {
                return PGK_STORAGE_UNCHANGED;
            }
        } else {
            store->failed_slot = store->newest_slot;
            outcome = stream_record(SINK_COMPARE_CONTENT,
                                    store->newest_slot * PGK_STORAGE_SLOT_SIZE, state,
                                    store->sequence, upgraded_fields_of(store));
            if (outcome == SINK_SAME) {
                return PGK_STORAGE_UNCHANGED;
            }
            if (outcome == SINK_NV_FAILED) {
                return PGK_STORAGE_ERR_NV;
            }
        }
    }
    /* With no valid record, slot B "holds" sequence 0: the first save goes
     * to slot A with sequence 1, as the layout says. */
    unsigned target = store->newest_slot ^ 1u;
    uint32_t sequence = store->sequence + 1;
    unsigned base = target * PGK_STORAGE_SLOT_SIZE;
    store->failed_slot = (uint8_t)target;
    /* Until the commit below is checked, the target slot may hold anything:
     * never take it as holding the state. */
    store->rewrite = 1;
#if PGK_NV_NEEDS_ERASE
    if (pgk_port_nv_erase(base, PGK_STORAGE_SLOT_SIZE)) {
        return PGK_STORAGE_ERR_NV;
    }
#else
    uint8_t mark;
    if (pgk_port_nv_read(base, &mark, 1)) {
        return PGK_STORAGE_ERR_NV;
    }
    /* From the uncommit until the commit the slot loads as empty, whatever
     * mix of old and new bytes a power cut leaves in it. */
    if (mark == COMMIT_MARK && pgk_port_nv_write(base, &uncommitted, 1)) {
        return PGK_STORAGE_ERR_NV;
    }
#endif
    if (stream_record(SINK_WRITE_CHANGES, base, state, sequence, NULL) != SINK_SAME ||
        pgk_port_nv_write(base, &commit_mark, 1)) {
        return PGK_STORAGE_ERR_NV;
    }
    outcome = stream_record(SINK_COMPARE, base, state, sequence, NULL);
    if (outcome != SINK_SAME) {
        return outcome == SINK_NV_FAILED ? PGK_STORAGE_ERR_NV : PGK_STORAGE_ERR_VERIFY;
    }
    store->newest_slot = (uint8_t)target;
    store->newest_version = PGK_STORAGE_LAYOUT_VERSION;
    store->sequence = sequence;
    store->rewrite = 0;
    return PGK_STORAGE_OK;
}

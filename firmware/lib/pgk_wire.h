/* The device protocol on the wire (docs/device-protocol.md): the line
 * splitter, the command grammar and the answer lines, byte for byte as
 * paygkit.device.wire and paygkit.device.commands write and read them
 * (tests/firmware/test_c_wire.py compares the two).
 *
 * No heap and no I/O: bytes go into a pgk_line_splitter, a complete line is
 * parsed in place into a pgk_command, and answers are written through a
 * pgk_out, a caller's buffer that is handed to a flush function whenever it
 * fills, so an answer line of any length needs only a few bytes of RAM.
 */
#ifndef PGK_WIRE_H
#define PGK_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "pgk_config.h"
#include "pgk_device.h"

#define PGK_PROTOCOL_VERSION 1u
/* A command line without its line end (section 1). */
#define PGK_WIRE_LINE_MAX 256u
/* The simulated RTC stays below 2100-01-01 (paygkit.device.commands.MAX_RTC). */
#define PGK_WIRE_MAX_RTC 4102444800u
#define PGK_WIRE_MAX_ADVANCE_SECONDS 315360000u /* 3650 days */
#define PGK_WIRE_MAX_KEYPAD_TIMEOUT 3600u
#define PGK_WIRE_MAX_COUNT 0x7fffffffu

/* ---- lines in a byte stream (wire.LineSplitter, limit 256, editing on) ---- */

typedef enum {
    PGK_LINE_PENDING = 0,  /* no line complete yet */
    PGK_LINE_READY = 1,    /* splitter->line[0 .. length) is a line */
    PGK_LINE_TOO_LONG = 2  /* a line longer than PGK_WIRE_LINE_MAX ended; its bytes are gone */
} pgk_line_event;

typedef struct {
    /* Past PGK_WIRE_LINE_MAX (by one) once the line is too long: its bytes
     * are dropped up to its end. */
    uint16_t length;
    char line[PGK_WIRE_LINE_MAX];
} pgk_line_splitter;

/* Zero the struct to start.  One byte in; a line ends at LF or CR (CRLF gives
 * an empty line between them, which the parser ignores).  Backspace and DEL
 * delete the previous byte of the line.  After a line (READY or TOO_LONG)
 * the caller sets splitter->length to 0 for the next one, once it has used
 * the line: the splitter keeps no flag of its own for that. */
pgk_line_event pgk_line_feed(pgk_line_splitter *splitter, uint8_t byte);

/* ---- commands (paygkit.device.commands, as interpreter.py reads them) ----- */

typedef enum {
    PGK_CMD_BLANK = 0, /* an empty line or one of spaces: no answer at all */
    PGK_CMD_ERROR,     /* refused: answer pgk_wire_error() */
    PGK_CMD_HELLO,
    PGK_CMD_HELP,
    PGK_CMD_SETUP, /* both forms; setup.reference is 1 for #serial;code;key */
    PGK_CMD_KEYS,
    PGK_CMD_TOKEN,
    PGK_CMD_STATUS,
    PGK_CMD_ADVANCE, /* simulator commands from here on */
    PGK_CMD_CLOCK,
    PGK_CMD_CONFIG,
    PGK_CMD_POWER,
    PGK_CMD_RESET,
    PGK_CMD_WIPE,
    PGK_CMD_QUIT
} pgk_command_kind;

#define PGK_CMD_FIRST_SIMULATOR PGK_CMD_ADVANCE

/* ERR codes (section 5), in the order of pgk_wire.c's names; the simulator's
 * last, left out of a build without it.  Not INTERNAL, paygkit's answer to an
 * exception of its firmware model, which this library has no way to raise
 * (its failures are STORAGE's), nor BUSY, its TCP server's. */
typedef enum {
    PGK_ERR_UNKNOWN_COMMAND = 0,
    PGK_ERR_BAD_ARGUMENT,
    PGK_ERR_BAD_LINE,
    PGK_ERR_LINE_TOO_LONG,
    PGK_ERR_ALREADY_PROVISIONED,
    PGK_ERR_NOT_SUPPORTED,
    PGK_ERR_STORAGE,
    PGK_ERR_POWERED_OFF
} pgk_err_code;

/* The messages of ERR lines; pgk_wire.c holds their text, paygkit's word for word. */
typedef enum {
    PGK_MSG_BAD_LINE = 0,
    PGK_MSG_TOO_LONG,
    PGK_MSG_UNKNOWN_COMMAND, /* word: the command word */
    PGK_MSG_NO_ARGUMENTS,
    PGK_MSG_NOT_SIMULATOR,
    PGK_MSG_WORD_WITHOUT_EQUALS,
    PGK_MSG_UNKNOWN_ARGUMENT, /* word: the argument name, lower case */
    PGK_MSG_GIVEN_TWICE,      /* argument: which */
    PGK_MSG_NEEDS_VALUE,      /* argument: which */
    PGK_MSG_MISSING,          /* number: bit i set = SETUP argument i missing */
    PGK_MSG_CODE,
    PGK_MSG_TEST,
    PGK_MSG_SERIAL_EMPTY,
    PGK_MSG_SERIAL_LONG, /* number: its length */
    PGK_MSG_SERIAL_BAD,
    PGK_MSG_KEY_LENGTH, /* number: its length */
    PGK_MSG_KEY_CHARS,
    PGK_MSG_NUMBER, /* argument: which (divider, count, keypad_timeout, or the RTC) */
    PGK_MSG_FLAG,   /* argument: which */
    PGK_MSG_DURATION_FORM, /* argument: 0 ADVANCE, 1 CLOCK */
    PGK_MSG_DURATION_MAX,  /* argument: 0 ADVANCE, 1 CLOCK */
    PGK_MSG_REFERENCE_FIELDS, /* number: 1 when the line was "#" alone */
    PGK_MSG_REFERENCE_CODE,
    PGK_MSG_KEYS_EMPTY,
    PGK_MSG_KEYS_BAD,
    PGK_MSG_TOKEN_EMPTY,
    PGK_MSG_ADVANCE_EMPTY,
    PGK_MSG_POWER_ARGUMENT,
    PGK_MSG_TAMPER_ARGUMENT,
    /* Not the parser's: the interpreter's, about the device. */
    PGK_MSG_POWERED_OFF,
    PGK_MSG_ALREADY_PROVISIONED, /* word: the stored serial */
    PGK_MSG_RTC_PAST_2100,
    PGK_MSG_RTC_RANGE,
    PGK_MSG_NOT_KEPT,
    PGK_MSG_STORAGE, /* number: the pgk_storage_result */
    PGK_MSG_TEST_CODE_KEYS, /* number: 1 for a restricted keypad */
    PGK_MSG_INTERNAL
} pgk_message;

/* Argument names, in the order SETUP then CONFIG take them (the order of
 * paygkit's allowed tuples, which its messages list). */
typedef enum {
    PGK_ARG_SERIAL = 0,
    PGK_ARG_CODE,
    PGK_ARG_KEY,
    PGK_ARG_DIVIDER,
    PGK_ARG_RESTRICTED,
    PGK_ARG_TEST,
    PGK_ARG_COUNT,
    PGK_ARG_WAITING,
    PGK_ARG_TAMPER,
    PGK_ARG_KEYPAD_TIMEOUT,
    PGK_ARG_RTC /* "the RTC time" of CLOCK <time>: only in PGK_MSG_NUMBER */
} pgk_argument;

/* CONFIG: which settings a line gives */
#define PGK_CONFIG_WAITING 0x01u
#define PGK_CONFIG_TAMPER 0x02u
#define PGK_CONFIG_KEYPAD_TIMEOUT 0x04u

/* CLOCK forms */
#define PGK_CLOCK_SHOW 0u
#define PGK_CLOCK_SET 1u
#define PGK_CLOCK_FORWARD 2u
#define PGK_CLOCK_BACK 3u

/* POWER forms */
#define PGK_POWER_SHOW 0u
#define PGK_POWER_ON 1u
#define PGK_POWER_OFF 2u

/* What an ERR line says: code, message and the message's variable part. */
typedef struct {
    uint8_t code;     /* a pgk_err_code */
    uint8_t message;  /* a pgk_message */
    uint8_t command;  /* the pgk_command_kind it is about */
    uint8_t argument; /* a pgk_argument, or the duration's owner */
    uint8_t word_length;
    const char *word; /* points into the line (or the device's state) */
    uint32_t number;
} pgk_error;

/* A parsed command line.  Pointers point into the line given to
 * pgk_wire_parse, which must stay unchanged while the command is used. */
typedef struct {
    uint8_t kind; /* a pgk_command_kind */
    /* SETUP: 1 reference form; CLOCK: PGK_CLOCK_*; POWER: PGK_POWER_*; CONFIG: mask;
     * TOKEN: 1 when the text is digits grouped by single spaces or dashes
     * (token.typed_digits), which the device gets as the digits alone. */
    uint8_t form;
    union {
        /* What pgk_firmware_provision() takes, as it takes it (test_code
         * NULL: none); the parser only reads text into it. */
        pgk_provisioning setup;
        struct {
            /* KEYS: the keys, spaces removed; TOKEN: the text with runs of
             * spaces made single, as paygkit's firmware gets it. */
            const char *text;
            uint16_t length;
        } keys;
        uint32_t seconds; /* ADVANCE: the duration; CLOCK: the time or the change */
        struct {
            uint8_t waiting;
            uint8_t tamper_lock;
            uint16_t keypad_timeout;
        } config;
        pgk_error error;
    } u;
} pgk_command;

/* Parse one line (without its line end) as paygkit's CommandInterpreter
 * does, up to the point where it would ask the device.  The line is changed
 * in place (tabs, KEYS and TOKEN text).  `simulator` 0 refuses the simulator
 * commands with NOT_SUPPORTED before reading their arguments, as paygkit
 * does for a device without simulator controls; a build without
 * PGK_WITH_SIM_CONTROLS always does (their parsing is left out). */
pgk_command_kind pgk_wire_parse(char *line, uint16_t length, uint8_t simulator,
                                pgk_command *command);

/* ---- answer lines ---------------------------------------------------------- */

struct pgk_out;
/* Sends out->buffer[0 .. out->length) and sets out->length to 0. */
typedef void (*pgk_flush_function)(struct pgk_out *out);

/* Only display texts are quoted: without them a text is always "" and
 * nothing is written inside the quotes, so no quoting state is kept. */
#define PGK_WIRE_QUOTES PGK_PROTOCOL_TEXTS

typedef struct pgk_out {
    char *buffer;
    pgk_flush_function flush;
    uint16_t size; /* at least 1 */
    uint16_t length;
#if PGK_WIRE_QUOTES
    /* Set while a quoted text is written: '"' and '\' are escaped, anything
     * outside printable ASCII becomes '?' (wire.quote). */
    uint8_t quoting;
#endif
} pgk_out;

void pgk_out_char(pgk_out *out, char c);
void pgk_out_mem(pgk_out *out, const char *text, size_t length);
void pgk_out_str(pgk_out *out, const char *text);
void pgk_out_number(pgk_out *out, uint64_t value);
/* A field " name=" (the value follows). */
void pgk_out_field(pgk_out *out, const char *name);
void pgk_out_number_field(pgk_out *out, const char *name, uint64_t value);
/* "-" for an empty word (wire.OPTIONAL_WORD). */
void pgk_out_word_field(pgk_out *out, const char *name, const char *word, size_t length);
void pgk_out_flag_field(pgk_out *out, const char *name, uint8_t value);
void pgk_out_on_off_field(pgk_out *out, const char *name, uint8_t value);
/* ` text="` ... write the text with pgk_out_* ... pgk_out_text_end(): `"`. */
void pgk_out_text_begin(pgk_out *out);
void pgk_out_text_end(pgk_out *out);
/* Ends the line: "\r\n" when crlf, else "\n"; then flushes. */
void pgk_out_end_line(pgk_out *out, uint8_t crlf);

#if PGK_PROTOCOL_MESSAGES
/* Text with every run of 16 or more hex digits holding a letter replaced by
 * "<hidden>" (paygkit.token.hide_keys). */
void pgk_out_hiding_keys(pgk_out *out, const char *text, size_t length);
#endif

/* A line of two words: "OK <COMMAND>" (the command word of a kind), "HELP
 * <COMMAND>" (HELP's lines without the messages) or "ERR <CODE>" (a whole
 * ERR line without them); no line end. */
/* Each is its first word's place in pgk_wire.c's "OK \0HELP \0ERR ". */
#define PGK_WORD_OK 0u
#define PGK_WORD_HELP 4u
#define PGK_WORD_ERR 10u
void pgk_wire_word(pgk_out *out, uint8_t line, uint8_t index);

static inline void pgk_wire_ok(pgk_out *out, uint8_t kind)
{
    pgk_wire_word(out, PGK_WORD_OK, kind);
}

/* The whole ERR line without its line end (only "ERR <CODE>" without
 * PGK_PROTOCOL_MESSAGES: then inline, a call saved at each use). */
#if PGK_PROTOCOL_MESSAGES
void pgk_wire_error(pgk_out *out, const pgk_error *error);
#else
static inline void pgk_wire_error(pgk_out *out, const pgk_error *error)
{
    pgk_wire_word(out, PGK_WORD_ERR, error->code);
}
#endif
/* The command word of a kind ("SETUP"), or "" for BLANK and ERROR. */
const char *pgk_wire_command_name(uint8_t kind);

#if PGK_PROTOCOL_MESSAGES
/* Numbered HELP lines, 0 .. PGK_WIRE_HELP_LINES-1; without "HELP " and line end. */
#define PGK_WIRE_HELP_LINES 14u
const char *pgk_wire_help_line(uint8_t index);
#endif

/* ---- typed answer lines (wire.py's dataclasses); no line end, no text ------ */

/* seconds_left of PAYG disabled (the status's -1): written "unlimited". */
#define PGK_WIRE_UNLIMITED UINT64_MAX

/* STATUS: every field of section 4.2.  The device's status as
 * pgk_firmware_status() fills it (its times written as unsigned, which
 * they are on a device), and what that leaves to read from the device. */
typedef struct {
    pgk_firmware_status_info info;
    const char *serial; /* length 0: "-" */
    /* The used counts as pgk_state keeps them: bit i of used_bits is count
     * used_top - i (i <= PGK_WINDOW_UNORDERED); written ascending. */
    uint32_t used_top;
    uint32_t used_bits;
    const char *typing;
    uint8_t serial_length;
    uint8_t typing_length;
} pgk_wire_status;

/* Some of its fields: bit i of mask is the i-th of section 4.2 (the OK
 * line of KEYS shows typing= as STATUS does). */
#define PGK_STATUS_FIELD_TYPING (1u << 13)
void pgk_wire_status_fields(pgk_out *out, const pgk_wire_status *status, uint16_t mask);

/* Inline: a caller that writes whole STATUS lines and some of their fields
 * links one function for both. */
static inline void pgk_wire_status_line(pgk_out *out, const pgk_wire_status *status)
{
    pgk_out_str(out, "STATUS");
    pgk_wire_status_fields(out, status, 0xFFFFu);
}

/* RESULT fields present (in the order written) */
#define PGK_RESULT_TYPE 0x001u
#define PGK_RESULT_UNITS 0x002u
#define PGK_RESULT_COUNT 0x004u
#define PGK_RESULT_PAYG 0x008u
#define PGK_RESULT_TEST 0x010u
#define PGK_RESULT_ACTIVE 0x020u
#define PGK_RESULT_ACTIVE_UNTIL 0x040u
#define PGK_RESULT_SECONDS_LEFT 0x080u
#define PGK_RESULT_WAIT 0x100u
#define PGK_RESULT_INVALID 0x200u

/* RESULT: what became of the token (outcome.kind is the outcome, in
 * pgk_outcome_kind's order; its token_type, units, count and
 * wait_seconds are the type=, units=, count= and wait= fields), and the
 * device's status after it (payg=, test=, active=, active_until=,
 * seconds_left=, invalid=). */
typedef struct {
    pgk_firmware_status_info info;
    pgk_outcome outcome;
    uint16_t fields; /* PGK_RESULT_* */
} pgk_wire_result;

/* "RESULT <OUTCOME> fields..." without the text, which the caller writes
 * between pgk_out_text_begin and pgk_out_text_end. */
void pgk_wire_result_line(pgk_out *out, const pgk_wire_result *result);

/* "EVENT <kind> led=<red|green|none> blinks=<n>" (led: 0 none, 1 red, 2 green); text follows. */
void pgk_wire_event_line(pgk_out *out, uint8_t kind, uint8_t led, uint8_t blinks);

/* "HELLO protocol=1 model= firmware= simulator= power= [provisioned=]" (provisioned 2: left out). */
void pgk_wire_hello_line(pgk_out *out, const char *model, const char *firmware, uint8_t simulator,
                         uint8_t power, uint8_t provisioned);

/* Digit i (from 0) of bytes holding two each, the first in the high nibble,
 * in upper-case hex: how SK: shows the key and SETUP a test code. */
char pgk_wire_hex_digit(const uint8_t *bytes, unsigned i);

/* "SN:serial", "SC:<9 digits>", "SK:<HEX>": three lines, each ended; the
 * starting code and key as the state holds them. */
void pgk_wire_read_back(pgk_out *out, const char *serial, uint8_t serial_length,
                        const pgk_state *state, uint8_t crlf);

/* "SETUP divider= restricted= test= count=", read from the state as stored. */
void pgk_wire_setup_line(pgk_out *out, const pgk_state *state);

/* "CLOCK rtc= ticks=" */
void pgk_wire_clock_line(pgk_out *out, uint64_t rtc, uint64_t ticks);

/* "CONFIG waiting= tamper= keypad_timeout=" */
void pgk_wire_config_line(pgk_out *out, uint8_t waiting, uint8_t tamper_lock, uint16_t timeout);

/* "POWER on|off" */
void pgk_wire_power_line(pgk_out *out, uint8_t on);

#endif /* PGK_WIRE_H */

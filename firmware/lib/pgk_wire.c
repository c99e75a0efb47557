/* The device protocol's grammar: see pgk_wire.h.  Every check below runs in
 * the order paygkit's commands.py and interpreter.py run theirs, because the
 * first failing check picks the ERR line a host sees (without the messages,
 * where all of them give one line, the values of SETUP and CONFIG are
 * checked as they are read). */
#include "pgk_wire.h"

#include "pgk_compiler.h"

#include <stddef.h>

/* ---- lines ------------------------------------------------------------------ */

pgk_line_event pgk_line_feed(pgk_line_splitter *s, uint8_t byte)
{
    if (byte == '\n' || byte == '\r') {
        return s->length > PGK_WIRE_LINE_MAX ? PGK_LINE_TOO_LONG : PGK_LINE_READY;
    }
    if (s->length > PGK_WIRE_LINE_MAX) {
        return PGK_LINE_PENDING;
    }
    if (byte == 0x08 || byte == 0x7f) {
        if (s->length) {
            s->length--;
        }
        return PGK_LINE_PENDING;
    }
    /* One byte past the limit, paygkit sees it passed and drops the line:
     * the length past the limit says so until the line's end. */
    if (s->length < PGK_WIRE_LINE_MAX) {
        s->line[s->length] = (char)byte;
    }
    s->length++;
    return PGK_LINE_PENDING;
}

/* ---- small text helpers -------------------------------------------------------- */

#if PGK_WITH_SIM_CONTROLS || PGK_PROTOCOL_MESSAGES
static char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
}
#endif

static uint8_t is_digit(char c)
{
    return (uint8_t)(c - '0') < 10u;
}

#if PGK_PROTOCOL_MESSAGES
static uint8_t is_letter(char c)
{
    return (uint8_t)((c | 0x20) - 'a') < 26u;
}
#endif

static int hex_value(char c)
{
    if (is_digit(c)) {
        return c - '0';
    }
    c = (char)(c | 0x20);
    return (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
}

/* memset's uses without the C library: newlib's is unrolled for speed (about
 * 170 bytes on a Cortex-M0) and links only if called.  The volatile store
 * keeps GCC from turning the loop back into a call. */
static void zero(void *to, size_t length)
{
    uint8_t *out = to;
    while (length--) {
        *(volatile uint8_t *)out++ = 0;
    }
}

#if PGK_PROTOCOL_MESSAGES || PGK_WITH_SIM_CONTROLS
/* memchr's uses without the C library. */
static const char *find(const char *text, size_t length, char c)
{
    for (; length; length--, text++) {
        if (*text == c) {
            return text;
        }
    }
    return NULL;
}
#endif

/* The string after the next NUL (a loop GCC does not turn back into strlen). */
static const char *next_string(const char *text)
{
    while (*text++) {
    }
    return text;
}

/* The n-th NUL-separated string of a table. */
static const char *nth(const char *table, unsigned n)
{
    while (n) {
        if (*table++ == 0) {
            n--;
        }
    }
    return table;
}

/* Which word of a NUL-separated table (ended by an empty one) `text` is,
 * ignoring case, or -1.  Table words hold letters, digits and '_' (and
 * spaces, which no word of a line holds), a line no control character:
 * setting bit 5 on both sides then folds case and nothing else. */
static int lookup(const char *table, const char *text, size_t length)
{
    int index = 0;
    for (; *table; index++) {
        size_t i = 0;
        while (i < length && *table && (*table | 0x20) == (text[i] | 0x20)) {
            i++;
            table++;
        }
        if (i == length && *table == 0) {
            return index;
        }
        table = next_string(table);
    }
    return -1;
}

/* read_digits()'s answer for a span that is not 1..max digits: above every
 * number it gives, so no range checked here holds it. */
#define NOT_DIGITS 0xffffffffu

/* The number of a span of 1..max digits, saturating below NOT_DIGITS (every
 * range checked here is below the saturation), or NOT_DIGITS.  Out of line:
 * inlined in read_value(), GCC made a second copy of its switch for the
 * spans refused (with a table and libgcc's __gnu_thumb1_case_sqi, 20 bytes
 * more). */
NOINLINE static uint32_t read_digits(const char *text, size_t length, size_t max)
{
    uint32_t number = 0;
    if (length - 1 >= max) { /* a length of 0 wraps round: refused too */
        return NOT_DIGITS;
    }
    while (length--) {
        char c = *text++;
        if (!is_digit(c)) {
            return NOT_DIGITS;
        }
        number = number > 429496728u ? NOT_DIGITS - 1u : number * 10u + (uint32_t)(c - '0');
    }
    return number;
}

/* ---- command words ------------------------------------------------------------- */

/* BLANK and ERROR have no word; the table ends with an empty word for lookup(). */
static const char command_names[] =
    "\0\0HELLO\0HELP\0SETUP\0KEYS\0TOKEN\0STATUS\0ADVANCE\0CLOCK\0CONFIG\0POWER\0RESET\0WIPE\0QUIT\0";

const char *pgk_wire_command_name(uint8_t kind)
{
    return nth(command_names, kind);
}

/* The argument names (pgk_argument's order; the simulator's only where a
 * line can show or take them), then the other names of answer fields: one
 * pool, so that a name in both, or in several lines, is stored once. */
static const char name_pool[] = "serial\0code\0key\0divider\0restricted\0test\0count\0"
#if PGK_WITH_SIM_CONTROLS
                            "waiting\0tamper\0keypad_timeout\0the RTC time\0"
#endif
                            "provisioned\0now\0active\0payg\0seconds_left\0active_until\0"
                            "used\0invalid\0blocked\0tamper\0typing\0type\0units\0wait\0";

/* Indexes in name_pool of the answer fields' names that are not arguments. */
enum {
    NAME_PROVISIONED = PGK_WITH_SIM_CONTROLS ? PGK_ARG_RTC + 1 : PGK_ARG_COUNT + 1,
    NAME_NOW,
    NAME_ACTIVE,
    NAME_PAYG,
    NAME_SECONDS_LEFT,
    NAME_ACTIVE_UNTIL,
    NAME_USED,
    NAME_INVALID,
    NAME_BLOCKED,
    NAME_TAMPER,
    NAME_TYPING,
    NAME_TYPE,
    NAME_UNITS,
    NAME_WAIT
};

#define SETUP_ARGUMENTS 7u
#define CONFIG_ARGUMENTS 3u

/* ---- errors -------------------------------------------------------------------- */

/* An ERR line's variable part (the word, number or argument its message
 * shows): without PGK_PROTOCOL_MESSAGES no line shows one, so none is kept. */
#if PGK_PROTOCOL_MESSAGES
#define ERROR_DETAIL(command, field, value) ((command)->u.error.field = (value))
#else
#define ERROR_DETAIL(command, field, value) ((void)(command), (void)(value))
#endif

/* Out of line: every refusal is then a call of a few bytes. */
NOINLINE static pgk_command_kind refuse(pgk_command *command, uint8_t code, uint8_t message)
{
    pgk_error *error = &command->u.error;
#if PGK_PROTOCOL_MESSAGES
    uint8_t kind = command->kind;
    zero(error, sizeof *error);
    ERROR_DETAIL(command, message, message);
    ERROR_DETAIL(command, command, kind);
#else
    /* Without the messages an ERR line shows only the code: nothing else is read. */
    (void)message;
#endif
    error->code = code;
    command->kind = PGK_CMD_ERROR;
    return PGK_CMD_ERROR;
}

#if PGK_PROTOCOL_MESSAGES
static INLINE pgk_command_kind bad(pgk_command *command, uint8_t message)
{
    return refuse(command, PGK_ERR_BAD_ARGUMENT, message);
}
#else
/* Every refusal of an argument is the same line without the messages: one
 * call of one argument each (GCC drops the unused one). */
NOINLINE static pgk_command_kind bad(pgk_command *command, uint8_t message)
{
    (void)message;
    return refuse(command, PGK_ERR_BAD_ARGUMENT, 0);
}
#endif

static pgk_command_kind bad_argument(pgk_command *command, uint8_t message, uint8_t argument)
{
    bad(command, message);
    ERROR_DETAIL(command, argument, argument);
    return PGK_CMD_ERROR;
}

/* ---- arguments ------------------------------------------------------------------ */

/* commands.read_number's range check (low..high) of what read_digits() gave:
 * NOT_DIGITS is out of every range. */
static uint8_t in_range(pgk_command *command, uint32_t number, uint32_t low, uint32_t high,
                        uint8_t argument)
{
    if (number < low || number > high) {
        bad_argument(command, PGK_MSG_NUMBER, argument);
        return 0;
    }
    return 1;
}

#if PGK_WITH_SIM_CONTROLS
/* commands.read_number: 1-12 digits, low..high. */
static uint8_t read_number(pgk_command *command, const char *text, uint8_t length, uint32_t low,
                           uint32_t high, uint8_t argument, uint32_t *result)
{
    *result = read_digits(text, length, 12);
    return in_range(command, *result, low, high, argument);
}
#endif

/* commands.read_flag: 1/on/yes/true or 0/off/no/false, any case. */
static uint8_t read_flag(pgk_command *command, const char *text, uint8_t length, uint8_t argument,
                         uint8_t *result)
{
    int i = lookup("0\0off\0no\0false\0" "1\0on\0yes\0true\0", text, length);
    if (i < 0) {
        bad_argument(command, PGK_MSG_FLAG, argument);
        return 0;
    }
    *result = i >= 4;
    return 1;
}

#if PGK_WITH_SIM_CONTROLS
/* commands.read_duration: seconds, or a number with a unit s, m, h or d. */
static pgk_command_kind read_duration(pgk_command *command, const char *text, size_t length,
                                      uint8_t owner)
{
    static const char unit_letters[4] = {'s', 'm', 'h', 'd'};
    static const uint32_t units[4] = {1u, 60u, 3600u, 86400u};
    /* The most of each unit: the limit divided by it, exactly (no divider on the M0). */
    static const uint32_t most[4] = {PGK_WIRE_MAX_ADVANCE_SECONDS, 5256000u, 87600u, 3650u};
    uint32_t unit = 1;
    uint32_t limit = PGK_WIRE_MAX_ADVANCE_SECONDS;
    uint32_t number;
    if (length && !is_digit(text[length - 1])) {
        const char *at = find(unit_letters, 4, lower(text[length - 1]));
        if (at == NULL) {
            length = 0; /* refused below */
        } else {
            unit = units[at - unit_letters];
            limit = most[at - unit_letters];
            length--;
        }
    }
    number = read_digits(text, length, 12);
    if (number == NOT_DIGITS) {
        return bad_argument(command, PGK_MSG_DURATION_FORM, owner);
    }
    /* The limit is a whole number of every unit, so this is the product's test
     * without a product that could overflow. */
    if (number > limit) {
        return bad_argument(command, PGK_MSG_DURATION_MAX, owner);
    }
    command->u.seconds = number * unit;
    return (pgk_command_kind)command->kind;
}
#endif

/* serial_number.serial_problem: 1-32 of A-Z a-z 0-9 . _ : + -, alnum first. */
static uint8_t check_serial(pgk_command *command, const char *text, uint8_t length)
{
#if PGK_PROTOCOL_MESSAGES
    unsigned i;
    if (length == 0) {
        bad(command, PGK_MSG_SERIAL_EMPTY);
        return 0;
    }
    if (length > 32) {
        bad(command, PGK_MSG_SERIAL_LONG);
        ERROR_DETAIL(command, number, length);
        return 0;
    }
    for (i = 0; i < length; i++) {
        char c = text[i];
        if (!is_digit(c) && !is_letter(c) && (i == 0 || find("._:+-", 5, c) == NULL)) {
            bad(command, PGK_MSG_SERIAL_BAD);
            return 0;
        }
    }
#else
    /* Its three refusals are one ERR line without the messages: the device's
     * own check (the same rule) serves.  The parser then needs pgk_device.c. */
    if (!pgk_serial_ok(text, length)) {
        bad(command, PGK_MSG_SERIAL_BAD);
        return 0;
    }
#endif
    command->u.setup.serial = text;
    command->u.setup.serial_length = length;
    return 1;
}

/* paygkit.token.parse_key: exactly 32 hex digits. */
static uint8_t read_key(pgk_command *command, const char *text, uint8_t length)
{
    unsigned i;
    if (length != 32) {
        bad(command, PGK_MSG_KEY_LENGTH);
        ERROR_DETAIL(command, number, length);
        return 0;
    }
    for (i = 0; i < 32; i++) {
        int value = hex_value(text[i]);
        if (value < 0) {
            bad(command, PGK_MSG_KEY_CHARS);
            return 0;
        }
        command->u.setup.key[i / 2] = (uint8_t)(command->u.setup.key[i / 2] << 4 | value);
    }
    return 1;
}

/* One value of SETUP, the reference form or CONFIG, checked as paygkit
 * checks it, into the command; 0 after the ERR line is set.  A setup's
 * defaults are set before (divider and count 1, the rest zero). */
static uint8_t read_value(pgk_command *command, uint8_t argument, const char *text, uint8_t length,
                          uint8_t reference)
{
    /* The most digits of each argument that is a number, 0 for the others:
     * the digits are read once, here, for all. */
    static const uint8_t most_digits[PGK_ARG_KEYPAD_TIMEOUT + 1] = {
        [PGK_ARG_CODE] = 9,  [PGK_ARG_DIVIDER] = 12,        [PGK_ARG_TEST] = 20,
        [PGK_ARG_COUNT] = 12, [PGK_ARG_KEYPAD_TIMEOUT] = 12};
    pgk_provisioning *setup = &command->u.setup;
    uint32_t number = read_digits(text, length, most_digits[argument]);
    switch (argument) {
    case PGK_ARG_SERIAL:
        return check_serial(command, text, length);
    case PGK_ARG_CODE:
        /* The reference form's code has all 9 digits. */
        if ((reference && length != 9) || number == NOT_DIGITS) {
            bad(command, reference ? PGK_MSG_REFERENCE_CODE : PGK_MSG_CODE);
            return 0;
        }
        setup->starting_code = number;
        return 1;
    case PGK_ARG_KEY:
        return read_key(command, text, length);
    case PGK_ARG_DIVIDER:
        if (!in_range(command, number, 1, 255, argument)) {
            return 0;
        }
        setup->time_divider = (uint8_t)number;
        return 1;
    case PGK_ARG_RESTRICTED:
        return read_flag(command, text, length, argument, &setup->restricted_digits);
    case PGK_ARG_TEST:
        if (number == NOT_DIGITS) {
            bad(command, PGK_MSG_TEST);
            return 0;
        }
        setup->test_code = text;
        setup->test_code_length = length;
        return 1;
    case PGK_ARG_COUNT:
        if (!in_range(command, number, 0, PGK_WIRE_MAX_COUNT, argument)) {
            return 0;
        }
        setup->count = number;
        return 1;
#if PGK_WITH_SIM_CONTROLS
    case PGK_ARG_WAITING:
        return read_flag(command, text, length, argument, &command->u.config.waiting);
    case PGK_ARG_TAMPER:
        number = (uint32_t)lookup("report\0lock\0", text, length);
        if (number > 1) {
            bad(command, PGK_MSG_TAMPER_ARGUMENT);
            return 0;
        }
        command->u.config.tamper_lock = (uint8_t)number;
        return 1;
    default: /* PGK_ARG_KEYPAD_TIMEOUT */
        if (!in_range(command, number, 1, PGK_WIRE_MAX_KEYPAD_TIMEOUT, argument)) {
            return 0;
        }
        command->u.config.keypad_timeout = (uint16_t)number;
        return 1;
#else
    default:
        return 1;
#endif
    }
}

typedef struct {
    const char *text; /* NULL: not given */
    uint8_t length;
} span;

#if PGK_PROTOCOL_MESSAGES
/* take() keeps a value read (values[i]: argument first + i) for
 * read_values() to check later: paygkit reads every argument before it
 * checks a value, and checks them in an order of its own, which the messages
 * show.  VALUES(n) declares a line's values, none given. */
#define VALUES(n)                                                                                \
    span values[n];                                                                              \
    zero(values, sizeof values)
static uint8_t take(pgk_command *command, span *values, uint8_t i, uint8_t argument,
                    const char *text, uint8_t length, uint8_t reference)
{
    (void)command;
    (void)argument;
    (void)reference;
    values[i].text = text;
    values[i].length = length;
    return 1;
}

/* The values given of the arguments in `order` (each argument + 1). */
static uint8_t read_values(pgk_command *command, const span *values, uint8_t first,
                           const char *order, uint8_t reference)
{
    for (; *order; order++) {
        uint8_t argument = (uint8_t)(*order - 1);
        const span *value = &values[argument - first];
        if (value->text &&
            !read_value(command, argument, value->text, value->length, reference)) {
            return 0;
        }
    }
    return 1;
}
#else
/* Without the messages every refusal of a SETUP or CONFIG line is the same
 * ERR line, so the order of the checks does not show: each value is checked
 * as soon as it is read, and none is kept. */
#define VALUES(n) span *const values = NULL
static uint8_t take(pgk_command *command, span *values, uint8_t i, uint8_t argument,
                    const char *text, uint8_t length, uint8_t reference)
{
    (void)values;
    (void)i;
    return read_value(command, argument, text, length, reference);
}
#define read_values(command, values, first, order, reference) ((void)(values), 1)
#endif

/* commands.read_arguments: the name=value words from `at` (a word's start)
 * to `end` (a word's end) of the arguments first..first+n-1.  The arguments
 * given (bit i: first + i), or -1 after the ERR line is set. */
static int read_arguments(pgk_command *command, const char *at, const char *end, uint8_t first,
                          uint8_t n, span *values)
{
    /* SETUP's names begin the pool: found without a call (a build without
     * CONFIG then calls no nth() here at all). */
    const char *names = first == PGK_ARG_SERIAL ? name_pool : nth(name_pool, first);
    unsigned given = 0;
    while (at < end) {
        const char *word = at;
        const char *equals = NULL;
        int i;
        for (; at < end && *at != ' '; at++) {
            if (*at == '=' && equals == NULL) {
                equals = at;
            }
        }
        if (equals == NULL || equals == word) {
            bad(command, PGK_MSG_WORD_WITHOUT_EQUALS);
            return -1;
        }
        i = lookup(names, word, (size_t)(equals - word));
        if (i < 0 || i >= n) {
            bad(command, PGK_MSG_UNKNOWN_ARGUMENT);
            ERROR_DETAIL(command, word, word);
            ERROR_DETAIL(command, word_length, (uint8_t)(equals - word));
            return -1;
        }
        if (given >> i & 1u) {
            bad_argument(command, PGK_MSG_GIVEN_TWICE, (uint8_t)(first + i));
            return -1;
        }
        given |= 1u << i;
#if PGK_PROTOCOL_MESSAGES
        /* Without the messages no check of its own: every argument's check
         * refuses an empty value, with the same line. */
        if (equals + 1 == at) {
            bad_argument(command, PGK_MSG_NEEDS_VALUE, (uint8_t)(first + i));
            return -1;
        }
#endif
        if (!take(command, values, i, (uint8_t)(first + i), equals + 1,
                  (uint8_t)(at - equals - 1), 0)) {
            return -1;
        }
        while (at < end && *at == ' ') {
            at++;
        }
    }
    return (int)given;
}

/* Every setup starts from the defaults (divider 1, count 1, the rest zero). */
static void setup_defaults(pgk_command *command)
{
    command->u.setup.time_divider = 1;
    command->u.setup.count = 1;
}

/* SetupCommand.parse_reference: #serial;code;key. */
static pgk_command_kind parse_reference(pgk_command *command, const char *line, const char *end)
{
    VALUES(SETUP_ARGUMENTS);
    unsigned n = 0;
    const char *start = line + 1;
    const char *p;
    command->kind = PGK_CMD_SETUP;
    command->form = 1;
    setup_defaults(command);
    for (;; n++) {
        for (p = start; p < end && *p != ';'; p++) {
        }
        /* Fields 0, 1 and 2 are the arguments serial, code and key. */
        if (n < 3 &&
            !take(command, values, (uint8_t)n, (uint8_t)n, start, (uint8_t)(p - start), 1)) {
            return PGK_CMD_ERROR;
        }
        if (p == end) {
            break;
        }
        start = p + 1;
    }
    n++;
    if (n != 3) {
        bad(command, PGK_MSG_REFERENCE_FIELDS);
        ERROR_DETAIL(command, number, end - line == 1);
        return PGK_CMD_ERROR;
    }
    /* parse_reference's order: code, serial, key. */
    if (!read_values(command, values, PGK_ARG_SERIAL, "\2\1\3", 1)) {
        return PGK_CMD_ERROR;
    }
    return PGK_CMD_SETUP;
}

/* SetupCommand.parse: SETUP serial= code= key= [divider=] [restricted=] [test=] [count=]. */
static pgk_command_kind parse_setup(pgk_command *command, const char *at, const char *end)
{
    VALUES(SETUP_ARGUMENTS);
    int given;
    uint8_t missing;
    setup_defaults(command);
    given = read_arguments(command, at, end, PGK_ARG_SERIAL, SETUP_ARGUMENTS, values);
    if (given < 0) {
        return PGK_CMD_ERROR;
    }
    /* serial, code and key are required. */
    missing = (uint8_t)(~given & 7);
    if (missing) {
        bad(command, PGK_MSG_MISSING);
        ERROR_DETAIL(command, number, missing);
        return PGK_CMD_ERROR;
    }
    /* SetupCommand.parse's order: code, test, serial, key, divider, restricted, count. */
    if (!read_values(command, values, PGK_ARG_SERIAL, "\2\6\1\3\4\5\7", 0)) {
        return PGK_CMD_ERROR;
    }
    return PGK_CMD_SETUP;
}

#if PGK_WITH_SIM_CONTROLS
static pgk_command_kind parse_config(pgk_command *command, const char *at, const char *end)
{
    VALUES(CONFIG_ARGUMENTS);
    int given;
    command->u.config.keypad_timeout = 30;
    given = read_arguments(command, at, end, PGK_ARG_WAITING, CONFIG_ARGUMENTS, values);
    if (given < 0) {
        return PGK_CMD_ERROR;
    }
    command->form = (uint8_t)given;
    if (!read_values(command, values, PGK_ARG_WAITING, "\10\11\12", 0)) {
        return PGK_CMD_ERROR;
    }
    return PGK_CMD_CONFIG;
}
#endif

/* ---- command lines ---------------------------------------------------------------- */

/* Out of line even with -flto: inlined in pgk_protocol_receive(), the
 * whole was 48 bytes larger. */
NOINLINE pgk_command_kind pgk_wire_parse(char *line, uint16_t length, uint8_t simulator,
                                pgk_command *command)
{
    char *end = line + length;
    char *rest;
    char *p;
    int kind;
    zero(command, sizeof *command);
    /* One pass for paygkit's replace("\t", " ").strip(): the text without the
     * spaces around it runs from `rest` (NULL: a blank line) to `end`. */
    rest = NULL;
    for (p = line; p < line + length; p++) {
        if (*p == '\t') {
            *p = ' ';
        } else if ((uint8_t)(*p - 0x20) > 0x7e - 0x20) {
            return refuse(command, PGK_ERR_BAD_LINE, PGK_MSG_BAD_LINE);
        }
        if (*p != ' ') {
            if (rest == NULL) {
                rest = p;
            }
            end = p + 1;
        }
    }
    if (rest == NULL) {
        return PGK_CMD_BLANK;
    }
    line = rest;
    if (end - line > (long)PGK_WIRE_LINE_MAX) {
        return refuse(command, PGK_ERR_LINE_TOO_LONG, PGK_MSG_TOO_LONG);
    }
    if (*line == '#') {
        return parse_reference(command, line, end);
    }
    for (rest = line; rest < end && *rest != ' '; rest++) {
    }
    /* Not found: -1 + 2 is PGK_CMD_ERROR. */
    kind = lookup(command_names + 2, line, (size_t)(rest - line)) + 2;
    if (kind == PGK_CMD_ERROR) {
        refuse(command, PGK_ERR_UNKNOWN_COMMAND, PGK_MSG_UNKNOWN_COMMAND);
        ERROR_DETAIL(command, word, line);
        /* Only its length up to 21 matters (quoted_word shows 1-20). */
        ERROR_DETAIL(command, word_length, (uint8_t)(rest - line > 255 ? 255 : rest - line));
        return PGK_CMD_ERROR;
    }
    command->kind = (uint8_t)kind;
    while (rest < end && *rest == ' ') {
        rest++;
    }
    /* A build without the simulator cannot take its commands whatever it is asked. */
    if ((!simulator || !PGK_WITH_SIM_CONTROLS) && kind >= PGK_CMD_FIRST_SIMULATOR &&
        kind != PGK_CMD_QUIT) {
        return refuse(command, PGK_ERR_NOT_SUPPORTED, PGK_MSG_NOT_SIMULATOR);
    }
    switch (kind) {
    case PGK_CMD_SETUP:
        return parse_setup(command, rest, end);
    case PGK_CMD_KEYS:
    case PGK_CMD_TOKEN: {
        /* KEYS drops every space, TOKEN keeps one between groups.  TOKEN's
         * form says whether it is digits grouped by single spaces or dashes
         * (token.typed_digits), which the device gets without them. */
        char *out = rest;
        uint8_t grouped = 1;
        /* The last character kept: the command word's space before the first. */
        char last = ' ';
        for (p = rest; p < end; p++) {
            char c = *p;
            if (c == ' ' && (kind == PGK_CMD_KEYS || last == ' ')) {
                continue;
            }
            if (!is_digit(c)) {
                if (kind == PGK_CMD_KEYS && c != '*' && c != '#') {
                    return bad(command, PGK_MSG_KEYS_BAD);
                }
                /* KEYS's too, not read: one test for both costs less. */
                if (!(is_digit(last) && (c == ' ' || c == '-'))) {
                    grouped = 0;
                }
            }
            *out++ = c;
            last = c;
        }
        if (out == rest) {
            return bad(command, kind == PGK_CMD_KEYS ? PGK_MSG_KEYS_EMPTY : PGK_MSG_TOKEN_EMPTY);
        }
        command->form = grouped & is_digit(last);
        command->u.keys.text = rest;
        command->u.keys.length = (uint16_t)(out - rest);
        return (pgk_command_kind)kind;
    }
#if PGK_WITH_SIM_CONTROLS
    case PGK_CMD_ADVANCE:
        if (rest == end) {
            return bad(command, PGK_MSG_ADVANCE_EMPTY);
        }
        return read_duration(command, rest, (size_t)(end - rest), 0);
    case PGK_CMD_CLOCK:
        if (rest == end) {
            return PGK_CMD_CLOCK;
        }
        if (*rest == '+' || *rest == '-') {
            command->form = *rest == '+' ? PGK_CLOCK_FORWARD : PGK_CLOCK_BACK;
            return read_duration(command, rest + 1, (size_t)(end - rest - 1), 1);
        } else {
            command->form = PGK_CLOCK_SET;
            if (!read_number(command, rest, (uint8_t)(end - rest), 0, PGK_WIRE_MAX_RTC,
                             PGK_ARG_RTC, &command->u.seconds)) {
                return PGK_CMD_ERROR;
            }
        }
        return PGK_CMD_CLOCK;
    case PGK_CMD_CONFIG:
        return parse_config(command, rest, end);
    case PGK_CMD_POWER:
        if (rest != end) {
            int i = lookup("on\0off\0", rest, (size_t)(end - rest));
            if (i < 0) {
                return bad(command, PGK_MSG_POWER_ARGUMENT);
            }
            command->form = (uint8_t)(PGK_POWER_ON + i);
        }
        return PGK_CMD_POWER;
#endif
    default:
        /* HELLO HELP STATUS RESET WIPE QUIT */
        if (rest != end) {
            return bad(command, PGK_MSG_NO_ARGUMENTS);
        }
        return (pgk_command_kind)kind;
    }
}

/* ---- output -------------------------------------------------------------------- */

static void put(pgk_out *out, char c)
{
    if (out->length >= out->size) {
        out->flush(out);
    }
    out->buffer[out->length++] = c;
}

void pgk_out_char(pgk_out *out, char c)
{
#if PGK_WIRE_QUOTES
    if (out->quoting) {
        if ((uint8_t)c < 0x20 || (uint8_t)c > 0x7e) {
            c = '?';
        } else if (c == '"' || c == '\\') {
            put(out, '\\');
        }
    }
#endif
    put(out, c);
}

void pgk_out_mem(pgk_out *out, const char *text, size_t length)
{
    while (length--) {
        pgk_out_char(out, *text++);
    }
}

void pgk_out_str(pgk_out *out, const char *text)
{
    while (*text) {
        pgk_out_char(out, *text++);
    }
}

/* `value` in decimal, with leading zeros up to `width` digits.  The width
 * comes before the value: the 64-bit value then takes r2 and r3 and no
 * argument goes on the stack. */
static void number(pgk_out *out, unsigned width, uint64_t value)
{
    /* Long division by 10 a byte at a time with a multiply for the quotient:
     * no 64-bit division helper, which would cost more than this whole
     * function.  The bytes are the value's own (little-endian, as
     * pgk_storage.h requires of the target): no copy routine. */
    union {
        uint64_t value;
        uint8_t bytes[8];
    } wide;
    uint8_t *bytes = wide.bytes;
    /* Filled from its end, lowest digit first: then written in one call. */
    char digits[20];
    unsigned n = 0;
    uint8_t nonzero;
    wide.value = value;
    do {
        uint32_t rest = 0;
        unsigned i = 8;
        nonzero = 0;
        while (i--) {
            uint32_t current = rest << 8 | bytes[i];
            uint32_t quotient = (current * 0xcccdu) >> 19; /* exact below 81920 */
            rest = current - quotient * 10u;
            bytes[i] = (uint8_t)quotient;
            nonzero |= (uint8_t)quotient;
        }
        digits[sizeof digits - ++n] = (char)('0' + rest);
    } while (nonzero || n < width);
    pgk_out_mem(out, digits + sizeof digits - n, n);
}

void pgk_out_number(pgk_out *out, uint64_t value)
{
    number(out, 1, value);
}

void pgk_out_field(pgk_out *out, const char *name)
{
    put(out, ' ');
    pgk_out_str(out, name);
    put(out, '=');
}

void pgk_out_number_field(pgk_out *out, const char *name, uint64_t value)
{
    pgk_out_field(out, name);
    pgk_out_number(out, value);
}

void pgk_out_word_field(pgk_out *out, const char *name, const char *word, size_t length)
{
    pgk_out_field(out, name);
    if (length == 0) {
        put(out, '-');
    }
    pgk_out_mem(out, word, length);
}

void pgk_out_flag_field(pgk_out *out, const char *name, uint8_t value)
{
    pgk_out_field(out, name);
    put(out, value ? '1' : '0');
}

void pgk_out_on_off_field(pgk_out *out, const char *name, uint8_t value)
{
    pgk_out_field(out, name);
    pgk_out_str(out, value ? "on" : "off");
}

void pgk_out_text_begin(pgk_out *out)
{
    pgk_out_field(out, "text");
    put(out, '"');
#if PGK_WIRE_QUOTES
    out->quoting = 1;
#endif
}

void pgk_out_text_end(pgk_out *out)
{
#if PGK_WIRE_QUOTES
    out->quoting = 0;
#endif
    put(out, '"');
}

void pgk_out_end_line(pgk_out *out, uint8_t crlf)
{
    if (crlf) {
        put(out, '\r');
    }
    put(out, '\n');
    out->flush(out);
}

#if PGK_PROTOCOL_MESSAGES
void pgk_out_hiding_keys(pgk_out *out, const char *text, size_t length)
{
    size_t i = 0;
    while (i < length) {
        size_t run = i;
        uint8_t letter = 0;
        while (run < length && hex_value(text[run]) >= 0) {
            letter |= !is_digit(text[run]);
            run++;
        }
        if (run - i >= 16 && letter) {
            pgk_out_str(out, "<hidden>");
        } else {
            pgk_out_mem(out, text + i, run - i);
            if (run < length) {
                pgk_out_char(out, text[run++]);
            }
        }
        i = run;
    }
}
#endif

/* ---- answer words ---------------------------------------------------------------- */

/* Tables of their own, not literals: literals holding NULs share one
 * .rodata section, which the linker keeps whole if any of them is used.
 * RESULT outcomes (wire.OUTCOME names) in pgk_outcome_kind's order; token
 * types ADD_TIME .. COUNTER_SYNC in pgk_token.h's; EVENT kinds (FeedbackKind
 * values) in pgk_feedback_kind's. */
static const char outcome_names[] =
    "APPLIED\0ALREADY_USED\0INVALID\0BLOCKED\0TEST_CODE\0MALFORMED\0NOT_PROVISIONED\0";
static const char token_type_names[] = "ADD_TIME\0SET_TIME\0DISABLE_PAYG\0COUNTER_SYNC\0";
static const char event_names[] = "invalid\0already_used\0time_changed\0counter_synced\0"
                                  "payg_disabled\0entry_locked\0test_code\0status\0tamper\0"
                                  "key_press\0";
static const char led_names[] = "none\0red\0green\0";

#if PGK_PROTOCOL_MESSAGES
static const char help_lines[] =
    "HELLO\0"
    "HELP\0"
    "SETUP serial=<serial> code=<starting code> key=<32 hex> [divider=<1-255>] "
    "[restricted=0|1] [test=<digits>] [count=<n>]\0"
    "#<serial>;<9-digit starting code>;<32 hex key>\0"
    "KEYS <keys: * # 0-9>\0"
    "TOKEN <digits>\0"
    "STATUS\0"
    "ADVANCE <seconds | <n>s | <n>m | <n>h | <n>d>  (simulator)\0"
    "CLOCK [<rtc> | +<duration> | -<duration>]  (simulator)\0"
    "CONFIG [waiting=on|off] [tamper=lock|report] [keypad_timeout=<seconds>]  (simulator)\0"
    "POWER [ON|OFF]  (simulator)\0"
    "RESET  (simulator)\0"
    "WIPE  (simulator)\0"
    "QUIT\0";

const char *pgk_wire_help_line(uint8_t index)
{
    return nth(help_lines, index);
}
#endif

/* ---- ERR lines ------------------------------------------------------------------- */

static const char error_codes[] =
    "UNKNOWN_COMMAND\0BAD_ARGUMENT\0BAD_LINE\0LINE_TOO_LONG\0ALREADY_PROVISIONED\0"
    "NOT_SUPPORTED\0STORAGE\0"
#if PGK_WITH_SIM_CONTROLS
    "POWERED_OFF\0"
#endif
    ;

#if PGK_PROTOCOL_MESSAGES
/* Message texts; a byte below 0x10 stands for a variable part:
 * (octal escapes, as in the strings)
 *   \1 the command word        \2 ' word' if the word may be shown (commands.quoted_word)
 *   \3 the number              \4 the arguments the command takes
 *   \5 the argument's name     \6 the range of the argument
 *   \7 the duration's owner    \10 the missing arguments
 *   \11 the stored serial      \12 the reference setup usage
 *   \13 the serial rule        \14 the # hint
 *   \15 the keys of a test code
 * Shared pieces are written once this way, which keeps the table small. */
static const char messages[] =
    "the line holds a character that is not printable ASCII; send commands as plain text\0"
    "a command line is at most 256 characters\0"
    "unknown command\2; send HELP for the list of commands\0"
    "\1 takes no arguments\0"
    "\1 is a simulator command; this is a device\0"
    "\1 takes name=value arguments (\4); a word without '=' was given\0"
    "unknown argument\2 for \1; it takes \4\0"
    "\5 is given twice; give it once\0"
    "\5= needs a value\0"
    "\1 needs \10\0"
    "code must be the starting code: up to 9 digits (0-999999999)\0"
    "test must be the test code: 1 to 20 digits\0"
    "the serial number is empty; use \13\0"
    "the serial number is \3 characters long, the most a device holds is 32; use \13\0"
    "the serial number must be \13\0"
    "the key must be 32 hex characters (16 bytes), got \3 characters; "
    "copy the Key column of the device list in full\0"
    "the key must be 32 hex characters (0-9, a-f); it contains other characters\0"
    "\5 must be a whole number from \6\0"
    "\5 must be 0 or 1 (or on/off)\0"
    "\7 must be seconds or a number with a unit s, m, h or d (e.g. 90, 2h, 3d)\0"
    "\7 is at most 3650 days; move the clock in steps\0"
    "\12, with 3 fields separated by ';'\14\0"
    "\12: the starting code must be exactly 9 digits\0"
    "KEYS needs keys to press: * # 0-9\0"
    "a keypad has only the keys *, # and 0-9; nothing was pressed\0"
    "TOKEN needs the token's digits\0"
    "ADVANCE needs a duration (e.g. 90, 2h)\0"
    "POWER takes ON or OFF\0"
    "tamper must be lock or report\0"
    "the device is off; send POWER ON\0"
    "the device is already set up as \11; a set-up device keeps its key "
    "(a simulator can be wiped with WIPE)\0"
    "the simulated RTC cannot go past 4102444800 (year 2100)\0"
    "the RTC must stay between 0 and 4102444800\0"
    "the setup was not kept by the device; nothing was changed\0"
    "the device memory failed (error \3); nothing was changed\0"
    "the test code must be typed with \15 only\0"
    "the firmware failed; the command was not completed\0";

/* commands.quoted_word: the word is shown only if it is 1-20 letters and '_'. */
static void quoted_word(pgk_out *out, const char *word, uint8_t length)
{
    unsigned i;
    if (length == 0 || length > 20) {
        return;
    }
    for (i = 0; i < length; i++) {
        if (!is_letter(word[i]) && word[i] != '_') {
            return;
        }
    }
    pgk_out_str(out, " '");
    pgk_out_hiding_keys(out, word, length);
    put(out, '\'');
}

static void argument_list(pgk_out *out, uint8_t first, uint8_t n, uint8_t mask, const char *suffix)
{
    unsigned i;
    uint8_t any = 0;
    for (i = 0; i < n; i++) {
        if (mask & (1u << i)) {
            if (any) {
                pgk_out_str(out, ", ");
            }
            any = 1;
            pgk_out_str(out, nth(name_pool, (uint8_t)(first + i)));
            pgk_out_str(out, suffix);
        }
    }
}

void pgk_wire_error(pgk_out *out, const pgk_error *error)
{
    const char *text = nth(messages, error->message);
    uint8_t config = error->command == PGK_CMD_CONFIG;
    pgk_wire_word(out, PGK_WORD_ERR, error->code);
    put(out, ' ');
    for (; *text; text++) {
        switch (*text) {
        case 1:
            pgk_out_str(out, pgk_wire_command_name(error->command));
            break;
        case 2: {
            /* The name of an unknown argument is shown lower case, as paygkit
             * lowers it before quoting. */
            char word[20];
            unsigned i;
            uint8_t length = error->word_length;
            if (length <= 20) {
                for (i = 0; i < length; i++) {
                    word[i] = error->message == PGK_MSG_UNKNOWN_ARGUMENT ? lower(error->word[i])
                                                                         : error->word[i];
                }
                quoted_word(out, word, length);
            }
            break;
        }
        case 3:
            pgk_out_number(out, error->number);
            break;
        case 4:
            argument_list(out, config ? PGK_ARG_WAITING : PGK_ARG_SERIAL,
                          config ? CONFIG_ARGUMENTS : SETUP_ARGUMENTS, 0x7f, "");
            break;
        case 5:
            pgk_out_str(out, nth(name_pool, error->argument));
            break;
        case 6:
            pgk_out_str(out, nth("1 to 255\0" "0 to 2147483647\0" "1 to 3600\0" "0 to 4102444800\0",
                                 error->argument == PGK_ARG_DIVIDER  ? 0
                                 : error->argument == PGK_ARG_COUNT ? 1
                                 : error->argument == PGK_ARG_RTC   ? 3
                                                                    : 2));
            break;
        case 7:
            pgk_out_str(out, error->argument ? "the change of the clock" : "the duration");
            break;
        case 8:
            argument_list(out, PGK_ARG_SERIAL, 3, (uint8_t)error->number, "=");
            break;
        case 9:
            pgk_out_hiding_keys(out, error->word, error->word_length);
            break;
        case 10:
            pgk_out_str(out, "the reference setup line is "
                             "#<serial>;<9-digit starting code>;<32 hex key>");
            break;
        case 11:
            pgk_out_str(out, "1 to 32 letters, digits and . _ : + - starting with a letter or "
                             "digit (e.g. SLT220000001)");
            break;
        case 12:
            if (error->number) {
                pgk_out_str(out, "; to press the # key, send KEYS #");
            }
            break;
        case 13:
            pgk_out_str(out, error->number ? "keys 1-4 (restricted keypad)" : "digits 0-9");
            break;
        default:
            put(out, *text);
        }
    }
}
#endif

void pgk_wire_word(pgk_out *out, uint8_t line, uint8_t index)
{
    pgk_out_str(out, &"OK \0HELP \0ERR "[line]);
    pgk_out_str(out, nth(line == PGK_WORD_ERR ? error_codes : command_names, index));
}

char pgk_wire_hex_digit(const uint8_t *bytes, unsigned i)
{
    unsigned nibble = bytes[i / 2];
    if (!(i & 1)) {
        nibble >>= 4;
    }
    nibble &= 15u;
    return (char)(nibble + (nibble < 10 ? '0' : 'A' - 10));
}

/* n digits, two a byte, the high nibble first: the key's hex, a test code's digits. */
static void nibbles(pgk_out *out, const uint8_t *bytes, unsigned n)
{
    unsigned i;
    for (i = 0; i < n; i++) {
        put(out, pgk_wire_hex_digit(bytes, i));
    }
}

/* ---- typed answer lines --------------------------------------------------------- */

/* The typed lines are tables: one kind and name (its index in name_pool) in
 * a byte, offset and second offset (or mask, or size) a field, in the
 * answer's order, written by one loop.  A field written by its own call costs
 * 12 to 16 bytes of code, a table entry 3. */
enum field_kind {
    FIELD_FLAG,   /* uint8_t: 1 if any bit of the mask at the second offset's place is set */
    FIELD_ON_OFF, /* uint8_t */
    /* An unsigned integer in decimal, its size (1, 4 or 8 bytes) in the
     * entry's last byte; size 0: 8 bytes, or PGK_WIRE_UNLIMITED (-1):
     * "unlimited" (seconds_left). */
    FIELD_NUMBER,
    FIELD_WORD,    /* const char *, its length the uint8_t at the second offset; "-" if 0 */
    FIELD_NIBBLES, /* packed digits (pgk_state's test code), their number the same way */
    FIELD_LIST,    /* uint32_t used_top, then used_bits (pgk_wire_status) */
    FIELD_TAMPER,  /* uint8_t, PGK_TAMPER_* */
    FIELD_TOKEN_TYPE /* uint8_t, token_type_names' order */
};

/* Three bits of kind, five of name: every name index is below 31, so the
 * byte 0xff ends a table. */
#define FIELD_KIND_BITS 3u
#define FIELD_END 0xffu
typedef char field_kinds_fit[FIELD_TOKEN_TYPE < (1u << FIELD_KIND_BITS) ? 1 : -1];
typedef char field_names_fit[NAME_WAIT < 31 ? 1 : -1];

#define ENTRY(kind, name, offset, second) ((kind) | (name) << FIELD_KIND_BITS), (offset), (second)
#define FIELD(name, kind, type, member) ENTRY(kind, name, offsetof(type, member), 0)
/* fields() reads a number of 1, 4 or 8 bytes: a member of any other size
 * fails to compile here rather than being read as 8 bytes. */
#define NUMBER_SIZE(size)                                                                        \
    ((size) + 0 * sizeof(char[(size) == 1 || (size) == 4 || (size) == 8 ? 1 : -1]))
#define NUMBER(name, type, member)                                                               \
    ENTRY(FIELD_NUMBER, name, offsetof(type, member), NUMBER_SIZE(sizeof(((type *)0)->member)))
/* Size 0: an 8-byte number that may be PGK_WIRE_UNLIMITED. */
#define SECONDS_LEFT(name, type, member)                                                         \
    ENTRY(FIELD_NUMBER, name, offsetof(type, member),                                            \
          0 * sizeof(char[sizeof(((type *)0)->member) == 8 ? 1 : -1]))
#define FLAG(name, type, member) ENTRY(FIELD_FLAG, name, offsetof(type, member), 0xffu)
#define MASKED(name, type, member, mask) ENTRY(FIELD_FLAG, name, offsetof(type, member), (mask))

/* FIELD_LIST reads the two words as one member. */
typedef char used_bits_follow_used_top[offsetof(pgk_wire_status, used_bits) ==
                                               offsetof(pgk_wire_status, used_top) + 4u
                                           ? 1
                                           : -1];
#define COUNTED(name, kind, type, member, length)                                              \
    ENTRY(kind, name, offsetof(type, member), offsetof(type, length))

/* The set bits of the n low bits as a comma-separated list, or `none`:
 * bit i is the i-th of the items, lowest first (the tamper flags), or without
 * them the number top - i, highest bit first (the used counts, ascending). */
static void bit_list(pgk_out *out, uint32_t bits, unsigned n, const char *items, uint32_t top,
                     const char *none)
{
    unsigned k;
    uint8_t any = 0;
    for (k = 0; k < n; k++) {
        unsigned i = items ? k : n - 1u - k;
        if (bits >> i & 1u) {
            if (any) {
                put(out, ',');
            }
            any = 1;
            if (items) {
                pgk_out_str(out, nth(items, i));
            } else {
                number(out, 1, top - i);
            }
        }
    }
    if (!any) {
        pgk_out_str(out, none);
    }
}

/* The fields of `record` the table describes, those whose bit is set in `mask`
 * (bit 0: the first); a member is read as the type its kind says it has. */
static void fields(pgk_out *out, const uint8_t *table, const void *record, uint16_t mask)
{
    const uint8_t *base = record;
    for (; *table != FIELD_END; table += 3, mask >>= 1) {
        const void *member = base + table[1];
        uint8_t byte = *(const uint8_t *)member;
        uint8_t kind = *table & ((1u << FIELD_KIND_BITS) - 1u);
        uint64_t value = byte;
        uint8_t length;
        if (!(mask & 1u)) {
            continue;
        }
        /* pgk_out_field()'s work, here: a build whose only fields are these
         * then links no pgk_out_field(). */
        put(out, ' ');
        pgk_out_str(out, nth(name_pool, *table >> FIELD_KIND_BITS));
        put(out, '=');
        switch (kind) {
        case FIELD_FLAG:
            put(out, (byte & table[2]) ? '1' : '0');
            continue;
        case FIELD_ON_OFF:
            pgk_out_str(out, byte ? "on" : "off");
            continue;
        case FIELD_WORD:
        case FIELD_NIBBLES:
            length = base[table[2]];
            if (length == 0) {
                put(out, '-');
            }
            if (kind == FIELD_WORD) {
                pgk_out_mem(out, *(const char *const *)member, length);
            } else {
                nibbles(out, member, length);
            }
            continue;
        case FIELD_LIST: {
            const uint32_t *used = member;
            bit_list(out, used[1], PGK_WINDOW_UNORDERED + 1u, NULL, used[0], "-");
            continue;
        }
        case FIELD_TAMPER:
            bit_list(out, byte, 3, "rtc_slow\0rtc_fast\0rtc_backwards", 0, "none");
            continue;
        case FIELD_TOKEN_TYPE:
            pgk_out_str(out, nth(token_type_names, byte));
            continue;
        default: /* FIELD_NUMBER */
            if (table[2] == 4) {
                value = *(const uint32_t *)member;
            } else if (table[2] != 1) {
                value = *(const uint64_t *)member;
                if (table[2] == 0 && value == PGK_WIRE_UNLIMITED) {
                    pgk_out_str(out, "unlimited");
                    continue;
                }
            }
            number(out, 1, value);
        }
    }
}

static const uint8_t status_fields[] = {
    COUNTED(PGK_ARG_SERIAL, FIELD_WORD, pgk_wire_status, serial, serial_length),
    FLAG(NAME_PROVISIONED, pgk_wire_status, info.provisioned),
    NUMBER(NAME_NOW, pgk_wire_status, info.now),
    FLAG(NAME_ACTIVE, pgk_wire_status, info.active),
    FIELD(NAME_PAYG, FIELD_ON_OFF, pgk_wire_status, info.payg_enabled),
    SECONDS_LEFT(NAME_SECONDS_LEFT, pgk_wire_status, info.seconds_left),
    NUMBER(NAME_ACTIVE_UNTIL, pgk_wire_status, info.active_until),
    NUMBER(PGK_ARG_COUNT, pgk_wire_status, info.count),
    FIELD(NAME_USED, FIELD_LIST, pgk_wire_status, used_top),
    NUMBER(NAME_INVALID, pgk_wire_status, info.invalid_attempts),
    NUMBER(NAME_BLOCKED, pgk_wire_status, info.blocked_seconds),
    FIELD(NAME_TAMPER, FIELD_TAMPER, pgk_wire_status, info.tamper),
    FLAG(PGK_ARG_TEST, pgk_wire_status, info.test_active),
    COUNTED(NAME_TYPING, FIELD_WORD, pgk_wire_status, typing, typing_length),
    FLAG(PGK_ARG_RESTRICTED, pgk_wire_status, info.restricted_digits),
    NUMBER(PGK_ARG_DIVIDER, pgk_wire_status, info.time_divider),
    FIELD_END,
};

void pgk_wire_status_fields(pgk_out *out, const pgk_wire_status *s, uint16_t mask)
{
    fields(out, status_fields, s, mask);
}


/* In the order of the PGK_RESULT_* bits. */
static const uint8_t result_fields[] = {
    FIELD(NAME_TYPE, FIELD_TOKEN_TYPE, pgk_wire_result, outcome.token_type),
    NUMBER(NAME_UNITS, pgk_wire_result, outcome.units),
    NUMBER(PGK_ARG_COUNT, pgk_wire_result, outcome.count),
    FIELD(NAME_PAYG, FIELD_ON_OFF, pgk_wire_result, info.payg_enabled),
    FLAG(PGK_ARG_TEST, pgk_wire_result, info.test_active),
    FLAG(NAME_ACTIVE, pgk_wire_result, info.active),
    NUMBER(NAME_ACTIVE_UNTIL, pgk_wire_result, info.active_until),
    SECONDS_LEFT(NAME_SECONDS_LEFT, pgk_wire_result, info.seconds_left),
    NUMBER(NAME_WAIT, pgk_wire_result, outcome.wait_seconds),
    NUMBER(NAME_INVALID, pgk_wire_result, info.invalid_attempts),
    FIELD_END,
};

void pgk_wire_result_line(pgk_out *out, const pgk_wire_result *r)
{
    pgk_out_str(out, "RESULT ");
    pgk_out_str(out, nth(outcome_names, r->outcome.kind));
    fields(out, result_fields, r, r->fields);
}

void pgk_wire_event_line(pgk_out *out, uint8_t kind, uint8_t led, uint8_t blinks)
{
    pgk_out_str(out, "EVENT ");
    pgk_out_str(out, nth(event_names, kind));
    pgk_out_field(out, "led");
    pgk_out_str(out, nth(led_names, led));
    pgk_out_number_field(out, "blinks", blinks);
}

void pgk_wire_hello_line(pgk_out *out, const char *model, const char *firmware, uint8_t simulator,
                         uint8_t power, uint8_t provisioned)
{
    pgk_out_str(out, "HELLO protocol=1 model=");
    pgk_out_str(out, model);
    pgk_out_field(out, "firmware");
    pgk_out_str(out, firmware);
    pgk_out_flag_field(out, "simulator", simulator);
    pgk_out_on_off_field(out, "power", power);
    if (provisioned < 2) {
        pgk_out_flag_field(out, "provisioned", provisioned);
    }
}

void pgk_wire_read_back(pgk_out *out, const char *serial, uint8_t serial_length,
                        const pgk_state *state, uint8_t crlf)
{
    unsigned line;
    for (line = 0; line < 3; line++) {
        pgk_out_str(out, &"SN:\0SC:\0SK:"[4 * line]);
        if (line == 0) {
            pgk_out_mem(out, serial, serial_length);
        } else if (line == 1) {
            /* Nine digits with leading zeros, as the reference firmware prints them. */
            number(out, 9, state->starting_code);
        } else {
            nibbles(out, state->key, 32);
        }
        pgk_out_end_line(out, crlf);
    }
}

static const uint8_t setup_fields[] = {
    NUMBER(PGK_ARG_DIVIDER, pgk_state, time_divider),
    MASKED(PGK_ARG_RESTRICTED, pgk_state, flags, PGK_FLAG_RESTRICTED_DIGITS),
    COUNTED(PGK_ARG_TEST, FIELD_NIBBLES, pgk_state, test_code, test_code_length),
    NUMBER(PGK_ARG_COUNT, pgk_state, last_count),
    FIELD_END,
};

void pgk_wire_setup_line(pgk_out *out, const pgk_state *state)
{
    pgk_out_str(out, "SETUP");
    fields(out, setup_fields, state, 0xFu);
}

void pgk_wire_clock_line(pgk_out *out, uint64_t rtc, uint64_t ticks)
{
    pgk_out_str(out, "CLOCK");
    pgk_out_number_field(out, "rtc", rtc);
    pgk_out_number_field(out, "ticks", ticks);
}

void pgk_wire_config_line(pgk_out *out, uint8_t waiting, uint8_t tamper_lock, uint16_t timeout)
{
    pgk_out_str(out, "CONFIG");
    pgk_out_on_off_field(out, "waiting", waiting);
    pgk_out_field(out, "tamper");
    pgk_out_str(out, tamper_lock ? "lock" : "report");
    pgk_out_number_field(out, "keypad_timeout", timeout);
}

void pgk_wire_power_line(pgk_out *out, uint8_t on)
{
    pgk_out_str(out, on ? "POWER on" : "POWER off");
}

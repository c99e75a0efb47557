/* Host harness of the protocol grammar (firmware/lib/pgk_wire.c): one request
 * per line on stdin, one answer per line on stdout, for
 * tests/firmware/test_c_wire.py to hold it against paygkit.device.wire and
 * paygkit.device.commands.
 *
 *   split HEX          feed the bytes to a fresh line splitter
 *                      -> each line as HEX ("=" if empty) or "!" (too long), then ";CUTTING"
 *                      (1 inside a line too long, before its end)
 *   parse SIM HEX      parse one line -> the command in the form test_c_wire.py writes
 *                      (CLOCK shows the RTC it would set, from an RTC of CLOCK_NOW)
 *   status|result|event|hello|readback|setup|clock|config|power|ok|help ...
 *                      format an answer line from the values given -> HEX of the bytes
 *
 * HEX is the bytes in hex ("-" for none).  A request the harness cannot read
 * is answered "error ..." and the harness goes on.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness_hex.h"
#include "pgk_wire.h"

#define MAX_REQUEST 65536
#define CLOCK_NOW 2000000000u

static char request[MAX_REQUEST];
static char output[8192];

/* Keeps every byte for the answer: the buffer holds any answer here, so
 * being asked to make room is a bug. */
static void flush_keep(pgk_out *o)
{
    if (o->length >= o->size) {
        fprintf(stderr, "output buffer full\n");
        abort();
    }
}

static pgk_out out = {.buffer = output, .flush = flush_keep, .size = sizeof output};

/* Decodes HEX in place (byte i from characters 2i, 2i+1, already read); its length or -1. */
static long unhex(char *text)
{
    long n = 0;
    if (strcmp(text, "-") == 0) {
        return 0;
    }
    for (; text[2 * n] && text[2 * n + 1]; n++) {
        int byte = hex_byte(text + 2 * n);
        if (byte < 0) {
            return -1;
        }
        text[n] = (char)byte;
    }
    return text[2 * n] ? -1 : n;
}

static char *words[32];
static int word_count;

static void split_words(char *line)
{
    word_count = 0;
    for (char *p = strtok(line, " \n"); p && word_count < 32; p = strtok(NULL, " \n")) {
        words[word_count++] = p;
    }
}

static unsigned long long number(int i)
{
    return i < word_count ? strtoull(words[i], NULL, 10) : 0;
}

/* Writes word i decoded from hex as a quoted text. */
static void text(int i)
{
    long n = unhex(words[i]);
    pgk_out_text_begin(&out);
    pgk_out_mem(&out, words[i], n < 0 ? 0 : (size_t)n);
    pgk_out_text_end(&out);
}

static void do_split(void)
{
    static pgk_line_splitter splitter;
    long n = word_count > 1 ? unhex(words[1]) : -1;
    if (n < 0) {
        printf("error bad hex\n");
        return;
    }
    memset(&splitter, 0, sizeof splitter);
    for (long i = 0; i < n; i++) {
        pgk_line_event event = pgk_line_feed(&splitter, (uint8_t)words[1][i]);
        if (event == PGK_LINE_READY) {
            if (splitter.length == 0) {
                printf("= ");
            } else {
                print_hex(splitter.line, splitter.length);
                printf(" ");
            }
        } else if (event == PGK_LINE_TOO_LONG) {
            printf("! ");
        }
        if (event != PGK_LINE_PENDING) {
            splitter.length = 0; /* the line is used: the next byte starts one */
        }
    }
    /* Cutting: inside a line too long, before its end. */
    printf(";%d\n", splitter.length > PGK_WIRE_LINE_MAX);
}

static void print_parse(char *line, long length, int simulator)
{
    pgk_command command;
    pgk_command_kind kind = pgk_wire_parse(line, (uint16_t)length, (uint8_t)simulator, &command);
    out.length = 0;
    switch (kind) {
    case PGK_CMD_BLANK:
        printf("BLANK\n");
        return;
    case PGK_CMD_ERROR:
        pgk_wire_error(&out, &command.u.error);
        printf("%.*s\n", (int)out.length, output);
        return;
    case PGK_CMD_SETUP:
        printf("SETUP serial=%.*s code=%u key=", command.u.setup.serial_length,
               command.u.setup.serial, command.u.setup.starting_code);
        for (int i = 0; i < 16; i++) {
            printf("%02x", command.u.setup.key[i]);
        }
        printf(" divider=%u restricted=%u test=%.*s count=%u ref=%u\n",
               command.u.setup.time_divider, command.u.setup.restricted_digits,
               command.u.setup.test_code ? command.u.setup.test_code_length : 1,
               command.u.setup.test_code ? command.u.setup.test_code : "-",
               command.u.setup.count, command.form);
        return;
    case PGK_CMD_KEYS:
    case PGK_CMD_TOKEN:
        printf("%s %.*s\n", pgk_wire_command_name(kind), command.u.keys.length,
               command.u.keys.text);
        return;
    case PGK_CMD_ADVANCE:
        printf("ADVANCE %u\n", command.u.seconds);
        return;
    case PGK_CMD_CLOCK: {
        unsigned long long t = command.u.seconds;
        if (command.form == PGK_CLOCK_SHOW) {
            printf("CLOCK\n");
            return;
        }
        if (command.form == PGK_CLOCK_FORWARD) {
            t = CLOCK_NOW + t;
        } else if (command.form == PGK_CLOCK_BACK) {
            t = CLOCK_NOW - t;
        }
        printf("CLOCK %llu\n", t);
        return;
    }
    case PGK_CMD_CONFIG:
        if (command.form == 0) {
            printf("CONFIG\n");
        } else {
            /* The settings the simulator would get: the defaults, changed by the line. */
            printf("CONFIG waiting=%s tamper=%s keypad_timeout=%u\n",
                   (command.form & PGK_CONFIG_WAITING) && !command.u.config.waiting ? "off"
                                                                                    : "on",
                   command.u.config.tamper_lock ? "lock" : "report",
                   command.u.config.keypad_timeout);
        }
        return;
    case PGK_CMD_POWER:
        printf("POWER%s\n", command.form == PGK_POWER_ON    ? " ON"
                            : command.form == PGK_POWER_OFF ? " OFF"
                                                            : "");
        return;
    default:
        printf("%s\n", pgk_wire_command_name(kind));
    }
}

static void do_parse(void)
{
    long n = word_count > 2 ? unhex(words[2]) : -1;
    if (n < 0) {
        printf("error bad hex\n");
        return;
    }
    print_parse(words[2], n, (int)number(1));
}

/* The formatting requests: values as decimal words, texts as hex. */
static int do_format(const char *what)
{
    uint8_t crlf = 0;
    out.length = 0;
    if (strcmp(what, "status") == 0 && word_count == 19) {
        /* status SERIALHEX PROV NOW ACTIVE PAYG LEFT UNTIL COUNT USED INVALID BLOCKED
         *        TAMPER TEST TYPINGHEX RESTRICTED DIVIDER CRLF UNLIMITED */
        pgk_wire_status s;
        long serial_length = unhex(words[1]);
        long typing_length = unhex(words[14]);
        memset(&s, 0, sizeof s);
        s.serial = words[1];
        s.serial_length = (uint8_t)serial_length;
        s.info.provisioned = (uint8_t)number(2);
        s.info.now = (int64_t)number(3);
        s.info.active = (uint8_t)number(4);
        s.info.payg_enabled = (uint8_t)number(5);
        s.info.seconds_left = (int64_t)(number(18) ? PGK_WIRE_UNLIMITED : number(6));
        s.info.active_until = (int64_t)number(7);
        s.info.count = (uint32_t)number(8);
        /* The used counts as pgk_state keeps them: the test sends such a list. */
        if (strcmp(words[9], "-") != 0) {
            for (char *p = strtok(words[9], ","); p; p = strtok(NULL, ",")) {
                uint32_t count = (uint32_t)strtoul(p, NULL, 10);
                if (count > s.used_top) {
                    uint32_t shift = count - s.used_top;
                    s.used_bits = shift < 32u ? s.used_bits << shift : 0;
                    s.used_top = count;
                }
                if (s.used_top - count < 32u) {
                    s.used_bits |= UINT32_C(1) << (s.used_top - count);
                }
            }
        }
        s.info.invalid_attempts = (uint32_t)number(10);
        s.info.blocked_seconds = (uint32_t)number(11);
        s.info.tamper = (uint8_t)number(12);
        s.info.test_active = (uint8_t)number(13);
        s.typing = words[14];
        s.typing_length = (uint8_t)typing_length;
        s.info.restricted_digits = (uint8_t)number(15);
        s.info.time_divider = (uint8_t)number(16);
        crlf = (uint8_t)number(17);
        pgk_wire_status_line(&out, &s);
    } else if (strcmp(what, "result") == 0 && word_count == 16) {
        /* result FIELDS OUTCOME TYPE UNITS COUNT PAYG TEST ACTIVE UNTIL LEFT WAIT INVALID
         *        UNLIMITED TEXTHEX CRLF */
        pgk_wire_result r;
        memset(&r, 0, sizeof r);
        r.fields = (uint16_t)number(1);
        r.outcome.kind = (uint8_t)number(2);
        r.outcome.token_type = (uint8_t)number(3);
        r.outcome.units = (uint32_t)number(4);
        r.outcome.count = (uint32_t)number(5);
        r.info.payg_enabled = (uint8_t)number(6);
        r.info.test_active = (uint8_t)number(7);
        r.info.active = (uint8_t)number(8);
        r.info.active_until = (int64_t)number(9);
        r.info.seconds_left = (int64_t)(number(13) ? PGK_WIRE_UNLIMITED : number(10));
        r.outcome.wait_seconds = (uint32_t)number(11);
        r.info.invalid_attempts = (uint32_t)number(12);
        pgk_wire_result_line(&out, &r);
        text(14);
        crlf = (uint8_t)number(15);
    } else if (strcmp(what, "event") == 0 && word_count == 6) {
        /* event KIND LED BLINKS TEXTHEX CRLF */
        pgk_wire_event_line(&out, (uint8_t)number(1), (uint8_t)number(2), (uint8_t)number(3));
        text(4);
        crlf = (uint8_t)number(5);
    } else if (strcmp(what, "hello") == 0 && word_count == 7) {
        /* hello MODEL FIRMWARE SIMULATOR POWER PROVISIONED(2: none) CRLF */
        pgk_wire_hello_line(&out, words[1], words[2], (uint8_t)number(3), (uint8_t)number(4),
                            (uint8_t)number(5));
        crlf = (uint8_t)number(6);
    } else if (strcmp(what, "readback") == 0 && word_count == 5) {
        /* readback SERIALHEX CODE KEYHEX CRLF: ends its own lines; the code
         * and key read from a state, as the device stores them. */
        long serial_length = unhex(words[1]);
        pgk_state state;
        if (unhex(words[3]) != 16) {
            return 0;
        }
        memset(&state, 0, sizeof state);
        state.starting_code = (uint32_t)number(2);
        memcpy(state.key, words[3], 16);
        pgk_wire_read_back(&out, words[1], (uint8_t)serial_length, &state, (uint8_t)number(4));
        return 1;
    } else if (strcmp(what, "setup") == 0 && word_count == 6) {
        /* setup DIVIDER RESTRICTED TESTHEX COUNT CRLF: the line reads them from
         * a state, the test code packed as the state keeps it. */
        pgk_state state;
        long test_length = unhex(words[3]);
        if (test_length < 0 || test_length > 2 * (long)sizeof state.test_code) {
            return 0;
        }
        memset(&state, 0, sizeof state);
        state.time_divider = (uint8_t)number(1);
        state.flags = number(2) ? PGK_FLAG_RESTRICTED_DIGITS : 0;
        state.test_code_length = (uint8_t)test_length;
        for (long i = 0; i < test_length; i++) {
            state.test_code[i / 2] |= (uint8_t)((words[3][i] - '0') << ((i & 1) ? 0 : 4));
        }
        state.last_count = (uint32_t)number(4);
        pgk_wire_setup_line(&out, &state);
        crlf = (uint8_t)number(5);
    } else if (strcmp(what, "clock") == 0 && word_count == 4) {
        pgk_wire_clock_line(&out, number(1), number(2));
        crlf = (uint8_t)number(3);
    } else if (strcmp(what, "config") == 0 && word_count == 5) {
        pgk_wire_config_line(&out, (uint8_t)number(1), (uint8_t)number(2), (uint16_t)number(3));
        crlf = (uint8_t)number(4);
    } else if (strcmp(what, "power") == 0 && word_count == 3) {
        pgk_wire_power_line(&out, (uint8_t)number(1));
        crlf = (uint8_t)number(2);
    } else if (strcmp(what, "ok") == 0 && word_count == 3) {
        pgk_wire_ok(&out, (uint8_t)number(1));
        crlf = (uint8_t)number(2);
    } else if (strcmp(what, "help") == 0 && word_count == 2) {
        /* every HELP line and OK HELP */
        crlf = (uint8_t)number(1);
        for (uint8_t i = 0; i < PGK_WIRE_HELP_LINES; i++) {
            pgk_out_str(&out, "HELP ");
            pgk_out_str(&out, pgk_wire_help_line(i));
            pgk_out_end_line(&out, crlf);
        }
        pgk_wire_ok(&out, PGK_CMD_HELP);
    } else {
        return 0;
    }
    pgk_out_end_line(&out, crlf);
    return 1;
}

int main(void)
{
    while (fgets(request, sizeof request, stdin)) {
        split_words(request);
        if (word_count == 0) {
            printf("error empty request\n");
        } else if (strcmp(words[0], "split") == 0) {
            do_split();
        } else if (strcmp(words[0], "parse") == 0) {
            do_parse();
        } else if (do_format(words[0])) {
            print_hex(output, out.length);
            printf("\n");
        } else {
            printf("error unknown request %s\n", words[0]);
        }
        fflush(stdout);
    }
    return 0;
}

/* The device protocol's interpreter: see pgk_protocol.h.  Each command
 * follows its handler in paygkit's interpreter.py, in the same order of
 * checks, because the first failing one decides the ERR line. */
#include "pgk_protocol.h"

#if PGK_WITH_PROTOCOL

#define SECONDS_PER_MINUTE 60u
#define MINUTES_PER_DAY 1440u

static void flush(pgk_out *out)
{
    pgk_port_uart_write(out->buffer, out->length);
    out->length = 0;
}

static void end_line(pgk_protocol *p)
{
    pgk_out_end_line(&p->out, p->crlf);
}

void pgk_protocol_start(pgk_protocol *p, pgk_firmware *firmware,
                        const pgk_firmware_config *config, uint8_t crlf)
{
    pgk_zero(p, sizeof *p);
    p->firmware = firmware;
    p->crlf = crlf;
#if PGK_PROTOCOL_OUT_BUFFER
    p->out.buffer = p->buffer;
    p->out.size = PGK_PROTOCOL_OUT_BUFFER;
#endif
    p->out.flush = flush;
#if PGK_WITH_SIM_CONTROLS
    p->powered = 1;
    p->config = *config;
#else
    (void)config;
#endif
}

void pgk_protocol_feedback(pgk_protocol *p, uint8_t kind, uint8_t detail, int64_t value)
{
#if PGK_PROTOCOL_KEEPS_EVENTS
    pgk_protocol_event *event;
    /* Key echoes are not reported (the keys typed so far are in typing=). */
    if (kind == PGK_FEEDBACK_KEY_PRESS) {
        return;
    }
    /* A full queue keeps its newest entry current: a RESULT's text is the last signal. */
    event = &p->events[p->event_n < PGK_PROTOCOL_EVENT_QUEUE ? p->event_n++
                                                             : PGK_PROTOCOL_EVENT_QUEUE - 1];
    event->kind = kind;
    event->detail = detail;
    event->value = value;
#else
    (void)p;
    (void)kind;
    (void)detail;
    (void)value;
#endif
}

/* ---- display texts (firmware.py's messages) ------------------------------------ */

static uint8_t is_digit(char c)
{
    return c >= '0' && c <= '9';
}

#if PGK_PROTOCOL_TEXTS

/* *value / divisor, returning the remainder: shift and subtract, since the
 * M0 has no divider and libgcc's 64-bit one is larger than this. */
static uint32_t divide(uint64_t *value, uint32_t divisor)
{
    uint64_t v = *value;
    uint64_t quotient = 0;
    uint64_t rest = 0;
    unsigned i;
    for (i = 0; i < 64; i++) {
        rest = rest << 1 | v >> 63;
        v <<= 1;
        quotient <<= 1;
        if (rest >= divisor) {
            rest -= divisor;
            quotient |= 1u;
        }
    }
    *value = quotient;
    return (uint32_t)rest;
}

/* firmware.display_time: the two largest units, from a minute on rounded up
 * to whole minutes ("0 days", "45 s", "1 day 12 h", "2 min"). */
static void display_time(pgk_out *out, int64_t seconds)
{
    uint64_t minutes;
    uint32_t parts[3];
    uint8_t shown = 0;
    unsigned i;
    if (seconds <= 0) {
        pgk_out_str(out, "0 days");
        return;
    }
    if (seconds < 60) {
        pgk_out_number(out, (uint64_t)seconds);
        pgk_out_str(out, " s");
        return;
    }
    /* Rounded up to minutes the seconds part is 0, so it never shows. */
    minutes = (uint64_t)seconds + 59u;
    divide(&minutes, SECONDS_PER_MINUTE);
    parts[2] = divide(&minutes, MINUTES_PER_DAY);
    {
        uint64_t hours = parts[2];
        parts[2] = divide(&hours, 60u);
        parts[1] = (uint32_t)hours;
    }
    for (i = 0; i < 3 && shown < 2; i++) {
        uint64_t amount = i ? parts[i] : minutes;
        if (amount) {
            if (shown++) {
                pgk_out_char(out, ' ');
            }
            pgk_out_number(out, amount);
            pgk_out_str(out, i == 0 ? (amount == 1 ? " day" : " days") : i == 1 ? " h" : " min");
        }
    }
}

/* Why a token is not one (paygkit.token.typed_digits and parse_token), for
 * the text of a MALFORMED result: p->token is the digits, or the text as
 * typed when it was not digits in groups. */
static void malformed_reason(pgk_protocol *p)
{
    const char *token = p->token;
    uint8_t length = p->token_length;
    uint8_t restricted = (p->firmware->state.flags & PGK_FLAG_RESTRICTED_DIGITS) != 0;
    unsigned i;
    uint16_t bad = 0;
    for (i = 0; i < length; i++) {
        if (!is_digit(token[i])) {
            pgk_out_str(&p->out, token[0] == '-' || token[0] == '+'
                                     ? "a token has no sign; type only its digits"
                                     : "a token contains only digits, optionally grouped with "
                                       "single spaces or dashes (e.g. 123 456 789)");
            return;
        }
        if (restricted && (token[i] == '0' || token[i] > '4')) {
            bad |= (uint16_t)(1u << (token[i] - '0'));
        }
    }
    if (bad) {
        uint8_t first = 1;
        pgk_out_str(&p->out, "this device uses restricted digits (keys 1-4), but the token "
                             "contains ");
        for (i = 0; i < 10; i++) {
            if (bad & (1u << i)) {
                if (!first) {
                    pgk_out_str(&p->out, ", ");
                }
                first = 0;
                pgk_out_char(&p->out, (char)('0' + i));
            }
        }
        pgk_out_str(&p->out, "; check the token was made for restricted digit mode");
        return;
    }
    pgk_out_str(&p->out, "the token has ");
    pgk_out_number(&p->out, length);
    pgk_out_str(&p->out, restricted ? " digits; this device takes 15 digits (or 20"
                                    : " digits; this device takes 9 digits (or 12");
    pgk_out_str(&p->out, " for an extended token); check for a missing or extra digit");
}

/* The string after the next NUL of a table of strings. */
static const char *next_string(const char *text)
{
    while (*text++) {
    }
    return text;
}

/* The display text of a signal, as paygkit's firmware gives it. */
static void signal_text(pgk_protocol *p, const pgk_protocol_event *e)
{
    static const char status_texts[] = "Active, unlimited\0Active, \0Test mode\0Not provisioned\0"
                                       "Locked: clock tamper\0Inactive\0";
    pgk_out *out = &p->out;
    unsigned i;
    switch (e->kind) {
    case PGK_FEEDBACK_INVALID:
        if (e->detail) {
            pgk_out_str(out, "Not a token: ");
            malformed_reason(p);
        } else {
            pgk_out_str(out, "Invalid token");
        }
        if (e->value > 0) {
            pgk_out_str(out, ", wait ");
            display_time(out, e->value);
        }
        break;
    case PGK_FEEDBACK_ALREADY_USED:
        pgk_out_str(out, "Already used");
        break;
    case PGK_FEEDBACK_TIME_CHANGED:
        pgk_out_str(out, e->detail ? "Set " : "+");
        display_time(out, e->value);
        break;
    case PGK_FEEDBACK_COUNTER_SYNCED:
        pgk_out_str(out, "Counter synced");
        break;
    case PGK_FEEDBACK_PAYG_DISABLED:
        pgk_out_str(out, "PAYG disabled");
        break;
    case PGK_FEEDBACK_ENTRY_LOCKED:
        if (e->detail == PGK_LOCKED_NOT_PROVISIONED) {
            pgk_out_str(out, "Not provisioned");
            break;
        }
        pgk_out_str(out, e->detail == PGK_LOCKED_TEST_CODE_LIMIT ? "Test code limit, wait "
                                                                 : "Wait ");
        display_time(out, e->value);
        break;
    case PGK_FEEDBACK_TEST_CODE:
        pgk_out_str(out, "Test ");
        display_time(out, e->value);
        break;
    case PGK_FEEDBACK_STATUS:
        {
            const char *text = status_texts;
            for (i = 0; i < e->detail; i++) {
                text = next_string(text);
            }
            pgk_out_str(out, text);
        }
        if (e->detail == PGK_STATUS_SHOWN_TIME_LEFT) {
            display_time(out, e->value);
            pgk_out_str(out, " left");
        }
        break;
    case PGK_FEEDBACK_TAMPER: {
        static const char names[] = "RTC slow or stopped\0RTC fast\0RTC set back\0";
        const char *name = names;
        uint8_t first = 1;
        pgk_out_str(out, "Clock tamper (");
        for (i = 0; i < 3; i++) {
            if (e->value & (1 << i)) {
                if (!first) {
                    pgk_out_str(out, ", ");
                }
                first = 0;
                pgk_out_str(out, name);
            }
            name = next_string(name);
        }
        pgk_out_str(out, e->detail ? "): locked until Set Time" : ")");
        break;
    }
    default:
        break;
    }
}
#else
/* Without the texts every text is empty: text="". */
#define signal_text(p, e) ((void)(p), (void)(e))
#endif

#if PGK_PROTOCOL_EVENTS
/* The LED of each signal (paygkit.device.feedback): colour (1 red, 2 green) and blinks. */
static const uint8_t leds[9][2] = {
    {1, 10}, {2, 1}, {2, 2}, {2, 3}, {2, 5}, {1, 1}, {2, 2}, {2, 1}, {1, 3},
};
#endif

/* The signals given so far belong to no answer any more.  Without a queue
 * there is nothing to forget. */
static void forget_events(pgk_protocol *p)
{
#if PGK_PROTOCOL_KEEPS_EVENTS
    p->event_n = 0;
#else
    (void)p;
#endif
}

/* The EVENT lines of the signals given so far; they are then forgotten. */
static void events(pgk_protocol *p)
{
#if PGK_PROTOCOL_EVENTS
    unsigned i;
    for (i = 0; i < p->event_n; i++) {
        const pgk_protocol_event *e = &p->events[i];
        uint8_t led;
        if (e->kind > PGK_FEEDBACK_TAMPER) {
            continue; /* a kind this protocol does not know has no EVENT line */
        }
        led = leds[e->kind][0];
        /* '#' is green when the appliance may run, red when not. */
        if (e->kind == PGK_FEEDBACK_STATUS && e->detail > PGK_STATUS_SHOWN_TEST_MODE) {
            led = 1;
        }
        pgk_wire_event_line(&p->out, e->kind, led, leds[e->kind][1]);
        pgk_out_text_begin(&p->out);
        signal_text(p, e);
        pgk_out_text_end(&p->out);
        end_line(p);
    }
#endif
    forget_events(p);
}

/* ---- answer lines ------------------------------------------------------------------ */

static void error(pgk_protocol *p, uint8_t code, uint8_t message, uint32_t number)
{
#if PGK_PROTOCOL_MESSAGES
    pgk_error e;
    pgk_zero(&e, sizeof e);
    e.code = code;
    e.message = message;
    e.number = number;
    pgk_wire_error(&p->out, &e);
#else
    (void)message;
    (void)number;
    pgk_wire_word(&p->out, PGK_WORD_ERR, code);
#endif
    end_line(p);
}

static void storage_error(pgk_protocol *p)
{
    error(p, PGK_ERR_STORAGE, PGK_MSG_STORAGE, (uint32_t)-p->firmware->storage_error);
}

#if PGK_WITH_SIM_CONTROLS
static void ok(pgk_protocol *p, uint8_t kind)
{
    pgk_wire_ok(&p->out, kind);
    end_line(p);
}
#endif

static uint8_t powered(const pgk_protocol *p)
{
#if PGK_WITH_SIM_CONTROLS
    return p->powered;
#else
    (void)p;
    return 1;
#endif
}

static uint8_t provisioned(const pgk_protocol *p)
{
    return (p->firmware->state.flags & PGK_FLAG_PROVISIONED) != 0;
}

/* The serial as a line may show it: paygkit hides the device's own key by
 * value wherever it appears, which for a serial means one equal to the key's hex. */
static const char *shown_serial(const pgk_protocol *p, uint8_t *length)
{
    const pgk_state *s = &p->firmware->state;
    unsigned i;
    *length = s->serial_length;
    if (s->serial_length != 32 || !provisioned(p) || !powered(p)) {
        return s->serial;
    }
    for (i = 0; i < 32; i++) {
        char c = s->serial[i];
        c = (char)(c >= 'a' ? c - 32 : c);
        if (c != pgk_wire_hex_digit(s->key, i)) {
            return s->serial;
        }
    }
    *length = 8;
    return "<hidden>";
}

/* The STATUS fields of `mask` (0: the whole STATUS line, ended). */
static void status_fields(pgk_protocol *p, uint16_t mask)
{
    pgk_wire_status s;
    const pgk_firmware *f = p->firmware;
    pgk_firmware_status(f, &s.info);
    s.serial = shown_serial(p, &s.serial_length);
    s.used_top = f->state.used_top;
    s.used_bits = f->state.used_bits;
    s.typing = f->typing;
    s.typing_length = f->typing_started ? f->typing_length : 0;
    if (mask) {
        pgk_wire_status_fields(&p->out, &s, mask);
        return;
    }
    pgk_wire_status_line(&p->out, &s);
    end_line(p);
}

static void status_line(pgk_protocol *p)
{
    status_fields(p, 0);
}

/* The RESULT fields of each outcome (pgk_outcome_kind order); an applied
 * Disable PAYG or Counter Sync has no units. */
static const uint16_t result_fields[] = {
    PGK_RESULT_TYPE | PGK_RESULT_UNITS | PGK_RESULT_COUNT | PGK_RESULT_PAYG | PGK_RESULT_ACTIVE |
        PGK_RESULT_ACTIVE_UNTIL | PGK_RESULT_SECONDS_LEFT,
    PGK_RESULT_COUNT,
    PGK_RESULT_WAIT | PGK_RESULT_INVALID,
    PGK_RESULT_WAIT,
    PGK_RESULT_TEST | PGK_RESULT_ACTIVE,
    PGK_RESULT_WAIT | PGK_RESULT_INVALID,
    0,
};

/* The RESULT line of a token (r->outcome as the device gave it) and its
 * EVENT lines; 0 after a storage failure. */
static uint8_t result(pgk_protocol *p, pgk_wire_result *r)
{
    const pgk_outcome *o = &r->outcome;
    if (o->kind == PGK_OUTCOME_STORAGE_ERROR) {
        storage_error(p);
        return 0;
    }
    /* What paygkit shows of the device after the token. */
    pgk_firmware_status(p->firmware, &r->info);
    r->fields = result_fields[o->kind];
    if (o->token_type > PGK_SET_TIME) {
        r->fields &= (uint16_t)~PGK_RESULT_UNITS;
    }
    pgk_wire_result_line(&p->out, r);
#if PGK_PROTOCOL_TEXTS
    /* The outcome's text is the one its own signal showed, the last given. */
    pgk_out_text_begin(&p->out);
    if (p->event_n) {
        signal_text(p, &p->events[p->event_n - 1]);
    }
    pgk_out_text_end(&p->out);
#else
    /* Without the texts every text is empty: one string, no quoting. */
    pgk_out_str(&p->out, " text=\"\"");
#endif
    end_line(p);
    events(p);
    return 1;
}

/* ---- commands -------------------------------------------------------------------- */

/* The handlers answer 1 when the command's OK line follows, 0 after an ERR line. */

static uint8_t setup(pgk_protocol *p, const pgk_command *c)
{
    const pgk_state *s = &p->firmware->state;
    uint8_t length;
    uint8_t code;
    if (provisioned(p)) {
#if PGK_PROTOCOL_MESSAGES
        pgk_error e;
        pgk_zero(&e, sizeof e);
        e.code = PGK_ERR_ALREADY_PROVISIONED;
        e.message = PGK_MSG_ALREADY_PROVISIONED;
        e.word = shown_serial(p, &e.word_length);
        pgk_wire_error(&p->out, &e);
        end_line(p);
#else
        /* The message, which shows the stored serial, is left out. */
        error(p, PGK_ERR_ALREADY_PROVISIONED, PGK_MSG_ALREADY_PROVISIONED, 0);
#endif
        return 0;
    }
    code = (uint8_t)pgk_firmware_provision(p->firmware, &c->u.setup);
    if (code == PGK_PROVISION_STORAGE_ERROR) {
        storage_error(p);
        return 0;
    }
    if (code != PGK_PROVISION_OK) {
        /* Parsing let through only what a test code on a restricted keypad can break. */
        error(p, PGK_ERR_BAD_ARGUMENT,
              code == PGK_PROVISION_BAD_TEST_CODE ? PGK_MSG_TEST_CODE_KEYS : PGK_MSG_INTERNAL,
              c->u.setup.restricted_digits);
        return 0;
    }
    /* Read back what the memory holds now, not what was sent: that is the check. */
    {
        const char *serial = shown_serial(p, &length);
        pgk_wire_read_back(&p->out, serial, length, s, p->crlf);
    }
    if (!c->form) {
        pgk_wire_setup_line(&p->out, s);
        end_line(p);
    }
    return 1;
}

static uint8_t keys(pgk_protocol *p, const pgk_command *c)
{
    pgk_firmware *f = p->firmware;
    unsigned i;
    for (i = 0; i < c->u.keys.length; i++) {
        pgk_wire_result r;
        char key = c->u.keys.text[i];
#if PGK_PROTOCOL_TEXTS
        if (key == '#' && f->typing_started) {
            /* The digits the token is entered with, for its MALFORMED text. */
            pgk_copy(p->typed, f->typing, f->typing_length);
            p->token = p->typed;
            p->token_length = f->typing_length;
        }
#endif
        switch (pgk_firmware_press(f, key, &r.outcome)) {
        case PGK_PRESS_TOKEN:
            if (!result(p, &r)) {
                return 0;
            }
            break;
        case PGK_PRESS_STATUS:
            status_line(p);
            events(p);
            break;
        default:
            break;
        }
    }
    return 1;
}

static uint8_t token(pgk_protocol *p, char *text, uint16_t length, uint8_t grouped)
{
    pgk_wire_result r;
    unsigned i;
    unsigned n = 0;
    /* Digits in groups split by single spaces or dashes reach the device as
     * digits (typed_digits); anything else as typed, which it takes for MALFORMED. */
    if (grouped) {
        for (i = 0; i < length; i++) {
            if (is_digit(text[i])) {
                text[n++] = text[i];
            }
        }
        length = n;
    }
    /* A line is at most 256 characters, so the text after "TOKEN " fits the
     * device's uint8_t length. */
#if PGK_PROTOCOL_TEXTS
    p->token = text;
    p->token_length = (uint8_t)length;
#endif
    pgk_firmware_enter_token(p->firmware, text, (uint8_t)length, &r.outcome);
    return result(p, &r);
}

#if PGK_WITH_SIM_CONTROLS
static void clock_line(pgk_protocol *p)
{
    pgk_wire_clock_line(&p->out, (uint64_t)pgk_port_rtc_seconds(), pgk_port_uptime_seconds());
    end_line(p);
}

static void power_on(pgk_protocol *p)
{
    if (!p->powered) {
        pgk_port_sim_restart_uptime();
        pgk_firmware_power_on(p->firmware, &p->config);
        p->powered = 1;
    }
}

/* The simulator commands: the clocks, the power switch, the settings, the memory. */
static void simulate(pgk_protocol *p, const pgk_command *c)
{
    uint8_t was_on = p->powered;
    switch (c->kind) {
    case PGK_CMD_ADVANCE:
        if (pgk_port_rtc_seconds() + (int64_t)c->u.seconds > (int64_t)PGK_WIRE_MAX_RTC) {
            error(p, PGK_ERR_BAD_ARGUMENT, PGK_MSG_RTC_PAST_2100, 0);
            return;
        }
        pgk_port_sim_advance(c->u.seconds, was_on);
        if (was_on) {
            pgk_firmware_poll(p->firmware);
        }
        clock_line(p);
        break;
    case PGK_CMD_CLOCK:
        if (c->form != PGK_CLOCK_SHOW) {
            int64_t t = c->u.seconds;
            if (c->form == PGK_CLOCK_FORWARD) {
                t = pgk_port_rtc_seconds() + t;
            } else if (c->form == PGK_CLOCK_BACK) {
                t = pgk_port_rtc_seconds() - t;
            }
            if (t < 0 || t > (int64_t)PGK_WIRE_MAX_RTC) {
                error(p, PGK_ERR_BAD_ARGUMENT, PGK_MSG_RTC_RANGE, 0);
                return;
            }
            pgk_port_sim_set_rtc(t);
            if (was_on) {
                pgk_firmware_poll(p->firmware);
            }
        }
        clock_line(p);
        break;
    case PGK_CMD_CONFIG:
        if (c->form) {
            if (c->form & PGK_CONFIG_WAITING) {
                p->config.waiting_period_enabled = c->u.config.waiting;
            }
            if (c->form & PGK_CONFIG_TAMPER) {
                p->config.tamper_lock = c->u.config.tamper_lock;
            }
            if (c->form & PGK_CONFIG_KEYPAD_TIMEOUT) {
                p->config.keypad_timeout_seconds = c->u.config.keypad_timeout;
            }
            /* New settings are a restart, as a test build flashed. */
            p->powered = 0;
            if (was_on) {
                power_on(p);
            }
        }
        pgk_wire_config_line(&p->out, p->config.waiting_period_enabled, p->config.tamper_lock,
                             p->config.keypad_timeout_seconds);
        end_line(p);
        break;
    default:
        /* POWER, RESET, WIPE */
        if (c->kind != PGK_CMD_POWER || c->form == PGK_POWER_OFF) {
            p->powered = 0;
        }
        if (c->kind == PGK_CMD_WIPE) {
            pgk_port_sim_erase();
        }
        if ((c->kind == PGK_CMD_POWER && c->form == PGK_POWER_ON) || c->kind == PGK_CMD_RESET ||
            (c->kind == PGK_CMD_WIPE && was_on)) {
            power_on(p);
        }
        pgk_wire_power_line(&p->out, p->powered);
        end_line(p);
    }
    events(p);
    ok(p, c->kind);
}
#endif

static void answer(pgk_protocol *p, char *line, uint16_t length)
{
    pgk_command c;
    uint8_t kind = (uint8_t)pgk_wire_parse(line, length, PGK_WITH_SIM_CONTROLS, &c);
    unsigned i;
    if (kind == PGK_CMD_BLANK) {
        return;
    }
    /* Signals from before this command belong to no answer. */
    forget_events(p);
    if (kind == PGK_CMD_ERROR) {
        pgk_wire_error(&p->out, &c.u.error);
        end_line(p);
        return;
    }
    if ((kind == PGK_CMD_SETUP || kind == PGK_CMD_KEYS || kind == PGK_CMD_TOKEN ||
         kind == PGK_CMD_STATUS) &&
        !powered(p)) {
        error(p, PGK_ERR_POWERED_OFF, PGK_MSG_POWERED_OFF, 0);
        return;
    }
    switch (kind) {
    case PGK_CMD_HELLO:
#if PGK_WITH_SIM_CONTROLS
        pgk_wire_hello_line(&p->out, PGK_PROTOCOL_MODEL, PGK_PROTOCOL_FIRMWARE, 1, powered(p),
                            powered(p) ? provisioned(p) : 2);
#else
        /* A device is always on: only the last word changes. */
        pgk_out_str(&p->out, "HELLO protocol=1 model=" PGK_PROTOCOL_MODEL
                             " firmware=" PGK_PROTOCOL_FIRMWARE
                             " simulator=0 power=on provisioned=");
        pgk_out_char(&p->out, (char)('0' + provisioned(p)));
#endif
        end_line(p);
        break;
    case PGK_CMD_HELP:
#if PGK_PROTOCOL_MESSAGES
        for (i = 0; i < PGK_WIRE_HELP_LINES; i++) {
            pgk_out_str(&p->out, "HELP ");
            pgk_out_str(&p->out, pgk_wire_help_line(i));
            end_line(p);
        }
#else
        for (i = PGK_CMD_HELLO; i <= PGK_CMD_QUIT; i++) {
            pgk_wire_word(&p->out, PGK_WORD_HELP, (uint8_t)i);
            end_line(p);
        }
#endif
        break;
    case PGK_CMD_SETUP:
        if (!setup(p, &c)) {
            return;
        }
        break;
    case PGK_CMD_KEYS:
        if (!keys(p, &c)) {
            return;
        }
        break;
    case PGK_CMD_TOKEN:
        if (!token(p, (char *)c.u.keys.text, c.u.keys.length, c.form)) {
            return;
        }
        break;
    case PGK_CMD_STATUS:
        status_line(p);
        break;
    default:
#if PGK_WITH_SIM_CONTROLS
        if (kind != PGK_CMD_QUIT) {
            simulate(p, &c);
            return;
        }
#endif
        /* QUIT, the only other command a build without the simulator
         * parses: the cases then run from HELLO to STATUS, a short table. */
        p->quit = 1;
        break;
    }
    pgk_wire_ok(&p->out, kind);
    if (kind == PGK_CMD_KEYS) {
        status_fields(p, PGK_STATUS_FIELD_TYPING);
    }
    end_line(p);
}

void pgk_protocol_receive(pgk_protocol *p, uint8_t byte)
{
    pgk_line_event event = pgk_line_feed(&p->splitter, byte);
    /* Most bytes end no line: nothing more to do.  Returning first also
     * keeps the buffer's set-up below on one path (with -flto, which inlines
     * pgk_line_feed here, it was copied into each of its ways out). */
    if (event == PGK_LINE_PENDING) {
        return;
    }
#if !PGK_PROTOCOL_OUT_BUFFER
    /* Answers are written only from here, and each line end flushes them:
     * the bytes after the line are free until the next byte is fed.  A cut
     * line's length is past the buffer. */
    {
        uint16_t used = p->splitter.length;
        p->out.buffer = &p->spare;
        p->out.size = 1;
        if (used < PGK_WIRE_LINE_MAX) {
            p->out.buffer = p->splitter.line + used;
            p->out.size = (uint16_t)(PGK_WIRE_LINE_MAX - used);
        }
    }
#endif
    if (event == PGK_LINE_READY) {
        answer(p, p->splitter.line, p->splitter.length);
    } else { /* PGK_LINE_TOO_LONG */
        forget_events(p);
        error(p, PGK_ERR_LINE_TOO_LONG, PGK_MSG_TOO_LONG, 0);
    }
    p->splitter.length = 0; /* the next byte starts a new line */
}

#endif /* PGK_WITH_PROTOCOL */

/* Host harness of the device logic (pgk_device.c): a simulated device driven
 * one request line at a time on stdin, so that tests/firmware/test_c_device.py
 * can run the same events through it and through paygkit's Firmware model.
 * The RTC and the tick source move only when told to, as paygkit's
 * ManualClock and ManualTicks do; the NV memory is a PGK_NV_SIZE-byte array.
 *
 *   config WAITING LOCK TIMEOUT -> the settings of the next power-on (0/1, 0/1, seconds);
 *                                  a running device restarts with them, as
 *                                  paygkit's Simulator.configure does
 *   power on | power off        -> on: ticks restart at 0, the firmware loads its state
 *   wipe                        -> every memory byte 0xFF (a running device restarts)
 *   advance SECONDS             -> the RTC and, while on, the ticks move; then a poll
 *   rtc SECONDS                 -> the RTC alone is set (tamper); then a poll while on
 *   poll                        -> the main loop's housekeeping
 *   key C                       -> one key press (* # 0-9, or anything to see it ignored)
 *   token DIGITS                -> a whole token ("-" for an empty entry)
 *   setup SERIAL CODE KEY DIVIDER RESTRICTED TEST_CODE COUNT
 *                               -> provisioning (KEY in hex; TEST_CODE "-" for none)
 *   status                      -> nothing happens; the answer shows the state
 *   dump-nv                     -> the whole memory in hex
 *   fail-write N                -> the (N+1)-th NV byte write from now fails (the port
 *                                  reports it; the byte is not written)
 *   poke OFFSET HEX             -> bytes written straight into the memory (a foreign
 *                                  writer); the firmware sees them at its next load
 *
 * Every answer but dump-nv is one line:
 *   ok WHAT ev=EVENTS STATE
 * WHAT says what the request did: "-", "key", "status" (a '#' status),
 * "outcome=KIND,TYPE,UNITS,COUNT,WAIT,LIMIT" (a token), "setup=RESULT",
 * "power=RESULT" (the load's pgk_storage_result).  EVENTS is every
 * pgk_port_feedback call of the request as KIND.DETAIL.VALUE, separated by
 * ";", "-" for none.  STATE is "off" while off, else the status as
 * key=value fields (see print_state), with the output switch and the last
 * storage error.  A request the harness cannot read is answered "error ...".
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgk_device.h"

#define MAX_LINE 4096
#define MAX_EVENTS_TEXT 2048

static uint8_t memory[PGK_NV_SIZE];
static int64_t rtc;
static uint32_t uptime;
static int powered;
static long writes_before_failure = -1; /* -1: none planned */
static pgk_firmware firmware;
static pgk_firmware_config next_config = PGK_FIRMWARE_CONFIG_DEFAULT;
static int output_switch;
static char events[MAX_EVENTS_TEXT];
static size_t events_length;

int pgk_port_nv_read(uint32_t offset, void *buffer, size_t length)
{
    if (offset > PGK_NV_SIZE || length > PGK_NV_SIZE - offset) {
        fprintf(stderr, "read of %zu bytes at %lu\n", length, (unsigned long)offset);
        abort();
    }
    memcpy(buffer, memory + offset, length);
    return 0;
}

int pgk_port_nv_write(uint32_t offset, const void *data, size_t length)
{
    if (offset > PGK_NV_SIZE || length > PGK_NV_SIZE - offset) {
        fprintf(stderr, "write of %zu bytes at %lu\n", length, (unsigned long)offset);
        abort();
    }
    for (size_t i = 0; i < length; i++) {
        if (writes_before_failure == 0) {
            writes_before_failure = -1;
            return -1;
        }
        if (writes_before_failure > 0) {
            writes_before_failure--;
        }
        memory[offset + i] = ((const uint8_t *)data)[i];
    }
    return 0;
}

#if PGK_NV_NEEDS_ERASE
int pgk_port_nv_erase(uint32_t offset, size_t length)
{
    memset(memory + offset, 0xFF, length);
    return 0;
}
#endif

int64_t pgk_port_rtc_seconds(void)
{
    return rtc;
}

uint32_t pgk_port_uptime_seconds(void)
{
    return uptime;
}

void pgk_port_feedback(uint8_t kind, uint8_t detail, int64_t value)
{
    int written = snprintf(events + events_length, sizeof events - events_length,
                           "%s%u.%u.%" PRId64, events_length ? ";" : "", kind, detail, value);
    if (written < 0 || (size_t)written >= sizeof events - events_length) {
        fprintf(stderr, "too many events in one request\n");
        abort();
    }
    events_length += (size_t)written;
}

void pgk_port_output(uint8_t on)
{
    output_switch = on;
}

static void power_on(char *what, size_t size)
{
    uptime = 0;
    powered = 1;
    snprintf(what, size, "power=%d", (int)pgk_firmware_power_on(&firmware, &next_config));
}

static void print_state(void)
{
    if (!powered) {
        printf(" off\n");
        return;
    }
    pgk_firmware_status_info status;
    pgk_firmware_status(&firmware, &status);
    printf(" now=%" PRId64 " active=%u payg=%u left=%" PRId64 " until=%" PRId64
           " count=%" PRIu32 " used=",
           status.now, status.active, status.payg_enabled, status.seconds_left,
           status.active_until, status.count);
    for (unsigned distance = PGK_WINDOW_UNORDERED + 1u, first = 1; distance--;) {
        if (firmware.state.used_bits >> distance & 1u) {
            printf("%s%" PRIu32, first ? "" : ",", firmware.state.used_top - distance);
            first = 0;
        }
    }
    printf("%s invalid=%" PRIu32 " blocked=%" PRIu32 " tamper=%u test=%u typing=%.*s%s",
           firmware.state.used_count_n ? "" : "-", status.invalid_attempts,
           status.blocked_seconds, status.tamper, status.test_active, firmware.typing_length,
           firmware.typing, firmware.typing_length ? "" : "-");
    printf(" restricted=%u divider=%u provisioned=%u serial=%.*s%s out=%d storage=%d halted=%u\n",
           status.restricted_digits, status.time_divider, status.provisioned,
           firmware.state.serial_length, firmware.state.serial,
           firmware.state.serial_length ? "" : "-", output_switch, firmware.storage_error,
           firmware.halted);
}

static int parse_hex_key(const char *text, uint8_t key[16])
{
    if (strlen(text) != 32) {
        return 0;
    }
    for (int i = 0; i < 16; i++) {
        char pair[3] = {text[2 * i], text[2 * i + 1], 0};
        char *end;
        key[i] = (uint8_t)strtoul(pair, &end, 16);
        if (*end) {
            return 0;
        }
    }
    return 1;
}

/* Carries out one request; returns 0 when it could not be read. */
static int handle(char *line, char *what, size_t what_size)
{
    char *command = strtok(line, " ");
    char *argument = strtok(NULL, " ");
    if (!command) {
        return 0;
    }
    if (!strcmp(command, "config")) {
        char *lock = strtok(NULL, " ");
        char *timeout = strtok(NULL, " ");
        if (!argument || !lock || !timeout) {
            return 0;
        }
        next_config.waiting_period_enabled = (uint8_t)atoi(argument);
        next_config.tamper_lock = (uint8_t)atoi(lock);
        next_config.keypad_timeout_seconds = (uint16_t)atoi(timeout);
        if (powered) {
            power_on(what, what_size);
        }
        return 1;
    }
    if (!strcmp(command, "power") && argument) {
        if (!strcmp(argument, "on")) {
            if (!powered) {
                power_on(what, what_size);
            }
            return 1;
        }
        if (!strcmp(argument, "off")) {
            powered = 0;
            return 1;
        }
        return 0;
    }
    if (!strcmp(command, "wipe")) {
        memset(memory, 0xFF, sizeof memory);
        if (powered) {
            power_on(what, what_size);
        }
        return 1;
    }
    if (!strcmp(command, "advance") || !strcmp(command, "rtc")) {
        if (!argument) {
            return 0;
        }
        long long seconds = strtoll(argument, NULL, 10);
        if (command[0] == 'a') {
            rtc += seconds;
            if (powered) {
                uptime += (uint32_t)seconds;
            }
        } else {
            rtc = seconds;
        }
        if (powered) {
            pgk_firmware_poll(&firmware);
        }
        return 1;
    }
    if (!strcmp(command, "poke") && argument) {
        char *hex = strtok(NULL, " ");
        unsigned long offset = strtoul(argument, NULL, 10);
        size_t length = hex ? strlen(hex) / 2 : 0;
        if (!hex || strlen(hex) % 2 || offset > PGK_NV_SIZE || length > PGK_NV_SIZE - offset) {
            return 0;
        }
        for (size_t i = 0; i < length; i++) {
            char pair[3] = {hex[2 * i], hex[2 * i + 1], 0};
            memory[offset + i] = (uint8_t)strtoul(pair, NULL, 16);
        }
        return 1;
    }
    if (!strcmp(command, "fail-write") && argument) {
        writes_before_failure = atol(argument);
        return 1;
    }
    if (!strcmp(command, "status")) {
        return 1;
    }
    if (!powered) {
        snprintf(what, what_size, "refused-off");
        return 1;
    }
    if (!strcmp(command, "poll")) {
        pgk_firmware_poll(&firmware);
        return 1;
    }
    if (!strcmp(command, "key") && argument) {
        pgk_outcome outcome;
        switch (pgk_firmware_press(&firmware, argument[0], &outcome)) {
        case PGK_PRESS_TOKEN:
            snprintf(what, what_size, "outcome=%u,%u,%" PRIu32 ",%" PRIu32 ",%" PRIu32 ",%u",
                     outcome.kind, outcome.token_type, outcome.units, outcome.count,
                     outcome.wait_seconds, outcome.test_code_limit);
            break;
        case PGK_PRESS_STATUS:
            snprintf(what, what_size, "status");
            break;
        default:
            snprintf(what, what_size, "key");
            break;
        }
        return 1;
    }
    if (!strcmp(command, "token") && argument) {
        pgk_outcome outcome;
        const char *digits = strcmp(argument, "-") ? argument : "";
        size_t length = strlen(digits);
        if (length > 255) {
            return 0;
        }
        pgk_firmware_enter_token(&firmware, digits, (uint8_t)length, &outcome);
        snprintf(what, what_size, "outcome=%u,%u,%" PRIu32 ",%" PRIu32 ",%" PRIu32 ",%u",
                 outcome.kind, outcome.token_type, outcome.units, outcome.count,
                 outcome.wait_seconds, outcome.test_code_limit);
        return 1;
    }
    if (!strcmp(command, "setup") && argument) {
        char *code = strtok(NULL, " ");
        char *key = strtok(NULL, " ");
        char *divider = strtok(NULL, " ");
        char *restricted = strtok(NULL, " ");
        char *test_code = strtok(NULL, " ");
        char *count = strtok(NULL, " ");
        pgk_provisioning provisioning;
        if (!count || strlen(argument) > 255 || strlen(test_code) > 255 ||
            !parse_hex_key(key, provisioning.key)) {
            return 0;
        }
        provisioning.serial = argument;
        provisioning.serial_length = (uint8_t)strlen(argument);
        provisioning.starting_code = (uint32_t)strtoul(code, NULL, 10);
        provisioning.time_divider = (uint8_t)atoi(divider);
        provisioning.restricted_digits = (uint8_t)atoi(restricted);
        provisioning.test_code = strcmp(test_code, "-") ? test_code : NULL;
        provisioning.test_code_length = (uint8_t)strlen(test_code);
        provisioning.count = (uint32_t)strtoul(count, NULL, 10);
        snprintf(what, what_size, "setup=%d",
                 (int)pgk_firmware_provision(&firmware, &provisioning));
        return 1;
    }
    return 0;
}

int main(void)
{
    static char line[MAX_LINE];
    memset(memory, 0xFF, sizeof memory);
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\r\n")] = 0;
        if (!strcmp(line, "dump-nv")) {
            for (size_t i = 0; i < sizeof memory; i++) {
                printf("%02x", memory[i]);
            }
            printf("\n");
            fflush(stdout);
            continue;
        }
        char what[128] = "-";
        events_length = 0;
        events[0] = 0;
        if (!handle(line, what, sizeof what)) {
            printf("error cannot read the request\n");
        } else {
            printf("ok %s ev=%s", what, events_length ? events : "-");
            print_state();
        }
        fflush(stdout);
    }
    return 0;
}

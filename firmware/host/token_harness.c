/* Host harness of the token core: one request per line on stdin, one answer
 * per line on stdout, so that Python tests can drive the C decoder against
 * paygkit's own (tests/firmware/test_c_token.py).
 *
 *   decode KEY STARTING_CODE RESTRICTED LAST_COUNT USED DIGITS
 *       -> KIND UNITS COUNT LAST_COUNT USED EXTENDED
 *   start KEY              -> the starting code derived from the key
 *   next KEY CODE          -> one standard chain step
 *   hash KEY HEX_MESSAGE   -> SipHash-2-4 as 16 hex digits (the 64-bit integer)
 *
 * KEY is 32 hex digits; USED is a comma-separated list of counts or "-";
 * UNITS and COUNT are "-" where paygkit's DecodeResult has None.  A request
 * the harness cannot read is answered "error ..." and the harness goes on.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness_hex.h"
#include "pgk_siphash.h"
#include "pgk_token.h"

#define MAX_LINE 1024
#define MAX_LISTED_USED_COUNTS 64

static const char *const kind_names[] = {
    "ADD_TIME", "SET_TIME", "DISABLE_PAYG", "COUNTER_SYNC", "ALREADY_USED", "INVALID", "MALFORMED",
};

/* Reads exactly `size` bytes of hex; 0 on anything else. */
static int read_hex(const char *text, uint8_t *bytes, size_t size)
{
    if (text == NULL || strlen(text) != 2 * size) {
        return 0;
    }
    for (size_t i = 0; i < size; i++) {
        int byte = hex_byte(text + 2 * i);
        if (byte < 0) {
            return 0;
        }
        bytes[i] = (uint8_t)byte;
    }
    return 1;
}

static int read_u32(const char *text, uint32_t *value)
{
    if (text == NULL || *text < '0' || *text > '9') {
        return 0;
    }
    char *end;
    unsigned long long parsed = strtoull(text, &end, 10);
    if (*end != '\0' || parsed > 0xffffffffull) {
        return 0;
    }
    *value = (uint32_t)parsed;
    return 1;
}

static int read_used_counts(char *text, pgk_count_state *state)
{
    uint32_t counts[MAX_LISTED_USED_COUNTS];
    uint8_t n = 0;
    if (text == NULL) {
        return 0;
    }
    if (strcmp(text, "-") != 0) {
        for (char *item = strtok(text, ","); item != NULL; item = strtok(NULL, ",")) {
            if (n == MAX_LISTED_USED_COUNTS || !read_u32(item, &counts[n])) {
                return 0;
            }
            n++;
        }
    }
    pgk_used_counts_load(state, counts, n);
    return 1;
}

static void print_used_counts(const pgk_count_state *state)
{
    uint32_t counts[PGK_WINDOW_UNORDERED + 1];
    uint8_t n = pgk_used_counts_list(state, counts);
    if (n == 0) {
        printf("-");
    }
    for (uint8_t i = 0; i < n; i++) {
        printf(i ? ",%lu" : "%lu", (unsigned long)counts[i]);
    }
}

static void decode_request(char *arguments[6])
{
    pgk_device device;
    pgk_count_state state;
    uint32_t restricted;
    memset(&device, 0, sizeof device);
    if (!read_hex(arguments[0], device.key, sizeof device.key) ||
        !read_u32(arguments[1], &device.starting_code) || !read_u32(arguments[2], &restricted) ||
        restricted > 1 || !read_u32(arguments[3], &state.last_count) || arguments[5] == NULL ||
        strlen(arguments[5]) > 255) {
        printf("error bad decode request\n");
        return;
    }
    char *digits = arguments[5];
    if (!read_used_counts(arguments[4], &state)) {
        printf("error bad used counts\n");
        return;
    }
    device.restricted_digits = (uint8_t)restricted;
    pgk_decode_result result;
    pgk_token_kind kind =
        pgk_decode_token(&device, &state, digits, (uint8_t)strlen(digits), &result);
    if (kind != (pgk_token_kind)result.kind) {
        printf("error returned kind differs from result kind\n");
        return;
    }
    printf("%s ", kind_names[result.kind]);
    if (kind == PGK_ADD_TIME || kind == PGK_SET_TIME) {
        printf("%lu ", (unsigned long)result.units);
    } else {
        printf("- ");
    }
    if (PGK_ACCEPTED(kind) || kind == PGK_ALREADY_USED) {
        printf("%lu ", (unsigned long)result.count);
    } else {
        printf("- ");
    }
    printf("%lu ", (unsigned long)result.next.last_count);
    print_used_counts(&result.next);
    printf(" %u\n", (unsigned)result.extended);
}

int main(void)
{
    char line[MAX_LINE];
    while (fgets(line, sizeof line, stdin) != NULL) {
        char *words[8] = {0};
        size_t n = 0;
        for (char *word = strtok(line, " \t\r\n"); word != NULL && n < 8;
             word = strtok(NULL, " \t\r\n")) {
            words[n++] = word;
        }
        if (n == 0) {
            continue;
        }
        uint8_t key[16];
        if (strcmp(words[0], "decode") == 0 && n == 7) {
            decode_request(&words[1]);
        } else if (strcmp(words[0], "start") == 0 && n == 2 && read_hex(words[1], key, 16)) {
            printf("%lu\n", (unsigned long)pgk_starting_code_from_key(key));
        } else if (strcmp(words[0], "next") == 0 && n == 3 && read_hex(words[1], key, 16)) {
            uint32_t code;
            if (read_u32(words[2], &code)) {
                printf("%lu\n", (unsigned long)pgk_next_code(key, code));
            } else {
                printf("error bad code\n");
            }
        } else if (strcmp(words[0], "hash") == 0 && n == 3 && read_hex(words[1], key, 16)) {
            uint8_t message[64];
            size_t length = strlen(words[2]) / 2;
            if (length % 8 != 0 || length > sizeof message ||
                !read_hex(words[2], message, length)) {
                printf("error the message must be whole 8-byte blocks, at most 64 bytes\n");
            } else {
                uint32_t digest[2];
                pgk_siphash24(key, message, (uint8_t)length, digest);
                printf("%08lx%08lx\n", (unsigned long)digest[1], (unsigned long)digest[0]);
            }
        } else {
            printf("error unknown request\n");
        }
        fflush(stdout);
    }
    return 0;
}

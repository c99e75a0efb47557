/* Host harness of the state store: one request per line on stdin, one answer
 * per line on stdout, so that Python tests can hold the C store against
 * paygkit's own (tests/firmware/test_c_storage.py).  The NV port is a
 * PGK_NV_SIZE-byte array that can lose power after a set number of byte
 * writes, as tests/device/powercut.py does for paygkit's store.
 *
 *   blank FILL          -> ok                every byte FILL (hex); the store is forgotten
 *   image HEX           -> ok                the whole memory (2 * PGK_NV_SIZE hex digits)
 *   dump                -> HEX               the whole memory
 *   cut N               -> ok                power fails at the (N+1)-th byte write from now
 *   lie N               -> ok                the (N+1)-th byte write from now lands, but the
 *                                            port reports a failure (power stays on)
 *   stuck OFFSET        -> ok                that byte keeps its value whatever is written
 *                                            (a worn cell; the write reports success)
 *   reboot              -> ok                power back on, the store forgotten (as a reset)
 *   load                -> ok RECOVERED STATE | RESULT SLOT
 *   save STATE          -> RESULT BYTES      BYTES: byte writes the call made (landed ones)
 *   encode SEQUENCE STATE -> HEX | state
 *   crc HEX             -> the CRC-32 as 8 hex digits
 *
 * STATE is pgk_state's fields in declaration order, separated by spaces:
 * flags time_divider tamper serial_length test_code_length used_count_n
 * test_code_use_n reserved active_until wait_left latest_rtc_seen
 * test_active_until starting_code last_count invalid_attempts KEY USED USES
 * SERIAL TEST_CODE.  KEY, SERIAL and TEST_CODE (packed) are hex, USED and
 * USES comma-separated decimals; "-" is an empty list or text.  The lengths
 * are taken as given, not from the texts, so that states the layout cannot
 * hold can be sent.  RESULT is ok, unchanged, nv, state, newer, refused,
 * verify or not-loaded.  A request the harness cannot read is answered
 * "error ...".
 *
 * Built with PGK_NV_NEEDS_ERASE=1 the memory behaves as NOR flash: a write
 * can only clear bits, and no 4-byte word may be programmed more than twice
 * between erases, as on the nRF51 (either aborts the harness: a store bug);
 * an erase counts as one write against the power budget.
 */
#define _POSIX_C_SOURCE 200809L /* strtok_r */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness_hex.h"
#include "pgk_storage.h"

#define MAX_LINE 8192

static uint8_t memory[PGK_NV_SIZE];
static long writes_left = -1; /* -1: no power cut planned */
static long writes_before_lie = -1;
static long stuck_offset = -1;
static int power_off;
static unsigned long bytes_written;
static pgk_store store;
#if PGK_NV_NEEDS_ERASE
#define MAX_WORD_PROGRAMS 2
static unsigned word_programs[PGK_NV_SIZE / 4];
#endif

static void check_range(const char *action, uint32_t offset, size_t length)
{
    if (offset > PGK_NV_SIZE || length > PGK_NV_SIZE - offset) {
        fprintf(stderr, "the store tried to %s %zu bytes at offset %lu\n", action, length,
                (unsigned long)offset);
        abort();
    }
}

int pgk_port_nv_read(uint32_t offset, void *buffer, size_t length)
{
    check_range("read", offset, length);
    if (power_off) {
        return -1;
    }
    memcpy(buffer, memory + offset, length);
    return 0;
}

/* Spends one write of the power budget; 0 once the power has failed. */
static int power_for_one_write(void)
{
    if (power_off || writes_left == 0) {
        power_off = 1;
        return 0;
    }
    if (writes_left > 0) {
        writes_left--;
    }
    bytes_written++;
    return 1;
}

int pgk_port_nv_write(uint32_t offset, const void *bytes, size_t length)
{
    const uint8_t *data = bytes;
    check_range("write", offset, length);
#if PGK_NV_NEEDS_ERASE
    for (size_t word = offset / 4; length && word <= (offset + length - 1) / 4; word++) {
        if (++word_programs[word] > MAX_WORD_PROGRAMS) {
            fprintf(stderr, "the word at offset %zu was programmed %u times since its erase\n",
                    4 * word, word_programs[word]);
            abort();
        }
    }
#endif
    for (size_t i = 0; i < length; i++) {
        if (!power_for_one_write()) {
            return -1;
        }
#if PGK_NV_NEEDS_ERASE
        if ((memory[offset + i] & data[i]) != data[i]) {
            fprintf(stderr, "flash write of %02x over %02x at offset %lu sets bits\n", data[i],
                    memory[offset + i], (unsigned long)(offset + i));
            abort();
        }
#endif
        if ((long)(offset + i) != stuck_offset) {
            memory[offset + i] = data[i];
        }
        if (writes_before_lie == 0) {
            writes_before_lie = -1;
            return -1;
        }
        if (writes_before_lie > 0) {
            writes_before_lie--;
        }
    }
    return 0;
}

#if PGK_NV_NEEDS_ERASE
int pgk_port_nv_erase(uint32_t offset, size_t length)
{
    check_range("erase", offset, length);
    if (offset % PGK_STORAGE_SLOT_SIZE || length != PGK_STORAGE_SLOT_SIZE) {
        fprintf(stderr, "erase of %zu bytes at %lu is not one half\n", length,
                (unsigned long)offset);
        abort();
    }
    if (!power_for_one_write()) {
        return -1;
    }
    memset(memory + offset, 0xFF, length);
    memset(word_programs + offset / 4, 0, length / 4 * sizeof word_programs[0]);
    return 0;
}
#endif

/* -- reading requests ------------------------------------------------------------- */

/* Hex into at most `size` bytes; the number read, or -1 when it is not hex. */
static long read_hex(const char *text, uint8_t *bytes, size_t size)
{
    if (text == NULL) {
        return -1;
    }
    if (strcmp(text, "-") == 0) {
        return 0;
    }
    size_t length = strlen(text);
    if (length % 2 || length / 2 > size) {
        return -1;
    }
    for (size_t i = 0; i < length / 2; i++) {
        int byte = hex_byte(text + 2 * i);
        if (byte < 0) {
            return -1;
        }
        bytes[i] = (uint8_t)byte;
    }
    return (long)(length / 2);
}

static int read_unsigned(const char *text, unsigned long long highest, unsigned long long *value)
{
    if (text == NULL || *text < '0' || *text > '9') {
        return 0;
    }
    char *end;
    *value = strtoull(text, &end, 10);
    return *end == '\0' && *value <= highest;
}

static int read_i64(const char *text, int64_t *value)
{
    if (text == NULL || *text == '\0') {
        return 0;
    }
    char *end;
    long long parsed = strtoll(text, &end, 10);
    *value = (int64_t)parsed;
    return *end == '\0';
}

static int read_u8(const char *text, uint8_t *value)
{
    unsigned long long parsed;
    if (!read_unsigned(text, 0xFF, &parsed)) {
        return 0;
    }
    *value = (uint8_t)parsed;
    return 1;
}

static int read_u32(const char *text, uint32_t *value)
{
    unsigned long long parsed;
    if (!read_unsigned(text, 0xFFFFFFFFull, &parsed)) {
        return 0;
    }
    *value = (uint32_t)parsed;
    return 1;
}

/* A comma-separated list into at most `size` entries, through `each`. */
static int read_list(char *text, size_t size, int (*each)(const char *, void *, size_t),
                     void *entries)
{
    size_t n = 0;
    if (text == NULL) {
        return 0;
    }
    if (strcmp(text, "-") == 0) {
        return 1;
    }
    for (char *saved = NULL, *item = strtok_r(text, ",", &saved); item != NULL;
         item = strtok_r(NULL, ",", &saved)) {
        if (n == size || !each(item, entries, n)) {
            return 0;
        }
        n++;
    }
    return 1;
}

static size_t count_items(const char *text)
{
    size_t n = 1;
    if (text == NULL || strcmp(text, "-") == 0) {
        return 0;
    }
    for (; *text; text++) {
        n += *text == ',';
    }
    return n;
}

static int read_used_count(const char *text, void *entries, size_t index)
{
    return read_u32(text, (uint32_t *)entries + index);
}

static int read_test_code_use(const char *text, void *entries, size_t index)
{
    return read_i64(text, (int64_t *)entries + index);
}

/* The lists as a load keeps them (pgk_storage.h), with the lengths as given,
 * so that lists pgk_state cannot hold are refused as the layout's are. */
static int read_lists(char *used_text, char *uses_text, pgk_state *state)
{
    static uint32_t counts[PGK_MAX_USED_COUNTS + 1];
    static int64_t uses[PGK_MAX_TEST_CODE_USES + 1];
    uint8_t used_n = state->used_count_n;
    uint8_t use_n = state->test_code_use_n;
    size_t counts_n = count_items(used_text);
    size_t uses_n = count_items(uses_text);
    if (!read_list(used_text, PGK_MAX_USED_COUNTS + 1, read_used_count, counts) ||
        !read_list(uses_text, PGK_MAX_TEST_CODE_USES + 1, read_test_code_use, uses)) {
        return 0;
    }
    state->used_count_n = 0;
    state->test_code_use_n = 0;
    for (size_t i = 0; i < counts_n; i++) {
        pgk_state_add_used_count(state, counts[i]);
    }
    for (size_t i = 0; i < uses_n; i++) {
        pgk_state_add_test_code_use(state, uses[i]);
    }
    if (used_n != counts_n) {
        state->used_count_n = used_n;
    }
    if (use_n != uses_n) {
        state->test_code_use_n = use_n;
    }
    return 1;
}

#define STATE_WORDS 20

static int read_state(char **words, pgk_state *state)
{
    uint8_t *small[] = {&state->flags,           &state->time_divider,   &state->tamper,
                        &state->serial_length,   &state->test_code_length, &state->used_count_n,
                        &state->test_code_use_n, &state->reserved};
    pgk_i64 *times[] = {&state->active_until, &state->wait_left, &state->latest_rtc_seen,
                        &state->test_active_until};
    uint32_t *numbers[] = {&state->starting_code, &state->last_count, &state->invalid_attempts};
    size_t word = 0;
    memset(state, 0, sizeof *state);
    for (size_t i = 0; i < sizeof small / sizeof small[0]; i++) {
        if (!read_u8(words[word++], small[i])) {
            return 0;
        }
    }
    for (size_t i = 0; i < sizeof times / sizeof times[0]; i++) {
        int64_t time;
        if (!read_i64(words[word++], &time)) {
            return 0;
        }
        *times[i] = time;
    }
    for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++) {
        if (!read_u32(words[word++], numbers[i])) {
            return 0;
        }
    }
    return read_hex(words[word], state->key, sizeof state->key) == (long)sizeof state->key &&
           read_lists(words[word + 1], words[word + 2], state) &&
           read_hex(words[word + 3], (uint8_t *)state->serial, sizeof state->serial) >= 0 &&
           read_hex(words[word + 4], state->test_code, sizeof state->test_code) >= 0;
}

/* -- answering ---------------------------------------------------------------------- */

static const char *result_name(pgk_storage_result result)
{
    switch (result) {
    case PGK_STORAGE_OK:
        return "ok";
    case PGK_STORAGE_UNCHANGED:
        return "unchanged";
    case PGK_STORAGE_ERR_NV:
        return "nv";
    case PGK_STORAGE_ERR_STATE:
        return "state";
    case PGK_STORAGE_ERR_NEWER_LAYOUT:
        return "newer";
    case PGK_STORAGE_ERR_REFUSED:
        return "refused";
    case PGK_STORAGE_ERR_VERIFY:
        return "verify";
    case PGK_STORAGE_ERR_NOT_LOADED:
        return "not-loaded";
    }
    return "unknown";
}

static void print_state(const pgk_state *state)
{
    printf("%u %u %u %u %u %u %u %u %lld %lld %lld %lld %lu %lu %lu ", state->flags,
           state->time_divider, state->tamper, state->serial_length, state->test_code_length,
           state->used_count_n, state->test_code_use_n, state->reserved,
           (long long)state->active_until, (long long)state->wait_left,
           (long long)state->latest_rtc_seen, (long long)state->test_active_until,
           (unsigned long)state->starting_code, (unsigned long)state->last_count,
           (unsigned long)state->invalid_attempts);
    print_hex(state->key, sizeof state->key);
    printf(" ");
    if (state->used_count_n == 0) {
        printf("-");
    }
    for (unsigned distance = PGK_WINDOW_UNORDERED + 1u, first = 1; distance--;) {
        if (state->used_bits >> distance & 1u) {
            printf(first ? "%lu" : ",%lu", (unsigned long)(state->used_top - distance));
            first = 0;
        }
    }
    printf(" ");
    if (state->test_code_use_n == 0) {
        printf("-");
    }
    for (uint8_t i = 0; i < state->test_code_use_n; i++) {
        printf(i ? ",%lld" : "%lld", (long long)state->test_code_uses[i]);
    }
    printf(" ");
    print_hex((const uint8_t *)state->serial, state->serial_length);
    printf(" ");
    print_hex(state->test_code, (state->test_code_length + 1u) / 2u);
}

/* A memory given whole (blank or an image) was just erased and programmed once. */
static void memory_replaced(void)
{
#if PGK_NV_NEEDS_ERASE
    for (size_t word = 0; word < PGK_NV_SIZE / 4; word++) {
        word_programs[word] = 0;
    }
#endif
}

static void forget_store(void)
{
    memset(&store, 0, sizeof store);
    power_off = 0;
    writes_left = -1;
    writes_before_lie = -1;
    stuck_offset = -1;
}

static void answer(char **words, size_t count)
{
    const char *request = words[0];
    if (strcmp(request, "blank") == 0 && count == 2) {
        uint8_t fill;
        if (read_hex(words[1], &fill, 1) != 1) {
            printf("error bad fill byte");
            return;
        }
        memset(memory, fill, sizeof memory);
        memory_replaced();
        forget_store();
        printf("ok");
    } else if (strcmp(request, "image") == 0 && count == 2) {
        if (strlen(words[1]) != 2 * PGK_NV_SIZE ||
            read_hex(words[1], memory, sizeof memory) != PGK_NV_SIZE) {
            printf("error the image must be %u bytes of hex", PGK_NV_SIZE);
            return;
        }
        memory_replaced();
        forget_store();
        printf("ok");
    } else if (strcmp(request, "dump") == 0 && count == 1) {
        print_hex(memory, sizeof memory);
    } else if (strcmp(request, "cut") == 0 && count == 2) {
        unsigned long long budget;
        if (!read_unsigned(words[1], 1000000, &budget)) {
            printf("error bad budget");
            return;
        }
        writes_left = (long)budget;
        printf("ok");
    } else if (strcmp(request, "lie") == 0 && count == 2) {
        unsigned long long writes;
        if (!read_unsigned(words[1], 1000000, &writes)) {
            printf("error bad write count");
            return;
        }
        writes_before_lie = (long)writes;
        printf("ok");
    } else if (strcmp(request, "stuck") == 0 && count == 2) {
        unsigned long long offset;
        if (!read_unsigned(words[1], PGK_NV_SIZE - 1, &offset)) {
            printf("error bad offset");
            return;
        }
        stuck_offset = (long)offset;
        printf("ok");
    } else if (strcmp(request, "reboot") == 0 && count == 1) {
        forget_store();
        printf("ok");
    } else if (strcmp(request, "load") == 0 && count == 1) {
        pgk_state state;
        pgk_storage_result result = pgk_storage_load(&store, &state);
        if (result == PGK_STORAGE_OK) {
            printf("ok %u ", store.recovered_from_corruption);
            print_state(&state);
        } else {
            printf("%s %u", result_name(result), store.failed_slot);
        }
    } else if (strcmp(request, "save") == 0 && count == 1 + STATE_WORDS) {
        pgk_state state;
        if (!read_state(words + 1, &state)) {
            printf("error bad state");
            return;
        }
        unsigned long before = bytes_written;
        pgk_storage_result result = pgk_storage_save(&store, &state);
        printf("%s %lu", result_name(result), bytes_written - before);
    } else if (strcmp(request, "encode") == 0 && count == 2 + STATE_WORDS) {
        pgk_state state;
        uint32_t sequence;
        uint8_t record[PGK_STORAGE_MAX_RECORD_SIZE];
        if (!read_u32(words[1], &sequence) || !read_state(words + 2, &state)) {
            printf("error bad encode request");
            return;
        }
        uint16_t length = pgk_storage_encode(&state, sequence, record);
        if (length == 0) {
            printf("state");
        } else {
            print_hex(record, length);
        }
    } else if (strcmp(request, "crc") == 0 && count == 2) {
        static uint8_t data[MAX_LINE / 2];
        long length = read_hex(words[1], data, sizeof data);
        if (length < 0 || length > 0xFFFF) {
            printf("error bad hex");
            return;
        }
        printf("%08lx", (unsigned long)pgk_crc32(0, data, (uint16_t)length));
    } else {
        printf("error unknown request %s with %zu words", request, count);
    }
}

int main(void)
{
    static char line[MAX_LINE];
    char *words[2 + STATE_WORDS + 1];
    while (fgets(line, sizeof line, stdin) != NULL) {
        size_t count = 0;
        for (char *saved = NULL, *word = strtok_r(line, " \t\r\n", &saved);
             word != NULL && count < sizeof words / sizeof words[0];
             word = strtok_r(NULL, " \t\r\n", &saved)) {
            words[count++] = word;
        }
        if (count == 0) {
            printf("error empty request");
        } else {
            answer(words, count);
        }
        printf("\n");
        fflush(stdout);
    }
    return 0;
}

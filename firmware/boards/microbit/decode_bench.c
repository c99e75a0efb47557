/*
 * Worst-case token decode cost on the Cortex-M0, for QEMU run with
 * -icount shift=0: guest time then advances one nanosecond per instruction, so
 * TIMER0's microseconds count thousands of instructions whatever the host's speed.
 * scripts/firmware_decode_time.py boots it and turns the lines into a table.
 *
 * For each last count N it decodes, with pgk_decode_token:
 *   invalid  a standard token that matches no count: the whole forward window
 *   sync     the same with the Counter Sync value (999), whose window is wider
 *   valid    the token of count N + 2
 * and prints one line per case, then DONE:
 *   DECODE n=<N> case=<name> kind=<pgk_token_kind> count=<matched> steps=<hashes in R>
 *          reps=<R> us=<microseconds for R decodes>
 *   STEP reps=<R> steps=<hashes> us=<microseconds for R calls of pgk_next_code>
 *
 * Hash steps are counted by wrapping pgk_siphash24 at link time (-Wl,--wrap), so
 * the count is what the decoder really did, not the window rule restated; the
 * wrapper's 7 instructions (about 24 M0 cycles, 1.5%) per step are inside the
 * timings (the STEP line has the same wrapper, so per-step figures compare like
 * with like).
 */
#include "board.h"
#include "nrf51.h"
#include "pgk_siphash.h"
#include "pgk_token.h"

/* A short decode is repeated until this many microseconds (instructions / 1000)
 * have passed, so that the timer's 1 us grain is under 0.1% of the figure. */
#define MIN_TOTAL_US 20000u
#define STEP_REPS 1000u

static volatile uint32_t hash_steps;

void __real_pgk_siphash24(const uint8_t key[16], const uint8_t *message, uint8_t length,
                          uint32_t digest[2]);
void __wrap_pgk_siphash24(const uint8_t key[16], const uint8_t *message, uint8_t length,
                          uint32_t digest[2]);

void __wrap_pgk_siphash24(const uint8_t key[16], const uint8_t *message, uint8_t length,
                          uint32_t digest[2])
{
    hash_steps++;
    __real_pgk_siphash24(key, message, length, digest);
}

static void put(const char *text)
{
    size_t len = 0;
    while (text[len])
        len++;
    board_uart_write(text, len);
}

static void put_u32(uint32_t value)
{
    char digits[10];
    size_t n = 0;
    do {
        digits[sizeof digits - 1 - n++] = (char)('0' + value % 10u);
        value /= 10u;
    } while (value);
    board_uart_write(digits + sizeof digits - n, n);
}

static void put_field(const char *name, uint32_t value)
{
    put(" ");
    put(name);
    put("=");
    put_u32(value);
}

/* CC2: the board's interrupt handler uses CC0 and CC1, so a capture here never
 * races with it. */
static uint32_t now_us(void)
{
    TIMER0_TASKS_CAPTURE(2) = 1;
    return TIMER0_CC(2);
}

/* Interrupts are masked while timing so that the tick handler's instructions are
 * not counted; the timer counts on and the handler catches up afterwards. */
static uint32_t irq_off(void)
{
    uint32_t primask;
    __asm__ volatile("mrs %0, primask\n\tcpsid i" : "=r"(primask)::"memory");
    return primask;
}

static void irq_restore(uint32_t primask)
{
    __asm__ volatile("msr primask, %0" ::"r"(primask) : "memory");
}

static pgk_device device;

/* The token whose chain value at `count` carries `units` (SPEC 2.2, as
 * paygkit.token encodes it): the chain starts from the starting code with its
 * last three digits replaced by the token's, and the token is the chain value
 * at that count with the same replacement. */
static uint32_t token_value(uint32_t units, uint32_t count)
{
    uint32_t starting_base = device.starting_code % 1000u;
    uint32_t base = (starting_base + units) % 1000u;
    uint32_t code = device.starting_code - starting_base + base;
    for (uint32_t i = 0; i < count; i++)
        code = pgk_next_code(device.key, code);
    return code / 1000u * 1000u + base;
}

static void to_digits(uint32_t value, char digits[9])
{
    for (int i = 8; i >= 0; i--) {
        digits[i] = (char)('0' + value % 10u);
        value /= 10u;
    }
}

static void bench(uint32_t last_count, const char *name, uint32_t value)
{
    pgk_count_state state;
    pgk_decode_result result;
    char digits[9];
    pgk_count_state_init(&state, last_count);
    to_digits(value, digits);

    /* One untimed decode sizes the repetitions (and checks the case). */
    uint32_t start = now_us();
    pgk_decode_token(&device, &state, digits, 9, &result);
    uint32_t once = now_us() - start;
    uint32_t reps = once >= MIN_TOTAL_US ? 1u : MIN_TOTAL_US / (once + 1u) + 1u;

    uint32_t primask = irq_off();
    hash_steps = 0;
    start = now_us();
    for (uint32_t i = 0; i < reps; i++)
        pgk_decode_token(&device, &state, digits, 9, &result);
    uint32_t elapsed = now_us() - start;
    uint32_t steps = hash_steps;
    irq_restore(primask);

    put("DECODE");
    put_field("n", last_count);
    put(" case=");
    put(name);
    put_field("kind", result.kind);
    put_field("count", result.count);
    put_field("steps", steps);
    put_field("reps", reps);
    put_field("us", elapsed);
    put("\r\n");
}

/* A token with `units` that matches no count up to last_count + 100 (the wider
 * window): candidates are tried in turn and the decoder itself is the judge. */
static uint32_t invalid_value(uint32_t last_count, uint32_t units)
{
    uint32_t base = (device.starting_code % 1000u + units) % 1000u;
    pgk_count_state state;
    pgk_decode_result result;
    char digits[9];
    pgk_count_state_init(&state, last_count + PGK_WINDOW_COUNTER_SYNC);
    for (uint32_t high = 0;; high++) {
        uint32_t value = high * 1000u + base;
        to_digits(value, digits);
        if (pgk_decode_token(&device, &state, digits, 9, &result) == PGK_INVALID)
            return value;
    }
}

static void step_bench(void)
{
    uint32_t code = device.starting_code;
    uint32_t primask = irq_off();
    hash_steps = 0;
    uint32_t start = now_us();
    for (uint32_t i = 0; i < STEP_REPS; i++)
        code = pgk_next_code(device.key, code);
    uint32_t elapsed = now_us() - start;
    uint32_t steps = hash_steps;
    irq_restore(primask);
    put("STEP");
    put_field("reps", STEP_REPS);
    put_field("steps", steps);
    put_field("us", elapsed);
    put_field("code", code);
    put("\r\n");
}

int main(void)
{
    static const uint32_t counts[] = {10u, 1000u, 10000u};
    board_init();
    for (uint8_t i = 0; i < sizeof device.key; i++)
        device.key[i] = (uint8_t)(0xa5u ^ (i * 37u));
    device.starting_code = pgk_starting_code_from_key(device.key);
    put("BENCH decode window=");
    put_u32(PGK_WINDOW_FORWARD);
    put(" sync=");
    put_u32(PGK_WINDOW_COUNTER_SYNC);
    put("\r\n");
    step_bench();
    for (uint32_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        uint32_t n = counts[i];
        bench(n, "invalid", invalid_value(n, 1u));
        bench(n, "sync", invalid_value(n, PGK_COUNTER_SYNC_VALUE));
        bench(n, "valid", token_value(1u, n + 2u));
    }
    put("DONE\r\n");
    for (;;)
        board_idle();
}

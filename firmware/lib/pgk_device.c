/* The PAYG device logic: see pgk_device.h.  Each function follows its
 * namesake in src/paygkit/device/firmware.py, in the same order of checks,
 * so that the two can be read side by side; the reasons for each rule are
 * in firmware.py's module docstring and are not repeated here.
 *
 * The persistent state is changed in place and then saved: the state in RAM
 * is only ever ahead of the memory between a change and its save, and when
 * a save fails the state is loaded back, so RAM never runs on a state the
 * memory does not hold (paygkit keeps its old state object instead; the C
 * device has no room for two copies).
 *
 * Code size shapes the style: the time of a call lives in the pgk_firmware
 * rather than in 64-bit arguments, which the Cortex-M0 passes expensively.
 * For the same reason a build with PGK_RTC_32BIT computes with RTC times in
 * 32 bits (rtc_time, the bound is in pgk_port.h): a time the RTC produced
 * (now, the tamper references, latest_rtc_seen, the test code's times) is
 * read as its low word, exact within that bound.  Only active_until stays
 * 64-bit, since Add Time tokens pile it up without end, and wait_left,
 * which a foreign or upgraded record may hold at any size (stored_wait).
 * The state's times stay 64-bit either way, so the record is the same in
 * both builds; pgk_firmware's own RTC fields follow the build.
 */
#include "pgk_device.h"

#include "pgk_compiler.h"

#if PGK_RTC_32BIT
typedef uint32_t rtc_time;
#define RTC(seconds) ((uint32_t)(seconds))
#else
typedef int64_t rtc_time;
#define RTC(seconds) ((int64_t)(seconds))
#endif

#define SECONDS_PER_DAY 86400u
/* firmware.LATEST_RTC_WRITE_INTERVAL: an hourly mark is enough to catch a clock set back. */
#define LATEST_RTC_WRITE_INTERVAL 3600
#define MAX_INVALID_ATTEMPTS 0xFFFFu
#define MIN_WAIT_CHECKPOINT_SECONDS 60u
#define WAIT_CHECKPOINTS 16u

#if PGK_TEST_CODE_MAX_USES < 1 || PGK_TEST_CODE_MAX_USES > 16
#error "PGK_TEST_CODE_MAX_USES must be 1..16: the stored state remembers 16 uses"
#endif
#if PGK_WAIT_BASE_SECONDS < 1
#error "PGK_WAIT_BASE_SECONDS must be at least 1 (waiting_period_enabled = 0 turns the wait off)"
#endif
#if PGK_RTC_32BIT &&                                                                    \
    (PGK_TEST_CODE_PERIOD_SECONDS > 0x10000 || PGK_TEST_CODE_ACTIVE_SECONDS > 0x10000 || \
     PGK_TAMPER_TOLERANCE_SECONDS > 0x10000)
#error "with PGK_RTC_32BIT, RTC periods must fit the 2^16 margin of the RTC's bound (pgk_port.h)"
#endif
#if PGK_WAIT_CAP_SECONDS >= 0x80000000
#error "PGK_WAIT_CAP_SECONDS must stay below 2^31 so that doubling the wait cannot overflow"
#endif

/* Every call that may save starts here: storage_error is then this call's
 * alone, so a failure repeated in a later call can be told from the first. */
static void read_time(pgk_firmware *firmware)
{
    firmware->storage_error = PGK_STORAGE_OK;
    firmware->now = RTC(pgk_port_rtc_seconds());
    firmware->ticks = pgk_port_uptime_seconds();
}

/* WaitingPeriod.seconds_after.  GCC passes it the one config field it
 * reads (IPA-SRA); kept with its signature, it was 14 bytes more. */
static uint32_t wait_after(const pgk_firmware *firmware, uint32_t invalid_attempts)
{
    if (!firmware->config.waiting_period_enabled || invalid_attempts <= PGK_WAIT_FORGIVEN) {
        return 0;
    }
    uint32_t exponent = invalid_attempts - PGK_WAIT_FORGIVEN;
    uint32_t wait = PGK_WAIT_BASE_SECONDS;
    /* Doubling stops at the cap, which is below 2^31: no shift can overflow,
     * and from an exponent of 31 on any base >= 1 has reached the cap, as
     * paygkit's rule (the cap from 32 on) needs. */
    while (exponent-- && wait < PGK_WAIT_CAP_SECONDS) {
        wait <<= 1;
    }
    return wait < PGK_WAIT_CAP_SECONDS ? wait : PGK_WAIT_CAP_SECONDS;
}

static uint32_t wait_cap(const pgk_firmware *firmware)
{
    return wait_after(firmware, firmware->state.invalid_attempts);
}

static uint32_t remaining_wait(const pgk_firmware *firmware, uint32_t ticks)
{
    uint32_t left = firmware->wait_until_tick > ticks ? firmware->wait_until_tick - ticks : 0;
    uint32_t cap = wait_cap(firmware);
    return left < cap ? left : cap;
}

/* The stored wait_left saturated to 32 bits: every wait the device sets is
 * below the cap (< 2^31), so a larger one (a foreign or upgraded record)
 * compares as it would in 64 bits with anything the device compares it to. */
static uint32_t stored_wait(const pgk_firmware *firmware)
{
    int64_t wait = firmware->state.wait_left;
    return wait > UINT32_MAX ? UINT32_MAX : (uint32_t)wait;
}

static uint8_t provisioned(const pgk_firmware *firmware)
{
    return firmware->state.flags & PGK_FLAG_PROVISIONED;
}

/* Inlined: 16 bytes less than its calls. */
static INLINE uint8_t tamper_locked(const pgk_firmware *firmware)
{
    return firmware->state.tamper != 0 && firmware->config.tamper_lock;
}

static uint8_t payg_enabled(const pgk_firmware *firmware)
{
    return (firmware->state.flags & PGK_FLAG_PAYG_ENABLED) != 0;
}

/* paygkit's Status at an instant: pgk_firmware_status() reads the clocks
 * for it, update_output() gives the instant of the call being handled. */
static void status_at(const pgk_firmware *firmware, rtc_time now, uint32_t ticks,
                      pgk_firmware_status_info *status)
{
    const pgk_state *state = &firmware->state;
    uint8_t is_provisioned = provisioned(firmware);
    pgk_zero(status, sizeof *status);
    status->now = now;
    status->active_until = state->active_until;
    /* Status.active: test mode, or a usable device with time left or PAYG off. */
    uint8_t active = now < RTC(state->test_active_until);
    status->test_active = active;
    if (!is_provisioned || tamper_locked(firmware)) {
        /* inactive: 0 left, as pgk_zero left it */
    } else if (!payg_enabled(firmware)) {
        status->seconds_left = -1;
        active = 1;
    } else if (state->active_until > (int64_t)now) {
        /* Unsigned: update_output() asks this of any state, a refused one
         * too, whose end may lie more than 2^63 after a 64-bit RTC. */
        status->seconds_left = (int64_t)((uint64_t)state->active_until - (uint64_t)now);
        active = 1;
    }
    /* Both are 0 or 1: & rather than && is 8 bytes less. */
    status->active = active & !firmware->halted;
    status->count = state->last_count;
    status->invalid_attempts = state->invalid_attempts;
    status->blocked_seconds = remaining_wait(firmware, ticks);
    status->provisioned = is_provisioned;
    status->payg_enabled = payg_enabled(firmware);
    status->tamper = state->tamper;
    status->restricted_digits = (state->flags & PGK_FLAG_RESTRICTED_DIGITS) != 0;
    status->time_divider = is_provisioned ? state->time_divider : 1;
}

/* A halted device keeps the output off: it no longer knows what it may do.
 * Status.active decides it, from the status of this call's instant. */
static void update_output(pgk_firmware *firmware)
{
    pgk_firmware_status_info status;
    status_at(firmware, RTC(firmware->now), firmware->ticks, &status);
    firmware->output_on = status.active;
    pgk_port_output(firmware->output_on);
}

/* Out of line: 12 bytes less than at its three uses. */
NOINLINE static void start_session(pgk_firmware *firmware)
{
#if PGK_WITH_TAMPER
    pgk_clock_reference *clocks = &firmware->clocks;
    clocks->reference_rtc = firmware->now;
    clocks->reference_tick = firmware->ticks;
    clocks->latest_rtc_this_session = firmware->now;
#else
    (void)firmware;
#endif
}

/* A failed save may have landed or not: take whatever the memory now holds
 * as the state, so that RAM and memory agree again. */
static void recover_from_failed_save(pgk_firmware *firmware, pgk_storage_result failure)
{
    /* The reload sets failed_slot its own way: keep the failed save's, which
     * is what storage_error reports.  The store's address taken once: 8
     * bytes less than for each use. */
    pgk_store *store = &firmware->store;
    uint8_t failed_slot = store->failed_slot;
    firmware->storage_error = (int8_t)failure;
    if (pgk_storage_load(store, &firmware->state) < 0) {
        firmware->halted = 1;
    }
    store->failed_slot = failed_slot;
}

/* _commit: save the changed state; 0 when it is stored (feedback may follow). */
static int commit(pgk_firmware *firmware)
{
    if (RTC(firmware->state.latest_rtc_seen) < RTC(firmware->now)) {
        firmware->state.latest_rtc_seen = firmware->now;
    }
    pgk_storage_result result = pgk_storage_save(&firmware->store, &firmware->state);
    if (result < 0) {
        recover_from_failed_save(firmware, result);
        return 1;
    }
    return 0;
}

/* _check_tamper; nonzero when saving the flags failed. */
static int check_tamper(pgk_firmware *firmware)
{
#if PGK_WITH_TAMPER
    uint8_t found = 0;
    rtc_time now = RTC(firmware->now);
    pgk_clock_reference *clocks = &firmware->clocks;
    uint32_t tick_elapsed = firmware->ticks - clocks->reference_tick;
    /* How far the RTC fell behind the ticks (negative: ran ahead).  paygkit's
     * tolerance, ratio x ticks + seconds, is a float; for whole seconds the
     * comparison gives the same answer with the quotient floored. */
    uint32_t tolerance = PGK_QUOTIENT(pgk_divide(tick_elapsed, PGK_TAMPER_TOLERANCE_DIVISOR)) +
                         PGK_TAMPER_TOLERANCE_SECONDS;
#if PGK_RTC_32BIT
    /* The same in 32 bits: the RTC's elapsed time and the ticks' are each
     * below 2^32, so their difference is compared by its size and sign,
     * and an RTC set back (behind by more than the ticks) without a sum
     * that could wrap. */
    rtc_time reference = RTC(clocks->reference_rtc);
    if (now < reference) {
        uint32_t back = reference - now;
        if (back > tolerance || tick_elapsed > tolerance - back) {
            found = PGK_TAMPER_RTC_SLOW;
        }
    } else {
        uint32_t rtc_elapsed = now - reference;
        uint32_t ahead = rtc_elapsed > tick_elapsed;
        if ((ahead ? rtc_elapsed - tick_elapsed : tick_elapsed - rtc_elapsed) > tolerance) {
            found = ahead ? PGK_TAMPER_RTC_FAST : PGK_TAMPER_RTC_SLOW;
        }
    }
#else
    int64_t behind = (int64_t)tick_elapsed - ((int64_t)now - RTC(clocks->reference_rtc));
    if (behind > (int64_t)tolerance) {
        found = PGK_TAMPER_RTC_SLOW;
    } else if (-behind > (int64_t)tolerance) {
        found = PGK_TAMPER_RTC_FAST;
    }
#endif
    rtc_time session = RTC(clocks->latest_rtc_this_session);
    rtc_time latest = RTC(firmware->state.latest_rtc_seen);
    if (latest < session) {
        latest = session;
    }
    if (now + PGK_TAMPER_TOLERANCE_SECONDS < latest) {
        found |= PGK_TAMPER_RTC_BACKWARDS;
    }
    if (session < now) {
        clocks->latest_rtc_this_session = now;
    }
    if (found) {
        clocks->reference_rtc = now;
        clocks->reference_tick = firmware->ticks;
    }
    uint8_t new_flags = found & (uint8_t)~firmware->state.tamper;
    if (!new_flags) {
        return 0;
    }
    firmware->state.tamper |= found;
    if (commit(firmware)) {
        return 1;
    }
    pgk_port_feedback(PGK_FEEDBACK_TAMPER, firmware->config.tamper_lock, new_flags);
#else
    (void)firmware;
#endif
    return 0;
}

/* A save of check_tamper_and_wait failed (no wait is that long). */
#define SAVE_FAILED UINT32_MAX

/* _checkpoint_wait; the wait left, or SAVE_FAILED. */
static uint32_t checkpoint_wait(pgk_firmware *firmware)
{
    uint32_t stored = stored_wait(firmware);
    uint32_t left = remaining_wait(firmware, firmware->ticks);
    uint32_t interval = (wait_cap(firmware) + WAIT_CHECKPOINTS - 1) / WAIT_CHECKPOINTS;
    if (interval < MIN_WAIT_CHECKPOINT_SECONDS) {
        interval = MIN_WAIT_CHECKPOINT_SECONDS;
    }
    if (stored != left && (left == 0 || stored - left >= interval)) {
        firmware->state.wait_left = left;
        if (commit(firmware)) {
            return SAVE_FAILED;
        }
    }
    return left;
}

/* The housekeeping before an entry and in poll(): the wait left (an entry
 * asks it next, of the same instant and state), or SAVE_FAILED. */
static uint32_t check_tamper_and_wait(pgk_firmware *firmware)
{
    if (check_tamper(firmware)) {
        return SAVE_FAILED;
    }
    return checkpoint_wait(firmware);
}

void pgk_firmware_status(const pgk_firmware *firmware, pgk_firmware_status_info *status)
{
    rtc_time now = RTC(pgk_port_rtc_seconds());
    status_at(firmware, now, pgk_port_uptime_seconds(), status);
}

pgk_storage_result pgk_firmware_power_on(pgk_firmware *firmware,
                                         const pgk_firmware_config *config)
{
    pgk_zero(firmware, sizeof *firmware);
    pgk_copy(&firmware->config, config, sizeof *config);
    pgk_storage_result loaded = pgk_storage_load(&firmware->store, &firmware->state);
    read_time(firmware);
    if (loaded < 0) {
        firmware->storage_error = (int8_t)loaded;
        firmware->halted = 1;
        update_output(firmware);
        return loaded;
    }
    start_session(firmware);
    /* wait_left is never negative in a loaded state; only its size needs the cap. */
    uint32_t cap = wait_cap(firmware);
    uint32_t stored = stored_wait(firmware);
    firmware->wait_until_tick = firmware->ticks + (stored < cap ? stored : cap);
    if (provisioned(firmware)) {
        check_tamper(firmware);
    }
    update_output(firmware);
    return loaded;
}

/* One compare refuses what is below and above the keys; in unsigned, not
 * uint8_t, so that no byte is cut out of the difference first (12 bytes
 * less). */
static int digit_ok(char c, uint8_t restricted)
{
    return (unsigned)(c - (restricted ? '1' : '0')) < (restricted ? 4u : 10u);
}

uint8_t pgk_serial_ok(const char *serial, uint8_t length)
{
    if (length < 1 || length > PGK_SERIAL_MAX_LENGTH) {
        return 0;
    }
    for (unsigned i = 0; i < length; i++) {
        char c = serial[i];
        if (!digit_ok(c, 0) && (uint8_t)((c | 0x20) - 'a') >= 26u &&
            (i == 0 || (c != '.' && c != '_' && c != ':' && c != '+' && c != '-'))) {
            return 0;
        }
    }
    return 1;
}

/* What pgk_firmware_provision refuses, in its order of checks; PGK_PROVISION_OK
 * when nothing.  (Apart from the setting up, which then reads the restricted
 * flag again where it stores it: 4 bytes less.) */
static pgk_provision_result refusal(const pgk_firmware *firmware,
                                    const pgk_provisioning *provisioning,
                                    uint8_t test_code_length)
{
    uint8_t restricted = provisioning->restricted_digits;
    if (firmware->halted) {
        return PGK_PROVISION_STORAGE_ERROR;
    }
    if (!pgk_serial_ok(provisioning->serial, provisioning->serial_length)) {
        return PGK_PROVISION_BAD_SERIAL;
    }
    if (provisioning->starting_code > PGK_MAX_STARTING_CODE) {
        return PGK_PROVISION_BAD_STARTING_CODE;
    }
    if (provisioning->time_divider == 0) {
        return PGK_PROVISION_BAD_DIVIDER;
    }
    if (restricted > PGK_WITH_RESTRICTED) {
        return PGK_PROVISION_BAD_RESTRICTED;
    }
    if (test_code_length > (PGK_WITH_TEST_CODE ? PGK_MAX_TYPED_DIGITS : 0)) {
        return PGK_PROVISION_BAD_TEST_CODE;
    }
    for (unsigned i = 0; i < test_code_length; i++) {
        if (!digit_ok(provisioning->test_code[i], restricted)) {
            return PGK_PROVISION_BAD_TEST_CODE;
        }
    }
    if (provisioning->count > PGK_MAX_COUNT) {
        return PGK_PROVISION_BAD_COUNT;
    }
    return PGK_PROVISION_OK;
}

pgk_provision_result pgk_firmware_provision(pgk_firmware *firmware,
                                            const pgk_provisioning *provisioning)
{
    uint8_t test_code_length = provisioning->test_code ? provisioning->test_code_length : 0;
    pgk_provision_result result = refusal(firmware, provisioning, test_code_length);
    if (result != PGK_PROVISION_OK) {
        return result;
    }
    pgk_state *state = &firmware->state;
    read_time(firmware);
    pgk_state_init(state);
    state->flags = PGK_FLAG_PAYG_ENABLED | PGK_FLAG_PROVISIONED |
                   (uint8_t)(provisioning->restricted_digits << 1);
    state->time_divider = provisioning->time_divider;
    state->serial_length = provisioning->serial_length;
    pgk_copy(state->serial, provisioning->serial, provisioning->serial_length);
    pgk_copy(state->key, provisioning->key, sizeof state->key);
    state->starting_code = provisioning->starting_code;
    state->last_count = provisioning->count;
#if !PGK_RTC_32BIT
    /* commit() raises it to now; only a 64-bit RTC can be below the 0 it starts at. */
    state->latest_rtc_seen = firmware->now;
#endif
    state->test_code_length = test_code_length;
    /* Packed BCD, two digits a byte, an odd last digit followed by the
     * nibble F.  Packed here, once everything passed, rather than as the
     * digits are checked: no buffer to fill and copy (12 bytes less). */
    for (unsigned i = 0; i < test_code_length; i += 2) {
        unsigned low =
            i + 1u < test_code_length ? (unsigned)(provisioning->test_code[i + 1u] - '0') : 0xFu;
        state->test_code[i / 2u] = (uint8_t)((provisioning->test_code[i] - '0') << 4 | low);
    }
    if (commit(firmware)) {
        result = PGK_PROVISION_STORAGE_ERROR;
    } else {
        start_session(firmware);
        firmware->wait_until_tick = firmware->ticks;
        firmware->typing_started = 0;
        firmware->typing_length = 0;
    }
    update_output(firmware);
    return result;
}

/* A token's feedback value: an extended token's time can pass 2^32 seconds,
 * a standard one's cannot, nor can the test code's wait when RTC times are
 * 32-bit; and 32-bit arguments pass in registers. */
#if PGK_WITH_EXTENDED || !PGK_RTC_32BIT
typedef int64_t token_value;
#define FINISH static
#else
typedef uint32_t token_value;
#define FINISH NOINLINE static
#endif

/* The outcome's kind is set by pgk_firmware_enter_token from the return
 * value.  With a 32-bit value it is kept out of line (16 bytes less): one
 * call here is cheaper than the port's 64-bit argument set up at each of
 * the many ways out of a token.  A 64-bit value would go on the stack, and
 * inlined it is 16 bytes less.  The outcome's kind, the feedback kind and
 * its detail come packed in one argument (ENDING), mostly a constant: one
 * register to load at each way out instead of three (30 bytes less with
 * the accepted kinds' table in apply() and the keypad's time-out, which
 * gives its feedback through here too). */
#define ENDING(outcome_kind, feedback_kind, detail) \
    ((unsigned)(outcome_kind) | (unsigned)(feedback_kind) << 3 | (unsigned)(detail) << 7)
/* Each kind must fit its bits, or an ending would give the wrong one. */
#define ENDING_KINDS_FIT (PGK_OUTCOME_STORAGE_ERROR < 8 && PGK_FEEDBACK_KEY_PRESS < 16)
typedef char ending_kinds_fit[ENDING_KINDS_FIT ? 1 : -1];
FINISH uint8_t finish(unsigned ending, token_value value)
{
    pgk_port_feedback((uint8_t)(ending >> 3 & 0xFu), (uint8_t)(ending >> 7), value);
    return (uint8_t)(ending & 7u);
}

/* _count_invalid */
static uint8_t count_invalid(pgk_firmware *firmware, unsigned ending, pgk_outcome *outcome)
{
    pgk_state *state = &firmware->state;
    uint32_t attempts = state->invalid_attempts;
    attempts += attempts < MAX_INVALID_ATTEMPTS;
    uint32_t wait = wait_after(firmware, attempts);
    /* Only at the attempts' cap can nothing change; paygkit then writes nothing. */
    if (attempts != state->invalid_attempts || stored_wait(firmware) != wait) {
        state->invalid_attempts = attempts;
        state->wait_left = wait;
        if (commit(firmware)) {
            return PGK_OUTCOME_STORAGE_ERROR;
        }
    }
    firmware->wait_until_tick = firmware->ticks + wait;
    outcome->wait_seconds = wait;
    return finish(ending, wait);
}

#if PGK_WITH_TEST_CODE
static int is_test_code(const pgk_state *state, const char *digits, uint8_t length)
{
    if (state->test_code_length == 0 || length != state->test_code_length) {
        return 0;
    }
    for (unsigned i = 0; i < length; i++) {
        /* The digit's nibble against the typed digit's value: 12 bytes less
         * than shifting by a computed amount and comparing characters. */
        unsigned byte = state->test_code[i / 2u];
        if (!(i & 1u)) {
            byte >>= 4;
        }
        if ((unsigned)(digits[i] - '0') != (byte & 0xFu)) {
            return 0;
        }
    }
    return 1;
}

/* _use_test_code */
static uint8_t use_test_code(pgk_firmware *firmware, pgk_outcome *outcome)
{
    pgk_state *state = &firmware->state;
    rtc_time now = RTC(firmware->now);
    rtc_time oldest_recent = PGK_RTC_32BIT ? UINT32_MAX : INT64_MAX;
    uint8_t kept = 0;
    /* A use is recent when use > now - PERIOD, written without the
     * subtraction that would go below 0 in a 32-bit RTC's first hour.  The
     * recent ones are kept in their order as they are counted: when the
     * limit refuses this use, every stored use is recent (the state holds
     * at most PGK_TEST_CODE_MAX_USES), so the state is left as it was. */
    for (unsigned i = 0; i < state->test_code_use_n; i++) {
        rtc_time use = RTC(state->test_code_uses[i]);
        if (use + PGK_TEST_CODE_PERIOD_SECONDS > now) {
            if (use < oldest_recent) {
                oldest_recent = use;
            }
            state->test_code_uses[kept++] = state->test_code_uses[i];
        }
    }
    if (kept >= PGK_TEST_CODE_MAX_USES) {
        /* Uses stamped after the RTC (a clock set back) make this at least 1. */
        rtc_time wait = oldest_recent + PGK_TEST_CODE_PERIOD_SECONDS - now;
        outcome->test_code_limit = 1;
        outcome->wait_seconds = (uint32_t)wait;
        return finish(ENDING(PGK_OUTCOME_BLOCKED, PGK_FEEDBACK_ENTRY_LOCKED,
                             PGK_LOCKED_TEST_CODE_LIMIT),
                      wait);
    }
    /* Fewer than PGK_TEST_CODE_MAX_USES were recent: this one fits. */
    state->test_code_uses[kept] = now;
    state->test_code_use_n = kept + 1u;
    state->test_active_until = now + PGK_TEST_CODE_ACTIVE_SECONDS;
    if (commit(firmware)) {
        return PGK_OUTCOME_STORAGE_ERROR;
    }
    return finish(ENDING(PGK_OUTCOME_TEST_CODE, PGK_FEEDBACK_TEST_CODE, 0),
                  PGK_TEST_CODE_ACTIVE_SECONDS);
}
#endif

/* _apply: the token's effect, saved together with its count. */
static uint8_t apply(pgk_firmware *firmware, const pgk_decode_result *result,
                     pgk_outcome *outcome)
{
    pgk_state *state = &firmware->state;
    rtc_time now = RTC(firmware->now);
    uint8_t kind = result->kind;
    /* The ending of each kind an accepted token can have: its feedback,
     * with detail 1 for Set Time. */
    static const uint8_t ending_of[] = {
        [PGK_ADD_TIME] = ENDING(PGK_OUTCOME_APPLIED, PGK_FEEDBACK_TIME_CHANGED, 0),
        [PGK_SET_TIME] = ENDING(PGK_OUTCOME_APPLIED, PGK_FEEDBACK_TIME_CHANGED, 1),
        [PGK_DISABLE_PAYG] = ENDING(PGK_OUTCOME_APPLIED, PGK_FEEDBACK_PAYG_DISABLED, 0),
        [PGK_COUNTER_SYNC] = ENDING(PGK_OUTCOME_APPLIED, PGK_FEEDBACK_COUNTER_SYNCED, 0),
    };
    /* Looked up here, not at the end: after the save it costs 4 bytes more
     * and 8 of stack on the deepest path. */
    unsigned ending = ending_of[kind];
    token_value value = result->count;
    state->last_count = result->next.last_count;
    state->used_top = result->next.used_top;
    state->used_bits = result->next.used_bits;
    state->used_count_n = pgk_bit_count(result->next.used_bits);
    state->invalid_attempts = 0;
    state->wait_left = 0;
    if (kind <= PGK_SET_TIME) { /* Add Time or Set Time (pgk_token_kind's first two) */
        uint32_t units = result->units;
        uint8_t divider = state->time_divider;
        outcome->units = units;
#if PGK_WITH_EXTENDED
        /* units x 86400 / divider, rounded down once, without a 64-bit
         * division: units < 2^20 and the remainder < 255, so the second
         * product fits 32 bits. */
        uint64_t per_unit = pgk_divide(SECONDS_PER_DAY, divider);
        uint32_t rest = PGK_REMAINDER(per_unit) * units;
        value = (int64_t)units * PGK_QUOTIENT(per_unit) + PGK_QUOTIENT(pgk_divide(rest, divider));
#else
        /* Standard units are at most 999: units x 86400 < 2^27 needs neither
         * a 64-bit product nor a split division. */
        value = PGK_QUOTIENT(pgk_divide(units * SECONDS_PER_DAY, divider));
#endif
        /* Set Time counts from now, Add Time from the later of now and the
         * current end: one sum for both (16 bytes less). */
        int64_t from = now;
        if (kind == PGK_ADD_TIME) {
            if (state->active_until > from) {
                from = state->active_until;
            }
        } else {
            state->flags |= PGK_FLAG_PAYG_ENABLED;
            state->tamper = 0;
            state->latest_rtc_seen = now;
        }
        state->active_until = from + value;
    } else if (kind == PGK_DISABLE_PAYG) {
        state->flags &= (uint8_t)~PGK_FLAG_PAYG_ENABLED;
    }
    if (commit(firmware)) {
        return PGK_OUTCOME_STORAGE_ERROR;
    }
    firmware->wait_until_tick = firmware->ticks;
    if (kind == PGK_SET_TIME) {
        start_session(firmware);
    }
    outcome->token_type = kind;
    outcome->count = result->count;
    return finish(ending, value);
}

static uint8_t decode_and_apply(pgk_firmware *firmware, const char *digits, uint8_t length,
                                pgk_outcome *outcome)
{
    const pgk_state *state = &firmware->state;
    pgk_device device;
    pgk_count_state counts;
    pgk_decode_result result;
    pgk_copy(device.key, state->key, sizeof device.key);
    device.starting_code = state->starting_code;
    device.restricted_digits = (state->flags & PGK_FLAG_RESTRICTED_DIGITS) != 0;
    counts.last_count = state->last_count;
    counts.used_top = state->used_top;
    counts.used_bits = state->used_bits;
    uint8_t kind = pgk_decode_token(&device, &counts, digits, length, &result);
    if (kind >= PGK_INVALID) {
        return count_invalid(firmware,
                             kind == PGK_MALFORMED
                                 ? ENDING(PGK_OUTCOME_MALFORMED, PGK_FEEDBACK_INVALID, 1)
                                 : ENDING(PGK_OUTCOME_INVALID, PGK_FEEDBACK_INVALID, 0),
                             outcome);
    }
    if (kind == PGK_ALREADY_USED) {
        outcome->count = result.count;
        return finish(ENDING(PGK_OUTCOME_ALREADY_USED, PGK_FEEDBACK_ALREADY_USED, 0),
                      result.count);
    }
    return apply(firmware, &result, outcome);
}

static uint8_t enter_token(pgk_firmware *firmware, const char *digits, uint8_t length,
                           pgk_outcome *outcome)
{
    pgk_zero(outcome, sizeof *outcome);
    if (firmware->halted) {
        return PGK_OUTCOME_STORAGE_ERROR;
    }
    read_time(firmware);
    if (!provisioned(firmware)) {
        return finish(ENDING(PGK_OUTCOME_NOT_PROVISIONED, PGK_FEEDBACK_ENTRY_LOCKED,
                             PGK_LOCKED_NOT_PROVISIONED),
                      0);
    }
    uint32_t wait = check_tamper_and_wait(firmware);
    if (wait == SAVE_FAILED) {
        return PGK_OUTCOME_STORAGE_ERROR;
    }
    if (wait > 0) {
        outcome->wait_seconds = wait;
        return finish(ENDING(PGK_OUTCOME_BLOCKED, PGK_FEEDBACK_ENTRY_LOCKED,
                             PGK_LOCKED_WAITING),
                      wait);
    }
#if PGK_WITH_TEST_CODE
    if (is_test_code(&firmware->state, digits, length)) {
        return use_test_code(firmware, outcome);
    }
#endif
    return decode_and_apply(firmware, digits, length, outcome);
}

pgk_outcome_kind pgk_firmware_enter_token(pgk_firmware *firmware, const char *digits,
                                          uint8_t length, pgk_outcome *outcome)
{
    /* The kind is set here, once, for every way out: a failed save included
     * (and kept for the return, not read back: 12 bytes less in the product
     * with -flto). */
    uint8_t kind = enter_token(firmware, digits, length, outcome);
    outcome->kind = kind;
    update_output(firmware);
    return (pgk_outcome_kind)kind;
}

/* The start of a key press or a poll: the clocks, then the keypad's
 * time-out (one call less at each of the two). */
static void read_time_and_time_out_entry(pgk_firmware *firmware)
{
    read_time(firmware);
    if (firmware->typing_started &&
        firmware->ticks - firmware->last_key_tick > firmware->config.keypad_timeout_seconds) {
        firmware->typing_started = 0;
        firmware->typing_length = 0;
        finish(ENDING(0, PGK_FEEDBACK_KEY_PRESS, PGK_KEY_SHOWN_TIMED_OUT), 0);
    }
}

/* _show_status.  Out of line: inlined, its status (48 bytes) would sit in
 * pgk_firmware_press's frame under every token's save, the deepest stack. */
NOINLINE static void show_status(pgk_firmware *firmware)
{
    pgk_firmware_status_info status;
    uint8_t shown = PGK_STATUS_SHOWN_INACTIVE;
    pgk_firmware_status(firmware, &status);
    if (status.active) {
        shown = status.seconds_left < 0   ? PGK_STATUS_SHOWN_UNLIMITED
                : status.seconds_left > 0 ? PGK_STATUS_SHOWN_TIME_LEFT
                                          : PGK_STATUS_SHOWN_TEST_MODE;
    } else if (!status.provisioned) {
        shown = PGK_STATUS_SHOWN_NOT_PROVISIONED;
    } else if (tamper_locked(firmware)) {
        shown = PGK_STATUS_SHOWN_TAMPER_LOCKED;
    }
    pgk_port_feedback(PGK_FEEDBACK_STATUS, shown, status.seconds_left);
}

pgk_press_result pgk_firmware_press(pgk_firmware *firmware, char key, pgk_outcome *outcome)
{
    if (firmware->halted || (!digit_ok(key, 0) && key != '*' && key != '#')) {
        return PGK_PRESS_KEY;
    }
    read_time_and_time_out_entry(firmware);
    firmware->last_key_tick = firmware->ticks;
    unsigned shown = PGK_KEY_SHOWN_TYPING;
    uint8_t typed = firmware->typing_length;
    if (key == '*') {
        firmware->typing_started = 1;
        firmware->typing_length = 0;
    } else if (key == '#') {
        firmware->typing_started = 0;
        firmware->typing_length = 0;
        if (typed) {
            pgk_firmware_enter_token(firmware, firmware->typing, typed, outcome);
            return PGK_PRESS_TOKEN;
        }
        show_status(firmware);
        return PGK_PRESS_STATUS;
    } else if (!firmware->typing_started) {
        shown = PGK_KEY_SHOWN_START_HINT;
    } else if (!digit_ok(key, (firmware->state.flags & PGK_FLAG_RESTRICTED_DIGITS) != 0)) {
        shown = PGK_KEY_SHOWN_KEY_NOT_USED;
    } else if (typed >= PGK_MAX_TYPED_DIGITS) {
        shown = PGK_KEY_SHOWN_TOO_MANY_DIGITS;
    } else {
        firmware->typing[typed] = key;
        firmware->typing_length = typed + 1u;
    }
    pgk_port_feedback(PGK_FEEDBACK_KEY_PRESS, shown, firmware->typing_length);
    return PGK_PRESS_KEY;
}

void pgk_firmware_poll(pgk_firmware *firmware)
{
    if (firmware->halted) {
        return;
    }
    read_time_and_time_out_entry(firmware);
    if (provisioned(firmware) && check_tamper_and_wait(firmware) != SAVE_FAILED && PGK_WITH_TAMPER &&
        RTC(firmware->state.latest_rtc_seen) + LATEST_RTC_WRITE_INTERVAL <= RTC(firmware->now)) {
        commit(firmware);
    }
    update_output(firmware);
}

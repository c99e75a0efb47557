/*
 * The example firmware: paygkit's device library on the micro:bit board,
 * serving the device protocol on UART0 (docs/device-protocol.md), so that
 * `paygkit factory flash` sets it up and `paygkit certify` checks it like any
 * device.
 *
 * Two builds of the same file:
 *  - the product build: the RTC and the powered-on time come from the board's
 *    timer, and no command moves them;
 *  - the test build (PGK_WITH_SIM_CONTROLS=1, `make example-sim`): the clocks
 *    move only when the simulator commands (ADVANCE, CLOCK, POWER) move them,
 *    as on paygkit's simulator, so that certification's timed cases see the
 *    same seconds whatever the host's speed.  A real device must never take
 *    these commands: they set its clock.
 *
 * The output switch and the feedback would drive a relay and LEDs on a
 * product; here the feedback goes to the protocol's EVENT lines only.
 */
#include "board.h"
#include "pgk_port.h"
#include "pgk_protocol.h"

/* Seconds of the RTC at the first boot of a blank board (2025-01-01 UTC): the
 * board's timer starts at 0, which no real RTC would read. */
#define FIRST_BOOT_RTC 1735689600u

static pgk_firmware firmware;
static pgk_protocol protocol;

#if PGK_WITH_SIM_CONTROLS
/* The simulator's clocks: they move only by its commands. */
static int64_t sim_rtc = FIRST_BOOT_RTC;
static uint32_t sim_uptime;

int64_t pgk_port_rtc_seconds(void)
{
    return sim_rtc;
}

uint32_t pgk_port_uptime_seconds(void)
{
    return sim_uptime;
}

void pgk_port_sim_advance(uint32_t seconds, uint8_t uptime)
{
    sim_rtc += seconds;
    if (uptime) {
        sim_uptime += seconds;
    }
}

void pgk_port_sim_set_rtc(int64_t t)
{
    sim_rtc = t;
}

void pgk_port_sim_restart_uptime(void)
{
    sim_uptime = 0;
}

int pgk_port_sim_erase(void)
{
    return pgk_port_nv_erase(0, PGK_NV_SIZE / 2u) ||
           pgk_port_nv_erase(PGK_NV_SIZE / 2u, PGK_NV_SIZE / 2u);
}
#else
int64_t pgk_port_rtc_seconds(void)
{
    return (int64_t)FIRST_BOOT_RTC + board_seconds();
}

uint32_t pgk_port_uptime_seconds(void)
{
    return board_ticks_ms() / 1000u;
}
#endif

void pgk_port_feedback(uint8_t kind, uint8_t detail, int64_t value)
{
    pgk_protocol_feedback(&protocol, kind, detail, value);
}

void pgk_port_output(uint8_t on)
{
    (void)on; /* the board has no relay; a product switches its load here */
}

void pgk_port_uart_write(const void *data, size_t length)
{
    board_uart_write(data, length);
}

int main(void)
{
    static const pgk_firmware_config config = PGK_FIRMWARE_CONFIG_DEFAULT;
    board_init();
    pgk_firmware_power_on(&firmware, &config);
    /* A serial line: answers end with CRLF, as on paygkit's pty and serial servers. */
    pgk_protocol_start(&protocol, &firmware, &config, 1);
    uint32_t polled_at = board_ticks_ms();
    for (;;) {
        int byte;
        while ((byte = board_uart_read()) >= 0) {
            pgk_protocol_receive(&protocol, (uint8_t)byte);
            /* QUIT ends a session, not the device: a serial line has no end. */
            protocol.quit = 0;
        }
        /* The keypad timeout, the waiting period and the clock checks move on
         * time alone: look about once a second. */
        if (board_ticks_ms() - polled_at >= 1000u) {
            polled_at += 1000u;
            pgk_firmware_poll(&firmware);
        }
        board_idle();
    }
}

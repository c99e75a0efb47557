/* Size probe: everything a product with the UART protocol links: the device
 * logic reached through every public call (as probe_device.c), and the
 * protocol fed from the UART and told every signal. */
#include "pgk_protocol.h"

static volatile uint8_t sink;
static pgk_firmware firmware;
static pgk_protocol protocol;
static const pgk_firmware_config config = PGK_FIRMWARE_CONFIG_DEFAULT;
static const pgk_provisioning provisioning;
static volatile char key;
static volatile uint8_t received;

void pgk_port_feedback(uint8_t kind, uint8_t detail, int64_t value)
{
    pgk_protocol_feedback(&protocol, kind, detail, value);
}

int main(void)
{
    pgk_outcome outcome;
    pgk_firmware_status_info status;
    sink = (uint8_t)pgk_firmware_power_on(&firmware, &config);
    pgk_protocol_start(&protocol, &firmware, &config, 1);
    sink = (uint8_t)pgk_firmware_provision(&firmware, &provisioning);
    for (;;) {
        pgk_protocol_receive(&protocol, received);
        sink = (uint8_t)pgk_firmware_press(&firmware, key, &outcome);
        pgk_firmware_poll(&firmware);
        pgk_firmware_status(&firmware, &status);
        sink = status.active;
    }
}

/* Size probe: decoder, device logic and storage, reached through every
 * public call a keypad product makes (the protocol is left out). */
#include "pgk_device.h"

static volatile uint8_t sink;
static pgk_firmware firmware;
static const pgk_firmware_config config = PGK_FIRMWARE_CONFIG_DEFAULT;
static const pgk_provisioning provisioning;
static volatile char key;

int main(void)
{
    pgk_outcome outcome;
    pgk_firmware_status_info status;
    sink = (uint8_t)pgk_firmware_power_on(&firmware, &config);
    sink = (uint8_t)pgk_firmware_provision(&firmware, &provisioning);
    for (;;) {
        sink = (uint8_t)pgk_firmware_press(&firmware, key, &outcome);
        pgk_firmware_poll(&firmware);
        pgk_firmware_status(&firmware, &status);
        sink = status.active;
    }
}

/* Port stubs for the size probes.  They go through volatile storage so that
 * the compiler cannot fold the library's calls away; being in their own
 * object, they are counted apart from the library. */
#include "pgk_port.h"

static volatile uint8_t sink;
static volatile int64_t clock_value;

int pgk_port_nv_read(uint32_t offset, void *buffer, size_t length)
{
    sink = (uint8_t)(offset + length + ((uint8_t *)buffer)[0]);
    return sink;
}

int pgk_port_nv_write(uint32_t offset, const void *data, size_t length)
{
    sink = (uint8_t)(offset + length + ((const uint8_t *)data)[0]);
    return sink;
}

#if PGK_NV_NEEDS_ERASE
int pgk_port_nv_erase(uint32_t offset, size_t length)
{
    sink = (uint8_t)(offset + length);
    return sink;
}
#endif

int64_t pgk_port_rtc_seconds(void)
{
    return clock_value;
}

uint32_t pgk_port_uptime_seconds(void)
{
    return (uint32_t)clock_value;
}

#if !PGK_WITH_PROTOCOL
/* With the protocol, probe_protocol.c passes the signals on to it, as a product does. */
void pgk_port_feedback(uint8_t kind, uint8_t detail, int64_t value)
{
    sink = (uint8_t)(kind + detail + value);
}
#endif

void pgk_port_output(uint8_t on)
{
    sink = on;
}

#if PGK_WITH_PROTOCOL
void pgk_port_uart_write(const void *data, size_t length)
{
    sink = (uint8_t)(((const uint8_t *)data)[0] + length);
}
#endif

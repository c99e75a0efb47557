/*
 * micro:bit board port.  What QEMU 7.2 emulates decided the choices here (see
 * README.md): TIMER0 is the time base because RTC0 is not emulated, the UART
 * receives by interrupt into a ring, and NV storage is the NVMC on the last
 * flash pages.
 */
#include "board.h"

#include "nrf51.h"

/* On the micro:bit v1 these two pins go to the USB interface chip's serial port. */
#define PIN_TXD 24u
#define PIN_RXD 25u
#define PIN_UNUSED 0xFFFFFFFFu

/* TIMER0 at 16 MHz / 2^4 = 1 MHz: one count is one microsecond. */
#define TIMER_PRESCALER 4u
#define TICK_US 1000u

/* A power of two, so the indices wrap with a mask. */
#define RX_RING_SIZE 128u

static volatile uint8_t rx_ring[RX_RING_SIZE];
static volatile uint32_t rx_head; /* written by the interrupt only */
static volatile uint32_t rx_tail; /* written by the main loop only */
static volatile uint32_t uart_errors;

static volatile uint32_t ticks_ms;
static volatile uint32_t uptime_s;
static uint32_t ms_in_second; /* interrupt only */
static uint32_t next_compare; /* interrupt and board_init only */
static volatile uint32_t seconds_offset;

extern uint32_t __nv_start;

/* Save-and-restore rather than enable, so these also work where interrupts are off. */
static inline uint32_t irq_save(void)
{
    uint32_t primask;
    __asm__ volatile("mrs %0, primask\n\tcpsid i" : "=r"(primask)::"memory");
    return primask;
}

static inline void irq_restore(uint32_t primask)
{
    __asm__ volatile("msr primask, %0" ::"r"(primask) : "memory");
}

static void uart_init(void)
{
    UART0_ENABLE = 0;
    UART0_PSELTXD = PIN_TXD;
    UART0_PSELRXD = PIN_RXD;
    UART0_PSELRTS = PIN_UNUSED;
    UART0_PSELCTS = PIN_UNUSED;
    UART0_CONFIG = 0; /* no parity, no flow control */
    UART0_BAUDRATE = UART_BAUDRATE_115200;
    UART0_ENABLE = UART_ENABLE_ENABLED;
    UART0_EVENTS_RXDRDY = 0;
    UART0_EVENTS_TXDRDY = 0;
    UART0_TASKS_STARTTX = 1;
    UART0_TASKS_STARTRX = 1;
    UART0_INTENSET = UART_INTEN_RXDRDY;
    NVIC_ICPR = 1u << UART0_IRQN;
    NVIC_ISER = 1u << UART0_IRQN;
}

/*
 * The timer free-runs and CC0 is moved forward by one tick per interrupt,
 * instead of clearing the counter on compare: a late interrupt then delays
 * the count but never loses time.
 */
static void timer_init(void)
{
    TIMER0_TASKS_STOP = 1;
    TIMER0_TASKS_CLEAR = 1;
    TIMER0_MODE = 0; /* timer, not counter */
    TIMER0_BITMODE = TIMER_BITMODE_32;
    TIMER0_PRESCALER = TIMER_PRESCALER;
    TIMER0_SHORTS = 0;
    next_compare = TICK_US;
    TIMER0_CC(0) = next_compare;
    TIMER0_EVENTS_COMPARE(0) = 0;
    TIMER0_INTENSET = TIMER_INTEN_COMPARE0;
    NVIC_ICPR = 1u << TIMER0_IRQN;
    NVIC_ISER = 1u << TIMER0_IRQN;
    TIMER0_TASKS_START = 1;
}

void board_init(void)
{
    /*
     * The crystal makes the UART baud rate and the timer accurate on the real
     * chip; QEMU's clock page reads 1 everywhere, so the wait ends at once.
     */
    CLOCK_EVENTS_HFCLKSTARTED = 0;
    CLOCK_TASKS_HFCLKSTART = 1;
    while (CLOCK_EVENTS_HFCLKSTARTED == 0) {
    }
    uart_init();
    timer_init();
    __asm__ volatile("cpsie i" ::: "memory");
}

/* ---- UART ------------------------------------------------------------------ */

/*
 * With the ring full the handler masks its interrupt and leaves the byte in
 * the UART; board_uart_read() unmasks it once there is room.  In QEMU, whose
 * UART delivers bytes as fast as the handler takes them, this is lossless
 * flow control (a long line sent at once would otherwise overflow the ring
 * inside one interrupt).  On the chip bytes keep coming at the baud rate
 * whatever the mask, so a ring left full there loses bytes; the UART then
 * reports overruns, counted in board_uart_errors().
 */
void UART0_IRQHandler(void)
{
    if (UART0_EVENTS_ERROR) {
        UART0_EVENTS_ERROR = 0;
        UART0_ERRORSRC = UART0_ERRORSRC; /* write 1s to clear what was read */
        uart_errors++;
    }
    /* Clear before reading RXD: QEMU raises RXDRDY again if more bytes wait. */
    while (UART0_EVENTS_RXDRDY) {
        uint32_t head = rx_head;
        if (head - rx_tail >= RX_RING_SIZE) {
            UART0_INTENCLR = UART_INTEN_RXDRDY;
            return;
        }
        UART0_EVENTS_RXDRDY = 0;
        rx_ring[head & (RX_RING_SIZE - 1u)] = (uint8_t)UART0_RXD;
        rx_head = head + 1u;
    }
}

int board_uart_read(void)
{
    uint32_t tail = rx_tail;
    if (tail == rx_head)
        return -1;
    int byte = rx_ring[tail & (RX_RING_SIZE - 1u)];
    rx_tail = tail + 1u;
    /* Unconditional: cheaper than tracking whether the handler masked itself. */
    UART0_INTENSET = UART_INTEN_RXDRDY;
    return byte;
}

uint32_t board_uart_errors(void)
{
    return uart_errors;
}

void board_uart_write(const void *data, size_t len)
{
    const uint8_t *bytes = data;
    for (size_t i = 0; i < len; i++) {
        UART0_EVENTS_TXDRDY = 0;
        UART0_TXD = bytes[i];
        while (UART0_EVENTS_TXDRDY == 0) {
        }
    }
}

/* ---- time ------------------------------------------------------------------ */

static uint32_t timer_now(void)
{
    TIMER0_TASKS_CAPTURE(1) = 1;
    return TIMER0_CC(1);
}

void TIMER0_IRQHandler(void)
{
    TIMER0_EVENTS_COMPARE(0) = 0;
    /*
     * Count every tick that has passed, then make sure the new compare value
     * is still ahead of the counter: one that is already behind would fire
     * only after the 32-bit counter wraps, 71 minutes later.
     */
    for (;;) {
        uint32_t now = timer_now();
        while ((int32_t)(now - next_compare) >= 0) {
            next_compare += TICK_US;
            ticks_ms++;
            if (++ms_in_second == 1000u) {
                ms_in_second = 0;
                uptime_s++;
            }
        }
        TIMER0_CC(0) = next_compare;
        if ((int32_t)(timer_now() - next_compare) < 0)
            break;
    }
}

uint32_t board_ticks_ms(void)
{
    return ticks_ms;
}

uint32_t board_seconds(void)
{
    uint32_t primask = irq_save();
    uint32_t seconds = uptime_s + seconds_offset;
    irq_restore(primask);
    return seconds;
}

void board_set_seconds(uint32_t seconds)
{
    uint32_t primask = irq_save();
    seconds_offset = seconds - uptime_s;
    irq_restore(primask);
}

void board_idle(void)
{
    /*
     * WFI with interrupts masked still wakes on a pending one, and the
     * handler runs as soon as the mask is restored.  Whatever arrived just
     * before the call waits at most one tick.
     */
    uint32_t primask = irq_save();
    __asm__ volatile("dsb\n\twfi" ::: "memory");
    irq_restore(primask);
}

/* ---- NV storage ------------------------------------------------------------ */

static uint32_t nv_address(uint32_t offset)
{
    return (uint32_t)&__nv_start + offset;
}

static int nv_range_ok(uint32_t offset, size_t len)
{
    return offset <= BOARD_NV_SIZE && len <= BOARD_NV_SIZE - offset;
}

static void nvmc_wait(void)
{
    while (NVMC_READY == 0) {
    }
}

const volatile uint8_t *board_nv_base(void)
{
    return (const volatile uint8_t *)nv_address(0);
}

int board_nv_read(uint32_t offset, void *buf, size_t len)
{
    if (!nv_range_ok(offset, len))
        return -1;
    const volatile uint8_t *src = board_nv_base() + offset;
    uint8_t *dst = buf;
    for (size_t i = 0; i < len; i++)
        dst[i] = src[i];
    return 0;
}

int board_nv_erase(uint32_t page)
{
    if (page >= BOARD_NV_PAGES)
        return -1;
    nvmc_wait();
    NVMC_CONFIG = NVMC_CONFIG_EEN;
    nvmc_wait();
    NVMC_ERASEPAGE = nv_address(page * BOARD_NV_PAGE_SIZE);
    nvmc_wait();
    NVMC_CONFIG = NVMC_CONFIG_REN;
    nvmc_wait();
    return 0;
}

int board_nv_write(uint32_t offset, const void *data, size_t len)
{
    if (!nv_range_ok(offset, len))
        return -1;
    const uint8_t *bytes = data;
    nvmc_wait();
    NVMC_CONFIG = NVMC_CONFIG_WEN;
    nvmc_wait();
    size_t done = 0;
    while (done < len) {
        uint32_t at = offset + done;
        uint32_t word_at = at & ~3u;
        uint32_t word = 0xFFFFFFFFu;
        /* Little-endian: byte k of the word sits at bits 8k..8k+7. */
        for (uint32_t k = at & 3u; k < 4u && done < len; k++, done++)
            word &= ~((uint32_t)(uint8_t)~bytes[done] << (8u * k));
        REG(nv_address(word_at)) = word;
        nvmc_wait();
    }
    NVMC_CONFIG = NVMC_CONFIG_REN;
    nvmc_wait();
    const volatile uint8_t *check = board_nv_base() + offset;
    for (size_t i = 0; i < len; i++)
        if (check[i] != bytes[i])
            return -1;
    return 0;
}

/* ---- reset ----------------------------------------------------------------- */

void board_reset(void)
{
    /*
     * board_uart_write() has already waited for each byte; a flash operation
     * cut by the reset would leave a half-written word on the chip.
     */
    nvmc_wait();
    __asm__ volatile("dsb" ::: "memory");
    SCB_AIRCR = AIRCR_VECTKEY | AIRCR_SYSRESETREQ;
    __asm__ volatile("dsb" ::: "memory");
    for (;;) {
    }
}

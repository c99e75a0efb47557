/*
 * Vector table and reset handler for the nRF51822, in C: on a Cortex-M0 the
 * hardware loads SP from word 0 and jumps to word 1, and handlers are ordinary
 * AAPCS functions, so no assembly is needed.
 */
#include <stdint.h>

extern uint32_t __stack_top;
extern uint32_t __data_load, __data_start, __data_end;
extern uint32_t __bss_start, __bss_end;

int main(void);

void Reset_Handler(void);
void Default_Handler(void);

/*
 * Weak aliases let the board or the application define any handler by name
 * without touching this file; everything else lands in Default_Handler.
 */
#define WEAK_HANDLER(name) void name(void) __attribute__((weak, alias("Default_Handler")))
WEAK_HANDLER(NMI_Handler);
WEAK_HANDLER(HardFault_Handler);
WEAK_HANDLER(SVC_Handler);
WEAK_HANDLER(PendSV_Handler);
WEAK_HANDLER(SysTick_Handler);
WEAK_HANDLER(POWER_CLOCK_IRQHandler);
WEAK_HANDLER(RADIO_IRQHandler);
WEAK_HANDLER(UART0_IRQHandler);
WEAK_HANDLER(SPI0_TWI0_IRQHandler);
WEAK_HANDLER(SPI1_TWI1_IRQHandler);
WEAK_HANDLER(GPIOTE_IRQHandler);
WEAK_HANDLER(ADC_IRQHandler);
WEAK_HANDLER(TIMER0_IRQHandler);
WEAK_HANDLER(TIMER1_IRQHandler);
WEAK_HANDLER(TIMER2_IRQHandler);
WEAK_HANDLER(RTC0_IRQHandler);
WEAK_HANDLER(TEMP_IRQHandler);
WEAK_HANDLER(RNG_IRQHandler);
WEAK_HANDLER(ECB_IRQHandler);
WEAK_HANDLER(CCM_AAR_IRQHandler);
WEAK_HANDLER(WDT_IRQHandler);
WEAK_HANDLER(RTC1_IRQHandler);
WEAK_HANDLER(QDEC_IRQHandler);
WEAK_HANDLER(LPCOMP_IRQHandler);
WEAK_HANDLER(SWI0_IRQHandler);
WEAK_HANDLER(SWI1_IRQHandler);
WEAK_HANDLER(SWI2_IRQHandler);
WEAK_HANDLER(SWI3_IRQHandler);
WEAK_HANDLER(SWI4_IRQHandler);
WEAK_HANDLER(SWI5_IRQHandler);

typedef void (*vector_t)(void);

/* `used` and the linker script's KEEP both guard it from --gc-sections. */
__attribute__((section(".vectors"), used)) const vector_t vectors[16 + 32] = {
    (vector_t)&__stack_top,
    Reset_Handler,
    NMI_Handler,
    HardFault_Handler,
    0, 0, 0, 0, 0, 0, 0,
    SVC_Handler,
    0, 0,
    PendSV_Handler,
    SysTick_Handler,
    /* nRF51 peripheral interrupts: the number is bits 12-16 of the base address. */
    POWER_CLOCK_IRQHandler,
    RADIO_IRQHandler,
    UART0_IRQHandler,
    SPI0_TWI0_IRQHandler,
    SPI1_TWI1_IRQHandler,
    0,
    GPIOTE_IRQHandler,
    ADC_IRQHandler,
    TIMER0_IRQHandler,
    TIMER1_IRQHandler,
    TIMER2_IRQHandler,
    RTC0_IRQHandler,
    TEMP_IRQHandler,
    RNG_IRQHandler,
    ECB_IRQHandler,
    CCM_AAR_IRQHandler,
    WDT_IRQHandler,
    RTC1_IRQHandler,
    QDEC_IRQHandler,
    LPCOMP_IRQHandler,
    SWI0_IRQHandler,
    SWI1_IRQHandler,
    SWI2_IRQHandler,
    SWI3_IRQHandler,
    SWI4_IRQHandler,
    SWI5_IRQHandler,
};

/*
 * GCC may turn these loops into memcpy/memset calls, which would need a C
 * library before .data and .bss even exist; the attribute keeps them loops.
 */
__attribute__((noreturn, optimize("no-tree-loop-distribute-patterns"))) void Reset_Handler(void)
{
    const uint32_t *src = &__data_load;
    for (uint32_t *dst = &__data_start; dst < &__data_end;)
        *dst++ = *src++;
    for (uint32_t *dst = &__bss_start; dst < &__bss_end;)
        *dst++ = 0;
    main();
    /* main returning is a bug; sleep rather than run off into flash. */
    for (;;)
        __asm__ volatile("wfi");
}

/*
 * An unexpected exception: stay here, where a debugger (qemu -s -S) finds it,
 * and sleep so that a hung emulator does not burn a host core.  A product
 * build would reset instead; for bring-up a hang is easier to read.
 */
void Default_Handler(void)
{
    for (;;)
        __asm__ volatile("wfi");
}

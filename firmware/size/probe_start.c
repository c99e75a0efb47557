/* The least start-up a size probe links with: the two vector words the
 * Cortex-M0 reads at reset.  The probes are never run; they only have to
 * link so that --gc-sections keeps exactly what a product's calls reach. */
#include <stdint.h>

extern uint32_t __stack_top;
int main(void);

void Reset_Handler(void);
void Reset_Handler(void)
{
    main();
    for (;;) {
    }
}

typedef void (*vector_t)(void);
__attribute__((section(".vectors"), used)) const vector_t vectors[2] = {
    (vector_t)&__stack_top,
    Reset_Handler,
};

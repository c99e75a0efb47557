/* Size probe: the token decoder alone, as a product calls it. */
#include "pgk_token.h"

static volatile uint8_t sink;
static pgk_device device;
static pgk_count_state state;
static char digits[PGK_WITH_RESTRICTED ? 15 : 9];

int main(void)
{
    pgk_decode_result result;
    sink = (uint8_t)pgk_decode_token(&device, &state, digits, (uint8_t)sizeof digits, &result);
    state = result.next;
    return 0;
}

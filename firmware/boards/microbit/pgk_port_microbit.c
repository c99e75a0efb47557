/*
 * The device library's port (firmware/lib/pgk_port.h) on the micro:bit board.
 * Only the NV section exists in pgk_port.h so far; the UART and the clock are
 * board_* functions (board.h) until the library asks for them.
 */
#include "pgk_port.h"

#include "board.h"

#if !PGK_NV_NEEDS_ERASE
#error "the nRF51's NV is NOR flash: build the library and this file with -DPGK_NV_NEEDS_ERASE=1"
#endif

/*
 * The store erases one half (PGK_NV_SIZE / 2 bytes) at a time and needs the two
 * halves in different erase pages, so half h is the start of NV page h.  The
 * rest of each 1 KB page is unused.
 */
#define HALF (PGK_NV_SIZE / 2u)

_Static_assert(HALF <= BOARD_NV_PAGE_SIZE && BOARD_NV_PAGES >= 2u,
               "each half of the store needs an NV page of its own");

static int fits(uint32_t offset, size_t length)
{
    return offset <= PGK_NV_SIZE && length <= PGK_NV_SIZE - offset;
}

/*
 * A range may run over the middle of the store, from one page into the next:
 * the part of it in offset's half, and where that part is in the NV area.
 */
static size_t piece_at(uint32_t offset, size_t length, uint32_t *nv_offset)
{
    uint32_t within = offset % HALF;
    *nv_offset = offset / HALF * BOARD_NV_PAGE_SIZE + within;
    return length < HALF - within ? length : HALF - within;
}

int pgk_port_nv_read(uint32_t offset, void *buffer, size_t length)
{
    uint8_t *bytes = buffer;
    if (!fits(offset, length))
        return -1;
    while (length) {
        uint32_t at;
        size_t piece = piece_at(offset, length, &at);
        if (board_nv_read(at, bytes, piece))
            return -1;
        offset += piece;
        bytes += piece;
        length -= piece;
    }
    return 0;
}

int pgk_port_nv_write(uint32_t offset, const void *data, size_t length)
{
    const uint8_t *bytes = data;
    if (!fits(offset, length))
        return -1;
    while (length) {
        uint32_t at;
        size_t piece = piece_at(offset, length, &at);
        if (board_nv_write(at, bytes, piece))
            return -1;
        offset += piece;
        bytes += piece;
        length -= piece;
    }
    return 0;
}

int pgk_port_nv_erase(uint32_t offset, size_t length)
{
    if (offset % HALF != 0 || length != HALF || offset >= PGK_NV_SIZE)
        return -1;
    return board_nv_erase(offset / HALF);
}

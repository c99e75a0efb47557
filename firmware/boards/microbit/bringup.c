/*
 * Bring-up program for the micro:bit board port: proves the UART, the clock
 * and the NV storage work, and that NV survives a reset.  Not the product: it
 * speaks a tiny line protocol of its own (tests/firmware/test_microbit_board.py
 * drives it).
 *
 *   PING        -> PONG <ticks_ms> <seconds>
 *   NVW <hex>   -> OK NVW <bytes>     (erases NV page 0, stores the bytes)
 *   NVR         -> NVR <hex> | NVR -  (what NVW stored; - when none)
 *   RESET       -> OK RESET, then a system reset (the banner follows)
 *   PNE <off>        -> OK PNE          (pgk_port_nv_erase of the half at off)
 *   PNW <off> <hex>  -> OK PNW          (pgk_port_nv_write)
 *   PNR <off> <len>  -> PNR <hex>       (pgk_port_nv_read, len up to 64)
 *   anything    -> ERR <line>
 *
 * The PN commands drive the library's NV port (pgk_port_microbit.c) as the
 * store will: by offset in its PGK_NV_SIZE bytes, half by half.
 *
 * At boot it prints "BOOT microbit nv=<n>", n being the bytes held by NV.
 */
#include "board.h"
#include "pgk_port.h"

#define LINE_MAX 200u

/* NV page 0: a length word, then the bytes.  An erased page reads 0xFFFFFFFF. */
#define STORED_MAX (BOARD_NV_PAGE_SIZE - 4u)

static void put(const char *text)
{
    size_t len = 0;
    while (text[len])
        len++;
    board_uart_write(text, len);
}

static void put_u32(uint32_t value)
{
    char digits[10];
    size_t n = 0;
    do {
        digits[sizeof digits - 1 - n++] = (char)('0' + value % 10u);
        value /= 10u;
    } while (value);
    board_uart_write(digits + sizeof digits - n, n);
}

static void put_hex(const uint8_t *bytes, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        char pair[2] = {hex[bytes[i] >> 4], hex[bytes[i] & 15u]};
        board_uart_write(pair, 2);
    }
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)(c | 0x20);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static int starts_with(const char *line, const char *word)
{
    while (*word)
        if (*line++ != *word++)
            return 0;
    return 1;
}

static int same(const char *a, const char *b)
{
    while (*a && *a == *b)
        a++, b++;
    return *a == *b;
}

/* The stored length, or -1 when page 0 holds nothing this program wrote. */
static int32_t stored_length(void)
{
    uint32_t len;
    board_nv_read(0, &len, sizeof len);
    return len <= STORED_MAX ? (int32_t)len : -1;
}

static uint8_t bytes[LINE_MAX / 2];

/* Hex digits up to the end of text into bytes; their number, or -1 for bad hex. */
static int32_t parse_hex(const char *hex)
{
    int32_t n = 0;
    for (; hex[0] && hex[1]; hex += 2) {
        int high = hex_value(hex[0]), low = hex_value(hex[1]);
        if (high < 0 || low < 0)
            return -1;
        bytes[n++] = (uint8_t)(high << 4 | low);
    }
    return *hex || n == 0 ? -1 : n;
}

/* A decimal number ending at a space or the end; *text moves past the space. */
static int32_t parse_number(const char **text)
{
    const char *at = *text;
    int32_t value = 0;
    if (*at < '0' || *at > '9')
        return -1;
    while (*at >= '0' && *at <= '9' && value < 100000)
        value = value * 10 + (*at++ - '0');
    if (*at == ' ')
        at++;
    else if (*at)
        return -1;
    *text = at;
    return value;
}

static void nv_write_command(const char *hex)
{
    int32_t parsed = parse_hex(hex);
    if (parsed < 0) {
        put("ERR BAD_HEX\r\n");
        return;
    }
    uint32_t n = (uint32_t)parsed;
    if (board_nv_erase(0) != 0 || board_nv_write(4, bytes, n) != 0 ||
        board_nv_write(0, &n, sizeof n) != 0) {
        put("ERR NV_WRITE\r\n");
        return;
    }
    put("OK NVW ");
    put_u32(n);
    put("\r\n");
}

static void nv_read_command(void)
{
    int32_t len = stored_length();
    put("NVR ");
    if (len <= 0) {
        put("-");
    } else {
        uint8_t chunk[32];
        for (uint32_t at = 0; at < (uint32_t)len; at += sizeof chunk) {
            uint32_t n = (uint32_t)len - at < sizeof chunk ? (uint32_t)len - at : sizeof chunk;
            board_nv_read(4 + at, chunk, n);
            put_hex(chunk, n);
        }
    }
    put("\r\n");
}

static void port_command(char which, const char *args)
{
    int32_t offset = parse_number(&args);
    int failed;
    if (offset < 0) {
        put("ERR BAD_OFFSET\r\n");
        return;
    }
    if (which == 'E') {
        failed = *args || pgk_port_nv_erase((uint32_t)offset, PGK_NV_SIZE / 2u);
    } else if (which == 'W') {
        int32_t n = parse_hex(args);
        failed = n < 0 || pgk_port_nv_write((uint32_t)offset, bytes, (size_t)n);
    } else {
        int32_t n = parse_number(&args);
        failed = n < 1 || n > 64 || *args || pgk_port_nv_read((uint32_t)offset, bytes, (size_t)n);
        if (!failed) {
            put("PNR ");
            put_hex(bytes, (size_t)n);
            put("\r\n");
            return;
        }
    }
    if (failed) {
        put("ERR PN");
        board_uart_write(&which, 1);
        put("\r\n");
        return;
    }
    put("OK PN");
    board_uart_write(&which, 1);
    put("\r\n");
}

static void handle(const char *line)
{
    if (same(line, "PING")) {
        put("PONG ");
        put_u32(board_ticks_ms());
        put(" ");
        put_u32(board_seconds());
        put("\r\n");
    } else if (starts_with(line, "NVW ")) {
        nv_write_command(line + 4);
    } else if (same(line, "NVR")) {
        nv_read_command();
    } else if (starts_with(line, "PNE ") || starts_with(line, "PNW ") ||
               starts_with(line, "PNR ")) {
        port_command(line[2], line + 4);
    } else if (same(line, "RESET")) {
        put("OK RESET\r\n");
        board_reset();
    } else {
        put("ERR ");
        put(line);
        put("\r\n");
    }
}

int main(void)
{
    static char line[LINE_MAX + 1];
    uint32_t len = 0;
    int overlong = 0;

    board_init();
    int32_t stored = stored_length();
    put("BOOT microbit nv=");
    put_u32(stored < 0 ? 0u : (uint32_t)stored);
    put("\r\n");

    for (;;) {
        int c = board_uart_read();
        if (c < 0) {
            board_idle();
            continue;
        }
        if (c == '\r' || c == '\n') {
            line[len] = 0;
            if (overlong)
                put("ERR LINE_TOO_LONG\r\n");
            else if (len)
                handle(line);
            len = 0;
            overlong = 0;
        } else if (len < LINE_MAX) {
            line[len++] = (char)c;
        } else {
            overlong = 1;
        }
    }
}

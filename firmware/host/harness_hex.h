/* Hex on the host harnesses' lines (keys, memory images, byte strings):
 * the one reading and writing of it that every harness shares.  Host only. */
#ifndef HARNESS_HEX_H
#define HARNESS_HEX_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* The value of one hex digit (either case), or -1. */
static inline int hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* The byte of the two hex digits at text[0..1], or -1. */
static inline int hex_byte(const char *text)
{
    int high = hex_value(text[0]);
    int low = high < 0 ? -1 : hex_value(text[1]);
    return low < 0 ? -1 : high << 4 | low;
}

/* `length` bytes as lowercase hex; "-" for none, so that a line keeps its word. */
static inline void print_hex(const void *data, size_t length)
{
    const uint8_t *bytes = (const uint8_t *)data;
    if (length == 0) {
        printf("-");
    }
    for (size_t i = 0; i < length; i++) {
        printf("%02x", bytes[i]);
    }
}

#endif /* HARNESS_HEX_H */

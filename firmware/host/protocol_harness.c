/* Host harness of the protocol (firmware/lib/pgk_protocol.c): the C device
 * serving the device protocol on stdin/stdout, as `paygkit device simulate
 * --serve stdio` serves paygkit's simulator, or on a pseudo-terminal like
 * `--serve pty:PATH`, so paygkit's host tools can drive it.
 *
 *   protocol_harness                 stdin/stdout, LF line ends; ends at QUIT or end of input
 *   protocol_harness --pty PATH      a pty in raw mode, CRLF; PATH becomes a symlink to it;
 *                                    runs until killed (a serial line has no end)
 *
 * The device is the simulator's: a 1 KB NV in RAM, blank (0xFF) at start; an
 * RTC starting at 2025-01-01 00:00:00 UTC and an uptime counter that move
 * only when the simulator commands move them (tests/firmware/test_c_protocol.py
 * runs the same commands through paygkit's simulator and compares).
 */
#define _DEFAULT_SOURCE
#define _XOPEN_SOURCE 600
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "pgk_protocol.h"

#define RTC_START 1735689600

static uint8_t nv[PGK_NV_SIZE];
static int64_t rtc = RTC_START;
static uint32_t uptime;
static int out_fd = 1;

static pgk_firmware firmware;
static pgk_protocol protocol;

int pgk_port_nv_read(uint32_t offset, void *buffer, size_t length)
{
    if (offset > PGK_NV_SIZE || length > PGK_NV_SIZE - offset) {
        return -1;
    }
    memcpy(buffer, nv + offset, length);
    return 0;
}

int pgk_port_nv_write(uint32_t offset, const void *data, size_t length)
{
    if (offset > PGK_NV_SIZE || length > PGK_NV_SIZE - offset) {
        return -1;
    }
    memcpy(nv + offset, data, length);
    return 0;
}

int64_t pgk_port_rtc_seconds(void)
{
    return rtc;
}

uint32_t pgk_port_uptime_seconds(void)
{
    return uptime;
}

void pgk_port_feedback(uint8_t kind, uint8_t detail, int64_t value)
{
    pgk_protocol_feedback(&protocol, kind, detail, value);
}

void pgk_port_output(uint8_t on)
{
    (void)on;
}

void pgk_port_uart_write(const void *data, size_t length)
{
    const char *p = data;
    while (length) {
        ssize_t n = write(out_fd, p, length);
        if (n <= 0) {
            /* Nobody reads the answers any more (stdout closed): stop, as paygkit's server does. */
            exit(0);
        }
        p += n;
        length -= (size_t)n;
    }
}

void pgk_port_sim_advance(uint32_t seconds, uint8_t with_uptime)
{
    rtc += seconds;
    if (with_uptime) {
        uptime += seconds;
    }
}

void pgk_port_sim_set_rtc(int64_t t)
{
    rtc = t;
}

void pgk_port_sim_restart_uptime(void)
{
    uptime = 0;
}

int pgk_port_sim_erase(void)
{
    memset(nv, 0xff, sizeof nv);
    return 0;
}

static int open_pty(const char *link)
{
    int fd = posix_openpt(O_RDWR | O_NOCTTY);
    struct termios raw;
    const char *name;
    if (fd < 0 || grantpt(fd) != 0 || unlockpt(fd) != 0 || (name = ptsname(fd)) == NULL) {
        perror("pty");
        exit(2);
    }
    /* Raw, as paygkit's pty server: no echo, CR and LF as sent. */
    {
        int slave = open(name, O_RDWR | O_NOCTTY);
        if (slave < 0 || tcgetattr(slave, &raw) != 0) {
            perror("pty slave");
            exit(2);
        }
        cfmakeraw(&raw);
        tcsetattr(slave, TCSANOW, &raw);
        /* Kept open so that tools may open and close the port as they like. */
    }
    /* An old symlink is replaced, never a file (as paygkit's --serve pty:PATH). */
    {
        struct stat st;
        if (lstat(link, &st) == 0) {
            if (!S_ISLNK(st.st_mode)) {
                fprintf(stderr, "%s exists and is not a symlink\n", link);
                exit(2);
            }
            unlink(link);
        }
    }
    if (symlink(name, link) != 0) {
        perror("symlink");
        exit(2);
    }
    printf("%s\n", name);
    fflush(stdout);
    return fd;
}

int main(int argc, char **argv)
{
    static const pgk_firmware_config config = PGK_FIRMWARE_CONFIG_DEFAULT;
    int in_fd = 0;
    uint8_t serial_line = 0;
    uint8_t buffer[4096];
    signal(SIGPIPE, SIG_IGN);
    if (argc == 3 && strcmp(argv[1], "--pty") == 0) {
        in_fd = out_fd = open_pty(argv[2]);
        serial_line = 1;
    } else if (argc != 1) {
        fprintf(stderr, "usage: %s [--pty PATH]\n", argv[0]);
        return 2;
    }
    memset(nv, 0xff, sizeof nv);
    pgk_firmware_power_on(&firmware, &config);
    pgk_protocol_start(&protocol, &firmware, &config, serial_line);
    for (;;) {
        ssize_t n = read(in_fd, buffer, sizeof buffer);
        if (n <= 0) {
            return 0;
        }
        for (ssize_t i = 0; i < n; i++) {
            pgk_protocol_receive(&protocol, buffer[i]);
            if (protocol.quit) {
                if (!serial_line) {
                    return 0; /* stdin/stdout: nothing after QUIT is read */
                }
                protocol.quit = 0;
            }
        }
    }
}

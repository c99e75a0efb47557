/* The device side of the device protocol (docs/device-protocol.md): bytes
 * from the UART in, answer lines out through pgk_port_uart_write(), on top of
 * the device logic of pgk_device.h.  A port of paygkit's CommandInterpreter
 * (src/paygkit/device/interpreter.py): for the same command lines on the
 * same device it sends the same answer lines, byte for byte
 * (tests/firmware/test_c_protocol.py), so paygkit's factory and certification
 * tools drive it unchanged.
 *
 * Where it differs from paygkit, and why:
 *   - A storage failure part-way through KEYS: the lines already sent stay
 *     sent (paygkit replaces the whole answer by the ERR line); answers are
 *     streamed, there is no RAM to hold one back.
 *   - ERR STORAGE and ERR INTERNAL say which pgk_storage_result failed, not
 *     paygkit's Python exception.
 *
 * Use: one static pgk_protocol next to the pgk_firmware; pgk_protocol_start()
 * after pgk_firmware_power_on(); every received byte to
 * pgk_protocol_receive(); the product's pgk_port_feedback() passes each
 * signal on to pgk_protocol_feedback() too (EVENT lines and RESULT texts).
 * Not reentrant.  Options (pgk_config.h): PGK_WITH_SIM_CONTROLS for test
 * builds that certification drives; PGK_PROTOCOL_MESSAGES, _TEXTS and
 * _EVENTS 0 drop what only people read, for the smallest code.
 */
#ifndef PGK_PROTOCOL_H
#define PGK_PROTOCOL_H

#include <stdint.h>

#include "pgk_config.h"
#include "pgk_device.h"
#include "pgk_wire.h"

/* Bytes of an answer held before pgk_port_uart_write() gets them: fewer
 * writes for more RAM; any size from 1 works.  0: no buffer of its own; an
 * answer is held in the part of the line buffer its command line leaves
 * free (256 bytes less the line's length, 1 byte for a line of 256), which
 * nothing else uses while the line is answered. */
#ifndef PGK_PROTOCOL_OUT_BUFFER
#define PGK_PROTOCOL_OUT_BUFFER 64
#endif

/* What HELLO says (model= and firmware=); one word each. */
#ifndef PGK_PROTOCOL_MODEL
#if PGK_WITH_SIM_CONTROLS
#define PGK_PROTOCOL_MODEL "paygkit-sim"
#else
#define PGK_PROTOCOL_MODEL "paygkit"
#endif
#endif
#ifndef PGK_PROTOCOL_FIRMWARE
#define PGK_PROTOCOL_FIRMWARE "paygkit-0.1.0"
#endif

/* Signals given during one command, shown as EVENT lines after its answer
 * line; a token gives at most two (a tamper found on the way, its own).
 * Without EVENT lines and texts nothing reads them: no queue at all. */
#define PGK_PROTOCOL_KEEPS_EVENTS (PGK_PROTOCOL_EVENTS || PGK_PROTOCOL_TEXTS)
#if PGK_PROTOCOL_KEEPS_EVENTS
#define PGK_PROTOCOL_EVENT_QUEUE 4
#else
#define PGK_PROTOCOL_EVENT_QUEUE 0
#endif

typedef struct {
    int64_t value;
    uint8_t kind;
    uint8_t detail;
} pgk_protocol_event;

/* Ordered for size: the Cortex-M0 reaches the small fields in one instruction
 * only below the line buffer, and &out is the struct's own address. */
typedef struct {
    pgk_out out;
    pgk_firmware *firmware;
    /* 1: lines end with CRLF (a serial link); 0: LF (stdin/stdout). */
    uint8_t crlf;
    /* QUIT was answered; the product may end the connection.  Bytes keep
     * being read (a serial line has no end), as paygkit's pty server does. */
    uint8_t quit;
#if PGK_PROTOCOL_KEEPS_EVENTS
    uint8_t event_n;
#endif
#if PGK_PROTOCOL_TEXTS
    /* The token whose MALFORMED text is being written (its reason is in the text). */
    uint8_t token_length;
    const char *token;
    char typed[PGK_MAX_TYPED_DIGITS];
#endif
#if PGK_PROTOCOL_KEEPS_EVENTS
    pgk_protocol_event events[PGK_PROTOCOL_EVENT_QUEUE];
#endif
#if PGK_WITH_SIM_CONTROLS
    uint8_t powered;
    pgk_firmware_config config;
#endif
#if PGK_PROTOCOL_OUT_BUFFER
    char buffer[PGK_PROTOCOL_OUT_BUFFER];
#else
    char spare; /* the answer's byte when the line fills the line buffer */
#endif
    pgk_line_splitter splitter;
} pgk_protocol;

/* Set up the protocol for a device already powered on with `config`. */
void pgk_protocol_start(pgk_protocol *protocol, pgk_firmware *firmware,
                        const pgk_firmware_config *config, uint8_t crlf);

/* One received byte; answers every line it completes. */
void pgk_protocol_receive(pgk_protocol *protocol, uint8_t byte);

/* One signal of the device (what pgk_port_feedback() got), for the EVENT lines. */
void pgk_protocol_feedback(pgk_protocol *protocol, uint8_t kind, uint8_t detail, int64_t value);

#endif /* PGK_PROTOCOL_H */

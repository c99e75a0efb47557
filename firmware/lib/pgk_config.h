/* Compile-time options of the paygkit device library: each has its default
 * here, with one line on why it exists; override one with -D. */
#ifndef PGK_CONFIG_H
#define PGK_CONFIG_H

/* Keys 1-4 (15-digit) tokens for Restricted Digit Mode devices; 0 saves code on 12-key products. */
#ifndef PGK_WITH_RESTRICTED
#define PGK_WITH_RESTRICTED 1
#endif

/* Extended 12/20-digit tokens: not in the standard, and they need 64-bit arithmetic. */
#ifndef PGK_WITH_EXTENDED
#define PGK_WITH_EXTENDED 0
#endif

/* Counts looked at above the last count (DecodeWindows.forward): one hash each. */
#ifndef PGK_WINDOW_FORWARD
#define PGK_WINDOW_FORWARD 64
#endif

/* The same for Counter Sync (DecodeWindows.counter_sync): it catches up a device far behind. */
#ifndef PGK_WINDOW_COUNTER_SYNC
#define PGK_WINDOW_COUNTER_SYNC 100
#endif

/* Counts below the last count open to an unused Add Time (DecodeWindows.unordered); at most 31. */
#ifndef PGK_WINDOW_UNORDERED
#define PGK_WINDOW_UNORDERED 16
#endif

/* The reset token re-opens every token ever taken: factory or workshop builds only (SPEC 3.1). */
#ifndef PGK_ACCEPT_RESET_TOKEN
#define PGK_ACCEPT_RESET_TOKEN 0
#endif

#endif /* PGK_CONFIG_H */

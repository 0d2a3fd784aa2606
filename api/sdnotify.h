/*
 * api/sdnotify.h -- tell the service manager (systemd) where the server is:
 * READY=1 once it serves, STOPPING=1 when it begins to stop, WATCHDOG=1 while
 * its loop runs (scripts/packaging/suiro.service.in: Type=notify, WatchdogSec=).
 *
 * The protocol is systemd's sd_notify(3), a stable interface
 * (https://systemd.io/PORTABILITY_AND_STABILITY/): one datagram of
 * "KEY=VALUE\n" lines sent to the AF_UNIX socket named by $NOTIFY_SOCKET (a
 * path, or an abstract name written with a leading '@'). It is implemented
 * here in a few lines rather than linked from libsystemd: the server gains no
 * library (libsystemd pulls in liblz4, libgcrypt, libcap ...) for one
 * sendto, and it runs the same under any manager that speaks the protocol
 * (or none: without $NOTIFY_SOCKET nothing is sent).
 *
 * Contract:
 *  - Nothing here blocks: the socket is non-blocking; a manager that does not
 *    read loses a message, never stalls the loop.
 *  - No key material, no client data: the states are fixed strings and
 *    short numbers the server composes.
 *  - The environment is read, never changed: a child the server starts
 *    (a `cmd:` key source) inherits $NOTIFY_SOCKET; systemd accepts messages
 *    from the main PID only (NotifyAccess=main), so a child cannot speak for
 *    the server.
 */
#ifndef SR_SDNOTIFY_H
#define SR_SDNOTIFY_H

#include <stdint.h>

/* Send state ("READY=1", "STOPPING=1\nSTATUS=stopping") to $NOTIFY_SOCKET:
 * 1 sent, 0 no socket is named (not run by a service manager), -1 the
 * socket is named but the send failed (errno set; the caller logs it). */
int sr_sdnotify(const char *state);

/* The keep-alive interval the manager asks for, in microseconds: half of
 * $WATCHDOG_USEC when it is set and $WATCHDOG_PID is unset or this process;
 * else 0 (no WATCHDOG=1 to send). */
uint64_t sr_sdnotify_watchdog_usec(void);

#endif

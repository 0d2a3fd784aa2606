/* bench/netutil.h -- a blocking TCP connection for the benchmarks' own
 * clients (bench/peer_ingest.c, bench/ready_poll.c). */
#ifndef SR_BENCH_NETUTIL_H
#define SR_BENCH_NETUTIL_H

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* "host:port" -> a connected socket with TCP_NODELAY, or -1 */
static inline int bn_tcp_connect(const char *hostport)
{
    char host[256];
    const char *c = strrchr(hostport, ':');
    if (!c || (size_t)(c - hostport) >= sizeof host) return -1;
    memcpy(host, hostport, (size_t)(c - hostport));
    host[c - hostport] = 0;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    if (getaddrinfo(host, c + 1, &hints, &ai) != 0 || !ai) return -1;
    int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    if (fd >= 0) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return fd;
}

#endif

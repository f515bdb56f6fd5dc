/*
 * epoll_echo_server.c: scenario S4 ("SSL epoll server crashes when a client
 * disconnects") rebuilt on tether's sans-IO registry.
 *
 * The original stored an SSL* in epoll_event.data (a union, so the fd was
 * lost), received two disconnect events for one close (read() == 0, then
 * EPOLLHUP/EPOLLERR, or a second readiness event from the same batch),
 * freed twice and crashed. Here:
 *
 *   - epoll_event.data.u64 holds the connection's registry id, a
 *     generation-checked value, never a pointer. The registry keeps the fd
 *     as the id's tag, and the per-fd table stores the id it belongs to.
 *   - Closing goes through one gate, tether_registry_remove(): only the
 *     first call for a connection returns TETHER_RESULT_OK; every later one
 *     (a second hang-up event, an event for an fd already closed in this
 *     batch, a close after the liveness expiry) returns
 *     TETHER_RESULT_STALE_HANDLE and is ignored. Each connection is closed
 *     exactly once.
 *   - Liveness: the registry's heartbeat policy says when to ping a silent
 *     client and when it is dead (EXPIRED: the id is already removed, we
 *     close the fd). tether_registry_next_timeout_ms() is the epoll_wait
 *     timeout, so there is no sweeper thread and no timer per connection.
 *   - Accepted sockets get kernel keepalive and TCP_USER_TIMEOUT from
 *     tether_socket_tune().
 *
 * The wire format is tether's (core/src/codec): 1 kind byte (1 data,
 * 2 ping, 3 pong), a 4-byte big-endian payload length, the payload. Data
 * frames are echoed, pings answered with pongs, and any received bytes
 * count as proof of life.
 *
 * Usage: epoll_echo_server [port]   (default 0: the kernel picks; the port
 * is printed as "listening on port N"). Stops on SIGINT/SIGTERM.
 *
 * Compile with -DTETHER_ECHO_NO_MAIN to embed the server in a test
 * (tests/c/test_s4_epoll.c does).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* accept4 */
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "tether.h"

#define ECHO_MAX_PAYLOAD 65536u
#define ECHO_HEADER 5u
#define ECHO_BATCH 128
#define FRAME_DATA 1
#define FRAME_PING 2
#define FRAME_PONG 3

/* What we know about one open socket, indexed by fd. */
typedef struct echo_conn {
    uint64_t id;      /* registry id; 0 = the fd is not one of our connections */
    uint64_t seq;     /* accept order, for the exactly-once accounting */
    uint8_t *buf;     /* bytes received but not yet framed */
    size_t len;
} echo_conn;

typedef struct echo_stats {
    uint64_t accepted;
    uint64_t closed;            /* connections closed (each exactly once) */
    uint64_t closed_by_peer;    /* read() == 0 */
    uint64_t closed_by_error;   /* ECONNRESET, EPOLLHUP/EPOLLERR, protocol errors */
    uint64_t closed_by_expiry;  /* the registry's EXPIRED event */
    uint64_t second_closes;     /* close attempts refused by the registry (STALE) */
    uint64_t stale_events;      /* epoll events for an already closed connection */
    uint64_t pings_sent;
    uint64_t frames_echoed;
} echo_stats;

typedef struct echo_server {
    int listen_fd;
    int epfd;
    uint16_t port;
    tether_registry registry;
    tether_tcp_options tcp;
    echo_conn *conns;
    size_t max_fds;
    /* closes[seq] counts how often connection number seq was closed; a test
     * checks that every entry ends at exactly 1. May be NULL. */
    uint8_t *closes;
    size_t closes_cap;
    echo_stats stats;
} echo_server;

static void echo_log_error(const char *what, tether_result r) {
    char detail[256];
    size_t n = 0;
    if (tether_last_error_message(detail, sizeof detail, &n) != TETHER_RESULT_OK) {
        detail[0] = '\0';
    }
    fprintf(stderr, "%s: %s (%s)\n", what, tether_result_str(r), detail);
}

/* Closes the socket of connection `id` once: the registry is the gate. */
static void echo_close(echo_server *s, uint64_t id, uint64_t *counter) {
    uint64_t tag = 0;
    if (tether_registry_remove(s->registry, id, &tag) != TETHER_RESULT_OK) {
        s->stats.second_closes++; /* already closed or expired: not again */
        return;
    }
    int fd = (int)tag;
    echo_conn *c = &s->conns[fd];
    epoll_ctl(s->epfd, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
    if (s->closes && c->seq < s->closes_cap) {
        s->closes[c->seq]++;
    }
    free(c->buf);
    memset(c, 0, sizeof *c);
    s->stats.closed++;
    (*counter)++;
}

/* The registry already removed an expired connection; close its socket. */
static void echo_expire(echo_server *s, uint64_t id, uint64_t fd_tag) {
    int fd = (int)fd_tag;
    echo_conn *c = &s->conns[fd];
    if (c->id != id) {
        return; /* cannot happen: fds are closed only after a successful remove */
    }
    epoll_ctl(s->epfd, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
    if (s->closes && c->seq < s->closes_cap) {
        s->closes[c->seq]++;
    }
    free(c->buf);
    memset(c, 0, sizeof *c);
    s->stats.closed++;
    s->stats.closed_by_expiry++;
}

/* Writes one frame; a peer too slow to take a small frame is dropped
 * (kept simple for the example: no per-connection output queue). */
static int echo_send_frame(int fd, uint8_t kind, const uint8_t *payload, uint32_t len) {
    uint8_t header[ECHO_HEADER] = {kind, (uint8_t)(len >> 24), (uint8_t)(len >> 16),
                                   (uint8_t)(len >> 8), (uint8_t)len};
    struct iovec iov[2] = {{header, ECHO_HEADER}, {(void *)payload, len}};
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = iov;
    msg.msg_iovlen = len ? 2 : 1;
    ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL);
    return n == (ssize_t)(ECHO_HEADER + len) ? 0 : -1;
}

/* Handles every complete frame in the buffer; -1 on a protocol error. */
static int echo_frames(echo_server *s, int fd) {
    echo_conn *c = &s->conns[fd];
    size_t off = 0;
    while (c->len - off >= ECHO_HEADER) {
        const uint8_t *h = c->buf + off;
        uint32_t len = ((uint32_t)h[1] << 24) | ((uint32_t)h[2] << 16) | ((uint32_t)h[3] << 8) | h[4];
        if (len > ECHO_MAX_PAYLOAD || h[0] < FRAME_DATA || h[0] > FRAME_PONG) {
            return -1;
        }
        if ((h[0] == FRAME_PING || h[0] == FRAME_PONG) && len != 8) {
            return -1;
        }
        if (c->len - off < ECHO_HEADER + len) {
            break; /* need more bytes */
        }
        const uint8_t *payload = h + ECHO_HEADER;
        if (h[0] == FRAME_DATA) {
            if (echo_send_frame(fd, FRAME_DATA, payload, len) != 0) {
                return -1;
            }
            s->stats.frames_echoed++;
        } else if (h[0] == FRAME_PING) {
            if (echo_send_frame(fd, FRAME_PONG, payload, 8) != 0) {
                return -1;
            }
        } /* a pong needs nothing more: receiving it already touched */
        off += ECHO_HEADER + len;
    }
    memmove(c->buf, c->buf + off, c->len - off);
    c->len -= off;
    return 0;
}

/* Reads what is there; closes the connection on end of stream or error. */
static void echo_readable(echo_server *s, uint64_t id, int fd, uint64_t now) {
    echo_conn *c = &s->conns[fd];
    for (;;) {
        size_t room = ECHO_HEADER + ECHO_MAX_PAYLOAD - c->len;
        ssize_t n = read(fd, c->buf + c->len, room);
        if (n > 0) {
            c->len += (size_t)n;
            tether_registry_touch(s->registry, id, now);
            if (echo_frames(s, fd) != 0) {
                echo_close(s, id, &s->stats.closed_by_error);
                return;
            }
            continue;
        }
        if (n == 0) {
            echo_close(s, id, &s->stats.closed_by_peer);
            return;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return;
        }
        if (errno == EINTR) {
            continue;
        }
        echo_close(s, id, &s->stats.closed_by_error); /* ECONNRESET, ... */
        return;
    }
}

static void echo_accept(echo_server *s, uint64_t now) {
    for (;;) {
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            return; /* EAGAIN, or out of descriptors: try again next round */
        }
        if ((size_t)fd >= s->max_fds) {
            close(fd);
            continue;
        }
        tether_result r = tether_socket_tune(fd, &s->tcp);
        if (r != TETHER_RESULT_OK) {
            echo_log_error("tether_socket_tune", r); /* still usable */
        }
        uint64_t id = 0;
        r = tether_registry_insert(s->registry, now, (uint64_t)fd, &id);
        uint8_t *buf = malloc(ECHO_HEADER + ECHO_MAX_PAYLOAD);
        if (r != TETHER_RESULT_OK || buf == NULL) {
            if (r == TETHER_RESULT_OK) {
                tether_registry_remove(s->registry, id, NULL);
            }
            free(buf);
            close(fd);
            continue;
        }
        echo_conn *c = &s->conns[fd];
        c->id = id;
        c->seq = s->stats.accepted++;
        c->buf = buf;
        c->len = 0;
        struct epoll_event ev;
        memset(&ev, 0, sizeof ev);
        ev.events = EPOLLIN | EPOLLRDHUP;
        ev.data.u64 = id; /* the generation-checked id, not a pointer */
        epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev);
    }
}

/* Runs due liveness timers: pings for silent clients, closes for dead ones. */
static void echo_timers(echo_server *s, uint64_t now) {
    tether_registry_handle_timeout(s->registry, now);
    tether_registry_event events[64];
    size_t n = 0;
    do {
        if (tether_registry_poll_events(s->registry, events, 64, &n) != TETHER_RESULT_OK) {
            return;
        }
        for (size_t i = 0; i < n; i++) {
            tether_registry_event *e = &events[i];
            int fd = (int)e->tag;
            if (e->kind == TETHER_REGISTRY_EVENT_KIND_PING_DUE) {
                uint8_t payload[8];
                for (int b = 0; b < 8; b++) {
                    payload[b] = (uint8_t)(now >> (56 - 8 * b));
                }
                if (s->conns[fd].id == e->conn) {
                    if (echo_send_frame(fd, FRAME_PING, payload, 8) == 0) {
                        s->stats.pings_sent++;
                    } else {
                        echo_close(s, e->conn, &s->stats.closed_by_error);
                    }
                }
            } else if (e->kind == TETHER_REGISTRY_EVENT_KIND_EXPIRED) {
                echo_expire(s, e->conn, e->tag);
            }
        }
    } while (n == 64);
}

/* Sets up a listening socket on 127.0.0.1:port (0 = any free port).
 * `policy` NULL means the default heartbeat. Returns 0 or -1. */
static int echo_server_init(echo_server *s, uint16_t port, const tether_policy *policy) {
    memset(s, 0, sizeof *s);
    s->listen_fd = -1;
    s->epfd = -1;
    struct rlimit rl;
    s->max_fds = (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
                     ? (size_t)rl.rlim_cur
                     : 65536;
    s->conns = calloc(s->max_fds, sizeof *s->conns);
    if (!s->conns) {
        return -1;
    }
    tether_policy default_policy;
    if (!policy) {
        tether_policy_default(&default_policy);
        policy = &default_policy;
    }
    tether_result r = tether_registry_new(policy, tether_now_ms(), &s->registry);
    if (r != TETHER_RESULT_OK) {
        echo_log_error("tether_registry_new", r);
        return -1;
    }
    tether_tcp_options_default(&s->tcp);

    s->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(s->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    socklen_t alen = sizeof addr;
    if (bind(s->listen_fd, (struct sockaddr *)&addr, sizeof addr) != 0 ||
        listen(s->listen_fd, 1024) != 0 ||
        getsockname(s->listen_fd, (struct sockaddr *)&addr, &alen) != 0) {
        perror("listen");
        return -1;
    }
    s->port = ntohs(addr.sin_port);

    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN;
    ev.data.u64 = 0; /* 0 is never a connection id: it marks the listener */
    if (s->epfd < 0 || epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->listen_fd, &ev) != 0) {
        perror("epoll");
        return -1;
    }
    return 0;
}

/* One round of the loop: wait (at most max_wait_ms, and never past the
 * registry's next deadline), handle socket events, then timers. */
static int echo_server_run_once(echo_server *s, int max_wait_ms) {
    int timeout = -1;
    tether_registry_next_timeout_ms(s->registry, tether_now_ms(), &timeout);
    if (timeout < 0 || (max_wait_ms >= 0 && timeout > max_wait_ms)) {
        timeout = max_wait_ms;
    }
    struct epoll_event events[ECHO_BATCH];
    int n = epoll_wait(s->epfd, events, ECHO_BATCH, timeout);
    if (n < 0 && errno != EINTR) {
        perror("epoll_wait");
        return -1;
    }
    uint64_t now = tether_now_ms();
    for (int i = 0; i < n; i++) {
        uint64_t id = events[i].data.u64;
        if (id == 0) {
            echo_accept(s, now);
            continue;
        }
        /* An earlier event of this batch (or an expiry) may have closed the
         * connection, and the fd number may even belong to a newer one: the
         * id tells. A stale id is simply skipped. */
        uint64_t tag = 0;
        if (tether_registry_tag(s->registry, id, &tag) != TETHER_RESULT_OK) {
            s->stats.stale_events++;
            continue;
        }
        int fd = (int)tag;
        uint32_t flags = events[i].events;
        if (flags & (EPOLLIN | EPOLLRDHUP)) {
            echo_readable(s, id, fd, now); /* read() == 0 or an error closes */
        }
        if (flags & (EPOLLHUP | EPOLLERR)) {
            /* Often the second disconnect signal for the same close: the
             * registry refuses it if the read above already closed. */
            echo_close(s, id, &s->stats.closed_by_error);
        }
    }
    echo_timers(s, tether_now_ms());
    return 0;
}

static void echo_server_destroy(echo_server *s) {
    if (s->conns) {
        for (size_t fd = 0; fd < s->max_fds; fd++) {
            if (s->conns[fd].id != 0) {
                echo_close(s, s->conns[fd].id, &s->stats.closed_by_error);
            }
        }
    }
    tether_registry_free(s->registry);
    s->registry.id = 0;
    if (s->epfd >= 0) {
        close(s->epfd);
    }
    if (s->listen_fd >= 0) {
        close(s->listen_fd);
    }
    free(s->conns);
    s->conns = NULL;
}

#ifndef TETHER_ECHO_NO_MAIN
static volatile sig_atomic_t stop_requested = 0;

static void on_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

int main(int argc, char **argv) {
    uint16_t port = argc > 1 ? (uint16_t)atoi(argv[1]) : 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    echo_server s;
    if (echo_server_init(&s, port, NULL) != 0) {
        echo_server_destroy(&s);
        return 1;
    }
    printf("listening on port %u\n", (unsigned)s.port);
    fflush(stdout);
    while (!stop_requested) {
        if (echo_server_run_once(&s, 200) != 0) {
            break;
        }
    }
    printf("accepted %llu, closed %llu (peer %llu, error %llu, expired %llu), "
           "refused second closes %llu, stale events %llu, pings %llu, echoed %llu\n",
           (unsigned long long)s.stats.accepted, (unsigned long long)s.stats.closed,
           (unsigned long long)s.stats.closed_by_peer, (unsigned long long)s.stats.closed_by_error,
           (unsigned long long)s.stats.closed_by_expiry, (unsigned long long)s.stats.second_closes,
           (unsigned long long)s.stats.stale_events, (unsigned long long)s.stats.pings_sent,
           (unsigned long long)s.stats.frames_echoed);
    echo_server_destroy(&s);
    tether_shutdown();
    return 0;
}
#endif

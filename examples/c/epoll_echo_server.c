/*
 * epoll_echo_server.c: scenario S4 ("SSL epoll server crashes when a client
 * disconnects") rebuilt on tether's sans-IO connection machine.
 *
 * The original stored an SSL* in epoll_event.data (a union, so the fd was
 * lost), received two disconnect events for one close (read() == 0, then
 * EPOLLHUP/EPOLLERR, or a second readiness event from the same batch),
 * freed twice and crashed. Here:
 *
 *   - The program keeps its epoll loop and its sockets; everything on the
 *     wire is tether's: each connection has a tether_conn that frames
 *     messages, answers and sends pings, judges liveness (heartbeat
 *     policy), notices a client that stops reading (write stall) and
 *     bounds its queues. No frame format is written by hand.
 *   - epoll_event.data.u64 holds the connection's accept number and fd;
 *     the per-fd table says which accept number the fd belongs to now, so
 *     an event for a connection already closed in this batch (even if its
 *     fd was reused) is recognised and skipped.
 *   - Closing goes through one gate, tether_conn_free(): only the first
 *     call for a connection returns TETHER_RESULT_OK; every later one (a
 *     second hang-up event, a close after the liveness verdict) returns
 *     TETHER_RESULT_STALE_HANDLE and is ignored. Each connection is closed
 *     exactly once, with the reason tether reported.
 *   - The epoll_wait timeout is the earliest tether_conn_next_timeout_ms
 *     of the open connections: no sweeper thread, no timer per connection.
 *     (This scans the open connections once per round; for hundreds of
 *     thousands of connections keep the deadlines in tether_registry's
 *     timer wheel instead.)
 *   - Accepted sockets get kernel keepalive and TCP_USER_TIMEOUT from
 *     tether_socket_tune().
 *
 * Each connection opens with tether's hello exchange (the default,
 * TETHER_OPENING_HELLO): a tether client counts as connected only once this
 * server's welcome arrived. Data messages are echoed.
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
#include <unistd.h>

#include "tether.h"

#define ECHO_BATCH 128

/* What we know about one open socket, indexed by fd. */
typedef struct echo_conn {
    tether_conn conn; /* {0}: the fd is not one of our connections */
    uint64_t seq;     /* accept order, 0, 1, ...; also in the epoll data */
    size_t live_index; /* where the fd is in echo_server.live */
    int want_out;     /* EPOLLOUT is armed (bytes wait for the socket) */
} echo_conn;

typedef struct echo_stats {
    uint64_t accepted;
    uint64_t closed;            /* connections closed (each exactly once) */
    uint64_t closed_by_peer;    /* read() == 0 */
    uint64_t closed_by_error;   /* ECONNRESET, EPOLLHUP/EPOLLERR, protocol errors */
    uint64_t closed_by_expiry;  /* tether's liveness verdict (reason timeout) */
    uint64_t second_closes;     /* close attempts refused by the gate (STALE) */
    uint64_t stale_events;      /* epoll events for an already closed connection */
    uint64_t frames_echoed;
} echo_stats;

typedef struct echo_server {
    int listen_fd;
    int epfd;
    uint16_t port;
    tether_conn_config config;
    tether_tcp_options tcp;
    echo_conn *conns;
    size_t max_fds;
    int *live; /* the fds of the open connections, densely */
    size_t nlive;
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

static uint64_t echo_key(uint64_t seq, int fd) {
    return (seq << 32) | (uint32_t)fd;
}

/* Closes connection `fd` once: tether_conn_free is the gate. */
static void echo_close(echo_server *s, int fd, uint64_t *counter) {
    echo_conn *c = &s->conns[fd];
    if (tether_conn_free(c->conn) != TETHER_RESULT_OK || c->conn.id == 0) {
        s->stats.second_closes++; /* already closed: not again */
        return;
    }
    epoll_ctl(s->epfd, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
    if (s->closes && c->seq < s->closes_cap) {
        s->closes[c->seq]++;
    }
    /* Keep `live` dense: the last fd takes this one's place. */
    int last = s->live[--s->nlive];
    s->live[c->live_index] = last;
    s->conns[last].live_index = c->live_index;
    memset(c, 0, sizeof *c);
    s->stats.closed++;
    (*counter)++;
}

/* Writes what the connection has for the socket; arms EPOLLOUT while some
 * is left. */
static void echo_flush(echo_server *s, int fd, uint64_t now) {
    echo_conn *c = &s->conns[fd];
    const uint8_t *data;
    size_t len;
    int left = 0;
    while (tether_conn_transmit_peek(c->conn, now, &data, &len) == TETHER_RESULT_OK) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        size_t took = n > 0 ? (size_t)n : 0;
        tether_conn_transmit_consume(c->conn, took, now);
        if (took < len) {
            left = 1; /* EAGAIN, or an error the next read reports */
            break;
        }
    }
    if (left != c->want_out) {
        struct epoll_event ev;
        memset(&ev, 0, sizeof ev);
        ev.events = EPOLLIN | EPOLLRDHUP | (left ? EPOLLOUT : 0);
        ev.data.u64 = echo_key(c->seq, fd);
        epoll_ctl(s->epfd, EPOLL_CTL_MOD, fd, &ev);
        c->want_out = left;
    }
}

/* Handles the connection's events: echoes messages; closes on CLOSED. */
static void echo_events(echo_server *s, int fd) {
    echo_conn *c = &s->conns[fd];
    tether_conn_event ev;
    while (c->conn.id != 0 && tether_conn_poll_event(c->conn, &ev) == TETHER_RESULT_OK) {
        if (ev.kind == TETHER_CONN_EVENT_KIND_MESSAGE) {
            if (tether_conn_send(c->conn, ev.data, ev.len) == TETHER_RESULT_OK) {
                s->stats.frames_echoed++;
            }
            /* FULL: the client sends faster than it reads; its own
             * backpressure (tether_conn_wants_read) holds it back. */
        } else if (ev.kind == TETHER_CONN_EVENT_KIND_CLOSED) {
            uint64_t *counter = ev.reason == TETHER_REASON_TIMEOUT       ? &s->stats.closed_by_expiry
                                : ev.reason == TETHER_REASON_PEER_CLOSED ? &s->stats.closed_by_peer
                                                                         : &s->stats.closed_by_error;
            echo_close(s, fd, counter);
        }
    }
}

/* Reads what is there (while the connection wants it). */
static void echo_readable(echo_server *s, int fd, uint64_t now) {
    uint8_t buf[16384];
    for (;;) {
        echo_conn *c = &s->conns[fd];
        bool wants = false;
        if (c->conn.id == 0 || tether_conn_wants_read(c->conn, &wants) != TETHER_RESULT_OK ||
            !wants) {
            return;
        }
        ssize_t n = read(fd, buf, sizeof buf);
        if (n > 0) {
            tether_conn_handle_bytes(c->conn, buf, (size_t)n, now);
            echo_events(s, fd);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n == 0) {
            tether_conn_handle_closed(c->conn, TETHER_REASON_PEER_CLOSED, NULL);
        } else {
            tether_conn_handle_closed(c->conn,
                                      errno == ECONNRESET ? TETHER_REASON_RESET : TETHER_REASON_IO,
                                      strerror(errno));
        }
        echo_events(s, fd);
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
        tether_conn conn = {0};
        r = tether_conn_new(TETHER_SIDE_SERVER, &s->config, now, &conn);
        if (r != TETHER_RESULT_OK) {
            echo_log_error("tether_conn_new", r);
            close(fd);
            continue;
        }
        echo_conn *c = &s->conns[fd];
        c->conn = conn;
        c->seq = s->stats.accepted++;
        c->live_index = s->nlive;
        c->want_out = 0;
        s->live[s->nlive++] = fd;
        struct epoll_event ev;
        memset(&ev, 0, sizeof ev);
        ev.events = EPOLLIN | EPOLLRDHUP;
        ev.data.u64 = echo_key(c->seq, fd);
        epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev);
    }
}

/* The epoll_wait timeout: the earliest deadline of the open connections,
 * at most `max_wait_ms` (-1: none). */
static int echo_next_timeout(echo_server *s, uint64_t now, int max_wait_ms) {
    int timeout = max_wait_ms;
    for (size_t i = 0; i < s->nlive; i++) {
        int t = -1;
        if (tether_conn_next_timeout_ms(s->conns[s->live[i]].conn, now, &t) == TETHER_RESULT_OK &&
            t >= 0 && (timeout < 0 || t < timeout)) {
            timeout = t;
        }
    }
    return timeout;
}

/* Runs due timers (pings, liveness verdicts, write stalls) and writes. */
static void echo_timers(echo_server *s, uint64_t now) {
    for (size_t i = 0; i < s->nlive;) {
        int fd = s->live[i];
        echo_conn *c = &s->conns[fd];
        int t = -1;
        if (tether_conn_next_timeout_ms(c->conn, now, &t) == TETHER_RESULT_OK && t == 0) {
            tether_conn_handle_timeout(c->conn, now);
        }
        echo_flush(s, fd, now);
        echo_events(s, fd);
        if (i < s->nlive && s->live[i] == fd) {
            i++; /* still open; otherwise another fd moved into slot i */
        }
    }
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
    s->live = calloc(s->max_fds, sizeof *s->live);
    if (!s->conns || !s->live) {
        return -1;
    }
    tether_conn_config_default(&s->config);
    if (policy) {
        s->config.policy = *policy;
    }
    /* Reject a bad policy now, not at the first connection. */
    tether_conn probe = {0};
    tether_result r = tether_conn_new(TETHER_SIDE_SERVER, &s->config, tether_now_ms(), &probe);
    if (r != TETHER_RESULT_OK) {
        echo_log_error("tether_conn_new", r);
        return -1;
    }
    tether_conn_free(probe);
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
    ev.data.u64 = UINT64_MAX; /* no connection has this key: the listener */
    if (s->epfd < 0 || epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->listen_fd, &ev) != 0) {
        perror("epoll");
        return -1;
    }
    return 0;
}

/* One round of the loop: wait (at most max_wait_ms, and never past the
 * next connection deadline), handle socket events, then timers. */
static int echo_server_run_once(echo_server *s, int max_wait_ms) {
    int timeout = echo_next_timeout(s, tether_now_ms(), max_wait_ms);
    struct epoll_event events[ECHO_BATCH];
    int n = epoll_wait(s->epfd, events, ECHO_BATCH, timeout);
    if (n < 0 && errno != EINTR) {
        perror("epoll_wait");
        return -1;
    }
    uint64_t now = tether_now_ms();
    for (int i = 0; i < n; i++) {
        uint64_t key = events[i].data.u64;
        if (key == UINT64_MAX) {
            echo_accept(s, now);
            continue;
        }
        /* An earlier event of this batch may have closed the connection,
         * and the fd number may even belong to a newer one: the accept
         * number tells. A stale event is simply skipped. */
        int fd = (int)(uint32_t)key;
        echo_conn *c = &s->conns[fd];
        if (c->conn.id == 0 || c->seq != key >> 32) {
            s->stats.stale_events++;
            continue;
        }
        uint32_t flags = events[i].events;
        if (flags & (EPOLLIN | EPOLLRDHUP)) {
            echo_readable(s, fd, now); /* read() == 0 or an error closes */
        }
        if (c->conn.id != 0 && (flags & (EPOLLHUP | EPOLLERR))) {
            /* Often the second disconnect signal for the same close: a
             * connection the read above closed is not there any more, and
             * a second CLOSED is never reported. */
            tether_conn_handle_closed(c->conn, TETHER_REASON_RESET, "EPOLLHUP/EPOLLERR");
            echo_events(s, fd);
        }
    }
    echo_timers(s, tether_now_ms());
    return 0;
}

static void echo_server_destroy(echo_server *s) {
    while (s->live && s->nlive > 0) {
        echo_close(s, s->live[s->nlive - 1], &s->stats.closed_by_error);
    }
    if (s->epfd >= 0) {
        close(s->epfd);
    }
    if (s->listen_fd >= 0) {
        close(s->listen_fd);
    }
    free(s->conns);
    free(s->live);
    s->conns = NULL;
    s->live = NULL;
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
           "refused second closes %llu, stale events %llu, echoed %llu\n",
           (unsigned long long)s.stats.accepted, (unsigned long long)s.stats.closed,
           (unsigned long long)s.stats.closed_by_peer, (unsigned long long)s.stats.closed_by_error,
           (unsigned long long)s.stats.closed_by_expiry, (unsigned long long)s.stats.second_closes,
           (unsigned long long)s.stats.stale_events, (unsigned long long)s.stats.frames_echoed);
    echo_server_destroy(&s);
    tether_shutdown();
    return 0;
}
#endif

/*
 * test_s4_epoll.c: scenario S4 end to end.
 *
 * The example epoll server (examples/c/epoll_echo_server.c, embedded here)
 * runs on tether's sans-IO connection machine (tether_conn) in this
 * thread. Another thread runs
 * 1,000 clients that each connect, get one echo, and then vanish:
 *
 *   40 % close normally (FIN),
 *   40 % reset (SO_LINGER 0: RST, which raises EPOLLIN|EPOLLHUP|EPOLLERR
 *        at once, the double-disconnect that crashed the original server),
 *   10 % go silent and are expired by the heartbeat policy,
 *   10 % go silent and reset right around the expiry (racing it).
 *
 * Passes when every connection was accepted and closed exactly once (per
 * connection counter), nothing crashed, and (under ASan/LSan) nothing
 * leaked.
 */
#define TETHER_ECHO_NO_MAIN
#include "../../examples/c/epoll_echo_server.c"

#include <poll.h>
#include <pthread.h>

#include "test_util.h"

#define N_CLIENTS 1000
#define INTERVAL_MS 300
#define TIMEOUT_MS 200
#define BOUND_MS (INTERVAL_MS + TIMEOUT_MS)
#define FRAME_DATA 1 /* tether's data frame: kind 1, 4-byte length, payload */
#define FRAME_HELLO 4 /* the opening: version (u16), capabilities (u64) */

static uint16_t server_port;
static int clients_done;   /* set by the client thread (atomic) */
static int echoes_ok;      /* written by the client thread, read after join */
static int expired_seen;   /* silent clients that saw the server close */
static int client_errors;

static int connect_client(void) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(server_port);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        close(fd);
        return -1;
    }
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

static int read_full(int fd, uint8_t *buf, size_t len) {
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, buf + got, len - got);
        if (n <= 0) {
            return -1;
        }
        got += (size_t)n;
    }
    return 0;
}

/* Opens like a tether client (a hello: version 1, no capabilities), sends
 * one data frame and waits for its echo (skipping the welcome and pings). */
static int hello(int fd, int i) {
    static const uint8_t opening[5 + 10] = {FRAME_HELLO, 0, 0, 0, 10, 0, 1};
    if (write(fd, opening, sizeof opening) != (ssize_t)sizeof opening) {
        return -1;
    }
    uint8_t frame[5 + 16];
    int len = snprintf((char *)frame + 5, 16, "hello %d", i);
    frame[0] = FRAME_DATA;
    frame[1] = frame[2] = frame[3] = 0;
    frame[4] = (uint8_t)len;
    if (write(fd, frame, 5 + (size_t)len) != 5 + len) {
        return -1;
    }
    for (;;) {
        uint8_t h[5], payload[64];
        if (read_full(fd, h, 5) != 0) {
            return -1;
        }
        uint32_t plen = ((uint32_t)h[3] << 8) | h[4];
        if (h[1] || h[2] || plen > sizeof payload || read_full(fd, payload, plen) != 0) {
            return -1;
        }
        if (h[0] == FRAME_DATA) {
            return (plen == (uint32_t)len && memcmp(payload, frame + 5, plen) == 0) ? 0 : -1;
        }
    }
}

static void reset_close(int fd) {
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
}

/* Waits until the server closes `fd` (EOF or reset), up to 5 s. */
static int wait_server_close(int fd) {
    uint8_t buf[256];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n == 0 || (n < 0 && errno == ECONNRESET)) {
            return 0;
        }
        if (n < 0) {
            return -1; /* timeout */
        }
    }
}

static void *client_thread(void *arg) {
    (void)arg;
    enum { WAVE = 250 };
    static int fds[WAVE];
    for (int base = 0; base < N_CLIENTS; base += WAVE) {
        for (int k = 0; k < WAVE; k++) {
            int i = base + k;
            fds[k] = connect_client();
            if (fds[k] < 0 || hello(fds[k], i) != 0) {
                client_errors++;
            } else {
                echoes_ok++;
            }
        }
        /* Vanish: FIN and RST mixed, all at once. */
        for (int k = 0; k < WAVE; k++) {
            int kind = (base + k) % 10;
            if (fds[k] < 0 || kind >= 8) {
                continue;
            }
            if (kind < 4) {
                close(fds[k]);
            } else {
                reset_close(fds[k]);
            }
            fds[k] = -1;
        }
        /* Silent ones: reset around the detection bound, racing the expiry. */
        test_sleep_ms(BOUND_MS - 20);
        for (int k = 0; k < WAVE; k++) {
            if (fds[k] >= 0 && (base + k) % 10 == 9) {
                test_sleep_ms(1);
                reset_close(fds[k]);
                fds[k] = -1;
            }
        }
        /* The rest must be closed by the server's liveness expiry. */
        for (int k = 0; k < WAVE; k++) {
            if (fds[k] >= 0) {
                if (wait_server_close(fds[k]) == 0) {
                    expired_seen++;
                } else {
                    client_errors++;
                }
                close(fds[k]);
                fds[k] = -1;
            }
        }
    }
    __atomic_store_n(&clients_done, 1, __ATOMIC_RELEASE);
    return NULL;
}

/* The gate refuses a second close of the same connection, whatever order
 * the duplicate signals come in. */
static void check_duplicate_close(echo_server *s) {
    int fd = connect_client();
    CHECK(fd >= 0);
    uint64_t deadline = tether_now_ms() + 5000;
    uint64_t before = s->stats.accepted;
    while (s->stats.accepted == before && tether_now_ms() < deadline) {
        echo_server_run_once(s, 50);
    }
    CHECK(s->nlive == 1);
    int server_fd = s->live[0];
    tether_conn conn = s->conns[server_fd].conn;
    CHECK(conn.id != 0);
    uint64_t closed = s->stats.closed, refused = s->stats.second_closes;
    echo_close(s, server_fd, &s->stats.closed_by_error);
    echo_close(s, server_fd, &s->stats.closed_by_error); /* e.g. EPOLLHUP after read() == 0 */
    echo_close(s, server_fd, &s->stats.closed_by_expiry); /* a late verdict */
    CHECK(s->stats.closed == closed + 1);
    CHECK(s->stats.second_closes == refused + 2);
    CHECK_RC(tether_conn_free(conn), TETHER_RESULT_STALE_HANDLE);
    CHECK_RC(tether_conn_handle_timeout(conn, tether_now_ms()), TETHER_RESULT_STALE_HANDLE);
    close(fd);
}

int main(void) {
    tether_policy policy;
    memset(&policy, 0, sizeof policy);
    policy.kind = TETHER_POLICY_KIND_HEARTBEAT;
    policy.interval_ms = INTERVAL_MS;
    policy.timeout_ms = TIMEOUT_MS;
    policy.max_missed = 1;

    static echo_server s;
    CHECK(echo_server_init(&s, 0, &policy) == 0);
    s.closes_cap = N_CLIENTS + 1;
    s.closes = calloc(s.closes_cap, 1);
    server_port = s.port;

    pthread_t th;
    CHECK(pthread_create(&th, NULL, client_thread, NULL) == 0);
    uint64_t deadline = tether_now_ms() + 60000;
    while (tether_now_ms() < deadline) {
        echo_server_run_once(&s, 20);
        if (__atomic_load_n(&clients_done, __ATOMIC_ACQUIRE) && s.stats.closed >= s.stats.accepted) {
            break;
        }
    }
    pthread_join(th, NULL);
    /* Let the last resets arrive. */
    for (int i = 0; i < 20 && s.stats.closed < s.stats.accepted; i++) {
        echo_server_run_once(&s, 50);
    }

    printf("accepted %" PRIu64 ", closed %" PRIu64 " (peer %" PRIu64 ", error/reset %" PRIu64
           ", expired %" PRIu64 "), refused second closes %" PRIu64 ", stale epoll events %" PRIu64
           ", echoed %" PRIu64 "\n",
           s.stats.accepted, s.stats.closed, s.stats.closed_by_peer, s.stats.closed_by_error,
           s.stats.closed_by_expiry, s.stats.second_closes, s.stats.stale_events,
           s.stats.frames_echoed);

    CHECK(client_errors == 0);
    CHECK(echoes_ok == N_CLIENTS);
    CHECK(s.stats.accepted == N_CLIENTS);
    CHECK(s.stats.closed == N_CLIENTS);
    CHECK(s.stats.frames_echoed == N_CLIENTS);
    int once = 0;
    for (size_t i = 0; i < N_CLIENTS; i++) {
        once += s.closes[i] == 1;
        if (s.closes[i] != 1) {
            fprintf(stderr, "connection %zu closed %u times\n", i, (unsigned)s.closes[i]);
        }
    }
    CHECK(once == N_CLIENTS);
    /* Every silent client was expired by its heartbeat; the racing ones
     * either expired or were seen resetting. */
    CHECK(expired_seen == N_CLIENTS / 10);
    CHECK(s.stats.closed_by_expiry >= N_CLIENTS / 10);
    CHECK(s.nlive == 0);

    check_duplicate_close(&s);

    echo_server_destroy(&s);
    free(s.closes);
    CHECK_OK(tether_shutdown());
    return test_finish("test_s4_epoll");
}

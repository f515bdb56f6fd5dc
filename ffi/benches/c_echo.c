/*
 * Echo throughput through libtether's managed objects, as a C program
 * uses them: a tether_server whose callback echoes every message with
 * tether_server_feed (flushed when the callback batch ends), and a
 * tether_client that keeps WINDOW messages in flight, feeding what the
 * window allows and flushing once (tether_client_feed, tether_client_flush),
 * taking its events either by callback or by polling
 * (tether_client_poll_event, sleeping on tether_client_event_fd).
 *
 * The same shape as the Rust echo benchmark (transports/benches/echo.rs):
 * loopback TCP, default configs, 64 messages in flight, feed+flush,
 * payload bytes echoed per second in one direction (MB = 10^6 bytes).
 *
 * Usage: c_echo callback|poll SIZE MESSAGES ROUNDS
 * Prints one line per round and the median:
 *   c-echo callback 64 B: median 12.3 MB/s (190000 msg/s) over 5 rounds
 *
 * scripts/bench-c builds and runs it next to the Rust figure.
 */
#include "tether.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WINDOW 64

static void die(const char *what, tether_result r) {
    char msg[512] = {0};
    size_t n = 0;
    tether_last_error_message(msg, sizeof msg, &n);
    fprintf(stderr, "c_echo: %s failed: result %u: %s\n", what, (unsigned)r, msg);
    exit(1);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- server: echo in the callback ---- */

static void echo(void *userdata, const tether_event *ev) {
    (void)userdata;
    if (ev->kind == TETHER_EVENT_KIND_MESSAGE) {
        tether_server server = {ev->object};
        tether_result r = tether_server_feed(server, ev->conn, ev->data, ev->len);
        if (r != TETHER_RESULT_OK) {
            die("tether_server_feed", r);
        }
    }
}

/* ---- client state shared with its callback ---- */

struct counts {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int connected;
    /* Set before the free: the close it makes is expected. */
    int closing;
    size_t received;
    size_t bytes;
};

static void count_event(struct counts *c, const tether_event *ev) {
    if (ev->kind == TETHER_EVENT_KIND_CONNECTED) {
        c->connected = 1;
    } else if (ev->kind == TETHER_EVENT_KIND_MESSAGE) {
        c->received++;
        c->bytes += ev->len;
    } else if ((ev->kind == TETHER_EVENT_KIND_DISCONNECTED && !c->closing) ||
               ev->kind == TETHER_EVENT_KIND_FAILED) {
        fprintf(stderr, "c_echo: the connection ended: %s\n",
                ev->detail ? ev->detail : "(no detail)");
        exit(1);
    }
}

static void on_client_event(void *userdata, const tether_event *ev) {
    struct counts *c = userdata;
    pthread_mutex_lock(&c->lock);
    count_event(c, ev);
    pthread_cond_signal(&c->changed);
    pthread_mutex_unlock(&c->lock);
}

/* Poll mode: takes every ready event; waits on the descriptor if none. */
static void poll_events(tether_client client, int fd, struct counts *c) {
    tether_event ev;
    int any = 0;
    for (;;) {
        tether_result r = tether_client_poll_event(client, &ev);
        if (r == TETHER_RESULT_EMPTY) {
            break;
        }
        if (r != TETHER_RESULT_OK) {
            die("tether_client_poll_event", r);
        }
        count_event(c, &ev);
        any = 1;
    }
    if (!any) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 1000) < 0 && errno != EINTR) {
            perror("poll");
            exit(1);
        }
    }
}

/* One round: `messages` messages of `size` bytes, WINDOW in flight. */
static double round_mb_s(const char *address, int poll_mode, size_t size, size_t messages) {
    struct counts c = {.connected = 0, .closing = 0, .received = 0, .bytes = 0};
    pthread_mutex_init(&c.lock, NULL);
    pthread_cond_init(&c.changed, NULL);
    tether_client client = {0};
    tether_result r = tether_client_new(address, NULL, poll_mode ? NULL : on_client_event,
                                        poll_mode ? NULL : &c, &client);
    if (r != TETHER_RESULT_OK) {
        die("tether_client_new", r);
    }
    int fd = -1;
    if (poll_mode && (r = tether_client_event_fd(client, &fd)) != TETHER_RESULT_OK) {
        die("tether_client_event_fd", r);
    }
    unsigned char *payload = malloc(size);
    for (size_t i = 0; i < size; i++) {
        payload[i] = (unsigned char)i;
    }
    /* Wait for the connection. */
    for (;;) {
        if (poll_mode) {
            poll_events(client, fd, &c);
            if (c.connected) {
                break;
            }
        } else {
            pthread_mutex_lock(&c.lock);
            while (!c.connected) {
                pthread_cond_wait(&c.changed, &c.lock);
            }
            pthread_mutex_unlock(&c.lock);
            break;
        }
    }
    double start = now_s();
    size_t sent = 0;
    for (;;) {
        size_t received;
        if (poll_mode) {
            received = c.received;
        } else {
            pthread_mutex_lock(&c.lock);
            while (c.received < messages && sent - c.received >= WINDOW) {
                pthread_cond_wait(&c.changed, &c.lock);
            }
            received = c.received;
            pthread_mutex_unlock(&c.lock);
        }
        if (received >= messages) {
            break;
        }
        size_t fed = 0;
        while (sent < messages && sent - received < WINDOW) {
            r = tether_client_feed(client, payload, size);
            if (r == TETHER_RESULT_FULL) {
                break;
            }
            if (r != TETHER_RESULT_OK) {
                die("tether_client_feed", r);
            }
            sent++;
            fed++;
        }
        if (fed > 0 && (r = tether_client_flush(client)) != TETHER_RESULT_OK) {
            die("tether_client_flush", r);
        }
        if (poll_mode) {
            poll_events(client, fd, &c);
        }
    }
    double elapsed = now_s() - start;
    if (c.bytes != size * messages) {
        fprintf(stderr, "c_echo: %zu bytes echoed, expected %zu\n", c.bytes, size * messages);
        exit(1);
    }
    pthread_mutex_lock(&c.lock);
    c.closing = 1;
    pthread_mutex_unlock(&c.lock);
    /* Once the free returns no callback runs: `c` may go. */
    if ((r = tether_client_free(client)) != TETHER_RESULT_OK) {
        die("tether_client_free", r);
    }
    free(payload);
    pthread_cond_destroy(&c.changed);
    pthread_mutex_destroy(&c.lock);
    return (double)(size * messages) / elapsed / 1e6;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc != 5 || (strcmp(argv[1], "callback") != 0 && strcmp(argv[1], "poll") != 0)) {
        fprintf(stderr, "usage: c_echo callback|poll SIZE MESSAGES ROUNDS\n");
        return 2;
    }
    int poll_mode = strcmp(argv[1], "poll") == 0;
    size_t size = strtoul(argv[2], NULL, 10);
    size_t messages = strtoul(argv[3], NULL, 10);
    int rounds = atoi(argv[4]);
    if (size == 0 || messages == 0 || rounds < 1 || rounds > 99) {
        fprintf(stderr, "c_echo: SIZE and MESSAGES must be > 0, ROUNDS 1 to 99\n");
        return 2;
    }
    tether_server server = {0};
    tether_result r = tether_server_new("tcp://127.0.0.1:0", NULL, echo, NULL, &server);
    if (r != TETHER_RESULT_OK) {
        die("tether_server_new", r);
    }
    uint16_t port = 0;
    if ((r = tether_server_local_port(server, &port)) != TETHER_RESULT_OK) {
        die("tether_server_local_port", r);
    }
    char address[64];
    snprintf(address, sizeof address, "tcp://127.0.0.1:%u", (unsigned)port);
    /* One untimed warm-up round, then the timed ones. */
    round_mb_s(address, poll_mode, size, messages / 10 + WINDOW);
    double results[99];
    for (int i = 0; i < rounds; i++) {
        results[i] = round_mb_s(address, poll_mode, size, messages);
        printf("c-echo %s %zu B: round %d: %.1f MB/s\n", argv[1], size, i + 1, results[i]);
    }
    qsort(results, (size_t)rounds, sizeof results[0], cmp_double);
    double median = results[rounds / 2];
    printf("c-echo %s %zu B: median %.1f MB/s (%.0f msg/s) over %d rounds, range %.1f-%.1f\n",
           argv[1], size, median, median * 1e6 / (double)size, rounds, results[0],
           results[rounds - 1]);
    tether_server_free(server);
    tether_shutdown();
    return 0;
}

/*
 * supervised_client.c: tether's managed client from C.
 *
 * Connects to a tether-framed server (e.g. epoll_echo_server), reconnects
 * with backoff whenever the connection is lost, and prints every lifecycle
 * event, which tether reports exactly once each and in order. Sends
 * `count` messages and exits once all were echoed back.
 *
 * Usage: supervised_client [scheme://host:port] [count]
 *        (default tcp://127.0.0.1:7000, 5 messages)
 *
 * Any transport: tcp://, tls://, quic:// or udp://. Their settings come
 * from the environment, through a tether_transport_options object:
 *   TETHER_CA_FILE      PEM file of CAs to trust (tls://, quic://; default:
 *                       the platform's roots)
 *   TETHER_SERVER_NAME  name to verify instead of the address's host
 *   TETHER_PSK          pre-shared key, 16 bytes or more (udp://; required)
 *
 * Events arrive on a tether-owned dispatch thread (callback mode), so the
 * shared state below is protected by a mutex.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tether.h"

static const char *const REASONS[] = {
    "none", "peer_closed", "reset", "timeout", "connect_refused", "connect_timeout",
    "unreachable", "protocol_error", "closed_locally", "io", "taken_over",
};

static const char *reason_name(uint32_t r) {
    return r < sizeof REASONS / sizeof REASONS[0] ? REASONS[r] : "?";
}

typedef struct app {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int connected;
    int echoes;
    int terminal;
} app;

static void on_event(void *userdata, const tether_event *ev) {
    app *a = userdata;
    pthread_mutex_lock(&a->lock);
    switch (ev->kind) {
    case TETHER_EVENT_KIND_CONNECTING:
        printf("connecting      generation %llu, attempt %u\n",
               (unsigned long long)ev->generation, ev->attempt);
        break;
    case TETHER_EVENT_KIND_CONNECTED:
        printf("connected       generation %llu, attempt %u\n",
               (unsigned long long)ev->generation, ev->attempt);
        a->connected = 1;
        break;
    case TETHER_EVENT_KIND_CONNECT_FAILED:
        printf("connect failed  generation %llu, attempt %u: %s\n",
               (unsigned long long)ev->generation, ev->attempt, reason_name(ev->reason));
        break;
    case TETHER_EVENT_KIND_DISCONNECTED:
        printf("disconnected    generation %llu: %s\n", (unsigned long long)ev->generation,
               reason_name(ev->reason));
        a->connected = 0;
        break;
    case TETHER_EVENT_KIND_WAITING:
        printf("waiting         %llu ms before attempt %u\n", (unsigned long long)ev->delay_ms,
               ev->attempt);
        break;
    case TETHER_EVENT_KIND_MESSAGE:
        /* ev->data is only valid during this call: print it now. */
        printf("message         \"%.*s\"\n", (int)ev->len, (const char *)ev->data);
        a->echoes++;
        break;
    case TETHER_EVENT_KIND_CLOSED:
        printf("closed\n");
        a->terminal = 1;
        break;
    case TETHER_EVENT_KIND_GAVE_UP:
        printf("gave up: %s\n", reason_name(ev->reason));
        a->terminal = 1;
        break;
    default:
        break;
    }
    fflush(stdout);
    pthread_cond_broadcast(&a->changed);
    pthread_mutex_unlock(&a->lock);
}

/* Waits until *flag >= want or `seconds` pass; returns 1 if reached. */
static int wait_for(app *a, const int *flag, int want, int seconds) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += seconds;
    pthread_mutex_lock(&a->lock);
    while (*flag < want) {
        if (pthread_cond_timedwait(&a->changed, &a->lock, &deadline) != 0) {
            break;
        }
    }
    int ok = *flag >= want;
    pthread_mutex_unlock(&a->lock);
    return ok;
}

static void fail(const char *what, tether_result r) {
    char detail[256];
    size_t n;
    if (tether_last_error_message(detail, sizeof detail, &n) != TETHER_RESULT_OK) {
        detail[0] = '\0';
    }
    fprintf(stderr, "%s: %s: %s\n", what, tether_result_str(r), detail);
}

int main(int argc, char **argv) {
    const char *address = argc > 1 ? argv[1] : "tcp://127.0.0.1:7000";
    int count = argc > 2 ? atoi(argv[2]) : 5;

    app a;
    memset(&a, 0, sizeof a);
    pthread_mutex_init(&a.lock, NULL);
    pthread_cond_init(&a.changed, NULL);

    tether_client_config cfg;
    tether_client_config_default(&cfg);
    cfg.heartbeat_interval_ms = 2000; /* ping after 2 s of silence */
    cfg.heartbeat_timeout_ms = 1000;  /* ... and expect an answer within 1 s */
    cfg.backoff.initial_ms = 100;     /* reconnect quickly for the demo */
    cfg.backoff.max_delay_ms = 2000;

    /* Transport settings: copied by tether_client_new, so freed right after. */
    tether_transport_options opts = {0};
    tether_result r = tether_transport_options_new(&opts);
    const char *ca = getenv("TETHER_CA_FILE");
    const char *name = getenv("TETHER_SERVER_NAME");
    const char *psk = getenv("TETHER_PSK");
    if (r == TETHER_RESULT_OK && ca) {
        if ((r = tether_transport_options_set_tls_ca_file(opts, ca)) == TETHER_RESULT_OK) {
            r = tether_transport_options_set_quic_ca_file(opts, ca);
        }
    }
    if (r == TETHER_RESULT_OK && name) {
        if ((r = tether_transport_options_set_tls_server_name(opts, name)) == TETHER_RESULT_OK) {
            r = tether_transport_options_set_quic_server_name(opts, name);
        }
    }
    if (r == TETHER_RESULT_OK && psk) {
        r = tether_transport_options_set_udp_psk(opts, (const uint8_t *)psk, strlen(psk));
    }
    if (r != TETHER_RESULT_OK) {
        fail("transport options", r); /* the detail names the field */
        tether_transport_options_free(opts);
        return 1;
    }
    cfg.transport = opts;

    tether_client client = {0};
    r = tether_client_new(address, &cfg, on_event, &a, &client);
    tether_transport_options_free(opts);
    if (r != TETHER_RESULT_OK) {
        fail("tether_client_new", r);
        return 1;
    }

    int status = 0;
    if (!wait_for(&a, &a.connected, 1, 10)) {
        fprintf(stderr, "no connection to %s within 10 s\n", address);
        status = 1;
    }
    for (int i = 0; status == 0 && i < count; i++) {
        char msg[64];
        int len = snprintf(msg, sizeof msg, "hello #%d", i + 1);
        /* The message is copied; while disconnected it waits in a buffer. */
        r = tether_client_send(client, (const uint8_t *)msg, (size_t)len);
        if (r != TETHER_RESULT_OK) {
            fail("tether_client_send", r);
            status = 1;
        }
    }
    if (status == 0 && !wait_for(&a, &a.echoes, count, 10)) {
        fprintf(stderr, "only %d of %d echoes arrived\n", a.echoes, count);
        status = 1;
    }

    tether_client_close(client); /* orderly close; CLOSED follows */
    wait_for(&a, &a.terminal, 1, 5);
    tether_client_free(client); /* no callback runs after this returns */
    tether_shutdown();
    pthread_cond_destroy(&a.changed);
    pthread_mutex_destroy(&a.lock);
    return status;
}

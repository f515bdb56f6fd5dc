/* A recorder of managed-object events for tether's C tests: a callback
 * that keeps every event (and copies of messages and peer addresses), can
 * echo messages as a server, and can free its own object from inside the
 * callback; plus waiting helpers and the client lifecycle grammar check.
 * Shared by test_managed.c (TCP) and test_transports.c (TLS, QUIC, UDP). */
#ifndef TETHER_TEST_RECORDER_H
#define TETHER_TEST_RECORDER_H

#include <pthread.h>

#include "test_util.h"

#define MAX_EVENTS 4096
#define MAX_MSGS 64

typedef struct recorder {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    tether_event events[MAX_EVENTS];
    int n;
    char msgs[MAX_MSGS][64];
    uint64_t msg_conn[MAX_MSGS];
    int nmsgs;
    /* server behaviour */
    tether_server server;
    int echo;          /* echo every message back (2: with tether_server_feed) */
    const char *greet; /* send this to every accepted connection */
    int send_errors;
    /* destroy-in-callback */
    tether_client self_client;
    tether_server self_server;
    uint32_t free_on;  /* event kind that triggers freeing self (0 = never) */
    int freed;
    tether_result free_rc;
    int after_free;    /* callbacks after the object was freed */
    int data_ok;       /* the event's data was intact after the free */
    volatile int outside_freed; /* set by main after a free from outside */
    /* peer addresses (server events carry one, client events none) */
    char accepted_peer[64]; /* the peer of the last ACCEPTED */
    char closed_peer[64];   /* the peer of the last CLOSED with a conn */
    int peer_missing;       /* server events without a peer */
    int peer_unexpected;    /* client events with a peer */
    /* details and handles */
    char last_detail[256];  /* the detail of the last event that had one */
    int detail_missing;     /* failure/end events without a detail */
    int detail_unexpected;  /* other events with a detail */
    uint64_t object;        /* the handle of the first event */
    int object_mismatch;    /* events naming another (or no) handle */
} recorder;

static inline void rec_init(recorder *r) {
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->cond, NULL);
}

static inline void rec_destroy(recorder *r) {
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->lock);
}

static inline void on_event(void *userdata, const tether_event *ev) {
    recorder *r = userdata;
    pthread_mutex_lock(&r->lock);
    if (r->freed || __atomic_load_n(&r->outside_freed, __ATOMIC_ACQUIRE)) {
        r->after_free++;
    }
    if (r->n < MAX_EVENTS) {
        r->events[r->n] = *ev;
        r->events[r->n].data = NULL; /* only valid during the call */
        r->events[r->n].peer = NULL;
        r->events[r->n].detail = NULL;
        r->n++;
    }
    int wants_detail = ev->kind == TETHER_EVENT_KIND_CONNECT_FAILED ||
                       ev->kind == TETHER_EVENT_KIND_DISCONNECTED ||
                       ev->kind == TETHER_EVENT_KIND_GAVE_UP || ev->kind == TETHER_EVENT_KIND_FAILED ||
                       (ev->kind == TETHER_EVENT_KIND_CLOSED && ev->conn != 0);
    if (ev->detail != NULL && ev->detail[0] != '\0') {
        snprintf(r->last_detail, sizeof r->last_detail, "%s", ev->detail);
        r->detail_unexpected += !wants_detail;
    } else {
        r->detail_missing += wants_detail;
    }
    if (r->object == 0) {
        r->object = ev->object;
    }
    r->object_mismatch += ev->object == 0 || ev->object != r->object;
    if (ev->conn != 0) {
        if (ev->peer == NULL) {
            r->peer_missing++;
        } else if (ev->kind == TETHER_EVENT_KIND_ACCEPTED) {
            snprintf(r->accepted_peer, sizeof r->accepted_peer, "%s", ev->peer);
        } else if (ev->kind == TETHER_EVENT_KIND_CLOSED) {
            snprintf(r->closed_peer, sizeof r->closed_peer, "%s", ev->peer);
        }
    } else if (ev->peer != NULL) {
        r->peer_unexpected++;
    }
    if (ev->kind == TETHER_EVENT_KIND_MESSAGE && r->nmsgs < MAX_MSGS) {
        size_t len = ev->len < 63 ? ev->len : 63;
        memcpy(r->msgs[r->nmsgs], ev->data, len);
        r->msgs[r->nmsgs][len] = '\0';
        r->msg_conn[r->nmsgs] = ev->conn;
        r->nmsgs++;
    }
    if (r->echo && ev->kind == TETHER_EVENT_KIND_MESSAGE && ev->conn != 0) {
        tether_result rc = r->echo == 2 ? tether_server_feed(r->server, ev->conn, ev->data, ev->len)
                                        : tether_server_send(r->server, ev->conn, ev->data, ev->len);
        if (rc != TETHER_RESULT_OK) {
            r->send_errors++;
        }
    }
    if (r->greet && ev->kind == TETHER_EVENT_KIND_ACCEPTED) {
        if (tether_server_send(r->server, ev->conn, (const uint8_t *)r->greet, strlen(r->greet)) !=
            TETHER_RESULT_OK) {
            r->send_errors++;
        }
    }
    if (r->free_on && ev->kind == r->free_on && !r->freed) {
        /* Destroy ourselves from inside our own callback. */
        if (r->self_client.id) {
            r->free_rc = tether_client_free(r->self_client);
        } else {
            r->free_rc = tether_server_free(r->self_server);
        }
        r->freed = 1;
        /* The event stays valid until we return. */
        if (ev->kind == TETHER_EVENT_KIND_MESSAGE && r->greet == NULL) {
            r->data_ok = ev->len == 7 && memcmp(ev->data, "welcome", 7) == 0;
        }
    }
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
}

static inline int count_kind(recorder *r, uint32_t kind) {
    int c = 0;
    for (int i = 0; i < r->n; i++) {
        c += r->events[i].kind == kind;
    }
    return c;
}

/* Waits (up to ms) until at least `want` events of `kind` were recorded. */
static inline int wait_kind(recorder *r, uint32_t kind, int want, unsigned ms) {
    uint64_t deadline = test_mono_ms() + ms;
    pthread_mutex_lock(&r->lock);
    while (count_kind(r, kind) < want && test_mono_ms() < deadline) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 20 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&r->cond, &r->lock, &ts);
    }
    int ok = count_kind(r, kind) >= want;
    pthread_mutex_unlock(&r->lock);
    if (!ok) {
        fprintf(stderr, "timed out waiting for %d events of kind %u\n", want, kind);
    }
    return ok;
}

static inline int wait_msgs(recorder *r, int want, unsigned ms) {
    return wait_kind(r, TETHER_EVENT_KIND_MESSAGE, want, ms);
}

static inline tether_client_config fast_client_config(void) {
    tether_client_config c;
    tether_client_config_default(&c);
    c.heartbeat_interval_ms = 1000;
    c.heartbeat_timeout_ms = 500;
    c.heartbeat_max_missed = 2;
    c.backoff.initial_ms = 20;
    c.backoff.max_delay_ms = 100;
    c.backoff.jitter = TETHER_JITTER_NONE;
    c.backoff.healthy_after_ms = 0;
    return c;
}

/* Lifecycle order per generation: CONNECTING, then CONNECTED or
 * CONNECT_FAILED; each CONNECTED followed by exactly one DISCONNECTED
 * (except the last when closed); one CLOSED, last. */
static inline void check_lifecycle(recorder *r) {
    /* Every event names its object; every failure says why in words. */
    CHECK(r->object_mismatch == 0);
    CHECK(r->detail_missing == 0);
    CHECK(r->detail_unexpected == 0);
    uint64_t connecting_gen = 0, connected_gen = 0;
    int open = 0, terminal = 0;
    for (int i = 0; i < r->n; i++) {
        tether_event *e = &r->events[i];
        CHECK(!terminal); /* nothing after CLOSED / GAVE_UP */
        switch (e->kind) {
        case TETHER_EVENT_KIND_CONNECTING:
            CHECK(!open);
            CHECK(e->generation == connecting_gen + 1);
            connecting_gen = e->generation;
            break;
        case TETHER_EVENT_KIND_CONNECTED:
            CHECK(e->generation == connecting_gen && !open);
            CHECK(e->generation > connected_gen);
            connected_gen = e->generation;
            open = 1;
            break;
        case TETHER_EVENT_KIND_CONNECT_FAILED:
            CHECK(e->generation == connecting_gen && !open);
            /* Refused, timed out, unreachable, a certificate refused; or a
             * connection the kernel completed that ended before the
             * server's welcome (a server going down mid-opening). */
            CHECK((e->reason >= TETHER_REASON_CONNECT_REFUSED &&
                   e->reason <= TETHER_REASON_UNREACHABLE) ||
                  e->reason == TETHER_REASON_PEER_CLOSED || e->reason == TETHER_REASON_RESET ||
                  e->reason == TETHER_REASON_TLS_CERTIFICATE ||
                  e->reason == TETHER_REASON_TLS_NAME_MISMATCH);
            break;
        case TETHER_EVENT_KIND_DISCONNECTED:
            CHECK(open && e->generation == connected_gen);
            open = 0;
            break;
        case TETHER_EVENT_KIND_MESSAGE:
            CHECK(open);
            CHECK(e->generation == connected_gen);
            break;
        case TETHER_EVENT_KIND_WAITING:
            CHECK(e->generation == connecting_gen);
            break;
        case TETHER_EVENT_KIND_CLOSED:
        case TETHER_EVENT_KIND_GAVE_UP:
            terminal = 1;
            break;
        default:
            break;
        }
    }
}

#endif

/*
 * test_managed.c: the managed client and server over loopback TCP.
 *
 *  1. exchange + server restart (callback mode): the client reconnects to a
 *     new server on the same port; lifecycle events arrive exactly once and
 *     in order; every server event names the peer's address;
 *  2. server-side close of a connection id: the second close and later
 *     sends are STALE and never touch the client's next connection;
 *  3. poll mode with the event fd (client and server);
 *  4. destroying a client / server from inside its own callback
 *     (mosquitto #1067), including reading the event after the free;
 *  5. after tether_client_free returns (from another thread), no callback
 *     runs;
 *  6. feed and flush: a burst fed and flushed arrives whole and in order,
 *     echoes fed inside the server's callback go out when its batch ends,
 *     a fed message goes with the next send, bad handles and arguments are
 *     errors.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include "recorder.h"

static void address_of(tether_server s, char *buf, size_t len) {
    uint16_t port = 0;
    CHECK_OK(tether_server_local_port(s, &port));
    snprintf(buf, len, "tcp://127.0.0.1:%u", (unsigned)port);
}

static void test_exchange_and_restart(void) {
    recorder srv_rec, cli_rec;
    rec_init(&srv_rec);
    rec_init(&cli_rec);
    srv_rec.echo = 1;

    tether_server srv = {0};
    pthread_mutex_lock(&srv_rec.lock);
    CHECK_OK(tether_server_new("tcp://127.0.0.1:0", NULL, on_event, &srv_rec, &srv));
    srv_rec.server = srv;
    pthread_mutex_unlock(&srv_rec.lock);
    char addr[64];
    address_of(srv, addr, sizeof addr);

    tether_client_config cfg = fast_client_config();
    tether_client cli = {0};
    CHECK_OK(tether_client_new(addr, &cfg, on_event, &cli_rec, &cli));
    CHECK(wait_kind(&cli_rec, TETHER_EVENT_KIND_CONNECTED, 1, 5000));
    CHECK_OK(tether_client_send(cli, (const uint8_t *)"one", 3));
    CHECK(wait_msgs(&cli_rec, 1, 5000));
    CHECK(strcmp(cli_rec.msgs[0], "one") == 0);
    CHECK(wait_msgs(&srv_rec, 1, 5000));
    CHECK(srv_rec.msg_conn[0] != 0);

    /* Restart: the old server goes away with its connection. */
    CHECK_OK(tether_server_free(srv));
    CHECK_RC(tether_server_free(srv), TETHER_RESULT_STALE_HANDLE);
    CHECK(wait_kind(&cli_rec, TETHER_EVENT_KIND_DISCONNECTED, 1, 5000));
    /* Sent while down: buffered and delivered after the reconnect. */
    CHECK_OK(tether_client_send(cli, (const uint8_t *)"two", 3));
    CHECK(wait_kind(&cli_rec, TETHER_EVENT_KIND_CONNECT_FAILED, 1, 5000));

    recorder srv2_rec;
    rec_init(&srv2_rec);
    srv2_rec.echo = 1;
    tether_server srv2 = {0};
    pthread_mutex_lock(&srv2_rec.lock);
    CHECK_OK(tether_server_new(addr, NULL, on_event, &srv2_rec, &srv2));
    srv2_rec.server = srv2;
    pthread_mutex_unlock(&srv2_rec.lock);

    CHECK(wait_kind(&cli_rec, TETHER_EVENT_KIND_CONNECTED, 2, 5000));
    CHECK(wait_msgs(&cli_rec, 2, 5000));
    CHECK(strcmp(cli_rec.msgs[1], "two") == 0);
    CHECK_OK(tether_client_send(cli, (const uint8_t *)"three", 5));
    CHECK(wait_msgs(&cli_rec, 3, 5000));
    CHECK(strcmp(cli_rec.msgs[2], "three") == 0);

    /* Orderly close: CLOSED exactly once, the server sees the end. */
    CHECK_OK(tether_client_close(cli));
    CHECK(wait_kind(&cli_rec, TETHER_EVENT_KIND_CLOSED, 1, 5000));
    CHECK(wait_kind(&srv2_rec, TETHER_EVENT_KIND_CLOSED, 1, 5000));
    test_sleep_ms(100);
    CHECK_OK(tether_client_free(cli));
    CHECK_RC(tether_client_free(cli), TETHER_RESULT_STALE_HANDLE);

    pthread_mutex_lock(&cli_rec.lock);
    check_lifecycle(&cli_rec);
    CHECK(cli_rec.object == cli.id);
    /* The last failure was our own close, and says so. */
    CHECK(strstr(cli_rec.last_detail, "closed by the application") != NULL);
    CHECK(count_kind(&cli_rec, TETHER_EVENT_KIND_CONNECTED) == 2);
    CHECK(count_kind(&cli_rec, TETHER_EVENT_KIND_DISCONNECTED) == 2);
    CHECK(count_kind(&cli_rec, TETHER_EVENT_KIND_CLOSED) == 1);
    CHECK(count_kind(&cli_rec, TETHER_EVENT_KIND_WAITING) >= 1);
    for (int i = 0; i < cli_rec.n; i++) {
        tether_event *e = &cli_rec.events[i];
        if (e->kind == TETHER_EVENT_KIND_DISCONNECTED && e->generation == 1) {
            /* the server went away: an orderly close (1) or a reset (2) */
            CHECK(e->reason == 1 || e->reason == 2);
        } else if (e->kind == TETHER_EVENT_KIND_DISCONNECTED) {
            CHECK(e->reason == 8); /* our own close: closed_locally */
        }
    }
    pthread_mutex_unlock(&cli_rec.lock);

    pthread_mutex_lock(&srv2_rec.lock);
    CHECK(count_kind(&srv2_rec, TETHER_EVENT_KIND_ACCEPTED) == 1);
    CHECK(count_kind(&srv2_rec, TETHER_EVENT_KIND_CLOSED) == 1);
    CHECK(srv2_rec.send_errors == 0);
    /* Every server event names its peer; CLOSED names the same one. */
    CHECK(strncmp(srv2_rec.accepted_peer, "127.0.0.1:", 10) == 0);
    CHECK(strcmp(srv2_rec.closed_peer, srv2_rec.accepted_peer) == 0);
    CHECK(srv2_rec.peer_missing == 0);
    CHECK(srv2_rec.object == srv2.id && srv2_rec.object_mismatch == 0);
    CHECK(srv2_rec.detail_missing == 0 && srv2_rec.detail_unexpected == 0);
    pthread_mutex_unlock(&srv2_rec.lock);
    CHECK(cli_rec.peer_unexpected == 0);
    CHECK(srv_rec.send_errors == 0);
    CHECK_OK(tether_server_free(srv2));
    rec_destroy(&srv_rec);
    rec_destroy(&srv2_rec);
    rec_destroy(&cli_rec);
}

static void test_server_close_twice(void) {
    recorder srv_rec, cli_rec;
    rec_init(&srv_rec);
    rec_init(&cli_rec);
    tether_server srv = {0};
    CHECK_OK(tether_server_new("tcp://127.0.0.1:0", NULL, on_event, &srv_rec, &srv));
    char addr[64];
    address_of(srv, addr, sizeof addr);
    tether_client_config cfg = fast_client_config();
    tether_client cli = {0};
    CHECK_OK(tether_client_new(addr, &cfg, on_event, &cli_rec, &cli));
    CHECK(wait_kind(&srv_rec, TETHER_EVENT_KIND_ACCEPTED, 1, 5000));
    uint64_t first = srv_rec.events[0].conn;
    CHECK(first != 0);

    CHECK_OK(tether_server_close(srv, first));
    CHECK_RC(tether_server_close(srv, first), TETHER_RESULT_STALE_HANDLE);
    CHECK_RC(tether_server_send(srv, first, (const uint8_t *)"x", 1), TETHER_RESULT_STALE_HANDLE);
    CHECK(wait_kind(&srv_rec, TETHER_EVENT_KIND_CLOSED, 1, 5000));
    /* The client reconnects and gets a new id; the old one stays stale. */
    CHECK(wait_kind(&srv_rec, TETHER_EVENT_KIND_ACCEPTED, 2, 5000));
    CHECK(wait_kind(&cli_rec, TETHER_EVENT_KIND_CONNECTED, 2, 5000));
    pthread_mutex_lock(&srv_rec.lock);
    uint64_t second = 0;
    int closed_first = 0;
    for (int i = 0; i < srv_rec.n; i++) {
        if (srv_rec.events[i].kind == TETHER_EVENT_KIND_ACCEPTED && srv_rec.events[i].conn != first) {
            second = srv_rec.events[i].conn;
        }
        if (srv_rec.events[i].kind == TETHER_EVENT_KIND_CLOSED && srv_rec.events[i].conn == first) {
            closed_first++;
            CHECK(srv_rec.events[i].reason == 8); /* closed_locally */
        }
    }
    pthread_mutex_unlock(&srv_rec.lock);
    CHECK(closed_first == 1);
    CHECK(second != 0 && second != first);
    CHECK_RC(tether_server_close(srv, first), TETHER_RESULT_STALE_HANDLE);
    CHECK_OK(tether_server_send(srv, second, (const uint8_t *)"still here", 10));
    CHECK(wait_msgs(&cli_rec, 1, 5000));
    CHECK(strcmp(cli_rec.msgs[0], "still here") == 0);
    size_t open = 0;
    CHECK_OK(tether_server_connection_count(srv, &open));
    CHECK(open == 1);

    /* Wrong delivery mode. */
    tether_event ev;
    int fd = -1;
    CHECK_RC(tether_client_poll_event(cli, &ev), TETHER_RESULT_WRONG_MODE);
    CHECK_RC(tether_client_event_fd(cli, &fd), TETHER_RESULT_WRONG_MODE);
    CHECK_RC(tether_server_poll_event(srv, &ev), TETHER_RESULT_WRONG_MODE);
    CHECK_RC(tether_server_event_fd(srv, &fd), TETHER_RESULT_WRONG_MODE);
    CHECK(fd == -1);

    CHECK_OK(tether_client_free(cli));
    CHECK_OK(tether_server_free(srv));
    pthread_mutex_lock(&cli_rec.lock);
    check_lifecycle(&cli_rec);
    pthread_mutex_unlock(&cli_rec.lock);
    rec_destroy(&srv_rec);
    rec_destroy(&cli_rec);
}

static int fd_readable(int fd, int timeout_ms) {
    struct pollfd p = {fd, POLLIN, 0};
    return poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN);
}

static void test_poll_mode(void) {
    tether_server srv = {0};
    CHECK_OK(tether_server_new("tcp://127.0.0.1:0", NULL, NULL, NULL, &srv));
    char addr[64];
    address_of(srv, addr, sizeof addr);
    tether_client_config cfg = fast_client_config();
    tether_client cli = {0};
    CHECK_OK(tether_client_new(addr, &cfg, NULL, NULL, &cli));
    int sfd = -1, cfd = -1;
    CHECK_OK(tether_server_event_fd(srv, &sfd));
    CHECK_OK(tether_client_event_fd(cli, &cfd));
    CHECK(sfd >= 0 && cfd >= 0 && sfd != cfd);
    CHECK_RC(tether_client_event_fd(cli, NULL), TETHER_RESULT_NULL_ARGUMENT);
    CHECK_RC(tether_client_poll_event(cli, NULL), TETHER_RESULT_NULL_ARGUMENT);

    int connected = 0, echoed = 0, closed = 0, accepted = 0, server_closed = 0;
    uint64_t deadline = test_mono_ms() + 10000;
    while (!closed && test_mono_ms() < deadline) {
        struct pollfd p[2] = {{sfd, POLLIN, 0}, {cfd, POLLIN, 0}};
        if (poll(p, 2, 100) <= 0) {
            continue;
        }
        tether_event ev;
        while (tether_server_poll_event(srv, &ev) == TETHER_RESULT_OK) {
            if (ev.kind == TETHER_EVENT_KIND_ACCEPTED) {
                accepted++;
                /* valid until the next poll on srv, like data */
                CHECK(ev.peer != NULL && strncmp(ev.peer, "127.0.0.1:", 10) == 0);
            } else if (ev.kind == TETHER_EVENT_KIND_MESSAGE) {
                /* ev.data is valid until the next poll on srv: use it now. */
                CHECK_OK(tether_server_send(srv, ev.conn, ev.data, ev.len));
            } else if (ev.kind == TETHER_EVENT_KIND_CLOSED) {
                server_closed++;
            }
        }
        CHECK(!fd_readable(sfd, 0)); /* drained: no longer readable */
        tether_result rc;
        while ((rc = tether_client_poll_event(cli, &ev)) == TETHER_RESULT_OK) {
            if (ev.kind == TETHER_EVENT_KIND_CONNECTED) {
                connected++;
                CHECK_OK(tether_client_send(cli, (const uint8_t *)"poll-1", 6));
            } else if (ev.kind == TETHER_EVENT_KIND_MESSAGE) {
                CHECK(ev.len == 6 && memcmp(ev.data, "poll-1", 6) == 0);
                echoed++;
                CHECK_OK(tether_client_close(cli));
            } else if (ev.kind == TETHER_EVENT_KIND_CLOSED) {
                closed++;
            }
        }
        CHECK(rc == TETHER_RESULT_EMPTY);
    }
    CHECK(connected == 1 && echoed == 1 && closed == 1 && accepted == 1);
    /* After the terminal event nothing more comes. */
    tether_event ev;
    test_sleep_ms(50);
    CHECK_RC(tether_client_poll_event(cli, &ev), TETHER_RESULT_EMPTY);
    CHECK(!fd_readable(cfd, 0));
    /* The server sees the client's orderly close. */
    deadline = test_mono_ms() + 5000;
    while (!server_closed && test_mono_ms() < deadline) {
        if (fd_readable(sfd, 100)) {
            while (tether_server_poll_event(srv, &ev) == TETHER_RESULT_OK) {
                server_closed += ev.kind == TETHER_EVENT_KIND_CLOSED;
                if (ev.kind == TETHER_EVENT_KIND_CLOSED) {
                    CHECK(ev.reason == 1); /* peer_closed */
                }
            }
        }
    }
    CHECK(server_closed == 1);
    CHECK_OK(tether_client_free(cli));
    CHECK_OK(tether_server_free(srv));
    CHECK_RC(tether_client_poll_event(cli, &ev), TETHER_RESULT_STALE_HANDLE);
}

static uint16_t unused_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    bind(fd, (struct sockaddr *)&a, sizeof a);
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd); /* nothing listens there now: connections are refused */
    return ntohs(a.sin_port);
}

static void test_free_inside_callback(void) {
    /* (a) on a failed attempt, with more events coming quickly. */
    recorder r;
    rec_init(&r);
    r.free_on = TETHER_EVENT_KIND_CONNECT_FAILED;
    char addr[64];
    snprintf(addr, sizeof addr, "tcp://127.0.0.1:%u", (unsigned)unused_port());
    tether_client_config cfg = fast_client_config();
    /* Hold the lock so the callback cannot run before self_client is set. */
    pthread_mutex_lock(&r.lock);
    CHECK_OK(tether_client_new(addr, &cfg, on_event, &r, &r.self_client));
    pthread_mutex_unlock(&r.lock);
    CHECK(wait_kind(&r, TETHER_EVENT_KIND_CONNECT_FAILED, 1, 5000));
    test_sleep_ms(300); /* backoff is 20 ms: more events would have come */
    pthread_mutex_lock(&r.lock);
    CHECK(r.freed && r.free_rc == TETHER_RESULT_OK);
    CHECK(r.after_free == 0);
    CHECK(count_kind(&r, TETHER_EVENT_KIND_CONNECT_FAILED) == 1);
    pthread_mutex_unlock(&r.lock);
    CHECK_RC(tether_client_free(r.self_client), TETHER_RESULT_STALE_HANDLE);
    rec_destroy(&r);

    /* (b) on a message, reading the message after the free. */
    recorder srv_rec, cli_rec;
    rec_init(&srv_rec);
    rec_init(&cli_rec);
    srv_rec.greet = "welcome";
    tether_server srv = {0};
    pthread_mutex_lock(&srv_rec.lock);
    CHECK_OK(tether_server_new("tcp://127.0.0.1:0", NULL, on_event, &srv_rec, &srv));
    srv_rec.server = srv;
    pthread_mutex_unlock(&srv_rec.lock);
    address_of(srv, addr, sizeof addr);
    cli_rec.free_on = TETHER_EVENT_KIND_MESSAGE;
    pthread_mutex_lock(&cli_rec.lock);
    CHECK_OK(tether_client_new(addr, &cfg, on_event, &cli_rec, &cli_rec.self_client));
    pthread_mutex_unlock(&cli_rec.lock);
    CHECK(wait_msgs(&cli_rec, 1, 5000));
    /* The freed client closes its connection: the server sees it end. */
    CHECK(wait_kind(&srv_rec, TETHER_EVENT_KIND_CLOSED, 1, 5000));
    pthread_mutex_lock(&cli_rec.lock);
    CHECK(cli_rec.freed && cli_rec.free_rc == TETHER_RESULT_OK);
    CHECK(cli_rec.data_ok);
    CHECK(cli_rec.after_free == 0);
    pthread_mutex_unlock(&cli_rec.lock);
    CHECK_RC(tether_client_free(cli_rec.self_client), TETHER_RESULT_STALE_HANDLE);

    /* (c) a server freeing itself when a connection arrives. */
    recorder srv3_rec, cli3_rec;
    rec_init(&srv3_rec);
    rec_init(&cli3_rec);
    srv3_rec.free_on = TETHER_EVENT_KIND_ACCEPTED;
    pthread_mutex_lock(&srv3_rec.lock);
    CHECK_OK(tether_server_new("tcp://127.0.0.1:0", NULL, on_event, &srv3_rec, &srv3_rec.self_server));
    pthread_mutex_unlock(&srv3_rec.lock);
    address_of(srv3_rec.self_server, addr, sizeof addr);
    tether_client cli3 = {0};
    CHECK_OK(tether_client_new(addr, &cfg, on_event, &cli3_rec, &cli3));
    CHECK(wait_kind(&cli3_rec, TETHER_EVENT_KIND_CONNECTED, 1, 5000));
    CHECK(wait_kind(&cli3_rec, TETHER_EVENT_KIND_DISCONNECTED, 1, 5000));
    pthread_mutex_lock(&srv3_rec.lock);
    CHECK(srv3_rec.freed && srv3_rec.free_rc == TETHER_RESULT_OK);
    CHECK(srv3_rec.after_free == 0);
    pthread_mutex_unlock(&srv3_rec.lock);
    CHECK_RC(tether_server_free(srv3_rec.self_server), TETHER_RESULT_STALE_HANDLE);
    CHECK_OK(tether_client_free(cli3));
    CHECK_OK(tether_server_free(srv));
    rec_destroy(&srv_rec);
    rec_destroy(&cli_rec);
    rec_destroy(&srv3_rec);
    rec_destroy(&cli3_rec);
}

static void test_no_callback_after_free(void) {
    /* A client failing fast produces a steady stream of events; freeing it
     * from this thread must stop them before the free returns. */
    for (int round = 0; round < 20; round++) {
        recorder r;
        rec_init(&r);
        char addr[64];
        snprintf(addr, sizeof addr, "tcp://127.0.0.1:%u", (unsigned)unused_port());
        tether_client_config cfg = fast_client_config();
        cfg.backoff.initial_ms = 1;
        cfg.backoff.max_delay_ms = 1;
        tether_client c = {0};
        CHECK_OK(tether_client_new(addr, &cfg, on_event, &r, &c));
        test_sleep_ms((unsigned)(round % 5) * 3);
        CHECK_OK(tether_client_free(c));
        __atomic_store_n(&r.outside_freed, 1, __ATOMIC_RELEASE);
        test_sleep_ms(5);
        pthread_mutex_lock(&r.lock);
        CHECK(r.after_free == 0);
        pthread_mutex_unlock(&r.lock);
        rec_destroy(&r);
    }
}

static void test_feed_and_flush(void) {
    recorder srv_rec, cli_rec;
    rec_init(&srv_rec);
    rec_init(&cli_rec);
    srv_rec.echo = 2;
    tether_server srv = {0};
    pthread_mutex_lock(&srv_rec.lock);
    CHECK_OK(tether_server_new("tcp://127.0.0.1:0", NULL, on_event, &srv_rec, &srv));
    srv_rec.server = srv;
    pthread_mutex_unlock(&srv_rec.lock);
    char addr[64];
    address_of(srv, addr, sizeof addr);
    /* Heartbeats far apart (server default 15 s, client 20 s): only the
     * flushes, not a heartbeat turn, can bring the echoes within 5 s. */
    tether_client_config cfg = fast_client_config();
    cfg.heartbeat_interval_ms = 20000;
    cfg.heartbeat_timeout_ms = 10000;
    tether_client cli = {0};
    CHECK_OK(tether_client_new(addr, &cfg, on_event, &cli_rec, &cli));
    CHECK(wait_kind(&cli_rec, TETHER_EVENT_KIND_CONNECTED, 1, 5000));

    char buf[32];
    for (int i = 0; i < 50; i++) {
        int n = snprintf(buf, sizeof buf, "fed-%d", i);
        CHECK_OK(tether_client_feed(cli, (const uint8_t *)buf, (size_t)n));
    }
    CHECK_OK(tether_client_flush(cli));
    CHECK_OK(tether_client_flush(cli)); /* nothing left: a no-op */
    CHECK(wait_msgs(&cli_rec, 50, 5000));
    pthread_mutex_lock(&cli_rec.lock);
    for (int i = 0; i < 50; i++) {
        snprintf(buf, sizeof buf, "fed-%d", i);
        CHECK(strcmp(cli_rec.msgs[i], buf) == 0);
    }
    pthread_mutex_unlock(&cli_rec.lock);

    /* Fed and not flushed: it goes out with the next write, first. */
    CHECK_OK(tether_client_feed(cli, (const uint8_t *)"before", 6));
    CHECK_OK(tether_client_send(cli, (const uint8_t *)"after", 5));
    CHECK(wait_msgs(&cli_rec, 52, 5000));
    CHECK(strcmp(cli_rec.msgs[50], "before") == 0);
    CHECK(strcmp(cli_rec.msgs[51], "after") == 0);

    /* The server side outside a callback: feed, then flush by id. */
    uint64_t conn = cli_rec.msg_conn[0] ? cli_rec.msg_conn[0] : 0;
    pthread_mutex_lock(&srv_rec.lock);
    for (int i = 0; i < srv_rec.n; i++) {
        if (srv_rec.events[i].kind == TETHER_EVENT_KIND_ACCEPTED) {
            conn = srv_rec.events[i].conn;
        }
    }
    pthread_mutex_unlock(&srv_rec.lock);
    CHECK(conn != 0);
    CHECK_OK(tether_server_feed(srv, conn, (const uint8_t *)"pushed", 6));
    CHECK_OK(tether_server_flush(srv, conn));
    CHECK(wait_msgs(&cli_rec, 53, 5000));
    CHECK(strcmp(cli_rec.msgs[52], "pushed") == 0);
    CHECK(srv_rec.send_errors == 0);

    /* Errors, as for send. */
    CHECK_RC(tether_client_feed(cli, NULL, 3), TETHER_RESULT_NULL_ARGUMENT);
    CHECK_RC(tether_server_feed(srv, conn, NULL, 3), TETHER_RESULT_NULL_ARGUMENT);
    CHECK_RC(tether_server_feed(srv, 0, (const uint8_t *)"x", 1), TETHER_RESULT_INVALID_HANDLE);
    CHECK_RC(tether_server_flush(srv, 0), TETHER_RESULT_INVALID_HANDLE);
    CHECK_OK(tether_server_close(srv, conn));
    CHECK_RC(tether_server_feed(srv, conn, (const uint8_t *)"x", 1), TETHER_RESULT_STALE_HANDLE);
    CHECK_RC(tether_server_flush(srv, conn), TETHER_RESULT_STALE_HANDLE);
    CHECK_OK(tether_client_close(cli));
    CHECK_RC(tether_client_feed(cli, (const uint8_t *)"x", 1), TETHER_RESULT_CLOSED);
    CHECK_OK(tether_client_free(cli));
    CHECK_RC(tether_client_feed(cli, (const uint8_t *)"x", 1), TETHER_RESULT_STALE_HANDLE);
    CHECK_RC(tether_client_flush(cli), TETHER_RESULT_STALE_HANDLE);
    CHECK_OK(tether_server_free(srv));
    CHECK_RC(tether_server_feed(srv, conn, (const uint8_t *)"x", 1), TETHER_RESULT_STALE_HANDLE);
    CHECK_RC(tether_server_flush(srv, conn), TETHER_RESULT_STALE_HANDLE);
    rec_destroy(&srv_rec);
    rec_destroy(&cli_rec);
}

int main(void) {
    test_exchange_and_restart();
    test_server_close_twice();
    test_poll_mode();
    test_free_inside_callback();
    test_no_callback_after_free();
    test_feed_and_flush();

    /* tether_shutdown frees what is left (handles go stale) and the next
     * managed object starts a fresh runtime. */
    tether_backoff b = {0};
    CHECK_OK(tether_backoff_new_grpc(&b));
    tether_server left = {0};
    CHECK_OK(tether_server_new("tcp://127.0.0.1:0", NULL, NULL, NULL, &left));
    CHECK_OK(tether_shutdown());
    CHECK_RC(tether_backoff_free(b), TETHER_RESULT_STALE_HANDLE);
    CHECK_RC(tether_server_free(left), TETHER_RESULT_STALE_HANDLE);
    test_poll_mode();
    CHECK_OK(tether_shutdown());
    return test_finish("test_managed");
}

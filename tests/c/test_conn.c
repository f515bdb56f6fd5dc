/* tether_conn_*: the connection machine driven by C over real sockets (a
 * socketpair per test), with the clock passed in (now_ms advanced by the
 * test, so liveness is checked in simulated time). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "test_util.h"

typedef struct end {
    int fd;
    tether_conn conn;
    int connected, closed, messages;
    uint32_t reason;
    char detail[256];
    char last[64];
    int cut; /* drop what would be written (a black hole) */
} end;

static void make_pair(end *a, end *b, const tether_conn_config *ca, const tether_conn_config *cb,
                      uint64_t now) {
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
    memset(a, 0, sizeof *a);
    memset(b, 0, sizeof *b);
    a->fd = sv[0];
    b->fd = sv[1];
    CHECK_OK(tether_conn_new(TETHER_SIDE_CLIENT, ca, now, &a->conn));
    CHECK_OK(tether_conn_new(TETHER_SIDE_SERVER, cb, now, &b->conn));
}

/* Writes what the machine has, reads what the socket has, drains events.
 * Returns the number of bytes moved. */
static size_t turn(end *e, uint64_t now) {
    size_t moved = 0;
    const uint8_t *data;
    size_t len;
    while (tether_conn_transmit_peek(e->conn, now, &data, &len) == TETHER_RESULT_OK) {
        ssize_t n = e->cut ? (ssize_t)len : write(e->fd, data, len);
        size_t took = n > 0 ? (size_t)n : 0;
        CHECK_OK(tether_conn_transmit_consume(e->conn, took, now));
        moved += took;
        if (took < len) {
            break;
        }
    }
    bool wants = false;
    CHECK_OK(tether_conn_wants_read(e->conn, &wants));
    uint8_t buf[4096];
    ssize_t n;
    while (wants && (n = read(e->fd, buf, sizeof buf)) > 0) {
        if (!e->cut) {
            CHECK_OK(tether_conn_handle_bytes(e->conn, buf, (size_t)n, now));
        }
        moved += (size_t)n;
        CHECK_OK(tether_conn_wants_read(e->conn, &wants));
    }
    tether_conn_event ev;
    while (tether_conn_poll_event(e->conn, &ev) == TETHER_RESULT_OK) {
        if (ev.kind == TETHER_CONN_EVENT_KIND_CONNECTED) {
            e->connected++;
        } else if (ev.kind == TETHER_CONN_EVENT_KIND_MESSAGE) {
            size_t l = ev.len < sizeof e->last - 1 ? ev.len : sizeof e->last - 1;
            memcpy(e->last, ev.data, l);
            e->last[l] = '\0';
            e->messages++;
        } else {
            e->closed++;
            e->reason = ev.reason;
            snprintf(e->detail, sizeof e->detail, "%s", ev.detail ? ev.detail : "");
        }
    }
    return moved;
}

static void settle(end *a, end *b, uint64_t now) {
    for (int i = 0; i < 50; i++) {
        size_t moved = turn(a, now) + turn(b, now);
        if (moved == 0) {
            return;
        }
    }
}

static tether_conn_config fast(void) {
    tether_conn_config c;
    tether_conn_config_default(&c);
    c.policy.interval_ms = 100;
    c.policy.timeout_ms = 100;
    c.policy.max_missed = 2;
    c.opening_timeout_ms = 500;
    return c;
}

static void close_pair(end *a, end *b) {
    CHECK_OK(tether_conn_free(a->conn));
    CHECK_OK(tether_conn_free(b->conn));
    CHECK_RC(tether_conn_free(a->conn), TETHER_RESULT_STALE_HANDLE);
    close(a->fd);
    close(b->fd);
}

static void test_exchange(void) {
    tether_conn_config c = fast();
    end a, b;
    uint64_t now = 1000;
    make_pair(&a, &b, &c, &c, now);
    CHECK_OK(tether_conn_send(a.conn, (const uint8_t *)"hello", 5));
    /* Before the server answered, the client is not connected. */
    turn(&a, now);
    CHECK(a.connected == 0);
    settle(&a, &b, now);
    CHECK(a.connected == 1 && b.connected == 1);
    CHECK(b.messages == 1 && strcmp(b.last, "hello") == 0);
    CHECK_OK(tether_conn_send(b.conn, (const uint8_t *)"back", 4));
    settle(&a, &b, now);
    CHECK(a.messages == 1 && strcmp(a.last, "back") == 0);
    /* Pings flow both ways and measure the round trip on both sides. */
    for (int i = 0; i < 10; i++) {
        now += 50;
        CHECK_OK(tether_conn_handle_timeout(a.conn, now));
        CHECK_OK(tether_conn_handle_timeout(b.conn, now));
        settle(&a, &b, now);
    }
    uint64_t rtt = 99;
    CHECK_OK(tether_conn_rtt_ms(a.conn, &rtt));
    CHECK(rtt == 0); /* the test's clock stood still during each exchange */
    CHECK_OK(tether_conn_rtt_ms(b.conn, &rtt));
    CHECK(a.closed == 0 && b.closed == 0);
    /* Orderly close: the last message is still delivered, one CLOSED. */
    CHECK_OK(tether_conn_send(a.conn, (const uint8_t *)"bye", 3));
    CHECK_OK(tether_conn_close(a.conn, now));
    CHECK_OK(tether_conn_close(a.conn, now));
    CHECK_RC(tether_conn_send(a.conn, (const uint8_t *)"x", 1), TETHER_RESULT_CLOSED);
    settle(&a, &b, now);
    CHECK(b.messages == 2 && strcmp(b.last, "bye") == 0);
    CHECK(a.closed == 1 && a.reason == TETHER_REASON_CLOSED_LOCALLY);
    shutdown(a.fd, SHUT_RDWR);
    CHECK_OK(tether_conn_handle_closed(b.conn, TETHER_REASON_PEER_CLOSED, NULL));
    CHECK_OK(tether_conn_handle_closed(b.conn, TETHER_REASON_RESET, "again"));
    turn(&b, now);
    CHECK(b.closed == 1 && b.reason == TETHER_REASON_PEER_CLOSED);
    close_pair(&a, &b);
}

static void test_black_hole_in_simulated_time(void) {
    tether_conn_config c = fast();
    end a, b;
    uint64_t now = 0;
    make_pair(&a, &b, &c, &c, now);
    settle(&a, &b, now);
    CHECK(a.connected == 1);
    a.cut = b.cut = 1;
    uint64_t start = now;
    int waits = 0;
    while (!a.closed && waits++ < 1000) {
        int t = -1;
        CHECK_OK(tether_conn_next_timeout_ms(a.conn, now, &t));
        CHECK(t >= 0);
        now += (uint64_t)(t > 0 ? t : 1);
        CHECK_OK(tether_conn_handle_timeout(a.conn, now));
        turn(&a, now);
    }
    CHECK(a.closed == 1 && a.reason == TETHER_REASON_TIMEOUT);
    CHECK(now - start <= 300); /* interval + 2 x timeout */
    CHECK(strstr(a.detail, "nothing received") != NULL);
    int t = 0;
    CHECK_OK(tether_conn_next_timeout_ms(a.conn, now, &t));
    CHECK(t == -1);
    close_pair(&a, &b);
}

static void test_a_silent_server_is_no_connection(void) {
    tether_conn_config c = fast();
    end a, b;
    make_pair(&a, &b, &c, &c, 0);
    turn(&a, 0); /* the hello goes out; nobody answers */
    CHECK_OK(tether_conn_handle_timeout(a.conn, 500));
    turn(&a, 500);
    CHECK(a.connected == 0 && a.closed == 1);
    CHECK(a.reason == TETHER_REASON_CONNECT_TIMEOUT);
    CHECK(strstr(a.detail, "no welcome") != NULL);
    close_pair(&a, &b);
}

static void test_backpressure(void) {
    tether_conn_config c = fast();
    tether_conn_config s = fast();
    s.recv_queue = 2;
    end a, b;
    make_pair(&a, &b, &c, &s, 0);
    settle(&a, &b, 0);
    for (int i = 0; i < 5; i++) {
        CHECK_OK(tether_conn_send(a.conn, (const uint8_t *)"m", 1));
    }
    turn(&a, 0);
    uint8_t buf[4096];
    ssize_t n = read(b.fd, buf, sizeof buf);
    CHECK(n > 0);
    CHECK_OK(tether_conn_handle_bytes(b.conn, buf, (size_t)n, 0));
    bool wants = true;
    CHECK_OK(tether_conn_wants_read(b.conn, &wants));
    CHECK(!wants);
    int got = 0;
    tether_conn_event ev;
    while (got < 5) {
        if (tether_conn_poll_event(b.conn, &ev) == TETHER_RESULT_OK) {
            got += ev.kind == TETHER_CONN_EVENT_KIND_MESSAGE;
        } else {
            CHECK_OK(tether_conn_handle_bytes(b.conn, NULL, 0, 0)); /* resume */
        }
    }
    CHECK(got == 5);
    close_pair(&a, &b);
}

static void test_bad_input(void) {
    tether_conn conn = {0};
    tether_conn_config c;
    CHECK_RC(tether_conn_config_default(NULL), TETHER_RESULT_NULL_ARGUMENT);
    CHECK_OK(tether_conn_config_default(&c));
    CHECK_RC(tether_conn_new(7, &c, 0, &conn), TETHER_RESULT_INVALID_ARGUMENT);
    CHECK_RC(tether_conn_new(TETHER_SIDE_SERVER, &c, 0, NULL), TETHER_RESULT_NULL_ARGUMENT);
    c.opening = 99;
    CHECK_RC(tether_conn_new(TETHER_SIDE_SERVER, &c, 0, &conn), TETHER_RESULT_INVALID_CONFIG);
    CHECK_OK(tether_conn_config_default(&c));
    c.recv_queue = SIZE_MAX;
    CHECK_RC(tether_conn_new(TETHER_SIDE_SERVER, &c, 0, &conn), TETHER_RESULT_INVALID_CONFIG);
    CHECK_OK(tether_conn_config_default(&c));
    c.max_frame = 4;
    CHECK_OK(tether_conn_new(TETHER_SIDE_SERVER, &c, 0, &conn));
    CHECK_RC(tether_conn_send(conn, (const uint8_t *)"12345", 5), TETHER_RESULT_MESSAGE_TOO_LARGE);
    CHECK_RC(tether_conn_send(conn, NULL, 3), TETHER_RESULT_NULL_ARGUMENT);
    const uint8_t *data;
    size_t len;
    CHECK_RC(tether_conn_transmit_peek(conn, 0, &data, &len), TETHER_RESULT_EMPTY);
    CHECK_RC(tether_conn_transmit_consume(conn, 1, 0), TETHER_RESULT_INVALID_ARGUMENT);
    CHECK_RC(tether_conn_handle_closed(conn, 999, NULL), TETHER_RESULT_INVALID_ARGUMENT);
    /* Garbage from the peer: a protocol error, once. */
    const char *junk = "GET / HTTP/1.1\r\n\r\n";
    CHECK_OK(tether_conn_handle_bytes(conn, (const uint8_t *)junk, strlen(junk), 0));
    tether_conn_event ev;
    CHECK_OK(tether_conn_poll_event(conn, &ev));
    CHECK(ev.kind == TETHER_CONN_EVENT_KIND_CLOSED && ev.reason == TETHER_REASON_PROTOCOL_ERROR);
    CHECK(ev.detail != NULL && strstr(ev.detail, "bad frame") != NULL);
    CHECK_RC(tether_conn_poll_event(conn, &ev), TETHER_RESULT_EMPTY);
    CHECK_OK(tether_conn_free(conn));
    CHECK_RC(tether_conn_handle_timeout(conn, 0), TETHER_RESULT_STALE_HANDLE);
    tether_conn none = {0};
    CHECK_OK(tether_conn_free(none));
    tether_registry wrong = {0};
    tether_policy p;
    CHECK_OK(tether_policy_default(&p));
    CHECK_OK(tether_registry_new(&p, 0, &wrong));
    tether_conn foreign = {wrong.id};
    CHECK_RC(tether_conn_handle_timeout(foreign, 0), TETHER_RESULT_INVALID_HANDLE);
    CHECK_OK(tether_registry_free(wrong));
}

int main(void) {
    test_exchange();
    test_black_hole_in_simulated_time();
    test_a_silent_server_is_no_connection();
    test_backpressure();
    test_bad_input();
    tether_shutdown();
    return test_finish("test_conn");
}

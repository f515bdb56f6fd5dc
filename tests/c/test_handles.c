/*
 * test_handles.c: the C API's contracts that need no network peer.
 *
 *  - result codes and messages;
 *  - generation-checked handles for every object type: double free, use
 *    after free, foreign handles and garbage all return error codes;
 *  - NULL arguments;
 *  - backoff, monitor and registry behaviour through C;
 *  - scenario S3: tether_socket_tune / tether_socket_read_options on a
 *    real loopback TCP socket.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "test_util.h"

static void test_results(void) {
    char buf[128];
    size_t n = 0;
    CHECK_OK(tether_result_message(TETHER_RESULT_STALE_HANDLE, buf, sizeof buf, &n));
    CHECK(n == strlen(buf) && strstr(buf, "stale") != NULL);
    /* Too small: nothing written to buf, out_n says how much is needed. */
    char tiny[4] = {'x', 'x', 'x', 'x'};
    size_t need = 0;
    CHECK_RC(tether_result_message(TETHER_RESULT_STALE_HANDLE, tiny, sizeof tiny, &need),
             TETHER_RESULT_BUFFER_TOO_SMALL);
    CHECK(need == n + 1);
    CHECK(tiny[0] == 'x');
    CHECK_RC(tether_result_message(0, NULL, 10, &n), TETHER_RESULT_NULL_ARGUMENT);
    CHECK_RC(tether_result_message(0, buf, sizeof buf, NULL), TETHER_RESULT_NULL_ARGUMENT);
    CHECK_OK(tether_result_message(9999, buf, sizeof buf, &n));
    CHECK(strstr(buf, "unknown") != NULL);
    CHECK(strcmp(tether_result_str(TETHER_RESULT_OK), "ok") == 0);
    CHECK(tether_result_str(12345) != NULL);
    /* Fixed numbers. */
    CHECK(TETHER_RESULT_OK == 0 && TETHER_RESULT_NULL_ARGUMENT == 1 &&
          TETHER_RESULT_STALE_HANDLE == 4 && TETHER_RESULT_INVALID_HANDLE == 5 &&
          TETHER_RESULT_EMPTY == 6 && TETHER_RESULT_PANIC == 10);
}

static void test_backoff(void) {
    tether_backoff_config cfg;
    CHECK_OK(tether_backoff_config_default(&cfg));
    CHECK(cfg.initial_ms == 1000 && cfg.max_delay_ms == 30000 && cfg.jitter == TETHER_JITTER_FULL);
    cfg.jitter = TETHER_JITTER_NONE;
    cfg.max_attempts = 3;
    tether_backoff b = {0};
    CHECK_OK(tether_backoff_new(&cfg, &b));
    CHECK(b.id != 0);
    uint64_t now = tether_now_ms(), d = 0;
    CHECK_OK(tether_backoff_next_delay_ms(b, now, &d));
    CHECK(d == 1000);
    CHECK_OK(tether_backoff_next_delay_ms(b, now, &d));
    CHECK(d == 2000);
    /* max_attempts = 3: the third failure gives up. */
    d = 77;
    CHECK_RC(tether_backoff_next_delay_ms(b, now, &d), TETHER_RESULT_GAVE_UP);
    CHECK(d == 77); /* outputs are written only on success */
    uint32_t attempt = 0;
    CHECK_OK(tether_backoff_attempt(b, &attempt));
    CHECK(attempt == 3);
    /* A connection shorter than healthy_after does not reset... */
    CHECK_OK(tether_backoff_on_connected(b, now));
    CHECK_OK(tether_backoff_on_disconnected(b, now + 10));
    CHECK_RC(tether_backoff_next_delay_ms(b, now + 10, &d), TETHER_RESULT_GAVE_UP);
    /* ... a healthy one does. */
    CHECK_OK(tether_backoff_on_connected(b, now + 20));
    CHECK_OK(tether_backoff_on_disconnected(b, now + 20 + cfg.healthy_after_ms));
    CHECK_OK(tether_backoff_next_delay_ms(b, now + 30000, &d));
    CHECK(d == 1000);
    uint64_t ct = 0;
    CHECK_OK(tether_backoff_connect_timeout_ms(b, &ct));
    CHECK(ct == 20000);
    CHECK_OK(tether_backoff_reset(b));
    CHECK_OK(tether_backoff_attempt(b, &attempt));
    CHECK(attempt == 0);

    /* Invalid configurations name the field. */
    tether_backoff bad = {0};
    cfg.multiplier = 0.5;
    CHECK_RC(tether_backoff_new(&cfg, &bad), TETHER_RESULT_INVALID_CONFIG);
    char detail[256];
    size_t n = 0;
    CHECK_OK(tether_last_error_message(detail, sizeof detail, &n));
    CHECK(strstr(detail, "backoff.multiplier") != NULL);
    CHECK(bad.id == 0);
    cfg.multiplier = 2.0;
    cfg.jitter = 42;
    CHECK_RC(tether_backoff_new(&cfg, &bad), TETHER_RESULT_INVALID_CONFIG);
    cfg.jitter = TETHER_JITTER_PROPORTIONAL;
    cfg.jitter_fraction = 1.5;
    CHECK_RC(tether_backoff_new(&cfg, &bad), TETHER_RESULT_INVALID_CONFIG);

    tether_backoff g = {0};
    CHECK_OK(tether_backoff_new_grpc(&g));
    CHECK_OK(tether_backoff_next_delay_ms(g, now, &d));
    CHECK(d >= 800 && d <= 1200);
    CHECK_OK(tether_backoff_config_grpc(&cfg));
    CHECK(cfg.multiplier == 1.6 && cfg.max_delay_ms == 120000);

    /* Handles: double free, use after free, none, garbage, foreign. */
    CHECK_OK(tether_backoff_free(b));
    CHECK_RC(tether_backoff_free(b), TETHER_RESULT_STALE_HANDLE);
    CHECK_RC(tether_backoff_next_delay_ms(b, now, &d), TETHER_RESULT_STALE_HANDLE);
    CHECK_RC(tether_backoff_reset(b), TETHER_RESULT_STALE_HANDLE);
    tether_backoff none = {0};
    CHECK_OK(tether_backoff_free(none));
    tether_backoff garbage = {0x1234567};
    CHECK_RC(tether_backoff_free(garbage), TETHER_RESULT_INVALID_HANDLE);
    CHECK_RC(tether_backoff_reset(garbage), TETHER_RESULT_INVALID_HANDLE);
    /* The freed slot is reused by the next backoff; the old handle stays stale. */
    tether_backoff b2 = {0};
    CHECK_OK(tether_backoff_new_grpc(&b2));
    CHECK(b2.id != b.id);
    CHECK_RC(tether_backoff_free(b), TETHER_RESULT_STALE_HANDLE);
    CHECK_OK(tether_backoff_reset(b2));
    CHECK_OK(tether_backoff_free(b2));
    CHECK_OK(tether_backoff_free(g));

    /* NULL arguments. */
    CHECK_RC(tether_backoff_config_default(NULL), TETHER_RESULT_NULL_ARGUMENT);
    CHECK_RC(tether_backoff_config_grpc(NULL), TETHER_RESULT_NULL_ARGUMENT);
    CHECK_RC(tether_backoff_new(NULL, &b), TETHER_RESULT_NULL_ARGUMENT);
    CHECK_RC(tether_backoff_new(&cfg, NULL), TETHER_RESULT_NULL_ARGUMENT);
    CHECK_RC(tether_backoff_new_grpc(NULL), TETHER_RESULT_NULL_ARGUMENT);
    CHECK_RC(tether_backoff_next_delay_ms(b2, now, NULL), TETHER_RESULT_NULL_ARGUMENT);
    CHECK_RC(tether_backoff_connect_timeout_ms(b2, NULL), TETHER_RESULT_NULL_ARGUMENT);
    CHECK_RC(tether_backoff_attempt(b2, NULL), TETHER_RESULT_NULL_ARGUMENT);
}

static tether_policy heartbeat(uint64_t interval, uint64_t timeout, uint32_t missed) {
    tether_policy p;
    memset(&p, 0, sizeof p);
    p.kind = TETHER_POLICY_KIND_HEARTBEAT;
    p.interval_ms = interval;
    p.timeout_ms = timeout;
    p.max_missed = missed;
    return p;
}

static void test_monitor(void) {
    tether_policy p = heartbeat(1000, 500, 2);
    uint64_t t0 = 5000, bound = 0;
    CHECK_OK(tether_policy_detection_bound_ms(&p, &bound));
    CHECK(bound == 2000);
    tether_monitor m = {0};
    CHECK_OK(tether_monitor_new(&p, t0, &m));
    int wait = 0;
    CHECK_OK(tether_monitor_next_timeout_ms(m, t0, &wait));
    CHECK(wait == 1000);
    uint64_t deadline = 0;
    CHECK_OK(tether_monitor_next_deadline_ms(m, &deadline));
    CHECK(deadline == t0 + 1000);

    tether_liveness_action a;
    CHECK_OK(tether_monitor_handle_timeout(m, t0 + 999));
    CHECK_OK(tether_monitor_poll_action(m, &a));
    CHECK(a.kind == TETHER_ACTION_KIND_NONE);
    CHECK_OK(tether_monitor_handle_timeout(m, t0 + 1000));
    CHECK_OK(tether_monitor_poll_action(m, &a));
    CHECK(a.kind == TETHER_ACTION_KIND_SEND_PING);
    uint64_t rtt = 0;
    CHECK_OK(tether_monitor_handle_pong(m, t0 + 1042, a.payload, &rtt));
    CHECK(rtt == 42);
    CHECK_RC(tether_monitor_handle_pong(m, t0 + 1043, a.payload, NULL), TETHER_RESULT_EMPTY);

    /* Silence from now on: two pings, then dead, within the bound. */
    uint64_t now = t0 + 1043;
    int pings = 0, dead = 0;
    while (!dead) {
        CHECK_OK(tether_monitor_next_deadline_ms(m, &deadline));
        now = deadline > now ? deadline : now;
        CHECK_OK(tether_monitor_handle_timeout(m, now));
        CHECK_OK(tether_monitor_poll_action(m, &a));
        if (a.kind == TETHER_ACTION_KIND_SEND_PING) {
            pings++;
        } else if (a.kind == TETHER_ACTION_KIND_DEAD) {
            dead = 1;
            CHECK(a.reason == 3); /* DisconnectReason::Timeout */
            CHECK(a.silent_for_ms == 2000);
        }
        if (pings > 10) {
            break;
        }
    }
    CHECK(pings == 2 && dead);
    bool is_dead = false;
    CHECK_OK(tether_monitor_is_dead(m, &is_dead));
    CHECK(is_dead);
    CHECK_RC(tether_monitor_next_deadline_ms(m, &deadline), TETHER_RESULT_EMPTY);
    CHECK_OK(tether_monitor_next_timeout_ms(m, now, &wait));
    CHECK(wait == -1);
    CHECK_OK(tether_monitor_reset(m, now));
    CHECK_OK(tether_monitor_is_dead(m, &is_dead));
    CHECK(!is_dead);
    CHECK_OK(tether_monitor_detection_bound_ms(m, &bound));
    CHECK(bound == 2000);

    /* Idle policy and invalid policies. */
    tether_policy idle;
    memset(&idle, 0, sizeof idle);
    idle.kind = TETHER_POLICY_KIND_IDLE_TIMEOUT;
    idle.keepalive_ms = 1000;
    idle.idle_factor = 1.5;
    tether_monitor mi = {0};
    CHECK_OK(tether_monitor_new(&idle, 0, &mi));
    CHECK_OK(tether_monitor_handle_timeout(mi, 1500));
    CHECK_OK(tether_monitor_poll_action(mi, &a));
    CHECK(a.kind == TETHER_ACTION_KIND_DEAD);
    tether_monitor bad = {0};
    idle.idle_factor = 0.5;
    CHECK_RC(tether_monitor_new(&idle, 0, &bad), TETHER_RESULT_INVALID_CONFIG);
    tether_policy zero = heartbeat(0, 1, 1);
    CHECK_RC(tether_monitor_new(&zero, 0, &bad), TETHER_RESULT_INVALID_CONFIG);
    zero.kind = 99;
    CHECK_RC(tether_monitor_new(&zero, 0, &bad), TETHER_RESULT_INVALID_CONFIG);
    CHECK(bad.id == 0);
    tether_policy def;
    CHECK_OK(tether_policy_default(&def));
    CHECK(def.kind == TETHER_POLICY_KIND_HEARTBEAT && def.interval_ms == 15000);

    /* Handles. */
    CHECK_OK(tether_monitor_free(m));
    CHECK_RC(tether_monitor_free(m), TETHER_RESULT_STALE_HANDLE);
    CHECK_RC(tether_monitor_handle_received(m, now), TETHER_RESULT_STALE_HANDLE);
    CHECK_RC(tether_monitor_poll_action(m, &a), TETHER_RESULT_STALE_HANDLE);
    tether_monitor none = {0};
    CHECK_OK(tether_monitor_free(none));
    /* A backoff handle is not a monitor handle. */
    tether_backoff b = {0};
    CHECK_OK(tether_backoff_new_grpc(&b));
    tether_monitor foreign = {b.id};
    CHECK_RC(tether_monitor_free(foreign), TETHER_RESULT_INVALID_HANDLE);
    CHECK_OK(tether_backoff_free(b));

    /* NULL arguments. */
    CHECK_RC(tether_monitor_new(NULL, 0, &bad), TETHER_RESULT_NULL_ARGUMENT);
    CHECK_RC(tether_monitor_new(&p, 0, NULL), TETHER_RESULT_NULL_ARGUMENT);
    CHECK_RC(tether_monitor_poll_action(mi, NULL), TETHER_RESULT_NULL_ARGUMENT);
    CHECK_RC(tether_monitor_next_timeout_ms(mi, 0, NULL), TETHER_RESULT_NULL_ARGUMENT);
    CHECK_RC(tether_monitor_next_deadline_ms(mi, NULL), TETHER_RESULT_NULL_ARGUMENT);
    CHECK_RC(tether_monitor_is_dead(mi, NULL), TETHER_RESULT_NULL_ARGUMENT);
    CHECK_RC(tether_monitor_detection_bound_ms(mi, NULL), TETHER_RESULT_NULL_ARGUMENT);
    CHECK_RC(tether_policy_default(NULL), TETHER_RESULT_NULL_ARGUMENT);
    CHECK_RC(tether_policy_detection_bound_ms(NULL, &bound), TETHER_RESULT_NULL_ARGUMENT);
    CHECK_OK(tether_monitor_free(mi));
}

static void test_registry(void) {
    tether_policy p = heartbeat(1000, 500, 1);
    tether_registry r = {0};
    CHECK_OK(tether_registry_new(&p, 0, &r));
    uint64_t a = 0, b = 0;
    CHECK_OK(tether_registry_insert(r, 0, 7, &a));
    CHECK_OK(tether_registry_insert(r, 0, 8, &b));
    CHECK(a != 0 && b != 0 && a != b);
    size_t len = 0;
    CHECK_OK(tether_registry_len(r, &len));
    CHECK(len == 2);
    uint64_t tag = 0;
    CHECK_OK(tether_registry_tag(r, b, &tag));
    CHECK(tag == 8);
    int wait = 0;
    CHECK_OK(tether_registry_next_timeout_ms(r, 0, &wait));
    CHECK(wait == 1000);

    /* Remove is the exactly-once gate. */
    tag = 0;
    CHECK_OK(tether_registry_remove(r, a, &tag));
    CHECK(tag == 7);
    CHECK_RC(tether_registry_remove(r, a, &tag), TETHER_RESULT_STALE_HANDLE);
    CHECK_RC(tether_registry_touch(r, a, 10), TETHER_RESULT_STALE_HANDLE);
    CHECK_RC(tether_registry_tag(r, a, &tag), TETHER_RESULT_STALE_HANDLE);
    /* The slot is reused; the stale id never reaches the new connection. */
    uint64_t c = 0;
    CHECK_OK(tether_registry_insert(r, 0, 9, &c));
    CHECK(c != a);
    CHECK_RC(tether_registry_remove(r, a, NULL), TETHER_RESULT_STALE_HANDLE);
    CHECK_OK(tether_registry_tag(r, c, &tag));
    CHECK(tag == 9);
    CHECK_OK(tether_registry_len(r, &len));
    CHECK(len == 2);
    CHECK_RC(tether_registry_remove(r, 0, NULL), TETHER_RESULT_INVALID_HANDLE);
    CHECK_RC(tether_registry_touch(r, 0, 0), TETHER_RESULT_INVALID_HANDLE);
    CHECK_RC(tether_registry_remove(r, 0xdeadbeefcafe, NULL), TETHER_RESULT_INVALID_HANDLE);

    /* b is touched at 900: pinged later than c. c gets a ping at 1000 and
     * expires at 1500 (one miss). */
    CHECK_OK(tether_registry_touch(r, b, 900));
    CHECK_OK(tether_registry_handle_timeout(r, 1000));
    tether_registry_event ev[4];
    size_t n = 0;
    CHECK_OK(tether_registry_poll_events(r, ev, 4, &n));
    CHECK(n == 1 && ev[0].kind == TETHER_REGISTRY_EVENT_KIND_PING_DUE && ev[0].conn == c &&
          ev[0].tag == 9);
    CHECK_OK(tether_registry_poll_events(r, NULL, 0, &n));
    CHECK(n == 0);
    CHECK_OK(tether_registry_handle_timeout(r, 1500));
    CHECK_OK(tether_registry_poll_events(r, ev, 4, &n));
    int expired_c = 0;
    for (size_t i = 0; i < n; i++) {
        if (ev[i].kind == TETHER_REGISTRY_EVENT_KIND_EXPIRED && ev[i].conn == c) {
            expired_c++;
            CHECK(ev[i].reason == 3 && ev[i].silent_for_ms == 1500);
        }
    }
    CHECK(expired_c == 1);
    /* Expired means removed: a close attempt afterwards is refused. */
    CHECK_RC(tether_registry_remove(r, c, NULL), TETHER_RESULT_STALE_HANDLE);
    CHECK_OK(tether_registry_next_timeout_ms(r, 1500, &wait));
    CHECK(wait >= 0);
    uint64_t deadline = 0;
    CHECK_OK(tether_registry_next_deadline_ms(r, &deadline));
    CHECK(deadline >= 1500);
    uint64_t bound = 0;
    CHECK_OK(tether_registry_detection_bound_ms(r, &bound));
    CHECK(bound == 1500);

    /* A size limit. */
    CHECK_OK(tether_registry_set_max_len(r, 1));
    uint64_t d = 0;
    CHECK_RC(tether_registry_insert(r, 2000, 1, &d), TETHER_RESULT_FULL);

    /* NULL arguments. */
    CHECK_RC(tether_registry_new(NULL, 0, &r), TETHER_RESULT_NULL_ARGUMENT);
    CHECK_RC(tether_registry_insert(r, 0, 0, NULL), TETHER_RESULT_NULL_ARGUMENT);
    CHECK_RC(tether_registry_tag(r, b, NULL), TETHER_RESULT_NULL_ARGUMENT);
    CHECK_RC(tether_registry_poll_events(r, NULL, 4, &n), TETHER_RESULT_NULL_ARGUMENT);
    CHECK_RC(tether_registry_poll_events(r, ev, 4, NULL), TETHER_RESULT_NULL_ARGUMENT);
    CHECK_RC(tether_registry_next_timeout_ms(r, 0, NULL), TETHER_RESULT_NULL_ARGUMENT);
    CHECK_RC(tether_registry_next_deadline_ms(r, NULL), TETHER_RESULT_NULL_ARGUMENT);
    CHECK_RC(tether_registry_len(r, NULL), TETHER_RESULT_NULL_ARGUMENT);

    /* Handles. */
    CHECK_OK(tether_registry_free(r));
    CHECK_RC(tether_registry_free(r), TETHER_RESULT_STALE_HANDLE);
    CHECK_RC(tether_registry_insert(r, 0, 0, &d), TETHER_RESULT_STALE_HANDLE);
    CHECK_RC(tether_registry_remove(r, b, NULL), TETHER_RESULT_STALE_HANDLE);
    tether_registry none = {0};
    CHECK_OK(tether_registry_free(none));
}

static void test_managed_handles(void) {
    /* Client and server handles follow the same rules. A client to a port
     * nobody listens on is fine: it just keeps retrying until freed. */
    tether_server s = {0};
    CHECK_OK(tether_server_new("tcp://127.0.0.1:0", NULL, NULL, NULL, &s));
    uint16_t port = 0;
    CHECK_OK(tether_server_local_port(s, &port));
    CHECK(port != 0);
    char addr[64];
    snprintf(addr, sizeof addr, "tcp://127.0.0.1:%u", (unsigned)port);
    tether_client c = {0};
    CHECK_OK(tether_client_new(addr, NULL, NULL, NULL, &c));

    CHECK_OK(tether_client_close(c));
    CHECK_RC(tether_client_close(c), TETHER_RESULT_CLOSED);
    CHECK_RC(tether_client_send(c, (const uint8_t *)"x", 1), TETHER_RESULT_CLOSED);
    CHECK_OK(tether_client_free(c));
    CHECK_RC(tether_client_free(c), TETHER_RESULT_STALE_HANDLE);
    CHECK_RC(tether_client_send(c, (const uint8_t *)"x", 1), TETHER_RESULT_STALE_HANDLE);
    CHECK_RC(tether_client_close(c), TETHER_RESULT_STALE_HANDLE);
    tether_event ev;
    CHECK_RC(tether_client_poll_event(c, &ev), TETHER_RESULT_STALE_HANDLE);
    int fd = -1;
    CHECK_RC(tether_client_event_fd(c, &fd), TETHER_RESULT_STALE_HANDLE);
    CHECK(fd == -1);

    CHECK_RC(tether_server_close(s, 0), TETHER_RESULT_INVALID_HANDLE);
    CHECK_RC(tether_server_close(s, 0x0000000200000000ull), TETHER_RESULT_STALE_HANDLE);
    CHECK_RC(tether_server_send(s, 0, NULL, 0), TETHER_RESULT_INVALID_HANDLE);
    tether_server foreign_s = {c.id};
    CHECK_RC(tether_server_free(foreign_s), TETHER_RESULT_INVALID_HANDLE);
    CHECK_OK(tether_server_free(s));
    CHECK_RC(tether_server_free(s), TETHER_RESULT_STALE_HANDLE);
    CHECK_RC(tether_server_local_port(s, &port), TETHER_RESULT_STALE_HANDLE);
    CHECK_RC(tether_server_close(s, 0x0000000200000000ull), TETHER_RESULT_STALE_HANDLE);
    tether_server none_s = {0};
    tether_client none_c = {0};
    CHECK_OK(tether_server_free(none_s));
    CHECK_OK(tether_client_free(none_c));

    /* Addresses. */
    tether_client bad = {0};
    CHECK_RC(tether_client_new(NULL, NULL, NULL, NULL, &bad), TETHER_RESULT_NULL_ARGUMENT);
    CHECK_RC(tether_client_new("tcp://127.0.0.1:1", NULL, NULL, NULL, NULL),
             TETHER_RESULT_NULL_ARGUMENT);
    const char *bad_addresses[] = {
        "127.0.0.1:7000", "tcp://127.0.0.1", "tcp://127.0.0.1:99999", "tcp://:7000",
        "tcp://127.0.0.1:0", "bogus://127.0.0.1:7000", "tcp://a b:7000", "",
    };
    for (size_t i = 0; i < sizeof bad_addresses / sizeof bad_addresses[0]; i++) {
        CHECK_RC(tether_client_new(bad_addresses[i], NULL, NULL, NULL, &bad),
                 TETHER_RESULT_INVALID_ADDRESS);
        char detail[256];
        size_t n = 0;
        CHECK_OK(tether_last_error_message(detail, sizeof detail, &n));
        CHECK(n > 0);
    }
    /* Every transport is reachable; udp:// needs its PSK (no default). */
    CHECK_RC(tether_client_new("udp://127.0.0.1:7000", NULL, NULL, NULL, &bad),
             TETHER_RESULT_INVALID_CONFIG);
    CHECK(bad.id == 0);
    tether_server bad_s = {0};
    CHECK_RC(tether_server_new("tcp://127.0.0.1", NULL, NULL, NULL, &bad_s),
             TETHER_RESULT_INVALID_ADDRESS);
    CHECK_RC(tether_server_new("tcp://localhost:0", NULL, NULL, NULL, &bad_s),
             TETHER_RESULT_INVALID_ADDRESS);
    CHECK_RC(tether_server_new(NULL, NULL, NULL, NULL, &bad_s), TETHER_RESULT_NULL_ARGUMENT);
    CHECK_RC(tether_server_new("tcp://127.0.0.1:0", NULL, NULL, NULL, NULL),
             TETHER_RESULT_NULL_ARGUMENT);

    /* Configurations. */
    tether_client_config cc;
    CHECK_OK(tether_client_config_default(&cc));
    CHECK(cc.max_pending == 1024 && cc.heartbeat_interval_ms == 15000);
    cc.max_pending = 0;
    CHECK_RC(tether_client_new("tcp://127.0.0.1:1", &cc, NULL, NULL, &bad),
             TETHER_RESULT_INVALID_CONFIG);
    tether_server_config sc;
    CHECK_OK(tether_server_config_default(&sc));
    sc.send_queue = 0;
    CHECK_RC(tether_server_new("tcp://127.0.0.1:0", &sc, NULL, NULL, &bad_s),
             TETHER_RESULT_INVALID_CONFIG);
    /* The opening: the hello by default, an unknown value refused. */
    CHECK_OK(tether_client_config_default(&cc));
    CHECK_OK(tether_server_config_default(&sc));
    CHECK(cc.opening == TETHER_OPENING_HELLO && sc.opening == TETHER_OPENING_HELLO);
    cc.opening = 7;
    CHECK_RC(tether_client_new("tcp://127.0.0.1:1", &cc, NULL, NULL, &bad),
             TETHER_RESULT_INVALID_CONFIG);
    sc.opening = 0;
    CHECK_RC(tether_server_new("tcp://127.0.0.1:0", &sc, NULL, NULL, &bad_s),
             TETHER_RESULT_INVALID_CONFIG);
    CHECK_RC(tether_client_config_default(NULL), TETHER_RESULT_NULL_ARGUMENT);
    CHECK_RC(tether_server_config_default(NULL), TETHER_RESULT_NULL_ARGUMENT);
}

/* Scenario S3: per-socket kernel keepalive and TCP_USER_TIMEOUT. */
static void test_socket_tune(void) {
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof addr;
    CHECK(bind(lfd, (struct sockaddr *)&addr, sizeof addr) == 0);
    CHECK(listen(lfd, 1) == 0);
    CHECK(getsockname(lfd, (struct sockaddr *)&addr, &alen) == 0);
    int cfd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(connect(cfd, (struct sockaddr *)&addr, sizeof addr) == 0);
    int afd = accept(lfd, NULL, NULL);
    CHECK(afd >= 0);

    tether_tcp_options o;
    CHECK_OK(tether_tcp_options_default(&o));
    CHECK(o.keepalive && o.keepalive_idle_ms == 10000 && o.keepalive_count == 3);
    o.keepalive_idle_ms = 7000;
    o.keepalive_interval_ms = 2000;
    o.keepalive_count = 4;
    o.user_timeout_ms = 12345;
    o.nodelay = true;
    CHECK_OK(tether_socket_tune(afd, &o));
    tether_tcp_options back;
    memset(&back, 0xff, sizeof back);
    CHECK_OK(tether_socket_read_options(afd, &back));
    CHECK(back.keepalive);
    CHECK(back.keepalive_idle_ms == 7000);
    CHECK(back.keepalive_interval_ms == 2000);
    CHECK(back.keepalive_count == 4);
    CHECK(back.user_timeout_ms == 12345);
    CHECK(back.nodelay);

    /* An untouched socket reports keepalive off. */
    CHECK_OK(tether_socket_read_options(cfd, &back));
    CHECK(!back.keepalive);

    /* Bad values are rejected before anything is applied. */
    tether_tcp_options bad = o;
    bad.keepalive_idle_ms = 1500; /* the kernel counts whole seconds */
    CHECK_RC(tether_socket_tune(afd, &bad), TETHER_RESULT_INVALID_CONFIG);
    bad = o;
    bad.keepalive_count = 0;
    CHECK_RC(tether_socket_tune(afd, &bad), TETHER_RESULT_INVALID_CONFIG);
    CHECK_RC(tether_socket_tune(-1, &o), TETHER_RESULT_INVALID_ARGUMENT);
    CHECK_RC(tether_socket_tune(afd, NULL), TETHER_RESULT_NULL_ARGUMENT);
    CHECK_RC(tether_socket_read_options(afd, NULL), TETHER_RESULT_NULL_ARGUMENT);
    CHECK_RC(tether_tcp_options_default(NULL), TETHER_RESULT_NULL_ARGUMENT);
    /* Not a TCP socket: the kernel refuses, tether reports IO. */
    int pipefd[2];
    CHECK(pipe(pipefd) == 0);
    CHECK_RC(tether_socket_tune(pipefd[0], &o), TETHER_RESULT_IO);
    close(pipefd[0]);
    close(pipefd[1]);
    close(afd);
    close(cfd);
    close(lfd);
}

int main(void) {
    CHECK(tether_now_ms() <= tether_now_ms());
    test_results();
    test_backoff();
    test_monitor();
    test_registry();
    test_socket_tune();
    test_managed_handles();
    char detail[8];
    size_t n = 0;
    CHECK_RC(tether_last_error_message(NULL, 8, &n), TETHER_RESULT_NULL_ARGUMENT);
    CHECK_RC(tether_last_error_message(detail, 8, NULL), TETHER_RESULT_NULL_ARGUMENT);
    CHECK_OK(tether_shutdown());
    return test_finish("test_handles");
}

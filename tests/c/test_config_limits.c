/* Every numeric setting of the C API at its extremes: 0, 1, the bound,
 * bound + 1, SIZE_MAX / UINT64_MAX and negative values wrapped into the
 * unsigned field. An out-of-range value is refused with
 * TETHER_RESULT_INVALID_CONFIG and a detail that names the field; an
 * accepted extreme makes a working object (no panic, no silent stop). A
 * NULL argument is named too. */
#define _GNU_SOURCE
#include <math.h>
#include <stdint.h>

#include "test_util.h"

static char detail[512];

static void read_detail(void) {
    size_t n = 0;
    if (tether_last_error_message(detail, sizeof detail, &n) != TETHER_RESULT_OK) {
        detail[0] = '\0';
    }
}

/* The last failure's detail mentions `needle`. */
#define CHECK_DETAIL(needle)                                                         \
    do {                                                                             \
        read_detail();                                                               \
        test_checks++;                                                               \
        if (strstr(detail, (needle)) == NULL) {                                      \
            test_failures++;                                                         \
            fprintf(stderr, "%s:%d: detail \"%s\" does not name \"%s\"\n", __FILE__, \
                    __LINE__, detail, (needle));                                     \
        }                                                                            \
    } while (0)

/* Creates a client with `cfg` (to a port nobody listens on: attempts fail,
 * which is fine) and expects `want`; frees what was made. */
static tether_result make_client(const tether_client_config *cfg) {
    tether_client c = {0};
    tether_result rc = tether_client_new("tcp://127.0.0.1:9", cfg, NULL, NULL, &c);
    if (rc == TETHER_RESULT_OK) {
        tether_event ev;
        /* The first event is there: the client runs. */
        uint64_t until = test_mono_ms() + 5000;
        while (tether_client_poll_event(c, &ev) == TETHER_RESULT_EMPTY && test_mono_ms() < until) {
            test_sleep_ms(2);
        }
        CHECK(ev.kind == TETHER_EVENT_KIND_CONNECTING);
        CHECK(ev.object == c.id);
        CHECK_OK(tether_client_free(c));
    }
    return rc;
}

static tether_result make_server(const tether_server_config *cfg) {
    tether_server s = {0};
    tether_result rc = tether_server_new("tcp://127.0.0.1:0", cfg, NULL, NULL, &s);
    if (rc == TETHER_RESULT_OK) {
        CHECK_OK(tether_server_free(s));
    }
    return rc;
}

static const uint64_t MAXD = TETHER_MAX_DURATION_MS;

/* A duration field of the client config: 0 and the out-of-range values are
 * refused naming `field`, 1 and the bound are accepted. `zero_ok` for
 * fields where 0 means "off". */
#define CLIENT_DURATION(member, field, zero_ok)                                       \
    do {                                                                              \
        tether_client_config c_;                                                      \
        const uint64_t bad_[] = {MAXD + 1, UINT64_MAX, (uint64_t)-1, (uint64_t)-1000}; \
        for (size_t i_ = 0; i_ < sizeof bad_ / sizeof bad_[0]; i_++) {                \
            CHECK_OK(tether_client_config_default(&c_));                              \
            c_.member = bad_[i_];                                                     \
            CHECK_RC(make_client(&c_), TETHER_RESULT_INVALID_CONFIG);                 \
            CHECK_DETAIL(field);                                                      \
        }                                                                             \
        CHECK_OK(tether_client_config_default(&c_));                                  \
        c_.member = 0;                                                                \
        if (zero_ok) {                                                                \
            CHECK_OK(make_client(&c_));                                               \
        } else {                                                                      \
            CHECK_RC(make_client(&c_), TETHER_RESULT_INVALID_CONFIG);                 \
            CHECK_DETAIL(field);                                                      \
        }                                                                             \
    } while (0)

static void test_client_durations(void) {
    CLIENT_DURATION(heartbeat_interval_ms, "heartbeat.interval", 0);
    CLIENT_DURATION(heartbeat_timeout_ms, "heartbeat.timeout", 0);
    CLIENT_DURATION(backoff.initial_ms, "backoff.initial", 0);
    CLIENT_DURATION(backoff.min_connect_timeout_ms, "backoff.min_connect_timeout", 0);
    CLIENT_DURATION(backoff.max_elapsed_ms, "backoff.max_elapsed", 1);
    CLIENT_DURATION(backoff.healthy_after_ms, "backoff.healthy_after", 1);

    tether_client_config c;
    /* max_delay: at the bound works; above it (the reported never-retrying
     * client: UINT64_MAX with multiplier 1e300) is refused. */
    CHECK_OK(tether_client_config_default(&c));
    c.backoff.max_delay_ms = MAXD;
    c.backoff.multiplier = TETHER_MAX_FACTOR;
    CHECK_OK(make_client(&c));
    c.backoff.max_delay_ms = UINT64_MAX;
    c.backoff.multiplier = 1e300;
    CHECK_RC(make_client(&c), TETHER_RESULT_INVALID_CONFIG);
    CHECK_OK(tether_client_config_default(&c));
    c.backoff.max_delay_ms = MAXD + 1;
    CHECK_RC(make_client(&c), TETHER_RESULT_INVALID_CONFIG);
    CHECK_DETAIL("backoff.max_delay");

    /* Accepted extremes: 1 ms and the bound. */
    CHECK_OK(tether_client_config_default(&c));
    c.heartbeat_interval_ms = 1;
    c.heartbeat_timeout_ms = 1;
    c.backoff.initial_ms = 1;
    c.backoff.max_delay_ms = 1;
    c.backoff.min_connect_timeout_ms = 1;
    CHECK_OK(make_client(&c));
    CHECK_OK(tether_client_config_default(&c));
    c.heartbeat_interval_ms = MAXD;
    c.heartbeat_timeout_ms = MAXD;
    c.heartbeat_max_missed = 1;
    c.backoff.min_connect_timeout_ms = MAXD;
    CHECK_OK(make_client(&c));
}

static void test_client_counts_and_factors(void) {
    tether_client_config c;
    const size_t bad_queue[] = {0, (size_t)TETHER_MAX_QUEUE + 1, SIZE_MAX, (size_t)-1, (size_t)-7};
    for (size_t i = 0; i < sizeof bad_queue / sizeof bad_queue[0]; i++) {
        CHECK_OK(tether_client_config_default(&c));
        c.max_pending = bad_queue[i];
        CHECK_RC(make_client(&c), TETHER_RESULT_INVALID_CONFIG);
        CHECK_DETAIL("client.max_pending");
    }
    CHECK_OK(tether_client_config_default(&c));
    c.max_pending = 1;
    CHECK_OK(make_client(&c));
    c.max_pending = TETHER_MAX_QUEUE;
    CHECK_OK(make_client(&c));

    const uint32_t bad_missed[] = {0, 256, UINT32_MAX, (uint32_t)-1};
    for (size_t i = 0; i < sizeof bad_missed / sizeof bad_missed[0]; i++) {
        CHECK_OK(tether_client_config_default(&c));
        c.heartbeat_max_missed = bad_missed[i];
        CHECK_RC(make_client(&c), TETHER_RESULT_INVALID_CONFIG);
        CHECK_DETAIL("heartbeat.max_missed");
    }
    CHECK_OK(tether_client_config_default(&c));
    c.heartbeat_max_missed = 255;
    CHECK_OK(make_client(&c));

    const double bad_mult[] = {0.0, 0.999, TETHER_MAX_FACTOR * 1.0001, 1e300, -1.0, NAN, INFINITY};
    for (size_t i = 0; i < sizeof bad_mult / sizeof bad_mult[0]; i++) {
        CHECK_OK(tether_client_config_default(&c));
        c.backoff.multiplier = bad_mult[i];
        CHECK_RC(make_client(&c), TETHER_RESULT_INVALID_CONFIG);
        CHECK_DETAIL("backoff.multiplier");
    }
    const double bad_fraction[] = {-0.1, 1.01, NAN};
    for (size_t i = 0; i < sizeof bad_fraction / sizeof bad_fraction[0]; i++) {
        CHECK_OK(tether_client_config_default(&c));
        c.backoff.jitter = TETHER_JITTER_PROPORTIONAL;
        c.backoff.jitter_fraction = bad_fraction[i];
        CHECK_RC(make_client(&c), TETHER_RESULT_INVALID_CONFIG);
        CHECK_DETAIL("backoff.jitter");
    }
    const uint32_t bad_jitter[] = {5, UINT32_MAX};
    for (size_t i = 0; i < sizeof bad_jitter / sizeof bad_jitter[0]; i++) {
        CHECK_OK(tether_client_config_default(&c));
        c.backoff.jitter = bad_jitter[i];
        CHECK_RC(make_client(&c), TETHER_RESULT_INVALID_CONFIG);
        CHECK_DETAIL("backoff.jitter");
    }
    CHECK_OK(tether_client_config_default(&c));
    c.backoff.max_attempts = UINT32_MAX; /* a huge limit is still a limit */
    CHECK_OK(make_client(&c));
}

static void test_tcp_options(void) {
    tether_client_config c;
    const uint64_t bad_secs[] = {0, 999, 32768000, UINT64_MAX};
    for (size_t i = 0; i < sizeof bad_secs / sizeof bad_secs[0]; i++) {
        CHECK_OK(tether_client_config_default(&c));
        c.tcp.keepalive = true;
        c.tcp.keepalive_idle_ms = bad_secs[i];
        CHECK_RC(make_client(&c), TETHER_RESULT_INVALID_CONFIG);
        CHECK_DETAIL("tcp.keepalive");
        CHECK_OK(tether_client_config_default(&c));
        c.tcp.keepalive = true;
        c.tcp.keepalive_interval_ms = bad_secs[i];
        CHECK_RC(make_client(&c), TETHER_RESULT_INVALID_CONFIG);
        CHECK_DETAIL("tcp.keepalive");
    }
    const uint32_t bad_count[] = {0, 128, UINT32_MAX};
    for (size_t i = 0; i < sizeof bad_count / sizeof bad_count[0]; i++) {
        CHECK_OK(tether_client_config_default(&c));
        c.tcp.keepalive = true;
        c.tcp.keepalive_count = bad_count[i];
        CHECK_RC(make_client(&c), TETHER_RESULT_INVALID_CONFIG);
        CHECK_DETAIL("tcp.keepalive.count");
    }
    CHECK_OK(tether_client_config_default(&c));
    c.tcp.user_timeout_ms = UINT64_MAX;
    CHECK_RC(make_client(&c), TETHER_RESULT_INVALID_CONFIG);
    CHECK_DETAIL("tcp.user_timeout");
    CHECK_OK(tether_client_config_default(&c));
    c.tcp.keepalive = true;
    c.tcp.keepalive_idle_ms = 32767000;
    c.tcp.keepalive_interval_ms = 1000;
    c.tcp.keepalive_count = 127;
    c.tcp.user_timeout_ms = 1;
    CHECK_OK(make_client(&c));
}

static void test_server_limits(void) {
    tether_server_config s;
    const size_t bad_queue[] = {0, (size_t)TETHER_MAX_QUEUE + 1, SIZE_MAX, (size_t)-1};
    for (size_t i = 0; i < sizeof bad_queue / sizeof bad_queue[0]; i++) {
        CHECK_OK(tether_server_config_default(&s));
        s.send_queue = bad_queue[i];
        CHECK_RC(make_server(&s), TETHER_RESULT_INVALID_CONFIG);
        CHECK_DETAIL("server.send_queue");
    }
    CHECK_OK(tether_server_config_default(&s));
    s.send_queue = TETHER_MAX_QUEUE;
    CHECK_OK(make_server(&s));

    const uint64_t bad_ms[] = {0, MAXD + 1, UINT64_MAX, (uint64_t)-1};
    for (size_t i = 0; i < sizeof bad_ms / sizeof bad_ms[0]; i++) {
        CHECK_OK(tether_server_config_default(&s));
        s.policy.interval_ms = bad_ms[i];
        CHECK_RC(make_server(&s), TETHER_RESULT_INVALID_CONFIG);
        CHECK_DETAIL("heartbeat.interval");
        CHECK_OK(tether_server_config_default(&s));
        s.policy.kind = TETHER_POLICY_KIND_IDLE_TIMEOUT;
        s.policy.keepalive_ms = bad_ms[i];
        s.policy.idle_factor = 1.5;
        CHECK_RC(make_server(&s), TETHER_RESULT_INVALID_CONFIG);
        CHECK_DETAIL("idle.keepalive");
    }
    CHECK_OK(tether_server_config_default(&s));
    s.policy.kind = TETHER_POLICY_KIND_IDLE_TIMEOUT;
    s.policy.keepalive_ms = 1000;
    s.policy.idle_factor = 1e300;
    CHECK_RC(make_server(&s), TETHER_RESULT_INVALID_CONFIG);
    CHECK_DETAIL("idle.factor");
    CHECK_OK(tether_server_config_default(&s));
    s.policy.kind = UINT32_MAX;
    CHECK_RC(make_server(&s), TETHER_RESULT_INVALID_CONFIG);
}

static void test_transport_option_limits(void) {
    tether_transport_options o = {0};
    CHECK_OK(tether_transport_options_new(&o));
    const uint64_t bad[] = {MAXD + 1, UINT64_MAX, (uint64_t)-1};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_RC(tether_transport_options_set_udp_handshake_timeout(o, bad[i]),
                 TETHER_RESULT_INVALID_CONFIG);
        CHECK_DETAIL("udp.handshake_timeout");
    }
    CHECK_OK(tether_transport_options_set_udp_handshake_timeout(o, 0));
    CHECK_OK(tether_transport_options_set_udp_handshake_timeout(o, 1));
    CHECK_OK(tether_transport_options_set_udp_handshake_timeout(o, MAXD));
    const size_t bad_payload[] = {0, 65001, SIZE_MAX};
    for (size_t i = 0; i < sizeof bad_payload / sizeof bad_payload[0]; i++) {
        CHECK_RC(tether_transport_options_set_udp_max_payload(o, bad_payload[i]),
                 TETHER_RESULT_INVALID_CONFIG);
        CHECK_DETAIL("udp.max_payload");
    }
    CHECK_OK(tether_transport_options_set_udp_max_payload(o, 1));
    CHECK_OK(tether_transport_options_set_udp_max_payload(o, 65000));
    CHECK_OK(tether_transport_options_free(o));
}

static void test_sans_io_limits(void) {
    tether_backoff_config b;
    tether_backoff backoff = {0};
    CHECK_OK(tether_backoff_config_default(&b));
    b.max_delay_ms = UINT64_MAX;
    CHECK_RC(tether_backoff_new(&b, &backoff), TETHER_RESULT_INVALID_CONFIG);
    CHECK_DETAIL("backoff.max_delay");
    CHECK_OK(tether_backoff_config_default(&b));
    b.max_delay_ms = MAXD;
    b.multiplier = TETHER_MAX_FACTOR;
    CHECK_OK(tether_backoff_new(&b, &backoff));
    uint64_t delay = 0;
    for (int i = 0; i < 10; i++) {
        CHECK_OK(tether_backoff_next_delay_ms(backoff, 0, &delay));
        CHECK(delay <= MAXD + MAXD / 2);
    }
    CHECK_OK(tether_backoff_free(backoff));

    tether_policy p;
    tether_monitor m = {0};
    CHECK_OK(tether_policy_default(&p));
    p.timeout_ms = UINT64_MAX;
    CHECK_RC(tether_monitor_new(&p, 0, &m), TETHER_RESULT_INVALID_CONFIG);
    CHECK_DETAIL("heartbeat.timeout");
    tether_registry r = {0};
    CHECK_RC(tether_registry_new(&p, 0, &r), TETHER_RESULT_INVALID_CONFIG);
    CHECK_DETAIL("heartbeat.timeout");
}

static void test_null_arguments_are_named(void) {
    tether_client c = {0};
    CHECK_RC(tether_client_new(NULL, NULL, NULL, NULL, &c), TETHER_RESULT_NULL_ARGUMENT);
    CHECK_DETAIL("address");
    CHECK_RC(tether_client_new("tcp://127.0.0.1:9", NULL, NULL, NULL, NULL),
             TETHER_RESULT_NULL_ARGUMENT);
    CHECK_DETAIL("out_client");
    CHECK_RC(tether_server_new("tcp://127.0.0.1:0", NULL, NULL, NULL, NULL),
             TETHER_RESULT_NULL_ARGUMENT);
    CHECK_DETAIL("out_server");
    CHECK_RC(tether_policy_default(NULL), TETHER_RESULT_NULL_ARGUMENT);
    CHECK_DETAIL("out_policy");
    tether_backoff b = {0};
    CHECK_RC(tether_backoff_new(NULL, &b), TETHER_RESULT_NULL_ARGUMENT);
    CHECK_DETAIL("config");
    size_t n = 0;
    CHECK_RC(tether_last_error_message(NULL, 8, &n), TETHER_RESULT_NULL_ARGUMENT);
}

static void test_reason_names(void) {
    CHECK(strcmp(tether_reason_name(TETHER_REASON_TLS_NAME_MISMATCH), "tls_name_mismatch") == 0);
    CHECK(strcmp(tether_reason_name(TETHER_REASON_INTERNAL), "internal") == 0);
    CHECK(strcmp(tether_reason_name(0), "none") == 0);
    CHECK(strcmp(tether_reason_name(UINT32_MAX), "unknown") == 0);
}

int main(void) {
    test_client_durations();
    test_client_counts_and_factors();
    test_tcp_options();
    test_server_limits();
    test_transport_option_limits();
    test_sans_io_limits();
    test_null_arguments_are_named();
    test_reason_names();
    tether_shutdown();
    return test_finish("test_config_limits");
}

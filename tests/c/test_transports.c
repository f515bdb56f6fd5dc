/*
 * test_transports.c: the managed client and server over tls://, quic:// and
 * udp:// on loopback, configured through tether_transport_options.
 *
 *  1. per transport: a round trip, then a server restart (freed and created
 *     again on the same port) that the client survives, with every
 *     lifecycle event exactly once and in order, and the peer's address on
 *     the server's events;
 *  2. TLS with client certificates (the server requires one);
 *  3. bad option values: TETHER_RESULT_INVALID_CONFIG naming the field or
 *     path, from the setters and from tether_client_new / tether_server_new;
 *     a port in use stays TETHER_RESULT_IO; stale and foreign option handles.
 *
 * The certificate is generated in a temporary directory with the openssl
 * command line; without openssl the TLS and QUIC parts are skipped (with
 * the reason printed) and UDP still runs.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <unistd.h>

#include "recorder.h"

static char dir[64];
static char cert_file[128];
static char key_file[128];
static char reset_key_file[128];
static int have_cert = 0;

static const uint8_t PSK[32] = "tether-c-test-psk-32-bytes-long";

static int make_cert(void) {
    if (system("command -v openssl >/dev/null 2>&1") != 0) {
        printf("SKIPPED: tls:// and quic:// tests: the openssl command is not installed\n");
        return 0;
    }
    /* CA:FALSE: OpenSSL's default configuration marks a self-signed
     * certificate as a CA, and rustls (webpki) refuses a CA certificate as
     * a server's (end-entity) certificate. */
    char cmd[640];
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 "
             "-addext basicConstraints=critical,CA:FALSE -days 2 "
             "-keyout %s -out %s >/dev/null 2>&1",
             key_file, cert_file);
    if (system(cmd) != 0) {
        printf("SKIPPED: tls:// and quic:// tests: openssl could not generate a certificate\n");
        return 0;
    }
    return 1;
}

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/tether-c-XXXXXX");
    if (mkdtemp(dir) == NULL) {
        fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
        exit(1);
    }
    snprintf(cert_file, sizeof cert_file, "%s/c.pem", dir);
    snprintf(key_file, sizeof key_file, "%s/k.pem", dir);
    snprintf(reset_key_file, sizeof reset_key_file, "%s/quic-reset.key", dir);
    have_cert = make_cert();
}

static void cleanup(void) {
    const char *names[] = {"c.pem", "k.pem", "quic-reset.key", "short.key"};
    char path[160];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
}

/* The detail of the last failure, kept by new_client / new_server before
 * their cleanup call clears it. */
static char saved_detail[512];

static void save_detail(void) {
    size_t n = 0;
    if (tether_last_error_message(saved_detail, sizeof saved_detail, &n) != TETHER_RESULT_OK) {
        saved_detail[0] = '\0';
    }
}

/* The last error detail contains `needle`. */
static int detail_has(const char *needle) {
    if (strstr(saved_detail, needle) == NULL) {
        fprintf(stderr, "detail \"%s\" lacks \"%s\"\n", saved_detail, needle);
        return 0;
    }
    return 1;
}

/* CHECK_RC that also keeps the detail for detail_has. */
#define CHECK_FAILS(expr, want) \
    do {                        \
        CHECK_RC(expr, want);   \
        save_detail();          \
    } while (0)

/* Options for both sides of `scheme`: the server's certificate (and QUIC
 * reset key), the client's trust in it; the PSK for UDP. */
static tether_transport_options options_for(const char *scheme) {
    tether_transport_options o = {0};
    CHECK_OK(tether_transport_options_new(&o));
    if (strcmp(scheme, "tls") == 0) {
        CHECK_OK(tether_transport_options_set_tls_cert(o, cert_file, key_file));
        CHECK_OK(tether_transport_options_set_tls_ca_file(o, cert_file));
        CHECK_OK(tether_transport_options_set_tls_server_name(o, "localhost"));
        const char *alpn[] = {"tether-test"};
        CHECK_OK(tether_transport_options_set_tls_alpn(o, alpn, 1));
    } else if (strcmp(scheme, "quic") == 0) {
        CHECK_OK(tether_transport_options_set_quic_cert(o, cert_file, key_file));
        CHECK_OK(tether_transport_options_set_quic_ca_file(o, cert_file));
        CHECK_OK(tether_transport_options_set_quic_server_name(o, "localhost"));
        CHECK_OK(tether_transport_options_set_quic_reset_key_file(o, reset_key_file));
        CHECK_OK(tether_transport_options_set_quic_zero_rtt(o, true));
    } else {
        CHECK_OK(tether_transport_options_set_udp_psk(o, PSK, sizeof PSK));
        CHECK_OK(tether_transport_options_set_udp_max_payload(o, 4096));
    }
    return o;
}

/* Creates an echoing server on `addr` (retrying briefly while the port of
 * the server it replaces is still held). */
static tether_server start_server(const char *addr, tether_transport_options o, recorder *r) {
    tether_server_config cfg;
    CHECK_OK(tether_server_config_default(&cfg));
    cfg.policy.interval_ms = 1000;
    cfg.policy.timeout_ms = 500;
    cfg.transport = o;
    tether_server srv = {0};
    tether_result rc = TETHER_RESULT_IO;
    for (int i = 0; i < 50 && rc == TETHER_RESULT_IO; i++) {
        pthread_mutex_lock(&r->lock);
        rc = tether_server_new(addr, &cfg, on_event, r, &srv);
        r->server = srv;
        pthread_mutex_unlock(&r->lock);
        if (rc == TETHER_RESULT_IO) {
            test_sleep_ms(20);
        }
    }
    CHECK_RC(rc, TETHER_RESULT_OK);
    return srv;
}

static void test_round_trip_and_restart(const char *scheme) {
    printf("%s://: round trip and server restart\n", scheme);
    recorder srv_rec, srv2_rec, cli_rec;
    rec_init(&srv_rec);
    rec_init(&srv2_rec);
    rec_init(&cli_rec);
    srv_rec.echo = 1;
    srv2_rec.echo = 1;
    tether_transport_options o = options_for(scheme);

    char addr[64];
    snprintf(addr, sizeof addr, "%s://127.0.0.1:0", scheme);
    tether_server srv = start_server(addr, o, &srv_rec);
    uint16_t port = 0;
    CHECK_OK(tether_server_local_port(srv, &port));
    CHECK(port != 0);
    snprintf(addr, sizeof addr, "%s://127.0.0.1:%u", scheme, (unsigned)port);

    tether_client_config cfg = fast_client_config();
    cfg.transport = o;
    tether_client cli = {0};
    CHECK_OK(tether_client_new(addr, &cfg, on_event, &cli_rec, &cli));
    /* The options were copied: freeing them changes nothing. */
    CHECK_OK(tether_transport_options_free(o));

    CHECK(wait_kind(&cli_rec, TETHER_EVENT_KIND_CONNECTED, 1, 5000));
    CHECK_OK(tether_client_send(cli, (const uint8_t *)"one", 3));
    CHECK(wait_msgs(&cli_rec, 1, 5000));
    CHECK(strcmp(cli_rec.msgs[0], "one") == 0);
    pthread_mutex_lock(&srv_rec.lock);
    CHECK(strncmp(srv_rec.accepted_peer, "127.0.0.1:", 10) == 0);
    pthread_mutex_unlock(&srv_rec.lock);

    /* Restart: the server goes away and comes back on the same port. */
    CHECK_OK(tether_server_free(srv));
    CHECK(wait_kind(&cli_rec, TETHER_EVENT_KIND_DISCONNECTED, 1, 5000));
    CHECK_OK(tether_client_send(cli, (const uint8_t *)"two", 3)); /* buffered */
    o = options_for(scheme);
    tether_server srv2 = start_server(addr, o, &srv2_rec);
    CHECK_OK(tether_transport_options_free(o));

    CHECK(wait_kind(&cli_rec, TETHER_EVENT_KIND_CONNECTED, 2, 10000));
    CHECK(wait_msgs(&cli_rec, 2, 5000));
    CHECK(strcmp(cli_rec.msgs[1], "two") == 0);
    CHECK_OK(tether_client_send(cli, (const uint8_t *)"three", 5));
    CHECK(wait_msgs(&cli_rec, 3, 5000));
    CHECK(strcmp(cli_rec.msgs[2], "three") == 0);

    CHECK_OK(tether_client_close(cli));
    CHECK(wait_kind(&cli_rec, TETHER_EVENT_KIND_CLOSED, 1, 5000));
    CHECK(wait_kind(&srv2_rec, TETHER_EVENT_KIND_CLOSED, 1, 5000));
    test_sleep_ms(100); /* anything extra would arrive now */
    CHECK_OK(tether_client_free(cli));

    pthread_mutex_lock(&cli_rec.lock);
    check_lifecycle(&cli_rec);
    CHECK(count_kind(&cli_rec, TETHER_EVENT_KIND_CONNECTED) == 2);
    CHECK(count_kind(&cli_rec, TETHER_EVENT_KIND_DISCONNECTED) == 2);
    CHECK(count_kind(&cli_rec, TETHER_EVENT_KIND_CLOSED) == 1);
    CHECK(count_kind(&cli_rec, TETHER_EVENT_KIND_GAVE_UP) == 0);
    CHECK(cli_rec.nmsgs == 3);
    for (int i = 0; i < cli_rec.n; i++) {
        tether_event *e = &cli_rec.events[i];
        if (e->kind == TETHER_EVENT_KIND_DISCONNECTED && e->generation == 1) {
            /* the server went away: an orderly close (1) or a reset (2) */
            if (e->reason != 1 && e->reason != 2) {
                fprintf(stderr, "%s: first disconnect reason %u\n", scheme, e->reason);
            }
            CHECK(e->reason == 1 || e->reason == 2);
        } else if (e->kind == TETHER_EVENT_KIND_DISCONNECTED) {
            CHECK(e->reason == 8); /* our own close */
        }
    }
    CHECK(cli_rec.peer_unexpected == 0);
    pthread_mutex_unlock(&cli_rec.lock);

    pthread_mutex_lock(&srv2_rec.lock);
    CHECK(count_kind(&srv2_rec, TETHER_EVENT_KIND_ACCEPTED) == 1);
    CHECK(count_kind(&srv2_rec, TETHER_EVENT_KIND_CLOSED) == 1);
    CHECK(strncmp(srv2_rec.accepted_peer, "127.0.0.1:", 10) == 0);
    CHECK(strcmp(srv2_rec.closed_peer, srv2_rec.accepted_peer) == 0);
    CHECK(srv2_rec.peer_missing == 0 && srv2_rec.send_errors == 0);
    pthread_mutex_unlock(&srv2_rec.lock);
    CHECK(srv_rec.peer_missing == 0 && srv_rec.send_errors == 0);
    CHECK_OK(tether_server_free(srv2));
    rec_destroy(&srv_rec);
    rec_destroy(&srv2_rec);
    rec_destroy(&cli_rec);
}

static void test_tls_client_certificates(void) {
    printf("tls://: client certificates\n");
    recorder srv_rec, cli_rec, anon_rec;
    rec_init(&srv_rec);
    rec_init(&cli_rec);
    rec_init(&anon_rec);
    srv_rec.echo = 1;
    tether_transport_options o = options_for("tls");
    CHECK_OK(tether_transport_options_set_tls_client_ca_file(o, cert_file));
    tether_server srv = start_server("tls://127.0.0.1:0", o, &srv_rec);
    uint16_t port = 0;
    CHECK_OK(tether_server_local_port(srv, &port));
    char addr[64];
    snprintf(addr, sizeof addr, "tls://127.0.0.1:%u", (unsigned)port);

    /* Without a certificate the handshake fails: the server never accepts. */
    tether_client_config cfg = fast_client_config();
    cfg.transport = o;
    tether_client anon = {0};
    CHECK_OK(tether_client_new(addr, &cfg, on_event, &anon_rec, &anon));
    CHECK(wait_kind(&anon_rec, TETHER_EVENT_KIND_WAITING, 2, 5000));

    CHECK_OK(tether_transport_options_set_tls_client_cert(o, cert_file, key_file));
    tether_client cli = {0};
    CHECK_OK(tether_client_new(addr, &cfg, on_event, &cli_rec, &cli));
    CHECK_OK(tether_transport_options_free(o));
    CHECK(wait_kind(&cli_rec, TETHER_EVENT_KIND_CONNECTED, 1, 5000));
    CHECK_OK(tether_client_send(cli, (const uint8_t *)"mutual", 6));
    CHECK(wait_msgs(&cli_rec, 1, 5000));
    CHECK_OK(tether_client_free(cli));
    CHECK_OK(tether_client_free(anon));
    /* Under TLS 1.3 the client's side of the handshake may be done before
     * the server refuses it; no welcome ever comes, so the client is never
     * connected: each attempt fails, naming the certificate. */
    pthread_mutex_lock(&anon_rec.lock);
    CHECK(anon_rec.nmsgs == 0);
    CHECK(count_kind(&anon_rec, TETHER_EVENT_KIND_CONNECTED) == 0);
    for (int i = 0; i < anon_rec.n; i++)
        if (anon_rec.events[i].kind == TETHER_EVENT_KIND_CONNECT_FAILED)
            CHECK(anon_rec.events[i].reason == TETHER_REASON_TLS_CERTIFICATE);
    check_lifecycle(&anon_rec);
    pthread_mutex_unlock(&anon_rec.lock);
    CHECK_OK(tether_server_free(srv));
    pthread_mutex_lock(&srv_rec.lock);
    CHECK(count_kind(&srv_rec, TETHER_EVENT_KIND_ACCEPTED) == 1);
    pthread_mutex_unlock(&srv_rec.lock);
    rec_destroy(&srv_rec);
    rec_destroy(&cli_rec);
    rec_destroy(&anon_rec);
}

static tether_result new_client(const char *addr, tether_transport_options o) {
    tether_client_config cfg;
    CHECK_OK(tether_client_config_default(&cfg));
    cfg.transport = o;
    tether_client c = {0};
    tether_result rc = tether_client_new(addr, &cfg, NULL, NULL, &c);
    save_detail();
    CHECK_OK(tether_client_free(c)); /* {0} when creation failed */
    return rc;
}

static tether_result new_server(const char *addr, tether_transport_options o) {
    tether_server_config cfg;
    CHECK_OK(tether_server_config_default(&cfg));
    cfg.transport = o;
    tether_server s = {0};
    tether_result rc = tether_server_new(addr, &cfg, NULL, NULL, &s);
    save_detail();
    CHECK_OK(tether_server_free(s));
    return rc;
}

static void test_bad_options(void) {
    printf("bad option values\n");
    tether_transport_options o = {0};
    CHECK_OK(tether_transport_options_new(&o));

    /* Setters check what they can at once; the detail names the field. */
    CHECK_FAILS(tether_transport_options_set_tls_ca_file(o, ""), TETHER_RESULT_INVALID_CONFIG);
    CHECK(detail_has("tls_client.ca_file"));
    CHECK_FAILS(tether_transport_options_set_tls_ca_file(o, "\xff\xfe.pem"), TETHER_RESULT_INVALID_CONFIG);
    CHECK(detail_has("UTF-8"));
    CHECK_RC(tether_transport_options_set_tls_ca_file(o, NULL), TETHER_RESULT_NULL_ARGUMENT);
    CHECK_FAILS(tether_transport_options_set_tls_cert(o, "c.pem", ""), TETHER_RESULT_INVALID_CONFIG);
    CHECK(detail_has("tls_server.key_file"));
    CHECK_FAILS(tether_transport_options_set_quic_server_name(o, ""), TETHER_RESULT_INVALID_CONFIG);
    CHECK(detail_has("quic_client.server_name"));
    CHECK_FAILS(tether_transport_options_set_quic_reset_key_file(o, ""), TETHER_RESULT_INVALID_CONFIG);
    CHECK(detail_has("quic_server.reset_key_file"));
    const char *alpn[] = {"h2", ""};
    CHECK_FAILS(tether_transport_options_set_quic_alpn(o, alpn, 2), TETHER_RESULT_INVALID_CONFIG);
    CHECK(detail_has("quic.alpn[1]"));
    CHECK_RC(tether_transport_options_set_tls_alpn(o, NULL, 1), TETHER_RESULT_NULL_ARGUMENT);
    CHECK_OK(tether_transport_options_set_tls_alpn(o, NULL, 0));
    CHECK_FAILS(tether_transport_options_set_udp_psk(o, PSK, 15), TETHER_RESULT_INVALID_CONFIG);
    CHECK(detail_has("udp.psk"));
    CHECK_RC(tether_transport_options_set_udp_psk(o, NULL, 32), TETHER_RESULT_NULL_ARGUMENT);
    CHECK_FAILS(tether_transport_options_set_udp_max_payload(o, 0), TETHER_RESULT_INVALID_CONFIG);
    CHECK(detail_has("udp.max_payload"));
    CHECK_RC(tether_transport_options_set_udp_max_payload(o, 65001), TETHER_RESULT_INVALID_CONFIG);
    CHECK_FAILS(tether_transport_options_set_udp_static_key_file(o, ""), TETHER_RESULT_INVALID_CONFIG);
    CHECK(detail_has("udp.static_key_file"));
    CHECK_RC(tether_transport_options_new(NULL), TETHER_RESULT_NULL_ARGUMENT);

    /* UDP without a PSK, on either side. */
    CHECK_RC(new_client("udp://127.0.0.1:9", o), TETHER_RESULT_INVALID_CONFIG);
    CHECK(detail_has("udp.psk"));
    CHECK_RC(new_server("udp://127.0.0.1:0", o), TETHER_RESULT_INVALID_CONFIG);
    CHECK(detail_has("udp.psk"));
    tether_transport_options none = {0};
    CHECK_RC(new_client("udp://127.0.0.1:9", none), TETHER_RESULT_INVALID_CONFIG);

    /* TLS / QUIC servers need a certificate; files are read at creation. */
    CHECK_RC(new_server("tls://127.0.0.1:0", o), TETHER_RESULT_INVALID_CONFIG);
    CHECK(detail_has("tls_server.cert_file"));
    CHECK_RC(new_server("quic://127.0.0.1:0", o), TETHER_RESULT_INVALID_CONFIG);
    CHECK(detail_has("quic_server.cert_file"));
    char missing[160];
    snprintf(missing, sizeof missing, "%s/missing.pem", dir);
    CHECK_OK(tether_transport_options_set_tls_ca_file(o, missing));
    CHECK_RC(new_client("tls://127.0.0.1:9", o), TETHER_RESULT_INVALID_CONFIG);
    CHECK(detail_has("missing.pem"));
    CHECK_OK(tether_transport_options_set_quic_cert(o, missing, missing));
    CHECK_RC(new_server("quic://127.0.0.1:0", o), TETHER_RESULT_INVALID_CONFIG);
    CHECK(detail_has("missing.pem"));
    CHECK_OK(tether_transport_options_set_quic_ca_file(o, missing));
    CHECK_RC(new_client("quic://127.0.0.1:9", o), TETHER_RESULT_INVALID_CONFIG);
    CHECK(detail_has("missing.pem"));
    if (have_cert) {
        /* A key where the certificate belongs. */
        CHECK_OK(tether_transport_options_set_tls_cert(o, key_file, key_file));
        CHECK_RC(new_server("tls://127.0.0.1:0", o), TETHER_RESULT_INVALID_CONFIG);
        CHECK(detail_has("k.pem"));
        CHECK_OK(tether_transport_options_set_tls_ca_file(o, cert_file));
        CHECK_OK(tether_transport_options_set_tls_server_name(o, "not a name"));
        CHECK_RC(new_client("tls://127.0.0.1:9", o), TETHER_RESULT_INVALID_CONFIG);
        CHECK(detail_has("not a name"));
    }

    /* A UDP static key file of the wrong size is a config error... */
    CHECK_OK(tether_transport_options_set_udp_psk(o, PSK, sizeof PSK));
    char short_key[160];
    snprintf(short_key, sizeof short_key, "%s/short.key", dir);
    FILE *f = fopen(short_key, "w");
    CHECK(f != NULL);
    if (f) {
        fputs("12345", f);
        fclose(f);
    }
    CHECK_OK(tether_transport_options_set_udp_static_key_file(o, short_key));
    CHECK_RC(new_server("udp://127.0.0.1:0", o), TETHER_RESULT_INVALID_CONFIG);
    CHECK(detail_has("short.key"));

    /* ...while a port in use stays an I/O error. */
    CHECK_OK(tether_transport_options_set_udp_static_key_file(o, reset_key_file));
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    CHECK(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    char busy[64];
    snprintf(busy, sizeof busy, "udp://127.0.0.1:%u", (unsigned)ntohs(a.sin_port));
    CHECK_RC(new_server(busy, o), TETHER_RESULT_IO);
    close(fd);

    /* Option handles are generation-checked like every other. */
    CHECK_OK(tether_transport_options_free(o));
    CHECK_RC(tether_transport_options_free(o), TETHER_RESULT_STALE_HANDLE);
    CHECK_RC(tether_transport_options_set_udp_psk(o, PSK, sizeof PSK), TETHER_RESULT_STALE_HANDLE);
    CHECK_RC(new_client("udp://127.0.0.1:9", o), TETHER_RESULT_STALE_HANDLE);
    tether_backoff b = {0};
    CHECK_OK(tether_backoff_new_grpc(&b));
    tether_transport_options foreign = {b.id};
    CHECK_RC(tether_transport_options_set_quic_zero_rtt(foreign, false), TETHER_RESULT_INVALID_HANDLE);
    CHECK_RC(new_server("udp://127.0.0.1:0", foreign), TETHER_RESULT_INVALID_HANDLE);
    CHECK_OK(tether_backoff_free(b));
    CHECK_OK(tether_transport_options_free(none));

    /* An unknown scheme is an address error, not a config error. */
    CHECK_RC(new_client("sctp://127.0.0.1:9", none), TETHER_RESULT_INVALID_ADDRESS);
    CHECK_RC(new_server("quic://localhost:0", none), TETHER_RESULT_INVALID_ADDRESS);
}

int main(void) {
    /* C programs keep SIGPIPE's default action (terminate): tether must
     * never let a write to a reset connection raise it on this process. */
    signal(SIGPIPE, SIG_DFL);
    setup();
    test_bad_options();
    if (have_cert) {
        test_round_trip_and_restart("tls");
        test_tls_client_certificates();
        test_round_trip_and_restart("quic");
    }
    test_round_trip_and_restart("udp");
    /* Options left alive are freed by tether_shutdown too. */
    tether_transport_options left = {0};
    CHECK_OK(tether_transport_options_new(&left));
    CHECK_OK(tether_shutdown());
    CHECK_RC(tether_transport_options_free(left), TETHER_RESULT_STALE_HANDLE);
    cleanup();
    return test_finish("test_transports");
}

//! Transport benchmarks, each printing figures measured in the same run:
//!
//! 1. **Black-hole detection** on tcp, tls, quic and udp: client -> fault
//!    proxy -> server with a 500 ms heartbeat bound; the proxy turns into a
//!    black hole N times; p50 / p99 of the time to `Disconnected`, as a
//!    ratio of the bound.
//! 2. **Noticing a restarted server** (QUIC stateless reset with a
//!    persisted key vs the idle-timeout fallback with a random key; UDP's
//!    verified unknown-session signal vs the heartbeat timeout with another
//!    static key). The server is restarted in-process behind a UDP fault
//!    proxy: a new server starts, the proxy sends the client's next
//!    datagrams to it and forgets the old mapping (so that nothing the old
//!    server sends on its way out reaches the client, as after a crash),
//!    and the old server is dropped; the client's address for the server
//!    never changes. Right after the restart the client sends a message;
//!    the time to `Disconnected` is measured from there. The signal side
//!    is measured at the default settings (QUIC: the default heartbeat and
//!    the QUIC keep-alive / idle timeout derived from it; UDP: the
//!    recommended heartbeat and default options). The fallback side waits
//!    for the timeout, tens of seconds at the defaults: it is measured with
//!    every timeout divided by `SCALE`, then multiplied back; the default
//!    bound itself is printed as the computed figure. Every line says which
//!    numbers are measured and which computed.
//! 3. **TLS reconnect**: `connect()` latency with session resumption (one
//!    connector, its session cache warm) vs a full handshake (a fresh
//!    connector each time); the connector's counters confirm which
//!    happened.
//! 4. **Supervised throughput vs the raw transport** for TLS (raw: a
//!    tokio-rustls stream with the same framing), QUIC (raw: quinn
//!    datagrams, one frame each) and UDP (raw: a connected tokio UDP
//!    socket, one frame per datagram, echoed by a plain UDP socket), with
//!    the harness of `benches/echo.rs` (`benches/common`).
//!
//! `cargo bench -p tether-transports --all-features --bench transports`;
//! without `--bench` (e.g. `cargo test --benches`) every part runs once,
//! briefly, as a smoke test.

mod common;
#[path = "../tests/quic_support/mod.rs"]
mod quic_support;
#[path = "../tests/tls_support/mod.rs"]
mod tls_support;
#[path = "../tests/transports_support/mod.rs"]
mod transports_support;

use bytes::Bytes;
use common::{
    compare, criterion_group, data_frame, raw_echo, runtime, EchoPair, RawStream, Supervised,
    WINDOW,
};
use criterion::Criterion;
use futures_util::future::BoxFuture;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tether_core::codec::Frame;
use tether_core::liveness::HeartbeatConfig;
use tether_core::supervisor::Lifecycle;
use tether_core::DisconnectReason;
use tether_transports::driver::{ClientConfig, ServerConfig};
use tether_transports::endpoint::{self, Endpoint};
use tether_transports::quic::QuicLiveness;
use tether_transports::tcp::TcpOptions;
use tether_transports::tls::TlsConnector;
use tether_transports::{Link, LinkExt, Scheme};
use tokio::runtime::Runtime;
use tokio::sync::Semaphore;
use transports_support::{loopback, Chain, Kit, Setup, SCHEMES};

/// How much shorter the timeouts are when the fallback side of part 2 is
/// measured.
const SCALE: u32 = 50;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The `q` quantile (nearest rank) of `v`.
fn quantile(v: &[Duration], q: f64) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

fn median(v: &[Duration]) -> Duration {
    quantile(v, 0.5)
}

// ------------------------------------------------------- 1. detection

async fn detection(scheme: Scheme, runs: usize) -> (Duration, Vec<Duration>) {
    let kit = Kit::new();
    let setup = Setup::new(HeartbeatConfig::new(
        Duration::from_millis(200),
        Duration::from_millis(150),
        2,
    ));
    let bound = setup.heartbeat.detection_bound();
    let mut chain = Chain::start(&kit, scheme, setup).await;
    let mut took = Vec::with_capacity(runs);
    for _ in 0..runs {
        chain.echo(b"alive", Duration::from_secs(5)).await;
        let (t, lost) = chain.black_hole_detection(bound * 10).await;
        assert!(
            matches!(
                lost,
                Lifecycle::Disconnected {
                    reason: DisconnectReason::Timeout,
                    ..
                }
            ),
            "{lost:?}"
        );
        took.push(t);
        chain.heal(Duration::from_secs(10)).await;
    }
    chain.client.close();
    (bound, took)
}

fn bench_detection(rt: &Runtime, runs: usize) {
    println!("\n== 1. black-hole detection ({runs} runs per transport, all measured) ==");
    let results = rt.block_on(async {
        let tasks: Vec<_> = SCHEMES
            .iter()
            .map(|&s| tokio::spawn(detection(s, runs)))
            .collect();
        let mut out = vec![];
        for (s, t) in SCHEMES.iter().zip(tasks) {
            out.push((*s, t.await.expect("detection task")));
        }
        out
    });
    for (scheme, (bound, took)) in results {
        let (p50, p99) = (median(&took), quantile(&took, 0.99));
        println!(
            "detect {:4}: bound {:.0} ms; p50 {:.1} ms = {:.3} x bound; p99 {:.1} ms = {:.3} x bound",
            scheme.as_str(),
            ms(bound),
            ms(p50),
            p50.as_secs_f64() / bound.as_secs_f64(),
            ms(p99),
            p99.as_secs_f64() / bound.as_secs_f64(),
        );
    }
}

// ------------------------------------------------------- 2. restarts

/// Whether the restarted server can prove that it lost the connection.
#[derive(Clone, Copy, PartialEq)]
enum Restart {
    /// QUIC: the same stateless-reset key; UDP: the same static key.
    SameKey,
    /// QUIC: a new random key; UDP: another static key.
    NewKey,
}

fn default_heartbeat(scheme: Scheme) -> HeartbeatConfig {
    match scheme {
        Scheme::Udp => tether_transports::udp::recommended_heartbeat(),
        _ => HeartbeatConfig::default(),
    }
}

/// The defaults of `scheme`, every timeout divided by `scale`.
fn restart_setup(kit: &Kit, scheme: Scheme, restart: Restart, scale: u32) -> Setup {
    let hb = default_heartbeat(scheme);
    let mut setup = Setup::new(HeartbeatConfig::new(
        hb.interval / scale,
        hb.timeout / scale,
        hb.max_missed,
    ));
    setup.udp_probe = tether_transports::udp::UdpOptions::default().probe_interval / scale;
    if scheme == Scheme::Quic && restart == Restart::SameKey {
        setup.quic_reset_key = Some(kit.pki.path("quic-reset.key"));
    }
    setup
}

/// Restarts the server behind the proxy `runs` times; returns the reasons
/// and the times from the client's first message after each restart to
/// its `Disconnected`.
async fn restarts(
    scheme: Scheme,
    restart: Restart,
    scale: u32,
    runs: usize,
) -> (Duration, Vec<(DisconnectReason, Duration)>) {
    let kit = Kit::new();
    let setup = restart_setup(&kit, scheme, restart, scale);
    let bound = setup.heartbeat.detection_bound();
    let mut chain = Chain::start(&kit, scheme, setup.clone()).await;
    let mut out = vec![];
    for run in 0..runs {
        chain.echo(b"alive", Duration::from_secs(5)).await;
        let mut next = setup.clone();
        if restart == Restart::NewKey && scheme == Scheme::Udp {
            next.udp_static_key = Some([run as u8 + 1; 32]);
        }
        let server = kit.server(scheme, &next).await;
        let proxy = chain.proxy.udp();
        proxy.set_upstream(server.addr);
        proxy.forget_clients();
        drop(std::mem::replace(&mut chain.server, server));

        let start = Instant::now();
        chain
            .client
            .handle()
            .send(Bytes::from_static(b"anyone there?"))
            .await
            .expect("send");
        let lost = chain
            .wait(bound * 3 + Duration::from_secs(5), |e| {
                matches!(e, Lifecycle::Disconnected { .. })
            })
            .await;
        let took = start.elapsed();
        let Lifecycle::Disconnected { reason, .. } = lost else {
            unreachable!()
        };
        out.push((reason, took));
        chain
            .wait(Duration::from_secs(10), |e| {
                matches!(e, Lifecycle::Connected { .. })
            })
            .await;
    }
    chain.client.close();
    (bound, out)
}

fn summarize(results: &[(DisconnectReason, Duration)]) -> (Duration, String) {
    let times: Vec<Duration> = results.iter().map(|r| r.1).collect();
    let runs: Vec<String> = results
        .iter()
        .map(|(reason, t)| format!("{reason} {:.2} ms", ms(*t)))
        .collect();
    (median(&times), runs.join(", "))
}

fn bench_restarts(rt: &Runtime, signal_runs: usize, fallback_runs: usize) {
    println!(
        "\n== 2. noticing a restarted server (signal: {signal_runs} runs at default settings; \
         fallback: {fallback_runs} runs at 1/{SCALE} of the default timeouts) =="
    );
    for scheme in [Scheme::Quic, Scheme::Udp] {
        let name = scheme.as_str();
        let (signal, fallback, fallback_default) = rt.block_on(async {
            let signal = restarts(scheme, Restart::SameKey, 1, signal_runs).await;
            let fallback = restarts(scheme, Restart::NewKey, SCALE, fallback_runs).await;
            // For QUIC the default idle timeout equals this bound
            // (`QuicLiveness::from_heartbeat`).
            (
                signal,
                fallback,
                default_heartbeat(scheme).detection_bound(),
            )
        });
        let (signal_p50, signal_reason) = summarize(&signal.1);
        let (fallback_p50, fallback_reason) = summarize(&fallback.1);
        let extrapolated = fallback_p50 * SCALE;
        let what = if scheme == Scheme::Quic {
            ("stateless reset, persisted key", "idle timeout, random key")
        } else {
            (
                "unknown-session signal",
                "heartbeat timeout, other static key",
            )
        };
        println!(
            "restart {name}: {}: measured p50 {:.2} ms ({signal_reason}) at default settings",
            what.0,
            ms(signal_p50)
        );
        println!(
            "restart {name}: {}: measured p50 {:.0} ms ({fallback_reason}) with bound {:.0} ms \
             (1/{SCALE}); x{SCALE} = {:.1} s extrapolated; default bound {:.0} s (computed)",
            what.1,
            ms(fallback_p50),
            ms(fallback.0),
            extrapolated.as_secs_f64(),
            fallback_default.as_secs_f64(),
        );
        println!(
            "restart {name}: speedup at default settings {:.0}x (computed bound / measured signal), \
             {:.0}x (extrapolated / measured signal); target >= 100x",
            fallback_default.as_secs_f64() / signal_p50.as_secs_f64(),
            extrapolated.as_secs_f64() / signal_p50.as_secs_f64(),
        );
    }
}

// ------------------------------------------------------- 3. TLS resumption

/// One TLS connect (handshake included) and a ping round trip, which also
/// makes the client read the session tickets the server sent after the
/// handshake. Returns the connect latency.
async fn tls_connect(connector: &TlsConnector) -> Duration {
    let start = Instant::now();
    let mut link = connector.connect_link().await.expect("TLS connect");
    let took = start.elapsed();
    link.send(Frame::Ping(7)).await.expect("ping");
    loop {
        match link.recv().await.expect("pong") {
            Frame::Pong(7) => break,
            _ => continue,
        }
    }
    link.close().await;
    took
}

fn bench_tls_resumption(rt: &Runtime, runs: usize) {
    println!(
        "\n== 3. TLS reconnect: resumed vs full handshake ({runs} connects each, measured) =="
    );
    let (resumed, full, stats) = rt.block_on(async {
        let kit = Kit::new();
        let setup = Setup::new(HeartbeatConfig::default());
        let server = kit.server(Scheme::Tls, &setup).await;
        let port = server.addr.port();
        let options = kit.pki.client_options();
        let new_connector =
            || TlsConnector::new("127.0.0.1", port, TcpOptions::default(), &options).unwrap();
        let warm = new_connector();
        tls_connect(&warm).await;
        let before = warm.stats();
        let (mut resumed, mut full) = (vec![], vec![]);
        let mut fresh_stats = (0, 0);
        for _ in 0..runs {
            resumed.push(tls_connect(&warm).await);
            let fresh = new_connector();
            full.push(tls_connect(&fresh).await);
            let s = fresh.stats();
            fresh_stats.0 += s.full_handshakes;
            fresh_stats.1 += s.resumed_handshakes;
        }
        let after = warm.stats();
        let stats = (
            after.resumed_handshakes - before.resumed_handshakes,
            after.full_handshakes - before.full_handshakes,
            fresh_stats,
        );
        drop(server);
        (resumed, full, stats)
    });
    let (warm_resumed, warm_full, (fresh_full, fresh_resumed)) = stats;
    println!(
        "tls resumed: p50 {:.3} ms, p99 {:.3} ms (counters: {warm_resumed} resumed, {warm_full} full)",
        ms(median(&resumed)),
        ms(quantile(&resumed, 0.99)),
    );
    println!(
        "tls full:    p50 {:.3} ms, p99 {:.3} ms (counters: {fresh_full} full, {fresh_resumed} resumed)",
        ms(median(&full)),
        ms(quantile(&full, 0.99)),
    );
    println!(
        "tls reconnect: full / resumed = {:.2}x at p50",
        median(&full).as_secs_f64() / median(&resumed).as_secs_f64()
    );
}

// ------------------------------------------------------- 4. throughput

/// rustls configurations (ring, the test PKI) for the raw baselines.
struct RawTls {
    client: Arc<rustls::ClientConfig>,
    server: Arc<rustls::ServerConfig>,
}

impl RawTls {
    fn new(kit: &Kit, tls13_only: bool, alpn: &[u8]) -> Self {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let versions: &[&rustls::SupportedProtocolVersion] = if tls13_only {
            &[&rustls::version::TLS13]
        } else {
            rustls::DEFAULT_VERSIONS
        };
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(&kit.pki.ca).expect("CA") {
            roots.add(cert.expect("CA cert")).expect("root");
        }
        let mut client = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        client.alpn_protocols = vec![alpn.to_vec()];
        let certs = CertificateDer::pem_file_iter(&kit.pki.server_cert)
            .expect("cert")
            .collect::<Result<Vec<_>, _>>()
            .expect("certs");
        let key = PrivateKeyDer::from_pem_file(&kit.pki.server_key).expect("key");
        let mut server = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("server config");
        server.alpn_protocols = vec![alpn.to_vec()];
        Self {
            client: Arc::new(client),
            server: Arc::new(server),
        }
    }
}

/// Raw QUIC: quinn endpoints exchanging one frame per datagram.
struct RawQuic {
    conn: quinn::Connection,
    _client: quinn::Endpoint,
    server: tokio::task::JoinHandle<()>,
}

impl RawQuic {
    async fn connect(tls: &RawTls) -> Self {
        // The same QUIC keep-alive and idle timeout as the supervised side.
        let liveness = QuicLiveness::default();
        let transport = || {
            let mut t = quinn::TransportConfig::default();
            t.keep_alive_interval(liveness.keep_alive)
                .max_idle_timeout(Some(
                    quinn::IdleTimeout::try_from(liveness.idle_timeout).expect("idle"),
                ));
            Arc::new(t)
        };
        let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls.server.clone())
            .expect("server crypto");
        let mut server_config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        server_config.transport_config(transport());
        let server = quinn::Endpoint::server(server_config, loopback()).expect("server endpoint");
        let addr = server.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            let Some(incoming) = server.accept().await else {
                return;
            };
            let conn = incoming.await.expect("server handshake");
            while let Ok(d) = conn.read_datagram().await {
                if conn.send_datagram_wait(d).await.is_err() {
                    return;
                }
            }
        });
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls.client.clone())
            .expect("client crypto");
        let mut client_config = quinn::ClientConfig::new(Arc::new(crypto));
        client_config.transport_config(transport());
        let mut client = quinn::Endpoint::client(loopback()).expect("client endpoint");
        client.set_default_client_config(client_config);
        let conn = client
            .connect(addr, "localhost")
            .expect("connect")
            .await
            .expect("client handshake");
        Self {
            conn,
            _client: client,
            server,
        }
    }
}

#[async_trait::async_trait]
impl EchoPair for RawQuic {
    async fn round(&mut self, len: usize, count: usize, window: usize) -> Duration {
        let frame = data_frame(len);
        let window = Arc::new(Semaphore::new(window));
        let start = Instant::now();
        let writer = {
            let (window, conn) = (window.clone(), self.conn.clone());
            tokio::spawn(async move {
                for _ in 0..count {
                    window.acquire().await.expect("window").forget();
                    conn.send_datagram_wait(frame.clone()).await.expect("send");
                }
            })
        };
        let conn = self.conn.clone();
        let reader = tokio::spawn(async move {
            for _ in 0..count {
                let d = conn.read_datagram().await.expect("read");
                assert_eq!(d.len(), frame_len(len));
                window.add_permits(1);
            }
            start.elapsed()
        });
        writer.await.expect("writer");
        reader.await.expect("reader")
    }

    async fn close(self: Box<Self>) {
        self.conn.close(0u32.into(), b"done");
        self.server.abort();
    }
}

/// Raw UDP: a connected socket; the server socket echoes every datagram.
struct RawUdp {
    sock: Arc<tokio::net::UdpSocket>,
    server: tokio::task::JoinHandle<()>,
}

impl RawUdp {
    async fn connect() -> Self {
        let server = tokio::net::UdpSocket::bind(loopback()).await.expect("bind");
        let addr = server.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            let mut buf = vec![0u8; 65_536];
            while let Ok((n, from)) = server.recv_from(&mut buf).await {
                if server.send_to(&buf[..n], from).await.is_err() {
                    return;
                }
            }
        });
        let sock = tokio::net::UdpSocket::bind(loopback()).await.expect("bind");
        sock.connect(addr).await.expect("connect");
        Self {
            sock: Arc::new(sock),
            server,
        }
    }
}

#[async_trait::async_trait]
impl EchoPair for RawUdp {
    async fn round(&mut self, len: usize, count: usize, window: usize) -> Duration {
        let frame = data_frame(len);
        let window = Arc::new(Semaphore::new(window));
        let start = Instant::now();
        let writer = {
            let (window, sock) = (window.clone(), self.sock.clone());
            tokio::spawn(async move {
                for _ in 0..count {
                    window.acquire().await.expect("window").forget();
                    sock.send(&frame).await.expect("send");
                }
            })
        };
        let sock = self.sock.clone();
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; 65_536];
            for _ in 0..count {
                let n = sock.recv(&mut buf).await.expect("recv");
                assert_eq!(n, frame_len(len));
                window.add_permits(1);
            }
            start.elapsed()
        });
        writer.await.expect("writer");
        reader.await.expect("reader")
    }

    async fn close(self: Box<Self>) {
        self.server.abort();
    }
}

fn frame_len(len: usize) -> usize {
    tether_core::codec::HEADER_LEN + len
}

/// A raw or supervised pair for TLS or QUIC, with default settings.
fn pair(
    kit: Arc<Kit>,
    raw_tls: Arc<RawTls>,
    raw_quic: Arc<RawTls>,
    scheme: Scheme,
    supervised: bool,
) -> BoxFuture<'static, Box<dyn EchoPair>> {
    Box::pin(async move {
        if supervised {
            let options = kit.options(&Setup::new(HeartbeatConfig::default()));
            let at = |port| Endpoint {
                scheme,
                host: "127.0.0.1".into(),
                port,
            };
            let acceptor = endpoint::acceptor(&at(0), &options)
                .await
                .expect("acceptor");
            let port = acceptor.local_addr().expect("addr").port();
            let connector = endpoint::connector(&at(port), &options).expect("connector");
            let pair = Supervised::start(
                connector,
                acceptor,
                ClientConfig::default(),
                ServerConfig::default(),
            )
            .await;
            return Box::new(pair) as Box<dyn EchoPair>;
        }
        match scheme {
            Scheme::Tls => {
                let listener = tokio::net::TcpListener::bind(loopback())
                    .await
                    .expect("bind");
                let addr: SocketAddr = listener.local_addr().expect("addr");
                let acceptor = tokio_rustls::TlsAcceptor::from(raw_tls.server.clone());
                tokio::spawn(async move {
                    let (stream, _) = listener.accept().await.expect("accept");
                    stream.set_nodelay(true).expect("nodelay");
                    let tls = acceptor.accept(stream).await.expect("server handshake");
                    raw_echo(tls).await;
                });
                let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
                stream.set_nodelay(true).expect("nodelay");
                let name = ServerName::try_from("localhost").expect("name");
                let tls = tokio_rustls::TlsConnector::from(raw_tls.client.clone())
                    .connect(name, stream)
                    .await
                    .expect("client handshake");
                Box::new(RawStream::new(tls))
            }
            Scheme::Quic => Box::new(RawQuic::connect(&raw_quic).await),
            Scheme::Udp => Box::new(RawUdp::connect().await),
            other => unreachable!("no raw baseline for {other:?}"),
        }
    })
}

struct Size {
    scheme: Scheme,
    label: &'static str,
    len: usize,
    /// Messages per timed round of the printed comparison.
    messages: usize,
}

const SIZES: [Size; 7] = [
    Size {
        scheme: Scheme::Tls,
        label: "64 B",
        len: 64,
        messages: 40_000,
    },
    Size {
        scheme: Scheme::Tls,
        label: "1 KiB",
        len: 1024,
        messages: 20_000,
    },
    Size {
        scheme: Scheme::Tls,
        label: "16 KiB",
        len: 16 * 1024,
        messages: 4_000,
    },
    Size {
        scheme: Scheme::Quic,
        label: "64 B",
        len: 64,
        messages: 20_000,
    },
    Size {
        scheme: Scheme::Quic,
        label: "1 KiB",
        len: 1024,
        messages: 10_000,
    },
    Size {
        scheme: Scheme::Udp,
        label: "64 B",
        len: 64,
        messages: 20_000,
    },
    Size {
        scheme: Scheme::Udp,
        label: "1 KiB",
        len: 1024,
        messages: 10_000,
    },
];

fn bench_throughput(rt: &Runtime, full: bool) {
    println!(
        "\n== 4. echo throughput, supervised vs raw (medians of alternating rounds, measured) =="
    );
    let kit = Arc::new(Kit::new());
    // The supervised TLS connector negotiates TLS 1.3 (safe defaults), QUIC
    // only speaks it.
    let raw_tls = Arc::new(RawTls::new(&kit, false, b"tether"));
    let raw_quic = Arc::new(RawTls::new(&kit, true, b"tether"));
    let mut c = full.then(|| Criterion::default().configure_from_args());
    for size in &SIZES {
        let name = format!("echo-{}", size.scheme.as_str());
        let (kit, raw_tls, raw_quic, scheme) =
            (kit.clone(), raw_tls.clone(), raw_quic.clone(), size.scheme);
        let connect = move |supervised| {
            pair(
                kit.clone(),
                raw_tls.clone(),
                raw_quic.clone(),
                scheme,
                supervised,
            )
        };
        let (messages, rounds) = if full {
            (size.messages, 5)
        } else {
            (size.messages / 100, 1)
        };
        compare(
            rt, &name, size.label, size.len, messages, rounds, WINDOW, &connect,
        );
        if let Some(c) = c.as_mut() {
            criterion_group(
                c,
                rt,
                &name,
                size.label,
                size.len,
                size.messages / 10,
                Duration::from_secs(1),
                &connect,
            );
        }
    }
    if let Some(c) = c {
        c.final_summary();
    }
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let rt = runtime();
    let started = Instant::now();
    if full {
        bench_detection(&rt, 20);
        bench_restarts(&rt, 10, 5);
        bench_tls_resumption(&rt, 50);
    } else {
        bench_detection(&rt, 1);
        bench_restarts(&rt, 1, 1);
        bench_tls_resumption(&rt, 2);
    }
    bench_throughput(&rt, full);
    println!(
        "\ntransports bench: {:.1} s in all",
        started.elapsed().as_secs_f64()
    );
}

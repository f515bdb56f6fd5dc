//! One client + server pair for any of the four schemes (tcp, tls, quic,
//! udp), through a fault proxy (the TCP proxy for tcp/tls, the UDP proxy for
//! quic/udp), built from the same address syntax and `TransportOptions` the
//! applications use. Shared by the cross-transport tests and the transport
//! benchmarks (`benches/transports.rs` includes this file by path).
//!
//! The crate that includes this module must also include
//! `tests/tls_support` as `tls_support` (test certificates) and
//! `tests/quic_support` as `quic_support` (the echo server).
#![allow(dead_code)]

use crate::quic_support::EchoServer;
use crate::tls_support::Pki;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tether_core::backoff::BackoffConfig;
use tether_core::liveness::{HeartbeatConfig, Policy};
use tether_core::supervisor::Lifecycle;
use tether_core::ConfigError;
use tether_transports::driver::{Client, ClientConfig, ClientEvent, Server, ServerConfig};
use tether_transports::endpoint::{self, Endpoint, TransportOptions};
use tether_transports::fault::{Fault, FaultProxy, UdpFaultProxy};
use tether_transports::quic::{QuicClientOptions, QuicLiveness, QuicServerOptions};
use tether_transports::udp::UdpOptions;
use tether_transports::Scheme;

/// Every scheme, in a fixed order.
pub const SCHEMES: [Scheme; 4] = [Scheme::Tcp, Scheme::Tls, Scheme::Quic, Scheme::Udp];

const PSK: &[u8; 32] = b"tether all-transports test psk!!";

/// How one pair is set up.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Heartbeat of the client and the server; QUIC's keep-alive and idle
    /// timeout are derived from it.
    pub heartbeat: HeartbeatConfig,
    /// UDP only: retransmission interval of an unanswered ping.
    pub udp_probe: Duration,
    /// QUIC only: keep the stateless-reset key in this file (`None`: a
    /// random key per server start).
    pub quic_reset_key: Option<PathBuf>,
    /// UDP only: the server's static key (`None`: derived from the PSK, the
    /// same after every restart).
    pub udp_static_key: Option<[u8; 32]>,
}

impl Setup {
    /// `heartbeat` on both sides; UDP probes every 50 ms.
    pub fn new(heartbeat: HeartbeatConfig) -> Self {
        Self {
            heartbeat,
            udp_probe: Duration::from_millis(50),
            quic_reset_key: None,
            udp_static_key: None,
        }
    }

    /// Fast reconnects (20 ms, at most 200 ms), the heartbeat of this setup.
    pub fn client_config(&self) -> ClientConfig {
        ClientConfig {
            heartbeat: self.heartbeat,
            backoff: BackoffConfig::default()
                .with_initial(Duration::from_millis(20))
                .with_max_delay(Duration::from_millis(200))
                .with_healthy_after(Duration::from_millis(200))
                .with_seed(7),
            max_pending: 256,
            ..ClientConfig::default()
        }
    }

    /// The server pings silent clients with the same heartbeat.
    pub fn server_config(&self) -> ServerConfig {
        ServerConfig {
            policy: Policy::Heartbeat(self.heartbeat),
            ..ServerConfig::default()
        }
    }
}

/// Test credentials for every scheme (certificates in a scratch directory,
/// a PSK), alive as long as this value.
pub struct Kit {
    pub pki: Pki,
}

impl Kit {
    pub fn new() -> Self {
        Self {
            pki: Pki::generate(),
        }
    }

    /// Options for both sides of `setup`.
    pub fn options(&self, setup: &Setup) -> TransportOptions {
        let liveness = QuicLiveness::from_heartbeat(&setup.heartbeat);
        let mut quic_server = QuicServerOptions::new(&self.pki.server_cert, &self.pki.server_key)
            .with_liveness(liveness);
        if let Some(path) = &setup.quic_reset_key {
            quic_server = quic_server.with_reset_key_file(path);
        }
        let mut udp = UdpOptions {
            probe_interval: setup.udp_probe,
            handshake_timeout: Some(Duration::from_secs(2)),
            ..UdpOptions::with_psk(PSK.to_vec())
        };
        if let Some(key) = setup.udp_static_key {
            udp.static_key = tether_transports::udp::StaticKey::Bytes(key);
        }
        TransportOptions {
            tls_client: self.pki.client_options(),
            tls_server: self.pki.server_options(),
            quic_client: QuicClientOptions::default()
                .with_ca_file(&self.pki.ca)
                .with_server_name("localhost")
                .with_bind(loopback())
                .with_liveness(liveness),
            quic_server,
            udp,
            ..TransportOptions::default()
        }
    }

    /// A supervised echo server for `scheme` on a kernel-chosen loopback
    /// port.
    pub async fn server(&self, scheme: Scheme, setup: &Setup) -> EchoServer {
        let at = Endpoint {
            scheme,
            host: "127.0.0.1".into(),
            port: 0,
        };
        let acceptor = endpoint::acceptor(&at, &self.options(setup))
            .await
            .unwrap_or_else(|e| panic!("{} acceptor: {e}", scheme.as_str()));
        EchoServer::spawn(Server::spawn(acceptor, setup.server_config()).expect("server config"))
    }

    /// A supervised client of `scheme` dialing `to` (not yet connected).
    pub fn client(
        &self,
        scheme: Scheme,
        to: SocketAddr,
        setup: &Setup,
    ) -> Result<Client, ConfigError> {
        let at = Endpoint {
            scheme,
            host: to.ip().to_string(),
            port: to.port(),
        };
        let connector = endpoint::connector(&at, &self.options(setup))
            .unwrap_or_else(|e| panic!("{} connector: {e}", scheme.as_str()));
        Client::spawn(connector, setup.client_config())
    }
}

impl Default for Kit {
    fn default() -> Self {
        Self::new()
    }
}

pub fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// The fault proxy that fits a scheme: TCP for tcp/tls, UDP for quic/udp.
pub enum Proxy {
    Tcp(FaultProxy),
    Udp(UdpFaultProxy),
}

impl Proxy {
    pub async fn start(scheme: Scheme, upstream: SocketAddr) -> Self {
        match scheme {
            Scheme::Tcp | Scheme::Tls => Self::Tcp(FaultProxy::start(upstream).await.unwrap()),
            Scheme::Quic | Scheme::Udp => Self::Udp(UdpFaultProxy::start(upstream).await.unwrap()),
        }
    }

    pub fn local_addr(&self) -> SocketAddr {
        match self {
            Self::Tcp(p) => p.local_addr(),
            Self::Udp(p) => p.local_addr(),
        }
    }

    pub fn set_fault(&self, fault: Fault) {
        match self {
            Self::Tcp(p) => p.set_fault(fault),
            Self::Udp(p) => p.set_fault(fault),
        }
    }

    /// Datagram loss in percent; the TCP proxy offers none (a byte stream
    /// turns loss into delay), so it must be 0 there.
    pub fn set_loss(&self, percent: f64) {
        match self {
            Self::Tcp(_) => assert_eq!(percent, 0.0, "the TCP proxy has no loss"),
            Self::Udp(p) => p.set_loss(percent).unwrap(),
        }
    }

    pub fn set_seed(&self, seed: u64) {
        match self {
            Self::Tcp(p) => p.set_seed(seed),
            Self::Udp(p) => p.set_seed(seed),
        }
    }

    /// What the proxy forwarded and dropped, for logs.
    pub fn summary(&self) -> String {
        match self {
            Self::Tcp(p) => {
                let s = p.stats();
                format!(
                    "{} B up, {} B down, {} B dropped",
                    s.bytes_upstream, s.bytes_downstream, s.bytes_dropped
                )
            }
            Self::Udp(p) => {
                let s = p.stats();
                format!(
                    "{} datagrams up, {} down, {} dropped",
                    s.datagrams_upstream, s.datagrams_downstream, s.datagrams_dropped
                )
            }
        }
    }

    /// The UDP proxy (panics for tcp/tls).
    pub fn udp(&self) -> &UdpFaultProxy {
        match self {
            Self::Udp(p) => p,
            Self::Tcp(_) => panic!("not a UDP proxy"),
        }
    }
}

/// A connected client -> proxy -> server chain.
pub struct Chain {
    pub scheme: Scheme,
    pub setup: Setup,
    pub server: EchoServer,
    pub proxy: Proxy,
    pub client: Client,
    /// Every lifecycle step the client reported so far.
    pub seen: Vec<Lifecycle>,
}

impl Chain {
    /// Starts server, proxy and client and waits until the client is
    /// connected.
    pub async fn start(kit: &Kit, scheme: Scheme, setup: Setup) -> Self {
        let server = kit.server(scheme, &setup).await;
        let proxy = Proxy::start(scheme, server.addr).await;
        let client = kit
            .client(scheme, proxy.local_addr(), &setup)
            .expect("client config");
        let mut chain = Self {
            scheme,
            setup,
            server,
            proxy,
            client,
            seen: Vec::new(),
        };
        chain
            .wait(Duration::from_secs(10), |e| {
                matches!(e, Lifecycle::Connected { .. })
            })
            .await;
        chain
    }

    /// Waits for the client's next lifecycle step matching `pred` (keeping
    /// every step seen; messages are skipped). `None` after `limit`.
    pub async fn try_wait(
        &mut self,
        limit: Duration,
        pred: impl Fn(&Lifecycle) -> bool,
    ) -> Option<Lifecycle> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(deadline, self.client.next_event()).await {
                Err(_) => return None,
                Ok(None) => panic!("client event stream ended; seen {:?}", self.seen),
                Ok(Some(ClientEvent::Message(_))) => {}
                Ok(Some(ClientEvent::Failed(cause))) => panic!("the client failed: {cause}"),
                Ok(Some(ClientEvent::Lifecycle(step))) => {
                    self.seen.push(step.clone());
                    if pred(&step) {
                        return Some(step);
                    }
                }
            }
        }
    }

    /// [`Chain::try_wait`] that panics after `limit`.
    pub async fn wait(&mut self, limit: Duration, pred: impl Fn(&Lifecycle) -> bool) -> Lifecycle {
        match self.try_wait(limit, pred).await {
            Some(step) => step,
            None => panic!(
                "{}: timed out after {limit:?}; events so far {:?}",
                self.scheme.as_str(),
                self.seen
            ),
        }
    }

    /// Sends `msg` and waits for its echo (lifecycle steps are kept).
    pub async fn echo(&mut self, msg: &[u8], limit: Duration) {
        let msg = bytes::Bytes::copy_from_slice(msg);
        self.client.handle().send(msg.clone()).await.unwrap();
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(deadline, self.client.next_event()).await {
                Ok(Some(ClientEvent::Message(m))) if m == msg => return,
                Ok(Some(ClientEvent::Lifecycle(step))) => self.seen.push(step),
                Ok(Some(_)) => {}
                other => panic!(
                    "{}: no echo of {msg:?}: {other:?}; events {:?}",
                    self.scheme.as_str(),
                    self.seen
                ),
            }
        }
    }

    /// Puts a black hole in the path and returns how long after it the
    /// client reported the loss, with the step itself.
    pub async fn black_hole_detection(&mut self, limit: Duration) -> (Duration, Lifecycle) {
        let start = std::time::Instant::now();
        self.proxy.set_fault(Fault::BlackHole);
        let lost = self
            .wait(limit, |e| matches!(e, Lifecycle::Disconnected { .. }))
            .await;
        (start.elapsed(), lost)
    }

    /// Lifts any fault, waits for the client to be connected again and
    /// proves it with an echo.
    pub async fn heal(&mut self, limit: Duration) {
        self.proxy.set_fault(Fault::Pass);
        self.wait(limit, |e| matches!(e, Lifecycle::Connected { .. }))
            .await;
        self.echo(b"healed", limit).await;
    }
}

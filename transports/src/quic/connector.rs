//! Dialing QUIC: one client endpoint (one UDP socket) reused for every
//! reconnect, so TLS session tickets carry over and 0-RTT can be used.

use super::config::{client_config, QuicConfigError};
use super::link::classify;
use super::{QuicClientOptions, QuicLink};
use crate::link::BoxLink;
use crate::Reconnect;
use async_trait::async_trait;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tether_core::{ConnectError, DisconnectReason};

/// A snapshot of a connector's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuicStats {
    /// Connections established with a full handshake (including resumed
    /// sessions whose 0-RTT offer the server declined).
    pub full_handshakes: u64,
    /// Connections established with 0-RTT accepted by the server.
    pub zero_rtt_handshakes: u64,
    /// 0-RTT offers the server declined (also counted as full handshakes).
    pub zero_rtt_rejected: u64,
    /// Handshakes that failed.
    pub failed_handshakes: u64,
    /// `Data` frames dropped because they did not fit in one datagram.
    pub oversized_dropped: u64,
}

#[derive(Debug, Default)]
struct Counters {
    full: AtomicU64,
    zero_rtt: AtomicU64,
    rejected: AtomicU64,
    failed: AtomicU64,
    oversized: Arc<AtomicU64>,
}

struct Inner {
    host: String,
    port: u16,
    server_name: String,
    config: quinn::ClientConfig,
    zero_rtt: bool,
    bind: Option<SocketAddr>,
    endpoint: Mutex<Option<quinn::Endpoint>>,
    counters: Counters,
}

/// Dials one QUIC server; cheap to clone (clones share the endpoint and
/// the counters), so keep a clone to read [`QuicConnector::stats`] or call
/// [`QuicConnector::rebind`] after handing one to the client.
#[derive(Clone)]
pub struct QuicConnector {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for QuicConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuicConnector")
            .field("peer", &self.peer())
            .field("server_name", &self.inner.server_name)
            .finish_non_exhaustive()
    }
}

impl QuicConnector {
    /// A connector to `host:port`. Reads the CA file now, so a wrong path
    /// fails here. The UDP socket is bound on the first connection attempt
    /// (inside the tokio runtime).
    pub fn new(
        host: impl Into<String>,
        port: u16,
        options: &QuicClientOptions,
    ) -> Result<Self, QuicConfigError> {
        let host = host.into();
        let config = client_config(options)?;
        let server_name = options.server_name.clone().unwrap_or_else(|| host.clone());
        Ok(Self {
            inner: Arc::new(Inner {
                host,
                port,
                server_name,
                config,
                zero_rtt: options.zero_rtt,
                bind: options.bind,
                endpoint: Mutex::new(None),
                counters: Counters::default(),
            }),
        })
    }

    /// The current counts.
    pub fn stats(&self) -> QuicStats {
        let c = &self.inner.counters;
        QuicStats {
            full_handshakes: c.full.load(Ordering::Relaxed),
            zero_rtt_handshakes: c.zero_rtt.load(Ordering::Relaxed),
            zero_rtt_rejected: c.rejected.load(Ordering::Relaxed),
            failed_handshakes: c.failed.load(Ordering::Relaxed),
            oversized_dropped: c.oversized.load(Ordering::Relaxed),
        }
    }

    /// The local address of the client socket, once bound.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.endpoint_slot()
            .as_ref()
            .and_then(|e| e.local_addr().ok())
    }

    /// Moves the client to a new UDP socket (a new local address, as after
    /// a network change). Live connections migrate: the server sees the new
    /// address with the next packet and validates it; the connection and
    /// its id survive. Must be called inside the tokio runtime.
    pub fn rebind(&self, socket: std::net::UdpSocket) -> io::Result<()> {
        socket.set_nonblocking(true)?;
        let mut slot = self.endpoint_slot();
        match slot.as_ref() {
            Some(endpoint) => endpoint.rebind(socket),
            None => {
                *slot = Some(self.make_endpoint(socket)?);
                Ok(())
            }
        }
    }

    fn endpoint_slot(&self) -> std::sync::MutexGuard<'_, Option<quinn::Endpoint>> {
        self.inner
            .endpoint
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn make_endpoint(&self, socket: std::net::UdpSocket) -> io::Result<quinn::Endpoint> {
        let runtime = quinn::default_runtime()
            .ok_or_else(|| io::Error::other("no tokio runtime for the QUIC endpoint"))?;
        let mut endpoint =
            quinn::Endpoint::new(quinn::EndpointConfig::default(), None, socket, runtime)?;
        endpoint.set_default_client_config(self.inner.config.clone());
        Ok(endpoint)
    }

    /// The endpoint, bound on first use for the family of `remote`.
    fn endpoint_for(&self, remote: SocketAddr) -> io::Result<quinn::Endpoint> {
        let mut slot = self.endpoint_slot();
        if let Some(endpoint) = slot.as_ref() {
            return Ok(endpoint.clone());
        }
        let bind = self.inner.bind.unwrap_or(match remote {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        });
        let endpoint = self.make_endpoint(std::net::UdpSocket::bind(bind)?)?;
        *slot = Some(endpoint.clone());
        Ok(endpoint)
    }

    async fn resolve(&self) -> Result<SocketAddr, ConnectError> {
        let unreachable = |detail: String| ConnectError::new(DisconnectReason::Unreachable, detail);
        let mut addrs = tokio::net::lookup_host((self.inner.host.as_str(), self.inner.port))
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        addrs
            .next()
            .ok_or_else(|| unreachable(format!("no address for {}", self.inner.host)))
    }

    async fn handshake(&self, connecting: quinn::Connecting) -> Result<QuicLink, ConnectError> {
        let c = &self.inner.counters;
        let conn = if self.inner.zero_rtt {
            match connecting.into_0rtt() {
                Ok((conn, accepted)) => {
                    // Report Connected only once the server proved it is
                    // there: datagrams sent in a declined 0-RTT flight
                    // would be lost silently.
                    let accepted = accepted.await;
                    if let Some(e) = conn.close_reason() {
                        return Err(connect_error(&e));
                    }
                    if accepted {
                        c.zero_rtt.fetch_add(1, Ordering::Relaxed);
                    } else {
                        c.rejected.fetch_add(1, Ordering::Relaxed);
                        c.full.fetch_add(1, Ordering::Relaxed);
                    }
                    conn
                }
                Err(connecting) => {
                    let conn = connecting.await.map_err(|e| connect_error(&e))?;
                    c.full.fetch_add(1, Ordering::Relaxed);
                    conn
                }
            }
        } else {
            let conn = connecting.await.map_err(|e| connect_error(&e))?;
            c.full.fetch_add(1, Ordering::Relaxed);
            conn
        };
        if conn.max_datagram_size().is_none() {
            conn.close(0u32.into(), b"datagrams required");
            return Err(ConnectError::new(
                DisconnectReason::ProtocolError,
                "the server does not accept QUIC datagrams (RFC 9221)",
            ));
        }
        Ok(QuicLink::new(conn, c.oversized.clone()))
    }
}

/// The reason for a QUIC transport error code: CRYPTO_ERROR codes carry a
/// TLS alert (0x100 + alert).
fn crypto_reason(code: quinn::TransportErrorCode, text: &[u8]) -> DisconnectReason {
    let code = u64::from(code);
    match u8::try_from(code.wrapping_sub(0x100)) {
        Ok(alert) if (0x100..0x200).contains(&code) => {
            crate::tls_failure::from_quic_crypto(alert, &String::from_utf8_lossy(text))
        }
        _ => DisconnectReason::ProtocolError,
    }
}

/// Classifies a failed handshake.
fn connect_error(err: &quinn::ConnectionError) -> ConnectError {
    use quinn::ConnectionError as E;
    let reason = match err {
        E::TimedOut => DisconnectReason::ConnectTimeout,
        // A server that does not know us, or closes at once: refused.
        E::Reset | E::ApplicationClosed(_) => DisconnectReason::ConnectRefused,
        E::ConnectionClosed(close)
            if close.error_code == quinn::TransportErrorCode::CONNECTION_REFUSED =>
        {
            DisconnectReason::ConnectRefused
        }
        // TLS alerts: a refused certificate, no common ALPN, ...
        E::ConnectionClosed(close) => crypto_reason(close.error_code, &close.reason),
        E::TransportError(e) => crypto_reason(e.code, e.reason.as_bytes()),
        E::VersionMismatch => DisconnectReason::ProtocolError,
        other => classify(other),
    };
    ConnectError::new(reason, err.to_string())
}

#[async_trait]
impl Reconnect for QuicConnector {
    type Conn = BoxLink;

    /// Dials and completes the handshake. A handshake that times out
    /// (quinn's idle timeout, which follows the heartbeat and can be much
    /// shorter than the connect timeout) is started again: the attempt
    /// lasts the driver's connect timeout, as on every other transport,
    /// and the driver's deadline ends it.
    async fn connect(&self) -> Result<BoxLink, ConnectError> {
        loop {
            match self.connect_once().await {
                Err(e) if e.reason == DisconnectReason::ConnectTimeout => {
                    tracing::debug!(peer = %self.peer(), detail = %e.detail, "QUIC handshake timed out; trying again");
                }
                other => return other,
            }
        }
    }

    fn peer(&self) -> String {
        if self.inner.host.contains(':') {
            format!("quic://[{}]:{}", self.inner.host, self.inner.port)
        } else {
            format!("quic://{}:{}", self.inner.host, self.inner.port)
        }
    }
}

impl QuicConnector {
    /// One dial and handshake.
    async fn connect_once(&self) -> Result<BoxLink, ConnectError> {
        let remote = self.resolve().await?;
        let endpoint = self
            .endpoint_for(remote)
            .map_err(|e| ConnectError::new(DisconnectReason::Io, e.to_string()))?;
        let connecting = endpoint
            .connect(remote, &self.inner.server_name)
            .map_err(|e| {
                let reason = match e {
                    quinn::ConnectError::InvalidServerName(_)
                    | quinn::ConnectError::InvalidRemoteAddress(_) => {
                        DisconnectReason::ProtocolError
                    }
                    _ => DisconnectReason::Io,
                };
                ConnectError::new(reason, e.to_string())
            })?;
        match self.handshake(connecting).await {
            Ok(link) => Ok(Box::new(link)),
            Err(e) => {
                self.inner.counters.failed.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }
}

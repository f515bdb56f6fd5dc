//! Dialing TLS: TCP with tether's socket options, then the rustls client
//! handshake, resuming the previous session when the server allows it.

use super::config::{client_config, server_name, TlsConfigError};
use super::{TlsClientOptions, TlsCounters, TlsIo, TlsLink, TlsStats};
use crate::link::BoxLink;
use crate::tcp::{TcpConnector, TcpOptions};
use crate::Reconnect;
use async_trait::async_trait;
use rustls::pki_types::ServerName;
use std::io;
use std::sync::Arc;
use tether_core::codec::DEFAULT_MAX_FRAME;
use tether_core::{ConnectError, DisconnectReason};

/// Dials one TLS peer. Clones share the rustls configuration (and so the
/// session cache: a reconnect resumes the last session) and the counters.
#[derive(Clone)]
pub struct TlsConnector {
    tcp: TcpConnector,
    tls: tokio_rustls::TlsConnector,
    server_name: ServerName<'static>,
    peer: String,
    max_frame: usize,
    counters: TlsCounters,
}

impl std::fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConnector")
            .field("peer", &self.peer)
            .field("server_name", &self.server_name)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl TlsConnector {
    /// A connector to `host:port`. Reads the CA file (or the platform roots)
    /// and the client certificate now, so bad paths fail here.
    pub fn new(
        host: impl Into<String>,
        port: u16,
        tcp: TcpOptions,
        options: &TlsClientOptions,
    ) -> Result<Self, TlsConfigError> {
        let host = host.into();
        let server_name = server_name(options, &host)?;
        let config = Arc::new(client_config(options)?);
        let peer = if host.contains(':') {
            format!("tls://[{host}]:{port}")
        } else {
            format!("tls://{host}:{port}")
        };
        Ok(Self {
            tcp: TcpConnector::new(host, port, tcp),
            tls: tokio_rustls::TlsConnector::from(config),
            server_name,
            peer,
            max_frame: DEFAULT_MAX_FRAME,
            counters: TlsCounters::default(),
        })
    }

    /// Sets the largest accepted frame payload, in bytes.
    pub fn with_max_frame(mut self, max_frame: usize) -> Self {
        self.max_frame = max_frame;
        self
    }

    /// Handshake counts so far (full, resumed, failed).
    pub fn stats(&self) -> TlsStats {
        self.counters.snapshot()
    }

    /// The live counters behind [`stats`](Self::stats), to keep after the
    /// connector was moved into a [`Client`](crate::driver::Client).
    pub fn counters(&self) -> TlsCounters {
        self.counters.clone()
    }

    /// Dials and completes the TLS handshake.
    pub async fn connect_link(&self) -> Result<TlsLink, ConnectError> {
        let stream = self.tcp.connect_stream().await?;
        let tls = match self.tls.connect(self.server_name.clone(), stream).await {
            Ok(tls) => tls,
            Err(e) => {
                self.counters.record_failure();
                return Err(handshake_error(&self.peer, &e));
            }
        };
        self.counters.record(tls.get_ref().1.handshake_kind());
        let io = TlsIo::new(tokio_rustls::TlsStream::Client(tls));
        Ok(TlsLink::new(io, self.max_frame, self.peer.clone()))
    }
}

/// A failed handshake: a refused certificate (ours or theirs) is
/// `TlsCertificate`, one for another name `TlsNameMismatch`, any other
/// protocol failure `ProtocolError`; a server that hangs up
/// during the handshake refused us.
fn handshake_error(peer: &str, err: &io::Error) -> ConnectError {
    let reason = match err.kind() {
        io::ErrorKind::InvalidData => {
            crate::tls_failure::from_io(err).unwrap_or(DisconnectReason::ProtocolError)
        }
        io::ErrorKind::UnexpectedEof => DisconnectReason::ConnectRefused,
        _ => DisconnectReason::from_connect_io(err),
    };
    ConnectError::new(reason, format!("TLS handshake with {peer} failed: {err}"))
}

#[async_trait]
impl Reconnect for TlsConnector {
    type Conn = BoxLink;

    /// Note for TLS 1.3 with client certificates: the client finishes its
    /// side of the handshake before the server has checked the client's
    /// certificate, so a rejected (or missing) client certificate shows up
    /// as a connection that ends at once with `ProtocolError` (the server's
    /// alert) rather than as a failed attempt.
    async fn connect(&self) -> Result<BoxLink, ConnectError> {
        Ok(Box::new(self.connect_link().await?))
    }

    fn peer(&self) -> String {
        self.peer.clone()
    }

    fn max_message(&self) -> Option<usize> {
        Some(self.max_frame)
    }
}

//! Accepting TLS: TCP accept with tether's socket options, then the rustls
//! server handshake in its own task under a timeout, so that a client that
//! connects and says nothing never holds up the others.

use super::config::{server_config, TlsConfigError};
use super::{TlsCounters, TlsIo, TlsLink, TlsServerOptions, TlsStats};
use crate::driver::Acceptor;
use crate::link::BoxLink;
use crate::tcp::{TcpAcceptor, TcpOptions};
use async_trait::async_trait;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tether_core::codec::DEFAULT_MAX_FRAME;
use tokio::net::TcpStream;
use tokio::task::JoinSet;

/// Most handshakes in progress at once; past it, accepting pauses until
/// one finishes (the kernel's backlog holds the rest).
const MAX_HANDSHAKES: usize = 256;

type Handshake = Result<(TlsLink, SocketAddr), (SocketAddr, io::Error)>;

/// A bound TCP listener that yields TLS links.
pub struct TlsAcceptor {
    tcp: TcpAcceptor,
    tls: tokio_rustls::TlsAcceptor,
    handshake_timeout: Duration,
    max_frame: usize,
    handshakes: JoinSet<Handshake>,
    counters: TlsCounters,
}

impl std::fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsAcceptor")
            .field("local_addr", &Acceptor::local_addr(&self.tcp).ok())
            .field("handshakes_in_progress", &self.handshakes.len())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl TlsAcceptor {
    /// Reads the certificate, key and client CA files and binds `addr`
    /// (port 0 picks a free port). Configuration errors are
    /// `InvalidInput` (or the file's own I/O error kind) naming the option
    /// or path.
    pub async fn bind(
        addr: SocketAddr,
        tcp: TcpOptions,
        options: &TlsServerOptions,
    ) -> io::Result<Self> {
        let config = server_config(options).map_err(io::Error::from)?;
        let tcp = TcpAcceptor::bind(addr, tcp).await?;
        Ok(Self {
            tcp,
            tls: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            handshake_timeout: options.handshake_timeout,
            max_frame: DEFAULT_MAX_FRAME,
            handshakes: JoinSet::new(),
            counters: TlsCounters::default(),
        })
    }

    /// Checks `options` without binding (for early, clear errors).
    pub fn check_options(options: &TlsServerOptions) -> Result<(), TlsConfigError> {
        server_config(options).map(drop)
    }

    /// Sets the largest accepted frame payload, in bytes.
    pub fn with_max_frame(mut self, max_frame: usize) -> Self {
        self.max_frame = max_frame;
        self
    }

    /// Handshake counts so far (full, resumed, failed or timed out).
    pub fn stats(&self) -> TlsStats {
        self.counters.snapshot()
    }

    /// The live counters, to keep after the acceptor was moved into a
    /// [`Server`](crate::driver::Server).
    pub fn counters(&self) -> TlsCounters {
        self.counters.clone()
    }

    fn start_handshake(&mut self, stream: TcpStream, peer: SocketAddr) {
        let tls = self.tls.clone();
        let timeout = self.handshake_timeout;
        let max_frame = self.max_frame;
        let counters = self.counters.clone();
        self.handshakes.spawn(async move {
            let tls = match tokio::time::timeout(timeout, tls.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    counters.record_failure();
                    return Err((peer, e));
                }
                Err(_) => {
                    counters.record_failure();
                    let msg = format!("no TLS handshake within {timeout:?}");
                    return Err((peer, io::Error::new(io::ErrorKind::TimedOut, msg)));
                }
            };
            counters.record(tls.get_ref().1.handshake_kind());
            let io = TlsIo::new(tokio_rustls::TlsStream::Server(tls));
            Ok((TlsLink::new(io, max_frame, format!("tls://{peer}")), peer))
        });
    }
}

#[async_trait]
impl Acceptor for TlsAcceptor {
    /// Returns the next connection whose handshake completed. Cancel-safe:
    /// handshakes in progress continue in their tasks and are returned by
    /// a later call. Failed handshakes are logged and skipped.
    async fn accept(&mut self) -> io::Result<(BoxLink, SocketAddr)> {
        loop {
            let room = self.handshakes.len() < MAX_HANDSHAKES;
            tokio::select! {
                accepted = self.tcp.accept_stream(), if room => {
                    let (stream, peer) = accepted?;
                    self.start_handshake(stream, peer);
                }
                Some(done) = self.handshakes.join_next() => match done {
                    Ok(Ok((link, peer))) => return Ok((Box::new(link), peer)),
                    Ok(Err((peer, e))) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    }
                    Err(e) => tracing::warn!(error = %e, "TLS handshake task failed"),
                },
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Acceptor::local_addr(&self.tcp)
    }

    fn max_message(&self) -> Option<usize> {
        Some(self.max_frame)
    }
}

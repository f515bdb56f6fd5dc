//! Accepting QUIC connections: handshakes run concurrently in the
//! background, so a slow or silent client never delays the others.

use super::config::server_config;
use super::reset_key::endpoint_config;
use super::{QuicLink, QuicServerOptions};
use crate::driver::Acceptor;
use crate::link::BoxLink;
use async_trait::async_trait;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Handshaken connections waiting for `accept`.
const BACKLOG: usize = 128;

/// A bound QUIC server endpoint that yields datagram links.
#[derive(Debug)]
pub struct QuicAcceptor {
    endpoint: quinn::Endpoint,
    ready: mpsc::Receiver<(QuicLink, SocketAddr)>,
    task: JoinHandle<()>,
}

impl QuicAcceptor {
    /// Binds `addr` (port 0 picks a free port). Reads the certificate, key
    /// and reset-key files now (creating the reset key on first start), so
    /// every configuration problem is reported here with the file's path.
    /// Must be called inside the tokio runtime.
    pub async fn bind(addr: SocketAddr, options: &QuicServerOptions) -> io::Result<Self> {
        let server = server_config(options)?;
        let endpoint_cfg = endpoint_config(&options.reset_key)?;
        let socket = std::net::UdpSocket::bind(addr)?;
        let runtime = quinn::default_runtime()
            .ok_or_else(|| io::Error::other("no tokio runtime for the QUIC endpoint"))?;
        let endpoint = quinn::Endpoint::new(endpoint_cfg, Some(server), socket, runtime)?;
        let (tx, ready) = mpsc::channel(BACKLOG);
        let task = tokio::spawn(accept_loop(endpoint.clone(), tx, options.handshake_timeout));
        Ok(Self {
            endpoint,
            ready,
            task,
        })
    }

    /// The quinn endpoint (statistics, or closing every connection).
    pub fn endpoint(&self) -> &quinn::Endpoint {
        &self.endpoint
    }
}

impl Drop for QuicAcceptor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(
    endpoint: quinn::Endpoint,
    ready: mpsc::Sender<(QuicLink, SocketAddr)>,
    handshake_timeout: Duration,
) {
    while let Some(incoming) = endpoint.accept().await {
        let ready = ready.clone();
        tokio::spawn(async move {
            let peer = incoming.remote_address();
            let handshake = async {
                let conn = incoming.accept()?.await?;
                Ok::<_, quinn::ConnectionError>(conn)
            };
            let conn = match tokio::time::timeout(handshake_timeout, handshake).await {
                Ok(Ok(conn)) => conn,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "QUIC handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "QUIC handshake timed out");
                    return;
                }
            };
            if conn.max_datagram_size().is_none() {
                tracing::debug!(%peer, "client does not accept QUIC datagrams; closing");
                conn.close(0u32.into(), b"datagrams required");
                return;
            }
            let link = QuicLink::new(conn, Arc::new(AtomicU64::new(0)));
            if let Err(mpsc::error::SendError((mut link, _))) = ready.send((link, peer)).await {
                crate::link::Link::close(&mut link).await;
            }
        });
    }
}

#[async_trait]
impl Acceptor for QuicAcceptor {
    async fn accept(&mut self) -> io::Result<(BoxLink, SocketAddr)> {
        // Cancel-safe: a connection stays in the channel until received.
        match self.ready.recv().await {
            Some((link, peer)) => Ok((Box::new(link), peer)),
            // NotConnected: the acceptor is finished (see `Acceptor::accept`).
            None => Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the QUIC endpoint stopped accepting",
            )),
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }
}

//! Accepting TCP connections with tether's socket options.

use super::{TcpLink, TcpOptions};
use crate::driver::Acceptor;
use crate::link::BoxLink;
use async_trait::async_trait;
use socket2::SockRef;
use std::io;
use std::net::SocketAddr;
use tether_core::codec::DEFAULT_MAX_FRAME;
use tokio::net::{TcpListener, TcpStream};

/// A bound TCP listener that yields framed links.
#[derive(Debug)]
pub struct TcpAcceptor {
    listener: TcpListener,
    options: TcpOptions,
    max_frame: usize,
}

impl TcpAcceptor {
    /// Binds `addr` (port 0 picks a free port).
    pub async fn bind(addr: SocketAddr, options: TcpOptions) -> io::Result<Self> {
        options
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let listener = TcpListener::bind(addr).await?;
        Ok(Self {
            listener,
            options,
            max_frame: DEFAULT_MAX_FRAME,
        })
    }

    /// Accepts the next raw TCP stream with the options applied (for
    /// transports layered on TCP, such as TLS). Cancel-safe.
    pub async fn accept_stream(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (stream, peer) = self.listener.accept().await?;
        // A socket we cannot tune is still usable; kernel liveness is a
        // second line behind the heartbeat.
        if let Err(e) = self.options.apply(SockRef::from(&stream)) {
            tracing::warn!(%peer, error = %e, "could not apply TCP options");
        }
        Ok((stream, peer))
    }

    /// Sets the largest accepted frame payload, in bytes.
    pub fn with_max_frame(mut self, max_frame: usize) -> Self {
        self.max_frame = max_frame;
        self
    }
}

#[async_trait]
impl Acceptor for TcpAcceptor {
    async fn accept(&mut self) -> io::Result<(BoxLink, SocketAddr)> {
        let (stream, peer) = self.accept_stream().await?;
        let link = TcpLink::new(stream, self.max_frame, format!("tcp://{peer}"));
        Ok((Box::new(link), peer))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    fn max_message(&self) -> Option<usize> {
        Some(self.max_frame)
    }
}

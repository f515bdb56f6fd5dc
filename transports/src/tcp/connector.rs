//! Dialing TCP with tether's socket options.

use super::{TcpLink, TcpOptions};
use crate::link::BoxLink;
use crate::Reconnect;
use async_trait::async_trait;
use socket2::SockRef;
use std::net::SocketAddr;
use tether_core::codec::DEFAULT_MAX_FRAME;
use tether_core::{ConnectError, DisconnectReason};
use tokio::net::TcpStream;

/// Dials one TCP peer, resolving its name on every attempt (a restarted
/// server may come back at another address).
#[derive(Debug, Clone)]
pub struct TcpConnector {
    host: String,
    port: u16,
    options: TcpOptions,
    max_frame: usize,
}

impl TcpConnector {
    /// A connector to `host:port` with the given socket options.
    pub fn new(host: impl Into<String>, port: u16, options: TcpOptions) -> Self {
        Self {
            host: host.into(),
            port,
            options,
            max_frame: DEFAULT_MAX_FRAME,
        }
    }

    /// Sets the largest accepted frame payload, in bytes.
    pub fn with_max_frame(mut self, max_frame: usize) -> Self {
        self.max_frame = max_frame;
        self
    }

    /// Dials and returns the raw stream with options applied.
    pub async fn connect_stream(&self) -> Result<TcpStream, ConnectError> {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|e| ConnectError::new(DisconnectReason::Unreachable, e.to_string()))?
            .collect();
        let mut last = ConnectError::new(DisconnectReason::Unreachable, "no address found");
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(stream) => {
                    self.options
                        .apply(SockRef::from(&stream))
                        .map_err(|e| ConnectError::new(DisconnectReason::Io, e.to_string()))?;
                    return Ok(stream);
                }
                Err(e) => last = ConnectError::from_io(&e),
            }
        }
        Err(last)
    }
}

#[async_trait]
impl Reconnect for TcpConnector {
    type Conn = BoxLink;

    async fn connect(&self) -> Result<BoxLink, ConnectError> {
        let stream = self.connect_stream().await?;
        Ok(Box::new(TcpLink::new(stream, self.max_frame, self.peer())))
    }

    fn max_message(&self) -> Option<usize> {
        Some(self.max_frame)
    }

    fn peer(&self) -> String {
        if self.host.contains(':') {
            format!("tcp://[{}]:{}", self.host, self.port)
        } else {
            format!("tcp://{}:{}", self.host, self.port)
        }
    }
}

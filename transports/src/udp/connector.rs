//! Dialing: a connected UDP socket and the hello/welcome handshake.

use super::keys::{self, PskKeys};
use super::link::{SessionState, UdpLink, RECV_BUF};
use super::stats::UdpStats;
use super::wire::{self, Kind, NONCE_LEN, TOKEN_LEN};
use super::UdpOptions;
use crate::link::BoxLink;
use crate::Reconnect;
use async_trait::async_trait;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tether_core::{ConfigError, ConnectError, DisconnectReason};
use tokio::net::UdpSocket;
use tokio::time::Instant;

/// Longest wait between hello retransmissions.
const MAX_RETRY: Duration = Duration::from_secs(1);

/// Dials one UDP peer: each attempt opens a fresh connected socket and runs
/// the hello/welcome handshake, retransmitting the hello until a verified
/// welcome arrives or the handshake timeout passes.
#[derive(Debug, Clone)]
pub struct UdpConnector {
    host: String,
    port: u16,
    options: UdpOptions,
    keys: Arc<PskKeys>,
    stats: Arc<UdpStats>,
}

impl UdpConnector {
    /// A connector to `host:port`; fails if the options are invalid (e.g.
    /// no PSK).
    pub fn new(
        host: impl Into<String>,
        port: u16,
        options: UdpOptions,
    ) -> Result<Self, ConfigError> {
        options.validate()?;
        Ok(Self {
            host: host.into(),
            port,
            keys: Arc::new(PskKeys::new(&options.psk)),
            options,
            stats: Arc::default(),
        })
    }

    /// Counters of this connector and every link it made.
    pub fn stats(&self) -> Arc<UdpStats> {
        self.stats.clone()
    }

    /// Dials and returns the concrete link.
    ///
    /// Fails with `ConnectRefused` when the port answers with ICMP "port
    /// unreachable", with `ConnectTimeout` when no verified welcome arrives
    /// in time: a server drops hellos it cannot authenticate (it never
    /// answers unauthenticated packets), so a wrong PSK looks like silence,
    /// and the detail says both ("no authenticated answer ... (wrong key or
    /// no server)").
    pub async fn connect_link(&self) -> Result<UdpLink, ConnectError> {
        let addr = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|e| ConnectError::new(DisconnectReason::Unreachable, e.to_string()))?
            .next()
            .ok_or_else(|| ConnectError::new(DisconnectReason::Unreachable, "no address found"))?;
        let local: SocketAddr = if addr.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let io_err = |e: std::io::Error| ConnectError::from_io(&e);
        let socket = UdpSocket::bind(local).await.map_err(io_err)?;
        socket.connect(addr).await.map_err(io_err)?;

        let id = keys::random_session_id().map_err(io_err)?;
        let mut client_nonce = [0u8; NONCE_LEN];
        keys::random(&mut client_nonce).map_err(io_err)?;
        let mut hello = Vec::with_capacity(wire::HEADER_LEN + NONCE_LEN + wire::MAC_LEN);
        wire::put_header(&mut hello, Kind::Hello, id, 0);
        hello.extend_from_slice(&client_nonce);
        let tag = keys::mac(&self.keys.hello, &[&hello]);
        hello.extend_from_slice(&tag);

        // Without a handshake timeout of its own the attempt lasts until the
        // driver's connect timeout drops it.
        let deadline = self.options.handshake_timeout.map(|t| Instant::now() + t);
        let mut retry = self.options.handshake_retry;
        let mut buf = vec![0u8; RECV_BUF];
        loop {
            // A failed send (ICMP from an earlier attempt) is retried like a
            // lost datagram; a refused port shows up on `recv`.
            let _ = socket.send(&hello).await;
            let next = Instant::now() + retry;
            let next = deadline.map_or(next, |d| next.min(d));
            retry = (retry * 2).min(MAX_RETRY);
            loop {
                let received = tokio::select! {
                    r = socket.recv(&mut buf) => r,
                    () = tokio::time::sleep_until(next) => break,
                };
                match received {
                    Ok(n) => {
                        if let Some(session) = self.welcome(&buf[..n], id, &client_nonce) {
                            return Ok(UdpLink::client(
                                socket,
                                session,
                                self.options.max_payload,
                                self.options.probe_interval,
                                self.stats.clone(),
                                self.peer(),
                            ));
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                        return Err(ConnectError::new(
                            DisconnectReason::ConnectRefused,
                            format!("{addr}: port unreachable"),
                        ));
                    }
                    Err(e) => return Err(ConnectError::from_io(&e)),
                }
            }
            if let (Some(deadline), Some(waited)) = (deadline, self.options.handshake_timeout) {
                if Instant::now() >= deadline {
                    return Err(ConnectError::new(
                        DisconnectReason::ConnectTimeout,
                        no_answer(&addr.to_string(), waited),
                    ));
                }
            }
        }
    }

    /// Verifies a welcome for session `id`; anything else is dropped.
    fn welcome(&self, datagram: &[u8], id: u64, nonce: &[u8; NONCE_LEN]) -> Option<SessionState> {
        let packet = match wire::parse(datagram) {
            Some(p) if p.kind == Kind::Welcome && p.session == id => p,
            _ => {
                self.stats.add_malformed();
                return None;
            }
        };
        if packet.body.len() != NONCE_LEN + TOKEN_LEN {
            self.stats.add_malformed();
            return None;
        }
        let server_nonce: [u8; NONCE_LEN] = packet.body[..NONCE_LEN].try_into().ok()?;
        let session = self.keys.session(id, nonce, &server_nonce);
        if !keys::verify(&session.s2c, packet.signed, packet.mac) {
            self.stats.add_forged();
            return None;
        }
        let mut token = [0u8; TOKEN_LEN];
        for (i, t) in token.iter_mut().enumerate() {
            *t = packet.body[NONCE_LEN + i] ^ session.mask[i];
        }
        Some(SessionState::client(id, session, token))
    }
}

#[async_trait]
impl Reconnect for UdpConnector {
    type Conn = BoxLink;

    async fn connect(&self) -> Result<BoxLink, ConnectError> {
        Ok(Box::new(self.connect_link().await?))
    }

    fn max_message(&self) -> Option<usize> {
        Some(self.options.max_payload)
    }

    fn timeout_detail(&self, waited: Duration) -> String {
        no_answer(&self.peer(), waited)
    }

    fn peer(&self) -> String {
        if self.host.contains(':') {
            format!("udp://[{}]:{}", self.host, self.port)
        } else {
            format!("udp://{}:{}", self.host, self.port)
        }
    }
}

/// The detail of a UDP attempt that heard nothing it could authenticate.
fn no_answer(peer: &str, waited: Duration) -> String {
    format!(
        "no authenticated answer from {peer} within {} (wrong key or no server)",
        tether_core::cause::human(waited)
    )
}

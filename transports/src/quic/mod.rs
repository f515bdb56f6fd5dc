//! QUIC: tether frames as QUIC datagrams (RFC 9221) over quinn, with
//! rustls (TLS 1.3, ring) — tether's answer to "DTLS that never recovers
//! after the server restarts" (scenario S0).
//!
//! * Every [`Frame`](tether_core::codec::Frame) (data, ping, pong) travels
//!   as one datagram, encoded as on TCP. Datagrams are unreliable; a data
//!   frame larger than one datagram is dropped and counted
//!   ([`QuicStats::oversized_dropped`]), never a panic.
//! * Liveness: QUIC's keep-alive and idle timeout are derived from tether's
//!   heartbeat ([`QuicLiveness::from_heartbeat`]), and tether's own
//!   heartbeat frames still run on top.
//! * Restarts: a server started with [`ResetKey::File`] keeps its
//!   stateless-reset secret across restarts, so an old client's next packet
//!   draws a stateless reset and the client reports
//!   [`DisconnectReason::Reset`](tether_core::DisconnectReason::Reset) at
//!   once instead of waiting for the idle timeout; then it reconnects.
//! * Reconnects reuse one client endpoint, so TLS tickets allow 0-RTT
//!   resumption ([`QuicStats::zero_rtt_handshakes`]).
//! * Address changes: [`QuicConnector::rebind`] moves the client to a new
//!   socket; QUIC connection migration keeps the connection.
//!
//! Connection ends map to reasons as follows: application or transport
//! close by the peer → `PeerClosed`; stateless reset → `Reset`; idle
//! timeout → `Timeout`; local close → `ClosedLocally`; transport error or
//! version mismatch → `ProtocolError`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use tether_transports::driver::{Client, ClientConfig, Server, ServerConfig};
//! use tether_transports::quic::{
//!     QuicAcceptor, QuicClientOptions, QuicConnector, QuicLiveness, QuicServerOptions,
//! };
//!
//! let client_config = ClientConfig::default();
//! let liveness = QuicLiveness::from_heartbeat(&client_config.heartbeat);
//!
//! let server_options = QuicServerOptions::new("cert.pem", "key.pem")
//!     .with_reset_key_file("/var/lib/myapp/quic-reset.key")
//!     .with_liveness(liveness);
//! let acceptor = QuicAcceptor::bind("127.0.0.1:7443".parse()?, &server_options).await?;
//! let _server = Server::spawn(acceptor, ServerConfig::default())?;
//!
//! let client_options = QuicClientOptions::default()
//!     .with_ca_file("cert.pem")
//!     .with_server_name("localhost")
//!     .with_liveness(liveness);
//! let connector = QuicConnector::new("127.0.0.1", 7443, &client_options)?;
//! let stats = connector.clone();
//! let client = Client::spawn(connector, client_config)?;
//! client.handle().send("hello".into()).await?;
//! println!("{:?}", stats.stats());
//! # Ok(()) }
//! ```

mod acceptor;
mod config;
mod connector;
mod link;
mod options;
mod reset_key;

pub use acceptor::QuicAcceptor;
pub use config::QuicConfigError;
pub use connector::{QuicConnector, QuicStats};
pub use link::{classify, QuicLink};
pub use options::{QuicClientOptions, QuicLiveness, QuicServerOptions, ResetKey, DEFAULT_ALPN};

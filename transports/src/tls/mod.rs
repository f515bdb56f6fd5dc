//! TLS over TCP (rustls with the ring provider): the same framing, heartbeat
//! and supervision as [`crate::tcp`], inside TLS.
//!
//! - [`TlsConnector`] dials with the TCP transport's socket options, then
//!   runs the handshake, verifying the server against a CA file or the
//!   platform roots. One rustls configuration per connector keeps the
//!   session cache, so a reconnect resumes the session (TLS 1.3 tickets);
//!   [`TlsConnector::stats`] counts full vs resumed handshakes.
//! - [`TlsAcceptor`] accepts TCP, then handshakes in a task per connection
//!   under a timeout, optionally requiring client certificates, and issues
//!   session tickets.
//! - How a connection ended: close_notify is `PeerClosed`; TCP closed
//!   without close_notify (truncation) and TCP RST are `Reset` (see
//!   [`TlsIo`]); a failed handshake is `ProtocolError`.
//!
//! There is no switch that turns certificate verification off.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use tether_transports::driver::{Client, ClientConfig, Server, ServerConfig};
//! use tether_transports::tcp::TcpOptions;
//! use tether_transports::tls::{TlsAcceptor, TlsClientOptions, TlsConnector, TlsServerOptions};
//!
//! let server_tls = TlsServerOptions::new("server.pem", "server.key");
//! let acceptor =
//!     TlsAcceptor::bind("127.0.0.1:7443".parse()?, TcpOptions::default(), &server_tls).await?;
//! let server = Server::spawn(acceptor, ServerConfig::default())?;
//!
//! let client_tls = TlsClientOptions::default()
//!     .with_ca_file("ca.pem")
//!     .with_server_name("localhost");
//! let connector = TlsConnector::new("127.0.0.1", 7443, TcpOptions::default(), &client_tls)?;
//! let counters = connector.counters();
//! let client = Client::spawn(connector, ClientConfig::default())?;
//! client.handle().send("hello".into()).await?;
//! println!("resumed so far: {}", counters.snapshot().resumed_handshakes);
//! # drop(server); Ok(()) }
//! ```

mod config;
mod connector;
mod listener;
mod options;
mod stats;
mod stream;

pub use config::TlsConfigError;
pub use connector::TlsConnector;
pub use listener::TlsAcceptor;
pub use options::{TlsClientOptions, TlsServerOptions};
pub use stats::{TlsCounters, TlsStats};
pub use stream::TlsIo;

/// A framed TLS connection (either side).
pub type TlsLink = crate::stream::StreamLink<TlsIo>;

//! TCP: connector, listener and kernel liveness options.

mod connector;
mod listener;
mod options;

pub use connector::TcpConnector;
pub use listener::TcpAcceptor;
#[cfg(unix)]
pub use options::{read_fd, tune_fd};
pub use options::{Keepalive, TcpOptions};

/// A framed TCP connection.
pub type TcpLink = crate::stream::StreamLink<tokio::net::TcpStream>;

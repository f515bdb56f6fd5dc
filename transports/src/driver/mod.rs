//! The tokio driver: runs the sans-IO core over any [`crate::Link`].
//!
//! One supervised client loop and one server hub serve every transport;
//! transports only supply a [`tether_transports::Reconnect`] (client side) or an
//! [`Acceptor`] (server side).

mod batch;
mod client;
mod clock;
pub(crate) mod guarded;
mod server;

pub use client::{Client, ClientConfig, ClientEvent, ClientHandle, SendError};
pub use guarded::panic_text;
pub use server::{Acceptor, Server, ServerConfig, ServerEvent, ServerSendError};
/// The longest queue a client or server accepts (`tether_core::limits`).
pub use tether_core::limits::MAX_QUEUE;

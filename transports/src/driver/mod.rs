//! The tokio driver: runs the sans-IO core over any [`crate::Link`].
//!
//! One supervised client loop and one server serve every transport;
//! transports only supply a [`crate::Reconnect`] (client side) or an
//! [`Acceptor`] (server side). On both sides every live link runs the core
//! connection machine ([`tether_core::connection::Connection`]) through one
//! shared carrier (`wired`): nothing about frames or pings is a driver's.

mod client;
mod clock;
mod dispatch;
pub(crate) mod guarded;
mod handover;
mod mailbox;
mod outbox;
mod server;
mod shared;
mod wired;

pub use client::{Client, ClientConfig, ClientEvent, ClientHandle, SendError};
pub use guarded::panic_text;
pub use server::{
    Acceptor, Server, ServerConfig, ServerConn, ServerEvent, ServerHandle, ServerSendError,
};
/// The longest queue a client or server accepts (`tether_core::limits`).
pub use tether_core::limits::MAX_QUEUE;

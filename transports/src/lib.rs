//! # tether-transports
//!
//! Transports for tether and the tokio driver that runs the sans-IO core
//! over them. Every transport supplies a [`Link`] (framed connection), a
//! [`Reconnect`] dialer and an [`driver::Acceptor`]; the
//! supervised [`driver::Client`] and [`driver::Server`] are shared by all.
#![warn(missing_docs)]

pub mod codec;
pub mod driver;
pub mod endpoint;
#[cfg(feature = "fault")]
pub mod fault;
pub mod link;
#[cfg(any(feature = "tls", feature = "quic"))]
mod pem;
#[cfg(feature = "quic")]
pub mod quic;
pub mod reconnect;
pub mod stream;
#[cfg(feature = "tcp")]
pub mod tcp;
#[cfg(feature = "tls")]
pub mod tls;
#[cfg(any(feature = "tls", feature = "quic"))]
mod tls_failure;
#[cfg(feature = "udp")]
pub mod udp;

pub use endpoint::{Endpoint, EndpointError, Scheme};
pub use link::{BoxLink, Link, LinkExt};
pub use reconnect::Reconnect;

/// The README's Rust examples, compiled by `cargo test --doc`.
#[cfg(all(doctest, feature = "tls", feature = "quic"))]
#[doc = include_str!("../../README.md")]
pub struct ReadmeExamples;

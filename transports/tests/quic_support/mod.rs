//! QUIC test support: the test PKI (`common/certs.rs`) with QUIC options,
//! and the echo server (`common/echo_server.rs`). Those files are included
//! by path so that this module needs no `common`: the cross-transport tests
//! include it on its own.
#![allow(dead_code)]

// The same files may also be loaded by `common` or by the other support
// module in one crate; that is on purpose: this module must not depend on
// anything else at the crate root.
#[path = "../common/certs.rs"]
#[allow(clippy::duplicate_mod)]
mod certs;
#[path = "../common/echo_server.rs"]
#[allow(clippy::duplicate_mod)]
mod echo_server;
#[path = "../common/events.rs"]
#[allow(clippy::duplicate_mod)]
mod events;
#[path = "../common/scratch.rs"]
#[allow(clippy::duplicate_mod)]
mod scratch;

// Not every including crate uses each of them.
#[allow(unused_imports)]
pub use certs::Pki;
#[allow(unused_imports)]
pub use echo_server::EchoServer;
#[allow(unused_imports)]
pub use events::{echo, names};

use std::net::SocketAddr;
use std::time::Duration;
use tether_transports::quic::{QuicClientOptions, QuicLiveness, QuicServerOptions};

impl Pki {
    /// Client options trusting our CA, for the name `localhost`, bound to
    /// loopback.
    pub fn quic_client(&self, liveness: QuicLiveness) -> QuicClientOptions {
        QuicClientOptions::default()
            .with_ca_file(&self.ca)
            .with_server_name("localhost")
            .with_bind(loopback())
            .with_liveness(liveness)
    }

    /// Server options serving the server certificate.
    pub fn quic_server(&self) -> QuicServerOptions {
        QuicServerOptions::new(&self.server_cert, &self.server_key)
    }
}

/// QUIC liveness with a keep-alive and an idle timeout.
pub fn liveness(keep_alive: Duration, idle_timeout: Duration) -> QuicLiveness {
    QuicLiveness {
        keep_alive: Some(keep_alive),
        idle_timeout,
    }
}

/// Loopback, port 0.
pub fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

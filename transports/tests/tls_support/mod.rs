//! TLS test support: the test PKI (`common/certs.rs`, included by path so
//! that this module needs no `common`) with TLS options, acceptors and
//! connectors built from it.
#![allow(dead_code)]

// The same files may also be loaded by `common` or by the other support
// module in one crate; that is on purpose: this module must not depend on
// anything else at the crate root.
#[path = "../common/certs.rs"]
#[allow(clippy::duplicate_mod)]
mod certs;
#[path = "../common/scratch.rs"]
#[allow(clippy::duplicate_mod)]
mod scratch;

pub use certs::Pki;

use tether_transports::tcp::TcpOptions;
use tether_transports::tls::{TlsAcceptor, TlsClientOptions, TlsConnector, TlsServerOptions};

impl Pki {
    /// Serves the server certificate.
    pub fn server_options(&self) -> TlsServerOptions {
        TlsServerOptions::new(&self.server_cert, &self.server_key)
    }

    /// Trusts our CA; the server name defaults to the dialed host.
    pub fn client_options(&self) -> TlsClientOptions {
        TlsClientOptions::default().with_ca_file(&self.ca)
    }

    /// A TLS acceptor on a kernel-chosen loopback port.
    pub async fn acceptor(&self, options: &TlsServerOptions) -> TlsAcceptor {
        TlsAcceptor::bind(
            "127.0.0.1:0".parse().unwrap(),
            TcpOptions::default(),
            options,
        )
        .await
        .unwrap()
    }

    /// A TLS connector to loopback `port`.
    pub fn connector(&self, port: u16, options: &TlsClientOptions) -> TlsConnector {
        TlsConnector::new("127.0.0.1", port, TcpOptions::default(), options).unwrap()
    }
}

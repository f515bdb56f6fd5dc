//! What a TLS client and a TLS server are configured with: paths to PEM
//! files and a few switches. Files are read when the connector or acceptor
//! is built, so a wrong path fails at once with the path in the error.

use std::path::PathBuf;
use std::time::Duration;

/// TLS settings of a client ([`super::TlsConnector`]).
///
/// Certificate verification is always on: the server's chain must lead to
/// a root in `ca_file`, or, when `ca_file` is `None`, to one of the
/// platform's roots (the system store, e.g. `/etc/ssl/certs`), and the
/// certificate must be valid for the server name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsClientOptions {
    /// PEM file with the CA certificates to trust instead of the platform
    /// roots.
    pub ca_file: Option<PathBuf>,
    /// The name sent as SNI and checked against the server's certificate;
    /// `None` uses the host of the address (an IP literal is checked
    /// against the certificate's IP addresses and sends no SNI).
    pub server_name: Option<String>,
    /// PEM certificate chain presented when the server asks for one
    /// (requires `client_key_file`).
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `client_cert_file`.
    pub client_key_file: Option<PathBuf>,
    /// ALPN protocols offered, most preferred first; empty offers none.
    pub alpn: Vec<String>,
}

impl TlsClientOptions {
    /// Trusts the CA certificates in `path` (PEM) instead of the platform
    /// roots.
    pub fn with_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Sends and verifies `name` instead of the address's host.
    pub fn with_server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// Presents the certificate chain in `cert` with the key in `key` (both
    /// PEM) when the server asks for a client certificate.
    pub fn with_client_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.client_cert_file = Some(cert.into());
        self.client_key_file = Some(key.into());
        self
    }

    /// Offers these ALPN protocols, most preferred first.
    pub fn with_alpn<I, S>(mut self, protocols: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.alpn = protocols.into_iter().map(Into::into).collect();
        self
    }
}

/// TLS settings of a server ([`super::TlsAcceptor`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsServerOptions {
    /// PEM certificate chain of the server, leaf first. Required.
    pub cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `cert_file`. Required.
    pub key_file: Option<PathBuf>,
    /// When set, every client must present a certificate that chains to a
    /// CA in this PEM file; clients without one fail the handshake.
    pub client_ca_file: Option<PathBuf>,
    /// ALPN protocols accepted, most preferred first; when non-empty a
    /// client offering none of them fails the handshake.
    pub alpn: Vec<String>,
    /// Longest time a client may take to complete the handshake after its
    /// TCP connection was accepted; a silent client is dropped after it.
    /// Handshakes run concurrently, so a slow client never delays others.
    /// Default 10 s; must be non-zero.
    pub handshake_timeout: Duration,
    /// Issue TLS 1.3 session tickets (and keep a session cache for TLS 1.2)
    /// so reconnecting clients resume with an abbreviated handshake.
    /// Default on. Ticket keys live in memory: a restarted server process
    /// falls back to full handshakes once.
    pub session_resumption: bool,
}

impl Default for TlsServerOptions {
    fn default() -> Self {
        Self {
            cert_file: None,
            key_file: None,
            client_ca_file: None,
            alpn: Vec::new(),
            handshake_timeout: Duration::from_secs(10),
            session_resumption: true,
        }
    }
}

impl TlsServerOptions {
    /// Serves the certificate chain in `cert` with the key in `key` (PEM).
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        Self {
            cert_file: Some(cert.into()),
            key_file: Some(key.into()),
            ..Self::default()
        }
    }

    /// Requires client certificates issued by a CA in `path` (PEM).
    pub fn with_client_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.client_ca_file = Some(path.into());
        self
    }

    /// Accepts these ALPN protocols, most preferred first.
    pub fn with_alpn<I, S>(mut self, protocols: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.alpn = protocols.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the handshake timeout (non-zero).
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }
}

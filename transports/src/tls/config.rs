//! Turning [`TlsClientOptions`] / [`TlsServerOptions`] into rustls
//! configurations: reading PEM files, trust roots, the ring provider.

use super::{TlsClientOptions, TlsServerOptions};
use crate::pem::{
    add_roots_from_file, alpn, load_certs, load_key, platform_roots, provider, PemError,
};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;

/// Why a TLS configuration could not be built.
#[derive(Debug, Error)]
pub enum TlsConfigError {
    /// A required option is not set.
    #[error("{0} is not set")]
    Missing(&'static str),
    /// A file could not be read.
    #[error("cannot read {what} {path:?}: {source}")]
    Read {
        /// Which file (e.g. "CA file").
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A file holds no usable PEM item of the expected kind, or is
    /// malformed.
    #[error("{what} {path:?}: {detail}")]
    BadPem {
        /// Which file.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The server name is neither a DNS name nor an IP address.
    #[error("invalid TLS server name {0:?}")]
    InvalidServerName(String),
    /// The platform's certificate store yielded no usable root.
    #[error("no trusted root certificates found in the platform store ({0}); set a CA file")]
    NoPlatformRoots(String),
    /// A handshake timeout of zero, or over the 7-day bound.
    #[error("tls_server.handshake_timeout must be from 1 ms to 7 days")]
    ZeroHandshakeTimeout,
    /// rustls rejected the configuration (e.g. the key does not match the
    /// certificate).
    #[error("TLS configuration rejected: {0}")]
    Rustls(String),
}

impl From<TlsConfigError> for io::Error {
    fn from(e: TlsConfigError) -> Self {
        let kind = match &e {
            TlsConfigError::Read { source, .. } => source.kind(),
            _ => io::ErrorKind::InvalidInput,
        };
        io::Error::new(kind, e)
    }
}

fn rustls_err(e: impl std::fmt::Display) -> TlsConfigError {
    TlsConfigError::Rustls(e.to_string())
}

impl From<PemError> for TlsConfigError {
    fn from(e: PemError) -> Self {
        match e {
            PemError::Read { what, path, source } => Self::Read { what, path, source },
            PemError::Bad { what, path, detail } => Self::BadPem { what, path, detail },
            PemError::NoPlatformRoots(detail) => Self::NoPlatformRoots(detail),
        }
    }
}

fn roots_from_file(what: &'static str, path: &Path) -> Result<RootCertStore, TlsConfigError> {
    let mut roots = RootCertStore::empty();
    add_roots_from_file(&mut roots, what, path)?;
    Ok(roots)
}

/// The name to verify: the override or the host.
pub(crate) fn server_name(
    options: &TlsClientOptions,
    host: &str,
) -> Result<ServerName<'static>, TlsConfigError> {
    let name = options.server_name.as_deref().unwrap_or(host);
    ServerName::try_from(name.to_string())
        .map_err(|_| TlsConfigError::InvalidServerName(name.to_string()))
}

/// A client configuration; its session cache (in memory, 256 entries)
/// lives as long as the returned `Arc`, so reuse it for every reconnect.
pub(crate) fn client_config(options: &TlsClientOptions) -> Result<ClientConfig, TlsConfigError> {
    let roots = match &options.ca_file {
        Some(path) => roots_from_file("CA file", path)?,
        None => platform_roots()?,
    };
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(rustls_err)?
        .with_root_certificates(roots);
    let mut config = match (&options.client_cert_file, &options.client_key_file) {
        (Some(cert), Some(key)) => builder
            .with_client_auth_cert(
                load_certs("client certificate file", cert)?,
                load_key("client key file", key)?,
            )
            .map_err(rustls_err)?,
        (None, None) => builder.with_no_client_auth(),
        (Some(_), None) => return Err(TlsConfigError::Missing("tls_client.client_key_file")),
        (None, Some(_)) => return Err(TlsConfigError::Missing("tls_client.client_cert_file")),
    };
    config.alpn_protocols = alpn(&options.alpn);
    Ok(config)
}

/// A server configuration with session tickets when enabled.
pub(crate) fn server_config(options: &TlsServerOptions) -> Result<ServerConfig, TlsConfigError> {
    if tether_core::limits::positive_duration(
        "tls_server.handshake_timeout",
        options.handshake_timeout,
    )
    .is_err()
    {
        return Err(TlsConfigError::ZeroHandshakeTimeout);
    }
    let cert_file = options
        .cert_file
        .as_deref()
        .ok_or(TlsConfigError::Missing("tls_server.cert_file"))?;
    let key_file = options
        .key_file
        .as_deref()
        .ok_or(TlsConfigError::Missing("tls_server.key_file"))?;
    let certs = load_certs("server certificate file", cert_file)?;
    let key = load_key("server key file", key_file)?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(rustls_err)?;
    let builder = match &options.client_ca_file {
        Some(path) => {
            let roots = roots_from_file("client CA file", path)?;
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                roots.into(),
                provider(),
            )
            .build()
            .map_err(rustls_err)?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key).map_err(rustls_err)?;
    config.alpn_protocols = alpn(&options.alpn);
    if options.session_resumption {
        config.ticketer = rustls::crypto::ring::Ticketer::new().map_err(rustls_err)?;
    } else {
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
    }
    Ok(config)
}

//! Turning [`QuicClientOptions`] / [`QuicServerOptions`] into quinn and
//! rustls configurations (TLS 1.3, ring provider), with errors that name
//! the file or field at fault.

use super::{QuicClientOptions, QuicServerOptions};
use crate::pem::{
    add_roots_from_file, alpn, load_certs, load_key, platform_roots, provider, PemError,
};
use rustls::RootCertStore;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use tether_core::ConfigError;
use thiserror::Error;

/// Why a QUIC configuration could not be built.
#[derive(Debug, Error)]
pub enum QuicConfigError {
    /// A required option is not set.
    #[error("{0} is not set")]
    Missing(&'static str),
    /// A file could not be read or written.
    #[error("cannot access {what} {path:?}: {source}")]
    File {
        /// Which file (e.g. "CA file").
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A file's content is unusable.
    #[error("{what} {path:?}: {detail}")]
    BadFile {
        /// Which file.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The platform store has no usable root and no CA was configured.
    #[error("no trusted root certificates in the platform store ({0}); set quic_client.ca_file")]
    NoRoots(String),
    /// An out-of-range value.
    #[error(transparent)]
    Value(#[from] ConfigError),
    /// rustls or quinn rejected the configuration (e.g. the key does not
    /// match the certificate).
    #[error("QUIC/TLS configuration rejected: {0}")]
    Rejected(String),
}

impl From<QuicConfigError> for io::Error {
    fn from(e: QuicConfigError) -> Self {
        let kind = match &e {
            QuicConfigError::File { source, .. } => source.kind(),
            _ => io::ErrorKind::InvalidInput,
        };
        io::Error::new(kind, e)
    }
}

fn rejected(e: impl std::fmt::Display) -> QuicConfigError {
    QuicConfigError::Rejected(e.to_string())
}

impl From<PemError> for QuicConfigError {
    fn from(e: PemError) -> Self {
        match e {
            PemError::Read { what, path, source } => Self::File { what, path, source },
            PemError::Bad { what, path, detail } => Self::BadFile { what, path, detail },
            PemError::NoPlatformRoots(detail) => Self::NoRoots(detail),
        }
    }
}

fn roots(options: &QuicClientOptions) -> Result<RootCertStore, QuicConfigError> {
    if options.ca_file.is_none() && options.trusted_certs.is_empty() {
        return Ok(platform_roots()?);
    }
    let mut roots = RootCertStore::empty();
    if let Some(path) = &options.ca_file {
        add_roots_from_file(&mut roots, "CA file", path)?;
    }
    for cert in &options.trusted_certs {
        roots
            .add(cert.clone())
            .map_err(|e| rejected(format!("trusted certificate: {e}")))?;
    }
    Ok(roots)
}

/// The quinn client configuration; its TLS session cache (tickets for
/// resumption and 0-RTT) lives as long as it, so reuse it for every
/// reconnect.
pub(crate) fn client_config(
    options: &QuicClientOptions,
) -> Result<quinn::ClientConfig, QuicConfigError> {
    let transport = options.liveness.transport_config()?;
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(rejected)?
        .with_root_certificates(roots(options)?)
        .with_no_client_auth();
    tls.alpn_protocols = alpn(&options.alpn);
    tls.enable_early_data = options.zero_rtt;
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).map_err(rejected)?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(Arc::new(transport));
    Ok(config)
}

/// The quinn server configuration.
pub(crate) fn server_config(
    options: &QuicServerOptions,
) -> Result<quinn::ServerConfig, QuicConfigError> {
    tether_core::limits::positive_duration(
        "quic_server.handshake_timeout",
        options.handshake_timeout,
    )?;
    let transport = options.liveness.transport_config()?;
    let cert_file = options
        .cert_file
        .as_deref()
        .ok_or(QuicConfigError::Missing("quic_server.cert_file"))?;
    let key_file = options
        .key_file
        .as_deref()
        .ok_or(QuicConfigError::Missing("quic_server.key_file"))?;
    let certs = load_certs("server certificate file", cert_file)?;
    let key = load_key("server key file", key_file)?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(rejected)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(rejected)?;
    tls.alpn_protocols = alpn(&options.alpn);
    // QUIC allows only 0 or u32::MAX here.
    tls.max_early_data_size = if options.zero_rtt { u32::MAX } else { 0 };
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls).map_err(rejected)?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(Arc::new(transport));
    Ok(config)
}

//! Certificates, keys and trust roots from PEM files, shared by every
//! transport that speaks TLS (TLS over TCP, QUIC). Errors name the file and
//! what it was for; each transport maps them into its own error type.

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::RootCertStore;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why a PEM file or the platform trust store was unusable.
#[derive(Debug)]
pub(crate) enum PemError {
    /// The file could not be read.
    Read {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// The file holds nothing usable of the expected kind.
    Bad {
        what: &'static str,
        path: PathBuf,
        detail: String,
    },
    /// The platform store yielded no usable root.
    NoPlatformRoots(String),
}

/// The ring provider: tether never builds aws-lc.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, PemError> {
    std::fs::read(path).map_err(|source| PemError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

fn bad(what: &'static str, path: &Path, detail: String) -> PemError {
    PemError::Bad {
        what,
        path: path.to_path_buf(),
        detail,
    }
}

/// Every certificate in a PEM file (at least one).
pub(crate) fn load_certs(
    what: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let pem = read(what, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(what, path, e.to_string()))?;
    if certs.is_empty() {
        return Err(bad(what, path, "no PEM certificate found".into()));
    }
    Ok(certs)
}

/// The first private key in a PEM file.
pub(crate) fn load_key(
    what: &'static str,
    path: &Path,
) -> Result<PrivateKeyDer<'static>, PemError> {
    let pem = read(what, path)?;
    PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| bad(what, path, format!("no usable private key: {e}")))
}

/// Adds every certificate of a PEM file to `roots` as a trust anchor.
pub(crate) fn add_roots_from_file(
    roots: &mut RootCertStore,
    what: &'static str,
    path: &Path,
) -> Result<(), PemError> {
    for cert in load_certs(what, path)? {
        roots
            .add(cert)
            .map_err(|e| bad(what, path, format!("not a usable CA certificate: {e}")))?;
    }
    Ok(())
}

/// The platform's trust roots (at least one).
pub(crate) fn platform_roots() -> Result<RootCertStore, PemError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        let errors: Vec<String> = found.errors.iter().map(ToString::to_string).collect();
        return Err(PemError::NoPlatformRoots(if errors.is_empty() {
            "store is empty".into()
        } else {
            errors.join("; ")
        }));
    }
    Ok(roots)
}

/// ALPN protocol names as rustls wants them.
pub(crate) fn alpn(protocols: &[String]) -> Vec<Vec<u8>> {
    protocols.iter().map(|p| p.as_bytes().to_vec()).collect()
}

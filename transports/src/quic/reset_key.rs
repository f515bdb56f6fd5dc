//! The server's stateless-reset secret, optionally persisted so that a
//! restarted server can reset its predecessor's connections.
//!
//! Two things must survive a restart for a client to get a reset it
//! believes: the reset-token key (the token is HMAC(key, connection id)),
//! and the key quinn's connection-id generator uses to recognise ids it
//! issued (a packet whose id fails that check is dropped without a reply).
//! Both are derived from one 64-byte secret.

use super::config::QuicConfigError;
use super::ResetKey;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

const SECRET_LEN: usize = 64;
/// Shorter files are refused: too little entropy to be a real secret.
const MIN_SECRET_LEN: usize = 32;
const CID_LABEL: &[u8] = b"tether quic connection-id key";

/// The endpoint configuration for `source`: reset key and connection-id
/// generator.
pub(crate) fn endpoint_config(source: &ResetKey) -> Result<quinn::EndpointConfig, QuicConfigError> {
    let secret = match source {
        ResetKey::Ephemeral => random_secret()?,
        ResetKey::File(path) => load_or_create(path)?,
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, &secret);
    let tag = hmac::sign(&key, CID_LABEL);
    let mut cid_key = [0u8; 8];
    cid_key.copy_from_slice(&tag.as_ref()[..8]);
    let cid_key = u64::from_le_bytes(cid_key);
    let mut config = quinn::EndpointConfig::new(Arc::new(key));
    config.cid_generator(move || {
        Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
    });
    Ok(config)
}

fn random_secret() -> Result<Vec<u8>, QuicConfigError> {
    let mut secret = vec![0u8; SECRET_LEN];
    SystemRandom::new()
        .fill(&mut secret)
        .map_err(|_| QuicConfigError::Rejected("the system random generator failed".into()))?;
    Ok(secret)
}

fn file_err(path: &Path, source: std::io::Error) -> QuicConfigError {
    QuicConfigError::File {
        what: "reset key file",
        path: path.to_path_buf(),
        source,
    }
}

/// Reads the secret at `path`, or creates it. Creation is atomic and
/// exclusive (written to a temporary file, then hard-linked into place), so
/// two servers starting at once end up with the same key and a crash never
/// leaves a half-written file.
fn load_or_create(path: &Path) -> Result<Vec<u8>, QuicConfigError> {
    match std::fs::read(path) {
        Ok(secret) => return check(path, secret),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(file_err(path, e)),
    }
    let secret = random_secret()?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let written = write_private(&tmp, &secret).and_then(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    match written {
        Ok(()) => Ok(secret),
        // Someone else created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let secret = std::fs::read(path).map_err(|e| file_err(path, e))?;
            check(path, secret)
        }
        Err(e) => Err(file_err(path, e)),
    }
}

fn check(path: &Path, secret: Vec<u8>) -> Result<Vec<u8>, QuicConfigError> {
    if secret.len() < MIN_SECRET_LEN {
        return Err(QuicConfigError::BadFile {
            what: "reset key file",
            path: path.to_path_buf(),
            detail: format!(
                "holds {} bytes, expected at least {MIN_SECRET_LEN}; delete it to create a new key",
                secret.len()
            ),
        });
    }
    Ok(secret)
}

fn write_private(path: &Path, secret: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(secret)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("tether-reset-key-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn created_once_then_reused() {
        let dir = scratch("reuse");
        let path = dir.join("reset.key");
        let first = load_or_create(&path).unwrap();
        assert_eq!(first.len(), SECRET_LEN);
        assert_eq!(load_or_create(&path).unwrap(), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn short_or_unreadable_files_are_clear_errors() {
        let dir = scratch("bad");
        let path = dir.join("short.key");
        std::fs::write(&path, b"tiny").unwrap();
        let err = load_or_create(&path).unwrap_err().to_string();
        assert!(err.contains("at least 32"), "{err}");
        let missing_dir = dir.join("no/such/dir/reset.key");
        let err = load_or_create(&missing_dir).unwrap_err().to_string();
        assert!(err.contains("reset key file"), "{err}");
        let _ = std::fs::remove_dir_all(dir);
    }
}

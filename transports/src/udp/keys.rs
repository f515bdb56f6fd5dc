//! Key handling: the PSK-derived hello key, per-session keys, MACs, the
//! server's static reset key and stateless reset tokens.
//!
//! Derivations (HKDF-SHA256, RFC 5869):
//! - `hello key = HKDF(salt "tether-udp v1", ikm PSK, info "hello")`
//! - per session, `prk = HKDF-Extract(salt client_nonce || server_nonce, ikm PSK)`,
//!   then `c2s = Expand(prk, "c2s" || id)`, `s2c = Expand(prk, "s2c" || id)`
//!   and the 16-byte `mask = Expand(prk, "token mask" || id)` that hides the
//!   reset token inside the welcome.
//! - `reset token = HMAC(static key, "tether-udp v1 reset" || id)[..16]`.

use super::options::StaticKey;
use super::wire::{MAC_LEN, NONCE_LEN, TOKEN_LEN};
use ring::hkdf;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use std::io;
use std::path::Path;

const LABEL: &[u8] = b"tether-udp v1";

/// An output length for HKDF-Expand of raw bytes.
struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// Truncated HMAC-SHA256 over the concatenation of `parts`.
pub(super) fn mac(key: &hmac::Key, parts: &[&[u8]]) -> [u8; MAC_LEN] {
    let mut ctx = hmac::Context::with_key(key);
    for part in parts {
        ctx.update(part);
    }
    let tag = ctx.sign();
    let mut out = [0u8; MAC_LEN];
    out.copy_from_slice(&tag.as_ref()[..MAC_LEN]);
    out
}

/// Compares in time independent of where the inputs differ.
pub(super) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Checks a truncated tag over `signed`.
pub(super) fn verify(key: &hmac::Key, signed: &[u8], tag: &[u8]) -> bool {
    ct_eq(&mac(key, &[signed]), tag)
}

/// Fills `out` from the operating system's generator.
pub(super) fn random(out: &mut [u8]) -> io::Result<()> {
    SystemRandom::new()
        .fill(out)
        .map_err(|_| io::Error::other("the system random number generator failed"))
}

/// A random nonzero session id.
pub(super) fn random_session_id() -> io::Result<u64> {
    loop {
        let mut b = [0u8; 8];
        random(&mut b)?;
        let id = u64::from_be_bytes(b);
        if id != 0 {
            return Ok(id);
        }
    }
}

fn expand_key(prk: &hkdf::Prk, info: &[&[u8]]) -> hmac::Key {
    let okm = prk
        .expand(info, hmac::HMAC_SHA256)
        .expect("32-byte HKDF output is always in range");
    hmac::Key::from(okm)
}

/// Keys every side derives from the PSK alone.
pub(super) struct PskKeys {
    psk: Vec<u8>,
    /// Authenticates hellos, so that only PSK holders create sessions.
    pub hello: hmac::Key,
}

impl std::fmt::Debug for PskKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PskKeys(..)")
    }
}

impl PskKeys {
    pub(super) fn new(psk: &[u8]) -> Self {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, LABEL).extract(psk);
        Self {
            psk: psk.to_vec(),
            hello: expand_key(&prk, &[b"hello"]),
        }
    }

    /// The static reset key when it is derived from the PSK.
    fn derived_static(&self) -> hmac::Key {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, LABEL).extract(&self.psk);
        expand_key(&prk, &[b"static reset key"])
    }

    /// The keys of one session.
    pub(super) fn session(
        &self,
        id: u64,
        client_nonce: &[u8; NONCE_LEN],
        server_nonce: &[u8; NONCE_LEN],
    ) -> SessionKeys {
        let mut salt = [0u8; 2 * NONCE_LEN];
        salt[..NONCE_LEN].copy_from_slice(client_nonce);
        salt[NONCE_LEN..].copy_from_slice(server_nonce);
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &salt).extract(&self.psk);
        let id = id.to_be_bytes();
        let mut mask = [0u8; TOKEN_LEN];
        prk.expand(&[LABEL, b"token mask", &id], Len(TOKEN_LEN))
            .and_then(|okm| okm.fill(&mut mask))
            .expect("16-byte HKDF output is always in range");
        SessionKeys {
            c2s: expand_key(&prk, &[LABEL, b"c2s", &id]),
            s2c: expand_key(&prk, &[LABEL, b"s2c", &id]),
            mask,
        }
    }
}

/// The keys of one session: one per direction, plus the token mask.
pub(super) struct SessionKeys {
    pub c2s: hmac::Key,
    pub s2c: hmac::Key,
    pub mask: [u8; TOKEN_LEN],
}

/// The server's static key, which signs stateless reset tokens.
pub(super) struct ResetKey(hmac::Key);

impl ResetKey {
    /// Loads (or creates) the key chosen by `choice`.
    pub(super) fn load(choice: &StaticKey, psk: &PskKeys) -> io::Result<Self> {
        Ok(Self(match choice {
            StaticKey::FromPsk => psk.derived_static(),
            StaticKey::Bytes(k) => hmac::Key::new(hmac::HMAC_SHA256, k),
            StaticKey::File(path) => hmac::Key::new(hmac::HMAC_SHA256, &load_or_create(path)?),
        }))
    }

    /// The token a client must see to believe its session is unknown.
    pub(super) fn token(&self, session: u64) -> [u8; TOKEN_LEN] {
        mac(&self.0, &[LABEL, b" reset", &session.to_be_bytes()])
    }
}

/// Reads a 32-byte key file, or creates one (mode 0600) with random bytes.
/// Creation is atomic: the key is written to a temporary file that is then
/// hard-linked into place, so two servers starting at once agree on one key.
fn load_or_create(path: &Path) -> io::Result<[u8; 32]> {
    let context = |e: io::Error, what: &str| {
        io::Error::new(
            e.kind(),
            format!("udp static key {}: {what}: {e}", path.display()),
        )
    };
    match std::fs::read(path) {
        Ok(bytes) => {
            return bytes.as_slice().try_into().map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "udp static key {}: holds {} bytes, expected exactly 32",
                        path.display(),
                        bytes.len()
                    ),
                )
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(context(e, "cannot read")),
    }
    let mut key = [0u8; 32];
    random(&mut key)?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let written = opts.open(&tmp).and_then(|mut f| {
        use std::io::Write;
        f.write_all(&key)?;
        f.sync_all()
    });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(context(e, "cannot create"));
    }
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(key),
        // Another process created it first: use theirs.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => load_or_create(path),
        Err(e) => Err(context(e, "cannot create")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_differ_by_nonce_and_direction() {
        let psk = PskKeys::new(&[7; 32]);
        let a = psk.session(1, &[1; NONCE_LEN], &[2; NONCE_LEN]);
        let b = psk.session(1, &[1; NONCE_LEN], &[3; NONCE_LEN]);
        let ma = mac(&a.c2s, &[b"x"]);
        assert_ne!(ma, mac(&a.s2c, &[b"x"]));
        assert_ne!(ma, mac(&b.c2s, &[b"x"]));
        assert_eq!(ma, mac(&psk.session(1, &[1; 32], &[2; 32]).c2s, &[b"x"]));
        assert!(verify(&a.c2s, b"x", &ma));
        assert!(!verify(&a.c2s, b"y", &ma));
    }

    #[test]
    fn key_file_is_created_private_and_reused() {
        let dir = std::env::temp_dir().join(format!("tether-udp-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("static.key");
        let _ = std::fs::remove_file(&path);
        let k1 = load_or_create(&path).unwrap();
        let k2 = load_or_create(&path).unwrap();
        assert_eq!(k1, k2);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, b"short").unwrap();
        let err = load_or_create(&path).unwrap_err();
        assert!(err.to_string().contains("expected exactly 32"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

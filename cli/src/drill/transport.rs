//! The transports a drill runs over and what each needs in-process: a
//! self-signed certificate for tls:// and quic://, a pre-shared key for
//! udp://, a persisted stateless-reset key for quic://. All of it is made
//! at run time in a scratch directory that is removed at the end.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;
use tether_core::liveness::{HeartbeatConfig, Policy};
use tether_transports::endpoint::TransportOptions;
use tether_transports::quic::{QuicClientOptions, QuicServerOptions};
use tether_transports::tls::{TlsClientOptions, TlsServerOptions};
use tether_transports::udp::UdpOptions;
use tether_transports::Scheme;

/// Every transport, in the order a default drill runs them.
pub const ALL: [Scheme; 4] = [Scheme::Tcp, Scheme::Tls, Scheme::Quic, Scheme::Udp];

/// The name the certificate is issued for and clients verify.
const SERVER_NAME: &str = "localhost";

/// True for transports without a byte stream (no FIN, no RST): they sit
/// behind the UDP fault proxy and restart on the same port.
pub fn is_datagram(scheme: Scheme) -> bool {
    matches!(scheme, Scheme::Quic | Scheme::Udp)
}

/// Parses `tcp,tls,quic,udp` (any subset, any order, no repeats).
pub fn parse_list(list: &str) -> Result<Vec<Scheme>, String> {
    let mut out = Vec::new();
    for name in list.split(',').map(str::trim) {
        let scheme = ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                format!("unknown transport {name:?} (expected tcp, tls, quic or udp)")
            })?;
        if out.contains(&scheme) {
            return Err(format!("transport {name:?} is listed twice"));
        }
        out.push(scheme);
    }
    Ok(out)
}

/// The drill's key material, in a scratch directory removed on drop.
pub struct Secrets {
    dir: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    psk: Vec<u8>,
}

impl Secrets {
    /// Generates a self-signed certificate for `localhost` / 127.0.0.1 and
    /// a random pre-shared key.
    pub fn create() -> Result<Self, String> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!("tether-drill-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        // From here on, Drop removes the directory whatever fails.
        let secrets = Self {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            dir,
            psk: random_bytes(32),
        };
        let generated = rcgen::generate_simple_self_signed(vec![
            SERVER_NAME.to_string(),
            Ipv4Addr::LOCALHOST.to_string(),
        ])
        .map_err(|e| format!("cannot generate a certificate: {e}"))?;
        let write = |path: &PathBuf, pem: String| {
            std::fs::write(path, pem).map_err(|e| format!("cannot write {}: {e}", path.display()))
        };
        write(&secrets.cert, generated.cert.pem())?;
        write(&secrets.key, generated.signing_key.serialize_pem())?;
        Ok(secrets)
    }

    /// Options of the drill's servers. QUIC keeps its stateless-reset key
    /// in a file so that a restarted server can reset its predecessor's
    /// connections; UDP derives its static key from the PSK (the default),
    /// which a restarted server derives again.
    pub fn server_options(&self, policy: &Policy) -> TransportOptions {
        TransportOptions {
            tls_server: TlsServerOptions::new(&self.cert, &self.key),
            quic_server: QuicServerOptions::new(&self.cert, &self.key)
                .with_reset_key_file(self.dir.join("quic-reset.key")),
            udp: self.udp_options(),
            ..TransportOptions::default()
        }
        .follow_policy(policy)
    }

    /// Options of the drill's clients: they trust the generated
    /// certificate and share the PSK.
    pub fn client_options(&self, heartbeat: &HeartbeatConfig) -> TransportOptions {
        TransportOptions {
            tls_client: TlsClientOptions::default()
                .with_ca_file(&self.cert)
                .with_server_name(SERVER_NAME),
            quic_client: QuicClientOptions::default()
                .with_ca_file(&self.cert)
                .with_server_name(SERVER_NAME)
                .with_bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))),
            udp: self.udp_options(),
            ..TransportOptions::default()
        }
        .follow_heartbeat(heartbeat)
    }

    fn udp_options(&self) -> UdpOptions {
        UdpOptions {
            handshake_timeout: Some(Duration::from_secs(2)),
            ..UdpOptions::with_psk(self.psk.clone())
        }
    }
}

impl Drop for Secrets {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `n` unpredictable bytes from the standard library's randomly keyed
/// hasher (the PSK only has to be unguessable for the drill's lifetime).
fn random_bytes(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 8);
    let mut counter = 0u64;
    while out.len() < n {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(counter);
        out.extend_from_slice(&h.finish().to_le_bytes());
        counter += 1;
    }
    out.truncate(n);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse_and_errors_name_the_culprit() {
        assert_eq!(parse_list("udp").unwrap(), vec![Scheme::Udp]);
        assert_eq!(
            parse_list("tcp, QUIC").unwrap(),
            vec![Scheme::Tcp, Scheme::Quic]
        );
        let e = parse_list("tcp,sctp").unwrap_err();
        assert!(
            e.contains("\"sctp\"") && e.contains("tcp, tls, quic or udp"),
            "{e}"
        );
        assert!(parse_list("").is_err());
        assert!(parse_list("udp,udp").unwrap_err().contains("twice"));
    }

    #[test]
    fn secrets_are_fresh_and_cleaned_up() {
        let a = Secrets::create().unwrap();
        let b = Secrets::create().unwrap();
        assert_eq!(a.psk.len(), 32);
        assert_ne!(a.psk, b.psk);
        assert!(std::fs::read_to_string(&a.cert)
            .unwrap()
            .contains("BEGIN CERTIFICATE"));
        let dir = a.dir.clone();
        drop(a);
        assert!(!dir.exists());
    }
}

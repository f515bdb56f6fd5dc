//! What a QUIC client and a QUIC server are configured with: PEM paths, the
//! liveness mapping onto QUIC's keep-alive and idle timeout, 0-RTT, and
//! where the server's stateless-reset key lives.

use rustls::pki_types::CertificateDer;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tether_core::liveness::HeartbeatConfig;
use tether_core::ConfigError;

/// The ALPN protocol tether speaks over QUIC unless told otherwise.
pub const DEFAULT_ALPN: &str = "tether";

/// QUIC's own liveness: the stack's keep-alive PINGs and its idle timeout.
///
/// Mapping from tether's heartbeat ([`QuicLiveness::from_heartbeat`]):
///
/// | tether heartbeat | QUIC |
/// |---|---|
/// | `interval` (ping after this much silence) | `keep_alive`: a QUIC PING when nothing was sent for this long |
/// | `detection_bound()` = interval + max_missed x timeout | `idle_timeout`: the connection ends with `Timeout` after this long without any packet from the peer |
///
/// So the transport never declares a peer dead earlier than the heartbeat
/// would, and never later: both verdicts say `Timeout`. The QUIC PING is
/// answered by the peer's QUIC stack, which keeps NAT bindings open and,
/// after a server restart, draws the stateless reset at once; tether's own
/// heartbeat frames (datagrams) are answered by the peer's *application*
/// driver, so they still catch a peer whose process lives but whose
/// application is stuck.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuicLiveness {
    /// Send a QUIC PING after this long without sending anything; `None`
    /// disables it. Must be shorter than `idle_timeout`.
    pub keep_alive: Option<Duration>,
    /// Silence (no packet at all from the peer) after which the connection
    /// is dead. The connection uses the smaller of both peers' values (and
    /// at least three probe timeouts). Also bounds the handshake. Nonzero,
    /// under 2^62 ms.
    pub idle_timeout: Duration,
}

impl QuicLiveness {
    /// The mapping documented on the type: keep-alive = heartbeat interval,
    /// idle timeout = the heartbeat's detection bound.
    pub fn from_heartbeat(heartbeat: &HeartbeatConfig) -> Self {
        Self {
            keep_alive: Some(heartbeat.interval),
            idle_timeout: heartbeat.detection_bound(),
        }
    }

    /// Checks the values; see the field docs.
    pub fn validate(&self) -> Result<(), ConfigError> {
        tether_core::limits::positive_duration("quic.idle_timeout", self.idle_timeout)?;
        if quinn::IdleTimeout::try_from(self.idle_timeout).is_err() {
            return Err(ConfigError::new(
                "quic.idle_timeout",
                "must be under 2^62 ms",
            ));
        }
        if let Some(k) = self.keep_alive {
            if k.is_zero() || k >= self.idle_timeout {
                return Err(ConfigError::new(
                    "quic.keep_alive",
                    "must be greater than zero and shorter than the idle timeout",
                ));
            }
        }
        Ok(())
    }

    /// The quinn transport settings for these values.
    pub(crate) fn transport_config(&self) -> Result<quinn::TransportConfig, ConfigError> {
        self.validate()?;
        let mut config = quinn::TransportConfig::default();
        let idle = quinn::IdleTimeout::try_from(self.idle_timeout)
            .map_err(|_| ConfigError::new("quic.idle_timeout", "must be under 2^62 ms"))?;
        config
            .max_idle_timeout(Some(idle))
            .keep_alive_interval(self.keep_alive)
            // tether uses datagrams only: no streams from the peer.
            .max_concurrent_bidi_streams(0u32.into())
            .max_concurrent_uni_streams(0u32.into());
        Ok(config)
    }
}

impl Default for QuicLiveness {
    /// [`QuicLiveness::from_heartbeat`] of the default heartbeat: PING after
    /// 15 s, dead after 35 s of silence.
    fn default() -> Self {
        Self::from_heartbeat(&HeartbeatConfig::default())
    }
}

/// QUIC settings of a client ([`super::QuicConnector`]).
///
/// The server's certificate is always verified: it must chain to a
/// certificate in `ca_file` or `trusted_certs`, or, when both are empty, to
/// a root of the platform store; and it must be valid for the server name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuicClientOptions {
    /// PEM file with the CA certificates (or self-signed server
    /// certificates) to trust.
    pub ca_file: Option<PathBuf>,
    /// Further trusted certificates (DER), e.g. generated in a test.
    pub trusted_certs: Vec<CertificateDer<'static>>,
    /// The name sent as SNI and checked against the certificate; `None`
    /// uses the address's host.
    pub server_name: Option<String>,
    /// ALPN protocols offered, most preferred first (default `["tether"]`).
    pub alpn: Vec<String>,
    /// Resume with 0-RTT keys when the server allows it (default on). No
    /// application data is sent before the server confirms the handshake,
    /// so a rejected 0-RTT attempt loses nothing.
    pub zero_rtt: bool,
    /// Local address of the client's UDP socket; `None` binds the
    /// unspecified address of the server's family, port 0.
    pub bind: Option<SocketAddr>,
    /// QUIC keep-alive and idle timeout.
    pub liveness: QuicLiveness,
}

impl Default for QuicClientOptions {
    fn default() -> Self {
        Self {
            ca_file: None,
            trusted_certs: Vec::new(),
            server_name: None,
            alpn: vec![DEFAULT_ALPN.to_string()],
            zero_rtt: true,
            bind: None,
            liveness: QuicLiveness::default(),
        }
    }
}

impl QuicClientOptions {
    /// Trusts the certificates in `path` (PEM).
    pub fn with_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Sends and verifies `name` instead of the address's host.
    pub fn with_server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// Binds the client socket to `addr`.
    pub fn with_bind(mut self, addr: SocketAddr) -> Self {
        self.bind = Some(addr);
        self
    }

    /// Sets the QUIC keep-alive and idle timeout.
    pub fn with_liveness(mut self, liveness: QuicLiveness) -> Self {
        self.liveness = liveness;
        self
    }

    /// Turns 0-RTT resumption on or off.
    pub fn with_zero_rtt(mut self, on: bool) -> Self {
        self.zero_rtt = on;
        self
    }
}

/// Where a server's stateless-reset key comes from.
///
/// A QUIC server answers a packet for a connection it does not know with a
/// *stateless reset* carrying a token derived from this key and the
/// connection id. The client accepts it only if the token matches the one
/// the server handed out when the connection was made, so only a restarted
/// server holding the *same* key can tell its old clients "this connection
/// is gone" — they learn it at their next packet instead of after the idle
/// timeout.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ResetKey {
    /// A random key for each start: after a restart, old clients can only
    /// notice through their idle timeout.
    #[default]
    Ephemeral,
    /// The key in this file, created (64 random bytes, mode 0600) on first
    /// start. Keep it secret: whoever holds it can reset your clients'
    /// connections.
    File(PathBuf),
}

/// QUIC settings of a server ([`super::QuicAcceptor`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuicServerOptions {
    /// PEM certificate chain, leaf first. Required.
    pub cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `cert_file`. Required.
    pub key_file: Option<PathBuf>,
    /// ALPN protocols accepted (default `["tether"]`); a client offering
    /// none of them fails the handshake.
    pub alpn: Vec<String>,
    /// Let resuming clients use 0-RTT (default on). A connection is handed
    /// to the application only after its handshake completed, so replayed
    /// 0-RTT packets never reach it.
    pub zero_rtt: bool,
    /// The stateless-reset key (default: a random key for each start).
    pub reset_key: ResetKey,
    /// Longest time a handshake may take (default 10 s, nonzero).
    pub handshake_timeout: Duration,
    /// QUIC keep-alive and idle timeout.
    pub liveness: QuicLiveness,
}

impl Default for QuicServerOptions {
    fn default() -> Self {
        Self {
            cert_file: None,
            key_file: None,
            alpn: vec![DEFAULT_ALPN.to_string()],
            zero_rtt: true,
            reset_key: ResetKey::Ephemeral,
            handshake_timeout: Duration::from_secs(10),
            liveness: QuicLiveness::default(),
        }
    }
}

impl QuicServerOptions {
    /// Serves the certificate chain in `cert` with the key in `key` (PEM).
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        Self {
            cert_file: Some(cert.into()),
            key_file: Some(key.into()),
            ..Self::default()
        }
    }

    /// Loads the stateless-reset key from `path`, creating it on first
    /// start.
    pub fn with_reset_key_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.reset_key = ResetKey::File(path.into());
        self
    }

    /// Allows or refuses 0-RTT.
    pub fn with_zero_rtt(mut self, on: bool) -> Self {
        self.zero_rtt = on;
        self
    }

    /// Sets the QUIC keep-alive and idle timeout.
    pub fn with_liveness(mut self, liveness: QuicLiveness) -> Self {
        self.liveness = liveness;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_maps_onto_quic() {
        let hb = HeartbeatConfig::new(Duration::from_secs(2), Duration::from_secs(3), 2);
        let l = QuicLiveness::from_heartbeat(&hb);
        assert_eq!(l.keep_alive, Some(Duration::from_secs(2)));
        assert_eq!(l.idle_timeout, Duration::from_secs(8));
        assert!(l.validate().is_ok());
    }

    #[test]
    fn bad_liveness_is_refused() {
        let l = QuicLiveness {
            keep_alive: Some(Duration::from_secs(5)),
            idle_timeout: Duration::from_secs(5),
        };
        assert!(l.validate().is_err());
        let l = QuicLiveness {
            keep_alive: None,
            idle_timeout: Duration::ZERO,
        };
        assert!(l.validate().is_err());
    }
}

//! Settings of the UDP transport.

use super::wire::DATA_OVERHEAD;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;
use tether_core::{limits, ConfigError};

/// Shortest accepted pre-shared key, in bytes.
pub const MIN_PSK_LEN: usize = 16;
/// Default largest application payload per message: 1193 bytes, so that a
/// whole datagram is 1232 bytes and crosses any IPv6 path (minimum MTU 1280
/// minus 48 bytes of IPv6 and UDP headers) without fragmentation.
pub const DEFAULT_MAX_PAYLOAD: usize = 1232 - DATA_OVERHEAD;
/// Largest configurable payload (loopback and jumbo-frame networks only).
pub const MAX_PAYLOAD_LIMIT: usize = 65_000;

/// Where the server's static key (which signs "unknown session" signals)
/// comes from. A restarted server can prove it no longer knows a session
/// only if it has the same static key as before the restart.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum StaticKey {
    /// Derived from the PSK (default): nothing to store, the same after every
    /// restart and on every server sharing the PSK. Any PSK holder can then
    /// compute reset tokens, but a PSK holder can already impersonate the
    /// server, so this grants nothing new.
    #[default]
    FromPsk,
    /// Read from this file (exactly 32 bytes), created with random bytes and
    /// mode 0600 on first start. Keeps reset tokens out of the PSK holders'
    /// reach; the file must survive restarts.
    File(PathBuf),
    /// This key.
    Bytes([u8; 32]),
}

impl fmt::Debug for StaticKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FromPsk => f.write_str("FromPsk"),
            Self::File(p) => f.debug_tuple("File").field(p).finish(),
            Self::Bytes(_) => f.write_str("Bytes(<redacted>)"),
        }
    }
}

/// Settings of the UDP transport, on both sides.
#[derive(Clone, PartialEq, Eq)]
pub struct UdpOptions {
    /// Pre-shared key, the same on client and server; at least 16 bytes (32
    /// random bytes recommended). Required: there is no default.
    pub psk: Vec<u8>,
    /// Server only: the key that signs stateless "unknown session" signals.
    pub static_key: StaticKey,
    /// Largest application payload per message, in bytes, 1..=65000
    /// (default [`DEFAULT_MAX_PAYLOAD`]). Larger messages are refused, one
    /// by one; they never panic or end the connection.
    pub max_payload: usize,
    /// Client only: give up a handshake after this long. `None` (the
    /// default): the attempt lasts as long as the client's connect timeout
    /// (`backoff.min_connect_timeout` and the backoff rule), like every
    /// other transport's; a shorter value ends it earlier.
    pub handshake_timeout: Option<Duration>,
    /// Client only: first hello retransmission delay, doubled up to 1 s
    /// (default 100 ms).
    pub handshake_retry: Duration,
    /// An unanswered ping is retransmitted this often until any
    /// authenticated packet arrives (default 1 s): one lost datagram must
    /// not cost a whole heartbeat timeout, and a restarted server gets the
    /// chance to answer "unknown session" soon after it is back.
    pub probe_interval: Duration,
    /// Server only: most "unknown session" replies per second (default 64;
    /// 0 disables them). Replies are also never larger than the packet
    /// that caused them.
    pub reset_rate: u32,
}

impl Default for UdpOptions {
    fn default() -> Self {
        Self {
            psk: Vec::new(),
            static_key: StaticKey::default(),
            max_payload: DEFAULT_MAX_PAYLOAD,
            handshake_timeout: None,
            handshake_retry: Duration::from_millis(100),
            probe_interval: Duration::from_secs(1),
            reset_rate: 64,
        }
    }
}

impl fmt::Debug for UdpOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpOptions")
            .field("psk", &format_args!("<{} bytes>", self.psk.len()))
            .field("static_key", &self.static_key)
            .field("max_payload", &self.max_payload)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("handshake_retry", &self.handshake_retry)
            .field("probe_interval", &self.probe_interval)
            .field("reset_rate", &self.reset_rate)
            .finish()
    }
}

impl UdpOptions {
    /// Default options with pre-shared key `psk`.
    pub fn with_psk(psk: impl Into<Vec<u8>>) -> Self {
        Self {
            psk: psk.into(),
            ..Self::default()
        }
    }

    /// Checks every value; see the field docs.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.psk.is_empty() {
            return Err(ConfigError::new(
                "udp.psk",
                "missing: UDP needs a pre-shared key of at least 16 bytes on both sides",
            ));
        }
        if self.psk.len() < MIN_PSK_LEN {
            return Err(ConfigError::new(
                "udp.psk",
                format!(
                    "too short: {} bytes, need at least {MIN_PSK_LEN} (32 random bytes recommended)",
                    self.psk.len()
                ),
            ));
        }
        if self.max_payload == 0 || self.max_payload > MAX_PAYLOAD_LIMIT {
            return Err(ConfigError::new(
                "udp.max_payload",
                format!("must be 1..={MAX_PAYLOAD_LIMIT} bytes"),
            ));
        }
        if let Some(t) = self.handshake_timeout {
            limits::positive_duration("udp.handshake_timeout", t)?;
        }
        limits::positive_duration("udp.handshake_retry", self.handshake_retry)?;
        limits::positive_duration("udp.probe_interval", self.probe_interval)?;
        if let StaticKey::File(p) = &self.static_key {
            if p.as_os_str().is_empty() {
                return Err(ConfigError::new("udp.static_key", "empty file path"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psk_is_required_and_redacted() {
        let err = UdpOptions::default().validate().unwrap_err();
        assert_eq!(err.field, "udp.psk");
        assert!(err.problem.contains("missing"));
        let err = UdpOptions::with_psk(vec![1; 15]).validate().unwrap_err();
        assert!(err.problem.contains("too short"), "{err}");
        let ok = UdpOptions::with_psk(vec![0x5a; 32]);
        ok.validate().unwrap();
        assert!(!format!("{ok:?}").contains("90"), "psk bytes leak: {ok:?}");
        let big = UdpOptions {
            max_payload: MAX_PAYLOAD_LIMIT + 1,
            ..ok
        };
        assert_eq!(big.validate().unwrap_err().field, "udp.max_payload");
    }
}

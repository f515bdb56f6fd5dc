//! The faults a drill injects and what each must look like to a client of
//! each transport.

use super::transport::is_datagram;
use tether_core::DisconnectReason;
use tether_transports::Scheme;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// Stream transports: the proxy closes every connection with FIN.
    /// Datagram transports: the server closes every connection
    /// (`Server::close`), since a UDP proxy has no connection to close.
    Close,
    /// The proxy resets every connection (RST); stream transports only.
    Reset,
    /// The proxy drops all traffic and keeps the sockets open.
    BlackHole,
    /// The server is dropped and a new one started: stream transports on
    /// a new port (the proxy is pointed at it), datagram transports on the
    /// same port with the same reset key.
    Restart,
}

impl FaultKind {
    pub const ALL: [FaultKind; 4] = [Self::Close, Self::Reset, Self::BlackHole, Self::Restart];

    /// The name used by `--faults` and in JSON.
    pub fn key(self) -> &'static str {
        match self {
            Self::Close => "close",
            Self::Reset => "reset",
            Self::BlackHole => "blackhole",
            Self::Restart => "restart",
        }
    }

    pub fn from_key(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.key() == key)
    }

    /// The name used in progress lines and table titles.
    pub fn title(self) -> &'static str {
        match self {
            Self::Close => "orderly close",
            Self::Reset => "reset",
            Self::BlackHole => "black hole",
            Self::Restart => "server restart",
        }
    }

    /// Why this fault is not run on `scheme`, if it is not.
    pub fn skipped_on(self, scheme: Scheme) -> Option<&'static str> {
        match self {
            Self::Reset if is_datagram(scheme) => Some(
                "datagram transports have no RST to inject; their reset signal (a restarted \
                 server's verified answer) is checked under `server restart`",
            ),
            _ => None,
        }
    }

    /// The disconnect reasons a client of `scheme` may report for this fault.
    pub fn expected(self, scheme: Scheme) -> &'static [DisconnectReason] {
        use DisconnectReason as R;
        match (self, scheme) {
            // The proxy's FIN carries no close_notify: a TLS truncation.
            (Self::Close, Scheme::Tls) => &[R::Reset],
            (Self::Close, _) => &[R::PeerClosed],
            (Self::Reset, _) => &[R::Reset],
            (Self::BlackHole, _) => &[R::Timeout],
            // Only a verified reset signal yields `reset` here; a timeout
            // would mean the signal never came.
            (Self::Restart, Scheme::Quic | Scheme::Udp) => &[R::Reset],
            (Self::Restart, _) => &[R::PeerClosed, R::Reset],
        }
    }

    /// Why a client of `scheme` reports what [`FaultKind::expected`] says:
    /// printed in the table header.
    pub fn why(self, scheme: Scheme) -> &'static str {
        match (self, scheme) {
            (Self::Close, Scheme::Tcp) => "FIN from the proxy: an orderly TCP close",
            (Self::Close, Scheme::Tls) => {
                "FIN from the proxy without TLS close_notify: a truncation, which TLS reports as reset"
            }
            (Self::Close, Scheme::Quic) => {
                "the server closes every connection: QUIC CONNECTION_CLOSE"
            }
            (Self::Close, Scheme::Udp) => {
                "the server closes every connection: an authenticated close packet"
            }
            (Self::Reset, Scheme::Tls) => "RST under TLS: reset",
            (Self::Reset, _) => "RST from the proxy",
            (Self::BlackHole, Scheme::Quic) => {
                "silence both ways: QUIC idle timeout or tether heartbeat, whichever fires first"
            }
            (Self::BlackHole, _) => "silence both ways: only the heartbeat can tell",
            (Self::Restart, Scheme::Tcp) => {
                "the dropped server closes its sockets: FIN (or RST if data was unread)"
            }
            (Self::Restart, Scheme::Tls) => {
                "the dropped server sends close_notify: peer_closed (reset if TCP ends first)"
            }
            (Self::Restart, Scheme::Quic) => {
                "the new server holds the same reset key file: a stateless reset at the \
                 client's next packet, long before the bound"
            }
            (Self::Restart, Scheme::Udp) => {
                "the new server derives the same static key from the PSK: a verified \
                 unknown-session signal at the client's next packet, long before the bound"
            }
        }
    }

    /// `peer_closed` or `peer_closed|reset`.
    pub fn expected_text(self, scheme: Scheme) -> String {
        self.expected(scheme)
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join("|")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_transport_has_an_expectation_for_every_fault_it_runs() {
        for scheme in [Scheme::Tcp, Scheme::Tls, Scheme::Quic, Scheme::Udp] {
            for fault in FaultKind::ALL {
                if fault.skipped_on(scheme).is_none() {
                    assert!(!fault.expected(scheme).is_empty());
                    assert!(!fault.why(scheme).is_empty());
                }
            }
        }
        assert!(FaultKind::Reset.skipped_on(Scheme::Udp).is_some());
        assert!(FaultKind::Reset.skipped_on(Scheme::Tls).is_none());
        assert_eq!(FaultKind::Close.expected_text(Scheme::Tls), "reset");
        assert_eq!(FaultKind::Restart.expected_text(Scheme::Quic), "reset");
    }
}

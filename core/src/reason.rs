//! Why a connection ended or a connection attempt failed.

use std::fmt;
use std::io;

/// Why a connection ended (or never started).
///
/// Every transport classifies the end of a connection into one of these, so
/// that applications see the same reasons whatever carries their bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum DisconnectReason {
    /// The peer closed the connection in an orderly way (TCP FIN, TLS
    /// close_notify, QUIC application close).
    PeerClosed = 1,
    /// The connection was reset abruptly (TCP RST, QUIC stateless reset, an
    /// "unknown session" reply from a restarted UDP server).
    Reset = 2,
    /// The peer stopped proving it is alive: heartbeat replies missed, the
    /// idle timeout passed, or the kernel gave up (keepalive /
    /// TCP_USER_TIMEOUT).
    Timeout = 3,
    /// A connection attempt was refused by the peer.
    ConnectRefused = 4,
    /// A connection attempt did not finish within the connect timeout.
    ConnectTimeout = 5,
    /// The peer's network or host could not be reached.
    Unreachable = 6,
    /// The peer sent something that breaks the protocol (bad frame, frame too
    /// long, failed handshake).
    ProtocolError = 7,
    /// This side closed the connection on purpose.
    ClosedLocally = 8,
    /// Any other I/O failure.
    Io = 9,
    /// The server replaced this connection with a newer one that presented
    /// the same client id.
    TakenOver = 10,
    /// tether itself failed (an internal panic); the detail carries the
    /// panic message. The object that reports it has ended.
    Internal = 11,
    /// The peer's TLS certificate was refused: unknown or untrusted issuer,
    /// expired, revoked, malformed, or a CA certificate used as an end
    /// entity (this side's own certificate refused by the peer lands here
    /// too).
    TlsCertificate = 12,
    /// The peer's certificate is valid but not for the name that was
    /// dialed (check `server_name`).
    TlsNameMismatch = 13,
}

impl DisconnectReason {
    /// A short, stable, lowercase name (`"peer_closed"`, `"reset"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PeerClosed => "peer_closed",
            Self::Reset => "reset",
            Self::Timeout => "timeout",
            Self::ConnectRefused => "connect_refused",
            Self::ConnectTimeout => "connect_timeout",
            Self::Unreachable => "unreachable",
            Self::ProtocolError => "protocol_error",
            Self::ClosedLocally => "closed_locally",
            Self::Io => "io",
            Self::TakenOver => "taken_over",
            Self::Internal => "internal",
            Self::TlsCertificate => "tls_certificate",
            Self::TlsNameMismatch => "tls_name_mismatch",
        }
    }

    /// A standard sentence for the reason, used as the detail when nothing
    /// more specific is known.
    pub fn describe(self) -> &'static str {
        match self {
            Self::PeerClosed => "the peer closed the connection",
            Self::Reset => "the connection was reset",
            Self::Timeout => {
                "the peer stopped answering (the transport's idle timeout or the kernel gave up)"
            }
            Self::ConnectRefused => "the connection was refused",
            Self::ConnectTimeout => "no connection within the connect timeout",
            Self::Unreachable => "the peer's network or host is unreachable",
            Self::ProtocolError => "the peer broke the protocol",
            Self::ClosedLocally => "closed by this side",
            Self::Io => "an I/O error",
            Self::TakenOver => "a newer connection took this one over",
            Self::Internal => "an internal error in tether",
            Self::TlsCertificate => "the TLS certificate was refused",
            Self::TlsNameMismatch => "the TLS certificate is not valid for the server name",
        }
    }

    /// True for reasons that arise while dialing rather than on an
    /// established connection.
    pub fn is_connect_failure(self) -> bool {
        matches!(
            self,
            Self::ConnectRefused | Self::ConnectTimeout | Self::Unreachable
        )
    }

    /// True for the reasons a failed TLS (or QUIC) handshake is classified
    /// into when the certificate was the problem.
    pub fn is_certificate_problem(self) -> bool {
        matches!(self, Self::TlsCertificate | Self::TlsNameMismatch)
    }

    /// Classifies an I/O error from an established connection.
    pub fn from_io(err: &io::Error) -> Self {
        use io::ErrorKind as K;
        match err.kind() {
            K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => Self::Reset,
            K::TimedOut => Self::Timeout,
            K::UnexpectedEof => Self::PeerClosed,
            K::InvalidData => Self::ProtocolError,
            K::ConnectionRefused => Self::ConnectRefused,
            K::HostUnreachable | K::NetworkUnreachable | K::NetworkDown => Self::Unreachable,
            _ => match err.raw_os_error() {
                // EHOSTUNREACH / ENETUNREACH arrive as ICMP errors on a live socket.
                Some(113) | Some(101) => Self::Unreachable,
                _ => Self::Io,
            },
        }
    }

    /// Classifies an I/O error from a connection attempt.
    pub fn from_connect_io(err: &io::Error) -> Self {
        match Self::from_io(err) {
            Self::Timeout => Self::ConnectTimeout,
            Self::Reset => Self::ConnectRefused,
            other => other,
        }
    }

    /// The closest `io::ErrorKind`, for code that speaks `io::Error`.
    pub fn io_kind(self) -> io::ErrorKind {
        use io::ErrorKind as K;
        match self {
            Self::PeerClosed => K::UnexpectedEof,
            Self::Reset => K::ConnectionReset,
            Self::Timeout | Self::ConnectTimeout => K::TimedOut,
            Self::ConnectRefused => K::ConnectionRefused,
            Self::Unreachable => K::HostUnreachable,
            Self::ProtocolError | Self::TlsCertificate | Self::TlsNameMismatch => K::InvalidData,
            Self::Internal => K::Other,
            Self::ClosedLocally | Self::TakenOver => K::ConnectionAborted,
            Self::Io => K::Other,
        }
    }

    /// Converts the numeric value used across the C API back to a reason.
    pub fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            1 => Self::PeerClosed,
            2 => Self::Reset,
            3 => Self::Timeout,
            4 => Self::ConnectRefused,
            5 => Self::ConnectTimeout,
            6 => Self::Unreachable,
            7 => Self::ProtocolError,
            8 => Self::ClosedLocally,
            9 => Self::Io,
            10 => Self::TakenOver,
            11 => Self::Internal,
            12 => Self::TlsCertificate,
            13 => Self::TlsNameMismatch,
            _ => return None,
        })
    }
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip() {
        for v in 1..=13 {
            let r = DisconnectReason::from_u32(v).unwrap();
            assert_eq!(r as u32, v);
            assert!(!r.describe().is_empty());
        }
        assert_eq!(DisconnectReason::from_u32(0), None);
        assert_eq!(DisconnectReason::from_u32(14), None);
    }

    #[test]
    fn io_errors_are_classified() {
        let rst = io::Error::from(io::ErrorKind::ConnectionReset);
        assert_eq!(DisconnectReason::from_io(&rst), DisconnectReason::Reset);
        assert_eq!(
            DisconnectReason::from_connect_io(&io::Error::from(io::ErrorKind::TimedOut)),
            DisconnectReason::ConnectTimeout
        );
        assert_eq!(
            DisconnectReason::from_connect_io(&io::Error::from(io::ErrorKind::ConnectionRefused)),
            DisconnectReason::ConnectRefused
        );
    }
}

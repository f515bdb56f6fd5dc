//! The faults a drill injects and what each must look like to a client.

use tether_core::DisconnectReason;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// The proxy closes every connection with FIN.
    Close,
    /// The proxy resets every connection (RST).
    Reset,
    /// The proxy drops all traffic and keeps the sockets open.
    BlackHole,
    /// The server is dropped and a new one started on another port.
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

    /// The disconnect reasons a client may report for this fault.
    pub fn expected(self) -> &'static [DisconnectReason] {
        use DisconnectReason as R;
        match self {
            Self::Close => &[R::PeerClosed],
            Self::Reset => &[R::Reset],
            Self::BlackHole => &[R::Timeout],
            Self::Restart => &[R::PeerClosed, R::Reset],
        }
    }

    /// `peer_closed` or `peer_closed|reset`.
    pub fn expected_text(self) -> String {
        self.expected()
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join("|")
    }
}

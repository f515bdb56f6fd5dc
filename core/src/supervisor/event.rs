//! Lifecycle events and driver actions of the supervisor.

use crate::{Detail, DisconnectReason};
use std::time::Duration;

/// One step in the life of a supervised connection.
///
/// Every dial gets a new `generation` (1, 2, 3, ...). Per generation the
/// supervisor emits, in this order and each at most once: `Connecting`, then
/// either `ConnectFailed` or `Connected` followed later by exactly one
/// `Disconnected`. Between generations it emits `Waiting`. The stream ends
/// with exactly one `Closed` or `GaveUp`, after which nothing is emitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lifecycle {
    /// A connection attempt starts.
    Connecting {
        /// The generation this attempt would establish.
        generation: u64,
        /// 1 for the first attempt after a reset, then 2, 3, ...
        attempt: u32,
    },
    /// The attempt succeeded; the connection is up.
    Connected {
        /// The generation of the new connection.
        generation: u64,
        /// The attempt that succeeded.
        attempt: u32,
    },
    /// The attempt failed before a connection was established.
    ConnectFailed {
        /// The generation of the failed attempt.
        generation: u64,
        /// The attempt number.
        attempt: u32,
        /// Refused, timed out, unreachable, protocol error, ...
        reason: DisconnectReason,
        /// What went wrong, in words (the OS error, the TLS alert, ...).
        detail: Detail,
    },
    /// An established connection ended.
    Disconnected {
        /// The generation of the connection that ended.
        generation: u64,
        /// Why it ended.
        reason: DisconnectReason,
        /// What happened, in words.
        detail: Detail,
    },
    /// Waiting before the next attempt.
    Waiting {
        /// The attempt number that will follow the wait.
        attempt: u32,
        /// How long the wait lasts (jitter included).
        delay: Duration,
    },
    /// Closed on request; terminal.
    Closed,
    /// The backoff policy's limits were reached; terminal.
    GaveUp {
        /// The reason of the last failure.
        reason: DisconnectReason,
        /// The detail of the last failure, and which limit was reached.
        detail: Detail,
    },
}

impl Lifecycle {
    /// A short lowercase name of the event kind.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Connecting { .. } => "connecting",
            Self::Connected { .. } => "connected",
            Self::ConnectFailed { .. } => "connect_failed",
            Self::Disconnected { .. } => "disconnected",
            Self::Waiting { .. } => "waiting",
            Self::Closed => "closed",
            Self::GaveUp { .. } => "gave_up",
        }
    }

    /// The reason and detail of a `ConnectFailed`, `Disconnected` or
    /// `GaveUp`.
    pub fn cause(&self) -> Option<(DisconnectReason, &Detail)> {
        match self {
            Self::ConnectFailed { reason, detail, .. }
            | Self::Disconnected { reason, detail, .. }
            | Self::GaveUp { reason, detail } => Some((*reason, detail)),
            _ => None,
        }
    }

    /// True for `Closed` and `GaveUp`.
    pub fn is_terminal(&self) -> bool {
        matches!(self, Self::Closed | Self::GaveUp { .. })
    }
}

/// Something the driver must do for the supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Start dialing; report the outcome with `generation`.
    Dial {
        /// The generation to report back.
        generation: u64,
        /// The supervisor fails the attempt with a connect timeout after
        /// this long (the driver may also enforce it).
        timeout: Duration,
    },
    /// Abandon the attempt of `generation` (timed out, or closed locally);
    /// a late success must be closed, not used.
    AbortDial {
        /// The abandoned generation.
        generation: u64,
    },
    /// Close the established connection of `generation`.
    CloseLink {
        /// The generation to close.
        generation: u64,
    },
}

//! `ConnectError`: a failed connection attempt, as transports report it
//! (the dialing itself, async, lives with the transports:
//! `tether_transports::Reconnect`).

use crate::DisconnectReason;
use std::fmt;

/// A failed connection attempt: a classified reason plus detail for humans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectError {
    /// Refused, timed out, unreachable, protocol error (failed handshake), ...
    pub reason: DisconnectReason,
    /// What went wrong, e.g. the OS error text.
    pub detail: String,
}

impl ConnectError {
    /// An error with `reason` and `detail`.
    pub fn new(reason: DisconnectReason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }

    /// The reason and detail as a [`crate::Cause`].
    pub fn cause(&self) -> crate::Cause {
        crate::Cause::new(self.reason, self.detail.as_str())
    }

    /// Classifies an I/O error from a connect call.
    pub fn from_io(err: &std::io::Error) -> Self {
        Self::new(DisconnectReason::from_connect_io(err), err.to_string())
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.detail)
    }
}

impl std::error::Error for ConnectError {}

//! `Cause`: why something ended, as a classified [`DisconnectReason`] plus
//! a human-readable detail ("certificate not valid for name \"db\"",
//! "no reply to 2 heartbeats within 20 s").
//!
//! The reason is for programs (retry or not, count, alert); the detail is
//! for the person reading the log. Every connect failure and every
//! disconnect carries both, through Rust, C and Python.

use crate::DisconnectReason;
use std::fmt;
use std::sync::Arc;

/// The human-readable part of a [`Cause`]: shared text, cheap to clone,
/// empty when nothing more than the reason is known.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Detail(Option<Arc<str>>);

impl Detail {
    /// No detail.
    pub const fn none() -> Self {
        Self(None)
    }

    /// The detail text; `""` when there is none.
    pub fn as_str(&self) -> &str {
        self.0.as_deref().unwrap_or("")
    }

    /// True when there is no text.
    pub fn is_empty(&self) -> bool {
        self.as_str().is_empty()
    }
}

impl fmt::Debug for Detail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Detail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<String> for Detail {
    fn from(s: String) -> Self {
        if s.is_empty() {
            Self(None)
        } else {
            Self(Some(Arc::from(s)))
        }
    }
}

impl From<&str> for Detail {
    fn from(s: &str) -> Self {
        if s.is_empty() {
            Self(None)
        } else {
            Self(Some(Arc::from(s)))
        }
    }
}

/// Why a connection ended or an attempt failed: the reason and its detail.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cause {
    /// The classified reason.
    pub reason: DisconnectReason,
    /// What happened, in words (may be empty).
    pub detail: Detail,
}

impl Cause {
    /// A cause with `reason` and `detail`.
    pub fn new(reason: DisconnectReason, detail: impl Into<Detail>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }
}

impl Cause {
    /// This side closed on purpose.
    pub fn closed_by_application() -> Self {
        Self::new(DisconnectReason::ClosedLocally, "closed by the application")
    }

    /// The liveness rule's verdict: nothing was received for `silent_for`,
    /// past the rule's detection `bound`.
    pub fn silent(silent_for: std::time::Duration, bound: std::time::Duration) -> Self {
        Self::new(
            DisconnectReason::Timeout,
            format!(
                "nothing received for {} (liveness bound {})",
                human(silent_for),
                human(bound)
            ),
        )
    }

    /// A write made no progress for `bound`: the peer stopped reading.
    pub fn write_stall(bound: std::time::Duration) -> Self {
        Self::new(
            DisconnectReason::Timeout,
            format!(
                "a write made no progress for {}: the peer stopped reading",
                human(bound)
            ),
        )
    }
}

impl From<DisconnectReason> for Cause {
    /// The reason alone, with the reason's standard wording as detail.
    fn from(reason: DisconnectReason) -> Self {
        Self::new(reason, reason.describe())
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.detail.is_empty() {
            write!(f, "{}", self.reason)
        } else {
            write!(f, "{}: {}", self.reason, self.detail)
        }
    }
}

/// A duration in words for details: `"150 ms"`, `"20 s"`, `"1.5 s"`.
pub fn human(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms % 1000 == 0 {
        format!("{} s", ms / 1000)
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations_read_well() {
        assert_eq!(human(Duration::from_millis(150)), "150 ms");
        assert_eq!(human(Duration::from_secs(20)), "20 s");
        assert_eq!(human(Duration::from_millis(1500)), "1.5 s");
    }

    #[test]
    fn a_bare_reason_gets_its_standard_words() {
        let c = Cause::from(DisconnectReason::Reset);
        assert_eq!(c.detail.as_str(), DisconnectReason::Reset.describe());
        assert!(c.to_string().starts_with("reset: "));
        let d = Cause::new(DisconnectReason::Io, "");
        assert!(d.detail.is_empty());
        assert_eq!(d.to_string(), "io");
    }
}

//! Time for the driver, taken from tokio so that paused-time tests and real
//! runs agree.

use std::pin::Pin;
use std::time::Instant;
use tokio::time::Sleep;

/// Now, as a std `Instant` (tokio's clock: pausable in tests).
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// One reusable timer for a driver loop. A deadline that moves later (a
/// heartbeat pushed back by traffic) leaves the timer where it is: it fires
/// early, the state machine finds nothing due and asks for the new
/// deadline. So a busy connection re-arms the timer about once per deadline,
/// not once per frame.
pub(crate) struct Timer {
    sleep: Pin<Box<Sleep>>,
    armed: Option<Instant>,
}

impl Timer {
    pub(crate) fn new() -> Self {
        Self {
            sleep: Box::pin(tokio::time::sleep_until(tokio::time::Instant::now())),
            armed: None,
        }
    }

    /// Makes the timer fire no later than `deadline`.
    pub(crate) fn arm(&mut self, deadline: Option<Instant>) {
        if let Some(d) = deadline {
            if self.armed.is_none_or(|armed| d < armed) {
                self.sleep.as_mut().reset(tokio::time::Instant::from_std(d));
                self.armed = Some(d);
            }
        }
    }

    /// Completes when the armed deadline passes; pending while unarmed.
    pub(crate) async fn fired(&mut self) {
        if self.armed.is_none() {
            return std::future::pending().await;
        }
        self.sleep.as_mut().await;
        self.armed = None;
    }
}

/// The earlier of two optional deadlines.
pub(crate) fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

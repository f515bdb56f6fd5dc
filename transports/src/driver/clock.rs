//! Time for the driver, taken from tokio so that paused-time tests and real
//! runs agree.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
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

    /// The deadline the timer is armed for.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.armed
    }

    /// Completes when the armed deadline passes; pending while unarmed.
    pub(crate) async fn fired(&mut self) {
        std::future::poll_fn(|cx| self.poll_fired(cx)).await
    }

    /// `Ready` once the armed deadline has passed (the timer is then
    /// unarmed); `Pending` while unarmed or not yet due.
    pub(crate) fn poll_fired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.armed.is_none() {
            return Poll::Pending;
        }
        ready!(self.sleep.as_mut().poll(cx));
        self.armed = None;
        Poll::Ready(())
    }
}

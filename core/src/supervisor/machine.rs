//! The supervisor state machine.

use super::event::{Action, Lifecycle};
use crate::backoff::Backoff;
use crate::release::ReleaseIfEmpty;
use crate::{Cause, DisconnectReason};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Where the supervised connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Created, `start` not called yet.
    Idle,
    /// Dialing `generation`; fails with a connect timeout at `deadline`.
    Connecting {
        /// The generation being dialed.
        generation: u64,
        /// When the attempt times out.
        deadline: Instant,
    },
    /// Connection `generation` is up.
    Connected {
        /// The live generation.
        generation: u64,
        /// When it came up.
        since: Instant,
    },
    /// Waiting until `until` before dialing again.
    Waiting {
        /// When the next attempt starts.
        until: Instant,
    },
    /// Closed on request (terminal).
    Closed,
    /// Gave up after the backoff's limits (terminal).
    GaveUp,
}

/// Keeps one logical connection alive: dials, notices failures, waits with
/// backoff, dials again; reports every step exactly once.
///
/// Inputs: [`Supervisor::start`], [`Supervisor::handle_connected`],
/// [`Supervisor::handle_connect_failed`], [`Supervisor::handle_disconnected`],
/// [`Supervisor::handle_close`], [`Supervisor::handle_timeout`]. Outputs, to
/// be drained after every input in this order: [`Supervisor::poll_action`],
/// [`Supervisor::poll_timeout`], [`Supervisor::poll_event`].
///
/// Reports naming a generation other than the current one are stale (a late
/// result of an abandoned attempt) and are ignored; the `handle_*` methods
/// return `false` for them so the driver can drop that connection.
#[derive(Debug)]
pub struct Supervisor<B> {
    backoff: B,
    state: State,
    generation: u64,
    attempt: u32,
    events: VecDeque<Lifecycle>,
    actions: VecDeque<Action>,
}

impl<B: Backoff> Supervisor<B> {
    /// A supervisor using `backoff` between attempts.
    pub fn new(backoff: B) -> Self {
        Self {
            backoff,
            state: State::Idle,
            generation: 0,
            attempt: 0,
            events: VecDeque::new(),
            actions: VecDeque::new(),
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The backoff policy.
    pub fn backoff(&self) -> &B {
        &self.backoff
    }

    /// The generation of the live connection, if one is up.
    pub fn connected_generation(&self) -> Option<u64> {
        match self.state {
            State::Connected { generation, .. } => Some(generation),
            _ => None,
        }
    }

    /// True once `Closed` or `GaveUp` has been reached.
    pub fn is_terminal(&self) -> bool {
        matches!(self.state, State::Closed | State::GaveUp)
    }

    /// Starts the first attempt. Does nothing unless idle.
    pub fn start(&mut self, now: Instant) {
        if self.state == State::Idle {
            self.dial(now);
        }
    }

    /// The dial of `generation` succeeded at `now`.
    pub fn handle_connected(&mut self, generation: u64, now: Instant) -> bool {
        match self.state {
            State::Connecting { generation: g, .. } if g == generation => {
                self.backoff.on_connected(now);
                self.state = State::Connected {
                    generation,
                    since: now,
                };
                self.events.push_back(Lifecycle::Connected {
                    generation,
                    attempt: self.attempt,
                });
                true
            }
            _ => false,
        }
    }

    /// The dial of `generation` failed at `now`: `cause` is a
    /// [`DisconnectReason`] or a [`Cause`] with its detail.
    pub fn handle_connect_failed(
        &mut self,
        generation: u64,
        cause: impl Into<Cause>,
        now: Instant,
    ) -> bool {
        match self.state {
            State::Connecting { generation: g, .. } if g == generation => {
                let cause = cause.into();
                self.events.push_back(Lifecycle::ConnectFailed {
                    generation,
                    attempt: self.attempt,
                    reason: cause.reason,
                    detail: cause.detail.clone(),
                });
                self.wait_or_give_up(cause, now);
                true
            }
            _ => false,
        }
    }

    /// The established connection `generation` ended at `now`: `cause` is
    /// a [`DisconnectReason`] or a [`Cause`] with its detail.
    pub fn handle_disconnected(
        &mut self,
        generation: u64,
        cause: impl Into<Cause>,
        now: Instant,
    ) -> bool {
        match self.state {
            State::Connected { generation: g, .. } if g == generation => {
                let cause = cause.into();
                self.events.push_back(Lifecycle::Disconnected {
                    generation,
                    reason: cause.reason,
                    detail: cause.detail.clone(),
                });
                self.backoff.on_disconnected(now);
                self.wait_or_give_up(cause, now);
                true
            }
            _ => false,
        }
    }

    /// Close on request. Idempotent: later calls do nothing.
    pub fn handle_close(&mut self, _now: Instant) {
        match self.state {
            State::Closed | State::GaveUp => return,
            State::Connected { generation, .. } => {
                self.actions.push_back(Action::CloseLink { generation });
                self.events.push_back(Lifecycle::Disconnected {
                    generation,
                    reason: DisconnectReason::ClosedLocally,
                    detail: Cause::closed_by_application().detail,
                });
            }
            State::Connecting { generation, .. } => {
                self.actions.push_back(Action::AbortDial { generation });
                self.events.push_back(Lifecycle::ConnectFailed {
                    generation,
                    attempt: self.attempt,
                    reason: DisconnectReason::ClosedLocally,
                    detail: "closed by the application while connecting".into(),
                });
            }
            State::Idle | State::Waiting { .. } => {}
        }
        self.state = State::Closed;
        self.events.push_back(Lifecycle::Closed);
    }

    /// Time advanced to `now`: starts the next attempt after a wait, or fails
    /// an attempt that exceeded its connect timeout.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::Waiting { until } if now >= until => self.dial(now),
            State::Connecting {
                generation,
                deadline,
            } if now >= deadline => {
                self.actions.push_back(Action::AbortDial { generation });
                let waited = self.backoff.connect_timeout();
                self.handle_connect_failed(
                    generation,
                    Cause::new(
                        DisconnectReason::ConnectTimeout,
                        format!("no connection within {}", crate::cause::human(waited)),
                    ),
                    now,
                );
            }
            _ => {}
        }
    }

    /// The next action for the driver.
    pub fn poll_action(&mut self) -> Option<Action> {
        let action = self.actions.pop_front();
        // Steps are rare: a supervisor between them holds no queue.
        self.actions.release_if_empty();
        action
    }

    /// When `handle_timeout` must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Waiting { until } => Some(until),
            State::Connecting { deadline, .. } => Some(deadline),
            _ => None,
        }
    }

    /// The next lifecycle event to report.
    pub fn poll_event(&mut self) -> Option<Lifecycle> {
        let event = self.events.pop_front();
        self.events.release_if_empty();
        event
    }

    fn dial(&mut self, now: Instant) {
        self.generation += 1;
        self.attempt = self.backoff.attempt().saturating_add(1);
        let timeout = self.backoff.connect_timeout();
        let deadline = now
            .checked_add(timeout)
            .unwrap_or(now + Duration::from_secs(86_400));
        self.state = State::Connecting {
            generation: self.generation,
            deadline,
        };
        self.events.push_back(Lifecycle::Connecting {
            generation: self.generation,
            attempt: self.attempt,
        });
        self.actions.push_back(Action::Dial {
            generation: self.generation,
            timeout,
        });
    }

    fn wait_or_give_up(&mut self, cause: Cause, now: Instant) {
        match self.backoff.next_delay(now) {
            Some(delay) => {
                let until = now
                    .checked_add(delay)
                    .unwrap_or(now + Duration::from_secs(86_400));
                self.state = State::Waiting { until };
                self.events.push_back(Lifecycle::Waiting {
                    attempt: self.backoff.attempt().saturating_add(1),
                    delay,
                });
            }
            None => {
                self.state = State::GaveUp;
                let detail = format!(
                    "{} (gave up after attempt {})",
                    if cause.detail.is_empty() {
                        cause.reason.describe()
                    } else {
                        cause.detail.as_str()
                    },
                    self.backoff.attempt()
                );
                self.events.push_back(Lifecycle::GaveUp {
                    reason: cause.reason,
                    detail: detail.into(),
                });
            }
        }
    }
}

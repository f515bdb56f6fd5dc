//! One direction of traffic through a proxy: what the mode in force does
//! to each chunk (TCP) or datagram (UDP) read, and what waits for its
//! delivery time. The TCP and the UDP proxy both shape traffic with this.

use super::mode::{Direction, Mode};
use bytes::{Buf, Bytes};
use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;

/// Bytes held per direction before the lane counts as full: TCP stops
/// reading, UDP drops (a full router queue).
pub(crate) const MAX_HELD: usize = 256 * 1024;

/// What became of a unit offered to a lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Queued for delivery.
    Queued,
    /// Dropped by a black hole, a cut, loss, or a full lane.
    Dropped,
}

pub(crate) struct Lane {
    pub dir: Direction,
    queue: VecDeque<(Instant, Bytes)>,
    held: usize,
    last_due: Option<Instant>,
}

impl Lane {
    pub fn new(dir: Direction) -> Self {
        Self {
            dir,
            queue: VecDeque::new(),
            held: 0,
            last_due: None,
        }
    }

    /// Bytes waiting in this lane.
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.held
    }

    pub fn is_full(&self) -> bool {
        self.held >= MAX_HELD
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Applies `mode` to `unit`, read at `now`: drops it, or queues it for
    /// its delivery time. Order is kept: nothing is due before what was
    /// queued earlier.
    pub fn admit(
        &mut self,
        mode: Mode,
        rng: &mut fastrand::Rng,
        now: Instant,
        unit: Bytes,
    ) -> Admit {
        if mode.fault.drops(self.dir) || mode.loses(rng) || self.is_full() {
            return Admit::Dropped;
        }
        let latency = mode.fault.latency(rng);
        let mut due = now
            .checked_add(latency)
            .unwrap_or(now + Duration::from_secs(86_400));
        if let Some(last) = self.last_due {
            due = due.max(last);
        }
        self.last_due = Some(due);
        self.held += unit.len();
        self.queue.push_back((due, unit));
        Admit::Queued
    }

    /// Once the path broke in this direction, what was still in flight is
    /// lost too: empties the lane and returns (units, bytes) dropped.
    pub fn purge(&mut self, mode: Mode) -> (usize, usize) {
        if !mode.fault.drops(self.dir) || self.queue.is_empty() {
            return (0, 0);
        }
        let dropped = (self.queue.len(), self.held);
        self.queue.clear();
        self.held = 0;
        dropped
    }

    /// Empties the lane whatever the mode; returns the units dropped.
    pub fn clear(&mut self) -> usize {
        let n = self.queue.len();
        self.queue.clear();
        self.held = 0;
        n
    }

    /// When the first unit falls due; `None` when empty or paused.
    pub fn next_due(&self, mode: Mode) -> Option<Instant> {
        if mode.paused {
            return None;
        }
        self.queue.front().map(|(due, _)| *due)
    }

    /// The first unit, if it is due at `now` (ignores pause: callers check
    /// [`Lane::next_due`] first).
    pub fn due_front(&self, now: Instant) -> Option<&Bytes> {
        self.queue
            .front()
            .filter(|(due, _)| *due <= now)
            .map(|(_, unit)| unit)
    }

    /// Marks `n` bytes of the first unit delivered (a TCP partial write);
    /// the unit leaves the lane once all of it is.
    pub fn consume(&mut self, n: usize) {
        if let Some((_, unit)) = self.queue.front_mut() {
            let n = n.min(unit.len());
            unit.advance(n);
            self.held -= n;
            if unit.is_empty() {
                self.queue.pop_front();
            }
        }
    }

    /// Removes the first unit whole (a datagram sent or lost on the way).
    pub fn pop(&mut self) {
        if let Some((_, unit)) = self.queue.pop_front() {
            self.held -= unit.len();
        }
    }
}

/// The earliest of the lanes' due times still in the future: when to wake
/// up next (what is already due waits for writability instead).
pub(crate) fn next_wake(now: Instant, dues: [Option<Instant>; 2]) -> Option<Instant> {
    dues.into_iter().flatten().filter(|d| *d > now).min()
}

/// Sleeps until `deadline`, or forever without one (a disabled timer in a
/// `select!`).
pub(crate) async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::Fault;

    fn unit(n: usize) -> Bytes {
        Bytes::from(vec![0u8; n])
    }

    #[test]
    fn jitter_never_reorders() {
        let mut rng = fastrand::Rng::with_seed(1);
        let mut lane = Lane::new(Direction::Upstream);
        let mode = Mode {
            fault: Fault::Delay {
                base: Duration::from_millis(10),
                jitter: Duration::from_millis(50),
            },
            ..Mode::default()
        };
        let now = Instant::now();
        for i in 0..100 {
            let at = now + Duration::from_micros(i);
            assert_eq!(lane.admit(mode, &mut rng, at, unit(1)), Admit::Queued);
        }
        let dues: Vec<_> = lane.queue.iter().map(|(d, _)| *d).collect();
        assert!(dues.windows(2).all(|w| w[0] <= w[1]));
        assert!(dues[0] >= now + Duration::from_millis(10));
    }

    #[test]
    fn loss_drops_about_the_given_share_and_replays_with_a_seed() {
        let mode = Mode {
            loss_ppm: 250_000,
            ..Mode::default()
        };
        let run = |seed| {
            let mut rng = fastrand::Rng::with_seed(seed);
            let mut lane = Lane::new(Direction::Downstream);
            let now = Instant::now();
            (0..10_000)
                .map(|_| {
                    let admitted = lane.admit(mode, &mut rng, now, unit(1));
                    lane.pop();
                    admitted
                })
                .collect::<Vec<_>>()
        };
        let first = run(9);
        let lost = first.iter().filter(|a| **a == Admit::Dropped).count();
        assert!((2_000..3_000).contains(&lost), "lost {lost} of 10000");
        assert_eq!(first, run(9), "same seed, same losses");
    }

    #[test]
    fn a_cut_drops_one_way_and_purges_what_was_in_flight() {
        let mut rng = fastrand::Rng::with_seed(3);
        let now = Instant::now();
        let mut up = Lane::new(Direction::Upstream);
        let mut down = Lane::new(Direction::Downstream);
        let pass = Mode::default();
        up.admit(pass, &mut rng, now, unit(5));
        down.admit(pass, &mut rng, now, unit(7));
        let cut = Mode {
            fault: Fault::Cut(Direction::Upstream),
            ..Mode::default()
        };
        assert_eq!(up.purge(cut), (1, 5));
        assert_eq!(down.purge(cut), (0, 0));
        assert_eq!(up.admit(cut, &mut rng, now, unit(1)), Admit::Dropped);
        assert_eq!(down.admit(cut, &mut rng, now, unit(1)), Admit::Queued);
        assert_eq!(down.held(), 8);
    }

    #[test]
    fn a_full_lane_drops_and_partial_delivery_frees_room() {
        let mut rng = fastrand::Rng::with_seed(4);
        let now = Instant::now();
        let mut lane = Lane::new(Direction::Upstream);
        let mode = Mode::default();
        assert_eq!(
            lane.admit(mode, &mut rng, now, unit(MAX_HELD)),
            Admit::Queued
        );
        assert_eq!(lane.admit(mode, &mut rng, now, unit(1)), Admit::Dropped);
        lane.consume(10);
        assert_eq!(lane.held(), MAX_HELD - 10);
        assert_eq!(lane.admit(mode, &mut rng, now, unit(1)), Admit::Queued);
        let paused = Mode {
            paused: true,
            ..Mode::default()
        };
        assert_eq!(lane.next_due(paused), None);
        assert_eq!(lane.next_due(mode), Some(now));
    }
}

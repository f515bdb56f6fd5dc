//! Anti-replay: a sliding bitmap over the highest sequence numbers seen
//! (as in IPsec, RFC 4303 3.4.3, and WireGuard), so that each authenticated
//! packet is accepted at most once while moderate reordering is tolerated.

/// Sequence numbers tracked behind the highest one seen.
pub(super) const WINDOW: u64 = 1024;
const WORDS: usize = (WINDOW / 64) as usize;

/// The receive-side replay window of one direction of a session.
#[derive(Debug, Clone)]
pub(super) struct ReplayWindow {
    /// Highest sequence number accepted so far (0: none).
    top: u64,
    /// Bit `s % WINDOW` is set when `s` (within the window) was accepted.
    bits: [u64; WORDS],
}

impl ReplayWindow {
    pub(super) fn new() -> Self {
        Self {
            top: 0,
            bits: [0; WORDS],
        }
    }

    fn bit(seq: u64) -> (usize, u64) {
        let i = seq % WINDOW;
        ((i / 64) as usize, 1u64 << (i % 64))
    }

    /// Accepts `seq` if it is new and not too old, recording it. Call only
    /// after the packet's MAC was verified: forgeries must not move the
    /// window.
    pub(super) fn accept(&mut self, seq: u64) -> bool {
        if seq == 0 {
            return false; // reserved for the handshake
        }
        if seq > self.top {
            let advance = seq - self.top;
            if advance >= WINDOW {
                self.bits = [0; WORDS];
            } else {
                for s in self.top + 1..seq {
                    let (w, m) = Self::bit(s);
                    self.bits[w] &= !m;
                }
            }
            self.top = seq;
            let (w, m) = Self::bit(seq);
            self.bits[w] |= m;
            return true;
        }
        if self.top - seq >= WINDOW {
            return false;
        }
        let (w, m) = Self::bit(seq);
        if self.bits[w] & m != 0 {
            return false;
        }
        self.bits[w] |= m;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_number_once_with_reordering() {
        let mut w = ReplayWindow::new();
        assert!(!w.accept(0));
        assert!(w.accept(1));
        assert!(!w.accept(1));
        assert!(w.accept(5));
        assert!(w.accept(3), "late but inside the window");
        assert!(!w.accept(3));
        assert!(w.accept(2));
        assert!(w.accept(4));
        assert!(!w.accept(5));
    }

    #[test]
    fn old_numbers_fall_out() {
        let mut w = ReplayWindow::new();
        assert!(w.accept(10));
        assert!(w.accept(10 + WINDOW));
        assert!(!w.accept(10), "slid out");
        assert!(w.accept(11 + 1), "inside, never seen");
        assert!(!w.accept(10 + WINDOW));
        // A jump larger than the window clears everything but the top.
        assert!(w.accept(10 + 5 * WINDOW));
        assert!(w.accept(10 + 5 * WINDOW - 1));
        assert!(!w.accept(10 + 4 * WINDOW));
    }

    #[test]
    fn bits_are_cleared_when_reused() {
        let mut w = ReplayWindow::new();
        for s in 1..=3 * WINDOW {
            assert!(w.accept(s), "{s}");
        }
        for s in 2 * WINDOW + 1..=3 * WINDOW {
            assert!(!w.accept(s), "{s}");
        }
    }
}

//! The controls both proxies share: the mode in force, where new traffic
//! goes, and the seed of the random draws (jitter, loss).

use super::mode::{Fault, Mode, LOSS_SCALE};
use std::net::SocketAddr;
use std::sync::Mutex;
use tether_core::ConfigError;
use tokio::sync::watch;

#[derive(Debug)]
pub(crate) struct Switch {
    pub mode: watch::Sender<Mode>,
    upstream: Mutex<SocketAddr>,
    seed: Mutex<Option<u64>>,
}

impl Switch {
    pub fn new(upstream: SocketAddr) -> Self {
        Self {
            mode: watch::Sender::new(Mode::default()),
            upstream: Mutex::new(upstream),
            seed: Mutex::new(None),
        }
    }

    pub fn mode(&self) -> Mode {
        *self.mode.borrow()
    }

    pub fn set_fault(&self, fault: Fault) {
        self.mode.send_modify(|m| m.fault = fault);
    }

    pub fn set_paused(&self, paused: bool) {
        self.mode.send_modify(|m| m.paused = paused);
    }

    /// `percent` in `0.0..=100.0`.
    pub fn set_loss(&self, percent: f64) -> Result<(), ConfigError> {
        if !(0.0..=100.0).contains(&percent) {
            return Err(ConfigError::new(
                "fault.loss",
                format!("must be a percentage between 0 and 100, got {percent}"),
            ));
        }
        let ppm = (percent / 100.0 * f64::from(LOSS_SCALE)).round() as u32;
        self.mode.send_modify(|m| m.loss_ppm = ppm);
        Ok(())
    }

    pub fn loss_percent(&self) -> f64 {
        f64::from(self.mode().loss_ppm) * 100.0 / f64::from(LOSS_SCALE)
    }

    pub fn upstream(&self) -> SocketAddr {
        *self.upstream.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_upstream(&self, addr: SocketAddr) {
        *self.upstream.lock().unwrap_or_else(|p| p.into_inner()) = addr;
    }

    pub fn set_seed(&self, seed: u64) {
        *self.seed.lock().unwrap_or_else(|p| p.into_inner()) = Some(seed);
    }

    /// The random source of connection or mapping number `id`: derived from
    /// the seed when one is set, so every run replays the same draws.
    pub fn rng(&self, id: u64) -> fastrand::Rng {
        match *self.seed.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(seed) => fastrand::Rng::with_seed(seed ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            None => fastrand::Rng::new(),
        }
    }
}

//! `tether_backoff`: reconnect delays for C code that dials on its own.

use crate::handle::{HandleTable, Kind};
use crate::panic::{fail, guard};
use crate::ptr::{arg, out};
use crate::result::tether_result;
use crate::time::{duration_ms, instant, ms};
use std::sync::Mutex;
use tether_core::backoff::{Backoff, BackoffConfig, ExponentialBackoff, Jitter};

/// How backoff delays are randomised (values of
/// `tether_backoff_config.jitter`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum tether_jitter {
    /// Exactly the computed delay (tests, single clients).
    None = 0,
    /// Uniform in `[0, delay]` (the default).
    Full = 1,
    /// `delay / 2` plus uniform in `[0, delay / 2]`.
    Equal = 2,
    /// AWS decorrelated jitter: a random walk between `initial` and 3x the
    /// previous delay, capped.
    Decorrelated = 3,
    /// `delay x uniform[1 - f, 1 + f]` with `f = jitter_fraction` (gRPC: 0.2).
    Proportional = 4,
}

/// Settings of a reconnect backoff. Fill it with
/// `tether_backoff_config_default` or `tether_backoff_config_grpc`, then
/// adjust fields. The delay after the n-th consecutive failure is
/// `min(max_delay_ms, initial_ms x multiplier^(n-1))`, then jittered.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct tether_backoff_config {
    /// Delay after the first failure, in ms: 1 ..= `TETHER_MAX_DURATION_MS`.
    pub initial_ms: u64,
    /// Growth per failure: 1.0 ..= `TETHER_MAX_FACTOR` (1.0 = fixed delay).
    pub multiplier: f64,
    /// Cap on the un-jittered delay, in ms: `initial_ms` ..=
    /// `TETHER_MAX_DURATION_MS`.
    pub max_delay_ms: u64,
    /// One of `tether_jitter` (a `uint32_t` so that any value C stores is
    /// checked rather than undefined).
    pub jitter: u32,
    /// The fraction `f` of `TETHER_JITTER_PROPORTIONAL`, in `[0, 1]`;
    /// ignored by the other kinds.
    pub jitter_fraction: f64,
    /// Give up after this many consecutive failures; 0 = never.
    pub max_attempts: u32,
    /// Give up this many ms after the first failure of a streak; 0 = never;
    /// at most `TETHER_MAX_DURATION_MS`.
    pub max_elapsed_ms: u64,
    /// Lower bound of each attempt's connect timeout, in ms: 1 ..=
    /// `TETHER_MAX_DURATION_MS`.
    pub min_connect_timeout_ms: u64,
    /// How long a connection must stay up before its end resets the attempt
    /// counter, in ms (0 = every connection resets it); at most
    /// `TETHER_MAX_DURATION_MS`.
    pub healthy_after_ms: u64,
    /// When true, `seed` seeds the jitter (reproducible delays); when false
    /// the seed is random.
    pub seeded: bool,
    /// The jitter seed, used when `seeded` is true.
    pub seed: u64,
}

impl From<&BackoffConfig> for tether_backoff_config {
    fn from(c: &BackoffConfig) -> Self {
        let (jitter, jitter_fraction) = match c.jitter {
            Jitter::None => (tether_jitter::None, 0.0),
            Jitter::Full => (tether_jitter::Full, 0.0),
            Jitter::Equal => (tether_jitter::Equal, 0.0),
            Jitter::Decorrelated => (tether_jitter::Decorrelated, 0.0),
            Jitter::Proportional(f) => (tether_jitter::Proportional, f),
        };
        Self {
            initial_ms: duration_ms(c.initial),
            multiplier: c.multiplier,
            max_delay_ms: duration_ms(c.max_delay),
            jitter: jitter as u32,
            jitter_fraction,
            max_attempts: c.max_attempts.unwrap_or(0),
            max_elapsed_ms: c.max_elapsed.map_or(0, duration_ms),
            min_connect_timeout_ms: duration_ms(c.min_connect_timeout),
            healthy_after_ms: duration_ms(c.healthy_after),
            seeded: c.seed.is_some(),
            seed: c.seed.unwrap_or(0),
        }
    }
}

impl tether_backoff_config {
    /// The validated core configuration.
    pub(crate) fn to_core(self) -> Result<BackoffConfig, tether_result> {
        let jitter = match self.jitter {
            0 => Jitter::None,
            1 => Jitter::Full,
            2 => Jitter::Equal,
            3 => Jitter::Decorrelated,
            4 => Jitter::Proportional(self.jitter_fraction),
            other => {
                return Err(fail(
                    tether_result::InvalidConfig,
                    format!("invalid configuration: backoff.jitter: unknown kind {other}"),
                ))
            }
        };
        let cfg = BackoffConfig {
            initial: ms(self.initial_ms),
            multiplier: self.multiplier,
            max_delay: ms(self.max_delay_ms),
            jitter,
            max_attempts: (self.max_attempts != 0).then_some(self.max_attempts),
            max_elapsed: (self.max_elapsed_ms != 0).then(|| ms(self.max_elapsed_ms)),
            min_connect_timeout: ms(self.min_connect_timeout_ms),
            healthy_after: ms(self.healthy_after_ms),
            seed: self.seeded.then_some(self.seed),
        };
        cfg.validate().map_err(config_error)?;
        Ok(cfg)
    }
}

/// Maps a core configuration error to `INVALID_CONFIG` with its detail.
pub(crate) fn config_error(e: tether_core::ConfigError) -> tether_result {
    fail(tether_result::InvalidConfig, e.to_string())
}

/// A reconnect backoff (opaque handle). `{0}` is "no backoff". Created by
/// `tether_backoff_new`; stale after `tether_backoff_free`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct tether_backoff {
    /// The handle value; 0 means none.
    pub id: u64,
}

static BACKOFFS: HandleTable<Mutex<ExponentialBackoff>> = HandleTable::new(Kind::Backoff);

/// Fills `*out` with the default backoff: 1 s doubling to 30 s, full jitter,
/// never give up, connect timeout at least 20 s, healthy after 10 s, random
/// seed. Errors: `TETHER_RESULT_NULL_ARGUMENT`.
#[no_mangle]
pub extern "C" fn tether_backoff_config_default(
    out_config: *mut tether_backoff_config,
) -> tether_result {
    guard(|| {
        out(out_config, "out_config")?.write((&BackoffConfig::default()).into());
        Ok(())
    })
}

/// Fills `*out` with gRPC's connection backoff: 1 s growing x1.6 to 120 s,
/// +-20 % jitter, connect timeout at least 20 s.
/// Errors: `TETHER_RESULT_NULL_ARGUMENT`.
#[no_mangle]
pub extern "C" fn tether_backoff_config_grpc(
    out_config: *mut tether_backoff_config,
) -> tether_result {
    guard(|| {
        out(out_config, "out_config")?.write((&BackoffConfig::grpc()).into());
        Ok(())
    })
}

/// Creates a backoff from `*config` (borrowed for the call only) and writes
/// its handle to `*out_backoff`. The caller owns the handle and must release
/// it with `tether_backoff_free`.
///
/// Errors: `TETHER_RESULT_NULL_ARGUMENT`; `TETHER_RESULT_INVALID_CONFIG` with
/// the offending field in `tether_last_error_message`;
/// `TETHER_RESULT_FULL` if too many backoffs are alive.
#[no_mangle]
pub extern "C" fn tether_backoff_new(
    config: *const tether_backoff_config,
    out_backoff: *mut tether_backoff,
) -> tether_result {
    guard(|| {
        let config = arg(config, "config")?.to_core()?;
        let out_backoff = out(out_backoff, "out_backoff")?;
        let backoff = ExponentialBackoff::new(config).map_err(config_error)?;
        let id = BACKOFFS.insert(Mutex::new(backoff))?;
        out_backoff.write(tether_backoff { id });
        Ok(())
    })
}

/// Creates a backoff with gRPC's preset (see `tether_backoff_config_grpc`).
/// Ownership and errors as `tether_backoff_new`.
#[no_mangle]
pub extern "C" fn tether_backoff_new_grpc(out_backoff: *mut tether_backoff) -> tether_result {
    let mut config = std::mem::MaybeUninit::uninit();
    match tether_backoff_config_grpc(config.as_mut_ptr()) {
        tether_result::Ok => tether_backoff_new(config.as_ptr(), out_backoff),
        err => err,
    }
}

/// Counts one failed attempt (or lost connection) at `now_ms` and writes the
/// jittered delay before the next attempt to `*out_delay_ms`.
///
/// Returns `TETHER_RESULT_GAVE_UP` (nothing written) once `max_attempts`
/// failures happened or `max_elapsed_ms` passed; it keeps doing so until
/// `tether_backoff_reset` or a healthy connection. Other errors:
/// `TETHER_RESULT_NULL_ARGUMENT`, `TETHER_RESULT_STALE_HANDLE`,
/// `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_backoff_next_delay_ms(
    backoff: tether_backoff,
    now_ms: u64,
    out_delay_ms: *mut u64,
) -> tether_result {
    guard(|| {
        let out_delay_ms = out(out_delay_ms, "out_delay_ms")?;
        match BACKOFFS.with(backoff.id, |b| b.next_delay(instant(now_ms)))? {
            Some(d) => {
                out_delay_ms.write(duration_ms(d));
                Ok(())
            }
            None => Err(tether_result::GaveUp),
        }
    })
}

/// Writes to `*out_timeout_ms` how long the next connection attempt may
/// take before it counts as a connect timeout: the larger of
/// `min_connect_timeout_ms` and the current un-jittered delay.
/// Errors: `TETHER_RESULT_NULL_ARGUMENT`, `TETHER_RESULT_STALE_HANDLE`,
/// `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_backoff_connect_timeout_ms(
    backoff: tether_backoff,
    out_timeout_ms: *mut u64,
) -> tether_result {
    guard(|| {
        let out_timeout_ms = out(out_timeout_ms, "out_timeout_ms")?;
        let t = BACKOFFS.with(backoff.id, |b| b.connect_timeout())?;
        out_timeout_ms.write(duration_ms(t));
        Ok(())
    })
}

/// Reports that a connection was established at `now_ms`.
/// Errors: `TETHER_RESULT_STALE_HANDLE`, `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_backoff_on_connected(
    backoff: tether_backoff,
    now_ms: u64,
) -> tether_result {
    guard(|| BACKOFFS.with(backoff.id, |b| b.on_connected(instant(now_ms))))
}

/// Reports that the connection established last ended at `now_ms`. The
/// attempt counter resets only if it lasted `healthy_after_ms`, so a peer
/// that accepts and closes at once still meets growing delays.
/// Errors: `TETHER_RESULT_STALE_HANDLE`, `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_backoff_on_disconnected(
    backoff: tether_backoff,
    now_ms: u64,
) -> tether_result {
    guard(|| BACKOFFS.with(backoff.id, |b| b.on_disconnected(instant(now_ms))))
}

/// Writes the number of failures since the last reset to `*out_attempt`.
/// Errors: `TETHER_RESULT_NULL_ARGUMENT`, `TETHER_RESULT_STALE_HANDLE`,
/// `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_backoff_attempt(
    backoff: tether_backoff,
    out_attempt: *mut u32,
) -> tether_result {
    guard(|| {
        let out_attempt = out(out_attempt, "out_attempt")?;
        out_attempt.write(BACKOFFS.with(backoff.id, |b| b.attempt())?);
        Ok(())
    })
}

/// Forgets all failures (attempt counter and give-up clock).
/// Errors: `TETHER_RESULT_STALE_HANDLE`, `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_backoff_reset(backoff: tether_backoff) -> tether_result {
    guard(|| BACKOFFS.with(backoff.id, |b| b.reset()))
}

/// Frees the backoff. The handle (and every copy of it) is stale afterwards.
/// Freeing `{0}` is a no-op returning `TETHER_RESULT_OK`; a second free
/// returns `TETHER_RESULT_STALE_HANDLE`; a handle of another object type
/// returns `TETHER_RESULT_INVALID_HANDLE`. Never undefined behaviour.
#[no_mangle]
pub extern "C" fn tether_backoff_free(backoff: tether_backoff) -> tether_result {
    guard(|| BACKOFFS.remove(backoff.id).map(drop))
}

pub(crate) fn free_all() {
    drop(BACKOFFS.drain());
}

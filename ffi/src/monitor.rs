//! `tether_monitor`: one connection's liveness, for C loops that own their
//! sockets.

use crate::handle::{HandleTable, Kind};
use crate::panic::guard;
use crate::policy::tether_policy;
use crate::ptr::{arg, out, out_opt};
use crate::result::tether_result;
use crate::time::{duration_ms, instant, to_ms, wait_ms};
use std::sync::Mutex;
use tether_core::liveness::{Liveness, LivenessAction, Monitor};

/// What a liveness check asks the caller to do.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum tether_action_kind {
    /// Nothing to do.
    None = 0,
    /// Send a ping frame carrying `payload` (the peer echoes it in a pong).
    SendPing = 1,
    /// The peer is dead: close the connection with `reason`.
    Dead = 2,
}

/// An action returned by `tether_monitor_poll_action`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct tether_liveness_action {
    /// What to do.
    pub kind: tether_action_kind,
    /// `SEND_PING`: the 8-byte ping payload.
    pub payload: u64,
    /// `DEAD`: a `DisconnectReason` number (3 = timeout); 0 otherwise.
    pub reason: u32,
    /// `DEAD`: how long nothing had been received, in ms; 0 otherwise.
    pub silent_for_ms: u64,
}

impl tether_liveness_action {
    const NONE: Self = Self {
        kind: tether_action_kind::None,
        payload: 0,
        reason: 0,
        silent_for_ms: 0,
    };
}

/// A per-connection liveness monitor (opaque handle). `{0}` is "none".
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct tether_monitor {
    /// The handle value; 0 means none.
    pub id: u64,
}

static MONITORS: HandleTable<Mutex<Monitor>> = HandleTable::new(Kind::Monitor);

/// Creates a monitor applying `*policy` (borrowed for the call) to a peer
/// connected at `now_ms`, and writes its handle to `*out_monitor`. The caller
/// owns the handle and releases it with `tether_monitor_free`.
///
/// Calling contract (sans-IO): report traffic with `handle_received` /
/// `handle_pong`; wait at most `tether_monitor_next_timeout_ms`; then call
/// `tether_monitor_handle_timeout` and drain `tether_monitor_poll_action`.
/// Errors: `TETHER_RESULT_NULL_ARGUMENT`, `TETHER_RESULT_INVALID_CONFIG`,
/// `TETHER_RESULT_FULL`.
#[no_mangle]
pub extern "C" fn tether_monitor_new(
    policy: *const tether_policy,
    now_ms: u64,
    out_monitor: *mut tether_monitor,
) -> tether_result {
    guard(|| {
        let policy = arg(policy, "policy")?.to_core()?;
        let out_monitor = out(out_monitor, "out_monitor")?;
        let monitor =
            Monitor::new(policy, instant(now_ms)).map_err(crate::backoff::config_error)?;
        let id = MONITORS.insert(Mutex::new(monitor))?;
        out_monitor.write(tether_monitor { id });
        Ok(())
    })
}

/// Reports that bytes (any frame) arrived from the peer at `now_ms`.
/// Errors: `TETHER_RESULT_STALE_HANDLE`, `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_monitor_handle_received(
    monitor: tether_monitor,
    now_ms: u64,
) -> tether_result {
    guard(|| MONITORS.with(monitor.id, |m| m.handle_received(instant(now_ms))))
}

/// Reports a pong echoing `payload` at `now_ms` (it counts as traffic).
///
/// Returns `TETHER_RESULT_OK` when it answers the outstanding ping, and then
/// writes the round-trip time in ms to `*out_rtt_ms` unless that is NULL;
/// `TETHER_RESULT_EMPTY` when it matches no outstanding ping (still counted
/// as traffic; nothing written). Errors: `TETHER_RESULT_STALE_HANDLE`,
/// `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_monitor_handle_pong(
    monitor: tether_monitor,
    now_ms: u64,
    payload: u64,
    out_rtt_ms: *mut u64,
) -> tether_result {
    guard(|| {
        let rtt = MONITORS.with(monitor.id, |m| m.handle_pong(instant(now_ms), payload))?;
        let rtt = rtt.ok_or(tether_result::Empty)?;
        if let Some(o) = out_opt(out_rtt_ms) {
            o.write(duration_ms(rtt));
        }
        Ok(())
    })
}

/// Advances the monitor's time to `now_ms`; then drain
/// `tether_monitor_poll_action`. Early or repeated calls are harmless.
/// Errors: `TETHER_RESULT_STALE_HANDLE`, `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_monitor_handle_timeout(
    monitor: tether_monitor,
    now_ms: u64,
) -> tether_result {
    guard(|| MONITORS.with(monitor.id, |m| m.handle_timeout(instant(now_ms))))
}

/// Writes the next action to `*out_action`: `TETHER_ACTION_KIND_NONE` when
/// there is nothing to do, `SEND_PING` (send a ping frame with `payload`),
/// or `DEAD` (close the connection; the monitor stays dead until reset).
/// Errors: `TETHER_RESULT_NULL_ARGUMENT`, `TETHER_RESULT_STALE_HANDLE`,
/// `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_monitor_poll_action(
    monitor: tether_monitor,
    out_action: *mut tether_liveness_action,
) -> tether_result {
    guard(|| {
        let out_action = out(out_action, "out_action")?;
        let action = MONITORS.with(monitor.id, |m| m.poll_action())?;
        out_action.write(match action {
            None => tether_liveness_action::NONE,
            Some(LivenessAction::SendPing { payload }) => tether_liveness_action {
                kind: tether_action_kind::SendPing,
                payload,
                ..tether_liveness_action::NONE
            },
            Some(LivenessAction::Dead { reason, silent_for }) => tether_liveness_action {
                kind: tether_action_kind::Dead,
                reason: reason as u32,
                silent_for_ms: duration_ms(silent_for),
                ..tether_liveness_action::NONE
            },
        });
        Ok(())
    })
}

/// Writes to `*out_timeout_ms` how long to wait, seen at `now_ms`, before
/// calling `tether_monitor_handle_timeout`, in the form `epoll_wait` takes:
/// -1 for "no deadline" (dead monitor), 0 when due, else the milliseconds
/// left (rounded up, capped at INT32_MAX).
/// Errors: `TETHER_RESULT_NULL_ARGUMENT`, `TETHER_RESULT_STALE_HANDLE`,
/// `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_monitor_next_timeout_ms(
    monitor: tether_monitor,
    now_ms: u64,
    out_timeout_ms: *mut std::ffi::c_int,
) -> tether_result {
    guard(|| {
        let out_timeout_ms = out(out_timeout_ms, "out_timeout_ms")?;
        let deadline = MONITORS.with(monitor.id, |m| m.poll_timeout())?;
        out_timeout_ms.write(wait_ms(deadline, now_ms));
        Ok(())
    })
}

/// Writes the absolute deadline (same clock as `now_ms`) at which
/// `tether_monitor_handle_timeout` must next be called to
/// `*out_deadline_ms`, e.g. for a timerfd. `TETHER_RESULT_EMPTY` (nothing
/// written) when there is none. Errors: `TETHER_RESULT_NULL_ARGUMENT`,
/// `TETHER_RESULT_STALE_HANDLE`, `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_monitor_next_deadline_ms(
    monitor: tether_monitor,
    out_deadline_ms: *mut u64,
) -> tether_result {
    guard(|| {
        let out_deadline_ms = out(out_deadline_ms, "out_deadline_ms")?;
        let deadline = MONITORS.with(monitor.id, |m| m.poll_timeout())?;
        out_deadline_ms.write(to_ms(deadline.ok_or(tether_result::Empty)?));
        Ok(())
    })
}

/// Writes `true` to `*out_dead` when the monitor has declared the peer dead.
/// Errors: `TETHER_RESULT_NULL_ARGUMENT`, `TETHER_RESULT_STALE_HANDLE`,
/// `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_monitor_is_dead(
    monitor: tether_monitor,
    out_dead: *mut bool,
) -> tether_result {
    guard(|| {
        let out_dead = out(out_dead, "out_dead")?;
        out_dead.write(MONITORS.with(monitor.id, |m| m.is_dead())?);
        Ok(())
    })
}

/// Writes the policy's worst-case detection time in ms to `*out_bound_ms`.
/// Errors: `TETHER_RESULT_NULL_ARGUMENT`, `TETHER_RESULT_STALE_HANDLE`,
/// `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_monitor_detection_bound_ms(
    monitor: tether_monitor,
    out_bound_ms: *mut u64,
) -> tether_result {
    guard(|| {
        let out_bound_ms = out(out_bound_ms, "out_bound_ms")?;
        out_bound_ms.write(duration_ms(
            MONITORS.with(monitor.id, |m| m.detection_bound())?,
        ));
        Ok(())
    })
}

/// Starts over for a fresh connection established at `now_ms` (also revives
/// a dead monitor). Errors: `TETHER_RESULT_STALE_HANDLE`,
/// `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_monitor_reset(monitor: tether_monitor, now_ms: u64) -> tether_result {
    guard(|| MONITORS.with(monitor.id, |m| m.reset(instant(now_ms))))
}

/// Frees the monitor; the handle is stale afterwards. `{0}` is a no-op
/// (`TETHER_RESULT_OK`); a second free returns `TETHER_RESULT_STALE_HANDLE`;
/// another object's handle `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_monitor_free(monitor: tether_monitor) -> tether_result {
    guard(|| MONITORS.remove(monitor.id).map(drop))
}

pub(crate) fn free_all() {
    drop(MONITORS.drain());
}

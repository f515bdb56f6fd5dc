//! `tether_registry`: liveness for every connection of a C server that owns
//! its epoll loop and sockets (scenario S4).

use crate::conn_id::{conn_id, handle_error};
use crate::handle::{HandleTable, Kind};
use crate::panic::{fail, guard};
use crate::policy::tether_policy;
use crate::ptr::{arg, out, out_opt, slice_mut};
use crate::result::tether_result;
use crate::time::{duration_ms, instant, to_ms, wait_ms};
use std::sync::Mutex;
use tether_core::registry::{Registry, RegistryEvent};
use tether_core::DisconnectReason;

/// The kinds of registry event.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum tether_registry_event_kind {
    /// The connection has been silent for the policy's interval: send it a
    /// ping frame now (any 8-byte payload; whatever the peer sends next,
    /// reported with `tether_registry_touch`, answers it). It stays
    /// registered.
    PingDue = 1,
    /// The connection is dead and already removed: `conn` is stale from now
    /// on. Close the socket (and do not call `tether_registry_remove`, which
    /// would return `TETHER_RESULT_STALE_HANDLE`). Per connection exactly one
    /// of this event or a successful `tether_registry_remove` happens.
    Expired = 2,
}

/// An event written by `tether_registry_poll_events`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct tether_registry_event {
    /// What happened.
    pub kind: tether_registry_event_kind,
    /// The connection id (as returned by `tether_registry_insert`).
    pub conn: u64,
    /// The tag given to `tether_registry_insert` (e.g. the socket's fd).
    pub tag: u64,
    /// `EXPIRED`: the `DisconnectReason` number (3 = timeout); 0 otherwise.
    pub reason: u32,
    /// `EXPIRED`: how long nothing had been received, in ms; 0 otherwise.
    pub silent_for_ms: u64,
}

impl From<RegistryEvent> for tether_registry_event {
    fn from(e: RegistryEvent) -> Self {
        match e {
            RegistryEvent::PingDue { id, tag } => Self {
                kind: tether_registry_event_kind::PingDue,
                conn: id.to_u64(),
                tag,
                reason: 0,
                silent_for_ms: 0,
            },
            RegistryEvent::Expired {
                id,
                tag,
                silent_for,
            } => Self {
                kind: tether_registry_event_kind::Expired,
                conn: id.to_u64(),
                tag,
                reason: DisconnectReason::Timeout as u32,
                silent_for_ms: duration_ms(silent_for),
            },
        }
    }
}

/// A connection registry (opaque handle). `{0}` is "none".
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct tether_registry {
    /// The handle value; 0 means none.
    pub id: u64,
}

static REGISTRIES: HandleTable<Mutex<Registry>> = HandleTable::new(Kind::Registry);

/// Creates a registry judging every connection by `*policy` (borrowed for
/// the call), with `now_ms` as its start, and writes its handle to
/// `*out_registry`. The caller owns the handle; release it with
/// `tether_registry_free`.
///
/// The loop (single-threaded; the registry starts no threads):
/// `tether_registry_insert` on accept, `tether_registry_touch` on any
/// received bytes, `tether_registry_remove` when you close a socket;
/// `epoll_wait` at most `tether_registry_next_timeout_ms`; then
/// `tether_registry_handle_timeout` and `tether_registry_poll_events` until
/// it returns 0 events. Errors: `TETHER_RESULT_NULL_ARGUMENT`,
/// `TETHER_RESULT_INVALID_CONFIG`, `TETHER_RESULT_FULL`.
#[no_mangle]
pub extern "C" fn tether_registry_new(
    policy: *const tether_policy,
    now_ms: u64,
    out_registry: *mut tether_registry,
) -> tether_result {
    guard(|| {
        let policy = arg(policy, "policy")?.to_core()?;
        let out_registry = out(out_registry, "out_registry")?;
        let reg = Registry::new(policy, instant(now_ms)).map_err(crate::backoff::config_error)?;
        let id = REGISTRIES.insert(Mutex::new(reg))?;
        out_registry.write(tether_registry { id });
        Ok(())
    })
}

/// Limits the number of connections `tether_registry_insert` accepts
/// (default: 2^32 - 1). Errors: `TETHER_RESULT_STALE_HANDLE`,
/// `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_registry_set_max_len(
    registry: tether_registry,
    max_len: usize,
) -> tether_result {
    guard(|| REGISTRIES.with(registry.id, |r| r.set_max_len(max_len)))
}

/// Registers a connection established at `now_ms`, carrying `tag` (any
/// value you want back in its events, typically the socket's fd), and writes
/// its id to `*out_conn`. Ids are generation-checked and never 0: once the
/// connection is removed or expired, the id is stale forever, even when its
/// slot is reused, so storing it (e.g. in `epoll_event.data.u64`) is safe.
/// Errors: `TETHER_RESULT_NULL_ARGUMENT`, `TETHER_RESULT_FULL` (max_len
/// reached), `TETHER_RESULT_STALE_HANDLE`, `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_registry_insert(
    registry: tether_registry,
    now_ms: u64,
    tag: u64,
    out_conn: *mut u64,
) -> tether_result {
    guard(|| {
        let out_conn = out(out_conn, "out_conn")?;
        let id = REGISTRIES
            .with(registry.id, |r| r.insert(instant(now_ms), tag))?
            .map_err(|e| fail(tether_result::Full, e.to_string()))?;
        out_conn.write(id.to_u64());
        Ok(())
    })
}

/// Records that bytes arrived on `conn` at `now_ms` (any frame counts,
/// pongs included). O(1). Errors: `TETHER_RESULT_STALE_HANDLE` (the
/// connection was removed or expired), `TETHER_RESULT_INVALID_HANDLE`
/// (`conn` is 0 or was never issued; also a bad registry handle).
#[no_mangle]
pub extern "C" fn tether_registry_touch(
    registry: tether_registry,
    conn: u64,
    now_ms: u64,
) -> tether_result {
    guard(|| {
        let id = conn_id(conn)?;
        REGISTRIES
            .with(registry.id, |r| r.touch(id, instant(now_ms)))?
            .map_err(|e| handle_error(e, conn))
    })
}

/// Unregisters `conn` (call it when you close the socket) and writes its tag
/// to `*out_tag` unless that is NULL.
///
/// This is the exactly-once gate: only the first remove of a connection
/// returns `TETHER_RESULT_OK`. A second remove, or one after its `EXPIRED`
/// event, returns `TETHER_RESULT_STALE_HANDLE` and touches nothing else, in
/// particular not a newer connection in the same slot. So close your socket
/// only when this returns OK. Errors: `TETHER_RESULT_STALE_HANDLE`,
/// `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_registry_remove(
    registry: tether_registry,
    conn: u64,
    out_tag: *mut u64,
) -> tether_result {
    guard(|| {
        let id = conn_id(conn)?;
        let tag = REGISTRIES
            .with(registry.id, |r| r.remove(id))?
            .map_err(|e| handle_error(e, conn))?;
        if let Some(o) = out_opt(out_tag) {
            o.write(tag);
        }
        Ok(())
    })
}

/// Writes the tag of the live connection `conn` to `*out_tag`.
/// Errors: `TETHER_RESULT_NULL_ARGUMENT`, `TETHER_RESULT_STALE_HANDLE`,
/// `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_registry_tag(
    registry: tether_registry,
    conn: u64,
    out_tag: *mut u64,
) -> tether_result {
    guard(|| {
        let out_tag = out(out_tag, "out_tag")?;
        let id = conn_id(conn)?;
        let tag = REGISTRIES
            .with(registry.id, |r| r.tag(id))?
            .map_err(|e| handle_error(e, conn))?;
        out_tag.write(tag);
        Ok(())
    })
}

/// Runs the liveness policy for every connection due at `now_ms` and queues
/// the resulting events (drain them with `tether_registry_poll_events`).
/// Work is proportional to the timers that come due; early or repeated calls
/// are harmless. Errors: `TETHER_RESULT_STALE_HANDLE`,
/// `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_registry_handle_timeout(
    registry: tether_registry,
    now_ms: u64,
) -> tether_result {
    guard(|| REGISTRIES.with(registry.id, |r| r.handle_timeout(instant(now_ms))))
}

/// Moves up to `capacity` queued events into the caller-owned array
/// `events` and writes how many to `*out_n` (0 when none are queued). Call
/// until `*out_n < capacity`. A `PING_DUE` for a connection removed since it
/// was queued is dropped, so a reused fd never receives another connection's
/// ping. `events` may be NULL only when `capacity` is 0.
/// Errors: `TETHER_RESULT_NULL_ARGUMENT`, `TETHER_RESULT_STALE_HANDLE`,
/// `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_registry_poll_events(
    registry: tether_registry,
    events: *mut tether_registry_event,
    capacity: usize,
    out_n: *mut usize,
) -> tether_result {
    guard(|| {
        let out_n = out(out_n, "out_n")?;
        let dst = slice_mut(events, capacity, "events")?;
        let n = REGISTRIES.with(registry.id, |r| {
            let mut n = 0;
            while n < dst.len() {
                let Some(e) = r.poll_event() else { break };
                dst[n] = e.into();
                n += 1;
            }
            n
        })?;
        out_n.write(n);
        Ok(())
    })
}

/// Writes the `epoll_wait` timeout, seen at `now_ms`, until
/// `tether_registry_handle_timeout` must run to `*out_timeout_ms`: -1 when
/// no connection is registered, 0 when due (or events are queued), else the
/// milliseconds left, rounded up and capped at INT32_MAX. It may wake you
/// early (a touched connection re-arms quietly), never late.
/// Errors: `TETHER_RESULT_NULL_ARGUMENT`, `TETHER_RESULT_STALE_HANDLE`,
/// `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_registry_next_timeout_ms(
    registry: tether_registry,
    now_ms: u64,
    out_timeout_ms: *mut std::ffi::c_int,
) -> tether_result {
    guard(|| {
        let out_timeout_ms = out(out_timeout_ms, "out_timeout_ms")?;
        let deadline = REGISTRIES.with(registry.id, |r| r.poll_timeout())?;
        out_timeout_ms.write(wait_ms(deadline, now_ms));
        Ok(())
    })
}

/// Writes the absolute deadline (same clock as `now_ms`) of the next
/// `tether_registry_handle_timeout` to `*out_deadline_ms`, e.g. for a
/// timerfd. `TETHER_RESULT_EMPTY` (nothing written) when nothing is armed.
/// Errors: `TETHER_RESULT_NULL_ARGUMENT`, `TETHER_RESULT_STALE_HANDLE`,
/// `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_registry_next_deadline_ms(
    registry: tether_registry,
    out_deadline_ms: *mut u64,
) -> tether_result {
    guard(|| {
        let out_deadline_ms = out(out_deadline_ms, "out_deadline_ms")?;
        let deadline = REGISTRIES.with(registry.id, |r| r.poll_timeout())?;
        out_deadline_ms.write(to_ms(deadline.ok_or(tether_result::Empty)?));
        Ok(())
    })
}

/// Writes the number of registered connections to `*out_len`.
/// Errors: `TETHER_RESULT_NULL_ARGUMENT`, `TETHER_RESULT_STALE_HANDLE`,
/// `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_registry_len(
    registry: tether_registry,
    out_len: *mut usize,
) -> tether_result {
    guard(|| {
        let out_len = out(out_len, "out_len")?;
        out_len.write(REGISTRIES.with(registry.id, |r| r.len())?);
        Ok(())
    })
}

/// Writes the worst case from a connection's last received bytes to its
/// `EXPIRED` event, in ms, to `*out_bound_ms`.
/// Errors: `TETHER_RESULT_NULL_ARGUMENT`, `TETHER_RESULT_STALE_HANDLE`,
/// `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_registry_detection_bound_ms(
    registry: tether_registry,
    out_bound_ms: *mut u64,
) -> tether_result {
    guard(|| {
        let out_bound_ms = out(out_bound_ms, "out_bound_ms")?;
        out_bound_ms.write(duration_ms(
            REGISTRIES.with(registry.id, |r| r.detection_bound())?,
        ));
        Ok(())
    })
}

/// Frees the registry and forgets its connections (your sockets stay open:
/// they are yours). The handle is stale afterwards. `{0}` is a no-op
/// (`TETHER_RESULT_OK`); a second free returns `TETHER_RESULT_STALE_HANDLE`;
/// another object's handle `TETHER_RESULT_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn tether_registry_free(registry: tether_registry) -> tether_result {
    guard(|| REGISTRIES.remove(registry.id).map(drop))
}

pub(crate) fn free_all() {
    drop(REGISTRIES.drain());
}

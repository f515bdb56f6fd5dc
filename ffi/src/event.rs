//! `tether_event`: what managed clients and servers report, flat for C.

use bytes::Bytes;
use std::collections::HashMap;
use std::ffi::{c_char, c_void, CStr, CString};
use std::sync::Arc;
use tether_core::supervisor::Lifecycle;
use tether_transports::driver::{ClientEvent, ServerEvent};

/// The kinds of `tether_event`.
///
/// A client reports, per connection attempt (`generation` 1, 2, ...):
/// `CONNECTING`, then `CONNECT_FAILED` or `CONNECTED` ... `DISCONNECTED`;
/// `WAITING` between attempts; `MESSAGE`s while connected; and finally
/// exactly one `CLOSED` or `GAVE_UP`, after which nothing follows. A server
/// reports per connection one `ACCEPTED`, any `MESSAGE`s, then exactly one
/// `CLOSED` (with `conn` and `reason`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum tether_event_kind {
    /// Client: an attempt starts (`generation`, `attempt`).
    Connecting = 1,
    /// Client: the attempt succeeded (`generation`, `attempt`).
    Connected = 2,
    /// Client: the attempt failed (`generation`, `attempt`, `reason`).
    ConnectFailed = 3,
    /// Client: the connection of `generation` ended (`reason`).
    Disconnected = 4,
    /// Client: waiting `delay_ms` before attempt `attempt`.
    Waiting = 5,
    /// Client: closed on request; terminal. Server: connection `conn` ended
    /// (`reason`); `conn` is stale from now on.
    Closed = 6,
    /// Client: the backoff gave up (`reason` of the last failure); terminal.
    GaveUp = 7,
    /// An application message (`data`, `len`; server: from `conn`).
    Message = 8,
    /// Server: a new connection `conn`.
    Accepted = 9,
}

/// One event of a managed client or server.
///
/// Fields that do not apply to the kind are 0 (`data`, `peer` NULL). `data` is
/// owned by tether: in callback mode it is valid only during the callback;
/// in poll mode until the next poll call (or free) on the same object. Copy
/// what you keep.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct tether_event {
    /// What happened.
    pub kind: tether_event_kind,
    /// Client: the connection generation (1 for the first connection, 2
    /// after the first reconnect, ...).
    pub generation: u64,
    /// Client: the attempt number within the current failure streak.
    pub attempt: u32,
    /// A `DisconnectReason` number (1 peer_closed, 2 reset, 3 timeout,
    /// 4 connect_refused, 5 connect_timeout, 6 unreachable,
    /// 7 protocol_error, 8 closed_locally, 9 io, 10 taken_over); 0 if none.
    pub reason: u32,
    /// `WAITING`: the delay before the next attempt, in ms.
    pub delay_ms: u64,
    /// Server: the connection id (generation-checked, never 0).
    pub conn: u64,
    /// `MESSAGE`: the payload (borrowed, see above).
    pub data: *const u8,
    /// `MESSAGE`: the payload length in bytes.
    pub len: usize,
    /// Server: the peer's address as NUL-terminated text, `"ip:port"`
    /// (IPv6 as `"[ip]:port"`), on every event of a connection (`ACCEPTED`,
    /// `MESSAGE`, `CLOSED`), so that a timed-out or reset connection can be
    /// traced to its peer. NULL for client events. Borrowed like `data`.
    pub peer: *const c_char,
}

/// Receives events in callback mode: `userdata` as given at creation, then
/// the event, borrowed for the duration of the call.
///
/// Threading: called on a dispatch thread that tether owns, one per client
/// or server, never on the caller's thread and never concurrently for the
/// same object; events of one object arrive in order. The callback may call
/// any tether function, including `_free` of its own object (the current
/// call completes normally and no further call follows). It should return
/// promptly: events of that object queue up behind it.
pub type tether_event_callback =
    Option<unsafe extern "C" fn(userdata: *mut c_void, event: *const tether_event)>;

/// An event with its payload (and peer address) owned, until it is shown
/// to C.
#[derive(Debug, Clone)]
pub(crate) struct OwnedEvent {
    base: tether_event,
    data: Bytes,
    peer: Option<Arc<CStr>>,
}

// SAFETY: `base.data` and `base.peer` are always NULL inside an
// `OwnedEvent`; the pointers are filled in only by `view`, on the copy
// handed to C.
unsafe impl Send for OwnedEvent {}

impl OwnedEvent {
    fn new(kind: tether_event_kind) -> Self {
        Self {
            base: tether_event {
                kind,
                generation: 0,
                attempt: 0,
                reason: 0,
                delay_ms: 0,
                conn: 0,
                data: std::ptr::null(),
                len: 0,
                peer: std::ptr::null(),
            },
            data: Bytes::new(),
            peer: None,
        }
    }

    fn message(conn: u64, data: Bytes) -> Self {
        let mut e = Self::new(tether_event_kind::Message);
        e.base.conn = conn;
        e.base.len = data.len();
        e.data = data;
        e
    }

    /// The C view; `data` points into `self` and lives as long as it.
    pub(crate) fn view(&self) -> tether_event {
        let mut c = self.base;
        if !self.data.is_empty() {
            c.data = self.data.as_ptr();
        }
        if let Some(peer) = &self.peer {
            c.peer = peer.as_ptr();
        }
        c
    }
}

impl From<ClientEvent> for OwnedEvent {
    fn from(e: ClientEvent) -> Self {
        use tether_event_kind as K;
        let step = match e {
            ClientEvent::Message(data) => return Self::message(0, data),
            ClientEvent::Lifecycle(step) => step,
        };
        let (kind, generation, attempt, reason, delay_ms) = match step {
            Lifecycle::Connecting {
                generation,
                attempt,
            } => (K::Connecting, generation, attempt, 0, 0),
            Lifecycle::Connected {
                generation,
                attempt,
            } => (K::Connected, generation, attempt, 0, 0),
            Lifecycle::ConnectFailed {
                generation,
                attempt,
                reason,
            } => (K::ConnectFailed, generation, attempt, reason as u32, 0),
            Lifecycle::Disconnected { generation, reason } => {
                (K::Disconnected, generation, 0, reason as u32, 0)
            }
            Lifecycle::Waiting { attempt, delay } => {
                (K::Waiting, 0, attempt, 0, crate::time::duration_ms(delay))
            }
            Lifecycle::Closed => (K::Closed, 0, 0, 0, 0),
            Lifecycle::GaveUp { reason } => (K::GaveUp, 0, 0, reason as u32, 0),
        };
        let mut e = Self::new(kind);
        e.base.generation = generation;
        e.base.attempt = attempt;
        e.base.reason = reason;
        e.base.delay_ms = delay_ms;
        e
    }
}

/// Turns a server's events into C events, remembering each connection's
/// peer address from its `Accepted` until its `Closed`.
#[derive(Debug, Default)]
pub(crate) struct ServerEvents {
    peers: HashMap<u64, Arc<CStr>>,
}

impl ServerEvents {
    /// The C form of `e`, with the connection's peer address.
    pub(crate) fn convert(&mut self, e: ServerEvent) -> OwnedEvent {
        let (mut event, conn) = match e {
            ServerEvent::Accepted { id, peer } => {
                let text = CString::new(peer.to_string()).unwrap_or_default();
                self.peers.insert(id.to_u64(), Arc::from(text));
                let mut e = OwnedEvent::new(tether_event_kind::Accepted);
                e.base.conn = id.to_u64();
                (e, id.to_u64())
            }
            ServerEvent::Message { id, data } => {
                (OwnedEvent::message(id.to_u64(), data), id.to_u64())
            }
            ServerEvent::Closed { id, reason } => {
                let mut e = OwnedEvent::new(tether_event_kind::Closed);
                e.base.conn = id.to_u64();
                e.base.reason = reason as u32;
                e.peer = self.peers.remove(&id.to_u64());
                return e;
            }
        };
        event.peer = self.peers.get(&conn).cloned();
        event
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tether_core::registry::ConnId;
    use tether_core::DisconnectReason;

    fn peer_of(e: &OwnedEvent) -> Option<String> {
        let view = e.view();
        (!view.peer.is_null()).then(|| {
            // SAFETY: non-NULL, NUL-terminated, owned by `e`.
            unsafe { CStr::from_ptr(view.peer) }
                .to_string_lossy()
                .into_owned()
        })
    }

    #[test]
    fn every_server_event_carries_its_peer_until_closed() {
        let mut events = ServerEvents::default();
        let id = ConnId::from_u64(0x0000_0001_0000_0001);
        let peer = "[::1]:4242".parse().unwrap();
        let accepted = events.convert(ServerEvent::Accepted { id, peer });
        assert_eq!(peer_of(&accepted).as_deref(), Some("[::1]:4242"));
        let message = events.convert(ServerEvent::Message {
            id,
            data: Bytes::from_static(b"hi"),
        });
        assert_eq!(peer_of(&message).as_deref(), Some("[::1]:4242"));
        let closed = events.convert(ServerEvent::Closed {
            id,
            reason: DisconnectReason::Timeout,
        });
        assert_eq!(peer_of(&closed).as_deref(), Some("[::1]:4242"));
        assert_eq!(closed.view().reason, DisconnectReason::Timeout as u32);
        assert!(events.peers.is_empty(), "forgotten after CLOSED");
        let client = OwnedEvent::from(ClientEvent::Message(Bytes::new()));
        assert!(client.view().peer.is_null());
    }
}

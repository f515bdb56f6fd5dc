//! `tether_event`: what managed clients and servers report, flat for C.

use bytes::Bytes;
use std::collections::HashMap;
use std::ffi::{c_char, c_void, CStr, CString};
use std::sync::Arc;
use tether_core::supervisor::Lifecycle;
use tether_core::DisconnectReason;
use tether_transports::driver::{ClientEvent, ServerEvent};

/// The kinds of `tether_event`.
///
/// A client reports, per connection attempt (`generation` 1, 2, ...):
/// `CONNECTING`, then `CONNECT_FAILED` or `CONNECTED` ... `DISCONNECTED`;
/// `WAITING` between attempts; `MESSAGE`s while connected; and finally
/// exactly one `CLOSED`, `GAVE_UP` or `FAILED`, after which nothing follows.
/// A server reports per connection one `ACCEPTED`, any `MESSAGE`s, then
/// exactly one `CLOSED` (with `conn` and `reason`); a server that fails
/// internally closes every connection (reason `INTERNAL`) and reports
/// `FAILED` last.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum tether_event_kind {
    /// Client: an attempt starts (`generation`, `attempt`).
    Connecting = 1,
    /// Client: the attempt succeeded (`generation`, `attempt`).
    Connected = 2,
    /// Client: the attempt failed (`generation`, `attempt`, `reason`,
    /// `detail`).
    ConnectFailed = 3,
    /// Client: the connection of `generation` ended (`reason`, `detail`).
    Disconnected = 4,
    /// Client: waiting `delay_ms` before attempt `attempt`; `generation` is
    /// that of the last attempt.
    Waiting = 5,
    /// Client: closed on request; terminal. Server: connection `conn` ended
    /// (`reason`, `detail`); `conn` is stale from now on.
    Closed = 6,
    /// Client: the backoff gave up (`reason` and `detail` of the last
    /// failure); terminal.
    GaveUp = 7,
    /// An application message (`data`, `len`; client: `generation` of the
    /// connection it came on; server: from `conn`).
    Message = 8,
    /// Server: a new connection `conn`.
    Accepted = 9,
    /// The object failed inside tether (reason `INTERNAL`, `detail` the
    /// panic message) and has stopped; terminal. It never stops silently.
    Failed = 10,
}

/// Why a connection ended or an attempt failed: the values of
/// `tether_event.reason` (0 means none).
///
/// The numbers are part of the ABI: never changed or reused, only appended.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum tether_reason {
    /// No reason (the event kind has none).
    None = 0,
    /// The peer closed the connection in an orderly way.
    PeerClosed = 1,
    /// The connection was reset abruptly.
    Reset = 2,
    /// The peer stopped proving it is alive (heartbeat, idle timeout, a
    /// stalled write, the kernel).
    Timeout = 3,
    /// A connection attempt was refused.
    ConnectRefused = 4,
    /// A connection attempt did not finish within the connect timeout.
    ConnectTimeout = 5,
    /// The peer's network or host could not be reached.
    Unreachable = 6,
    /// The peer broke the protocol (bad frame, failed handshake).
    ProtocolError = 7,
    /// This side closed the connection on purpose.
    ClosedLocally = 8,
    /// Any other I/O failure.
    Io = 9,
    /// A newer connection of the same client took this one over.
    TakenOver = 10,
    /// tether failed internally; the detail carries the panic message.
    Internal = 11,
    /// A TLS certificate was refused (untrusted issuer, expired, a CA used
    /// as an end entity, ...; or the peer refused ours).
    TlsCertificate = 12,
    /// The peer's certificate is not valid for the server name.
    TlsNameMismatch = 13,
}

/// The short name of a `tether_reason` number (`"peer_closed"`,
/// `"tls_certificate"`, ...), as a static NUL-terminated string: `"none"`
/// for 0, `"unknown"` for a number this libtether does not know. Never
/// NULL; owned by the library, never freed.
#[no_mangle]
pub extern "C" fn tether_reason_name(reason: u32) -> *const c_char {
    crate::panic::guard_value(c"unknown".as_ptr(), || reason_name(reason).as_ptr())
}

fn reason_name(reason: u32) -> &'static CStr {
    // The names are the core's (`DisconnectReason::as_str`), made C text
    // once.
    static NAMES: std::sync::OnceLock<Vec<CString>> = std::sync::OnceLock::new();
    let names = NAMES.get_or_init(|| {
        (1..)
            .map_while(DisconnectReason::from_u32)
            .map(|r| CString::new(r.as_str()).unwrap_or_default())
            .collect()
    });
    match reason {
        0 => c"none",
        n => names
            .get(n as usize - 1)
            .map_or(c"unknown", CString::as_c_str),
    }
}

/// One event of a managed client or server.
///
/// Fields that do not apply to the kind are 0 (`data`, `peer`, `detail`
/// NULL). `data`, `peer` and `detail` are owned by tether: in callback mode
/// they are valid only during the callback; in poll mode until the next
/// poll call (or free) on the same object. Copy what you keep.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct tether_event {
    /// What happened.
    pub kind: tether_event_kind,
    /// Client: the connection generation (1 for the first connection, 2
    /// after the first reconnect, ...), on every client event but `CLOSED`
    /// before any attempt.
    pub generation: u64,
    /// Client: the attempt number within the current failure streak.
    pub attempt: u32,
    /// A `tether_reason` number (1 peer_closed, 2 reset, 3 timeout,
    /// 4 connect_refused, 5 connect_timeout, 6 unreachable,
    /// 7 protocol_error, 8 closed_locally, 9 io, 10 taken_over,
    /// 11 internal, 12 tls_certificate, 13 tls_name_mismatch); 0 if none.
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
    /// Why, in words, as NUL-terminated text: on `CONNECT_FAILED`,
    /// `DISCONNECTED`, `GAVE_UP`, `FAILED` and a server's `CLOSED` (e.g.
    /// `"TLS handshake with tls://db:7000 failed: invalid peer certificate:
    /// UnknownIssuer"`); NULL on other kinds. Borrowed like `data`.
    pub detail: *const c_char,
    /// The handle value of the client (`tether_client.id`) or server
    /// (`tether_server.id`) that reports the event, already valid in the
    /// first callback: a callback can act on (or free) its own object
    /// without passing the handle through `userdata`.
    pub object: u64,
}

/// Receives events in callback mode: `userdata` as given at creation, then
/// the event, borrowed for the duration of the call.
///
/// Threading: called on one of a few dispatch threads that tether owns and
/// shares between all callback-mode objects (2 to 4, by the machine's
/// cores), never on the caller's thread; one object's callbacks always run
/// on the same one of them, never concurrently, its events in order. The callback may call
/// any tether function, including `_free` of its own object (the current
/// call completes normally and no further call follows). It should return
/// promptly: while it runs it holds a dispatch thread, and other objects'
/// events wait for a free one (their connections go on). An object keeps
/// about 1024 events C has not taken (callback or poll mode); past that
/// tether takes no more from it until C catches up, so a lagging client
/// stops reading its socket rather than growing.
pub type tether_event_callback =
    Option<unsafe extern "C" fn(userdata: *mut c_void, event: *const tether_event)>;

/// An event with its payload, peer address and detail owned, until it is
/// shown to C.
#[derive(Debug, Clone)]
pub(crate) struct OwnedEvent {
    base: tether_event,
    data: Bytes,
    peer: Option<Arc<CStr>>,
    detail: Option<CString>,
}

// SAFETY: `base.data`, `base.peer` and `base.detail` are always NULL inside
// an `OwnedEvent`; the pointers are filled in only by `view`, on the copy
// handed to C.
unsafe impl Send for OwnedEvent {}

/// A detail as C text: interior NULs (which no detail should hold) are
/// replaced so that the text is never cut short silently.
fn c_text(text: &str) -> Option<CString> {
    if text.is_empty() {
        return None;
    }
    CString::new(text.replace('\0', "\u{fffd}")).ok()
}

impl OwnedEvent {
    fn new(kind: tether_event_kind, object: u64) -> Self {
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
                detail: std::ptr::null(),
                object,
            },
            data: Bytes::new(),
            peer: None,
            detail: None,
        }
    }

    pub(crate) fn message(object: u64, conn: u64, data: Bytes) -> Self {
        let mut e = Self::new(tether_event_kind::Message, object);
        e.base.conn = conn;
        e.base.len = data.len();
        e.data = data;
        e
    }

    fn with_cause(mut self, reason: DisconnectReason, detail: &str) -> Self {
        self.base.reason = reason as u32;
        self.detail = c_text(detail);
        self
    }

    /// The C view; the pointers point into `self` and live as long as it.
    pub(crate) fn view(&self) -> tether_event {
        let mut c = self.base;
        if !self.data.is_empty() {
            c.data = self.data.as_ptr();
        }
        if let Some(peer) = &self.peer {
            c.peer = peer.as_ptr();
        }
        if let Some(detail) = &self.detail {
            c.detail = detail.as_ptr();
        }
        c
    }
}

/// Turns a client's events into C events, stamping each with the client's
/// handle and the generation it belongs to.
#[derive(Debug)]
pub(crate) struct ClientEvents {
    object: u64,
    /// The generation of the last attempt (0 before the first).
    generation: u64,
}

impl ClientEvents {
    /// A converter for the client with handle value `object`.
    pub(crate) fn new(object: u64) -> Self {
        Self {
            object,
            generation: 0,
        }
    }

    /// The C form of `e`.
    pub(crate) fn convert(&mut self, e: ClientEvent) -> OwnedEvent {
        use tether_event_kind as K;
        let step = match e {
            ClientEvent::Message(data) => {
                let mut m = OwnedEvent::message(self.object, 0, data);
                m.base.generation = self.generation;
                return m;
            }
            ClientEvent::Failed(cause) => {
                let mut f = OwnedEvent::new(K::Failed, self.object)
                    .with_cause(cause.reason, cause.detail.as_str());
                f.base.generation = self.generation;
                return f;
            }
            ClientEvent::Lifecycle(step) => step,
        };
        let mut e = match &step {
            Lifecycle::Connecting {
                generation,
                attempt,
            } => {
                self.generation = *generation;
                let mut e = OwnedEvent::new(K::Connecting, self.object);
                e.base.attempt = *attempt;
                e
            }
            Lifecycle::Connected { attempt, .. } => {
                let mut e = OwnedEvent::new(K::Connected, self.object);
                e.base.attempt = *attempt;
                e
            }
            Lifecycle::ConnectFailed {
                attempt,
                reason,
                detail,
                ..
            } => {
                let mut e = OwnedEvent::new(K::ConnectFailed, self.object)
                    .with_cause(*reason, detail.as_str());
                e.base.attempt = *attempt;
                e
            }
            Lifecycle::Disconnected { reason, detail, .. } => {
                OwnedEvent::new(K::Disconnected, self.object).with_cause(*reason, detail.as_str())
            }
            Lifecycle::Waiting { attempt, delay } => {
                let mut e = OwnedEvent::new(K::Waiting, self.object);
                e.base.attempt = *attempt;
                e.base.delay_ms = crate::time::duration_ms(*delay);
                e
            }
            Lifecycle::Closed => OwnedEvent::new(K::Closed, self.object),
            Lifecycle::GaveUp { reason, detail } => {
                OwnedEvent::new(K::GaveUp, self.object).with_cause(*reason, detail.as_str())
            }
        };
        e.base.generation = match step {
            Lifecycle::Connecting { generation, .. }
            | Lifecycle::Connected { generation, .. }
            | Lifecycle::ConnectFailed { generation, .. }
            | Lifecycle::Disconnected { generation, .. } => generation,
            _ => self.generation,
        };
        e
    }
}

/// Turns a server's events into C events, stamping each with the server's
/// handle and remembering each connection's peer address from its
/// `Accepted` until its `Closed`.
#[derive(Debug)]
pub(crate) struct ServerEvents {
    object: u64,
    peers: HashMap<u64, Arc<CStr>>,
}

impl ServerEvents {
    /// A converter for the server with handle value `object`.
    pub(crate) fn new(object: u64) -> Self {
        Self {
            object,
            peers: HashMap::new(),
        }
    }

    /// The C form of `e`, with the connection's peer address.
    pub(crate) fn convert(&mut self, e: ServerEvent) -> OwnedEvent {
        let (mut event, conn) = match e {
            ServerEvent::Accepted { id, peer } => {
                let text = CString::new(peer.to_string()).unwrap_or_default();
                self.peers.insert(id.to_u64(), Arc::from(text));
                let mut e = OwnedEvent::new(tether_event_kind::Accepted, self.object);
                e.base.conn = id.to_u64();
                (e, id.to_u64())
            }
            ServerEvent::Message { id, data } => (
                OwnedEvent::message(self.object, id.to_u64(), data),
                id.to_u64(),
            ),
            ServerEvent::Closed { id, reason, detail } => {
                let mut e = OwnedEvent::new(tether_event_kind::Closed, self.object)
                    .with_cause(reason, detail.as_str());
                e.base.conn = id.to_u64();
                e.peer = self.peers.remove(&id.to_u64());
                return e;
            }
            ServerEvent::Failed(cause) => {
                return OwnedEvent::new(tether_event_kind::Failed, self.object)
                    .with_cause(cause.reason, cause.detail.as_str());
            }
        };
        event.peer = self.peers.get(&conn).cloned();
        event
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tether_core::registry::ConnId;

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
        let mut events = ServerEvents::new(77);
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
            detail: "nothing received for 20 s".into(),
        });
        assert_eq!(peer_of(&closed).as_deref(), Some("[::1]:4242"));
        assert_eq!(closed.view().reason, DisconnectReason::Timeout as u32);
        assert_eq!(
            detail_of(&closed).as_deref(),
            Some("nothing received for 20 s")
        );
        assert!(events.peers.is_empty(), "forgotten after CLOSED");
        for e in [&accepted, &message, &closed] {
            assert_eq!(e.view().object, 77);
        }
        assert!(detail_of(&accepted).is_none());
        let mut client = ClientEvents::new(5);
        let m = client.convert(ClientEvent::Message(Bytes::new()));
        assert!(m.view().peer.is_null());
        assert_eq!(m.view().object, 5);
    }

    fn detail_of(e: &OwnedEvent) -> Option<String> {
        let view = e.view();
        (!view.detail.is_null()).then(|| {
            // SAFETY: non-NULL, NUL-terminated, owned by `e`.
            unsafe { CStr::from_ptr(view.detail) }
                .to_string_lossy()
                .into_owned()
        })
    }

    #[test]
    fn the_c_reasons_are_the_core_reasons() {
        use tether_reason as C;
        let all = [
            C::PeerClosed,
            C::Reset,
            C::Timeout,
            C::ConnectRefused,
            C::ConnectTimeout,
            C::Unreachable,
            C::ProtocolError,
            C::ClosedLocally,
            C::Io,
            C::TakenOver,
            C::Internal,
            C::TlsCertificate,
            C::TlsNameMismatch,
        ];
        for c in all {
            let core = DisconnectReason::from_u32(c as u32).expect("same numbers");
            assert_eq!(reason_name(c as u32).to_str().unwrap(), core.as_str());
        }
        assert_eq!(DisconnectReason::from_u32(all.len() as u32 + 1), None);
        assert_eq!(reason_name(0).to_str().unwrap(), "none");
        assert_eq!(reason_name(99).to_str().unwrap(), "unknown");
    }

    #[test]
    fn every_client_event_names_its_generation() {
        let mut c = ClientEvents::new(9);
        let step = |l| ClientEvent::Lifecycle(l);
        let g = |e: OwnedEvent| (e.view().kind, e.view().generation);
        use tether_event_kind as K;
        assert_eq!(g(c.convert(step(Lifecycle::Closed))), (K::Closed, 0));
        c.convert(step(Lifecycle::Connecting {
            generation: 3,
            attempt: 1,
        }));
        let msg = c.convert(ClientEvent::Message(Bytes::from_static(b"x")));
        assert_eq!(g(msg), (K::Message, 3));
        let down = c.convert(step(Lifecycle::Disconnected {
            generation: 3,
            reason: DisconnectReason::Reset,
            detail: "the connection was reset".into(),
        }));
        assert_eq!(
            detail_of(&down).as_deref(),
            Some("the connection was reset")
        );
        let waiting = c.convert(step(Lifecycle::Waiting {
            attempt: 2,
            delay: Duration::from_millis(5),
        }));
        assert_eq!(g(waiting), (K::Waiting, 3));
        assert_eq!(g(c.convert(step(Lifecycle::Closed))), (K::Closed, 3));
        let failed = c.convert(ClientEvent::Failed(tether_core::Cause::new(
            DisconnectReason::Internal,
            "internal panic in tether: boom",
        )));
        assert_eq!(failed.view().reason, 11);
        assert_eq!(
            detail_of(&failed).as_deref(),
            Some("internal panic in tether: boom")
        );
    }
}

//! # libtether: the C API of tether
//!
//! Two layers:
//!
//! * **Sans-IO** objects for C programs that own their event loop and
//!   sockets: [`backoff`] (`tether_backoff_*`), [`monitor`]
//!   (`tether_monitor_*`, one connection's liveness), [`registry`]
//!   (`tether_registry_*`, every connection of a server, with the next
//!   deadline for `epoll_wait`/timerfd), [`conn`] (`tether_conn_*`, the
//!   whole connection machine on a socket the C program owns: framing,
//!   the opening hello, pings, liveness, queues) and [`socket`] (`tether_socket_*`,
//!   kernel keepalive and TCP_USER_TIMEOUT). They start no threads and read
//!   no clock: every call takes `now_ms` (see [`time`]).
//! * **Managed** objects running on tether's own tokio runtime: [`client`]
//!   (`tether_client_*`, a supervised connection that reconnects with
//!   backoff) and [`server`] (`tether_server_*`), over `tcp://`, `tls://`,
//!   `quic://` or `udp://` (one address syntax and one connector/acceptor
//!   mechanism shared with Rust and the CLI), configured by
//!   [`transport_options`] (`tether_transport_options_*`: certificates,
//!   trust roots, ALPN, 0-RTT, reset keys, pre-shared keys). Their events
//!   arrive by callback on a tether-owned thread or by polling with an
//!   event fd; a server's events name the peer's address.
//!
//! Conventions (those of rustls-ffi): functions are named
//! `tether_<object>_<verb>`; the library allocates every object; inputs come
//! first and outputs last; an output is written only on success; a buffer is
//! followed by its `size_t` length; every fallible function returns a
//! [`result::tether_result`] and runs inside a panic boundary; every pointer
//! is NULL-checked. Objects are named by generation-checked handles (see
//! the `handle` module), never by pointers, so a double free or a use after
//! free is an error code (`TETHER_RESULT_STALE_HANDLE`), never undefined
//! behaviour.
//!
//! The header `include/tether.h` is generated from this crate by cbindgen
//! 0.29.4 (see `ffi/cbindgen.toml`); `tests/c/run.sh` builds and runs the C
//! tests and examples under AddressSanitizer and checks the header for drift.
#![warn(missing_docs)]
// The C names are the Rust names, so that cbindgen needs no renaming.
#![allow(non_camel_case_types)]
// Exported functions take raw pointers from C by design: each one checks
// them for NULL and documents the rest of the contract (as rustls-ffi does).
#![allow(clippy::not_unsafe_ptr_arg_deref)]

mod address;
pub mod backoff;
pub mod client;
pub mod conn;
mod conn_id;
mod delivery;
mod dispatch;
pub mod event;
mod handle;
pub mod limits;
pub mod monitor;
mod notify;
mod panic;
pub mod policy;
mod ptr;
pub mod registry;
pub mod result;
pub mod runtime;
pub mod server;
pub mod socket;
pub mod time;
pub mod transport_options;

pub use result::tether_result;

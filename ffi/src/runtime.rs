//! The one tokio runtime behind the managed objects, created on first use,
//! and `tether_shutdown`.

use crate::panic::{fail, guard};
use crate::result::tether_result;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::runtime::Runtime;

/// Worker threads of tether's runtime: the managed objects only shuffle
/// frames and timers, so two are plenty and keep the footprint small.
const WORKER_THREADS: usize = 2;

static RUNTIME: Mutex<Option<Arc<Runtime>>> = Mutex::new(None);

/// Turns on tether's log on stderr when the environment variable
/// `TETHER_LOG` holds a filter (`info`, `debug`, `tether_transports=debug`,
/// ...): every connection event with its detail, handshake failures,
/// internal panics. Unset (the default): libtether writes nothing.
fn init_log() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("TETHER_LOG") else {
            return;
        };
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .try_init();
    });
}

/// The runtime, started on first use (again after `tether_shutdown`).
pub(crate) fn runtime() -> Result<Arc<Runtime>, tether_result> {
    init_log();
    let mut slot = RUNTIME.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(rt) = slot.as_ref() {
        return Ok(rt.clone());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKER_THREADS)
        .thread_name("tether-rt")
        .on_thread_start(block_sigpipe)
        .enable_all()
        .build()
        .map_err(|e| {
            fail(
                tether_result::Io,
                format!("cannot start tether's runtime: {e}"),
            )
        })?;
    let rt = Arc::new(rt);
    *slot = Some(rt.clone());
    Ok(rt)
}

/// Blocks SIGPIPE on the calling thread (one of tether's runtime threads).
///
/// A write to a connection the peer has already reset raises SIGPIPE, and
/// its default action kills the process. Rust programs and Python ignore
/// it; C programs usually do not, and a vectored write (`writev`, as TLS
/// and framed writes use) cannot ask the kernel not to send it. Blocked on
/// the thread that writes, the signal stays pending there and the write
/// fails with EPIPE instead, which the transport reports as a reset; the
/// host's own signal handling is left alone.
fn block_sigpipe() {
    #[cfg(unix)]
    // SAFETY: plain libc calls on a local, zero-initialised signal set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// Frees every object still alive (clients, servers, registries, monitors,
/// backoffs, transport options: all their handles become stale) and stops
/// tether's runtime threads, waiting up to one second for its tasks to end.
///
/// Optional: call it at the end of `main` (after freeing your objects) so
/// that no tether thread outlives your program, e.g. under a leak checker.
/// Creating a managed object afterwards starts a new runtime. Must not be
/// called from two threads at once. Safe to call from an event callback:
/// the calling object's teardown completes when the callback returns.
/// Returns `TETHER_RESULT_OK` (or `TETHER_RESULT_PANIC`).
#[no_mangle]
pub extern "C" fn tether_shutdown() -> tether_result {
    guard(|| {
        crate::client::free_all();
        crate::server::free_all();
        crate::registry::free_all();
        crate::conn::free_all();
        crate::monitor::free_all();
        crate::backoff::free_all();
        crate::transport_options::free_all();
        // Every callback lane is stopped by now: the dispatch threads end.
        crate::dispatch::shutdown();
        let rt = RUNTIME.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(rt) = rt {
            // Other holders are calls in flight on other threads; the last
            // one to finish drops the runtime.
            if let Ok(rt) = Arc::try_unwrap(rt) {
                rt.shutdown_timeout(Duration::from_secs(1));
            }
        }
        Ok(())
    })
}

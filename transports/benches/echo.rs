//! Echo throughput over loopback TCP: the supervised `Client`/`Server`
//! against a raw tokio baseline measured in the same run.
//!
//! * raw: a `TcpStream` client writes length-prefixed messages (the same
//!   5-byte header + payload as tether data frames, so the wire bytes are
//!   identical); see `common` (shared with the other benches) for the
//!   harness.
//! * supervised: `ClientHandle::send` / `ClientEvent::Message` against a
//!   `Server` whose application task echoes every `ServerEvent::Message`
//!   with `server.send(id, data)`. Default configs, `TcpOptions::default()`
//!   (raw sockets get the same TCP_NODELAY).
//!
//! Both run on one multi-thread runtime with 2 workers (every task on the
//! workers, none on the `block_on` thread), with the same message sizes,
//! window of messages in flight and volume. Throughput is payload bytes
//! echoed per second (one direction). Besides criterion's own report, the
//! run prints one line per size, window and way of writing, the medians
//! of alternating rounds:
//! `echo 1 KiB, 64 in flight, feed+flush: supervised 123.4 MB/s, raw
//! 130.0 MB/s, ratio 94.9 %`. `feed+flush` writes as the raw side does
//! (buffer, then flush when the window is full or a burst was echoed);
//! `send` leaves the batching to tether. 64 B runs with 1, 64 and 512
//! messages in flight.
//!
//! `cargo bench -p tether-transports --bench echo` (add `-- 64B` for one
//! size); without `--bench` (e.g.
//! `cargo test --benches`) it runs a quick smoke test.

mod common;

use common::{
    compare, criterion_group, raw_echo, runtime, EchoPair, RawStream, Supervised, FEED, WINDOW,
};
use criterion::Criterion;
use futures_util::future::BoxFuture;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tether_transports::driver::{ClientConfig, ServerConfig};
use tether_transports::tcp::{TcpAcceptor, TcpConnector, TcpOptions};
use tokio::net::{TcpListener, TcpStream};

/// Timed rounds per variant in the printed comparison; the median counts.
const ROUNDS: usize = 7;

struct Size {
    label: &'static str,
    len: usize,
    /// Messages per timed round of the printed comparison.
    messages: usize,
}

const SIZES: [Size; 3] = [
    Size {
        label: "64 B",
        len: 64,
        messages: 100_000,
    },
    Size {
        label: "1 KiB",
        len: 1024,
        messages: 50_000,
    },
    Size {
        label: "16 KiB",
        len: 16 * 1024,
        messages: 10_000,
    },
];

/// A raw TCP pair (TCP_NODELAY on both ends) or a supervised one.
fn connect(supervised: bool) -> BoxFuture<'static, Box<dyn EchoPair>> {
    Box::pin(async move {
        if supervised {
            let acceptor =
                TcpAcceptor::bind(SocketAddr::from(([127, 0, 0, 1], 0)), TcpOptions::default())
                    .await
                    .expect("bind");
            let port = tether_transports::driver::Acceptor::local_addr(&acceptor)
                .expect("addr")
                .port();
            let connector = TcpConnector::new("127.0.0.1", port, TcpOptions::default());
            let pair = Supervised::start(
                connector,
                acceptor,
                ClientConfig::default(),
                ServerConfig::default(),
            )
            .await;
            Box::new(pair) as Box<dyn EchoPair>
        } else {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("addr");
            tokio::spawn(async move {
                let (stream, _) = listener.accept().await.expect("accept");
                stream.set_nodelay(true).expect("nodelay");
                raw_echo(stream).await;
            });
            let stream = TcpStream::connect(addr).await.expect("connect");
            stream.set_nodelay(true).expect("nodelay");
            Box::new(RawStream::new(stream))
        }
    })
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    // Criterion's filter (`64B`, `echo/64B/supervised`) also picks the
    // sizes of the printed comparison.
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let picked = |size: &&Size| {
        let label = size.label.replace(' ', "");
        filter.as_ref().is_none_or(|f| {
            let f = f.replace(' ', "");
            f.contains(&format!("/{label}")) || label == f
        })
    };
    let rt = runtime();
    for size in SIZES.iter().filter(picked) {
        let (messages, rounds) = if full {
            (size.messages, ROUNDS)
        } else {
            (size.messages / 100, 1)
        };
        // Small messages: every window the targets name; one message in
        // flight is one round trip at a time, so fewer of them.
        let windows: &[usize] = if size.len <= 64 {
            &[1, WINDOW, 512]
        } else {
            &[WINDOW]
        };
        for &window in windows {
            let messages = if window == 1 { messages / 5 } else { messages };
            for feed in [true, false] {
                if !feed && window != WINDOW {
                    continue;
                }
                FEED.store(feed, Ordering::Relaxed);
                let how = if feed { "feed+flush" } else { "send" };
                let label = format!("{}, {window} in flight, {how}", size.label);
                compare(
                    &rt, "echo", &label, size.len, messages, rounds, window, &connect,
                );
            }
        }
    }
    FEED.store(true, Ordering::Relaxed);
    if full {
        let mut c = Criterion::default().configure_from_args();
        for size in SIZES.iter().filter(picked) {
            // One criterion iteration is a tenth of a comparison round.
            criterion_group(
                &mut c,
                &rt,
                "echo",
                size.label,
                size.len,
                size.messages / 10,
                Duration::from_secs(2),
                &connect,
            );
        }
        c.final_summary();
    }
}

//! The echo-throughput harness shared by the benches: a supervised pair
//! (any transport) and a raw baseline (any byte stream, or anything else
//! implementing [`EchoPair`]) echo the same messages with the same window
//! in flight; alternating rounds, medians, one printed ratio per size, and
//! a criterion group per size.
//!
//! * raw over a byte stream ([`RawStream`]): length-prefixed messages (the
//!   same 5-byte header + payload as tether data frames, so the wire bytes
//!   are identical) through a `BufWriter`, flushing whenever the in-flight
//!   window is full; a reader task reads the echoes back. The raw server
//!   ([`raw_echo`]) parses the same frames and writes each one back,
//!   flushing once its read buffer is empty. Buffers are tokio's default
//!   8 KiB, as in our `Framed` links.
//! * supervised ([`Supervised`]): `ClientHandle::send` /
//!   `ClientEvent::Message` against a `Server` whose application takes each
//!   accepted connection's `ServerConn` and echoes its messages from a task
//!   of its own with `ServerConn::send`; both applications take their
//!   messages in bursts (`next_events`, `next_messages`), the calls meant
//!   for throughput.
//!
//! Throughput is payload bytes echoed per second (one direction).
#![allow(dead_code)]

use async_trait::async_trait;
use bytes::{BufMut, Bytes, BytesMut};
use criterion::{Criterion, SamplingMode, Throughput};
use futures_util::future::BoxFuture;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tether_core::codec::HEADER_LEN;
use tether_core::supervisor::Lifecycle;
use tether_transports::driver::{
    Acceptor, Client, ClientConfig, ClientEvent, ClientHandle, Server, ServerConfig, ServerConn,
    ServerEvent,
};
use tether_transports::Link;
use tether_transports::Reconnect;
use tokio::io::{
    AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter, ReadHalf, WriteHalf,
};
use tokio::runtime::Runtime;
use tokio::sync::Semaphore;

/// Messages in flight (sent, echo not yet received) unless a comparison
/// says otherwise.
pub const WINDOW: usize = 64;

/// How the supervised sides write: `true` (the default) feeds each message
/// and flushes when the window is full or a received burst was echoed, as
/// the raw side's `BufWriter` does; `false` calls `send` per message and
/// leaves the batching to tether.
pub static FEED: AtomicBool = AtomicBool::new(true);
/// Most events taken with one `next_events` call.
pub const BURST: usize = 256;
/// Kind byte of a data frame (see `tether_core::codec`).
pub const KIND_DATA: u8 = 0x01;

/// A multi-thread runtime with 2 workers (every task on the workers, none
/// on the `block_on` thread).
pub fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

pub fn payload(len: usize) -> Bytes {
    Bytes::from((0..len).map(|i| i as u8).collect::<Vec<u8>>())
}

/// One tether data frame (header + payload) as raw bytes.
pub fn data_frame(len: usize) -> Bytes {
    let mut frame = BytesMut::with_capacity(HEADER_LEN + len);
    frame.put_u8(KIND_DATA);
    frame.put_u32(len as u32);
    frame.extend_from_slice(&payload(len));
    frame.freeze()
}

pub fn mb_per_s(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e6
}

pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Either side of a comparison, connected and idle between rounds.
#[async_trait]
pub trait EchoPair: Send {
    /// Echoes `count` messages of `len` bytes with `window` in flight and
    /// returns the time taken. Runs on the runtime's workers only.
    async fn round(&mut self, len: usize, count: usize, window: usize) -> Duration;
    /// Closes both ends.
    async fn close(self: Box<Self>);
}

/// Connects a fresh pair: `true` for the supervised side, `false` for the
/// raw baseline.
pub type Connect<'a> = &'a dyn Fn(bool) -> BoxFuture<'static, Box<dyn EchoPair>>;

// ------------------------------------------------------------------- raw

type Halves<S> = (BufWriter<WriteHalf<S>>, BufReader<ReadHalf<S>>);

/// The raw client over any byte stream.
pub struct RawStream<S> {
    halves: Option<Halves<S>>,
}

impl<S: AsyncRead + AsyncWrite + Send + 'static> RawStream<S> {
    pub fn new(stream: S) -> Self {
        let (rd, wr) = tokio::io::split(stream);
        Self {
            halves: Some((BufWriter::new(wr), BufReader::new(rd))),
        }
    }
}

#[async_trait]
impl<S: AsyncRead + AsyncWrite + Send + 'static> EchoPair for RawStream<S> {
    async fn round(&mut self, len: usize, count: usize, window: usize) -> Duration {
        let (mut wr, mut rd) = self.halves.take().expect("halves");
        let frame = data_frame(len);
        let window = Arc::new(Semaphore::new(window));
        let start = Instant::now();
        let writer = {
            let window = window.clone();
            tokio::spawn(async move {
                for _ in 0..count {
                    if let Ok(permit) = window.try_acquire() {
                        permit.forget();
                    } else {
                        // Window full: push out what is buffered, then wait.
                        wr.flush().await.expect("flush");
                        window.acquire().await.expect("window").forget();
                    }
                    wr.write_all(&frame).await.expect("write");
                }
                wr.flush().await.expect("flush");
                wr
            })
        };
        let reader = tokio::spawn(async move {
            let mut header = [0u8; HEADER_LEN];
            let mut buf = vec![0u8; len];
            let mut bytes = 0;
            for _ in 0..count {
                rd.read_exact(&mut header).await.expect("read header");
                let n = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
                assert_eq!((header[0], n), (KIND_DATA, len));
                rd.read_exact(&mut buf).await.expect("read payload");
                bytes += n;
                window.add_permits(1);
            }
            assert_eq!(bytes, len * count);
            (rd, start.elapsed())
        });
        let wr = writer.await.expect("writer");
        let (rd, elapsed) = reader.await.expect("reader");
        self.halves = Some((wr, rd));
        elapsed
    }

    async fn close(mut self: Box<Self>) {
        if let Some((mut wr, _rd)) = self.halves.take() {
            let _ = wr.shutdown().await;
        }
    }
}

/// The baseline server over any byte stream: parses frames, writes each
/// back, flushes when it has no further input buffered.
pub async fn raw_echo<S: AsyncRead + AsyncWrite>(stream: S) {
    let (rd, wr) = tokio::io::split(stream);
    let mut rd = BufReader::new(rd);
    let mut wr = BufWriter::new(wr);
    let mut header = [0u8; HEADER_LEN];
    let mut buf = Vec::new();
    loop {
        if rd.read_exact(&mut header).await.is_err() {
            return;
        }
        let n = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        buf.resize(n, 0);
        if rd.read_exact(&mut buf).await.is_err() {
            return;
        }
        if wr.write_all(&header).await.is_err() || wr.write_all(&buf).await.is_err() {
            return;
        }
        if rd.buffer().is_empty() && wr.flush().await.is_err() {
            return;
        }
    }
}

// ------------------------------------------------------------ supervised

/// A supervised client and an echoing supervised server, any transport.
pub struct Supervised {
    client: Option<Client>,
    handle: ClientHandle,
    server: tokio::task::JoinHandle<()>,
}

impl Supervised {
    /// Spawns a `Server` on `acceptor` that echoes every message and a
    /// `Client` on `connector` (default configs unless given), and waits
    /// until the client is connected.
    pub async fn start<R, A>(
        connector: R,
        acceptor: A,
        client_config: ClientConfig,
        server_config: ServerConfig,
    ) -> Self
    where
        R: Reconnect,
        R::Conn: Link,
        A: Acceptor,
    {
        let mut server = Server::spawn(acceptor, server_config).expect("server");
        let server = tokio::spawn(async move {
            let mut events = Vec::with_capacity(BURST);
            while server.next_events(&mut events, BURST).await > 0 {
                for event in events.drain(..) {
                    match event {
                        // Each connection's own task reads and echoes.
                        ServerEvent::Accepted { id, .. } => {
                            if let Some(conn) = server.take_conn(id) {
                                tokio::spawn(echo_conn(conn));
                            }
                        }
                        // Any that came before the handle was taken.
                        ServerEvent::Message { id, data } => {
                            let _ = server.send(id, data).await;
                        }
                        ServerEvent::Closed { .. } | ServerEvent::Failed(_) => {}
                    }
                }
            }
        });
        let mut client = Client::spawn(connector, client_config).expect("client");
        loop {
            match client.next_event().await.expect("client events") {
                ClientEvent::Lifecycle(Lifecycle::Connected { .. }) => break,
                ClientEvent::Lifecycle(_) => {}
                ClientEvent::Message(_) => unreachable!("no message sent yet"),
                ClientEvent::Failed(cause) => panic!("the client failed: {cause}"),
            }
        }
        let handle = client.handle();
        Self {
            client: Some(client),
            handle,
            server,
        }
    }
}

/// Echoes every message of one server connection from its own task.
async fn echo_conn(mut conn: ServerConn) {
    let feed = FEED.load(Ordering::Relaxed);
    let mut batch = Vec::with_capacity(BURST);
    while conn.next_messages(&mut batch, BURST).await > 0 {
        for msg in batch.drain(..) {
            let sent = if feed {
                conn.feed(msg).await
            } else {
                conn.send(msg).await
            };
            if sent.is_err() {
                return;
            }
        }
        conn.flush();
    }
}

#[async_trait]
impl EchoPair for Supervised {
    async fn round(&mut self, len: usize, count: usize, window: usize) -> Duration {
        let mut client = self.client.take().expect("client");
        let msg = payload(len);
        let window = Arc::new(Semaphore::new(window));
        let feed = FEED.load(Ordering::Relaxed);
        let start = Instant::now();
        let writer = {
            let window = window.clone();
            let handle = self.handle.clone();
            tokio::spawn(async move {
                for _ in 0..count {
                    if !feed {
                        window.acquire().await.expect("window").forget();
                        handle.send(msg.clone()).await.expect("send");
                        continue;
                    }
                    if let Ok(permit) = window.try_acquire() {
                        permit.forget();
                    } else {
                        // Window full: push out what was fed, then wait.
                        handle.flush();
                        window.acquire().await.expect("window").forget();
                    }
                    handle.feed(msg.clone()).await.expect("feed");
                }
                handle.flush();
            })
        };
        let reader = tokio::spawn(async move {
            let mut bytes = 0;
            let mut received = 0;
            let mut events = Vec::with_capacity(BURST);
            while received < count {
                assert!(
                    client.next_events(&mut events, BURST).await > 0,
                    "client events ended"
                );
                let mut burst = 0;
                for event in events.drain(..) {
                    match event {
                        ClientEvent::Message(m) => {
                            assert_eq!(m.len(), len);
                            bytes += m.len();
                            burst += 1;
                        }
                        ClientEvent::Lifecycle(step) => panic!("connection changed: {step:?}"),
                        ClientEvent::Failed(cause) => panic!("the client failed: {cause}"),
                    }
                }
                received += burst;
                window.add_permits(burst);
            }
            assert_eq!(bytes, len * count);
            (client, start.elapsed())
        });
        writer.await.expect("writer");
        let (client, elapsed) = reader.await.expect("reader");
        self.client = Some(client);
        elapsed
    }

    async fn close(self: Box<Self>) {
        self.handle.close();
        if let Some(mut client) = self.client {
            while client.next_event().await.is_some() {}
        }
        self.server.abort();
    }
}

// ------------------------------------------------------------ comparison

/// Times `rounds` alternating rounds of each variant, `window` messages in
/// flight, and prints the medians and their ratio, as `{name} {label}:
/// supervised .. MB/s, raw .. MB/s, ratio .. %`. Every round runs on
/// fresh connections (the tasks' spread over the two workers differs from
/// one connection to the next), warmed up with a short untimed burst.
/// Returns the ratio in percent.
#[allow(clippy::too_many_arguments)]
pub fn compare(
    rt: &Runtime,
    name: &str,
    label: &str,
    len: usize,
    messages: usize,
    rounds: usize,
    window: usize,
    connect: Connect<'_>,
) -> f64 {
    let (raw, sup) = rt.block_on(async {
        // [raw, supervised]
        let mut times = [Vec::new(), Vec::new()];
        for _ in 0..rounds {
            for (supervised, times) in [false, true].into_iter().zip(&mut times) {
                let mut pair = connect(supervised).await;
                pair.round(len, (messages / 20).max(window), window).await;
                times.push(pair.round(len, messages, window).await);
                pair.close().await;
            }
        }
        let [raw, sup] = times;
        (median(raw), median(sup))
    });
    if window == 1 {
        // One message at a time: each is a whole round trip.
        let us = |t: Duration| t.as_secs_f64() * 1e6 / messages as f64;
        println!(
            "{name} {label}: one round trip, supervised {:.1} µs, raw {:.1} µs",
            us(sup),
            us(raw)
        );
    }
    let bytes = len * messages;
    let (raw, sup) = (mb_per_s(bytes, raw), mb_per_s(bytes, sup));
    let ratio = 100.0 * sup / raw;
    println!("{name} {label}: supervised {sup:.1} MB/s, raw {raw:.1} MB/s, ratio {ratio:.1} %");
    ratio
}

/// A criterion group `{name}/{label}` with `raw` and `supervised`; one
/// iteration echoes `batch` messages of `len` bytes on one connection.
#[allow(clippy::too_many_arguments)]
pub fn criterion_group(
    c: &mut Criterion,
    rt: &Runtime,
    name: &str,
    label: &str,
    len: usize,
    batch: usize,
    measurement: Duration,
    connect: Connect<'_>,
) {
    let mut group = c.benchmark_group(format!("{name}/{}", label.replace(' ', "")));
    group
        .throughput(Throughput::Bytes((len * batch) as u64))
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(measurement);
    for variant in ["raw", "supervised"] {
        let mut pair = Some(rt.block_on(connect(variant == "supervised")));
        group.bench_function(variant, |b| {
            b.iter_custom(|iters| {
                let mut p = pair.take().expect("pair");
                let (p, total) = rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += p.round(len, batch, WINDOW).await;
                    }
                    (p, total)
                });
                pair = Some(p);
                total
            })
        });
        if let Some(p) = pair.take() {
            rt.block_on(p.close());
        }
    }
    group.finish();
}

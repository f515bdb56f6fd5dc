//! Echo throughput over loopback TCP: the supervised `Client`/`Server`
//! against a raw tokio baseline measured in the same run.
//!
//! * raw: a `TcpStream` client writes length-prefixed messages (the same
//!   5-byte header + payload as tether data frames, so the wire bytes are
//!   identical) through a `BufWriter`, flushing whenever the in-flight window
//!   is full; a reader task reads the echoes back. The raw server parses the
//!   same frames and writes each one back, flushing once its read buffer is
//!   empty. Buffers are tokio's default 8 KiB, as in our `Framed` links.
//! * supervised: `ClientHandle::send` / `ClientEvent::Message` against a
//!   `Server` whose application task echoes every `ServerEvent::Message`
//!   with `server.send(id, data)`. Default configs, `TcpOptions::default()`
//!   (raw sockets get the same TCP_NODELAY).
//!
//! Both run on one multi-thread runtime with 2 workers (every task on the
//! workers, none on the `block_on` thread), with the same message sizes,
//! window of messages in flight and volume. Throughput is payload bytes
//! echoed per second (one direction). Besides criterion's own report, the
//! run prints one line per size, the medians of alternating rounds:
//! `echo 1 KiB: supervised 123.4 MB/s, raw 130.0 MB/s, ratio 94.9 %`.
//!
//! `cargo bench -p tether-transports --bench echo`; without `--bench` (e.g.
//! `cargo test --benches`) it runs a quick smoke test.

use bytes::{BufMut, Bytes, BytesMut};
use criterion::{Criterion, SamplingMode, Throughput};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tether_core::codec::HEADER_LEN;
use tether_transports::driver::{
    Client, ClientConfig, ClientEvent, ClientHandle, Server, ServerConfig, ServerEvent,
};
use tether_transports::tcp::{TcpAcceptor, TcpConnector, TcpOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::Semaphore;

/// Messages in flight (sent, echo not yet received).
const WINDOW: usize = 64;
/// Timed rounds per variant in the printed comparison; the median counts.
const ROUNDS: usize = 7;
/// Kind byte of a data frame (see `tether_core::codec`).
const KIND_DATA: u8 = 0x01;

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

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn payload(len: usize) -> Bytes {
    Bytes::from((0..len).map(|i| i as u8).collect::<Vec<u8>>())
}

/// Either side of the comparison, connected and idle between rounds.
enum Pair {
    Raw(Raw),
    Supervised(Supervised),
}

impl Pair {
    async fn connect(supervised: bool) -> Self {
        if supervised {
            Pair::Supervised(Supervised::connect().await)
        } else {
            Pair::Raw(Raw::connect().await)
        }
    }

    /// Echoes `count` messages of `len` bytes with `WINDOW` in flight and
    /// returns the time taken. Runs on the runtime's workers only.
    async fn round(&mut self, len: usize, count: usize) -> Duration {
        match self {
            Pair::Raw(raw) => raw.round(len, count).await,
            Pair::Supervised(sup) => sup.round(len, count).await,
        }
    }

    async fn close(self) {
        match self {
            Pair::Raw(raw) => raw.close().await,
            Pair::Supervised(sup) => sup.close().await,
        }
    }
}

// ------------------------------------------------------------------- raw

struct Raw {
    halves: Option<(BufWriter<OwnedWriteHalf>, BufReader<OwnedReadHalf>)>,
}

impl Raw {
    async fn connect() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.expect("accept");
            stream.set_nodelay(true).expect("nodelay");
            raw_echo(stream).await;
        });
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let (rd, wr) = stream.into_split();
        Self {
            halves: Some((BufWriter::new(wr), BufReader::new(rd))),
        }
    }

    async fn round(&mut self, len: usize, count: usize) -> Duration {
        let (mut wr, mut rd) = self.halves.take().expect("halves");
        let mut frame = BytesMut::with_capacity(HEADER_LEN + len);
        frame.put_u8(KIND_DATA);
        frame.put_u32(len as u32);
        frame.extend_from_slice(&payload(len));
        let frame = frame.freeze();
        let window = Arc::new(Semaphore::new(WINDOW));
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

    async fn close(mut self) {
        if let Some((mut wr, _rd)) = self.halves.take() {
            let _ = wr.shutdown().await;
        }
    }
}

/// The baseline server: parses frames, writes each back, flushes when it
/// has no further input buffered.
async fn raw_echo(stream: TcpStream) {
    let (rd, wr) = stream.into_split();
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

struct Supervised {
    client: Option<Client>,
    handle: ClientHandle,
    server: tokio::task::JoinHandle<()>,
}

impl Supervised {
    async fn connect() -> Self {
        let acceptor =
            TcpAcceptor::bind(SocketAddr::from(([127, 0, 0, 1], 0)), TcpOptions::default())
                .await
                .expect("bind");
        let mut server = Server::spawn(acceptor, ServerConfig::default()).expect("server");
        let port = server.local_addr().port();
        let server = tokio::spawn(async move {
            while let Some(event) = server.next_event().await {
                if let ServerEvent::Message { id, data } = event {
                    if server.send(id, data).await.is_err() {
                        return;
                    }
                }
            }
        });
        let connector = TcpConnector::new("127.0.0.1", port, TcpOptions::default());
        let mut client = Client::spawn(connector, ClientConfig::default()).expect("client");
        loop {
            match client.next_event().await.expect("client events") {
                ClientEvent::Lifecycle(tether_core::supervisor::Lifecycle::Connected {
                    ..
                }) => break,
                ClientEvent::Lifecycle(_) => {}
                ClientEvent::Message(_) => unreachable!("no message sent yet"),
            }
        }
        let handle = client.handle();
        Self {
            client: Some(client),
            handle,
            server,
        }
    }

    async fn round(&mut self, len: usize, count: usize) -> Duration {
        let mut client = self.client.take().expect("client");
        let msg = payload(len);
        let window = Arc::new(Semaphore::new(WINDOW));
        let start = Instant::now();
        let writer = {
            let window = window.clone();
            let handle = self.handle.clone();
            tokio::spawn(async move {
                for _ in 0..count {
                    window.acquire().await.expect("window").forget();
                    handle.send(msg.clone()).await.expect("send");
                }
            })
        };
        let reader = tokio::spawn(async move {
            let mut bytes = 0;
            let mut received = 0;
            while received < count {
                match client.next_event().await.expect("client events") {
                    ClientEvent::Message(m) => {
                        assert_eq!(m.len(), len);
                        bytes += m.len();
                        received += 1;
                        window.add_permits(1);
                    }
                    ClientEvent::Lifecycle(step) => panic!("connection changed: {step:?}"),
                }
            }
            assert_eq!(bytes, len * count);
            (client, start.elapsed())
        });
        writer.await.expect("writer");
        let (client, elapsed) = reader.await.expect("reader");
        self.client = Some(client);
        elapsed
    }

    async fn close(self) {
        self.handle.close();
        if let Some(mut client) = self.client {
            while client.next_event().await.is_some() {}
        }
        self.server.abort();
    }
}

// ------------------------------------------------------------ comparison

fn mb_per_s(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e6
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Times `rounds` alternating rounds of each variant and prints the medians
/// and their ratio. Every round runs on fresh connections (the tasks' spread
/// over the two workers differs from one connection to the next), warmed up
/// with a short untimed burst.
fn compare(rt: &Runtime, size: &Size, messages: usize, rounds: usize) {
    let len = size.len;
    let (raw, sup) = rt.block_on(async {
        // [raw, supervised]
        let mut times = [Vec::new(), Vec::new()];
        for _ in 0..rounds {
            for (supervised, times) in [false, true].into_iter().zip(&mut times) {
                let mut pair = Pair::connect(supervised).await;
                pair.round(len, (messages / 20).max(WINDOW)).await;
                times.push(pair.round(len, messages).await);
                pair.close().await;
            }
        }
        let [raw, sup] = times;
        (median(raw), median(sup))
    });
    let bytes = len * messages;
    let (raw, sup) = (mb_per_s(bytes, raw), mb_per_s(bytes, sup));
    println!(
        "echo {}: supervised {sup:.1} MB/s, raw {raw:.1} MB/s, ratio {:.1} %",
        size.label,
        100.0 * sup / raw
    );
}

fn criterion_benches(c: &mut Criterion, rt: &Runtime) {
    for size in &SIZES {
        // One criterion iteration is a tenth of a comparison round.
        let batch = size.messages / 10;
        let mut group = c.benchmark_group(format!("echo/{}", size.label.replace(' ', "")));
        group
            .throughput(Throughput::Bytes((size.len * batch) as u64))
            .sample_size(10)
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2));
        for name in ["raw", "supervised"] {
            let mut pair = Some(rt.block_on(Pair::connect(name == "supervised")));
            group.bench_function(name, |b| {
                b.iter_custom(|iters| {
                    let mut p = pair.take().expect("pair");
                    let (p, total) = rt.block_on(async {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            total += p.round(size.len, batch).await;
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
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let rt = runtime();
    for size in &SIZES {
        let (messages, rounds) = if full {
            (size.messages, ROUNDS)
        } else {
            (size.messages / 100, 1)
        };
        compare(&rt, size, messages, rounds);
    }
    if full {
        let mut c = Criterion::default().configure_from_args();
        criterion_benches(&mut c, &rt);
        c.final_summary();
    }
}

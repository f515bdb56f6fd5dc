//! Memory per idle connection: N supervised TCP connections against N plain
//! tokio streams carrying the same ping traffic, client and server each in
//! its own process.
//!
//! # Method
//!
//! One binary, four roles: the parent (no `--role`) starts children of
//! itself (`std::env::current_exe()`), each in its own process, and talks
//! to them over their stdin / stdout, one line per command and answer:
//!
//! * `tether-server`: a `Server` over a `TcpAcceptor` on 127.0.0.1 with
//!   default settings except the heartbeat interval; one application task
//!   takes its events in bursts (`next_events`) and only counts them, so
//!   nothing piles up.
//! * `tether-client`: N `Client`s, each over its own `TcpConnector` with
//!   `TcpOptions::default()`, and one application task per client that
//!   consumes its events (what a program using the documented API does).
//! * `raw-server`: a tokio `TcpListener`; one task per connection reads
//!   into a fixed `[u8; 64]` array held in the task (no heap buffer) and
//!   answers every 13-byte ping frame with a 13-byte pong frame.
//! * `raw-client`: N tokio `TcpStream`s (TCP_NODELAY, like tether's
//!   default options); one task per connection writes a 13-byte ping frame
//!   (tether's wire format: kind, length, 8 bytes) every heartbeat interval
//!   and reads the pongs into a fixed `[u8; 64]` array held in the task.
//!
//! Both tether ends use `HeartbeatConfig { interval, ..default }` (reply
//! timeout 10 s, 2 misses); each pings after `interval` of silence, so an
//! idle tether connection carries about one ping and one pong per interval,
//! as the raw one does.
//!
//! Every child runs a tokio multi-thread runtime with 2 workers, raises its
//! RLIMIT_NOFILE soft limit to the hard limit (N is clamped to what the
//! hard limit allows, with a printed note) and measures itself on the
//! parent's command: VmRSS from `/proc/self/status`, and the live heap
//! bytes and blocks counted by a global allocator that wraps the system
//! allocator (requested sizes, without the allocator's own overhead: less
//! noisy than RSS). Samples: once before any connection (server and
//! runtime up), once all N connections are up on both ends (plus 1 s), then
//! every sample interval through the idle window. Connections are opened in
//! batches of 100, each batch up before the next starts.
//!
//! Per connection = (last idle sample − before) / N; growth = least-squares
//! slope of the idle samples from one heartbeat interval on (every
//! connection has pinged by then), per connection per minute. The parent
//! runs tether server + client, then raw server + raw client, alternating,
//! for the given rounds, and prints the medians and the tether / raw
//! ratios. It never asserts speed or size; the smoke run only checks that
//! every connection came up, none dropped and every answer parsed.
//!
//! # Running
//!
//! * `cargo bench -p tether-transports --bench idle_memory`: N = 10,000,
//!   heartbeat 10 s, idle 60 s sampled every 10 s, 2 rounds.
//! * options after `--`: `--n N`, `--interval-ms MS`, `--idle-s S`,
//!   `--sample-s S`, `--rounds R`, `--minutes M` (the long idle run: M
//!   minutes idle, sampled every minute, 1 round; prints whether RSS stays
//!   flat), `--variant tether|raw|both`, `--trace` (print every sample).
//! * without `--bench` (`cargo test --benches`): a smoke run, N = 200,
//!   heartbeat 1 s, idle 2 s, 1 round.
//!
//! Children never outlive the parent: they are killed when the parent's
//! handle drops, they exit when their stdin closes or the parent dies
//! (PR_SET_PDEATHSIG), and a watchdog ends each one after its time budget.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicIsize, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use tether_core::liveness::{HeartbeatConfig, Policy};
use tether_core::supervisor::Lifecycle;
use tether_transports::driver::{
    Acceptor, Client, ClientConfig, ClientEvent, Server, ServerConfig, ServerEvent,
};
use tether_transports::tcp::{TcpAcceptor, TcpConnector, TcpOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

// ------------------------------------------------------------ allocator

/// The system allocator, counting live bytes and blocks, and live blocks
/// by requested size (for the breakdown of what a connection holds).
struct Counting;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
static LIVE_BLOCKS: AtomicUsize = AtomicUsize::new(0);
/// Live blocks of each size below the last index; the last counts all
/// larger ones.
const SIZE_SLOTS: usize = 16 * 1024 + 1;
static BY_SIZE: [AtomicIsize; SIZE_SLOTS] = [const { AtomicIsize::new(0) }; SIZE_SLOTS];

fn by_size(size: usize) -> &'static AtomicIsize {
    &BY_SIZE[size.min(SIZE_SLOTS - 1)]
}

fn counted(size: usize) {
    LIVE_BYTES.fetch_add(size, Ordering::Relaxed);
    LIVE_BLOCKS.fetch_add(1, Ordering::Relaxed);
    by_size(size).fetch_add(1, Ordering::Relaxed);
}

fn uncounted(size: usize) {
    LIVE_BYTES.fetch_sub(size, Ordering::Relaxed);
    LIVE_BLOCKS.fetch_sub(1, Ordering::Relaxed);
    by_size(size).fetch_sub(1, Ordering::Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            counted(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            counted(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) };
        uncounted(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            counted(new_size);
            uncounted(layout.size());
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// One measurement of the calling process.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    rss_kb: u64,
    heap: u64,
    blocks: u64,
}

fn vm_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn sample_self() -> Sample {
    Sample {
        rss_kb: vm_rss_kb(),
        heap: LIVE_BYTES.load(Ordering::Relaxed) as u64,
        blocks: LIVE_BLOCKS.load(Ordering::Relaxed) as u64,
    }
}

// ------------------------------------------------------------- settings

const ROLE_TETHER_SERVER: &str = "tether-server";
const ROLE_TETHER_CLIENT: &str = "tether-client";
const ROLE_RAW_SERVER: &str = "raw-server";
const ROLE_RAW_CLIENT: &str = "raw-client";

/// Connections opened together; each batch is up before the next starts.
const BATCH: usize = 100;
/// Descriptors a process needs besides its connections.
const SPARE_FDS: libc::rlim_t = 128;
/// The ping frame of the raw client: kind 0x02, length 8, then 8 bytes.
const PING_KIND: u8 = 0x02;
const PONG_KIND: u8 = 0x03;
const CONTROL_FRAME: usize = 13;

#[derive(Debug, Clone)]
struct Settings {
    full: bool,
    n: usize,
    interval: Duration,
    idle: Duration,
    sample: Duration,
    rounds: usize,
    /// `--minutes` was given: the long run, with a flatness verdict.
    long: bool,
    /// Which pairs run each round: `true` tether, `false` raw.
    variants: Vec<bool>,
    /// Print every idle sample (`--trace`; always in the long run).
    trace: bool,
}

fn arg_value(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn arg_num<T: std::str::FromStr>(args: &[String], name: &str) -> Option<T> {
    arg_value(args, name).map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name}: not a number: {v}"))
    })
}

impl Settings {
    fn from_args(args: &[String]) -> Self {
        let full = args.iter().any(|a| a == "--bench");
        let minutes: Option<u64> = arg_num(args, "--minutes");
        let mut s = if full {
            Settings {
                full,
                n: 10_000,
                interval: Duration::from_secs(10),
                idle: Duration::from_secs(60),
                sample: Duration::from_secs(10),
                rounds: 2,
                long: false,
                variants: vec![true, false],
                trace: false,
            }
        } else {
            Settings {
                full,
                n: 200,
                interval: Duration::from_secs(1),
                idle: Duration::from_secs(2),
                sample: Duration::from_secs(1),
                rounds: 1,
                long: false,
                variants: vec![true, false],
                trace: false,
            }
        };
        if let Some(m) = minutes {
            s.long = true;
            s.idle = Duration::from_secs(m.max(1) * 60);
            s.sample = Duration::from_secs(60);
            s.rounds = 1;
        }
        if let Some(n) = arg_num(args, "--n") {
            s.n = n;
        }
        if let Some(ms) = arg_num(args, "--interval-ms") {
            s.interval = Duration::from_millis(ms);
        }
        if let Some(secs) = arg_num(args, "--idle-s") {
            s.idle = Duration::from_secs(secs);
        }
        if let Some(secs) = arg_num(args, "--sample-s") {
            s.sample = Duration::from_secs(secs);
        }
        if let Some(r) = arg_num(args, "--rounds") {
            s.rounds = r;
        }
        match arg_value(args, "--variant").as_deref() {
            None | Some("both") => {}
            Some("tether") => s.variants = vec![true],
            Some("raw") => s.variants = vec![false],
            Some(other) => panic!("--variant: tether, raw or both, not {other}"),
        }
        s.trace = s.long || args.iter().any(|a| a == "--trace");
        s.n = s.n.max(1);
        s.rounds = s.rounds.max(1);
        s.sample = s.sample.max(Duration::from_millis(100));
        s.interval = s.interval.max(Duration::from_millis(10));
        s
    }

    /// The longest the connect phase may take.
    fn connect_budget(&self) -> Duration {
        Duration::from_secs(30) + Duration::from_millis(20 * self.n as u64)
    }

    /// What a child may live at most: connect, settle, idle, margin.
    fn child_budget(&self) -> Duration {
        self.connect_budget() + self.idle + Duration::from_secs(60)
    }
}

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns the new soft
/// limit.
fn raise_nofile() -> libc::rlim_t {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid pointer to an rlimit for the call's duration.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 1024;
    }
    if lim.rlim_cur < lim.rlim_max {
        let want = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &want) } == 0 {
            lim.rlim_cur = lim.rlim_max;
        }
    }
    lim.rlim_cur
}

// ---------------------------------------------------------------- child

/// Lines from the parent; the process exits once stdin closes.
fn stdin_commands() -> tokio::sync::mpsc::UnboundedReceiver<String> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
        // The parent is gone or done with us.
        std::process::exit(0);
    });
    rx
}

fn child_main(args: &[String], role: &str) {
    // Die with the parent, even when it is SIGKILLed.
    // SAFETY: prctl with integer arguments only.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
    }
    // SAFETY: no arguments, no memory.
    if unsafe { libc::getppid() } == 1 {
        std::process::exit(1);
    }
    raise_nofile();
    let budget = Duration::from_secs(arg_num(args, "--deadline-s").unwrap_or(600));
    std::thread::spawn(move || {
        std::thread::sleep(budget);
        eprintln!("idle_memory child: watchdog after {budget:?}, exiting");
        std::process::exit(3);
    });
    let n: usize = arg_num(args, "--n").expect("--n");
    let interval = Duration::from_millis(arg_num(args, "--interval-ms").expect("--interval-ms"));
    let port: u16 = arg_num(args, "--port").unwrap_or(0);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let commands = stdin_commands();
        match role {
            ROLE_TETHER_SERVER => tether_server(commands, interval).await,
            ROLE_RAW_SERVER => raw_server(commands).await,
            ROLE_TETHER_CLIENT => tether_client(commands, n, port, interval).await,
            ROLE_RAW_CLIENT => raw_client(commands, n, port, interval).await,
            other => panic!("unknown role {other}"),
        }
    });
}

fn reply(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// `sizes size:count ...`: live blocks by requested size (the last slot:
/// `16384` for 16 KiB and more).
fn reply_sizes() {
    let mut line = String::from("sizes");
    for (size, count) in BY_SIZE.iter().enumerate() {
        let count = count.load(Ordering::Relaxed);
        if count != 0 {
            line.push_str(&format!(" {size}:{count}"));
        }
    }
    reply(&line);
}

fn reply_sample() {
    let s = sample_self();
    reply(&format!(
        "sample rss_kb={} heap={} blocks={}",
        s.rss_kb, s.heap, s.blocks
    ));
}

fn heartbeat(interval: Duration) -> HeartbeatConfig {
    HeartbeatConfig {
        interval,
        ..HeartbeatConfig::default()
    }
}

/// Counters a child reports with `status`.
#[derive(Default)]
struct Counters {
    up: AtomicUsize,
    ended: AtomicUsize,
    /// Client: failed connection attempts; server: accept errors.
    failed: AtomicUsize,
    /// Raw client: pong frames received; raw server: pongs sent.
    pongs: AtomicU64,
}

impl Counters {
    fn status(&self) -> String {
        format!(
            "status up={} ended={} failed={} pongs={}",
            self.up.load(Ordering::Relaxed),
            self.ended.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            self.pongs.load(Ordering::Relaxed)
        )
    }
}

/// Answers `sample` and `status` until stdin closes.
async fn serve_commands(
    mut commands: tokio::sync::mpsc::UnboundedReceiver<String>,
    counters: &Counters,
) {
    while let Some(cmd) = commands.recv().await {
        match cmd.trim() {
            "sample" => reply_sample(),
            "sizes" => reply_sizes(),
            "status" => reply(&counters.status()),
            other => reply(&format!("error unknown command {other}")),
        }
    }
}

async fn tether_server(commands: tokio::sync::mpsc::UnboundedReceiver<String>, interval: Duration) {
    let acceptor = TcpAcceptor::bind(([127, 0, 0, 1], 0).into(), TcpOptions::default())
        .await
        .expect("bind");
    let port = Acceptor::local_addr(&acceptor).expect("addr").port();
    let config = ServerConfig {
        policy: Policy::Heartbeat(heartbeat(interval)),
        ..ServerConfig::default()
    };
    let mut server = Server::spawn(acceptor, config).expect("server");
    let counters = Arc::new(Counters::default());
    let app = counters.clone();
    tokio::spawn(async move {
        let mut events = Vec::with_capacity(256);
        while server.next_events(&mut events, 256).await > 0 {
            for event in events.drain(..) {
                match event {
                    ServerEvent::Accepted { .. } => {
                        app.up.fetch_add(1, Ordering::Relaxed);
                    }
                    ServerEvent::Closed { .. } => {
                        app.ended.fetch_add(1, Ordering::Relaxed);
                    }
                    ServerEvent::Message { .. } => {}
                    ServerEvent::Failed(cause) => {
                        eprintln!("idle_memory: the server failed: {cause}");
                        app.failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    });
    reply(&format!("port={port}"));
    serve_commands(commands, &counters).await;
}

async fn raw_server(commands: tokio::sync::mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let counters = Arc::new(Counters::default());
    let app = counters.clone();
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(_) => {
                    app.failed.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            app.up.fetch_add(1, Ordering::Relaxed);
            let conn = app.clone();
            tokio::spawn(async move {
                raw_answer(stream, &conn).await;
                conn.ended.fetch_add(1, Ordering::Relaxed);
            });
        }
    });
    reply(&format!("port={port}"));
    serve_commands(commands, &counters).await;
}

/// The raw server's connection: answers each ping frame with a pong.
async fn raw_answer(mut stream: TcpStream, counters: &Counters) {
    let mut buf = [0u8; 64];
    let mut filled = 0;
    loop {
        match stream.read(&mut buf[filled..]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => filled += n,
        }
        let mut at = 0;
        while filled - at >= CONTROL_FRAME {
            let mut frame = [0u8; CONTROL_FRAME];
            frame.copy_from_slice(&buf[at..at + CONTROL_FRAME]);
            at += CONTROL_FRAME;
            if frame[0] == PING_KIND {
                frame[0] = PONG_KIND;
                if stream.write_all(&frame).await.is_err() {
                    return;
                }
                counters.pongs.fetch_add(1, Ordering::Relaxed);
            }
        }
        buf.copy_within(at..filled, 0);
        filled -= at;
    }
}

/// Waits until `ready` has `count` permits or the deadline passes; false on
/// the deadline.
async fn wait_ready(ready: &Semaphore, count: usize, deadline: tokio::time::Instant) -> bool {
    match tokio::time::timeout_at(deadline, ready.acquire_many(count as u32)).await {
        Ok(Ok(permit)) => {
            permit.forget();
            true
        }
        _ => false,
    }
}

/// Runs the `connect` command, then answers the others.
async fn client_commands<F>(
    mut commands: tokio::sync::mpsc::UnboundedReceiver<String>,
    counters: Arc<Counters>,
    mut open_batch: F,
    n: usize,
) where
    F: FnMut(usize, Arc<Semaphore>),
{
    reply("ready");
    while let Some(cmd) = commands.recv().await {
        match cmd.trim() {
            "sample" => reply_sample(),
            "sizes" => reply_sizes(),
            "status" => reply(&counters.status()),
            "connect" => {
                let started = Instant::now();
                let deadline = tokio::time::Instant::now()
                    + Duration::from_secs(30)
                    + Duration::from_millis(20 * n as u64);
                let ready = Arc::new(Semaphore::new(0));
                let mut opened = 0;
                let mut in_time = true;
                while opened < n && in_time {
                    let batch = BATCH.min(n - opened);
                    open_batch(batch, ready.clone());
                    opened += batch;
                    in_time = wait_ready(&ready, batch, deadline).await;
                }
                reply(&format!(
                    "connected n={} ms={}",
                    counters.up.load(Ordering::Relaxed),
                    started.elapsed().as_millis()
                ));
            }
            other => reply(&format!("error unknown command {other}")),
        }
    }
}

async fn tether_client(
    commands: tokio::sync::mpsc::UnboundedReceiver<String>,
    n: usize,
    port: u16,
    interval: Duration,
) {
    let counters = Arc::new(Counters::default());
    let config = ClientConfig {
        heartbeat: heartbeat(interval),
        ..ClientConfig::default()
    };
    let app = counters.clone();
    let open_batch = move |batch: usize, ready: Arc<Semaphore>| {
        for _ in 0..batch {
            let connector = TcpConnector::new("127.0.0.1", port, TcpOptions::default());
            let mut client = Client::spawn(connector, config.clone()).expect("client");
            let (counters, ready) = (app.clone(), ready.clone());
            // The application's side of one client: takes every event.
            tokio::spawn(async move {
                let mut first = true;
                while let Some(event) = client.next_event().await {
                    match event {
                        ClientEvent::Lifecycle(Lifecycle::Connected { .. }) => {
                            counters.up.fetch_add(1, Ordering::Relaxed);
                            if first {
                                first = false;
                                ready.add_permits(1);
                            }
                        }
                        ClientEvent::Lifecycle(Lifecycle::Disconnected { .. }) => {
                            counters.up.fetch_sub(1, Ordering::Relaxed);
                            counters.ended.fetch_add(1, Ordering::Relaxed);
                        }
                        ClientEvent::Lifecycle(Lifecycle::ConnectFailed { .. }) => {
                            counters.failed.fetch_add(1, Ordering::Relaxed);
                        }
                        ClientEvent::Lifecycle(_) | ClientEvent::Message(_) => {}
                        ClientEvent::Failed(cause) => {
                            eprintln!("idle_memory: a client failed: {cause}");
                            counters.failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
    };
    client_commands(commands, counters, open_batch, n).await;
}

async fn raw_client(
    commands: tokio::sync::mpsc::UnboundedReceiver<String>,
    n: usize,
    port: u16,
    interval: Duration,
) {
    let counters = Arc::new(Counters::default());
    let app = counters.clone();
    let open_batch = move |batch: usize, ready: Arc<Semaphore>| {
        for _ in 0..batch {
            let (counters, ready) = (app.clone(), ready.clone());
            tokio::spawn(async move {
                let mut stream = None;
                for _ in 0..50 {
                    match TcpStream::connect(("127.0.0.1", port)).await {
                        Ok(s) => {
                            stream = Some(s);
                            break;
                        }
                        Err(_) => {
                            counters.failed.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
                let Some(stream) = stream else {
                    ready.add_permits(1);
                    return;
                };
                let _ = stream.set_nodelay(true);
                counters.up.fetch_add(1, Ordering::Relaxed);
                ready.add_permits(1);
                drop(ready);
                raw_ping(stream, interval, &counters).await;
                counters.up.fetch_sub(1, Ordering::Relaxed);
                counters.ended.fetch_add(1, Ordering::Relaxed);
            });
        }
    };
    client_commands(commands, counters, open_batch, n).await;
}

/// The raw client's connection: a ping every interval, pongs read back.
async fn raw_ping(mut stream: TcpStream, interval: Duration, counters: &Counters) {
    let mut buf = [0u8; 64];
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seq: u64 = 0;
    let mut pending = 0usize;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                seq += 1;
                let mut frame = [0u8; CONTROL_FRAME];
                frame[0] = PING_KIND;
                frame[1..5].copy_from_slice(&8u32.to_be_bytes());
                frame[5..].copy_from_slice(&seq.to_be_bytes());
                if stream.write_all(&frame).await.is_err() {
                    return;
                }
            }
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    pending += n;
                    let frames = pending / CONTROL_FRAME;
                    pending %= CONTROL_FRAME;
                    counters.pongs.fetch_add(frames as u64, Ordering::Relaxed);
                }
            },
        }
    }
}

// --------------------------------------------------------------- parent

/// A child process of this binary, SIGKILLed when dropped.
struct Proc {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Proc {
    fn spawn(role: &str, extra: &[String], settings: &Settings) -> Self {
        let exe = std::env::current_exe().expect("current_exe");
        let mut cmd = Command::new(exe);
        cmd.arg("--role")
            .arg(role)
            .arg("--n")
            .arg(settings.n.to_string())
            .arg("--interval-ms")
            .arg(settings.interval.as_millis().to_string())
            .arg("--deadline-s")
            .arg(settings.child_budget().as_secs().to_string())
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {role}: {e}"));
        let stdout = child.stdout.take().expect("stdout");
        let stdin = child.stdin.take();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Self {
            name: role.to_string(),
            child,
            stdin,
            lines,
        }
    }

    /// The next line that starts with `prefix`, within `timeout`.
    fn expect(&mut self, prefix: &str, timeout: Duration) -> String {
        let until = Instant::now() + timeout;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return line,
                Ok(line) if line.starts_with("error") => {
                    panic!("{}: {line}", self.name)
                }
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("{}: no `{prefix}` line within {timeout:?}", self.name)
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.child.try_wait().ok().flatten();
                    panic!(
                        "{}: ended before a `{prefix}` line (exit {status:?})",
                        self.name
                    )
                }
            }
        }
    }

    fn send(&mut self, cmd: &str) {
        let stdin = self.stdin.as_mut().expect("stdin");
        writeln!(stdin, "{cmd}")
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("{}: write {cmd}: {e}", self.name));
    }

    fn ask(&mut self, cmd: &str, prefix: &str, timeout: Duration) -> String {
        self.send(cmd);
        self.expect(prefix, timeout)
    }

    fn sample(&mut self) -> Sample {
        let line = self.ask("sample", "sample ", Duration::from_secs(30));
        Sample {
            rss_kb: field(&line, "rss_kb"),
            heap: field(&line, "heap"),
            blocks: field(&line, "blocks"),
        }
    }

    fn sizes(&mut self) -> BTreeMap<usize, i64> {
        let line = self.ask("sizes", "sizes", Duration::from_secs(30));
        line.split_whitespace()
            .skip(1)
            .map(|kv| {
                let (k, v) = kv.split_once(':').expect("size:count");
                (k.parse().expect("size"), v.parse().expect("count"))
            })
            .collect()
    }

    fn status(&mut self) -> Status {
        let line = self.ask("status", "status ", Duration::from_secs(30));
        Status {
            up: field(&line, "up"),
            ended: field(&line, "ended"),
            failed: field(&line, "failed"),
            pongs: field(&line, "pongs"),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stdin.take();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `key=value` from a child's line, parsed.
fn field<T: std::str::FromStr>(line: &str, key: &str) -> T {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no number `{key}` in `{line}`"))
}

#[derive(Debug, Clone, Copy)]
struct Status {
    up: usize,
    ended: usize,
    failed: usize,
    pongs: u64,
}

/// One side (server or client) of one run.
#[derive(Debug, Clone, Default)]
struct Side {
    before: Sample,
    connected: Sample,
    /// (seconds since the connected sample, sample)
    idle: Vec<(f64, Sample)>,
    /// Live blocks by size: before any connection, after the idle window.
    sizes_before: BTreeMap<usize, i64>,
    sizes_after: BTreeMap<usize, i64>,
}

impl Side {
    fn last(&self) -> Sample {
        self.idle.last().map(|(_, s)| *s).unwrap_or(self.connected)
    }

    fn heap_per_conn(&self, n: usize) -> f64 {
        (self.last().heap as f64 - self.before.heap as f64) / n as f64
    }

    fn rss_per_conn(&self, n: usize) -> f64 {
        (self.last().rss_kb as f64 - self.before.rss_kb as f64) * 1024.0 / n as f64
    }

    /// The block sizes a connection holds: (size, blocks per connection),
    /// largest share first, only those held by at least half of them.
    fn blocks_by_size(&self, n: usize) -> Vec<(usize, f64)> {
        let mut held: Vec<(usize, f64)> = self
            .sizes_after
            .iter()
            .map(|(size, after)| {
                let before = self.sizes_before.get(size).copied().unwrap_or(0);
                (*size, (after - before) as f64 / n as f64)
            })
            .filter(|(_, per)| *per >= 0.5)
            .collect();
        held.sort_by(|a, b| (b.0 as f64 * b.1).total_cmp(&(a.0 as f64 * a.1)));
        held
    }

    fn blocks_per_conn(&self, n: usize) -> f64 {
        (self.last().blocks as f64 - self.before.blocks as f64) / n as f64
    }

    /// Samples for the growth slope: from one heartbeat interval on, when
    /// there are at least two of them; otherwise all idle samples.
    fn steady(&self, interval: Duration) -> Vec<(f64, Sample)> {
        let mut all = vec![(0.0, self.connected)];
        all.extend(self.idle.iter().copied());
        let later: Vec<_> = all
            .iter()
            .copied()
            .filter(|(t, _)| *t >= interval.as_secs_f64())
            .collect();
        if later.len() >= 2 {
            later
        } else {
            all
        }
    }

    /// Growth in bytes per connection per minute: (heap, RSS).
    fn growth(&self, n: usize, interval: Duration) -> (f64, f64) {
        let points = self.steady(interval);
        let per_min = |f: &dyn Fn(&Sample) -> f64| {
            let xy: Vec<(f64, f64)> = points.iter().map(|(t, s)| (t / 60.0, f(s))).collect();
            slope(&xy) / n as f64
        };
        (
            per_min(&|s| s.heap as f64),
            per_min(&|s| s.rss_kb as f64 * 1024.0),
        )
    }
}

/// Least-squares slope of y over x (0 for fewer than two points).
fn slope(xy: &[(f64, f64)]) -> f64 {
    if xy.len() < 2 {
        return 0.0;
    }
    let n = xy.len() as f64;
    let mx = xy.iter().map(|p| p.0).sum::<f64>() / n;
    let my = xy.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = xy.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = xy.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    if sxx == 0.0 {
        0.0
    } else {
        sxy / sxx
    }
}

#[derive(Debug, Clone)]
struct Run {
    server: Side,
    client: Side,
    connect_ms: u64,
    /// Failed connection attempts on the client (retried).
    failed_attempts: usize,
}

/// One server + client pair of processes through the whole run.
fn run_pair(tether: bool, s: &Settings) -> Run {
    let (server_role, client_role) = if tether {
        (ROLE_TETHER_SERVER, ROLE_TETHER_CLIENT)
    } else {
        (ROLE_RAW_SERVER, ROLE_RAW_CLIENT)
    };
    let label = if tether { "tether" } else { "raw" };
    let mut server = Proc::spawn(server_role, &[], s);
    let port: u16 = field(&server.expect("port=", Duration::from_secs(30)), "port");
    let mut client = Proc::spawn(client_role, &["--port".into(), port.to_string()], s);
    client.expect("ready", Duration::from_secs(30));
    let mut run = Run {
        server: Side {
            before: server.sample(),
            sizes_before: server.sizes(),
            ..Side::default()
        },
        client: Side {
            before: client.sample(),
            sizes_before: client.sizes(),
            ..Side::default()
        },
        connect_ms: 0,
        failed_attempts: 0,
    };
    let line = client.ask(
        "connect",
        "connected ",
        s.connect_budget() + Duration::from_secs(10),
    );
    let up: usize = field(&line, "n");
    run.connect_ms = field(&line, "ms");
    // The server sees the last connections a moment after the client.
    let until = Instant::now() + Duration::from_secs(30);
    let mut server_status = server.status();
    while server_status.up < s.n && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
        server_status = server.status();
    }
    if up < s.n || server_status.up < s.n {
        panic!(
            "{label}: only {up} of {} connections up on the client, {} on the server",
            s.n, server_status.up
        );
    }
    std::thread::sleep(Duration::from_secs(1));
    run.server.connected = server.sample();
    run.client.connected = client.sample();
    let start = Instant::now();
    let mut next = s.sample;
    while next <= s.idle {
        std::thread::sleep((start + next).saturating_duration_since(Instant::now()));
        let t = start.elapsed().as_secs_f64();
        run.server.idle.push((t, server.sample()));
        run.client.idle.push((t, client.sample()));
        if s.trace {
            let (sv, cl) = (run.server.last(), run.client.last());
            println!(
                "  {label} t={:.0}s server rss {} kB heap {} B, client rss {} kB heap {} B",
                t, sv.rss_kb, sv.heap, cl.rss_kb, cl.heap
            );
        }
        next += s.sample;
    }
    run.server.sizes_after = server.sizes();
    run.client.sizes_after = client.sizes();
    let (cs, ss) = (client.status(), server.status());
    run.failed_attempts = cs.failed;
    let dropped = cs.ended + ss.ended;
    let note = format!(
        "{label}: client up {} ended {} failed attempts {} pongs {}; server up {} ended {} pongs {}",
        cs.up, cs.ended, cs.failed, cs.pongs, ss.up, ss.ended, ss.pongs
    );
    if dropped > 0 || cs.up < s.n || ss.up < s.n {
        if s.full {
            println!("  note: connections dropped while idle: {note}");
        } else {
            panic!("connections dropped while idle: {note}");
        }
    }
    if !s.full && !tether && cs.pongs == 0 && s.idle >= s.interval * 2 {
        panic!("the raw client got no pong: {note}");
    }
    run
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    if v.is_empty() {
        return 0.0;
    }
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

fn machine() -> String {
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown cpu".into());
    let mem_mb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024);
    format!("nproc {nproc}, Linux {kernel}, {cpu}, {mem_mb} MiB RAM")
}

fn parent_main(args: &[String]) {
    let mut s = Settings::from_args(args);
    let nofile = raise_nofile();
    let allowed = nofile.saturating_sub(SPARE_FDS) as usize;
    if s.n > allowed {
        println!(
            "idle_memory: RLIMIT_NOFILE hard limit {nofile} allows {allowed} connections per process; N clamped from {} to {allowed}",
            s.n
        );
        s.n = allowed.max(1);
    }
    let mode = if s.full { "bench" } else { "smoke" };
    println!(
        "idle_memory ({mode}): N={} heartbeat {:?}, idle {:?} sampled every {:?}, {} round(s); {}",
        s.n,
        s.interval,
        s.idle,
        s.sample,
        s.rounds,
        machine()
    );
    let mut runs: [Vec<Run>; 2] = [Vec::new(), Vec::new()]; // [tether, raw]
    for round in 1..=s.rounds {
        for tether in s.variants.clone() {
            let i = usize::from(!tether);
            let label = if tether { "tether" } else { "raw" };
            let run = run_pair(tether, &s);
            let (sg, cg) = (
                run.server.growth(s.n, s.interval),
                run.client.growth(s.n, s.interval),
            );
            println!(
                "  round {round} {label:>6}: connect {} ms ({} failed attempts); server {:.0} B heap ({:.1} blocks) {:.0} B RSS per conn, client {:.0} B heap ({:.1} blocks) {:.0} B RSS per conn; growth B/conn/min: server heap {:+.1} RSS {:+.1}, client heap {:+.1} RSS {:+.1}",
                run.connect_ms,
                run.failed_attempts,
                run.server.heap_per_conn(s.n),
                run.server.blocks_per_conn(s.n),
                run.server.rss_per_conn(s.n),
                run.client.heap_per_conn(s.n),
                run.client.blocks_per_conn(s.n),
                run.client.rss_per_conn(s.n),
                sg.0,
                sg.1,
                cg.0,
                cg.1
            );
            if round == 1 {
                for (side, sd) in [("server", &run.server), ("client", &run.client)] {
                    let list: Vec<String> = sd
                        .blocks_by_size(s.n)
                        .iter()
                        .take(16)
                        .map(|(size, per)| format!("{size} B x{per:.2}"))
                        .collect();
                    println!(
                        "    {label} {side} blocks held per connection by size: {}",
                        list.join(", ")
                    );
                }
            }
            runs[i].push(run);
        }
    }
    let n = s.n;
    let med = |i: usize, f: &dyn Fn(&Run) -> f64| median(runs[i].iter().map(f).collect());
    let shown = |i: usize, f: &dyn Fn(&Run) -> f64, sign: bool| {
        if runs[i].is_empty() {
            "       -".to_string()
        } else if sign {
            format!("{:+8.1}", med(i, f))
        } else {
            format!("{:>8.0} B", med(i, f))
        }
    };
    println!(
        "idle_memory N={n}, idle {:?}, medians of {} round(s), bytes per connection:",
        s.idle, s.rounds
    );
    type Metric<'a> = (&'a str, &'a dyn Fn(&Run) -> f64);
    let metrics: [Metric<'_>; 4] = [
        ("server heap", &|r| r.server.heap_per_conn(n)),
        ("server RSS ", &|r| r.server.rss_per_conn(n)),
        ("client heap", &|r| r.client.heap_per_conn(n)),
        ("client RSS ", &|r| r.client.rss_per_conn(n)),
    ];
    for (name, f) in &metrics {
        let (t, r) = (med(0, f), med(1, f));
        let ratio = if runs[0].is_empty() || runs[1].is_empty() || r <= 0.0 {
            "-".to_string()
        } else {
            format!("{:.1}x", t / r)
        };
        println!(
            "  {name}: tether {}, raw {}, ratio {ratio}",
            shown(0, f, false),
            shown(1, f, false)
        );
    }
    println!("idle growth, bytes per connection per minute (from one heartbeat interval on):");
    let growth: [Metric<'_>; 4] = [
        ("server heap", &|r| r.server.growth(n, s.interval).0),
        ("server RSS ", &|r| r.server.growth(n, s.interval).1),
        ("client heap", &|r| r.client.growth(n, s.interval).0),
        ("client RSS ", &|r| r.client.growth(n, s.interval).1),
    ];
    for (name, f) in &growth {
        println!(
            "  {name}: tether {}, raw {}",
            shown(0, f, true),
            shown(1, f, true)
        );
    }
    if s.long {
        for (i, label) in ["tether", "raw"].into_iter().enumerate() {
            for (side, pick) in [
                ("server", (|r: &Run| r.server.clone()) as fn(&Run) -> Side),
                ("client", |r: &Run| r.client.clone()),
            ] {
                let Some(run) = runs[i].first() else { continue };
                let sd = pick(run);
                let first = sd
                    .steady(s.interval)
                    .first()
                    .map(|p| p.1)
                    .unwrap_or_default();
                let total = (sd.last().rss_kb as f64 - first.rss_kb as f64) * 1024.0 / n as f64;
                let heap_total = (sd.last().heap as f64 - first.heap as f64) / n as f64;
                let (heap_slope, rss_slope) = sd.growth(n, s.interval);
                // Flat: under 16 B per connection over the whole run.
                let verdict = if total.abs() < 16.0 {
                    "flat"
                } else {
                    "NOT flat"
                };
                println!(
                    "  {label} {side} over {:?}: RSS {total:+.1} B/conn in total, slope {rss_slope:+.2} B/conn/min: {verdict}; heap {heap_total:+.1} B/conn in total, slope {heap_slope:+.2} B/conn/min",
                    s.idle
                );
            }
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match arg_value(&args, "--role") {
        Some(role) => child_main(&args, &role),
        None => parent_main(&args),
    }
}

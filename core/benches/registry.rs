//! The connection registry at 1,000,000 connections against two baselines
//! measured in the same run:
//!
//! * `tokio_util::time::DelayQueue` (touch = `reset_at` to now + timeout,
//!   expiry = draining `poll_expired`);
//! * a naive scan: a `Vec` of last-seen ticks, swept in full (touch = a
//!   plain store at a bare index, without the registry's id check);
//! * for touch, the same naive array with the registry's id check: a
//!   generation beside each last-seen tick, compared with the `ConnId`'s
//!   ("naive+id"), i.e. the same work as a registry touch in the simplest
//!   layout;
//! * in the printed comparison also the earlier naive touch, which converts
//!   `now` to a tick on every call ("naive, tick per touch").
//!
//! Two workloads: (a) touch every connection in random order; (b) process
//! the expiry of all connections, whose deadlines are spread over 100 ms.
//! Besides criterion's own report, the run prints ratios and heap bytes per
//! connection (counted by a global allocator wrapper).
//!
//! `cargo bench -p tether-core --bench registry`; without `--bench` (e.g.
//! `cargo test --benches`) it runs a quick smoke test on 10,000 connections.

use criterion::{Criterion, SamplingMode};
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering::Relaxed};
use std::time::{Duration, Instant};
use tether_core::liveness::{HeartbeatConfig, IdleTimeoutConfig, Policy, Ticks};
use tether_core::registry::{ConnId, Registry, RegistryEvent};
use tokio::runtime::Runtime;
use tokio_util::time::{delay_queue::Key, DelayQueue};

// ---------------------------------------------------------------- memory

/// Counts live heap bytes while `COUNTING` is set (off during timing, so
/// the baselines' allocations are not slowed down).
struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Relaxed) {
            LIVE.fetch_add(layout.size() as isize, Relaxed);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if COUNTING.load(Relaxed) {
            LIVE.fetch_sub(layout.size() as isize, Relaxed);
        }
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Relaxed) {
            LIVE.fetch_add(new_size as isize - layout.size() as isize, Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Builds something and returns it with the heap bytes it kept.
fn measured<T>(build: impl FnOnce() -> T) -> (T, usize) {
    let before = LIVE.load(Relaxed);
    COUNTING.store(true, Relaxed);
    let value = build();
    COUNTING.store(false, Relaxed);
    (value, (LIVE.load(Relaxed) - before).max(0) as usize)
}

// ---------------------------------------------------------------- setups

const TIMEOUT: Duration = Duration::from_secs(25);
/// Spread of the expiry deadlines.
const SPREAD_MS: u64 = 100;

fn heartbeat() -> Policy {
    // 15 s interval + 1 x 10 s timeout: 25 s, like TIMEOUT for the baselines.
    Policy::Heartbeat(HeartbeatConfig::new(
        Duration::from_secs(15),
        Duration::from_secs(10),
        1,
    ))
}

fn idle(timeout: Duration) -> Policy {
    Policy::IdleTimeout(IdleTimeoutConfig {
        keepalive: timeout,
        factor: 1.0,
    })
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

fn tokio_at(t: Instant) -> tokio::time::Instant {
    tokio::time::Instant::from_std(t)
}

/// The same random touch order for every contender.
fn shuffled(n: usize) -> Vec<u32> {
    let mut order: Vec<u32> = (0..n as u32).collect();
    fastrand::Rng::with_seed(0x7e7).shuffle(&mut order);
    order
}

struct RegistrySetup {
    reg: Registry,
    ids: Vec<ConnId>,
}

fn registry_with(n: usize, policy: Policy, t0: Instant, spread: bool) -> RegistrySetup {
    let mut reg = Registry::with_capacity(policy, t0, n).unwrap();
    let ids = (0..n as u64)
        .map(|i| {
            let at = if spread {
                t0 + Duration::from_millis(i % SPREAD_MS)
            } else {
                t0
            };
            reg.insert(at, i).unwrap()
        })
        .collect();
    RegistrySetup { reg, ids }
}

struct QueueSetup {
    dq: DelayQueue<u64>,
    keys: Vec<Key>,
}

/// Must run inside the runtime's context.
fn queue_with(n: usize, t0: Instant, timeout: Duration, spread: bool) -> QueueSetup {
    let mut dq = DelayQueue::with_capacity(n);
    let keys = (0..n as u64)
        .map(|i| {
            let at = if spread {
                t0 + Duration::from_millis(i % SPREAD_MS)
            } else {
                t0
            };
            dq.insert_at(i, tokio_at(at + timeout))
        })
        .collect();
    QueueSetup { dq, keys }
}

/// The 1-second sweeper of the classic design, in its simplest form. Its
/// touch is a plain store of the current tick: like the registry, it keeps
/// the last `Instant` it converted, so consecutive touches at the same
/// `now` cost no conversion. It takes a bare index (no id check).
struct Naive {
    ticks: Ticks,
    last_now: (Instant, u64),
    last_seen: Vec<u64>,
    alive: Vec<bool>,
    timeout_ms: u64,
}

impl Naive {
    fn new(n: usize, t0: Instant, timeout: Duration, spread: bool) -> Self {
        let last_seen = (0..n as u64)
            .map(|i| if spread { i % SPREAD_MS } else { 0 })
            .collect();
        Self {
            ticks: Ticks::new(t0),
            last_now: (t0, 0),
            last_seen,
            alive: vec![true; n],
            timeout_ms: timeout.as_millis() as u64,
        }
    }

    /// The earlier baseline: no memo of the last conversion.
    #[inline]
    fn touch_converting(&mut self, i: u32, now: Instant) {
        self.last_seen[i as usize] = self.ticks.from_instant(now);
    }

    #[inline]
    fn touch(&mut self, i: u32, now: Instant) {
        if now != self.last_now.0 {
            self.last_now = (now, self.ticks.from_instant(now));
        }
        self.last_seen[i as usize] = self.last_now.1;
    }

    fn sweep(&mut self, now: Instant, expired: &mut Vec<u32>) {
        let tick = self.ticks.from_instant(now);
        for (i, (seen, alive)) in self.last_seen.iter().zip(&mut self.alive).enumerate() {
            if *alive && tick.saturating_sub(*seen) >= self.timeout_ms {
                *alive = false;
                expired.push(i as u32);
            }
        }
    }
}

/// The naive array with the id check a server needs once slots are reused:
/// the registry's `ConnId` (index + generation) against a generation kept
/// beside each last-seen tick (16 bytes a slot).
struct NaiveChecked {
    ticks: Ticks,
    last_now: (Instant, u64),
    slots: Vec<Slot>,
}

struct Slot {
    last_seen: u64,
    generation: u32,
}

impl NaiveChecked {
    /// Returns the store and the ids of its `n` connections.
    fn new(n: usize, t0: Instant) -> (Self, Vec<ConnId>) {
        let slots = (0..n)
            .map(|_| Slot {
                last_seen: 0,
                generation: 1,
            })
            .collect();
        let ids = (0..n as u64)
            .map(|i| ConnId::from_u64(1 << 32 | i))
            .collect();
        let s = Self {
            ticks: Ticks::new(t0),
            last_now: (t0, 0),
            slots,
        };
        (s, ids)
    }

    #[inline]
    fn touch(&mut self, id: ConnId, now: Instant) -> Result<(), ()> {
        if now != self.last_now.0 {
            self.last_now = (now, self.ticks.from_instant(now));
        }
        match self.slots.get_mut(id.index() as usize) {
            Some(s) if s.generation == id.generation() => {
                s.last_seen = self.last_now.1;
                Ok(())
            }
            _ => Err(()),
        }
    }
}

// ---------------------------------------------------------------- workloads

/// Makes `count` touches at successive positions of a fixed random order,
/// starting at `*pos`, with the clock advancing 1 ms per 1024 touches.
/// `touch(j, now)` touches the connection at position `j`. Returns the
/// elapsed time.
///
/// Each contender gets its handles (ConnId, Key, index) already laid out in
/// touch order: a server holds the handle in the connection's own state,
/// which is hot when traffic arrives, so the structure's cost is what is
/// measured, not a lookup in the benchmark's handle array.
fn touch_run(
    count: u64,
    len: usize,
    pos: &mut usize,
    now: &mut Instant,
    mut touch: impl FnMut(usize, Instant),
) -> Duration {
    let start = Instant::now();
    for j in 0..count {
        if j % 1024 == 0 {
            *now += Duration::from_millis(1);
        }
        touch(*pos, *now);
        *pos += 1;
        if *pos == len {
            *pos = 0;
        }
    }
    start.elapsed()
}

fn in_order<T: Copy>(handles: &[T], order: &[u32]) -> Vec<T> {
    order.iter().map(|&k| handles[k as usize]).collect()
}

fn registry_touch(
    reg: &mut Registry,
    ids: &[ConnId],
    count: u64,
    pos: &mut usize,
    now: &mut Instant,
) -> Duration {
    touch_run(count, ids.len(), pos, now, |j, t| {
        black_box(reg.touch(ids[j], t)).unwrap();
    })
}

fn queue_touch(
    dq: &mut DelayQueue<u64>,
    keys: &[Key],
    count: u64,
    pos: &mut usize,
    now: &mut Instant,
) -> Duration {
    touch_run(count, keys.len(), pos, now, |j, t| {
        dq.reset_at(&keys[j], tokio_at(t + TIMEOUT));
    })
}

fn naive_touch(
    s: &mut Naive,
    order: &[u32],
    count: u64,
    pos: &mut usize,
    now: &mut Instant,
) -> Duration {
    touch_run(count, order.len(), pos, now, |j, t| s.touch(order[j], t))
}

fn converting_touch(
    s: &mut Naive,
    order: &[u32],
    count: u64,
    pos: &mut usize,
    now: &mut Instant,
) -> Duration {
    touch_run(count, order.len(), pos, now, |j, t| {
        s.touch_converting(order[j], t)
    })
}

fn checked_touch(
    s: &mut NaiveChecked,
    ids: &[ConnId],
    count: u64,
    pos: &mut usize,
    now: &mut Instant,
) -> Duration {
    touch_run(count, ids.len(), pos, now, |j, t| {
        black_box(s.touch(ids[j], t)).unwrap();
    })
}

/// Drains every expiry the way a server loop would: wake at
/// `poll_timeout`, handle, drain events. Returns (time, expired count).
fn registry_expire(s: &mut RegistrySetup) -> (Duration, usize) {
    let start = Instant::now();
    let mut expired = 0;
    while let Some(t) = s.reg.poll_timeout() {
        s.reg.handle_timeout(t);
        while let Some(e) = s.reg.poll_event() {
            expired += usize::from(matches!(e, RegistryEvent::Expired { .. }));
            black_box(e);
        }
    }
    (start.elapsed(), expired)
}

/// Waits (untimed) until every deadline has passed for tokio's driver, then
/// drains `poll_expired`.
fn queue_expire(rt: &Runtime, s: &mut QueueSetup, last_deadline: Instant) -> (Duration, usize) {
    rt.block_on(async {
        tokio::time::sleep_until(tokio_at(last_deadline + Duration::from_millis(2))).await;
        let start = Instant::now();
        let mut expired = 0;
        while let Some(e) = std::future::poll_fn(|cx| s.dq.poll_expired(cx)).await {
            black_box(e);
            expired += 1;
        }
        (start.elapsed(), expired)
    })
}

/// Sweeps every millisecond across the spread: the naive design at the
/// registry's 1 ms accuracy. Returns (time, expired count, sweeps).
fn naive_expire(s: &mut Naive, t0: Instant, timeout: Duration) -> (Duration, usize, u64) {
    let mut expired = Vec::new();
    let start = Instant::now();
    let mut sweeps = 0;
    for ms in 0..SPREAD_MS {
        s.sweep(t0 + timeout + Duration::from_millis(ms), &mut expired);
        sweeps += 1;
    }
    (start.elapsed(), expired.len(), sweeps)
}

// ---------------------------------------------------------------- report

fn ns_per(d: Duration, n: usize) -> f64 {
    d.as_nanos() as f64 / n as f64
}

fn best(runs: impl Iterator<Item = Duration>) -> Duration {
    runs.min().unwrap()
}

/// Measures every contender with `std::time::Instant` in this run and
/// prints ratios.
fn compare(n: usize, rounds: usize) {
    println!("\n== registry vs DelayQueue vs naive scan, {n} connections ==");
    let rt = runtime();
    let _ctx = rt.enter();
    let t0 = Instant::now();
    let order = shuffled(n);

    // Memory, and the touch workload's state.
    let (mut reg, reg_bytes) = measured(|| registry_with(n, heartbeat(), t0, false));
    let (mut dq, dq_bytes) = measured(|| queue_with(n, t0, TIMEOUT, false));
    let (mut naive, naive_bytes) = measured(|| Naive::new(n, t0, TIMEOUT, false));
    let (mut checked, checked_bytes) = measured(|| NaiveChecked::new(n, t0));
    let checked_bytes = checked_bytes - checked.1.capacity() * std::mem::size_of::<ConnId>();
    // The handle vectors (ConnId / Key, 8 bytes each) belong to the server,
    // not to the structure.
    let reg_bytes = reg_bytes - reg.ids.capacity() * std::mem::size_of::<ConnId>();
    let dq_bytes = dq_bytes - dq.keys.capacity() * std::mem::size_of::<Key>();
    println!(
        "bytes per connection: registry {:.1} (memory_bytes() says {:.1}), DelayQueue {:.1}, naive {:.1}, naive+id {:.1}",
        reg_bytes as f64 / n as f64,
        reg.reg.memory_bytes() as f64 / n as f64,
        dq_bytes as f64 / n as f64,
        naive_bytes as f64 / n as f64,
        checked_bytes as f64 / n as f64,
    );

    // (a) touch, every connection once per round in random order. "Warm":
    // a contender's rounds back to back (its data owns the cache, as in
    // criterion); "shared": rounds interleaved with the other contenders,
    // so each round starts with a cache full of someone else's data.
    let ids = in_order(&reg.ids, &order);
    let keys = in_order(&dq.keys, &order);
    let checked_ids = in_order(&checked.1, &order);
    let mut now = t0;
    let mut reg_round =
        |now: &mut Instant| registry_touch(&mut reg.reg, &ids, n as u64, &mut 0, now);
    let mut dq_round = |now: &mut Instant| queue_touch(&mut dq.dq, &keys, n as u64, &mut 0, now);
    let mut naive_round =
        |now: &mut Instant| naive_touch(&mut naive, &order, n as u64, &mut 0, now);
    let mut checked_round =
        |now: &mut Instant| checked_touch(&mut checked.0, &checked_ids, n as u64, &mut 0, now);
    let mut converting = Naive::new(n, t0, TIMEOUT, false);
    let mut converting_round =
        |now: &mut Instant| converting_touch(&mut converting, &order, n as u64, &mut 0, now);
    let warm = |round: &mut dyn FnMut(&mut Instant) -> Duration, now: &mut Instant| {
        round(now);
        best((0..rounds).map(|_| round(now)))
    };
    let warm_times = (
        warm(&mut reg_round, &mut now),
        warm(&mut dq_round, &mut now),
        warm(&mut naive_round, &mut now),
        warm(&mut checked_round, &mut now),
        warm(&mut converting_round, &mut now),
    );
    let mut shared = [(); 5].map(|_| Vec::new());
    for _ in 0..rounds {
        shared[0].push(reg_round(&mut now));
        shared[1].push(dq_round(&mut now));
        shared[2].push(naive_round(&mut now));
        shared[3].push(checked_round(&mut now));
        shared[4].push(converting_round(&mut now));
    }
    let [r, d, v, c, k] = shared.map(|runs| best(runs.into_iter()));
    for (label, (r, d, v, c, k)) in [("warm", warm_times), ("shared cache", (r, d, v, c, k))] {
        println!(
            "touch ns/op ({label}): registry {:.1}, DelayQueue {:.1}, naive {:.1}, naive+id {:.1}, naive tick per touch {:.1}",
            ns_per(r, n),
            ns_per(d, n),
            ns_per(v, n),
            ns_per(c, n),
            ns_per(k, n)
        );
        // Cost ratios: > 1 means the registry costs more.
        println!(
            "registry touch ({label}): {:.1}x faster than DelayQueue; cost {:.2}x naive+id, {:.2}x naive, {:.2}x naive tick per touch",
            d.as_secs_f64() / r.as_secs_f64(),
            r.as_secs_f64() / c.as_secs_f64(),
            r.as_secs_f64() / v.as_secs_f64(),
            r.as_secs_f64() / k.as_secs_f64()
        );
    }

    // The touched connections' timers (armed at insert, 15 s) are all due
    // once: each is re-evaluated, finds recent traffic and re-arms (the
    // lazy half of the cheap touch). After that nothing is due for a while,
    // yet the naive design still sweeps everything.
    let mut now = now.max(t0 + Duration::from_secs(16));
    // One more (untimed) round just before: the short smoke run's rounds
    // end long before 16 s, and silence past the interval would mean pings.
    registry_touch(&mut reg.reg, &ids, n as u64, &mut 0, &mut now);
    let start = Instant::now();
    reg.reg.handle_timeout(now);
    let rearm = start.elapsed();
    assert!(reg.reg.poll_event().is_none());
    let idle_calls = 1000u32;
    let start = Instant::now();
    for _ in 0..idle_calls {
        reg.reg.handle_timeout(black_box(now));
    }
    let reg_idle = start.elapsed() / idle_calls;
    let start = Instant::now();
    let mut found = Vec::new();
    naive.sweep(now, &mut found);
    let naive_idle = start.elapsed();
    assert!(found.is_empty());
    println!(
        "lazy re-arm of {n} touched timers: {:.1} ms ({:.1} ns each); nothing due: registry handle_timeout {:.0} ns, naive sweep {:.2} ms",
        rearm.as_secs_f64() * 1e3,
        ns_per(rearm, n),
        reg_idle.as_nanos() as f64,
        naive_idle.as_secs_f64() * 1e3
    );
    drop((reg, dq, naive, checked, converting, ids, keys, checked_ids));

    // (b) expiry of all n, deadlines spread over SPREAD_MS.
    let timeout = Duration::from_millis(50);
    let (mut reg_e, mut dq_e, mut naive_e) = (vec![], vec![], vec![]);
    let mut sweeps = 0;
    for _ in 0..rounds {
        let t0 = Instant::now();
        let mut s = registry_with(n, idle(timeout), t0, true);
        let (t, k) = registry_expire(&mut s);
        assert_eq!(k, n);
        reg_e.push(t);
        drop(s);

        let t0 = Instant::now();
        let mut s = queue_with(n, t0, timeout, true);
        let (t, k) = queue_expire(&rt, &mut s, t0 + timeout + Duration::from_millis(SPREAD_MS));
        assert_eq!(k, n);
        dq_e.push(t);
        drop(s);

        let t0 = Instant::now();
        let mut s = Naive::new(n, t0, timeout, true);
        let (t, k, w) = naive_expire(&mut s, t0, timeout);
        assert_eq!(k, n);
        naive_e.push(t);
        sweeps = w;
    }
    let (r, d, v) = (
        best(reg_e.into_iter()),
        best(dq_e.into_iter()),
        best(naive_e.into_iter()),
    );
    println!(
        "expiry of {n} (deadlines over {SPREAD_MS} ms), ns per expired connection: registry {:.1}, DelayQueue {:.1}, naive {:.1} ({sweeps} sweeps at 1 ms accuracy, {:.2} ms per sweep)",
        ns_per(r, n),
        ns_per(d, n),
        ns_per(v, n),
        v.as_secs_f64() * 1e3 / sweeps as f64,
    );
    println!(
        "registry expiry: {:.1}x DelayQueue, {:.1}x naive (sweeping every 1 ms)",
        d.as_secs_f64() / r.as_secs_f64(),
        v.as_secs_f64() / r.as_secs_f64(),
    );
    println!();
}

// ---------------------------------------------------------------- criterion

fn criterion_benches(c: &mut Criterion, n: usize) {
    let rt = runtime();
    let _ctx = rt.enter();
    let t0 = Instant::now();
    let order = shuffled(n);

    let mut g = c.benchmark_group(format!("touch_{n}"));
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    {
        let RegistrySetup { mut reg, ids } = registry_with(n, heartbeat(), t0, false);
        let ids = in_order(&ids, &order);
        let (mut pos, mut now) = (0, t0);
        g.bench_function("registry", |b| {
            b.iter_custom(|iters| registry_touch(&mut reg, &ids, iters, &mut pos, &mut now))
        });
    }
    {
        let QueueSetup { mut dq, keys } = queue_with(n, t0, TIMEOUT, false);
        let keys = in_order(&keys, &order);
        let (mut pos, mut now) = (0, t0);
        g.bench_function("delay_queue", |b| {
            b.iter_custom(|iters| queue_touch(&mut dq, &keys, iters, &mut pos, &mut now))
        });
    }
    {
        let mut s = Naive::new(n, t0, TIMEOUT, false);
        let (mut pos, mut now) = (0, t0);
        g.bench_function("naive", |b| {
            b.iter_custom(|iters| naive_touch(&mut s, &order, iters, &mut pos, &mut now))
        });
    }
    {
        let (mut s, ids) = NaiveChecked::new(n, t0);
        let ids = in_order(&ids, &order);
        let (mut pos, mut now) = (0, t0);
        g.bench_function("naive_id_checked", |b| {
            b.iter_custom(|iters| checked_touch(&mut s, &ids, iters, &mut pos, &mut now))
        });
    }
    g.finish();

    // One iteration = build n (untimed) and process all their expiries.
    let timeout = Duration::from_millis(50);
    let mut g = c.benchmark_group(format!("expire_all_{n}"));
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_millis(1));
    g.bench_function("registry", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    registry_expire(&mut registry_with(n, idle(timeout), Instant::now(), true)).0
                })
                .sum()
        })
    });
    g.bench_function("delay_queue", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let t0 = Instant::now();
                    let mut s = queue_with(n, t0, timeout, true);
                    let last = t0 + timeout + Duration::from_millis(SPREAD_MS);
                    queue_expire(&rt, &mut s, last).0
                })
                .sum()
        })
    });
    g.bench_function("naive_1ms_sweeps", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let t0 = Instant::now();
                    naive_expire(&mut Naive::new(n, t0, timeout, true), t0, timeout).0
                })
                .sum()
        })
    });
    g.finish();
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (n, rounds) = if full { (1_000_000, 3) } else { (10_000, 1) };
    compare(n, rounds);
    if full {
        let mut c = Criterion::default().configure_from_args();
        criterion_benches(&mut c, n);
        c.final_summary();
    }
}

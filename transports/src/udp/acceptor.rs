//! Serving: one socket, datagrams demultiplexed by session id.

use super::keys::{self, PskKeys, ResetKey};
use super::link::{SessionEntry, SessionGuard, SessionState, Sessions, UdpLink, RECV_BUF};
use super::stats::UdpStats;
use super::wire::{self, Kind, NONCE_LEN, TOKEN_LEN};
use super::UdpOptions;
use crate::driver::Acceptor;
use crate::link::BoxLink;
use async_trait::async_trait;
use bytes::Bytes;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Datagrams queued per session before the newest are dropped.
const SESSION_QUEUE: usize = 256;
/// New sessions waiting for `accept` before further hellos are dropped.
const ACCEPT_QUEUE: usize = 128;

/// A bound UDP socket that turns authenticated hellos into links.
///
/// A background task reads the socket: a verified hello creates a session
/// (answered with a welcome) whose link `accept` returns; packets of known
/// sessions go to their link; packets of unknown sessions get a stateless,
/// rate-limited "unknown session" reply carrying the session's reset token.
/// The task stops when the acceptor is dropped, after which its links
/// receive nothing more.
#[derive(Debug)]
pub struct UdpAcceptor {
    local: SocketAddr,
    accepted: mpsc::Receiver<(UdpLink, SocketAddr)>,
    task: JoinHandle<()>,
    /// Why the receive task ended, if it failed.
    stopped: Arc<std::sync::OnceLock<String>>,
    stats: Arc<UdpStats>,
    max_payload: usize,
}

impl UdpAcceptor {
    /// Binds `addr` (port 0 picks a free port). Fails with `InvalidInput`
    /// for invalid options, or when the static key file cannot be read or
    /// created.
    pub async fn bind(addr: SocketAddr, options: UdpOptions) -> io::Result<Self> {
        options
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let keys = PskKeys::new(&options.psk);
        let reset_key = ResetKey::load(&options.static_key, &keys)?;
        let socket = Arc::new(UdpSocket::bind(addr).await?);
        let local = socket.local_addr()?;
        let stats = Arc::new(UdpStats::default());
        let (accept_tx, accepted) = mpsc::channel(ACCEPT_QUEUE);
        let max_payload = options.max_payload;
        let demux = Demux {
            socket,
            sessions: Sessions::default(),
            keys,
            reset_key,
            accept_tx,
            limiter: RateLimit::new(options.reset_rate),
            options,
            stats: stats.clone(),
        };
        let stopped = Arc::new(std::sync::OnceLock::new());
        let why = stopped.clone();
        let task = crate::driver::guarded::spawn_guarded(demux.run(), move |text| {
            let _ = why.set(text);
        });
        Ok(Self {
            local,
            accepted,
            task,
            stopped,
            stats,
            max_payload,
        })
    }

    /// Counters of this acceptor and every link it made.
    pub fn stats(&self) -> Arc<UdpStats> {
        self.stats.clone()
    }

    /// Waits for the next session and returns the concrete link.
    pub async fn accept_link(&mut self) -> io::Result<(UdpLink, SocketAddr)> {
        self.accepted.recv().await.ok_or_else(|| {
            let why = self.stopped.get().map_or("", String::as_str);
            // NotConnected: the acceptor is finished (see `Acceptor::accept`).
            io::Error::new(
                io::ErrorKind::NotConnected,
                format!("the UDP receive task has stopped: {why}"),
            )
        })
    }
}

impl Drop for UdpAcceptor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[async_trait]
impl Acceptor for UdpAcceptor {
    /// Cancel-safe: a session stays queued until returned.
    async fn accept(&mut self) -> io::Result<(BoxLink, SocketAddr)> {
        let (link, peer) = self.accept_link().await?;
        Ok((Box::new(link), peer))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }

    fn max_message(&self) -> Option<usize> {
        Some(self.max_payload)
    }
}

/// A token bucket: `rate` per second, bursts of up to `rate`.
struct RateLimit {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimit {
    fn new(rate: u32) -> Self {
        Self {
            rate: f64::from(rate),
            tokens: f64::from(rate),
            last: Instant::now(),
        }
    }

    fn allow(&mut self) -> bool {
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

struct Demux {
    socket: Arc<UdpSocket>,
    sessions: Sessions,
    keys: PskKeys,
    reset_key: ResetKey,
    accept_tx: mpsc::Sender<(UdpLink, SocketAddr)>,
    limiter: RateLimit,
    options: UdpOptions,
    stats: Arc<UdpStats>,
}

impl Demux {
    async fn run(mut self) {
        let mut buf = vec![0u8; RECV_BUF];
        loop {
            let (n, from) = match self.socket.recv_from(&mut buf).await {
                Ok(got) => got,
                Err(e) => {
                    // ICMP echoes of earlier sends (Windows reports them
                    // here), or a transient shortage: keep serving.
                    self.stats.add_icmp_error();
                    tracing::debug!(error = %e, "UDP receive error");
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
            };
            self.on_datagram(&buf[..n], from).await;
        }
    }

    async fn on_datagram(&mut self, datagram: &[u8], from: SocketAddr) {
        let Some(packet) = wire::parse(datagram) else {
            self.stats.add_malformed();
            return;
        };
        match packet.kind {
            Kind::Hello => self.on_hello(&packet, from).await,
            Kind::Data | Kind::Close => {
                let tx = self
                    .lock()
                    .get(&packet.session)
                    .map(|entry| entry.tx.clone());
                let Some(tx) = tx else {
                    return self
                        .unknown_session(packet.session, datagram.len(), from)
                        .await;
                };
                match tx.try_send((Bytes::copy_from_slice(datagram), from)) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => self.stats.add_queue_full(),
                    // The link closed but is not dropped yet: gone all the same.
                    Err(mpsc::error::TrySendError::Closed(_)) => {
                        self.unknown_session(packet.session, datagram.len(), from)
                            .await
                    }
                }
            }
            // Never answered, so that two servers cannot ping-pong.
            Kind::Welcome | Kind::UnknownSession => self.stats.add_malformed(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<u64, SessionEntry>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn on_hello(&mut self, packet: &wire::Packet<'_>, from: SocketAddr) {
        if packet.body.len() != NONCE_LEN || packet.session == 0 {
            self.stats.add_malformed();
            return;
        }
        if !keys::verify(&self.keys.hello, packet.signed, packet.mac) {
            // Another PSK or a forgery: never answered (no oracle, no
            // amplification); the client times out.
            self.stats.add_forged();
            return;
        }
        let id = packet.session;
        let client_nonce: [u8; NONCE_LEN] = packet.body.try_into().expect("length checked");
        let known = self
            .lock()
            .get(&id)
            .map(|e| (e.client_nonce == client_nonce).then(|| e.welcome.clone()));
        match known {
            // A retransmitted hello: the welcome was lost.
            Some(Some(welcome)) => return self.send(&welcome, from).await,
            // Another hello with a live session's id: a replay or a collision.
            Some(None) => return self.stats.add_replayed(),
            None => {}
        }
        let mut server_nonce = [0u8; NONCE_LEN];
        if keys::random(&mut server_nonce).is_err() {
            tracing::warn!("no randomness; hello dropped");
            return;
        }
        let session = self.keys.session(id, &client_nonce, &server_nonce);
        let token = self.reset_key.token(id);
        let mut welcome =
            Vec::with_capacity(wire::HEADER_LEN + NONCE_LEN + TOKEN_LEN + wire::MAC_LEN);
        wire::put_header(&mut welcome, Kind::Welcome, id, 0);
        welcome.extend_from_slice(&server_nonce);
        welcome.extend(token.iter().zip(session.mask).map(|(t, m)| t ^ m));
        let tag = keys::mac(&session.s2c, &[&welcome]);
        welcome.extend_from_slice(&tag);
        let welcome = Bytes::from(welcome);

        let permit = match self.accept_tx.try_reserve() {
            Ok(permit) => permit,
            Err(_) => {
                tracing::warn!(%from, "UDP accept queue full; hello dropped");
                return;
            }
        };
        let (tx, rx) = mpsc::channel(SESSION_QUEUE);
        self.lock().insert(
            id,
            SessionEntry {
                tx,
                client_nonce,
                welcome: welcome.clone(),
            },
        );
        self.stats.session_opened();
        let guard = SessionGuard {
            sessions: self.sessions.clone(),
            id,
            stats: self.stats.clone(),
        };
        let link = UdpLink::server(
            self.socket.clone(),
            rx,
            from,
            guard,
            SessionState::server(id, session),
            self.options.max_payload,
            self.options.probe_interval,
        );
        permit.send((link, from));
        self.send(&welcome, from).await;
    }

    /// Tells the sender that this server does not know `session`, with the
    /// token only the server that created the session (or one with the same
    /// static key) can compute.
    async fn unknown_session(&mut self, session: u64, trigger_len: usize, to: SocketAddr) {
        let mut reply = Vec::with_capacity(wire::HEADER_LEN + TOKEN_LEN);
        wire::put_header(&mut reply, Kind::UnknownSession, session, 0);
        reply.extend_from_slice(&self.reset_key.token(session));
        // Never amplify: the reply must be smaller than what caused it.
        if reply.len() >= trigger_len {
            return;
        }
        if !self.limiter.allow() {
            self.stats.add_resets_limited();
            return;
        }
        self.stats.add_resets_sent();
        self.send(&reply, to).await;
    }

    async fn send(&self, datagram: &[u8], to: SocketAddr) {
        if let Err(e) = self.socket.send_to(datagram, to).await {
            tracing::debug!(%to, error = %e, "UDP send failed");
        }
    }
}

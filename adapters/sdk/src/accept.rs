//! Accepting TCP connections with bounds, for every listener of samverka's
//! processes: the gRPC ports of the gateway and of adapters built with
//! this SDK ([`tls_handshakes`]) and the gateway's operators' admin
//! listener ([`Listener`]), so that none can be held by clients that
//! connect and send nothing, nor make the process spin and flood its log
//! when it runs out of file descriptors:
//!
//! - **A cap** ([`Listener`]): each accepted connection holds a slot
//!   until the listener is done with it (the gRPC port: until its TLS
//!   handshake is over and tonic has it; the admin listener: until it is
//!   closed). With every slot taken the listener does not accept at all:
//!   new connections wait in the kernel's listen backlog, not refused,
//!   and are taken in order as slots free. Slots free within a bounded
//!   time, since every holder has a timeout.
//! - **Back-off on accept errors**: an accept that fails for want of a
//!   resource (out of file descriptors, `EMFILE`/`ENFILE`, or of memory)
//!   is tried again after a pause that starts at 10 ms and doubles with
//!   each failure in a row, up to [`MAX_BACKOFF`]; a connection its client
//!   gave up before it was accepted is skipped at once.
//! - **Rate-limited logging** ([`LogLimit`]): at most one line per
//!   [`LOG_INTERVAL`] about failed accepts on each listener, saying how
//!   many failures it did not log, and one line (with the count) when
//!   accepting works again.
//! - **A gRPC port's handshakes**: at most [`MAX_HANDSHAKES`] in
//!   progress at once, each dropped if not finished within
//!   [`HANDSHAKE_TIMEOUT`]; refused and unfinished handshakes are logged,
//!   at most [`HANDSHAKE_LOG_BURST`] lines per [`LOG_INTERVAL`].

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::server::TlsStream;

use crate::coalesce::Coalesced;

/// The pause after the first failed accept; it doubles with each further
/// failure in a row, up to [`MAX_BACKOFF`], and starts over after an
/// accept that succeeds.
const FIRST_BACKOFF: Duration = Duration::from_millis(10);

/// The longest pause between two accepts that fail: out of file
/// descriptors, a listener tries about once a second (rather than as fast
/// as a core allows) until connections close.
pub const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// At most one log line per listener per interval about failed accepts
/// (and [`HANDSHAKE_LOG_BURST`] about failed handshakes).
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// A TLS handshake on the gRPC port not finished this long after the
/// connection was accepted is dropped (a client that connects and sends
/// nothing included). Agencies on slow links finish in well under a
/// second.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// At most this many connections on the gRPC port between accept and the
/// end of their TLS handshake; more wait in the listen backlog. With
/// [`HANDSHAKE_TIMEOUT`], a flood of silent connections delays new
/// handshakes by at most that long, and holds at most this many file
/// descriptors (established connections are not counted here).
pub const MAX_HANDSHAKES: usize = 1024;

/// Log lines about refused or unfinished handshakes per [`LOG_INTERVAL`]:
/// enough that an agency's refusal is logged with its reason in normal
/// operation, few enough that a flood of bad handshakes does not fill the
/// log.
pub const HANDSHAKE_LOG_BURST: u32 = 20;

/// Lets through at most `burst` log lines per interval, and counts the
/// ones it holds back so that the next line can say how many there were.
#[derive(Debug)]
pub struct LogLimit {
    interval: Duration,
    burst: u32,
    window: Option<Instant>,
    in_window: u32,
    held_back: u64,
}

impl LogLimit {
    /// At most `burst` lines in each `interval`.
    pub const fn new(interval: Duration, burst: u32) -> Self {
        LogLimit {
            interval,
            burst,
            window: None,
            in_window: 0,
            held_back: 0,
        }
    }

    /// `Some(n)` if a line may be written now, `n` being the lines held
    /// back since the last one written; `None`, counted as held back, if
    /// not.
    pub fn admit(&mut self) -> Option<u64> {
        self.admit_at(Instant::now())
    }

    fn admit_at(&mut self, now: Instant) -> Option<u64> {
        match self.window {
            Some(start) if now.saturating_duration_since(start) < self.interval => {}
            _ => {
                self.window = Some(now);
                self.in_window = 0;
            }
        }
        if self.in_window < self.burst {
            self.in_window += 1;
            Some(std::mem::take(&mut self.held_back))
        } else {
            self.held_back += 1;
            None
        }
    }
}

/// [`LogLimit::admit`] on a limit shared between tasks.
fn admit(limit: &Mutex<LogLimit>) -> Option<u64> {
    limit.lock().unwrap_or_else(PoisonError::into_inner).admit()
}

/// One of a [`Listener`]'s slots, given back when dropped.
#[derive(Debug)]
pub struct Slot {
    _permit: OwnedSemaphorePermit,
}

/// A TCP listener with a cap on the connections it has handed out and not
/// yet got back, back-off on accept errors and rate-limited logging of
/// them (see the module's documentation).
#[derive(Debug)]
pub struct Listener {
    listener: TcpListener,
    slots: Arc<Semaphore>,
    name: &'static str,
    backoff: Duration,
    failed: u64,
    log: LogLimit,
}

impl Listener {
    /// At most `max` connections handed out at once; `name` says which
    /// listener it is in log lines.
    pub fn new(listener: TcpListener, max: usize, name: &'static str) -> Self {
        Listener {
            listener,
            slots: Arc::new(Semaphore::new(max)),
            name,
            backoff: FIRST_BACKOFF,
            failed: 0,
            log: LogLimit::new(LOG_INTERVAL, 1),
        }
    }

    /// The next connection, once a slot is free, with the slot; the
    /// connection counts against the cap until the slot is dropped. Accept
    /// errors are handled here (logged, waited out). Cancel safe: dropping
    /// the future loses no connection.
    pub async fn accept(&mut self) -> (TcpStream, SocketAddr, Slot) {
        // Never closed, so acquiring fails never; were it closed, waiting
        // forever is the bounded answer.
        let Ok(slot) = self.slots.clone().acquire_owned().await else {
            return std::future::pending().await;
        };
        loop {
            match self.listener.accept().await {
                Ok((stream, peer)) => {
                    if self.failed > 0 {
                        tracing::info!(
                            listener = self.name,
                            failed = self.failed,
                            "accepting connections again"
                        );
                    }
                    self.failed = 0;
                    self.backoff = FIRST_BACKOFF;
                    return (stream, peer, Slot { _permit: slot });
                }
                Err(e) if given_up(&e) => {
                    tracing::debug!(listener = self.name, error = %e, "connection gone before accept");
                }
                Err(e) => {
                    self.failed += 1;
                    if let Some(not_logged) = self.log.admit() {
                        tracing::warn!(
                            listener = self.name,
                            error = %e,
                            not_logged,
                            retry_in_ms = self.backoff.as_millis() as u64,
                            "accept failed; backing off (at most one such line per {}s)",
                            LOG_INTERVAL.as_secs()
                        );
                    }
                    tokio::time::sleep(self.backoff).await;
                    self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

/// An accept error about one connection that its client gave up (rather
/// than about the listener or the process): skipped at once.
fn given_up(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
    )
}

/// The connections accepted on `listener` that completed a TLS handshake,
/// for tonic to serve: each TCP connection gets Nagle's algorithm off (gRPC
/// writes small frames), is passed through `wrap` (e.g. to count it), and
/// is handshaken with the configuration `config` gives at that moment (so
/// that it may change under a running server), and has its writes
/// gathered until HTTP/2 flushes ([`Coalesced`]). Handshakes run side by
/// side, at most [`MAX_HANDSHAKES`] at once and [`HANDSHAKE_TIMEOUT`]
/// each; one that fails or times out is reported to `failed`, logged
/// (rate-limited) and dropped. Accepting stops when the stream is dropped.
pub fn tls_handshakes<IO>(
    listener: TcpListener,
    config: impl Fn() -> Arc<rustls::ServerConfig> + Send + 'static,
    wrap: impl Fn(TcpStream) -> IO + Send + 'static,
    failed: impl Fn() + Clone + Send + Sync + 'static,
) -> impl futures_util::Stream<Item = Result<Coalesced<TlsStream<IO>>, io::Error>>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let mut listener = Listener::new(listener, MAX_HANDSHAKES, "gRPC");
    let log = Arc::new(Mutex::new(LogLimit::new(LOG_INTERVAL, HANDSHAKE_LOG_BURST)));
    tokio::spawn(async move {
        loop {
            let (tcp, peer, slot) = tokio::select! {
                () = tx.closed() => return,
                accepted = listener.accept() => accepted,
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = tokio_rustls::TlsAcceptor::from(config());
            let (io, tx, failed, log) = (wrap(tcp), tx.clone(), failed.clone(), log.clone());
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(io)).await {
                    Ok(Ok(stream)) => {
                        // The slot is kept until tonic has the connection,
                        // so that handshaken connections waiting for it
                        // count against the cap too.
                        let _ = tx.send(Coalesced::new(stream)).await;
                    }
                    Ok(Err(e)) => {
                        failed();
                        if let Some(not_logged) = admit(&log) {
                            tracing::info!(%peer, error = %e, not_logged, "TLS handshake refused");
                        }
                    }
                    Err(_) => {
                        failed();
                        if let Some(not_logged) = admit(&log) {
                            tracing::info!(
                                %peer,
                                not_logged,
                                "TLS handshake not finished in {}s; dropped",
                                HANDSHAKE_TIMEOUT.as_secs()
                            );
                        }
                    }
                }
                drop(slot);
            });
        }
    });
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|stream| (Ok(stream), rx))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_limit_lets_a_burst_through_per_interval_and_counts_the_rest() {
        let mut limit = LogLimit::new(Duration::from_secs(10), 2);
        let t0 = Instant::now();
        assert_eq!(limit.admit_at(t0), Some(0));
        assert_eq!(limit.admit_at(t0 + Duration::from_secs(1)), Some(0));
        for s in 2..9 {
            assert_eq!(limit.admit_at(t0 + Duration::from_secs(s)), None);
        }
        // A new interval: the next line says how many were held back.
        assert_eq!(limit.admit_at(t0 + Duration::from_secs(10)), Some(7));
        assert_eq!(limit.admit_at(t0 + Duration::from_secs(11)), Some(0));
        assert_eq!(limit.admit_at(t0 + Duration::from_secs(12)), None);
        assert_eq!(limit.admit_at(t0 + Duration::from_secs(25)), Some(1));
    }

    /// Real sockets: with both slots taken the listener accepts nothing
    /// more, although the client's connection is made (in the backlog);
    /// it is accepted as soon as a slot is given back.
    #[tokio::test]
    async fn listener_accepts_no_more_than_its_cap() {
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = tcp.local_addr().unwrap();
        let mut listener = Listener::new(tcp, 2, "test");
        let mut clients = Vec::new();
        for _ in 0..3 {
            clients.push(TcpStream::connect(address).await.unwrap());
        }
        let (_a, _, first) = listener.accept().await;
        let (_b, _, _second) = listener.accept().await;
        let third = tokio::time::timeout(Duration::from_millis(500), listener.accept()).await;
        assert!(
            third.is_err(),
            "a third connection was accepted over the cap"
        );
        drop(first);
        let third = tokio::time::timeout(Duration::from_secs(5), listener.accept()).await;
        assert!(third.is_ok(), "a freed slot did not let the next one in");
    }
}

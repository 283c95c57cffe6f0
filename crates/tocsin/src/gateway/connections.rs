//! The HTTP listener's table of connections: at most a fixed number served
//! at once, and when every place is taken, the connection idle longest is
//! told to close to make room for the new one.
//!
//! Why: the limit keeps clients that hold connections open from taking the
//! file descriptors the broker, store and webhook connections need; but a
//! limit alone let those clients (a scanner, or one reopening each
//! connection as the idle timeout closes it) fill every place, and
//! `/healthz` and `/metrics` waited behind them until a probe failed and
//! the gateway was restarted for doing nothing wrong.
//!
//! What may be closed is judged from what the connection does, as its
//! [`Watched`] stream sees it: never one answering a request, nor one
//! whose answer is still being written to a client that reads it (a slow
//! reader of a large report), nor one that has just received bytes (a
//! request on its way, or a connection just accepted whose request has not
//! been read yet). One that sits idle, has sent part of a request and then
//! nothing for a while, or has not read its answers for [`STALLED`], gives
//! way.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

/// How long a new connection waits for the one told to close before the
/// table is looked at again: it may have taken a request meanwhile (it then
/// finishes that request first), and another may have fallen idle.
const RECHECK: Duration = Duration::from_millis(20);

/// How long after its last byte came in (or after it was accepted) a
/// connection is left alone: its request may be being parsed, or waiting
/// to be read by a task not yet run. Closed then, a request the client had
/// sent was reset. Kept short: while every connection of a flood is
/// younger than it, a probe waits (at 250 ms, probes through 600
/// reconnecting idle connections took 0.4 s where they had taken 0.08).
const QUIET: Duration = Duration::from_millis(50);

/// How long a write to a client may make no progress before its
/// connection may be closed for another (the listener's write timeout
/// closes it anyway later): a client that asks and never reads. Progress
/// is a write completing, and the kernel lets a waiting write go on only
/// once a third of the send buffer has drained: with the listener's
/// buffer, a client reading slower than about 10 KB/s looks stalled.
pub const STALLED: Duration = Duration::from_secs(5);

/// The connections served, shared by the accept loop (which admits) and the
/// connection tasks (which leave when they end).
pub struct Connections {
    limit: usize,
    open: Mutex<HashMap<u64, Arc<Entry>>>,
    next_id: AtomicU64,
    /// Woken when a connection leaves.
    freed: Notify,
    /// What the entries' times are measured from.
    epoch: Instant,
}

/// One connection's state as the table sees it. Times are milliseconds
/// since [`Connections::epoch`].
struct Entry {
    epoch: Instant,
    /// Requests being answered on it.
    in_hand: AtomicUsize,
    /// When it last became idle (accepted, or its last answer taken to be
    /// written).
    idle_since: AtomicU64,
    /// When bytes last came in (accepted, at first).
    last_read: AtomicU64,
    /// A write to it is waiting for the client to read.
    write_waiting: AtomicBool,
    /// When that wait began.
    write_waiting_since: AtomicU64,
    /// Told to close already: not chosen twice.
    told: AtomicBool,
    /// How it is told.
    close: Notify,
}

impl Entry {
    fn now_ms(&self) -> u64 {
        millis(self.epoch.elapsed())
    }

    /// Its write has waited for the client for [`STALLED`].
    fn stalled(&self, now: u64) -> bool {
        self.write_waiting.load(Ordering::Acquire)
            && now.saturating_sub(self.write_waiting_since.load(Ordering::Acquire))
                >= millis(STALLED)
    }

    /// Whether closing it now loses nothing a client is reading or
    /// sending: no request being answered, no answer being read, no bytes
    /// come in for [`QUIET`].
    fn closable(&self, now: u64) -> bool {
        self.in_hand.load(Ordering::Acquire) == 0
            && (!self.write_waiting.load(Ordering::Acquire) || self.stalled(now))
            && now.saturating_sub(self.last_read.load(Ordering::Acquire)) >= millis(QUIET)
    }

    /// When it was last doing anything: what "idle longest" orders by.
    fn last_active(&self) -> u64 {
        self.idle_since
            .load(Ordering::Acquire)
            .max(self.last_read.load(Ordering::Acquire))
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Connections {
    /// An empty table holding at most `limit` connections.
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Connections {
            limit,
            open: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            freed: Notify::new(),
            epoch: Instant::now(),
        })
    }

    /// A place for a new connection: at once when one is free; otherwise
    /// the connection idle longest that can close without loss is told to,
    /// and the place is taken when it has; when none can, once one ends or
    /// can. Says whether every place was taken when it came.
    pub async fn admit(self: &Arc<Self>) -> (Connection, bool) {
        let mut was_full = false;
        loop {
            // Made before the table is read, so that a leaving in between
            // still wakes the wait below.
            let freed = self.freed.notified();
            {
                let mut open = self.lock();
                if open.len() < self.limit {
                    return (self.enter(&mut open), was_full);
                }
                was_full = true;
                let now = self.now_ms();
                // One told that can no longer close without loss (it took
                // a request, or bytes came) keeps its place: another may
                // go in its stead.
                for e in open.values() {
                    if e.told.load(Ordering::Acquire) && !e.closable(now) {
                        e.told.store(false, Ordering::Release);
                    }
                }
                if !open.values().any(|e| e.told.load(Ordering::Acquire))
                    && let Some(idlest) = idlest(&open, now)
                {
                    idlest.told.store(true, Ordering::Release);
                    idlest.close.notify_one();
                }
            }
            let _ = tokio::time::timeout(RECHECK, freed).await;
        }
    }

    /// How many are open.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }

    fn enter(self: &Arc<Self>, open: &mut HashMap<u64, Arc<Entry>>) -> Connection {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let now = self.now_ms();
        let entry = Arc::new(Entry {
            epoch: self.epoch,
            in_hand: AtomicUsize::new(0),
            idle_since: AtomicU64::new(now),
            last_read: AtomicU64::new(now),
            write_waiting: AtomicBool::new(false),
            write_waiting_since: AtomicU64::new(now),
            told: AtomicBool::new(false),
            close: Notify::new(),
        });
        open.insert(id, entry.clone());
        Connection {
            table: self.clone(),
            id,
            entry,
        }
    }

    fn now_ms(&self) -> u64 {
        millis(self.epoch.elapsed())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Entry>>> {
        // The table holds no invariant a panicking holder could break
        // half-way: take it as it is.
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The connection idle longest (the oldest first among equals) of those
/// that can close without loss, if any can.
fn idlest(open: &HashMap<u64, Arc<Entry>>, now: u64) -> Option<&Arc<Entry>> {
    open.iter()
        .filter(|(_, e)| e.closable(now))
        .min_by_key(|(id, e)| (e.last_active(), **id))
        .map(|(_, e)| e)
}

/// Why a connection told to close did so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closing {
    /// It was idle.
    Idle,
    /// Its client had not read its answers for [`STALLED`].
    Stalled,
}

/// A connection's place in the table, given up when dropped.
pub struct Connection {
    table: Arc<Connections>,
    id: u64,
    entry: Arc<Entry>,
}

impl Connection {
    /// Marks a request in hand until the guard is dropped: the connection
    /// is not chosen to close meanwhile.
    pub fn request(&self) -> InHand {
        self.entry.in_hand.fetch_add(1, Ordering::AcqRel);
        InHand {
            entry: self.entry.clone(),
        }
    }

    /// The stream, watched for what the table judges by.
    pub fn watch<S>(&self, stream: S) -> Watched<S> {
        Watched {
            inner: stream,
            entry: self.entry.clone(),
        }
    }

    /// Resolves when the table tells this connection to close, with why
    /// when it can close now without loss; `None` when it has since taken
    /// a request, or bytes came (it then keeps its place, and another is
    /// chosen).
    pub async fn told_to_close(&self) -> Option<Closing> {
        self.entry.close.notified().await;
        let now = self.entry.now_ms();
        if !self.entry.closable(now) {
            return None;
        }
        Some(if self.entry.stalled(now) {
            Closing::Stalled
        } else {
            Closing::Idle
        })
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.table.lock().remove(&self.id);
        self.table.freed.notify_one();
    }
}

/// A request being answered: see [`Connection::request`].
pub struct InHand {
    entry: Arc<Entry>,
}

impl Drop for InHand {
    fn drop(&mut self) {
        self.entry
            .idle_since
            .store(self.entry.now_ms(), Ordering::Release);
        self.entry.in_hand.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A connection's stream, noting for the table when bytes come in and
/// whether a write waits for the client to read.
pub struct Watched<S> {
    inner: S,
    entry: Arc<Entry>,
}

impl<S> Watched<S> {
    /// Notes a write's outcome: waiting (from when it began to) or done.
    fn wrote<T>(&self, r: &Poll<T>) {
        match r {
            Poll::Pending => {
                if !self.entry.write_waiting.swap(true, Ordering::AcqRel) {
                    self.entry
                        .write_waiting_since
                        .store(self.entry.now_ms(), Ordering::Release);
                }
            }
            Poll::Ready(_) => self.entry.write_waiting.store(false, Ordering::Release),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.entry
                .last_read
                .store(self.entry.now_ms(), Ordering::Release);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.wrote(&r);
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(&r);
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.wrote(&r);
        r
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Waits (bounded) for `f` to resolve, failing the test if it does not.
    async fn soon<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(10), f)
            .await
            .expect("resolved")
    }

    /// Admits a connection in the background.
    fn admitting(table: &Arc<Connections>) -> tokio::task::JoinHandle<(Connection, bool)> {
        let table = table.clone();
        tokio::spawn(async move { table.admit().await })
    }

    #[tokio::test(start_paused = true)]
    async fn below_the_limit_a_connection_is_admitted_at_once() {
        let table = Connections::new(2);
        let (_a, full_a) = soon(table.admit()).await;
        let (_b, full_b) = soon(table.admit()).await;
        assert!(!full_a && !full_b);
        assert_eq!(table.len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn at_the_limit_the_connection_idle_longest_is_told_to_close() {
        let table = Connections::new(2);
        let (older, _) = soon(table.admit()).await;
        let (newer, _) = soon(table.admit()).await;
        // The older one answers a request a little later, so the newer has
        // been idle longer; both quiet since.
        tokio::time::advance(Duration::from_millis(5)).await;
        drop(older.request());
        tokio::time::advance(QUIET).await;
        let coming = admitting(&table);
        assert_eq!(soon(newer.told_to_close()).await, Some(Closing::Idle));
        drop(newer);
        let (_c, was_full) = soon(coming).await.expect("admitted");
        assert!(was_full);
        assert_eq!(table.len(), 2);
        drop(older);
        assert_eq!(table.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_answering_a_request_is_never_told_to_close() {
        let table = Connections::new(1);
        let (busy, _) = soon(table.admit()).await;
        let in_hand = busy.request();
        tokio::time::advance(QUIET).await;
        let coming = admitting(&table);
        // Several rechecks pass with nothing to close: the newcomer waits.
        tokio::time::sleep(RECHECK * 3).await;
        assert!(!coming.is_finished());
        assert!(!busy.entry.told.load(Ordering::Acquire));
        // Its request answered, it is idle and gives way.
        drop(in_hand);
        assert_eq!(soon(busy.told_to_close()).await, Some(Closing::Idle));
        drop(busy);
        let (_c, was_full) = soon(coming).await.expect("admitted");
        assert!(was_full);
    }

    /// Bytes just come in (a request on its way, or not read yet) keep a
    /// connection; a part of a request followed by nothing for a while
    /// does not.
    #[tokio::test(start_paused = true)]
    async fn a_connection_with_bytes_just_come_in_keeps_its_place() {
        let table = Connections::new(1);
        let (conn, _) = soon(table.admit()).await;
        let (client, server) = tokio::io::duplex(64);
        let mut watched = conn.watch(server);
        let (mut client, mut server) = (client, &mut watched);
        // Just accepted: not chosen.
        let coming = admitting(&table);
        tokio::time::sleep(QUIET / 2).await;
        assert!(!conn.entry.told.load(Ordering::Acquire));
        // Part of a request comes, then nothing: chosen once quiet.
        tokio::io::AsyncWriteExt::write_all(&mut client, b"GET / HT")
            .await
            .unwrap();
        let mut buf = [0u8; 64];
        let n = tokio::io::AsyncReadExt::read(&mut server, &mut buf)
            .await
            .unwrap();
        assert_eq!(n, 8);
        tokio::time::sleep(QUIET / 2).await;
        assert!(!conn.entry.told.load(Ordering::Acquire));
        assert_eq!(soon(conn.told_to_close()).await, Some(Closing::Idle));
        drop(watched);
        drop(conn);
        soon(coming).await.expect("admitted");
    }

    /// A write waiting for a client that reads keeps the connection (a
    /// slow reader of a large answer is never cut off); one waiting for
    /// [`STALLED`] gives way, as stalled.
    #[tokio::test(start_paused = true)]
    async fn an_answer_being_read_keeps_its_connection_until_the_writes_stall() {
        let table = Connections::new(1);
        let (conn, _) = soon(table.admit()).await;
        let (mut client, server) = tokio::io::duplex(16);
        let mut watched = conn.watch(server);
        tokio::time::advance(QUIET).await;
        // The answer fills the pipe: the write waits.
        let writing = tokio::spawn(async move {
            tokio::io::AsyncWriteExt::write_all(&mut watched, &[b'x'; 64]).await
        });
        tokio::time::sleep(RECHECK).await;
        assert!(conn.entry.write_waiting.load(Ordering::Acquire));
        let coming = admitting(&table);
        // The client reads a little now and then: the writes progress and
        // the connection is never chosen.
        for _ in 0..2 {
            tokio::time::sleep(STALLED / 2).await;
            let mut buf = [0u8; 16];
            tokio::io::AsyncReadExt::read_exact(&mut client, &mut buf)
                .await
                .unwrap();
            assert!(!conn.entry.told.load(Ordering::Acquire));
        }
        // Then it stops reading: stalled, the connection gives way.
        assert_eq!(soon(conn.told_to_close()).await, Some(Closing::Stalled));
        assert!(!writing.is_finished());
        writing.abort();
        drop(conn);
        soon(coming).await.expect("admitted");
    }
}

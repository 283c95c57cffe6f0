//! The HTTP listener's table of connections: at most a fixed number served
//! at once, and when every place is taken, the connection idle longest is
//! told to close to make room for the new one.
//!
//! Why: the limit keeps clients that hold connections open from taking the
//! file descriptors the broker, store and webhook connections need; but a
//! limit alone let those clients (a scanner, or one reopening each
//! connection as the idle timeout closes it) fill every place, and
//! `/healthz` and `/metrics` waited behind them until a probe failed and
//! the gateway was restarted for doing nothing wrong. A connection that is
//! answering a request is never chosen; one that sits idle, or has sent only
//! part of a request, gives way.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// How long a new connection waits for the one told to close before the
/// table is looked at again: it may have taken a request meanwhile (it then
/// finishes that request first), and another may have fallen idle.
const RECHECK: Duration = Duration::from_millis(100);

/// The connections served, shared by the accept loop (which admits) and the
/// connection tasks (which leave when they end).
pub struct Connections {
    limit: usize,
    open: Mutex<HashMap<u64, Arc<Entry>>>,
    next_id: AtomicU64,
    /// Woken when a connection leaves.
    freed: Notify,
    /// What idle times are measured from.
    epoch: Instant,
}

/// One connection's state as the table sees it.
struct Entry {
    /// Requests being answered on it.
    in_hand: AtomicUsize,
    /// When it last became idle (accepted, or its last answer given), in
    /// milliseconds since [`Connections::epoch`].
    idle_since: AtomicU64,
    /// Told to close already: not chosen twice.
    told: AtomicBool,
    /// How it is told.
    close: Notify,
}

/// What [`Connections::admit`] did to find a place.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    /// Every place was taken when the connection came.
    pub was_full: bool,
    /// Idle connections told to close to make room.
    pub closed_idle: usize,
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
    /// the connection idle longest is told to close and the place is taken
    /// when it has; when every connection is answering a request, once the
    /// first of them ends.
    pub async fn admit(self: &Arc<Self>) -> (Connection, Admission) {
        let mut admission = Admission::default();
        loop {
            // Made before the table is read, so that a leaving in between
            // still wakes the wait below.
            let freed = self.freed.notified();
            {
                let mut open = self.lock();
                if open.len() < self.limit {
                    return (self.enter(&mut open), admission);
                }
                admission.was_full = true;
                if !open.values().any(|e| e.told.load(Ordering::Acquire))
                    && let Some(idlest) = idlest(&open)
                {
                    idlest.told.store(true, Ordering::Release);
                    idlest.close.notify_one();
                    admission.closed_idle += 1;
                }
            }
            let _ = tokio::time::timeout(RECHECK, freed).await;
            // A connection told to close that took a request first is
            // answering it: it closes after, and another idle one may go
            // now in its stead.
            for e in self.lock().values() {
                if e.told.load(Ordering::Acquire) && e.in_hand.load(Ordering::Acquire) > 0 {
                    e.told.store(false, Ordering::Release);
                }
            }
        }
    }

    /// How many are open.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }

    fn enter(self: &Arc<Self>, open: &mut HashMap<u64, Arc<Entry>>) -> Connection {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let entry = Arc::new(Entry {
            in_hand: AtomicUsize::new(0),
            idle_since: AtomicU64::new(self.now_ms()),
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
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Entry>>> {
        // The table holds no invariant a panicking holder could break
        // half-way: take it as it is.
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The idle connection idle longest (the oldest first among equals), if
/// any is idle.
fn idlest(open: &HashMap<u64, Arc<Entry>>) -> Option<&Arc<Entry>> {
    open.iter()
        .filter(|(_, e)| e.in_hand.load(Ordering::Acquire) == 0)
        .min_by_key(|(id, e)| (e.idle_since.load(Ordering::Acquire), **id))
        .map(|(_, e)| e)
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
            table: self.table.clone(),
            entry: self.entry.clone(),
        }
    }

    /// No request in hand: none being answered, though part of one's
    /// headers may have come.
    pub fn is_idle(&self) -> bool {
        self.entry.in_hand.load(Ordering::Acquire) == 0
    }

    /// Resolves when the table tells this connection to close (it is idle
    /// and its place is wanted).
    pub async fn told_to_close(&self) {
        self.entry.close.notified().await;
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
    table: Arc<Connections>,
    entry: Arc<Entry>,
}

impl Drop for InHand {
    fn drop(&mut self) {
        self.entry
            .idle_since
            .store(self.table.now_ms(), Ordering::Release);
        self.entry.in_hand.fetch_sub(1, Ordering::AcqRel);
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

    #[tokio::test(start_paused = true)]
    async fn below_the_limit_a_connection_is_admitted_at_once() {
        let table = Connections::new(2);
        let (_a, first) = soon(table.admit()).await;
        let (_b, second) = soon(table.admit()).await;
        assert_eq!(first, Admission::default());
        assert_eq!(second, Admission::default());
        assert_eq!(table.len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn at_the_limit_the_connection_idle_longest_is_told_to_close() {
        let table = Connections::new(2);
        let (older, _) = soon(table.admit()).await;
        let (newer, _) = soon(table.admit()).await;
        // The older one answers a request a little later, so the newer has
        // been idle longer.
        tokio::time::advance(Duration::from_millis(5)).await;
        drop(older.request());
        let admitting = tokio::spawn({
            let table = table.clone();
            async move { table.admit().await }
        });
        soon(newer.told_to_close()).await;
        drop(newer);
        let (_c, admission) = soon(admitting).await.expect("admitted");
        assert_eq!(
            admission,
            Admission {
                was_full: true,
                closed_idle: 1
            }
        );
        assert_eq!(table.len(), 2);
        drop(older);
        assert_eq!(table.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_answering_a_request_is_never_told_to_close() {
        let table = Connections::new(1);
        let (busy, _) = soon(table.admit()).await;
        let in_hand = busy.request();
        let admitting = tokio::spawn({
            let table = table.clone();
            async move { table.admit().await }
        });
        // Several rechecks pass with nothing to close: the newcomer waits.
        tokio::time::sleep(RECHECK * 3).await;
        assert!(!admitting.is_finished());
        assert!(!busy.entry.told.load(Ordering::Acquire));
        // Its request answered, it is idle and gives way.
        drop(in_hand);
        soon(busy.told_to_close()).await;
        drop(busy);
        let (_c, admission) = soon(admitting).await.expect("admitted");
        assert!(admission.was_full);
        assert_eq!(admission.closed_idle, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn one_told_to_close_that_took_a_request_gives_way_to_another() {
        let table = Connections::new(2);
        let (first, _) = soon(table.admit()).await;
        let (second, _) = soon(table.admit()).await;
        let admitting = tokio::spawn({
            let table = table.clone();
            async move { table.admit().await }
        });
        // The first, idle longest, is told; it takes a request before it
        // closes, so the second is told in its stead.
        soon(first.told_to_close()).await;
        let _in_hand = first.request();
        soon(second.told_to_close()).await;
        drop(second);
        let (_c, admission) = soon(admitting).await.expect("admitted");
        assert_eq!(admission.closed_idle, 2);
        drop(first);
    }
}

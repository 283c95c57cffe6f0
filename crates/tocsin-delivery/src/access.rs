//! How the workers reach the store: on a blocking thread, never on the
//! async runtime (the PostgreSQL backend must not be called from a task).

use std::future::Future;
use std::sync::{Arc, Mutex};

use tocsin_store::{Store, StoreError};

/// Something that runs a closure against the store off the runtime. The
/// gateway's store handle implements it, so the workers share its
/// connection; [`SharedStore`] is a ready-made one.
pub trait StoreAccess: Clone + Send + Sync + 'static {
    /// Runs `f` with the store on a blocking thread.
    fn call<R, F>(&self, f: F) -> impl Future<Output = Result<R, StoreError>> + Send
    where
        F: FnOnce(&mut dyn Store) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static;
}

/// One store connection behind a mutex, called with `spawn_blocking`.
#[derive(Clone)]
pub struct SharedStore(Arc<Mutex<Box<dyn Store>>>);

impl SharedStore {
    /// Wraps an open store.
    pub fn new(store: Box<dyn Store>) -> Self {
        Self(Arc::new(Mutex::new(store)))
    }

    /// Runs `f` with the store on a blocking thread (also the
    /// [`StoreAccess`] method, callable without the trait in scope).
    pub async fn call<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&mut dyn Store) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        let inner = self.0.clone();
        let done = tokio::task::spawn_blocking(move || {
            // A panic while holding the lock cannot leave the store half
            // written (each call is one transaction), so a poisoned lock is
            // still safe to use.
            let mut guard = inner.lock().unwrap_or_else(|p| p.into_inner());
            f(guard.as_mut())
        })
        .await;
        match done {
            Ok(result) => result,
            // A panic in the store is a bug: carry it on rather than hide it.
            Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
            // Cancelled before it ran: only as the runtime shuts down, which
            // drops this future too. Taking it for a panic printed one at
            // every stop with a webhook being retried.
            Err(_) => std::future::pending().await,
        }
    }
}

impl StoreAccess for SharedStore {
    async fn call<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&mut dyn Store) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        SharedStore::call(self, f).await
    }
}

//! The store, shared between the pipeline, the outbox relay and the HTTP
//! API, called on blocking threads so that a slow disk never stalls the
//! runtime.

use std::sync::{Arc, Mutex};

use tocsin_store::{Store, StoreError};

/// A shared handle on the one store connection.
#[derive(Clone)]
pub struct StoreHandle(Arc<Mutex<Box<dyn Store>>>);

impl StoreHandle {
    /// Wraps an open store.
    pub fn new(store: Box<dyn Store>) -> Self {
        Self(Arc::new(Mutex::new(store)))
    }

    /// Runs `f` with the store on a blocking thread.
    pub async fn call<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&mut dyn Store) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        let inner = self.0.clone();
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock cannot leave the store half
            // written (each call is one transaction), so a poisoned lock is
            // still safe to use.
            let mut guard = inner.lock().unwrap_or_else(|p| p.into_inner());
            f(guard.as_mut())
        })
        .await
        // A panic in the store is a bug: carry it on rather than hide it.
        .unwrap_or_else(|join| std::panic::resume_unwind(join.into_panic()))
    }
}

//! The store, shared between the pipeline, the outbox relay, the delivery
//! workers and the HTTP API, called on blocking threads so that a slow disk
//! never stalls the runtime.

/// A shared handle on the one store connection: the delivery crate's
/// [`tocsin_delivery::SharedStore`], so that the delivery workers run on the
/// gateway's own connection.
pub use tocsin_delivery::SharedStore as StoreHandle;

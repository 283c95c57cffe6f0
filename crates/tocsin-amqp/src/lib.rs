//! The RabbitMQ adapter for tocsin, on lapin and tokio.
//!
//! It knows nothing of HL7, FHIR or the tracker: it moves bytes. The binary
//! wires it up:
//!
//! * [`AmqpConfig`]: the `[amqp]` configuration section (broker URL with a
//!   redacted `Display`, queue and exchange names, batching, backoff).
//! * [`Supervisor`]: connects with jittered backoff, declares the topology
//!   ([`declare_topology`]) on every connection, and publishes the link
//!   state ([`LinkState`]) for readiness and the `tocsin_amqp_connected`
//!   gauge. A [`Session`] is one live connection.
//! * [`BatchConsumer`]: batches of [`Delivery`] bounded by size and time;
//!   acknowledge exactly a committed batch ([`Receipt`],
//!   [`BatchConsumer::ack_batch`]), requeue after
//!   a passing failure, or [`BatchConsumer::dead_letter`] a message that can
//!   never be processed.
//! * [`Publisher`]: [`Publisher::publish_confirmed`] for the outbox.
//! * [`format_hint`]: the input format a `content_type` announces.
//! * [`peek`] and [`redrive`]: the dead-letter queue, read in place, and
//!   moved back to the input queue once the cause is mended.
//!
//! The usual loop:
//!
//! ```no_run
//! # async fn run(config: tocsin_amqp::AmqpConfig) -> Result<(), tocsin_amqp::AmqpError> {
//! use tocsin_amqp::{Receipt, Supervisor};
//! let supervisor = Supervisor::new(config)?;
//! loop {
//!     let session = supervisor.connect().await; // retries until the broker is there
//!     let Ok(mut consumer) = session.consumer().await else { continue };
//!     let (max, wait) = (supervisor.config().batch_size, supervisor.config().flush_interval());
//!     while let Ok(batch) = consumer.next_batch(max, wait).await {
//!         // ... process and commit the batch, then:
//!         if let Some(receipt) = Receipt::of(&batch) {
//!             if consumer.ack_batch(&receipt).await.is_err() { break; }
//!         }
//!     }
//!     // link lost: uncommitted deliveries come back after reconnecting
//! }
//! # }
//! ```

mod backoff;
mod config;
mod consumer;
mod dead_letter;
mod delivery;
mod error;
mod format;
mod publisher;
mod redrive;
mod supervisor;
mod topology;

#[cfg(feature = "test-support")]
pub mod test_support;

pub use backoff::{Backoff, BackoffConfig};
pub use config::{AmqpConfig, BindingConfig, DEFAULT_URL, SecretUrl, redact_url};
pub use consumer::{BatchConsumer, Receipt};
pub use dead_letter::{
    ERROR_HEADER, ERROR_LOCATION_HEADER, ORIGINAL_EXCHANGE_HEADER, ORIGINAL_EXPIRATION_HEADER,
    ORIGINAL_ROUTING_KEY_HEADER, ORIGINAL_USER_ID_HEADER,
};
pub use delivery::Delivery;
pub use error::AmqpError;
pub use format::{InputFormat, format_hint};
pub use publisher::{OutgoingMessage, Publisher};
pub use redrive::{DeadLetter, Peeked, Redriven, peek, redrive};
pub use supervisor::{LinkState, Session, Supervisor};
pub use topology::{declare_topology, input_queue_arguments, queue_depth};

/// The lapin types that appear in this crate's API (headers, properties).
pub use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
pub use lapin::{BasicProperties, Connection};

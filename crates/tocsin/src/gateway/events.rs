//! Packing a batch's interface events into outbox messages: one message per
//! event (`[events] format = "single"`), or one NDJSON message per routing
//! key and batch (`"ndjson"`, the default), each line exactly the body the
//! single format publishes.

use sha2::{Digest, Sha256};
use tocsin_event::InterfaceEvent;
use tocsin_store::{Batch, OutboxMessage, StoreError};

use crate::config::EventsFormat;

/// The AMQP content type of a batch of events.
pub const NDJSON_CONTENT_TYPE: &str = "application/x-ndjson";

/// Most events in one NDJSON message, so that one input carrying a very
/// large NDJSON file cannot make one huge AMQP message.
const MAX_EVENTS_PER_MESSAGE: usize = 1000;

/// The events of one routing key gathered so far in this batch.
struct Group {
    exchange: String,
    routing_key: String,
    body: Vec<u8>,
    ids: Sha256,
    count: usize,
}

impl Group {
    fn into_message(self) -> OutboxMessage {
        // The id is a digest of the event ids it carries: the same events
        // in the same order (the same batch committed again after a
        // redelivery) give the same id, which the outbox ignores.
        let digest = self.ids.finalize();
        OutboxMessage {
            id: format!("events:{}", hex::encode(&digest[..16])),
            exchange: self.exchange,
            routing_key: self.routing_key,
            content_type: NDJSON_CONTENT_TYPE.to_string(),
            body: self.body,
        }
    }
}

/// Turns the events of one batch into outbox messages in the configured
/// format. Push each event as it is applied, then [`EventPacker::finish`]
/// before the commit.
pub struct EventPacker {
    format: EventsFormat,
    exchange: String,
    groups: Vec<Group>,
}

impl EventPacker {
    /// A packer publishing to `exchange` in `format`.
    pub fn new(format: EventsFormat, exchange: String) -> Self {
        Self {
            format,
            exchange,
            groups: Vec::new(),
        }
    }

    /// Adds one event: in the single format its message goes into the batch
    /// at once, in NDJSON it joins its routing key's group.
    pub fn push(&mut self, event: &InterfaceEvent, batch: &mut Batch) -> Result<(), StoreError> {
        let message = OutboxMessage::for_event(&self.exchange, event)?;
        if self.format == EventsFormat::Single {
            batch.push_outbox(message);
            return Ok(());
        }
        let at = self
            .groups
            .iter()
            .position(|g| g.routing_key == message.routing_key);
        let group = match at {
            Some(i) if self.groups[i].count < MAX_EVENTS_PER_MESSAGE => &mut self.groups[i],
            Some(i) => {
                let full = self.groups.swap_remove(i);
                batch.push_outbox(full.into_message());
                self.open_group(message.exchange, message.routing_key)
            }
            None => self.open_group(message.exchange, message.routing_key),
        };
        group.body.extend_from_slice(&message.body);
        group.body.push(b'\n');
        group.ids.update(message.id.as_bytes());
        group.ids.update(b"\n");
        group.count += 1;
        Ok(())
    }

    fn open_group(&mut self, exchange: String, routing_key: String) -> &mut Group {
        self.groups.push(Group {
            exchange,
            routing_key,
            body: Vec::new(),
            ids: Sha256::new(),
            count: 0,
        });
        self.groups.last_mut().expect("just pushed")
    }

    /// Puts the NDJSON messages gathered into the batch (nothing to do in
    /// the single format) and starts afresh.
    pub fn finish(&mut self, batch: &mut Batch) {
        for group in self.groups.drain(..) {
            batch.push_outbox(group.into_message());
        }
    }
}

//! The batched consumer: takes input from the input queues in batches
//! bounded by size and time, and settles them only when the caller says so
//! (after its commit), by acknowledgement, requeue, or dead-lettering.

use crate::config::AmqpConfig;
use crate::dead_letter::{Rejection, dead_letter_properties};
use crate::delivery::Delivery;
use crate::error::AmqpError;
use futures_core::Stream;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions,
    BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Confirmation, Connection};
use std::collections::BTreeSet;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::Poll;
use std::time::Duration;

static NEXT_CONSUMER_ID: AtomicU64 = AtomicU64::new(1);

/// What acknowledging one batch takes: the delivery tags of exactly its
/// deliveries, kept while the batch is committed so that its
/// acknowledgement covers them and nothing received after
/// ([`BatchConsumer::ack_batch`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    consumer_id: u64,
    tags: Vec<u64>,
}

impl Receipt {
    /// The receipt of a batch from one [`BatchConsumer::next_batch`] (or
    /// several from the same consumer); `None` when it is empty.
    #[must_use]
    pub fn of(batch: &[Delivery]) -> Option<Self> {
        let first = batch.first()?;
        Some(Self {
            consumer_id: first.consumer_id,
            tags: batch.iter().map(Delivery::delivery_tag).collect(),
        })
    }

    /// How many deliveries it covers.
    #[must_use]
    pub fn len(&self) -> usize {
        self.tags.len()
    }

    /// Whether it covers none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.tags.is_empty()
    }
}

/// Removes a batch's tags (`mine`) from the open set and says how to
/// acknowledge them: one `multiple` ack through the highest of them that
/// lies below every other open tag and below `unreceived_from`, and the
/// rest one by one, in order. Tags of `mine` no longer open (settled one by
/// one) are skipped.
///
/// `unreceived_from` is the lowest tag not yet taken from any queue's
/// buffer ([`Received::lowest_missing`]): the broker has sent it (a higher
/// tag arrived) or will, and a `multiple` ack through a tag above it would
/// settle it unprocessed.
fn plan_acks(
    open: &mut BTreeSet<u64>,
    mine: &[u64],
    unreceived_from: u64,
) -> (Option<u64>, Vec<u64>) {
    let mine: BTreeSet<u64> = mine.iter().copied().filter(|t| open.contains(t)).collect();
    for t in &mine {
        open.remove(t);
    }
    let others_from = open
        .first()
        .copied()
        .unwrap_or(u64::MAX)
        .min(unreceived_from);
    let together = mine.range(..others_from).next_back().copied();
    let alone = mine.range(others_from..).copied().collect();
    (together, alone)
}

/// Which delivery tags of a channel have been taken from the consumers'
/// buffers. The broker numbers a channel's deliveries 1, 2, 3, ... across
/// all its consumers, and lapin buffers them per consumer, so with several
/// input queues a tag can be taken while lower ones still wait in another
/// queue's buffer. Those are the tags below the highest taken that were
/// not taken yet; this keeps the lowest of them.
#[derive(Debug)]
struct Received {
    /// Every tag below this was taken.
    lowest_missing: u64,
    /// Tags taken above `lowest_missing`.
    above: BTreeSet<u64>,
}

impl Received {
    fn new() -> Self {
        Self {
            lowest_missing: 1,
            above: BTreeSet::new(),
        }
    }

    /// Note that `tag` was taken from a buffer.
    fn note(&mut self, tag: u64) {
        if tag < self.lowest_missing {
            return;
        }
        self.above.insert(tag);
        while self.above.remove(&self.lowest_missing) {
            self.lowest_missing += 1;
        }
    }

    /// The lowest tag not taken yet: still in a buffer, or not yet sent.
    fn lowest_missing(&self) -> u64 {
        self.lowest_missing
    }
}

/// Consumes tocsin's input queues on one channel and hands out batches.
///
/// Delivery tags still open are tracked so that [`BatchConsumer::ack_batch`]
/// can acknowledge a whole committed batch with as few acks as its tags
/// allow, never one that covers another batch's, and skipping tags already
/// settled one by one (dead-lettered or requeued), which the broker would
/// otherwise reject as unknown.
pub struct BatchConsumer {
    id: u64,
    channel: Channel,
    dead_channel: Channel,
    consumers: Vec<lapin::Consumer>,
    /// Per consumer: its stream ended after [`BatchConsumer::stop`].
    finished: Vec<bool>,
    stopped: bool,
    next_poll: usize,
    open: BTreeSet<u64>,
    /// The tags taken so far, to keep a `multiple` ack below any still
    /// buffered ([`plan_acks`]).
    received: Received,
    dead_letter_queue: String,
    /// Unacknowledged deliveries the broker may send each consumer
    /// (`basic.qos`).
    prefetch: usize,
    /// Set once anything is acknowledged: tells the session it did useful
    /// work, which resets the reconnect backoff (see `Supervisor::connect`).
    acknowledged: Arc<AtomicBool>,
}

impl std::fmt::Debug for BatchConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchConsumer")
            .field("id", &self.id)
            .field(
                "queues",
                &self.consumers.iter().map(|c| c.queue()).collect::<Vec<_>>(),
            )
            .field("open", &self.open.len())
            .finish()
    }
}

impl BatchConsumer {
    /// Start consuming every input queue (`prefetch` unacknowledged messages
    /// at most per queue) and open a confirm-mode channel for
    /// dead-lettering. The topology must already be declared.
    pub async fn start(connection: &Connection, config: &AmqpConfig) -> Result<Self, AmqpError> {
        let lost = |op| move |e: lapin::Error| AmqpError::from_lapin(op, &e);
        let channel = connection
            .create_channel()
            .await
            .map_err(lost("channel.open"))?;
        channel
            .basic_qos(config.prefetch, BasicQosOptions::default())
            .await
            .map_err(lost("basic.qos"))?;
        let dead_channel = connection
            .create_channel()
            .await
            .map_err(lost("channel.open"))?;
        dead_channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(lost("confirm.select"))?;
        let id = NEXT_CONSUMER_ID.fetch_add(1, Ordering::Relaxed);
        let mut consumers = Vec::new();
        for queue in config.input_queues() {
            let tag = format!("{}.{id}.{queue}", config.connection_name);
            let consumer = channel
                .basic_consume(
                    queue.into(),
                    tag.into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(lost("basic.consume"))?;
            consumers.push(consumer);
        }
        Ok(Self {
            id,
            channel,
            dead_channel,
            finished: vec![false; consumers.len()],
            consumers,
            stopped: false,
            next_poll: 0,
            open: BTreeSet::new(),
            received: Received::new(),
            dead_letter_queue: config.dead_letter_queue.clone(),
            prefetch: usize::from(config.prefetch),
            acknowledged: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Up to `max` deliveries: returns when `max` have arrived or `max_wait`
    /// has passed since the call, whichever comes first, possibly with none
    /// (so the caller can advance its clock while the queues are idle).
    ///
    /// An error means the channel or connection is gone: deliveries not yet
    /// acknowledged will be redelivered by the broker to the next consumer.
    /// After [`BatchConsumer::stop`] it returns what was already received,
    /// then empty batches at once.
    pub async fn next_batch(
        &mut self,
        max: usize,
        max_wait: Duration,
    ) -> Result<Vec<Delivery>, AmqpError> {
        let mut batch = Vec::with_capacity(max.min(1024));
        let deadline = tokio::time::sleep(max_wait);
        tokio::pin!(deadline);
        while batch.len() < max {
            tokio::select! {
                biased;
                next = self.next_delivery() => {
                    let Some(delivery) = next? else { break };
                    self.open.insert(delivery.delivery_tag);
                    self.received.note(delivery.delivery_tag);
                    batch.push(Delivery { inner: delivery, consumer_id: self.id });
                }
                () = &mut deadline => break,
            }
        }
        Ok(batch)
    }

    /// The next delivery from any input queue, polling them in turn so one
    /// busy queue cannot starve the others; `None` once stopped and drained.
    async fn next_delivery(&mut self) -> Result<Option<lapin::message::Delivery>, AmqpError> {
        std::future::poll_fn(|cx| {
            let n = self.consumers.len();
            for i in 0..n {
                let idx = (self.next_poll + i) % n;
                if self.finished[idx] {
                    continue;
                }
                match Pin::new(&mut self.consumers[idx]).poll_next(cx) {
                    Poll::Ready(Some(Ok(delivery))) => {
                        self.next_poll = (idx + 1) % n;
                        return Poll::Ready(Ok(Some(delivery)));
                    }
                    Poll::Ready(Some(Err(e))) => {
                        return Poll::Ready(Err(AmqpError::from_lapin("consume", &e)));
                    }
                    Poll::Ready(None) if self.stopped => self.finished[idx] = true,
                    Poll::Ready(None) => {
                        return Poll::Ready(Err(AmqpError::ConnectionLost {
                            operation: "consume",
                            reason: format!(
                                "consumer on queue {} was cancelled",
                                self.consumers[idx].queue()
                            ),
                        }));
                    }
                    Poll::Pending => {}
                }
            }
            if self.finished.iter().all(|f| *f) {
                Poll::Ready(Ok(None))
            } else {
                Poll::Pending
            }
        })
        .await
    }

    /// Report acknowledgements to `flag` (the session's).
    pub(crate) fn report_acks_to(&mut self, flag: Arc<AtomicBool>) {
        self.acknowledged = flag;
    }

    /// `basic.ack`, noting that something was acknowledged.
    async fn send_ack(&self, tag: u64, multiple: bool) -> Result<(), AmqpError> {
        self.channel
            .basic_ack(tag, BasicAckOptions { multiple })
            .await
            .map_err(|e| AmqpError::from_lapin("basic.ack", &e))?;
        self.acknowledged.store(true, Ordering::SeqCst);
        Ok(())
    }

    fn check_owner(&self, delivery: &Delivery) -> Result<(), AmqpError> {
        if delivery.consumer_id == self.id {
            Ok(())
        } else {
            Err(AmqpError::StaleDelivery {
                delivery_tag: delivery.delivery_tag(),
            })
        }
    }

    /// The highest open tag not above `tag`, removing every open tag up to it.
    fn take_through(&mut self, tag: u64) -> Option<u64> {
        let highest = self.open.range(..=tag).next_back().copied()?;
        let rest = self.open.split_off(&(highest + 1));
        self.open = rest;
        Some(highest)
    }

    /// Acknowledge exactly the deliveries of one batch
    /// ([`Receipt::of`]), once its effects are committed.
    ///
    /// Tags are numbered per channel in the order the broker sends them,
    /// but with several input queues a batch takes from each queue's
    /// buffer in turn, so its tags interleave with the next batch's (the
    /// next batch may hold a lower tag than this one's highest), and a
    /// lower tag may even still wait in another queue's buffer, not yet in
    /// any batch. One `multiple` ack covers this batch's tags below the
    /// lowest open tag of any other batch and below the lowest tag not yet
    /// taken from a buffer; the rest are acknowledged one by one. From one
    /// queue, that is always a single ack.
    pub async fn ack_batch(&mut self, receipt: &Receipt) -> Result<(), AmqpError> {
        if receipt.consumer_id != self.id {
            return Err(AmqpError::StaleDelivery {
                delivery_tag: receipt.tags.first().copied().unwrap_or_default(),
            });
        }
        let (together, alone) = plan_acks(
            &mut self.open,
            &receipt.tags,
            self.received.lowest_missing(),
        );
        if let Some(tag) = together {
            self.send_ack(tag, true).await?;
        }
        for tag in alone {
            self.send_ack(tag, false).await?;
        }
        Ok(())
    }

    /// Acknowledge every open delivery up to and including `last` with one
    /// `multiple` ack. Call it only once the batch's effects are committed,
    /// and only when consuming one queue: with several, a later batch's
    /// deliveries can lie below `last` and would be acknowledged uncommitted
    /// ([`BatchConsumer::ack_batch`] is exact).
    pub async fn ack_through(&mut self, last: &Delivery) -> Result<(), AmqpError> {
        self.check_owner(last)?;
        let Some(tag) = self.take_through(last.delivery_tag()) else {
            return Ok(());
        };
        self.send_ack(tag, true).await
    }

    /// Acknowledge one delivery.
    pub async fn ack(&mut self, delivery: &Delivery) -> Result<(), AmqpError> {
        self.check_owner(delivery)?;
        if !self.open.remove(&delivery.delivery_tag()) {
            return Ok(());
        }
        self.send_ack(delivery.delivery_tag(), false).await
    }

    /// Return one delivery to its queue after a passing failure (the store
    /// briefly down). The quorum queue counts returns and dead-letters the
    /// message once it exceeds the delivery limit, so this cannot loop forever.
    pub async fn requeue(&mut self, delivery: &Delivery) -> Result<(), AmqpError> {
        self.check_owner(delivery)?;
        if !self.open.remove(&delivery.delivery_tag()) {
            return Ok(());
        }
        self.nack(delivery.delivery_tag(), false).await
    }

    /// Return every open delivery up to and including `last` to its queue
    /// (a whole batch whose commit failed for a passing reason).
    pub async fn requeue_through(&mut self, last: &Delivery) -> Result<(), AmqpError> {
        self.check_owner(last)?;
        let Some(tag) = self.take_through(last.delivery_tag()) else {
            return Ok(());
        };
        self.nack(tag, true).await
    }

    async fn nack(&self, tag: u64, multiple: bool) -> Result<(), AmqpError> {
        self.channel
            .basic_nack(
                tag,
                BasicNackOptions {
                    multiple,
                    requeue: true,
                },
            )
            .await
            .map_err(|e| AmqpError::from_lapin("basic.nack", &e))
    }

    /// Send a message that cannot be processed to the dead-letter queue and
    /// acknowledge it, so it is never redelivered in a loop.
    ///
    /// The body goes unchanged, with the original properties and headers,
    /// plus `x-tocsin-error` (`reason`), `x-tocsin-error-location` (when
    /// `location` is given) and the original exchange and routing key. It is
    /// made persistent; `expiration` and `user_id` move to headers (see
    /// [`crate::ORIGINAL_EXPIRATION_HEADER`]). `reason` and `location` are
    /// stored in the message, never logged here. The original is acknowledged only after the broker
    /// confirms the dead-letter copy; if that fails the original stays
    /// unacknowledged and will be redelivered.
    pub async fn dead_letter(
        &mut self,
        delivery: &Delivery,
        reason: &str,
        location: Option<&str>,
    ) -> Result<(), AmqpError> {
        self.copy_to_dead_letter(delivery, reason, location).await?;
        self.ack(delivery).await
    }

    /// The first half of [`BatchConsumer::dead_letter`]: publish the copy to
    /// the dead-letter queue and wait for the broker's confirm, but leave the
    /// original open, to be acknowledged with its batch
    /// ([`BatchConsumer::ack_through`]) once the caller has committed. A
    /// caller that records rejected inputs can so copy first and commit
    /// after: a redelivered input found in its records was dead-lettered
    /// already.
    pub async fn copy_to_dead_letter(
        &mut self,
        delivery: &Delivery,
        reason: &str,
        location: Option<&str>,
    ) -> Result<(), AmqpError> {
        self.check_owner(delivery)?;
        let properties = dead_letter_properties(
            delivery.properties(),
            Rejection {
                reason,
                location,
                exchange: delivery.exchange(),
                routing_key: delivery.routing_key(),
            },
        );
        let lost = |op| move |e: lapin::Error| AmqpError::from_lapin(op, &e);
        let confirmation = self
            .dead_channel
            .basic_publish(
                "".into(),
                self.dead_letter_queue.as_str().into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                delivery.body(),
                properties,
            )
            .await
            .map_err(lost("basic.publish"))?
            .await
            .map_err(lost("publisher confirm"))?;
        let message_id = delivery.message_id().unwrap_or("").to_owned();
        match confirmation {
            Confirmation::Ack(None) => {}
            Confirmation::Ack(Some(returned)) => {
                return Err(AmqpError::Unroutable {
                    message_id,
                    exchange: String::new(),
                    routing_key: self.dead_letter_queue.clone(),
                    reply: returned.reply_text.to_string(),
                });
            }
            Confirmation::Nack(_) | Confirmation::NotRequested => {
                return Err(AmqpError::Nacked {
                    message_id,
                    exchange: String::new(),
                });
            }
        }
        tracing::debug!(
            delivery_tag = delivery.delivery_tag(),
            queue = %self.dead_letter_queue,
            "input dead-lettered"
        );
        Ok(())
    }

    /// Messages ready in the input queues and not yet delivered to a
    /// consumer (a passive declare of each, on the consuming channel).
    ///
    /// An empty batch alone does not prove the queues drained: the broker
    /// may be slower than the flush interval, as with a backlog after an
    /// outage. The gateway asks this before its clock follows the wall
    /// clock. Deliveries the broker sent before answering are in the
    /// consumer's buffer once this returns (frames on a channel keep their
    /// order), so a zero-wait [`BatchConsumer::next_batch`] afterwards takes
    /// them.
    pub async fn backlog(&self) -> Result<u64, AmqpError> {
        let mut total = 0u64;
        for consumer in &self.consumers {
            let depth = crate::topology::depth_on(&self.channel, consumer.queue().as_str()).await?;
            total += u64::from(depth);
        }
        Ok(total)
    }

    /// Whether, after [`BatchConsumer::stop`], every consumer has ended:
    /// the broker has answered the cancel, and every delivery it sent
    /// before has been taken. Until then an empty batch is no proof of it:
    /// deliveries reach the buffer as they are read off the socket.
    #[must_use]
    pub fn drained(&self) -> bool {
        self.stopped && self.finished.iter().all(|f| *f)
    }

    /// Deliveries received and not yet settled.
    #[must_use]
    pub fn open_deliveries(&self) -> usize {
        self.open.len()
    }

    /// Close both channels and wait for the broker's close-ok (shutdown,
    /// after [`BatchConsumer::stop`] and the last acknowledgement).
    /// Deliveries still open return to their queues. See
    /// [`crate::Publisher::close`] for why closing beats dropping.
    pub async fn close(self) -> Result<(), AmqpError> {
        let consuming = crate::publisher::close_channel(&self.channel, "consumer").await;
        let dead = crate::publisher::close_channel(&self.dead_channel, "dead-letter").await;
        consuming.and(dead)
    }

    /// Stop receiving new deliveries (shutdown), returning those taken
    /// while stopping; with what was received before, they can all be
    /// settled, and nothing goes back to the queue.
    ///
    /// A quorum queue may send deliveries after its `basic.cancel-ok`,
    /// which lapin, the consumer gone, drops: unacknowledged, they went
    /// back to the queue at channel close, behind the rest of the backlog,
    /// and the restarted gateway read a hundred messages hours or days out
    /// of order (false `overdue` for documents it had not reached yet,
    /// refusals before their documents). So the broker's credit is used
    /// up first: deliveries are taken, without acknowledging any, until
    /// the prefetch is all in hand (the broker can then send no more) or
    /// none has come for `quiet` (the queues are empty), and only then is
    /// the consumer cancelled. Deliveries taken before and not yet
    /// acknowledged count against the credit.
    pub async fn stop(&mut self, quiet: Duration) -> Result<Vec<Delivery>, AmqpError> {
        let credit = self.prefetch.saturating_mul(self.consumers.len());
        let mut taken = Vec::new();
        while self.open.len() < credit {
            let more = self.next_batch(credit - self.open.len(), quiet).await?;
            if more.is_empty() {
                break;
            }
            taken.extend(more);
        }
        self.cancel().await?;
        Ok(taken)
    }

    /// `basic.cancel` for every consumer: the broker stops pushing, and
    /// each stream ends after the deliveries sent before the cancel.
    async fn cancel(&mut self) -> Result<(), AmqpError> {
        self.stopped = true;
        for consumer in &self.consumers {
            self.channel
                .basic_cancel(consumer.tag(), BasicCancelOptions::default())
                .await
                .map_err(|e| AmqpError::from_lapin("basic.cancel", &e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod ack_plan_tests {
    use super::{Received, plan_acks};
    use std::collections::BTreeSet;

    fn open(tags: &[u64]) -> BTreeSet<u64> {
        tags.iter().copied().collect()
    }

    #[test]
    fn one_queue_in_order_is_one_multiple_ack() {
        let mut o = open(&[1, 2, 3, 4, 5]);
        assert_eq!(plan_acks(&mut o, &[1, 2, 3], 6), (Some(3), vec![]));
        assert_eq!(o, open(&[4, 5]));
    }

    #[test]
    fn interleaved_batches_never_cover_each_other() {
        // Queue A sent 1 to 3, queue B 4; the first batch took A1 and B4,
        // the next A2 and A3.
        let mut o = open(&[1, 2, 3, 4]);
        assert_eq!(plan_acks(&mut o, &[1, 4], 5), (Some(1), vec![4]));
        assert_eq!(o, open(&[2, 3]), "the next batch's stay open");
        assert_eq!(plan_acks(&mut o, &[2, 3], 5), (Some(3), vec![]));
        assert!(o.is_empty());
    }

    #[test]
    fn tags_settled_one_by_one_are_skipped() {
        // 2 was dead-lettered and acknowledged on its own.
        let mut o = open(&[1, 3, 6, 7]);
        assert_eq!(plan_acks(&mut o, &[1, 2, 3, 7], 8), (Some(3), vec![7]));
        assert_eq!(o, open(&[6]));
        assert_eq!(plan_acks(&mut o, &[9], 10), (None, vec![]));
        assert_eq!(o, open(&[6]));
    }

    #[test]
    fn tags_still_in_another_queues_buffer_are_never_covered() {
        // Queue A sent 1 to 3, queue B 4 to 6; the only batch drawn took
        // A1 and B4, while A2 and A3 still wait in A's buffer: nothing
        // else is open, yet a multiple ack through 4 would settle them.
        let mut received = Received::new();
        for tag in [1, 4] {
            received.note(tag);
        }
        assert_eq!(received.lowest_missing(), 2);
        let mut o = open(&[1, 4]);
        assert_eq!(
            plan_acks(&mut o, &[1, 4], received.lowest_missing()),
            (Some(1), vec![4])
        );
        assert!(o.is_empty());
    }

    #[test]
    fn the_lowest_missing_tag_follows_the_gaps() {
        let mut r = Received::new();
        assert_eq!(r.lowest_missing(), 1);
        for (tag, lowest) in [(3, 1), (1, 2), (2, 4), (6, 4), (4, 5), (5, 7), (7, 8)] {
            r.note(tag);
            assert_eq!(r.lowest_missing(), lowest, "after {tag}");
        }
        assert!(r.above.is_empty());
        r.note(2);
        assert_eq!(r.lowest_missing(), 8, "a tag seen again changes nothing");
    }
}

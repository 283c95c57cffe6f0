-- Housekeeping: the gateway deletes published outbox messages and processed
-- input ids once they are older than its retention, a bounded chunk at a
-- time; these indexes let each chunk find its rows without a table scan.
CREATE INDEX inputs_processed_at ON inputs (processed_at);
CREATE INDEX outbox_published_at ON outbox (published_at) WHERE published_at IS NOT NULL;

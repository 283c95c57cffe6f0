-- tocsin store, PostgreSQL, version 8: each alert's place in the order the
-- store recorded it, so that a system polling the alert list
-- (`order=recorded`) can ask for what was recorded since its last call.
-- `raised_at` cannot serve: it is the time the messages give, and alerts
-- are recorded out of that order (a backlog after an outage brings alerts
-- raised hours ago). New rows take the next number of a sequence as they
-- are inserted; with one writer per store its commits follow one another,
-- so no number becomes visible after a higher one. Rows written before
-- this version are numbered in `raised_at` order, the only order they
-- kept.
ALTER TABLE alerts ADD COLUMN seq bigint;
UPDATE alerts SET seq = numbered.n
FROM (SELECT alert_id, row_number() OVER (ORDER BY raised_at, alert_id) AS n FROM alerts)
    AS numbered
WHERE alerts.alert_id = numbered.alert_id;
CREATE SEQUENCE alerts_seq_counter OWNED BY alerts.seq;
SELECT setval('alerts_seq_counter', COALESCE(MAX(seq), 0) + 1, false) FROM alerts;
ALTER TABLE alerts
    ALTER COLUMN seq SET DEFAULT nextval('alerts_seq_counter'),
    ALTER COLUMN seq SET NOT NULL;
-- The list in this order reads the index as the `raised_at` list reads
-- its own: a range after the cursor, in (seq, alert_id) order.
CREATE INDEX alerts_by_seq ON alerts (seq, alert_id);

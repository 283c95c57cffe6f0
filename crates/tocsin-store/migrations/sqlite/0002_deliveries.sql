-- tocsin store, SQLite, version 2: the webhook delivery queue. One row per
-- alert and subscriber, inserted in the same transaction as the alert, so a
-- crash between commit and delivery loses nothing. `body` is exactly what is
-- POSTed (the alert JSON, with the NHS number already replaced by its keyed
-- hash for a subscriber that asks), so every retry sends the same bytes.
-- Times are INTEGER microseconds since the Unix epoch (UTC).

CREATE TABLE deliveries (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    subscriber      TEXT    NOT NULL,
    alert_id        TEXT    NOT NULL,
    body            BLOB    NOT NULL,
    status          TEXT    NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    settled_at      INTEGER,
    last_error      TEXT,
    UNIQUE (subscriber, alert_id)
);
-- The worker of one subscriber reads its due rows in order.
CREATE INDEX deliveries_due ON deliveries (subscriber, next_attempt_at, seq)
    WHERE status = 'pending';

-- tocsin store, PostgreSQL, version 2: the webhook delivery queue. One row
-- per alert and subscriber, inserted in the same transaction as the alert,
-- so a crash between commit and delivery loses nothing. `body` is exactly
-- what is POSTed (the alert JSON, with the NHS number already replaced by its
-- keyed hash for a subscriber that asks), so every retry sends the same bytes.

CREATE TABLE deliveries (
    seq             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subscriber      text        NOT NULL,
    alert_id        text        NOT NULL,
    body            bytea       NOT NULL,
    status          text        NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        integer     NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    settled_at      timestamptz,
    last_error      text,
    UNIQUE (subscriber, alert_id)
);
-- The worker of one subscriber reads its due rows in order.
CREATE INDEX deliveries_due ON deliveries (subscriber, next_attempt_at, seq)
    WHERE status = 'pending';

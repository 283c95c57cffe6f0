-- tocsin store, PostgreSQL, version 1: expectations, alerts, auxiliary
-- tracker state, the outbox and processed inputs. Bodies are the serde JSON of
-- the tracker types, kept as text rather than jsonb: jsonb refuses the \u0000
-- escape that a message's text may legitimately carry, and text is cheaper to
-- write. Query them ad hoc with body::jsonb.

CREATE TABLE expectations (
    id             text        NOT NULL PRIMARY KEY,
    status         text        NOT NULL,
    document_kind  text        NOT NULL,
    encounter_kind text        NOT NULL,
    site           text,
    deadline       timestamptz NOT NULL,
    ended_at       timestamptz NOT NULL,
    body           text        NOT NULL
);
-- Unsettled load at start, status-filtered listing in deadline order.
CREATE INDEX expectations_status_deadline ON expectations (status, deadline, id);
-- Unfiltered listing in deadline order.
CREATE INDEX expectations_deadline ON expectations (deadline, id);
-- Compliance reports by encounter end.
CREATE INDEX expectations_ended_at ON expectations (ended_at);

CREATE TABLE alerts (
    alert_id       text        NOT NULL PRIMARY KEY,
    kind           text        NOT NULL,
    raised_at      timestamptz NOT NULL,
    document_kind  text        NOT NULL,
    encounter_kind text        NOT NULL,
    site           text,
    body           text        NOT NULL
);
CREATE INDEX alerts_raised_at ON alerts (raised_at, alert_id);

CREATE TABLE state (
    namespace text  NOT NULL,
    key       text  NOT NULL,
    value     text  NOT NULL,
    PRIMARY KEY (namespace, key)
);

CREATE TABLE outbox (
    seq          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id           text        NOT NULL UNIQUE,
    exchange     text        NOT NULL,
    routing_key  text        NOT NULL,
    content_type text        NOT NULL,
    body         bytea       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX outbox_pending ON outbox (seq) WHERE published_at IS NULL;

CREATE TABLE inputs (
    id           text        NOT NULL PRIMARY KEY,
    outcome      text        NOT NULL CHECK (outcome IN ('ok', 'rejected')),
    reason       text,
    processed_at timestamptz NOT NULL DEFAULT now()
);

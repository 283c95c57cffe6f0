-- tocsin store, SQLite, version 1: expectations, alerts, auxiliary tracker
-- state, the outbox and processed inputs. Times are INTEGER microseconds
-- since the Unix epoch (UTC); bodies are the serde JSON of the tracker types.

CREATE TABLE expectations (
    id             TEXT    NOT NULL PRIMARY KEY,
    status         TEXT    NOT NULL,
    document_kind  TEXT    NOT NULL,
    encounter_kind TEXT    NOT NULL,
    site           TEXT,
    deadline       INTEGER NOT NULL,
    ended_at       INTEGER NOT NULL,
    body           TEXT    NOT NULL
);
-- Unsettled load at start, status-filtered listing in deadline order.
CREATE INDEX expectations_status_deadline ON expectations (status, deadline, id);
-- Unfiltered listing in deadline order.
CREATE INDEX expectations_deadline ON expectations (deadline, id);
-- Compliance reports by encounter end.
CREATE INDEX expectations_ended_at ON expectations (ended_at);

CREATE TABLE alerts (
    alert_id       TEXT    NOT NULL PRIMARY KEY,
    kind           TEXT    NOT NULL,
    raised_at      INTEGER NOT NULL,
    document_kind  TEXT    NOT NULL,
    encounter_kind TEXT    NOT NULL,
    site           TEXT,
    body           TEXT    NOT NULL
);
CREATE INDEX alerts_raised_at ON alerts (raised_at, alert_id);

CREATE TABLE state (
    namespace TEXT NOT NULL,
    key       TEXT NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (namespace, key)
) WITHOUT ROWID;

CREATE TABLE outbox (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT    NOT NULL UNIQUE,
    exchange     TEXT    NOT NULL,
    routing_key  TEXT    NOT NULL,
    content_type TEXT    NOT NULL,
    body         BLOB    NOT NULL,
    created_at   INTEGER NOT NULL,
    published_at INTEGER
);
CREATE INDEX outbox_pending ON outbox (seq) WHERE published_at IS NULL;

CREATE TABLE inputs (
    id           TEXT    NOT NULL PRIMARY KEY,
    outcome      TEXT    NOT NULL CHECK (outcome IN ('ok', 'rejected')),
    reason       TEXT,
    processed_at INTEGER NOT NULL
) WITHOUT ROWID;

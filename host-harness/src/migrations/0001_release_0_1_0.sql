-- Version 1: the schema of release 0.1.0, which kept no version (`user_version` 0). Every
-- statement is `IF NOT EXISTS`, so a state file that release wrote adopts this step unchanged.
-- A released step is never edited: a change is a new file.

-- Connection settings (JSON) and HubSpot access.
CREATE TABLE IF NOT EXISTS connections (
    code       TEXT PRIMARY KEY,
    settings   TEXT NOT NULL,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE IF NOT EXISTS connection_access (
    code          TEXT PRIMARY KEY,
    hubspot_url   TEXT NOT NULL,
    portal_id     INTEGER,
    kind          TEXT NOT NULL,
    secrets       TEXT NOT NULL,
    client_id     TEXT,
    token_url     TEXT,
    scopes        TEXT NOT NULL DEFAULT '',
    expires_at_ms INTEGER,
    is_default    INTEGER NOT NULL DEFAULT 0,
    status        TEXT NOT NULL DEFAULT 'connected',
    status_detail TEXT,
    generation    INTEGER NOT NULL DEFAULT 1,
    connected_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

-- Lago id -> HubSpot id, per connection (custom object type ids too, kind `object_schema`).
CREATE TABLE IF NOT EXISTS id_map (
    connection TEXT NOT NULL,
    kind       TEXT NOT NULL,
    lago_id    TEXT NOT NULL,
    hubspot_id TEXT NOT NULL,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (connection, kind, lago_id)
);

-- What was sent for each Lago object, and what HubSpot answered.
CREATE TABLE IF NOT EXISTS sync_log (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    at           TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    connection   TEXT NOT NULL,
    webhook_type TEXT NOT NULL,
    lago_id      TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    detail       TEXT NOT NULL,
    steps        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sync_log_by_object ON sync_log (connection, lago_id);

-- The durable webhook queue of `serve`.
CREATE TABLE IF NOT EXISTS events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    unique_key      TEXT UNIQUE,
    received_at_ms  INTEGER NOT NULL,
    connection      TEXT NOT NULL,
    order_key       TEXT NOT NULL,
    webhook_type    TEXT NOT NULL,
    lago_id         TEXT NOT NULL,
    body            TEXT NOT NULL,
    state           TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL DEFAULT 0,
    plan            TEXT,
    progress        TEXT,
    last_error      TEXT,
    last_status     INTEGER,
    updated_at_ms   INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_state ON events (state, next_attempt_ms);
CREATE INDEX IF NOT EXISTS events_by_order ON events (order_key, id);

-- Content hashes of what `backfill` already synced.
CREATE TABLE IF NOT EXISTS backfill_hashes (
    connection   TEXT NOT NULL,
    object_kind  TEXT NOT NULL,
    lago_id      TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    updated_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (connection, object_kind, lago_id)
);

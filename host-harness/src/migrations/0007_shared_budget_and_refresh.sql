-- Version 7: what several instances on one database share besides the queue.
-- The requests each HubSpot portal was sent in its rolling windows (`api`, `search`), so all
-- instances together stay within the portal's limit: a request takes a row, which ages out of
-- the window (see `Store::take_rate_slot`).
CREATE TABLE IF NOT EXISTS rate_slots (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    portal      TEXT NOT NULL,
    rate_window TEXT NOT NULL,
    at_ms       INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS rate_slots_by_window ON rate_slots (portal, rate_window, at_ms);
-- One OAuth refresh at a time per connection, across instances: the instance refreshing holds
-- the connection's row until `refresh_until_ms` (a lease, so a killed instance frees it), and
-- the others wait for the tokens it stores.
ALTER TABLE connection_access ADD COLUMN refresh_owner TEXT;
ALTER TABLE connection_access ADD COLUMN refresh_until_ms INTEGER NOT NULL DEFAULT 0;

-- Version 6: several `serve` instances on one PostgreSQL database share the queue. A claim
-- records who holds the event and until when; an instance renews its leases while it runs them,
-- and the events of an instance that stopped renewing (killed, cut off) go back to the queue
-- once their lease has run out. On SQLite one process owns the file and the lease is only
-- bookkeeping.
ALTER TABLE events ADD COLUMN lease_owner TEXT;
ALTER TABLE events ADD COLUMN lease_until_ms INTEGER NOT NULL DEFAULT 0;
-- Finding leases that ran out, and an instance's own leases, reads only running events.
CREATE INDEX IF NOT EXISTS events_running_by_lease ON events (lease_until_ms)
    WHERE state = 'running';
CREATE INDEX IF NOT EXISTS events_running_by_owner ON events (lease_owner)
    WHERE state = 'running';

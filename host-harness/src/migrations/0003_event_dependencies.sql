-- Version 3: a customer's subscriptions and invoices no longer queue behind each other.
-- `order_key` is now the object (a customer event's is its customer); `customer_key` names the
-- customer, so a customer's events still wait for its earlier customer events and the other way
-- round (see `Store::claim`). Events stored before keep their per-customer order: their
-- `order_key` was the customer, so they all count as customer events.
ALTER TABLE events ADD COLUMN customer_key TEXT NOT NULL DEFAULT '';
UPDATE events SET customer_key = order_key;
CREATE INDEX IF NOT EXISTS events_active_by_customer ON events (customer_key, id)
    WHERE state IN ('pending', 'running');
CREATE INDEX IF NOT EXISTS events_by_customer ON events (customer_key, id);
-- The claim walks waiting events in arrival order and stops at its limit.
CREATE INDEX IF NOT EXISTS events_pending_by_id ON events (id) WHERE state = 'pending';

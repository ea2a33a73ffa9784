-- Version 4: customers linked to a HubSpot record by hand (`lago-hubspot link`), as Lago's
-- "paste a HubSpot ID" does: self-hosted Lago cannot create HubSpot `integration_customers`
-- entries. `customer_key` is the Lago customer's external_id or lago_id, as given; an event of
-- that customer updates (and associates with) the linked record.
CREATE TABLE IF NOT EXISTS customer_links (
    connection   TEXT NOT NULL,
    customer_key TEXT NOT NULL,
    hubspot_id   TEXT NOT NULL,
    object_type  TEXT NOT NULL CHECK (object_type IN ('companies', 'contacts')),
    created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (connection, customer_key)
);
-- Routing in `serve` looks a customer's links up across connections.
CREATE INDEX IF NOT EXISTS customer_links_by_customer ON customer_links (customer_key, connection);

-- Version 9: HubSpot's daily limit, learned once for every instance on one database.
-- When a portal's daily budget is spent (a 429 with policyName DAILY), the instance that met it
-- records until when; the others read it and pause that portal too, instead of each spending a
-- request to learn it (see `Store::spend_day`).
CREATE TABLE IF NOT EXISTS portal_daily_limit (
    portal   TEXT PRIMARY KEY,
    until_ms INTEGER NOT NULL
);

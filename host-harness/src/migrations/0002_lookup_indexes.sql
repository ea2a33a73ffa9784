-- Version 2: the lookups every event makes, indexed.
-- `known_ids` and routing read id_map by Lago id (and connection); the primary key starts with
-- the connection and the kind.
CREATE INDEX IF NOT EXISTS id_map_by_lago_id ON id_map (lago_id, connection);
-- The queue's "first in line for its customer" check looks only at waiting and running events;
-- the plain order index also walks every event a customer ever had.
CREATE INDEX IF NOT EXISTS events_active_by_order ON events (order_key, id)
    WHERE state IN ('pending', 'running');

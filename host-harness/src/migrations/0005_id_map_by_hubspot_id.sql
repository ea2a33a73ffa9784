-- Version 5: which Lago customer a HubSpot record already belongs to, before adopting it.
CREATE INDEX IF NOT EXISTS id_map_by_hubspot_id ON id_map (connection, hubspot_id);

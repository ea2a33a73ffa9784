-- Version 8: the sync log names each object as an operator does, whichever mode ran it (`sync`,
-- `backfill` or `serve`), so `lago-hubspot log` finds it by what is at hand: Lago's
-- `object_type` (customer, subscription, invoice, credit_note, ...), a customer's or a
-- subscription's `external_id`, an invoice's or a credit note's `number`. Empty when the object
-- has none (and for lines written before).
ALTER TABLE sync_log ADD COLUMN object_type TEXT NOT NULL DEFAULT '';
ALTER TABLE sync_log ADD COLUMN external_id TEXT NOT NULL DEFAULT '';
ALTER TABLE sync_log ADD COLUMN number TEXT NOT NULL DEFAULT '';
CREATE INDEX IF NOT EXISTS sync_log_by_external_id ON sync_log (external_id, connection);
CREATE INDEX IF NOT EXISTS sync_log_by_number ON sync_log (number, connection);

-- tocsin store, SQLite, version 10: the settling transmission's delivery
-- state (pending, acknowledged, failed) as a column of its own, NULL while
-- nothing was sent, so that a compliance report counts the documents sent
-- but refused (`delivery_failed`) from columns, as it reads the rest.
-- Existing rows take it from their bodies. tocsin writes them as compact
-- JSON, in which `"delivery":"failed"` can only be that key (a quote inside
-- a string is escaped) and no nested object has a key of that name, so a
-- text search finds it without parsing: the same on both backends, and no
-- body that fails to parse can stop the upgrade.
ALTER TABLE expectations ADD COLUMN delivery TEXT;
UPDATE expectations
SET delivery = CASE
    WHEN instr(body, '"delivery":"failed"') > 0 THEN 'failed'
    WHEN instr(body, '"delivery":"acknowledged"') > 0 THEN 'acknowledged'
    WHEN instr(body, '"delivery":"pending"') > 0 THEN 'pending'
END
WHERE instr(body, '"delivery":"') > 0;

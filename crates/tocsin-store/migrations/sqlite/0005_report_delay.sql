-- tocsin store, SQLite, version 5: the settling document's delay (seconds
-- from the encounter's end to its first issue) as a column of its own, NULL
-- until a document settles the expectation. With it a compliance report
-- reads only columns (status, document and encounter kinds, site, end,
-- delay) instead of parsing each expectation's JSON body, which was a fifth
-- of what a replay into a store spent on the store (docs/performance.md,
-- "Eighteenth session"). Existing rows take it from their bodies; a body
-- that is not JSON is left for the reader to report, as before.
ALTER TABLE expectations ADD COLUMN delay_seconds INTEGER;
UPDATE expectations
SET delay_seconds = json_extract(body, '$.settlement.delay_seconds')
WHERE json_valid(body);

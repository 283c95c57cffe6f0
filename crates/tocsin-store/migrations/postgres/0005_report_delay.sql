-- tocsin store, PostgreSQL, version 5: the settling document's delay
-- (seconds from the encounter's end to its first issue) as a column of its
-- own, NULL until a document settles the expectation. With it a compliance
-- report reads only columns (status, document and encounter kinds, site,
-- end, delay) instead of parsing each expectation's JSON body
-- (docs/performance.md, "Eighteenth session"). Existing rows take it from
-- their bodies, which tocsin wrote as JSON.
ALTER TABLE expectations ADD COLUMN delay_seconds bigint;
UPDATE expectations
SET delay_seconds = (body::jsonb #>> '{settlement,delay_seconds}')::bigint
WHERE jsonb_typeof(body::jsonb -> 'settlement') = 'object';

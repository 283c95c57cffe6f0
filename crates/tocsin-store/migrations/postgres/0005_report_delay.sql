-- tocsin store, PostgreSQL, version 5: the settling document's delay
-- (seconds from the encounter's end to its first issue) as a column of its
-- own, NULL until a document settles the expectation. With it a compliance
-- report reads only columns (status, document and encounter kinds, site,
-- end, delay) instead of parsing each expectation's JSON body
-- (docs/performance.md, "Eighteenth session"). Existing rows take it from
-- their bodies, which tocsin wrote as JSON.
ALTER TABLE expectations ADD COLUMN delay_seconds bigint;
-- One set-based UPDATE does the work. PostgreSQL 15 has no test for valid
-- JSON short of the cast, so a body that is not JSON (or a delay that is
-- not a whole number) would fail it and with it the upgrade: only then is
-- the table walked row by row, each row's failure caught and that row left
-- NULL, for the reader to report as the SQLite side does.
DO $$
DECLARE
    r record;
BEGIN
    UPDATE expectations
    SET delay_seconds = (body::jsonb #>> '{settlement,delay_seconds}')::bigint
    WHERE jsonb_typeof(body::jsonb -> 'settlement') = 'object';
EXCEPTION WHEN data_exception THEN
    FOR r IN SELECT id FROM expectations LOOP
        BEGIN
            UPDATE expectations
            SET delay_seconds = (body::jsonb #>> '{settlement,delay_seconds}')::bigint
            WHERE id = r.id AND jsonb_typeof(body::jsonb -> 'settlement') = 'object';
        EXCEPTION WHEN data_exception THEN
            NULL;
        END;
    END LOOP;
END
$$;

-- tocsin store, PostgreSQL, version 6: the encounter's specialty and the
-- patient's GP practice as columns of their own, so that a compliance
-- report can group by them (which specialties are late with their clinic
-- letters, which practices are let down) reading columns only, as it does
-- since version 5. No index: only the report reads them, over a range of
-- encounter ends. Existing rows take them from their bodies; as in version
-- 5, a body that is not JSON leaves its row NULL instead of failing the
-- upgrade.
ALTER TABLE expectations ADD COLUMN specialty text;
ALTER TABLE expectations ADD COLUMN gp_practice text;
DO $$
DECLARE
    r record;
BEGIN
    UPDATE expectations
    SET specialty = body::jsonb #>> '{encounter,specialty}',
        gp_practice = body::jsonb #>> '{gp_practice}';
EXCEPTION WHEN data_exception THEN
    FOR r IN SELECT id FROM expectations LOOP
        BEGIN
            UPDATE expectations
            SET specialty = body::jsonb #>> '{encounter,specialty}',
                gp_practice = body::jsonb #>> '{gp_practice}'
            WHERE id = r.id;
        EXCEPTION WHEN data_exception THEN
            NULL;
        END;
    END LOOP;
END
$$;

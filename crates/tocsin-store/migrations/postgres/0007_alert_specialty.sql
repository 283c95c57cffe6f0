-- tocsin store, PostgreSQL, version 7: an alert's specialty as a column of
-- its own, so that Alertmanager's groups can be split by specialty
-- (clinical letter teams are organised by it and route their pages by it)
-- and the alert list can be filtered by it, as the expectation list is
-- since version 6. No index: the list reads it beside `kind`, over a range
-- of `raised_at`. Existing rows take it from their bodies (alerts written
-- before tocsin carried a specialty have none); as in versions 5 and 6, a
-- body that is not JSON leaves its row NULL instead of failing the upgrade.
ALTER TABLE alerts ADD COLUMN specialty text;
DO $$
DECLARE
    r record;
BEGIN
    UPDATE alerts SET specialty = body::jsonb #>> '{encounter,specialty}';
EXCEPTION WHEN data_exception THEN
    FOR r IN SELECT alert_id FROM alerts LOOP
        BEGIN
            UPDATE alerts SET specialty = body::jsonb #>> '{encounter,specialty}'
            WHERE alert_id = r.alert_id;
        EXCEPTION WHEN data_exception THEN
            NULL;
        END;
    END LOOP;
END
$$;

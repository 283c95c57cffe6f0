-- tocsin store, PostgreSQL, version 9: versions 5 to 7 took their new
-- columns (an expectation's delay, specialty and GP practice, an alert's
-- specialty) from the bodies through jsonb, which refuses a body holding
-- an escaped NUL (`\u0000`: a name or code sent with a NUL byte is written
-- so). Those rows were left NULL, where SQLite filled them, and reports
-- and filters missed them. Here they are read again with each NUL replaced
-- by U+FFFD, as tocsin's commits and lookups do. Only rows holding one are
-- read; a body that is still not JSON leaves its row as it was.
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT id FROM expectations WHERE strpos(body, '\u0000') > 0 LOOP
        BEGIN
            UPDATE expectations e
            SET delay_seconds = COALESCE(e.delay_seconds,
                    CASE WHEN jsonb_typeof(v.j -> 'settlement') = 'object'
                         THEN (v.j #>> '{settlement,delay_seconds}')::bigint END),
                specialty = COALESCE(e.specialty, v.j #>> '{encounter,specialty}'),
                gp_practice = COALESCE(e.gp_practice, v.j #>> '{gp_practice}')
            FROM (SELECT replace(body, '\u0000', '\ufffd')::jsonb AS j
                  FROM expectations WHERE id = r.id) AS v
            WHERE e.id = r.id;
        EXCEPTION WHEN data_exception THEN
            NULL;
        END;
    END LOOP;
    FOR r IN SELECT alert_id FROM alerts WHERE strpos(body, '\u0000') > 0 LOOP
        BEGIN
            UPDATE alerts a
            SET specialty = COALESCE(a.specialty, v.j #>> '{encounter,specialty}')
            FROM (SELECT replace(body, '\u0000', '\ufffd')::jsonb AS j
                  FROM alerts WHERE alert_id = r.alert_id) AS v
            WHERE a.alert_id = r.alert_id;
        EXCEPTION WHEN data_exception THEN
            NULL;
        END;
    END LOOP;
END
$$;

-- tocsin store, SQLite, version 6: the encounter's specialty and the
-- patient's GP practice as columns of their own, so that a compliance
-- report can group by them (which specialties are late with their clinic
-- letters, which practices are let down) reading columns only, as it does
-- since version 5. No index: only the report reads them, over a range of
-- encounter ends. Existing rows take them from their bodies; a body that
-- is not JSON is left for the reader to report, as in version 5.
ALTER TABLE expectations ADD COLUMN specialty TEXT;
ALTER TABLE expectations ADD COLUMN gp_practice TEXT;
UPDATE expectations
SET specialty = json_extract(body, '$.encounter.specialty'),
    gp_practice = json_extract(body, '$.gp_practice')
WHERE json_valid(body);

-- tocsin store, SQLite, version 7: an alert's specialty as a column of its
-- own, so that Alertmanager's groups can be split by specialty (clinical
-- letter teams are organised by it and route their pages by it) and the
-- alert list can be filtered by it, as the expectation list is since
-- version 6. No index: the list reads it beside `kind`, over a range of
-- `raised_at`. Existing rows take it from their bodies (alerts written
-- before tocsin carried a specialty have none); a body that is not JSON
-- is left NULL, as in versions 5 and 6.
ALTER TABLE alerts ADD COLUMN specialty TEXT;
UPDATE alerts
SET specialty = json_extract(body, '$.encounter.specialty')
WHERE json_valid(body);

-- The tracker's duplicate keys (`seen` state records) are stored with the
-- time they were seen in front: 16 hex digits of the event time in
-- milliseconds, then the 32-digit key. New keys then land at the end of the
-- state index and expired ones leave from its start, instead of each message
-- touching a random page. The tracker reads the time back from the key, so
-- keys written before this change gain it here, from their value (an RFC
-- 3339 time as a JSON string).
UPDATE state
SET key = lpad(to_hex(round(extract(epoch FROM (value::jsonb #>> '{}')::timestamptz) * 1000)::bigint), 16, '0') || key
WHERE namespace = 'seen' AND length(key) = 32;

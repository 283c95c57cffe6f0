-- The tracker's duplicate keys (`seen` state records) are stored with the
-- time they were seen in front: 16 hex digits of the event time in
-- milliseconds, then the 32-digit key. New keys then land at the end of the
-- state index and expired ones leave from its start, instead of each message
-- touching a random page. The tracker reads the time back from the key, so
-- keys written before this change gain it here, from their value (an RFC
-- 3339 time as a JSON string).
UPDATE state
SET key = printf('%016x', CAST(round((julianday(trim(value, '"')) - 2440587.5) * 86400000.0) AS INTEGER)) || key
WHERE namespace = 'seen' AND length(key) = 32;

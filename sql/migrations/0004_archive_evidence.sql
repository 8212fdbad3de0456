-- Placeholder for schema version 0004, filled in by the work on issues #8 and #15.
SELECT 1;

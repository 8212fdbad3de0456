-- lethe's schema, version 6: one catalog of every copy lethe makes of the orders' data.
--
-- A deletion request must reach every live copy of its subject's data within 90 days (C6), so
-- it asks one place which copies hold which orders and in which state each copy is. Today the
-- copies are the cold archives; encrypted backups add their rows to these two views when they
-- arrive, and no caller changes. The archive tables stay the record (their rows are evidence,
-- changed only through the definer functions of schema 4); the views only read them.

CREATE VIEW lethe.copies AS
  SELECT 'archive'::text AS kind, archive_id AS copy_id, path, size_bytes, sha256,
         retention_until, state, created_at, destroyed_at
  FROM lethe.archives;

CREATE VIEW lethe.copy_orders AS
  SELECT 'archive'::text AS kind, archive_id AS copy_id, order_key
  FROM lethe.archived_orders;

REVOKE ALL ON lethe.copies, lethe.copy_orders FROM PUBLIC;

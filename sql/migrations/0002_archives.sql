-- lethe's schema, version 2: the catalog of cold archives (C2, C6, C7, C10).
-- An archive is recorded only after its file was written, fsynced, renamed, fsynced in its
-- directory and re-read; only orders listed in archived_orders may have held PII purged.

CREATE TABLE lethe.archives (
  archive_id      text        PRIMARY KEY,
  created_at      timestamptz NOT NULL DEFAULT now(),
  run_id          bigint,
  path            text        NOT NULL,
  size_bytes      bigint      NOT NULL CHECK (size_bytes > 0),
  sha256          text        NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  as_of           timestamptz NOT NULL,
  retention_until date        NOT NULL,
  pii_map_digest  text        NOT NULL,
  recipients      text        NOT NULL CHECK (recipients::jsonb IS NOT NULL),
  row_counts      text        NOT NULL CHECK (row_counts::jsonb IS NOT NULL),
  orders          bigint      NOT NULL,
  state           text        NOT NULL DEFAULT 'spooled'
                  CHECK (state IN ('spooled', 'cold', 'destroyed')),
  last_seen_at    timestamptz,
  destroyed_at    timestamptz,
  destroyed_by    text
);
CREATE INDEX archives_retention ON lethe.archives (retention_until) WHERE state <> 'destroyed';

-- Which orders an archive holds: the purge may sanitize a held order only once it is here.
-- Rows are written in the transaction that writes their archive's row; a foreign key would add
-- a trigger call per archived order (seen: 0.7 s for 190,000 orders) and prove nothing more.
CREATE TABLE lethe.archived_orders (
  order_key   text NOT NULL,
  archive_id  text NOT NULL,
  PRIMARY KEY (order_key, archive_id)
);

REVOKE ALL ON lethe.archives, lethe.archived_orders FROM PUBLIC;

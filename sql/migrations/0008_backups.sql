-- lethe's schema, version 8: encrypted backups and restore drills (C3, C4, C6).
--
-- A backup is a copy like an archive: it joins lethe.copies, so a deletion request tracks it
-- until it is destroyed. Its catalog row is evidence (decision 10), changed only through the
-- definer function below, which requires the audit record of the change in the same
-- transaction; destroying a backup closes that copy in every request that tracks it, because
-- a request asks lethe.copies for the copy's state.

-- One row per backup, inserted just before pg_dump's snapshot is taken: the dump carries it,
-- so a restore shows which backup it came from.
CREATE TABLE lethe.backup_markers (
  backup_id text        PRIMARY KEY,
  marked_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE lethe.backups (
  backup_id         text        PRIMARY KEY,
  run_id            bigint,
  created_at        timestamptz NOT NULL DEFAULT now(),
  snapshot_at       timestamptz NOT NULL, -- the dump's snapshot: what the backup holds
  path              text        NOT NULL,
  size_bytes        bigint      NOT NULL CHECK (size_bytes > 0),
  sha256            text        NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  manifest_path     text        NOT NULL,
  manifest_bytes    bigint      NOT NULL CHECK (manifest_bytes > 0),
  manifest_sha256   text        NOT NULL CHECK (manifest_sha256 ~ '^[0-9a-f]{64}$'),
  retention_until   timestamptz NOT NULL,
  recipients        text        NOT NULL CHECK (recipients::jsonb IS NOT NULL),
  row_counts        text        NOT NULL CHECK (row_counts::jsonb IS NOT NULL),
  evidence_seq      bigint      NOT NULL, -- its backup_written audit record
  state             text        NOT NULL DEFAULT 'spooled'
                    CHECK (state IN ('spooled', 'cold', 'destroyed')),
  state_seq         bigint,
  destroyed_at      timestamptz,
  destroyed_by      text,
  destroyed_by_role text
);

CREATE TABLE lethe.drills (
  drill_id        bigserial   PRIMARY KEY,
  kind            text        NOT NULL CHECK (kind IN ('drill', 'restore')),
  backup_id       text        NOT NULL,
  run_id          bigint,
  started_at      timestamptz NOT NULL,
  finished_at     timestamptz NOT NULL DEFAULT now(),
  restore_seconds double precision,
  checks_seconds  double precision,
  rto_seconds     double precision,
  result          text        NOT NULL CHECK (result IN ('SUCCESSFUL', 'FAILED', 'TIMED_OUT')),
  failed_check    text,
  database_name   text        NOT NULL,
  database_kept   boolean     NOT NULL DEFAULT false,
  details         text        NOT NULL CHECK (details::jsonb IS NOT NULL),
  evidence_seq    bigint      NOT NULL
);

REVOKE ALL ON lethe.backup_markers, lethe.backups, lethe.drills FROM PUBLIC;

-- Records backup `p_backup_id` (inserted by the caller in this transaction) as evidenced by its
-- backup_written record `p_seq`, written in this same transaction with the same length and
-- SHA-256.
CREATE FUNCTION lethe.backup_evidence(p_backup_id text, p_reason text, p_seq bigint)
RETURNS lethe.audit_log
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT l.* FROM lethe.audit_log l
   WHERE l.seq = p_seq AND l.exit_reason = p_reason
     AND (l.details::jsonb ->> 'backup_id') = p_backup_id
     AND l.xmin = pg_current_xact_id()::xid
$$;

-- Moves backup `p_backup_id` to 'cold' or 'destroyed' after its audit record `p_seq`
-- (exit_reason = the new state, details: backup_id and "from") was written in this
-- transaction; destroyed_at, destroyed_by and destroyed_by_role come from that record. A
-- spooled backup is destroyed only by `backup expire` (which overwrites the files in the same
-- run), a cold one only by `backup mark-destroyed`.
CREATE FUNCTION lethe.backup_set_state(p_backup_id text, p_state text, p_seq bigint)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  b lethe.backups;
  l lethe.audit_log;
BEGIN
  SELECT * INTO b FROM lethe.backups WHERE backup_id = p_backup_id FOR UPDATE;
  IF NOT FOUND OR NOT ((b.state = 'spooled' AND p_state IN ('cold', 'destroyed'))
                       OR (b.state = 'cold' AND p_state = 'destroyed')) THEN
    RAISE EXCEPTION 'backup % cannot move to state %', p_backup_id, p_state
      USING ERRCODE = 'insufficient_privilege',
            HINT = 'states go spooled -> cold -> destroyed';
  END IF;
  l := lethe.backup_evidence(p_backup_id, p_state, p_seq);
  IF l.seq IS NULL OR (l.details::jsonb ->> 'from') IS DISTINCT FROM b.state
     OR (p_state = 'destroyed' AND l.job IS DISTINCT FROM
         CASE b.state WHEN 'spooled' THEN 'backup expire' ELSE 'backup mark' END) THEN
    RAISE EXCEPTION 'backup % has no audit record of this change in this transaction',
      p_backup_id
      USING ERRCODE = 'insufficient_privilege',
            HINT = 'write the audit record with the change (Trail::append_in)';
  END IF;
  UPDATE lethe.backups
     SET state = p_state, state_seq = p_seq,
         destroyed_at = CASE WHEN p_state = 'destroyed' THEN l.recorded_at END,
         destroyed_by = CASE WHEN p_state = 'destroyed' THEN l.actor END,
         destroyed_by_role = CASE WHEN p_state = 'destroyed' THEN l.db_role END
   WHERE backup_id = p_backup_id;
END
$$;

-- A backup row commits only with its backup_written audit record (same id, length, SHA-256).
CREATE FUNCTION lethe.backups_need_evidence() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  l lethe.audit_log;
BEGIN
  l := lethe.backup_evidence(NEW.backup_id, 'backup_written', NEW.evidence_seq);
  IF l.seq IS NULL OR (l.details::jsonb ->> 'sha256') IS DISTINCT FROM NEW.sha256
     OR (l.counts::jsonb ->> 'bytes')::bigint IS DISTINCT FROM NEW.size_bytes THEN
    RAISE EXCEPTION 'backup % has no matching backup_written record in this transaction',
      NEW.backup_id
      USING ERRCODE = 'insufficient_privilege',
            HINT = 'write the audit record with the catalog row (Trail::append_in)';
  END IF;
  RETURN NEW;
END
$$;

CREATE TRIGGER backups_need_evidence BEFORE INSERT ON lethe.backups
  FOR EACH ROW EXECUTE FUNCTION lethe.backups_need_evidence();

-- A drill's row commits only with its audit record.
CREATE FUNCTION lethe.drills_need_evidence() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  l lethe.audit_log;
BEGIN
  l := lethe.backup_evidence(NEW.backup_id, lower(NEW.result), NEW.evidence_seq);
  IF l.seq IS NULL THEN
    RAISE EXCEPTION 'drill of backup % has no audit record in this transaction', NEW.backup_id
      USING ERRCODE = 'insufficient_privilege',
            HINT = 'write the audit record with the drill row (Trail::append_in)';
  END IF;
  RETURN NEW;
END
$$;

CREATE TRIGGER drills_need_evidence BEFORE INSERT ON lethe.drills
  FOR EACH ROW EXECUTE FUNCTION lethe.drills_need_evidence();

-- Backups join the copies catalog. A backup holds every order that was in the database at its
-- snapshot; lethe.copy_orders does not list them (that would copy the order table per
-- backup): a request asks for the backups taken before its erase (store/copies.cpp).
CREATE OR REPLACE VIEW lethe.copies AS
  SELECT 'archive'::text AS kind, archive_id AS copy_id, path, size_bytes, sha256,
         retention_until, state, created_at, destroyed_at
  FROM lethe.archives
  UNION ALL
  SELECT 'backup'::text, backup_id, path, size_bytes, sha256,
         (retention_until AT TIME ZONE 'UTC')::date, state, snapshot_at, destroyed_at
  FROM lethe.backups;

REVOKE ALL ON lethe.copies FROM PUBLIC;

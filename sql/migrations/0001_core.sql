-- lethe's own schema, version 1: schema bookkeeping, job runs and the append-only audit log.
-- Applied by `lethe migrate` in one transaction; the version row is written by lethe.

CREATE TABLE lethe.job_runs (
  run_id         bigserial PRIMARY KEY,
  job            text        NOT NULL,
  started_at     timestamptz NOT NULL DEFAULT now(),
  finished_at    timestamptz,
  actor          text        NOT NULL,
  os_user        text        NOT NULL,
  unit           text        NOT NULL DEFAULT '',
  lethe_version  text        NOT NULL,
  pii_map_digest text,
  options        text        NOT NULL DEFAULT '{}' CHECK (options::jsonb IS NOT NULL),
  outcome        text        NOT NULL DEFAULT 'running'
                 CHECK (outcome IN ('running', 'done', 'refused', 'failed', 'interrupted')),
  exit_reason    text,
  counts         text        NOT NULL DEFAULT '{}' CHECK (counts::jsonb IS NOT NULL)
);
CREATE INDEX job_runs_job_started ON lethe.job_runs (job, started_at DESC);

-- Evidence for auditors (C13, C14, C17). Each row carries SHA-256 over its own content and the
-- previous row's hash; JSON is kept as the exact text that was hashed.
CREATE TABLE lethe.audit_log (
  seq          bigint      PRIMARY KEY CHECK (seq > 0),
  recorded_at  timestamptz NOT NULL,
  kind         text        NOT NULL CHECK (kind IN ('run', 'refusal', 'alarm', 'manual')),
  job          text        NOT NULL,
  actor        text        NOT NULL,
  os_user      text        NOT NULL,
  unit         text        NOT NULL,
  run_id       bigint,
  outcome      text        NOT NULL,
  exit_reason  text        NOT NULL,
  counts       text        NOT NULL CHECK (counts::jsonb IS NOT NULL),
  details      text        NOT NULL CHECK (details::jsonb IS NOT NULL),
  prev_hash    text        NOT NULL,
  hash         text        NOT NULL UNIQUE
);

CREATE FUNCTION lethe.audit_log_is_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'lethe.audit_log is append-only: % refused', TG_OP
    USING ERRCODE = 'insufficient_privilege',
          HINT = 'audit records are kept for the agreement plus 12 months (C17) and never changed';
END
$$;

CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON lethe.audit_log
  FOR EACH ROW EXECUTE FUNCTION lethe.audit_log_is_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON lethe.audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION lethe.audit_log_is_append_only();

REVOKE ALL ON ALL TABLES IN SCHEMA lethe FROM PUBLIC;
REVOKE ALL ON SCHEMA lethe FROM PUBLIC;

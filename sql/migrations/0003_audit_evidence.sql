-- lethe's schema, version 3: evidence that adds up (issues #8 and #15).
--
-- 1. Every audit record names the database role that inserted it, stamped by the server
--    (session_user), whatever the client sent; records from before this migration keep a NULL
--    role and verify with hash version 1, every later one with version 2, which covers the role.
-- 2. A killed run is closed by the next run as 'abandoned', with counts from what committed:
--    each unit of work adds its counts to lethe.run_progress in its own transaction.

ALTER TABLE lethe.audit_log ADD COLUMN db_role text;

CREATE FUNCTION lethe.audit_log_stamp_role() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  NEW.db_role := session_user;
  RETURN NEW;
END
$$;

CREATE TRIGGER audit_log_stamp_role BEFORE INSERT ON lethe.audit_log
  FOR EACH ROW EXECUTE FUNCTION lethe.audit_log_stamp_role();

ALTER TABLE lethe.job_runs DROP CONSTRAINT job_runs_outcome_check;
ALTER TABLE lethe.job_runs ADD CONSTRAINT job_runs_outcome_check
  CHECK (outcome IN ('running', 'done', 'refused', 'failed', 'interrupted', 'abandoned'));
-- The server process that began the run, for the operator; whether a run is alive is decided by
-- the shared advisory lock (classid hashtext('lethe.run'), objid the run id) that every session
-- of the run holds until it ends.
ALTER TABLE lethe.job_runs ADD COLUMN backend_pid integer;
ALTER TABLE lethe.job_runs ADD COLUMN backend_start timestamptz;
CREATE INDEX job_runs_running ON lethe.job_runs (run_id) WHERE outcome = 'running';

-- What a run has done, written in the same transaction as the work (one upsert per batch), one
-- row per run, worker connection and item ("orders_done", "rows.orders", …).
CREATE TABLE lethe.run_progress (
  run_id  bigint  NOT NULL,
  worker  integer NOT NULL,
  item    text    NOT NULL,
  n       bigint  NOT NULL,
  PRIMARY KEY (run_id, worker, item)
);

REVOKE ALL ON lethe.run_progress FROM PUBLIC;

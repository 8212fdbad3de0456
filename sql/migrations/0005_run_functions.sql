-- lethe's schema, version 5: run records are evidence too (DESIGN.md decision 10).
--
-- Before, the job roles could UPDATE lethe.job_runs and lethe.run_progress: a job role could
-- mark any run done, rewrite its counts, or shrink the progress an abandoned run is closed
-- with. Now a job role inserts a run (its outcome can only start as 'running') and reads; a run
-- is closed only through lethe.close_run, which takes the outcome and counts from the closing
-- audit record written in the same transaction, and progress only grows, through
-- lethe.add_run_progress, and only for a run that is still running. `lethe grants` revokes the
-- old grants from lethe_purge and lethe_archive and grants these.

REVOKE ALL ON lethe.job_runs, lethe.run_progress FROM PUBLIC;

-- Ends run `p_run_id` with what its closing audit record `p_seq` says, when that record was
-- inserted by the current transaction for that run. Returns false when the run had already
-- ended (e.g. closed as abandoned by another run): its row is left as it is.
CREATE FUNCTION lethe.close_run(p_run_id bigint, p_seq bigint)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  l lethe.audit_log;
BEGIN
  SELECT * INTO l FROM lethe.audit_log
   WHERE seq = p_seq AND run_id = p_run_id AND xmin = pg_current_xact_id()::xid;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'run % has no closing audit record in this transaction', p_run_id
      USING ERRCODE = 'insufficient_privilege',
            HINT = 'a run is closed with the audit record that says how it ended '
                   '(Trail::append_in with Closes::run)';
  END IF;
  UPDATE lethe.job_runs
     SET finished_at = now(),
         outcome = CASE WHEN l.outcome IN ('done', 'refused', 'interrupted', 'abandoned')
                        THEN l.outcome ELSE 'failed' END,
         exit_reason = l.exit_reason,
         counts = l.counts
   WHERE run_id = p_run_id AND outcome = 'running';
  RETURN FOUND;
END
$$;

-- Adds non-negative amounts to run `p_run_id`'s progress (one row per worker and item), in the
-- caller's transaction: the transaction of the work they count.
CREATE FUNCTION lethe.add_run_progress(p_run_id bigint, p_worker integer, p_items text[],
                                       p_amounts bigint[])
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF cardinality(p_items) IS DISTINCT FROM cardinality(p_amounts)
     OR EXISTS (SELECT 1 FROM unnest(p_amounts) AS a(n) WHERE n IS NULL OR n < 0) THEN
    RAISE EXCEPTION 'progress of run % must be one non-negative amount per item', p_run_id
      USING ERRCODE = 'insufficient_privilege', HINT = 'progress only grows';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM lethe.job_runs WHERE run_id = p_run_id AND outcome = 'running')
  THEN
    RAISE EXCEPTION 'run % is not running', p_run_id
      USING ERRCODE = 'insufficient_privilege',
            HINT = 'progress is added by the batches of a running run';
  END IF;
  INSERT INTO lethe.run_progress AS p (run_id, worker, item, n)
  SELECT p_run_id, p_worker, u.item, u.n FROM unnest(p_items, p_amounts) AS u(item, n)
  ON CONFLICT (run_id, worker, item) DO UPDATE SET n = p.n + excluded.n;
END
$$;

REVOKE ALL ON FUNCTION lethe.close_run(bigint, bigint),
  lethe.add_run_progress(bigint, integer, text[], bigint[]) FROM PUBLIC;

-- Roles made by an earlier `lethe grants` lose what they could change and may call the two
-- functions at once, so runs keep working before `lethe grants` is run again (which also
-- narrows their INSERT on job_runs to the columns a run begins with).
DO $$
DECLARE
  r text;
BEGIN
  FOREACH r IN ARRAY ARRAY['lethe_purge', 'lethe_archive'] LOOP
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
      EXECUTE format('REVOKE UPDATE, DELETE, TRUNCATE ON lethe.job_runs, lethe.run_progress '
                     'FROM %I', r);
      EXECUTE format('GRANT EXECUTE ON FUNCTION lethe.close_run(bigint, bigint), '
                     'lethe.add_run_progress(bigint, integer, text[], bigint[]) TO %I', r);
    END IF;
  END LOOP;
END
$$;

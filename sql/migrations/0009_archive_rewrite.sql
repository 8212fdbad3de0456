-- lethe's schema, version 9: a spooled archive rewritten without a deletion request's orders
-- (issue #11). `lethe archive rewrite` writes a new archive without the request's orders,
-- records it, then destroys the old one. That destruction comes before the old archive's
-- retention ends, which schema 4 refuses for good reason; it is allowed here only when the
-- replacement keeps the hold and the request accounts for every order it lacks:
-- - the `destroyed` record is an `archive rewrite` one naming the replacement (replaced_by);
-- - the replacement is cataloged with its evidence, an `archive rewrite` archive_written record
--   naming this archive as rewritten_from, and is spooled and retained at least as long;
-- - the request it names (excluded_request) has erased its live rows, and its resolved orders,
--   which lethe now keeps until the request is complete, hold every order this archive has and
--   the replacement lacks; the replacement holds no order this archive did not.
-- The archive job's role can write audit records and catalog rows but not a request's
-- resolved orders, so it alone cannot invent a rewrite; the request job's role can insert them
-- (it registers requests), so the two roles' credentials together could. Everything else about
-- a state change is as in schema 4.
CREATE OR REPLACE FUNCTION lethe.archive_set_state(p_archive_id text, p_state text, p_seq bigint)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  a lethe.archives;
  l lethe.audit_log;
  n lethe.archives;
  w lethe.audit_log;
  q lethe.requests;
  replaced boolean := false;
BEGIN
  SELECT * INTO a FROM lethe.archives WHERE archive_id = p_archive_id FOR UPDATE;
  IF NOT FOUND OR NOT ((a.state = 'spooled' AND p_state IN ('cold', 'destroyed'))
                       OR (a.state = 'cold' AND p_state = 'destroyed')) THEN
    RAISE EXCEPTION 'archive % cannot move to state %', p_archive_id, p_state
      USING ERRCODE = 'insufficient_privilege',
            HINT = 'states go spooled -> cold -> destroyed';
  END IF;
  l := lethe.archive_evidence_in_this_transaction(p_seq, p_state, p_archive_id);
  IF l.seq IS NOT NULL AND p_state = 'destroyed' AND a.state = 'spooled'
     AND l.job = 'archive rewrite' THEN
    SELECT * INTO n FROM lethe.archives
     WHERE archive_id = (l.details::jsonb ->> 'replaced_by') AND archive_id <> p_archive_id;
    SELECT * INTO w FROM lethe.audit_log
     WHERE seq = n.evidence_seq AND exit_reason = 'archive_written';
    SELECT * INTO q FROM lethe.requests
     WHERE request_id::text = (w.details::jsonb ->> 'excluded_request')
       AND state IN ('live_erased', 'complete');
    IF n.archive_id IS NULL OR w.seq IS NULL OR n.state <> 'spooled'
       OR n.retention_until < a.retention_until OR n.orders >= a.orders
       OR w.job IS DISTINCT FROM 'archive rewrite'
       OR (w.details::jsonb ->> 'archive_id') IS DISTINCT FROM n.archive_id
       OR (w.details::jsonb ->> 'rewritten_from') IS DISTINCT FROM p_archive_id
       OR (l.details::jsonb ->> 'excluded_request') IS DISTINCT FROM
          (w.details::jsonb ->> 'excluded_request')
       OR q.request_id IS NULL
       OR EXISTS (SELECT order_key FROM lethe.archived_orders WHERE archive_id = n.archive_id
                  EXCEPT SELECT order_key FROM lethe.archived_orders WHERE archive_id = a.archive_id)
       OR EXISTS (SELECT order_key FROM lethe.archived_orders WHERE archive_id = a.archive_id
                  EXCEPT SELECT order_key FROM lethe.archived_orders WHERE archive_id = n.archive_id
                  EXCEPT SELECT order_key FROM lethe.request_orders
                          WHERE request_id = q.request_id) THEN
      RAISE EXCEPTION 'archive % has no recorded replacement that keeps its hold', p_archive_id
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'record the rewritten archive (archive_written, rewritten_from) first';
    END IF;
    replaced := true;
  END IF;
  IF p_state = 'destroyed' AND NOT replaced AND a.retention_until >= current_date THEN
    RAISE EXCEPTION 'archive % is retained until %', p_archive_id, a.retention_until
      USING ERRCODE = 'insufficient_privilege',
            HINT = 'an archive is destroyed only after its retention ends (by the server clock)';
  END IF;
  IF l.seq IS NULL OR (l.details::jsonb ->> 'from') IS DISTINCT FROM a.state
     OR (p_state = 'destroyed' AND NOT replaced AND l.job IS DISTINCT FROM
         CASE a.state WHEN 'spooled' THEN 'archive expire' ELSE 'archive mark' END) THEN
    RAISE EXCEPTION 'archive % has no audit record of this change in this transaction',
      p_archive_id
      USING ERRCODE = 'insufficient_privilege',
            HINT = 'write the audit record with the change (Trail::append_in); a spooled '
                   'archive is destroyed by `archive expire` or `archive rewrite`, a cold one '
                   'by `archive mark-destroyed`';
  END IF;
  UPDATE lethe.archives
     SET state = p_state, state_seq = p_seq,
         destroyed_at = CASE WHEN p_state = 'destroyed' THEN l.recorded_at END,
         destroyed_by = CASE WHEN p_state = 'destroyed' THEN l.actor END,
         destroyed_by_role = CASE WHEN p_state = 'destroyed' THEN l.db_role END
   WHERE archive_id = p_archive_id;
END
$$;

-- lethe's schema, version 9: a spooled archive rewritten without a deletion request's orders
-- (issue #11). `lethe archive rewrite` writes a new archive without the request's orders,
-- records it, then destroys the old one. That destruction comes before the old archive's
-- retention ends, which schema 4 refuses for good reason; it is allowed here only when the
-- replacement keeps the hold: recorded with its evidence (archive_written, naming the old
-- archive as rewritten_from), spooled, and retained at least as long. Everything else about a
-- state change is as in schema 4: the audit record is written in the same transaction, and
-- who destroyed it comes from that record.
CREATE OR REPLACE FUNCTION lethe.archive_set_state(p_archive_id text, p_state text, p_seq bigint)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  a lethe.archives;
  l lethe.audit_log;
  n lethe.archives;
  w lethe.audit_log;
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
    IF n.archive_id IS NULL OR w.seq IS NULL OR n.state <> 'spooled'
       OR n.retention_until < a.retention_until
       OR (w.details::jsonb ->> 'archive_id') IS DISTINCT FROM n.archive_id
       OR (w.details::jsonb ->> 'rewritten_from') IS DISTINCT FROM p_archive_id THEN
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

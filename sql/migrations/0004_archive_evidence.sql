-- lethe's schema, version 4: the archive catalog as evidence (issue #8 items 4 and 7, #15
-- item 3; DESIGN.md decision 10).
--
-- Job roles insert a catalog row but update none of its evidence: an archive's orders and each
-- change of its state (spooled -> cold -> destroyed) go through the two narrow functions below.
-- Each function requires the audit record of what it does, written by lethe in the same
-- transaction (Trail::append_in), and takes the facts it records (who destroyed it, when) from
-- that record. The chain hash of an audit record is computed by lethe, not by SQL, so lethe
-- writes the record and the function checks it: one hashing implementation, and no state
-- change without its evidence committing with it.

ALTER TABLE lethe.archives
  ADD COLUMN evidence_seq bigint, -- the archive_written audit record
  ADD COLUMN state_seq    bigint; -- the audit record of the newest state change

-- The audit record `p_seq`, if it was inserted by the current transaction and says `p_reason`
-- about archive `p_archive_id`.
CREATE FUNCTION lethe.archive_evidence_in_this_transaction(p_seq bigint, p_reason text,
                                                           p_archive_id text)
RETURNS lethe.audit_log
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT l.* FROM lethe.audit_log l
   WHERE l.seq = p_seq AND l.exit_reason = p_reason
     AND (l.details::jsonb ->> 'archive_id') = p_archive_id
     AND l.xmin = pg_current_xact_id()::xid
$$;

-- Lists the orders archive `p_archive_id` holds, once, after its archive_written record `p_seq`
-- (same archive, size, SHA-256 and number of orders) was written in this transaction. Only
-- orders listed here are released from their hold to the purge.
CREATE FUNCTION lethe.archive_orders(p_archive_id text, p_seq bigint, p_keys text[])
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  a lethe.archives;
  l lethe.audit_log;
BEGIN
  SELECT * INTO a FROM lethe.archives WHERE archive_id = p_archive_id FOR UPDATE;
  IF NOT FOUND OR a.state <> 'spooled' OR a.evidence_seq IS NOT NULL THEN
    RAISE EXCEPTION 'archive % is not a new spooled archive', p_archive_id
      USING ERRCODE = 'insufficient_privilege',
            HINT = 'an archive lists its orders once, in the transaction that records it';
  END IF;
  l := lethe.archive_evidence_in_this_transaction(p_seq, 'archive_written', p_archive_id);
  IF l.seq IS NULL OR (l.details::jsonb ->> 'sha256') IS DISTINCT FROM a.sha256
     OR (l.counts::jsonb ->> 'bytes')::bigint IS DISTINCT FROM a.size_bytes
     OR (l.counts::jsonb ->> 'orders')::bigint IS DISTINCT FROM a.orders
     OR coalesce(cardinality(p_keys), 0) <> a.orders THEN
    RAISE EXCEPTION 'archive % has no matching archive_written record in this transaction',
      p_archive_id
      USING ERRCODE = 'insufficient_privilege',
            HINT = 'write the audit record with the catalog row (Trail::append_in)';
  END IF;
  INSERT INTO lethe.archived_orders (order_key, archive_id)
    SELECT k, p_archive_id FROM unnest(p_keys) k ORDER BY 1;
  UPDATE lethe.archives SET evidence_seq = p_seq WHERE archive_id = p_archive_id;
  RETURN a.orders;
END
$$;

-- Moves archive `p_archive_id` to state `p_state` ('cold' or 'destroyed'), after its audit
-- record `p_seq` (exit_reason = the new state, details: archive_id and "from") was written in
-- this transaction. destroyed_at and destroyed_by come from that record.
CREATE FUNCTION lethe.archive_set_state(p_archive_id text, p_state text, p_seq bigint)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  a lethe.archives;
  l lethe.audit_log;
BEGIN
  SELECT * INTO a FROM lethe.archives WHERE archive_id = p_archive_id FOR UPDATE;
  IF NOT FOUND OR NOT ((a.state = 'spooled' AND p_state IN ('cold', 'destroyed'))
                       OR (a.state = 'cold' AND p_state = 'destroyed')) THEN
    RAISE EXCEPTION 'archive % cannot move to state %', p_archive_id, p_state
      USING ERRCODE = 'insufficient_privilege',
            HINT = 'states go spooled -> cold -> destroyed';
  END IF;
  l := lethe.archive_evidence_in_this_transaction(p_seq, p_state, p_archive_id);
  IF l.seq IS NULL OR (l.details::jsonb ->> 'from') IS DISTINCT FROM a.state THEN
    RAISE EXCEPTION 'archive % has no audit record of this change in this transaction',
      p_archive_id
      USING ERRCODE = 'insufficient_privilege',
            HINT = 'write the audit record with the change (Trail::append_in)';
  END IF;
  UPDATE lethe.archives
     SET state = p_state, state_seq = p_seq,
         destroyed_at = CASE WHEN p_state = 'destroyed' THEN l.recorded_at END,
         destroyed_by = CASE WHEN p_state = 'destroyed' THEN l.actor END
   WHERE archive_id = p_archive_id;
END
$$;

REVOKE ALL ON FUNCTION lethe.archive_evidence_in_this_transaction(bigint, text, text),
  lethe.archive_orders(text, bigint, text[]), lethe.archive_set_state(text, text, bigint)
  FROM PUBLIC;

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
  ADD COLUMN evidence_seq      bigint, -- the archive_written audit record
  ADD COLUMN state_seq         bigint, -- the audit record of the newest state change
  ADD COLUMN destroyed_by_role text;  -- the server-stamped db_role of the destroyed record

-- Nobody but the owner and the grants below (which `lethe grants` rewrites: it revokes the
-- broad grants of schema 2 before it grants the narrow ones) touches the catalog.
REVOKE ALL ON lethe.archives, lethe.archived_orders FROM PUBLIC;

-- Archives recorded before this migration name their archive_written record when exactly one
-- says what the catalog row says; an order is released from its hold only through an archive
-- with its evidence, so those without stay unreleased and `archive verify` names them.
UPDATE lethe.archives a
   SET evidence_seq = (SELECT min(l.seq) FROM lethe.audit_log l
                        WHERE l.exit_reason = 'archive_written'
                          AND (l.details::jsonb ->> 'archive_id') = a.archive_id
                          AND (l.details::jsonb ->> 'sha256') = a.sha256
                          AND (l.counts::jsonb ->> 'bytes')::bigint = a.size_bytes
                       HAVING count(*) = 1);

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
-- this transaction. destroyed_at, destroyed_by (the actor lethe wrote) and destroyed_by_role
-- (the role the server stamped) come from that record. A spooled archive is destroyed only by
-- `archive expire`, which overwrites the file in the same transaction; a cold one only by the
-- operator's `archive mark-destroyed`. Nothing is destroyed before its retention ends by the
-- server's clock: a tax archive destroyed early is a compliance failure, whatever a client says.
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
  IF p_state = 'destroyed' AND a.retention_until >= current_date THEN
    RAISE EXCEPTION 'archive % is retained until %', p_archive_id, a.retention_until
      USING ERRCODE = 'insufficient_privilege',
            HINT = 'an archive is destroyed only after its retention ends (by the server clock)';
  END IF;
  l := lethe.archive_evidence_in_this_transaction(p_seq, p_state, p_archive_id);
  IF l.seq IS NULL OR (l.details::jsonb ->> 'from') IS DISTINCT FROM a.state
     OR (p_state = 'destroyed' AND l.job IS DISTINCT FROM
         CASE a.state WHEN 'spooled' THEN 'archive expire' ELSE 'archive mark' END) THEN
    RAISE EXCEPTION 'archive % has no audit record of this change in this transaction',
      p_archive_id
      USING ERRCODE = 'insufficient_privilege',
            HINT = 'write the audit record with the change (Trail::append_in); a spooled '
                   'archive is destroyed by `archive expire`, a cold one by `archive '
                   'mark-destroyed`';
  END IF;
  UPDATE lethe.archives
     SET state = p_state, state_seq = p_seq,
         destroyed_at = CASE WHEN p_state = 'destroyed' THEN l.recorded_at END,
         destroyed_by = CASE WHEN p_state = 'destroyed' THEN l.actor END,
         destroyed_by_role = CASE WHEN p_state = 'destroyed' THEN l.db_role END
   WHERE archive_id = p_archive_id;
END
$$;

REVOKE ALL ON FUNCTION lethe.archive_evidence_in_this_transaction(bigint, text, text),
  lethe.archive_orders(text, bigint, text[]), lethe.archive_set_state(text, text, bigint)
  FROM PUBLIC;

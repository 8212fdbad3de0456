-- lethe's schema, version 10: incidents (C18) and the state the metrics report (C15).
--
-- Every alarm record opens an incident, or adds to the open incident of the same kind (one job
-- and reason: a failing nightly drill is one incident, not seven). The trigger below does it in
-- the alarm's own transaction, whichever role wrote the alarm and whenever a spooled alarm
-- reaches the table, so no alarm is without its incident. Amazon must be told of a security
-- incident within 24 hours: each incident carries that clock (notify_by) from the moment it
-- opened. An operator's change of an incident (acknowledged, notified, a note, closed, or an
-- incident opened by hand) goes through lethe.incident_change, which requires the change's
-- audit record in the same transaction, as the archive and backup catalogs do (decision 10).

CREATE TABLE lethe.incidents (
  incident_id    bigserial   PRIMARY KEY,
  -- "<job>: <reason>" of the alarm that opened it, or "manual: <type>"
  kind           text        NOT NULL CHECK (kind <> ''),
  opened_at      timestamptz NOT NULL,
  opened_seq     bigint      NOT NULL,
  opened_by      text        NOT NULL,
  notify_by      timestamptz NOT NULL,
  alarms         bigint      NOT NULL DEFAULT 1 CHECK (alarms >= 0),
  last_alarm_seq bigint      NOT NULL,
  last_alarm_at  timestamptz NOT NULL,
  state          text        NOT NULL DEFAULT 'open'
                 CHECK (state IN ('open', 'acknowledged', 'closed')),
  acked_at       timestamptz,
  acked_by       text,
  notified_at    timestamptz, -- when Amazon was told, as the operator stated it
  notified_by    text,
  notify_channel text,
  notified_seq   bigint,
  closed_at      timestamptz,
  closed_by      text,
  closed_seq     bigint,
  -- closed without telling Amazon: the operator's judgement that no notice was owed
  notice_not_required boolean NOT NULL DEFAULT false,
  CHECK ((state = 'closed') = (closed_at IS NOT NULL))
);
-- At most one incident per kind that alarms still add to: open and not yet notified. Once
-- Amazon was told of it, a new alarm of its kind is a new incident with its own clock.
CREATE UNIQUE INDEX incidents_one_open_per_kind ON lethe.incidents (kind)
  WHERE state <> 'closed' AND notified_at IS NULL AND kind NOT LIKE 'manual: %';

CREATE TABLE lethe.incident_notes (
  incident_id bigint      NOT NULL REFERENCES lethe.incidents,
  seq         bigint      NOT NULL PRIMARY KEY, -- its audit record
  noted_at    timestamptz NOT NULL,
  noted_by    text        NOT NULL,
  kind        text        NOT NULL CHECK (kind IN ('investigation', 'remediation')),
  note        text        NOT NULL CHECK (note <> '')
);

REVOKE ALL ON lethe.incidents, lethe.incident_notes FROM PUBLIC;

-- An alarm that waited in the spool (the database was unreachable) happened when it was
-- spooled, not when it was moved in: its incident's clock starts then.
CREATE FUNCTION lethe.incident_from_alarm() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  k text := NEW.job || ': ' || NEW.exit_reason;
  spooled text := NEW.details::jsonb ->> 'spooled_at_unix';
  at timestamptz := NEW.recorded_at;
BEGIN
  IF spooled ~ '^[0-9]{1,12}$' THEN
    at := least(at, to_timestamp(spooled::bigint));
  END IF;
  IF k LIKE 'manual: %' THEN
    k := 'alarm ' || k; -- never the kind of an operator's own incident
  END IF;
  UPDATE lethe.incidents
     SET alarms = alarms + 1, last_alarm_seq = NEW.seq,
         last_alarm_at = greatest(last_alarm_at, at),
         opened_at = least(opened_at, at), notify_by = least(notify_by, at + interval '24 hours')
   WHERE kind = k AND state <> 'closed' AND notified_at IS NULL;
  IF NOT FOUND THEN
    INSERT INTO lethe.incidents (kind, opened_at, opened_seq, opened_by, notify_by,
                                 last_alarm_seq, last_alarm_at)
    VALUES (k, at, NEW.seq, NEW.actor, at + interval '24 hours', NEW.seq, at);
  END IF;
  RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION lethe.incident_from_alarm() FROM PUBLIC;

CREATE TRIGGER audit_log_alarm_opens_incident AFTER INSERT ON lethe.audit_log
  FOR EACH ROW WHEN (NEW.kind = 'alarm') EXECUTE FUNCTION lethe.incident_from_alarm();

-- Applies the change that audit record `p_seq` states, written in this transaction by the
-- caller: job 'incident', exit_reason the change (open, ack, notify, note, close), details
-- naming the incident and what the change needs. Returns the incident's id.
CREATE FUNCTION lethe.incident_change(p_seq bigint) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  l lethe.audit_log;
  d jsonb;
  i lethe.incidents;
  id bigint;
BEGIN
  SELECT * INTO l FROM lethe.audit_log
   WHERE seq = p_seq AND job = 'incident' AND kind = 'manual' AND xmin = pg_current_xact_id()::xid;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no incident audit record % in this transaction', p_seq
      USING ERRCODE = 'insufficient_privilege',
            HINT = 'write the audit record with the change (Trail::append_in)';
  END IF;
  d := l.details::jsonb;
  IF l.exit_reason = 'open' THEN
    INSERT INTO lethe.incidents (kind, opened_at, opened_seq, opened_by, notify_by, alarms,
                                 last_alarm_seq, last_alarm_at)
    VALUES ('manual: ' || (d ->> 'type'), l.recorded_at, l.seq, l.actor,
            l.recorded_at + interval '24 hours', 0, l.seq, l.recorded_at)
    RETURNING incident_id INTO id;
    RETURN id;
  END IF;
  SELECT * INTO i FROM lethe.incidents WHERE incident_id = (d ->> 'incident_id')::bigint
     FOR UPDATE;
  IF NOT FOUND OR i.state = 'closed' THEN
    RAISE EXCEPTION 'incident % is not open', d ->> 'incident_id'
      USING ERRCODE = 'insufficient_privilege', HINT = 'a closed incident does not change';
  END IF;
  IF l.exit_reason = 'ack' THEN
    IF i.state <> 'open' THEN
      RAISE EXCEPTION 'incident % is already acknowledged', i.incident_id
        USING ERRCODE = 'insufficient_privilege';
    END IF;
    UPDATE lethe.incidents SET state = 'acknowledged', acked_at = l.recorded_at,
                               acked_by = l.actor
     WHERE incident_id = i.incident_id;
  ELSIF l.exit_reason = 'notify' THEN
    IF i.notified_at IS NOT NULL OR (d ->> 'notified_at')::timestamptz > l.recorded_at
       OR (d ->> 'notified_at')::timestamptz < i.opened_at
       OR coalesce(d ->> 'channel', '') = '' THEN
      RAISE EXCEPTION 'incident %: notice already recorded, or its time or channel is wrong',
        i.incident_id USING ERRCODE = 'insufficient_privilege';
    END IF;
    UPDATE lethe.incidents SET notified_at = (d ->> 'notified_at')::timestamptz,
                               notified_by = l.actor, notify_channel = d ->> 'channel',
                               notified_seq = l.seq
     WHERE incident_id = i.incident_id;
  ELSIF l.exit_reason = 'note' THEN
    INSERT INTO lethe.incident_notes (incident_id, seq, noted_at, noted_by, kind, note)
    VALUES (i.incident_id, l.seq, l.recorded_at, l.actor, d ->> 'note_kind', d ->> 'note');
  ELSIF l.exit_reason = 'close' THEN
    IF i.notified_at IS NULL AND NOT coalesce((d ->> 'notice_not_required')::boolean, false) THEN
      RAISE EXCEPTION 'incident % was not notified', i.incident_id
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'record the notice first, or state that none was owed';
    END IF;
    UPDATE lethe.incidents SET state = 'closed', closed_at = l.recorded_at, closed_by = l.actor,
                               closed_seq = l.seq,
                               notice_not_required = i.notified_at IS NULL
     WHERE incident_id = i.incident_id;
  ELSE
    RAISE EXCEPTION 'unknown incident change %', l.exit_reason
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN i.incident_id;
END
$$;
REVOKE ALL ON FUNCTION lethe.incident_change(bigint) FROM PUBLIC;

-- What `lethe check` counted each time it ran as of now: PII past its deadline over time, for the
-- auditor's report (`lethe report`). Counts and table names only.
CREATE TABLE lethe.overdue_samples (
  sampled_at     timestamptz NOT NULL DEFAULT now(),
  table_name     text        NOT NULL,
  overdue        bigint      NOT NULL CHECK (overdue >= 0),
  held           bigint      NOT NULL CHECK (held >= 0),
  oldest_overdue_seconds double precision,
  PRIMARY KEY (sampled_at, table_name)
);
REVOKE ALL ON lethe.overdue_samples FROM PUBLIC;

-- A run's volume, the one figure the volume alarm compares: the orders it processed (purge,
-- archive, request) or, for a backup, its bytes; NULL for a run that has none.
CREATE FUNCTION lethe.run_volume(p_counts text) RETURNS double precision
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT coalesce(c ->> 'orders_done', c ->> 'orders_archived', c ->> 'orders_erased',
                  c ->> 'bytes')::double precision
    FROM (SELECT p_counts::jsonb AS c) x
$$;

-- The volume alarm's figures for run `p_run_id` ending with counts `p_counts`: its volume, the
-- median of the same job's last 14 successful runs before it that have one, and how many
-- there were.
CREATE FUNCTION lethe.run_volume_baseline(p_run_id bigint, p_counts text,
                                          OUT volume double precision,
                                          OUT median double precision, OUT runs bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  WITH prev AS (
    SELECT lethe.run_volume(r.counts) AS v FROM lethe.job_runs r
     WHERE r.job = (SELECT job FROM lethe.job_runs WHERE run_id = p_run_id)
       AND r.run_id < p_run_id AND r.outcome = 'done' AND lethe.run_volume(r.counts) IS NOT NULL
     ORDER BY r.run_id DESC LIMIT 14)
  SELECT lethe.run_volume(p_counts),
         (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY v) FROM prev),
         (SELECT count(*) FROM prev)
$$;
REVOKE ALL ON FUNCTION lethe.run_volume_baseline(bigint, text) FROM PUBLIC;

-- Everything the metrics file says about lethe's own state, aggregates only (no identifier,
-- no PII): one row per sample, its labels as a JSON object. Any lethe role may call it, so
-- every run writes the same file whatever its role may read.
CREATE FUNCTION lethe.metrics()
RETURNS TABLE (metric text, labels text, value double precision)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  WITH runs AS (
    SELECT job, outcome, started_at, finished_at, counts FROM lethe.job_runs
     WHERE outcome <> 'running'),
  last_run AS (
    SELECT DISTINCT ON (job) job, extract(epoch FROM finished_at - started_at) AS d
      FROM runs ORDER BY job, finished_at DESC),
  -- The last verify that ran (its run or alarm record; a refusal, such as a lock held, did
  -- not verify anything). It passed only when it checked everything it was to check.
  verifies AS (
    SELECT DISTINCT ON (job) job, recorded_at,
           kind = 'run' AND coalesce((counts::jsonb ->> 'not_reached')::bigint, 0) = 0
                        AND coalesce((counts::jsonb ->> 'skipped')::bigint, 0) = 0 AS passed
      FROM lethe.audit_log
     WHERE job IN ('archive verify', 'backup verify', 'audit verify') AND kind IN ('run', 'alarm')
     ORDER BY job, seq DESC),
  open_req AS (
    SELECT state, notice_at FROM lethe.requests
     WHERE state IN ('received', 'executing', 'live_erased'))
  SELECT 'lethe_job_last_success_timestamp_seconds', jsonb_build_object('lethe_job', job)::text,
         extract(epoch FROM max(finished_at))::double precision
    FROM runs WHERE outcome = 'done' GROUP BY job
  UNION ALL
  SELECT 'lethe_job_last_failure_timestamp_seconds', jsonb_build_object('lethe_job', job)::text,
         extract(epoch FROM max(finished_at))::double precision
    FROM runs WHERE outcome IN ('failed', 'refused', 'abandoned', 'interrupted') GROUP BY job
  UNION ALL
  SELECT 'lethe_job_last_duration_seconds', jsonb_build_object('lethe_job', job)::text,
         d::double precision FROM last_run
  UNION ALL
  SELECT 'lethe_job_runs_total', jsonb_build_object('lethe_job', job, 'outcome', outcome)::text,
         count(*) FROM runs GROUP BY job, outcome
  UNION ALL
  SELECT 'lethe_job_orders_processed_total', jsonb_build_object('lethe_job', job)::text,
         coalesce(sum(coalesce(c ->> 'orders_done', c ->> 'orders_archived',
                               c ->> 'orders_erased')::double precision), 0)
    FROM (SELECT job, counts::jsonb AS c FROM runs) x GROUP BY job
  UNION ALL
  SELECT 'lethe_job_rows_processed_total', jsonb_build_object('lethe_job', job)::text,
         coalesce(sum(coalesce((c ->> 'rows_sanitized')::double precision, 0)
                      + coalesce((c ->> 'rows_erased')::double precision, 0)), 0)
    FROM (SELECT job, counts::jsonb AS c FROM runs) x GROUP BY job
  UNION ALL
  SELECT 'lethe_requests_open', jsonb_build_object('state', s)::text,
         (SELECT count(*) FROM open_req WHERE state = s)
    FROM unnest(ARRAY['received', 'executing', 'live_erased']) s
  UNION ALL
  SELECT 'lethe_requests_total', '{}', count(*) FROM lethe.requests
  UNION ALL
  SELECT 'lethe_request_deadline_timestamp_seconds', jsonb_build_object('clock', '72h')::text,
         extract(epoch FROM min(notice_at) + interval '72 hours')::double precision
    FROM open_req WHERE state IN ('received', 'executing') HAVING count(*) > 0
  UNION ALL
  SELECT 'lethe_request_deadline_timestamp_seconds', jsonb_build_object('clock', '90d')::text,
         extract(epoch FROM min(notice_at) + interval '90 days')::double precision
    FROM open_req HAVING count(*) > 0
  UNION ALL
  SELECT 'lethe_archives', jsonb_build_object('state', s)::text,
         (SELECT count(*) FROM lethe.archives WHERE state = s)
    FROM unnest(ARRAY['spooled', 'cold', 'destroyed']) s
  UNION ALL
  SELECT 'lethe_archive_bytes', jsonb_build_object('state', s)::text,
         (SELECT coalesce(sum(size_bytes), 0) FROM lethe.archives WHERE state = s)
    FROM unnest(ARRAY['spooled', 'cold']) s
  UNION ALL
  SELECT 'lethe_archive_newest_timestamp_seconds', '{}',
         extract(epoch FROM max(created_at))::double precision
    FROM lethe.archives HAVING count(*) > 0
  UNION ALL
  SELECT 'lethe_backups', jsonb_build_object('state', s)::text,
         (SELECT count(*) FROM lethe.backups WHERE state = s)
    FROM unnest(ARRAY['spooled', 'cold', 'destroyed']) s
  UNION ALL
  SELECT 'lethe_backup_bytes', jsonb_build_object('state', s)::text,
         (SELECT coalesce(sum(size_bytes), 0) FROM lethe.backups WHERE state = s)
    FROM unnest(ARRAY['spooled', 'cold']) s
  UNION ALL
  SELECT 'lethe_backup_newest_timestamp_seconds', '{}',
         extract(epoch FROM max(created_at))::double precision
    FROM lethe.backups HAVING count(*) > 0
  UNION ALL
  SELECT 'lethe_verify_last_timestamp_seconds', jsonb_build_object('what', split_part(job, ' ', 1))::text,
         extract(epoch FROM recorded_at)::double precision FROM verifies
  UNION ALL
  SELECT 'lethe_verify_last_success', jsonb_build_object('what', split_part(job, ' ', 1))::text,
         CASE WHEN passed THEN 1 ELSE 0 END FROM verifies
  UNION ALL
  SELECT 'lethe_drills_total', jsonb_build_object('result', lower(r))::text,
         (SELECT count(*) FROM lethe.drills WHERE kind = 'drill' AND result = r)
    FROM unnest(ARRAY['SUCCESSFUL', 'FAILED', 'TIMED_OUT']) r
  UNION ALL
  SELECT 'lethe_drill_last_success_timestamp_seconds', '{}',
         extract(epoch FROM max(finished_at))::double precision
    FROM lethe.drills WHERE kind = 'drill' AND result = 'SUCCESSFUL' HAVING count(*) > 0
  UNION ALL
  (SELECT 'lethe_drill_last_rto_seconds', '{}', rto_seconds FROM lethe.drills
    WHERE kind = 'drill' AND result = 'SUCCESSFUL' AND rto_seconds IS NOT NULL
    ORDER BY finished_at DESC LIMIT 1)
  UNION ALL
  SELECT 'lethe_audit_records_total', '{}', count(*) FROM lethe.audit_log
  UNION ALL
  SELECT 'lethe_alarms_total', '{}', count(*) FROM lethe.audit_log WHERE kind = 'alarm'
  UNION ALL
  SELECT 'lethe_incidents_open', '{}', count(*) FROM lethe.incidents WHERE state <> 'closed'
  UNION ALL
  SELECT 'lethe_incidents_notify_overdue', '{}', count(*) FROM lethe.incidents
   WHERE state <> 'closed' AND notified_at IS NULL AND notify_by < now()
  UNION ALL
  SELECT 'lethe_incident_notify_deadline_timestamp_seconds', '{}',
         extract(epoch FROM min(notify_by))::double precision
    FROM lethe.incidents WHERE state <> 'closed' AND notified_at IS NULL HAVING count(*) > 0
  UNION ALL
  SELECT 'lethe_metrics_generated_timestamp_seconds', '{}',
         extract(epoch FROM now())::double precision
$$;
REVOKE ALL ON FUNCTION lethe.metrics() FROM PUBLIC;

-- Roles made by an earlier `lethe grants` may write metrics at once; the monitor also reads
-- incidents (`lethe check`) and records its audit verifies.
DO $$
DECLARE
  r text;
BEGIN
  FOREACH r IN ARRAY ARRAY['lethe_purge', 'lethe_archive', 'lethe_request', 'lethe_backup',
                           'lethe_drill', 'lethe_monitor'] LOOP
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
      EXECUTE format('GRANT EXECUTE ON FUNCTION lethe.metrics(), '
                     'lethe.run_volume_baseline(bigint, text) TO %I', r);
    END IF;
  END LOOP;
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'lethe_monitor') THEN
    GRANT SELECT, INSERT ON lethe.audit_log TO lethe_monitor;
    GRANT SELECT ON lethe.incidents, lethe.incident_notes TO lethe_monitor;
    GRANT SELECT, INSERT ON lethe.overdue_samples TO lethe_monitor;
  END IF;
END
$$;

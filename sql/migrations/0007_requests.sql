-- lethe's schema, version 7: Amazon deletion and return requests, and the deletion ledger
-- (C5, C6, C19; decisions 4 and 11).
--
-- A request is registered by an operator from Amazon's notice; its two clocks run from the
-- notice's time. No buyer identifier is kept in clear: `subjects` holds keyed HMACs (the
-- pii.hmac_key_file key) of the identifiers the notice named. The orders a scope resolved to
-- are kept in lethe.request_orders (order keys are not PII) only until the erase is done.

CREATE TABLE lethe.requests (
  request_id      bigserial   PRIMARY KEY,
  amazon_ref      text        NOT NULL CHECK (amazon_ref <> ''),
  action          text        NOT NULL CHECK (action IN ('delete', 'return')),
  scope_kind      text        NOT NULL CHECK (scope_kind IN ('order', 'buyer', 'seller')),
  -- JSON array of the hex HMAC-SHA256 of each identifier (order ids, the buyer, the seller)
  subjects        text        NOT NULL CHECK (jsonb_typeof(subjects::jsonb) = 'array'),
  marketplace     text,
  notice_at       timestamptz NOT NULL,
  registered_at   timestamptz NOT NULL DEFAULT now(),
  registered_by   text        NOT NULL,
  reason          text        NOT NULL,
  orders_resolved bigint      NOT NULL CHECK (orders_resolved >= 0),
  state           text        NOT NULL DEFAULT 'received'
                  CHECK (state IN ('received', 'executing', 'live_erased', 'complete',
                                   'cancelled')),
  live_erased_at  timestamptz,
  counts          text        NOT NULL DEFAULT '{}' CHECK (counts::jsonb IS NOT NULL),
  -- the copies lethe made that held the request's orders when their live rows were erased
  -- (JSON array of {kind, id}); each must be gone (or offline, cold) before the request is
  -- complete
  copies          text        NOT NULL DEFAULT '[]'
                  CHECK (jsonb_typeof(copies::jsonb) = 'array'),
  completed_at    timestamptz,
  cancelled_at    timestamptz,
  cancelled_by    text,
  -- action return: the public key the data goes to (its file and SHA-256 at registration), and
  -- the sealed file written before the erase
  return_to       text,
  return_key_sha256 text,
  return_file     text,
  return_bytes    bigint,
  return_sha256   text,
  CHECK ((action = 'return') = (return_to IS NOT NULL))
);
-- One request per Amazon reference, unless the earlier one was cancelled.
CREATE UNIQUE INDEX requests_one_per_ref ON lethe.requests (amazon_ref)
  WHERE state <> 'cancelled';

CREATE TABLE lethe.request_orders (
  request_id bigint NOT NULL REFERENCES lethe.requests,
  order_key  text   NOT NULL,
  PRIMARY KEY (request_id, order_key)
);

-- The runs that worked on a request: its counts are the sum of their committed progress, so a
-- run killed half way and the run that finished after it are both counted, each batch once.
CREATE TABLE lethe.request_runs (
  request_id bigint NOT NULL REFERENCES lethe.requests,
  run_id     bigint NOT NULL,
  PRIMARY KEY (request_id, run_id)
);

-- Other copies of a request's subjects that the operator registers (a WAL archive, an export):
-- each must be destroyed within the 90 days before the request is complete.
CREATE TABLE lethe.request_copies (
  request_id    bigint      NOT NULL REFERENCES lethe.requests,
  copy_no       integer     NOT NULL CHECK (copy_no > 0),
  what          text        NOT NULL CHECK (what <> ''),
  expires_at    timestamptz NOT NULL,
  registered_at timestamptz NOT NULL DEFAULT now(),
  registered_by text        NOT NULL,
  destroyed_at  timestamptz,
  destroyed_by  text,
  PRIMARY KEY (request_id, copy_no)
);

-- Every executed erase, hash-chained like the audit trail and written to the ledger file too
-- (requests.ledger_file), which outlives a restore of this database. `entry` is the exact JSON
-- text that was hashed: sha256(prev_hash || entry).
CREATE TABLE lethe.deletion_ledger (
  entry_seq  bigint PRIMARY KEY CHECK (entry_seq > 0),
  request_id bigint NOT NULL REFERENCES lethe.requests,
  entry      text   NOT NULL CHECK (entry::jsonb IS NOT NULL),
  prev_hash  text   NOT NULL,
  hash       text   NOT NULL UNIQUE
);

CREATE FUNCTION lethe.deletion_ledger_is_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'lethe.deletion_ledger is append-only: % refused', TG_OP
    USING ERRCODE = 'insufficient_privilege',
          HINT = 'the ledger is replayed after every restore; its entries are never changed';
END
$$;

CREATE TRIGGER deletion_ledger_no_update_delete BEFORE UPDATE OR DELETE ON lethe.deletion_ledger
  FOR EACH ROW EXECUTE FUNCTION lethe.deletion_ledger_is_append_only();
CREATE TRIGGER deletion_ledger_no_truncate BEFORE TRUNCATE ON lethe.deletion_ledger
  FOR EACH STATEMENT EXECUTE FUNCTION lethe.deletion_ledger_is_append_only();

REVOKE ALL ON lethe.requests, lethe.request_orders, lethe.request_runs, lethe.request_copies,
  lethe.deletion_ledger FROM PUBLIC;

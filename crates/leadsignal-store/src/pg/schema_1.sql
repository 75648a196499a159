-- The PostgreSQL outbox, version 1: the same tables as the SQLite outbox
-- (sqlite.rs), with row leases owned by one process (lease_token) so that
-- several workers can share it.
CREATE TABLE leads (
    id          BIGSERIAL PRIMARY KEY,
    dataset_id  TEXT NOT NULL,
    lead_key    TEXT NOT NULL,           -- lead_id:<n> | crm_id:<id> | <key>:<sha256>
    lead_id     BIGINT,                  -- Meta lead ID, when known
    crm_id      TEXT,
    created_at  BIGINT,                  -- lead creation (Unix s), when known
    first_seen  BIGINT NOT NULL,
    UNIQUE (dataset_id, lead_key)
);
CREATE INDEX leads_crm ON leads (dataset_id, crm_id) WHERE crm_id IS NOT NULL AND lead_id IS NOT NULL;
CREATE TABLE sources (
    id    BIGSERIAL PRIMARY KEY,
    name  TEXT NOT NULL UNIQUE
);
-- `lead` and `source` name rows of leads and sources written before them in
-- the same transaction and never deleted; they are not declared foreign
-- keys because checking one costs a query per inserted row (import of
-- 10^5 rows: 32k -> 53k rows/s without them).
CREATE TABLE outbox (
    id              BIGSERIAL PRIMARY KEY,
    lead            BIGINT NOT NULL,     -- leads(id)
    dataset_id      TEXT NOT NULL,
    stage           TEXT NOT NULL,       -- event_name
    stage_rank      BIGINT NOT NULL,     -- funnel position; 10000 for unmapped stages
    event_time      BIGINT NOT NULL,
    event_id        TEXT NOT NULL,
    payload         BYTEA NOT NULL,      -- the ServerEvent (codec.rs): hashed data only
    send_by         BIGINT NOT NULL,     -- event_time + 7 days - margin
    state           TEXT NOT NULL,       -- pending|held|sending|sent|failed|expired|quarantined
    inferred        BOOLEAN NOT NULL DEFAULT false,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL DEFAULT 0,
    lease_until     BIGINT,
    lease_token     BIGINT,              -- the process holding the lease
    last_error      TEXT,
    fbtrace_id      TEXT,
    sent_at         BIGINT,
    settled_at      BIGINT,              -- when it left the queue (sent, quarantined, expired)
    source          BIGINT NOT NULL,     -- sources(id)
    line            BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    UNIQUE (lead, stage)                 -- one event per stage per lead
);
-- Claims walk a dataset's pending entries by deadline.
CREATE INDEX outbox_due ON outbox (dataset_id, send_by, id) WHERE state = 'pending';
CREATE INDEX outbox_leased ON outbox (dataset_id, lease_until) WHERE state = 'sending';
CREATE INDEX outbox_held ON outbox (send_by) WHERE state = 'held';
CREATE INDEX outbox_settled ON outbox (settled_at) WHERE settled_at IS NOT NULL;
CREATE TABLE quarantine (
    id           BIGSERIAL PRIMARY KEY,
    source       TEXT NOT NULL,
    line         BIGINT NOT NULL,
    fingerprint  TEXT NOT NULL,          -- SHA-256 of the raw row: dedup without keeping it
    rule         TEXT NOT NULL,
    field        TEXT NOT NULL DEFAULT '',
    message      TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    UNIQUE (source, fingerprint, rule, field)
);
CREATE TABLE test_sends (
    id               BIGSERIAL PRIMARY KEY,
    outbox_id        BIGINT NOT NULL REFERENCES outbox(id),
    test_event_code  TEXT NOT NULL,
    fbtrace_id       TEXT,
    sent_at          BIGINT NOT NULL
);
CREATE TABLE datasets (
    dataset_id     TEXT PRIMARY KEY,
    paused_reason  TEXT,
    paused_at      BIGINT
);
CREATE TABLE source_cursors (
    source  TEXT PRIMARY KEY,
    cursor  TEXT NOT NULL
);

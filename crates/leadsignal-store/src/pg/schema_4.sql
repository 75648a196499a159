-- Version 4: each configured dataset name's dataset (pixel) ID, fixed at
-- first use (Meta restarts learning on a new dataset); changed only by
-- `leadsignal dataset rebind`.
CREATE TABLE dataset_bindings (
    name          TEXT PRIMARY KEY,
    dataset_id    TEXT NOT NULL,
    bound_at      BIGINT NOT NULL,
    previous_id   TEXT,                  -- the ID before the last rebind
    rebound_at    BIGINT
);

-- SQLite outbox schema, migration 5 (PRAGMA user_version = 5 once applied).
-- Each configured dataset name's dataset (pixel) ID, fixed at first use:
-- Meta restarts learning on a new dataset, so a different ID later is
-- refused until rebound deliberately (`leadsignal dataset rebind`).
CREATE TABLE dataset_bindings (
    name          TEXT PRIMARY KEY,
    dataset_id    TEXT NOT NULL,
    bound_at      INTEGER NOT NULL,
    previous_id   TEXT,                  -- the ID before the last rebind
    rebound_at    INTEGER
);

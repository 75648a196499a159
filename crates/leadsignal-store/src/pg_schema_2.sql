-- Version 2: the leads Meta generated, by the SHA-256 of their e-mails and
-- phones (recover.rs): a stage change that lost its lead ID gets it back.
CREATE TABLE lead_index (
    dataset_id  TEXT NOT NULL,
    digest      BYTEA NOT NULL,          -- 'e' or 'p', then the 32-byte digest
    lead_id     BIGINT NOT NULL,
    created_at  BIGINT,
    PRIMARY KEY (dataset_id, digest, lead_id)
);
-- Sent with a lead ID recovered from the index.
ALTER TABLE outbox ADD COLUMN recovered BOOLEAN NOT NULL DEFAULT false;

-- Version 2: the leads Meta generated, by the SHA-256 of their e-mails and
-- phones (recover.rs): a stage change that lost its lead ID gets it back.
CREATE TABLE lead_index (
    key         BIGINT NOT NULL,         -- recover::db_key(dataset, e-mail or phone digest)
    lead_id     BIGINT NOT NULL,
    created_at  BIGINT,
    PRIMARY KEY (key, lead_id)
);
-- Sent with a lead ID recovered from the index.
ALTER TABLE outbox ADD COLUMN recovered BOOLEAN NOT NULL DEFAULT false;

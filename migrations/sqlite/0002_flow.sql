-- twofactor schema, version 2 (SQLite): the composite operations of the OtpStore.
-- The same layout as the PostgreSQL schema; see migrations/postgres/0002_flow.sql. SQLite runs
-- each composite operation as one transaction in the process (`BEGIN IMMEDIATE`), applying
-- `flow::rules` in Rust, so it needs no functions.

ALTER TABLE twofactor_otp ADD COLUMN code BLOB;

CREATE TABLE twofactor_users (
    key              TEXT    PRIMARY KEY,
    failures         INTEGER NOT NULL DEFAULT 0,
    failures_until   INTEGER NOT NULL DEFAULT 0,
    level            INTEGER NOT NULL DEFAULT 0,
    locked_until     INTEGER NOT NULL DEFAULT 0,
    last_step        INTEGER,
    sends            INTEGER NOT NULL DEFAULT 0,
    sends_until      INTEGER NOT NULL DEFAULT 0,
    last_verified_at INTEGER,
    expires_at       INTEGER NOT NULL
);
CREATE INDEX twofactor_users_expires_at ON twofactor_users (expires_at);

-- twofactor schema, version 1 (SQLite). Applied by `SqlStore::migrate()`.
-- The same tables as the PostgreSQL schema; see migrations/postgres/0001_init.sql.

CREATE TABLE twofactor_otp (
    key        TEXT    PRIMARY KEY,
    value      BLOB,
    number     INTEGER,
    expires_at INTEGER NOT NULL
);
CREATE INDEX twofactor_otp_expires_at ON twofactor_otp (expires_at);

CREATE TABLE twofactor_enrollments (
    user_id  TEXT    PRIMARY KEY,
    record   TEXT,
    revision INTEGER NOT NULL
);

CREATE TABLE twofactor_backup_codes (
    user_id    TEXT    NOT NULL,
    lookup     BLOB    NOT NULL,
    verifier   TEXT,
    created_at INTEGER NOT NULL,
    used_at    INTEGER,
    PRIMARY KEY (user_id, lookup)
);

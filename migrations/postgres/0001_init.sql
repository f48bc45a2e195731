-- twofactor schema, version 1 (PostgreSQL). Applied by `SqlStore::migrate()`.

-- Short-lived records of the OtpStore: pending codes, challenges, counters, lockouts, cooldowns,
-- the last accepted TOTP step. `value` holds bytes, `number` holds counters and steps.
-- Liveness is `expires_at > now` with the `now` the service passes in; `purge_expired(now)`
-- deletes the rest.
CREATE TABLE twofactor_otp (
    key        TEXT   PRIMARY KEY,
    value      BYTEA,
    number     BIGINT,
    expires_at BIGINT NOT NULL
);
CREATE INDEX twofactor_otp_expires_at ON twofactor_otp (expires_at);

-- One row per user who ever enrolled. `record` is the EnrollmentRecord as JSON, NULL once the
-- user removed two-factor: the row stays so that `revision` keeps increasing and a writer
-- holding a revision from before the removal can never overwrite a later enrollment.
CREATE TABLE twofactor_enrollments (
    user_id  TEXT   PRIMARY KEY,
    record   TEXT,
    revision BIGINT NOT NULL
);

-- Backup codes, keyed-hashed: `lookup` is an HMAC (or its prefix, with `verifier` the argon2id
-- PHC string). A code is spent when `used_at` is set; regeneration deletes the whole set.
CREATE TABLE twofactor_backup_codes (
    user_id    TEXT   NOT NULL,
    lookup     BYTEA  NOT NULL,
    verifier   TEXT,
    created_at BIGINT NOT NULL,
    used_at    BIGINT,
    PRIMARY KEY (user_id, lookup)
);

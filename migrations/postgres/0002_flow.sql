-- twofactor schema, version 2 (PostgreSQL): the composite operations of the OtpStore
-- (`twofactor::flow`). Applied by `SqlStore::migrate()` on top of version 1.
--
-- A challenge (or pending code) stays a row of `twofactor_otp`: `value` its value, `number` its
-- attempt count, and the new `code` column its current code. A send's cooldown is a row of
-- `twofactor_otp` too, expiring when the cooldown ends. The user's record is a row of
-- `twofactor_users`, one column per field of `flow::UserState`.
--
-- Each composite operation is one of the functions below, so that it is one statement and one
-- round trip: `SELECT * FROM twofactor_open_attempt($1, …)`. They follow `flow::rules` line by
-- line. Every function that changes a user's record first locks that user's row (creating an
-- expired placeholder when there is none), then the challenge's: one user's operations run one
-- after the other, and locks are always taken in that order.

ALTER TABLE twofactor_otp ADD COLUMN code BYTEA;

-- `flow::UserState`: times in seconds since the epoch, 0 for the epoch; `last_step` and
-- `last_verified_at` are NULL when unset. A row whose `expires_at` is at or before `now` reads as
-- the default record.
CREATE TABLE twofactor_users (
    key              TEXT   PRIMARY KEY,
    failures         BIGINT NOT NULL DEFAULT 0,
    failures_until   BIGINT NOT NULL DEFAULT 0,
    level            BIGINT NOT NULL DEFAULT 0,
    locked_until     BIGINT NOT NULL DEFAULT 0,
    last_step        BIGINT,
    sends            BIGINT NOT NULL DEFAULT 0,
    sends_until      BIGINT NOT NULL DEFAULT 0,
    last_verified_at BIGINT,
    expires_at       BIGINT NOT NULL
);
CREATE INDEX twofactor_users_expires_at ON twofactor_users (expires_at);

-- `a + b`, saturating at the largest BIGINT (`Timestamp::saturating_add`; `b` is a duration).
CREATE FUNCTION twofactor_sat_add(a BIGINT, b BIGINT) RETURNS BIGINT
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN b > 0 AND a > 9223372036854775807 - b THEN 9223372036854775807 ELSE a + b END
$$;

-- The user's record as seen at `p_now` (`rules::current`), locked when `p_lock` is set. A NULL
-- `p_window` (an operation without the user's limits) keeps the lock level as stored.
CREATE FUNCTION twofactor_user(p_key TEXT, p_window BIGINT, p_now BIGINT, p_lock BOOLEAN)
RETURNS twofactor_users
LANGUAGE plpgsql AS $$
DECLARE
    u twofactor_users;
BEGIN
    IF p_lock THEN
        LOOP
            SELECT * INTO u FROM twofactor_users WHERE key = p_key FOR UPDATE;
            EXIT WHEN FOUND;
            -- Waits for a concurrent first insert, then locks the row it made.
            INSERT INTO twofactor_users (key, expires_at) VALUES (p_key, 0)
            ON CONFLICT (key) DO NOTHING;
        END LOOP;
    ELSE
        SELECT * INTO u FROM twofactor_users WHERE key = p_key;
    END IF;
    IF u.key IS NULL OR u.expires_at <= p_now THEN
        u.key := p_key;
        u.failures := 0;
        u.failures_until := 0;
        u.level := 0;
        u.locked_until := 0;
        u.last_step := NULL;
        u.sends := 0;
        u.sends_until := 0;
        u.last_verified_at := NULL;
        u.expires_at := 0;
    END IF;
    IF u.failures_until <= p_now THEN
        u.failures := 0;
    END IF;
    IF u.level > 0 AND p_window IS NOT NULL
        AND twofactor_sat_add(u.locked_until, p_window) <= p_now THEN
        u.level := 0;
    END IF;
    IF u.sends_until <= p_now THEN
        u.sends := 0;
    END IF;
    RETURN u;
END
$$;

-- When a user's record written at `p_now` expires (`rules::user_expires_at`).
CREATE FUNCTION twofactor_user_expires_at(u twofactor_users, p_window BIGINT, p_retention BIGINT,
                                          p_now BIGINT) RETURNS BIGINT
LANGUAGE sql IMMUTABLE AS $$
    SELECT GREATEST(twofactor_sat_add(p_now, p_retention), u.failures_until,
                    twofactor_sat_add(u.locked_until, p_window), u.sends_until)
$$;

-- Writes a user's record locked by `twofactor_user`, to expire at `p_expires_at`.
CREATE FUNCTION twofactor_save_user(u twofactor_users, p_expires_at BIGINT) RETURNS VOID
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE twofactor_users SET
        failures = u.failures,
        failures_until = u.failures_until,
        level = u.level,
        locked_until = u.locked_until,
        last_step = u.last_step,
        sends = u.sends,
        sends_until = u.sends_until,
        last_verified_at = u.last_verified_at,
        expires_at = p_expires_at
    WHERE key = u.key;
END
$$;

-- `OtpStore::begin_challenge`. `p_cooldown` is NULL when no send is asked for.
-- `out_outcome`: 'created', 'send_refused', 'locked' or 'collision'; `out_send`: NULL (no send),
-- 'granted', 'cooldown' or 'capped'; `out_until`: the end of the refusal.
CREATE FUNCTION twofactor_begin_challenge(
    p_user TEXT, p_window BIGINT, p_retention BIGINT,
    p_challenge TEXT, p_value BYTEA, p_expires_at BIGINT,
    p_cooldown TEXT, p_cooldown_until BIGINT, p_max_sends BIGINT, p_send_window BIGINT,
    p_code BYTEA, p_send_required BOOLEAN, p_now BIGINT,
    OUT out_outcome TEXT, OUT out_send TEXT, OUT out_until BIGINT)
LANGUAGE plpgsql AS $$
DECLARE
    u twofactor_users;
    cooldown BIGINT;
BEGIN
    u := twofactor_user(p_user, p_window, p_now, p_cooldown IS NOT NULL);
    -- rules::locked
    IF u.locked_until > p_now THEN
        out_outcome := 'locked';
        out_until := u.locked_until;
        RETURN;
    END IF;
    IF p_cooldown IS NOT NULL THEN
        -- rules::reserve
        SELECT expires_at INTO cooldown FROM twofactor_otp
        WHERE key = p_cooldown AND expires_at > p_now FOR UPDATE;
        IF FOUND THEN
            out_send := 'cooldown';
            out_until := cooldown;
        ELSIF u.sends >= p_max_sends THEN
            out_send := 'capped';
            out_until := u.sends_until;
        ELSE
            out_send := 'granted';
            IF u.sends = 0 THEN
                u.sends_until := twofactor_sat_add(p_now, p_send_window);
            END IF;
            u.sends := u.sends + 1;
        END IF;
        IF out_send <> 'granted' AND p_send_required THEN
            out_outcome := 'send_refused';
            RETURN;
        END IF;
    END IF;
    INSERT INTO twofactor_otp AS o (key, value, number, code, expires_at)
    VALUES (p_challenge, p_value, 0,
            CASE WHEN out_send = 'granted' THEN p_code END, p_expires_at)
    ON CONFLICT (key) DO UPDATE
    SET value = excluded.value, number = 0, code = excluded.code, expires_at = excluded.expires_at
    WHERE o.expires_at <= p_now;
    IF NOT FOUND THEN
        -- Nothing was created, so nothing is reserved either.
        out_outcome := 'collision';
        out_send := NULL;
        out_until := NULL;
        RETURN;
    END IF;
    IF out_send = 'granted' THEN
        INSERT INTO twofactor_otp (key, value, number, code, expires_at)
        VALUES (p_cooldown, NULL, p_cooldown_until, NULL, p_cooldown_until)
        ON CONFLICT (key) DO UPDATE
        SET value = NULL, number = excluded.number, code = NULL, expires_at = excluded.expires_at;
        PERFORM twofactor_save_user(
            u, twofactor_user_expires_at(u, p_window, p_retention, p_now));
    END IF;
    out_outcome := 'created';
END
$$;

-- `OtpStore::reserve_send`. `p_challenge` is NULL when no challenge is named.
-- `out_outcome`: 'granted', 'cooldown', 'capped' or 'no_challenge'; `out_until`: the end of the
-- refusal; `out_value`: the challenge's value. The operation has no user limits: the lock level
-- is kept as stored, and the record is kept as long as before, and to the end of the send window.
CREATE FUNCTION twofactor_reserve_send(
    p_user TEXT, p_challenge TEXT,
    p_cooldown TEXT, p_cooldown_until BIGINT, p_max_sends BIGINT, p_send_window BIGINT,
    p_now BIGINT,
    OUT out_outcome TEXT, OUT out_until BIGINT, OUT out_value BYTEA)
LANGUAGE plpgsql AS $$
DECLARE
    u twofactor_users;
    cooldown BIGINT;
BEGIN
    u := twofactor_user(p_user, NULL, p_now, TRUE);
    IF p_challenge IS NOT NULL THEN
        SELECT COALESCE(value, '') INTO out_value FROM twofactor_otp
        WHERE key = p_challenge AND expires_at > p_now;
        IF NOT FOUND THEN
            out_outcome := 'no_challenge';
            RETURN;
        END IF;
    END IF;
    -- rules::reserve
    SELECT expires_at INTO cooldown FROM twofactor_otp
    WHERE key = p_cooldown AND expires_at > p_now FOR UPDATE;
    IF FOUND THEN
        out_outcome := 'cooldown';
        out_until := cooldown;
        out_value := NULL;
        RETURN;
    END IF;
    IF u.sends >= p_max_sends THEN
        out_outcome := 'capped';
        out_until := u.sends_until;
        out_value := NULL;
        RETURN;
    END IF;
    IF u.sends = 0 THEN
        u.sends_until := twofactor_sat_add(p_now, p_send_window);
    END IF;
    u.sends := u.sends + 1;
    INSERT INTO twofactor_otp (key, value, number, code, expires_at)
    VALUES (p_cooldown, NULL, p_cooldown_until, NULL, p_cooldown_until)
    ON CONFLICT (key) DO UPDATE
    SET value = NULL, number = excluded.number, code = NULL, expires_at = excluded.expires_at;
    PERFORM twofactor_save_user(u, GREATEST(u.expires_at, u.sends_until));
    out_outcome := 'granted';
END
$$;

-- `OtpStore::open_attempt`. `p_challenge` and `p_max` are NULL when no challenge is named.
-- `out_outcome`: 'open', 'no_challenge', 'exhausted' or 'locked' (`out_until` NULL while the
-- attempt that reached the threshold is being settled); the other columns describe an open one.
CREATE FUNCTION twofactor_open_attempt(
    p_challenge TEXT, p_max BIGINT, p_user TEXT,
    p_threshold BIGINT, p_window BIGINT, p_retention BIGINT, p_now BIGINT,
    OUT out_outcome TEXT, OUT out_until BIGINT,
    OUT out_value BYTEA, OUT out_code BYTEA, OUT out_attempts BIGINT, OUT out_expires_at BIGINT,
    OUT out_failures BIGINT, OUT out_level BIGINT)
LANGUAGE plpgsql AS $$
DECLARE
    u twofactor_users;
BEGIN
    u := twofactor_user(p_user, p_window, p_now, TRUE);
    out_attempts := 0;
    -- rules::open
    IF p_challenge IS NOT NULL THEN
        SELECT COALESCE(value, ''), code, COALESCE(number, 0), expires_at
        INTO out_value, out_code, out_attempts, out_expires_at
        FROM twofactor_otp WHERE key = p_challenge AND expires_at > p_now FOR UPDATE;
        IF NOT FOUND THEN
            out_outcome := 'no_challenge';
            RETURN;
        END IF;
        IF out_attempts >= p_max THEN
            out_outcome := 'exhausted';
            RETURN;
        END IF;
    END IF;
    IF u.locked_until > p_now THEN
        out_outcome := 'locked';
        out_until := u.locked_until;
        RETURN;
    END IF;
    IF u.failures >= p_threshold THEN
        out_outcome := 'locked';
        RETURN;
    END IF;
    IF u.failures = 0 THEN
        u.failures_until := twofactor_sat_add(p_now, p_window);
    END IF;
    u.failures := u.failures + 1;
    IF p_challenge IS NOT NULL THEN
        out_attempts := out_attempts + 1;
        UPDATE twofactor_otp SET number = out_attempts WHERE key = p_challenge;
    END IF;
    PERFORM twofactor_save_user(
            u, twofactor_user_expires_at(u, p_window, p_retention, p_now));
    out_outcome := 'open';
    out_failures := u.failures;
    out_level := u.level;
END
$$;

-- `OtpStore::settle`. `p_challenge` is NULL when no challenge is named; `p_passed` chooses
-- between a pass (with `p_step`, NULL for a code that is not a TOTP code) and a failure: a lock
-- (until `p_lock_until`, at `p_lock_level`), or with `p_lock_until` NULL a failure that stands
-- only if the challenge does. `out_outcome`: 'done', 'gone' or 'replayed'.
CREATE FUNCTION twofactor_settle(
    p_challenge TEXT, p_user TEXT, p_window BIGINT, p_retention BIGINT,
    p_passed BOOLEAN, p_step BIGINT, p_lock_until BIGINT, p_lock_level BIGINT, p_now BIGINT,
    OUT out_outcome TEXT)
LANGUAGE plpgsql AS $$
DECLARE
    u twofactor_users;
BEGIN
    u := twofactor_user(p_user, p_window, p_now, TRUE);
    -- rules::settle: every outcome on a named challenge needs it still standing.
    IF p_challenge IS NOT NULL THEN
        PERFORM 1 FROM twofactor_otp
        WHERE key = p_challenge AND expires_at > p_now FOR UPDATE;
        IF NOT FOUND THEN
            out_outcome := 'gone';
            RETURN;
        END IF;
    END IF;
    IF p_passed THEN
        IF p_step IS NOT NULL THEN
            IF u.last_step IS NOT NULL AND u.last_step >= p_step THEN
                out_outcome := 'replayed';
                RETURN;
            END IF;
            u.last_step := p_step;
        END IF;
        u.failures := 0;
        u.level := 0;
        u.locked_until := 0;
        u.last_verified_at := GREATEST(COALESCE(u.last_verified_at, p_now), p_now);
        IF p_challenge IS NOT NULL THEN
            DELETE FROM twofactor_otp WHERE key = p_challenge;
        END IF;
    ELSIF p_lock_until IS NULL THEN
        -- A failure that stands: nothing to write.
        out_outcome := 'done';
        RETURN;
    ELSE
        u.failures := 0;
        u.level := p_lock_level;
        u.locked_until := GREATEST(u.locked_until, p_lock_until);
    END IF;
    PERFORM twofactor_save_user(
            u, twofactor_user_expires_at(u, p_window, p_retention, p_now));
    out_outcome := 'done';
END
$$;

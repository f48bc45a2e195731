-- twofactor schema, version 3 (PostgreSQL): the user's epoch (`flow::UserState::epoch`) and the
-- epoch each challenge was begun in. Applied by `SqlStore::migrate()` on top of version 2.
--
-- A challenge is stamped with its user's epoch when it is created; it is dead once the epoch
-- moved on: `twofactor_end_challenges` (called after every change of the user's factors) and
-- a lock each move it on by one. Rows written before this version read as epoch 0, as a user
-- with no row does. `twofactor_otp.epoch` is NULL for a pending code made by `store_code`,
-- which is bound to no epoch.
--
-- Every function of version 2 keeps its signature (an instance still running the previous
-- release calls them unchanged, and follows the new rules); `twofactor_open_attempt` answers
-- from `twofactor_open_attempt_epoch`, which also returns the challenge's epoch.

ALTER TABLE twofactor_users ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0;
ALTER TABLE twofactor_otp ADD COLUMN epoch BIGINT DEFAULT 0;

-- The user's record as seen at `p_now` (`rules::current`), locked when `p_lock` is set. A NULL
-- `p_window` (an operation without the user's limits) keeps the lock level as stored.
CREATE OR REPLACE FUNCTION twofactor_user(p_key TEXT, p_window BIGINT, p_now BIGINT,
                                          p_lock BOOLEAN)
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
        u.epoch := 0;
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

-- Writes a user's record locked by `twofactor_user`, to expire at `p_expires_at`, or later when
-- it already lived longer (`u.expires_at`): a write never shortens a record.
CREATE OR REPLACE FUNCTION twofactor_save_user(u twofactor_users, p_expires_at BIGINT)
RETURNS VOID
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
        epoch = u.epoch,
        expires_at = GREATEST(p_expires_at, u.expires_at)
    WHERE key = u.key;
END
$$;

-- `rules::end_challenges`: the next epoch, wrapping at 2^32 as the u32 of the rules.
CREATE FUNCTION twofactor_next_epoch(epoch BIGINT) RETURNS BIGINT
LANGUAGE sql IMMUTABLE AS $$
    SELECT (epoch + 1) % 4294967296
$$;

-- `OtpStore::begin_challenge`. `p_cooldown` is NULL when no send is asked for.
-- `out_outcome`: 'created', 'send_refused', 'locked' or 'collision'; `out_send`: NULL (no send),
-- 'granted', 'cooldown' or 'capped'; `out_until`: the end of the refusal.
CREATE OR REPLACE FUNCTION twofactor_begin_challenge(
    p_user TEXT, p_window BIGINT, p_retention BIGINT,
    p_challenge TEXT, p_value BYTEA, p_expires_at BIGINT,
    p_cooldown TEXT, p_cooldown_until BIGINT, p_max_sends BIGINT, p_send_window BIGINT,
    p_code BYTEA, p_send_required BOOLEAN, p_now BIGINT,
    OUT out_outcome TEXT, OUT out_send TEXT, OUT out_until BIGINT)
LANGUAGE plpgsql AS $$
DECLARE
    u twofactor_users;
    cooldown BIGINT;
    keep BOOLEAN;
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
    -- Stamped with the user's epoch (rules::in_epoch).
    INSERT INTO twofactor_otp AS o (key, value, number, code, expires_at, epoch)
    VALUES (p_challenge, p_value, 0,
            CASE WHEN out_send = 'granted' THEN p_code END, p_expires_at, u.epoch)
    ON CONFLICT (key) DO UPDATE
    SET value = excluded.value, number = 0, code = excluded.code, expires_at = excluded.expires_at,
        epoch = excluded.epoch
    WHERE o.expires_at <= p_now;
    IF NOT FOUND THEN
        -- Nothing was created, so nothing is reserved either.
        out_outcome := 'collision';
        out_send := NULL;
        out_until := NULL;
        RETURN;
    END IF;
    -- rules::keep_for_challenge: a record whose epoch is not 0 outlives the challenges stamped
    -- with it.
    keep := u.epoch <> 0 AND u.expires_at < p_expires_at;
    IF out_send = 'granted' THEN
        INSERT INTO twofactor_otp (key, value, number, code, expires_at)
        VALUES (p_cooldown, NULL, p_cooldown_until, NULL, p_cooldown_until)
        ON CONFLICT (key) DO UPDATE
        SET value = NULL, number = excluded.number, code = NULL, expires_at = excluded.expires_at;
        IF keep THEN
            u.expires_at := p_expires_at;
        END IF;
        PERFORM twofactor_save_user(
            u, twofactor_user_expires_at(u, p_window, p_retention, p_now));
    ELSIF keep THEN
        -- The row was read without a lock: only its expiry is moved, and only while it is in
        -- the same epoch.
        UPDATE twofactor_users SET expires_at = GREATEST(expires_at, p_expires_at)
        WHERE key = p_user AND epoch = u.epoch AND expires_at > p_now;
    END IF;
    out_outcome := 'created';
END
$$;

-- `OtpStore::reserve_send`. `p_challenge` is NULL when no challenge is named.
-- `out_outcome`: 'granted', 'cooldown', 'capped' or 'no_challenge' (a challenge of an earlier
-- epoch is as good as gone); `out_until`: the end of the refusal; `out_value`: the challenge's
-- value. The operation has no user limits: the lock level is kept as stored, and the record is
-- kept as long as before, and to the end of the send window.
CREATE OR REPLACE FUNCTION twofactor_reserve_send(
    p_user TEXT, p_challenge TEXT,
    p_cooldown TEXT, p_cooldown_until BIGINT, p_max_sends BIGINT, p_send_window BIGINT,
    p_now BIGINT,
    OUT out_outcome TEXT, OUT out_until BIGINT, OUT out_value BYTEA)
LANGUAGE plpgsql AS $$
DECLARE
    u twofactor_users;
    cooldown BIGINT;
    ch_epoch BIGINT;
BEGIN
    u := twofactor_user(p_user, NULL, p_now, TRUE);
    IF p_challenge IS NOT NULL THEN
        SELECT COALESCE(value, ''), epoch INTO out_value, ch_epoch FROM twofactor_otp
        WHERE key = p_challenge AND expires_at > p_now;
        IF NOT FOUND OR ch_epoch <> u.epoch THEN
            out_outcome := 'no_challenge';
            out_value := NULL;
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

-- `OtpStore::open_attempt`, with the challenge's epoch (`out_epoch`, NULL for a record bound to
-- none). `p_challenge` and `p_max` are NULL when no challenge is named. `out_outcome`: 'open',
-- 'no_challenge' (also for a challenge of an earlier epoch, once the lock is checked; nothing is
-- counted), 'exhausted' or 'locked' (`out_until` NULL while the attempt that reached the
-- threshold is being settled); the other columns describe an open one.
CREATE FUNCTION twofactor_open_attempt_epoch(
    p_challenge TEXT, p_max BIGINT, p_user TEXT,
    p_threshold BIGINT, p_window BIGINT, p_retention BIGINT, p_now BIGINT,
    OUT out_outcome TEXT, OUT out_until BIGINT,
    OUT out_value BYTEA, OUT out_code BYTEA, OUT out_attempts BIGINT, OUT out_expires_at BIGINT,
    OUT out_failures BIGINT, OUT out_level BIGINT, OUT out_epoch BIGINT)
LANGUAGE plpgsql AS $$
DECLARE
    u twofactor_users;
BEGIN
    u := twofactor_user(p_user, p_window, p_now, TRUE);
    out_attempts := 0;
    -- rules::open
    IF p_challenge IS NOT NULL THEN
        SELECT COALESCE(value, ''), code, COALESCE(number, 0), expires_at, epoch
        INTO out_value, out_code, out_attempts, out_expires_at, out_epoch
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
    -- rules::in_epoch: after the lock, so that a locked user sees the lock.
    IF out_epoch <> u.epoch THEN
        out_outcome := 'no_challenge';
        out_value := NULL;
        out_code := NULL;
        out_attempts := 0;
        out_expires_at := NULL;
        out_epoch := NULL;
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

-- `OtpStore::open_attempt` as version 2 answered it (without the epoch), for an instance still
-- running the previous release.
CREATE OR REPLACE FUNCTION twofactor_open_attempt(
    p_challenge TEXT, p_max BIGINT, p_user TEXT,
    p_threshold BIGINT, p_window BIGINT, p_retention BIGINT, p_now BIGINT,
    OUT out_outcome TEXT, OUT out_until BIGINT,
    OUT out_value BYTEA, OUT out_code BYTEA, OUT out_attempts BIGINT, OUT out_expires_at BIGINT,
    OUT out_failures BIGINT, OUT out_level BIGINT)
LANGUAGE sql AS $$
    SELECT out_outcome, out_until, out_value, out_code, out_attempts, out_expires_at,
           out_failures, out_level
    FROM twofactor_open_attempt_epoch(p_challenge, p_max, p_user, p_threshold, p_window,
                                      p_retention, p_now)
$$;

-- `OtpStore::settle`. `p_challenge` is NULL when no challenge is named; `p_passed` chooses
-- between a pass (with `p_step`, NULL for a code that is not a TOTP code) and a failure: a lock
-- (until `p_lock_until`, at `p_lock_level`), or with `p_lock_until` NULL a failure that stands
-- only if the challenge does. A pass on a challenge of an earlier epoch is 'gone'; a lock moves
-- the epoch on. `out_outcome`: 'done', 'gone' or 'replayed'.
CREATE OR REPLACE FUNCTION twofactor_settle(
    p_challenge TEXT, p_user TEXT, p_window BIGINT, p_retention BIGINT,
    p_passed BOOLEAN, p_step BIGINT, p_lock_until BIGINT, p_lock_level BIGINT, p_now BIGINT,
    OUT out_outcome TEXT)
LANGUAGE plpgsql AS $$
DECLARE
    u twofactor_users;
    ch_epoch BIGINT;
BEGIN
    u := twofactor_user(p_user, p_window, p_now, TRUE);
    -- rules::settle: every outcome on a named challenge needs it still standing.
    IF p_challenge IS NOT NULL THEN
        SELECT epoch INTO ch_epoch FROM twofactor_otp
        WHERE key = p_challenge AND expires_at > p_now FOR UPDATE;
        IF NOT FOUND THEN
            out_outcome := 'gone';
            RETURN;
        END IF;
    END IF;
    IF p_passed THEN
        -- rules::in_epoch
        IF ch_epoch <> u.epoch THEN
            out_outcome := 'gone';
            RETURN;
        END IF;
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
        -- A lock ends every challenge of the user.
        u.epoch := twofactor_next_epoch(u.epoch);
    END IF;
    PERFORM twofactor_save_user(
            u, twofactor_user_expires_at(u, p_window, p_retention, p_now));
    out_outcome := 'done';
END
$$;

-- `OtpStore::end_challenges`: moves the user's epoch on (creating the record when there is
-- none) and returns the new one.
CREATE FUNCTION twofactor_end_challenges(
    p_user TEXT, p_window BIGINT, p_retention BIGINT, p_now BIGINT,
    OUT out_epoch BIGINT)
LANGUAGE plpgsql AS $$
DECLARE
    u twofactor_users;
BEGIN
    u := twofactor_user(p_user, p_window, p_now, TRUE);
    u.epoch := twofactor_next_epoch(u.epoch);
    PERFORM twofactor_save_user(
            u, twofactor_user_expires_at(u, p_window, p_retention, p_now));
    out_epoch := u.epoch;
END
$$;

-- twofactor schema, version 3 (SQLite): the user's epoch (`flow::UserState::epoch`) and the
-- epoch each challenge was begun in; see migrations/postgres/0003_epoch.sql. Rows written before
-- this version read as epoch 0; `twofactor_otp.epoch` is NULL for a pending code made by
-- `store_code`, which is bound to no epoch.

ALTER TABLE twofactor_users ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
ALTER TABLE twofactor_otp ADD COLUMN epoch INTEGER DEFAULT 0;

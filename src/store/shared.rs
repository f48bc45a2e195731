//! The store and mailer traits for `Arc<T>` and `Box<T>`: a store shared with the host (or boxed
//! as a trait object) is a store. Every method forwards to the inner store, the composite
//! operations included, so a wrapped store keeps its native single-round-trip implementations
//! instead of falling back to the defaults built from the primitives.

use std::sync::Arc;

use async_trait::async_trait;

use super::flow::{
    AttemptSpec, Begun, NewChallenge, Opened, Reserved, SendSpec, Settled, Settlement, UserLimits,
    UserState,
};
use super::{BackupCodeRecord, EnrollmentRecord, EnrollmentStore, OtpStore, Revision, StoreKey};
use crate::clock::Timestamp;
use crate::error::{DeliveryError, StoreError};
use crate::mail::{Mailer, Message};

macro_rules! forward_stores {
    ($($ptr:ident),+) => {$(
        #[async_trait]
        impl<T: OtpStore + ?Sized> OtpStore for $ptr<T> {
            async fn put(
                &self,
                key: &StoreKey,
                value: &[u8],
                expires_at: Timestamp,
                now: Timestamp,
            ) -> Result<(), StoreError> {
                (**self).put(key, value, expires_at, now).await
            }

            async fn put_if_absent(
                &self,
                key: &StoreKey,
                value: &[u8],
                expires_at: Timestamp,
                now: Timestamp,
            ) -> Result<bool, StoreError> {
                (**self).put_if_absent(key, value, expires_at, now).await
            }

            async fn get(
                &self,
                key: &StoreKey,
                now: Timestamp,
            ) -> Result<Option<Vec<u8>>, StoreError> {
                (**self).get(key, now).await
            }

            async fn take(
                &self,
                key: &StoreKey,
                now: Timestamp,
            ) -> Result<Option<Vec<u8>>, StoreError> {
                (**self).take(key, now).await
            }

            async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
                (**self).delete(key).await
            }

            async fn increment(
                &self,
                key: &StoreKey,
                expires_at: Timestamp,
                now: Timestamp,
            ) -> Result<u64, StoreError> {
                (**self).increment(key, expires_at, now).await
            }

            async fn advance(
                &self,
                key: &StoreKey,
                value: u64,
                expires_at: Timestamp,
                now: Timestamp,
            ) -> Result<bool, StoreError> {
                (**self).advance(key, value, expires_at, now).await
            }

            async fn begin_challenge(
                &self,
                new: &NewChallenge<'_>,
                now: Timestamp,
            ) -> Result<Begun, StoreError> {
                (**self).begin_challenge(new, now).await
            }

            async fn reserve_send(
                &self,
                user: &StoreKey,
                challenge: Option<&StoreKey>,
                spec: &SendSpec<'_>,
                now: Timestamp,
            ) -> Result<Reserved, StoreError> {
                (**self).reserve_send(user, challenge, spec, now).await
            }

            async fn store_code(
                &self,
                key: &StoreKey,
                create: Option<(&[u8], Timestamp)>,
                code: &[u8],
                now: Timestamp,
            ) -> Result<bool, StoreError> {
                (**self).store_code(key, create, code, now).await
            }

            async fn open_attempt(
                &self,
                spec: &AttemptSpec<'_>,
                now: Timestamp,
            ) -> Result<Opened, StoreError> {
                (**self).open_attempt(spec, now).await
            }

            async fn settle(
                &self,
                settlement: &Settlement<'_>,
                now: Timestamp,
            ) -> Result<Settled, StoreError> {
                (**self).settle(settlement, now).await
            }

            async fn user_state(
                &self,
                user: &StoreKey,
                limits: &UserLimits,
                now: Timestamp,
            ) -> Result<UserState, StoreError> {
                (**self).user_state(user, limits, now).await
            }

            async fn end_challenges(
                &self,
                user: &StoreKey,
                limits: &UserLimits,
                now: Timestamp,
            ) -> Result<u32, StoreError> {
                (**self).end_challenges(user, limits, now).await
            }
        }

        #[async_trait]
        impl<T: EnrollmentStore + ?Sized> EnrollmentStore for $ptr<T> {
            async fn load(
                &self,
                user: &str,
            ) -> Result<Option<(EnrollmentRecord, Revision)>, StoreError> {
                (**self).load(user).await
            }

            async fn save(
                &self,
                user: &str,
                record: &EnrollmentRecord,
                expected: Option<Revision>,
            ) -> Result<Option<Revision>, StoreError> {
                (**self).save(user, record, expected).await
            }

            async fn remove(&self, user: &str) -> Result<(), StoreError> {
                (**self).remove(user).await
            }

            async fn replace_backup_codes(
                &self,
                user: &str,
                codes: &[BackupCodeRecord],
                now: Timestamp,
            ) -> Result<(), StoreError> {
                (**self).replace_backup_codes(user, codes, now).await
            }

            async fn find_backup_code(
                &self,
                user: &str,
                lookup: &[u8],
            ) -> Result<Option<BackupCodeRecord>, StoreError> {
                (**self).find_backup_code(user, lookup).await
            }

            async fn consume_backup_code(
                &self,
                user: &str,
                lookup: &[u8],
                now: Timestamp,
            ) -> Result<bool, StoreError> {
                (**self).consume_backup_code(user, lookup, now).await
            }

            async fn backup_codes_remaining(&self, user: &str) -> Result<u32, StoreError> {
                (**self).backup_codes_remaining(user).await
            }

            async fn load_with_codes(
                &self,
                user: &str,
            ) -> Result<(Option<(EnrollmentRecord, Revision)>, u32), StoreError> {
                (**self).load_with_codes(user).await
            }

            async fn redeem_backup_code(
                &self,
                user: &str,
                lookup: &[u8],
                now: Timestamp,
            ) -> Result<Option<u32>, StoreError> {
                (**self).redeem_backup_code(user, lookup, now).await
            }
        }

        #[async_trait]
        impl<M: Mailer + ?Sized> Mailer for $ptr<M> {
            async fn send(&self, message: &Message) -> Result<(), DeliveryError> {
                (**self).send(message).await
            }
        }
    )+};
}

forward_stores!(Arc, Box);

//! Delayed account recovery, for a user who lost every factor: [`Recovery::request`](crate::service::Recovery::request)
//! (with the password) schedules turning two-factor authentication off after
//! [`Policy::recovery_delay`](crate::Policy::recovery_delay) (72 hours), tells the user's email
//! factor at once and again [`Policy::recovery_reminder`](crate::Policy::recovery_reminder)
//! before it takes effect, and any passed second-factor check (a login, a reauthentication, a
//! step-up) or [`Recovery::cancel`](crate::service::Recovery::cancel) cancels it.
//!
//! The delay is what stops an attacker who has only the password: the real user, still holding a
//! factor, signs in once (or cancels) within it. A second request neither extends nor shortens
//! the first. The pending recovery lives in the enrolment record, so every store keeps it.
//!
//! Nothing runs in the background: a due recovery takes effect at the user's next
//! [`begin_login`](TwoFactorService::begin_login), or when the host calls
//! [`Recovery::process`](crate::service::Recovery::process), which also sends the reminder. A host runs it
//! periodically (hourly, say) for the users with a pending recovery, which it learns from
//! [`Event::RecoveryRequested`]; [`status`](crate::service::Account::status) shows the deadline.

use crate::clock::Timestamp;
use crate::error::Error;
use crate::events::Event;
use crate::input::check_user;
use crate::login::LoginStep;
use crate::mail::{AccountNotice, MailContent};
use crate::method::Verified;
use crate::service::TwoFactorService;
use crate::store::{EnrollmentRecord, RecoveryRecord};
use crate::text::TextContent;

/// Where a user's recovery stands, from [`Recovery::process`](crate::service::Recovery::process).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecoveryProgress {
    /// No recovery is pending.
    None,
    /// A recovery is pending and takes effect at this time.
    Pending {
        /// When two-factor authentication is turned off.
        effective_at: Timestamp,
    },
    /// The recovery took effect now: every factor and backup code was removed.
    Completed,
}

impl TwoFactorService {
    /// [`Recovery::request`](crate::service::Recovery::request).
    pub(crate) async fn request_recovery(
        &self,
        user: &str,
        password: &str,
    ) -> Result<Timestamp, Error> {
        check_user(user)?;
        let now = self.now();
        // The password first, whatever the enrolment, so that without it the answer and the
        // work are the same for every account; on a count of its own, since no session is
        // needed here (a stranger's guesses must not lock the owner's password at `disable`).
        let run = self.user_keys(user).recovery_password_run();
        if !self.check_password(user, password, &run, now).await? {
            return Err(Error::InvalidPassword);
        }
        // Only the password's holder learns that there is nothing to recover, which signing in
        // would show them anyway.
        let (rec, rev) = self.load(user).await?;
        if !rec.is_enabled() {
            return Err(Error::NotEnrolled);
        }
        let effective_at = now.saturating_add(self.inner.policy.recovery_delay);
        // The owner must be told. An email factor, or a phone factor with a text sender, is a
        // channel; else the host's own contact for the account is the only one, and it must
        // take the notice before anything is scheduled.
        let factor_channel =
            rec.email.is_some() || (rec.phone.is_some() && self.inner.texts.is_some());
        let notices = self.inner.notices.as_deref();
        if !factor_channel {
            let Some(notices) = notices else {
                return Err(Error::NoNoticeChannel);
            };
            if rec.recovery.is_none() {
                notices
                    .send(user, &AccountNotice::RecoveryRequested { effective_at })
                    .await?;
            }
        }
        let mut created = false;
        let rec = self
            .update_from(user, Some((rec, rev)), |rec| {
                if !rec.is_enabled() {
                    return Err(Error::NotEnrolled);
                }
                created = rec.recovery.is_none();
                if created {
                    rec.recovery = Some(RecoveryRecord::new(now, effective_at));
                }
                Ok(created)
            })
            .await?;
        let Some(pending) = rec.recovery else {
            return Err(Error::Internal("a recovery was scheduled but not kept"));
        };
        if created {
            let ended = self.end_challenges(user).await;
            self.event(Event::RecoveryRequested {
                user: user.to_owned(),
                effective_at: pending.effective_at,
            });
            let to = rec.email.as_ref().map(|e| e.address.as_str());
            self.notify(user, to, MailContent::RecoveryRequested).await;
            let phone = rec.phone.as_ref().map(|p| &p.number);
            self.notify_text(phone, TextContent::RecoveryRequested)
                .await;
            if factor_channel {
                let notice = AccountNotice::RecoveryRequested {
                    effective_at: pending.effective_at,
                };
                self.notify_contact(user, &notice).await;
            }
            ended?;
        }
        Ok(pending.effective_at)
    }

    /// Tells the account's own contact, when the host gave one; a failure is logged.
    async fn notify_contact(&self, user: &str, notice: &AccountNotice) {
        if let Some(notices) = self.inner.notices.as_deref() {
            if let Err(e) = notices.send(user, notice).await {
                tracing::warn!(target: "twofactor", error = %e, "account notice not sent");
            }
        }
    }

    /// [`Recovery::cancel`](crate::service::Recovery::cancel).
    pub(crate) async fn cancel_recovery(&self, user: &str) -> Result<bool, Error> {
        check_user(user)?;
        let mut cancelled = false;
        self.update(user, |rec| {
            cancelled = rec.recovery.take().is_some();
            Ok(cancelled)
        })
        .await?;
        if cancelled {
            self.event(Event::RecoveryCancelled {
                user: user.to_owned(),
            });
        }
        Ok(cancelled)
    }

    /// [`Recovery::process`](crate::service::Recovery::process).
    pub(crate) async fn process_recovery(&self, user: &str) -> Result<RecoveryProgress, Error> {
        check_user(user)?;
        let now = self.now();
        let (rec, rev) = self.load(user).await?;
        let Some(pending) = rec.recovery.clone() else {
            return Ok(RecoveryProgress::None);
        };
        if pending.effective_at <= now {
            if self.complete_recovery(user, now).await? {
                return Ok(RecoveryProgress::Completed);
            }
            return Ok(RecoveryProgress::None);
        }
        let remind_from = Timestamp::from_unix_secs(
            pending
                .effective_at
                .as_unix_secs()
                .saturating_sub(self.inner.policy.recovery_reminder.as_secs()),
        );
        if pending.reminded_at.is_none() && remind_from <= now {
            let mut first = false;
            let rec = self
                .update_from(user, Some((rec, rev)), |rec| {
                    first = match rec.recovery.as_mut() {
                        Some(r) if r.reminded_at.is_none() => {
                            r.reminded_at = Some(now);
                            true
                        }
                        _ => false,
                    };
                    Ok(first)
                })
                .await?;
            if first {
                let to = rec.email.as_ref().map(|e| e.address.as_str());
                self.notify(user, to, MailContent::RecoveryReminder).await;
                let phone = rec.phone.as_ref().map(|p| &p.number);
                self.notify_text(phone, TextContent::RecoveryReminder).await;
                let notice = AccountNotice::RecoveryReminder {
                    effective_at: pending.effective_at,
                };
                self.notify_contact(user, &notice).await;
            }
        }
        Ok(RecoveryProgress::Pending {
            effective_at: pending.effective_at,
        })
    }

    /// At `begin_login`: a recovery that is due takes effect now, and the login completes
    /// without a factor. `None` when there is none due.
    pub(crate) async fn recovery_at_login(
        &self,
        user: &str,
        rec: &EnrollmentRecord,
        now: Timestamp,
    ) -> Result<Option<LoginStep>, Error> {
        if rec.recovery.as_ref().is_none_or(|r| r.effective_at > now) {
            return Ok(None);
        }
        if !self.complete_recovery(user, now).await? {
            return Ok(None);
        }
        Ok(Some(LoginStep::Complete(Verified {
            user: user.to_owned(),
            method: None,
            backup_codes_remaining: 0,
            verified_at: now,
            recovery_cancelled: false,
        })))
    }

    /// Removes every factor and backup code of a user whose recovery is due, by
    /// compare-and-swap: a cancellation that won the race keeps the factors (`false`).
    async fn complete_recovery(&self, user: &str, now: Timestamp) -> Result<bool, Error> {
        let mut email = None;
        let mut done = false;
        self.update(user, |rec| {
            done = rec.recovery.as_ref().is_some_and(|r| r.effective_at <= now);
            if done {
                email = rec.email.take().map(|e| e.address);
                *rec = EnrollmentRecord::new();
            }
            Ok(done)
        })
        .await?;
        if !done {
            return Ok(false);
        }
        let ended = self.end_challenges(user).await;
        self.inner
            .enrollments
            .replace_backup_codes(user, &[], now)
            .await?;
        self.event(Event::RecoveryCompleted {
            user: user.to_owned(),
        });
        self.event(Event::FactorDisabled {
            user: user.to_owned(),
        });
        self.notify(user, email.as_deref(), MailContent::TwoFactorDisabled)
            .await;
        ended.map(|()| true)
    }
}

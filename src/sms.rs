//! The SMS factor: enrolling a phone number ([`Sms::start_setup`](crate::service::Sms::start_setup),
//! [`Sms::confirm_setup`](crate::service::Sms::confirm_setup)). Codes are sent and checked by
//! the machinery shared with email codes; login codes by text go through the login itself.

use crate::email_code::Channel;
use crate::error::Error;
use crate::events::Event;
use crate::input::check_user;
use crate::keyspace::CodePurpose;
use crate::method::Method;
use crate::phone::PhoneNumber;
use crate::service::TwoFactorService;
use crate::store::PhoneRecord;
use crate::text::TextSender;

impl TwoFactorService {
    /// [`Sms::start_setup`](crate::service::Sms::start_setup).
    pub(crate) async fn start_sms_setup(&self, user: &str, phone: &str) -> Result<(), Error> {
        check_user(user)?;
        let number = PhoneNumber::parse(phone)?;
        self.text_sender()?;
        let (rec, _) = self.load(user).await?;
        if rec.phone.is_some() {
            return Err(Error::AlreadyEnrolled);
        }
        self.require_fresh_factor(user, &rec, self.now()).await?;
        self.send_purpose_code(user, Channel::Text(&number), CodePurpose::SmsSetup)
            .await?;
        self.event(Event::FactorSetupStarted {
            user: user.to_owned(),
            method: Method::Sms,
        });
        Ok(())
    }

    /// [`Sms::confirm_setup`](crate::service::Sms::confirm_setup).
    pub(crate) async fn confirm_sms_setup(
        &self,
        user: &str,
        code: &str,
    ) -> Result<PhoneNumber, Error> {
        check_user(user)?;
        let stored = self
            .verify_purpose_code(user, code, CodePurpose::SmsSetup)
            .await?;
        let number = PhoneNumber::parse(&stored)
            .map_err(|_| Error::Store(crate::error::StoreError::corrupt("pending phone")))?;
        let now = self.now();
        self.update(user, |rec| {
            rec.phone = Some(PhoneRecord::new(number.clone(), now));
            rec.last_verified_at = Some(now);
            Ok(true)
        })
        .await?;
        let ended = self.end_challenges(user).await;
        self.event(Event::FactorEnabled {
            user: user.to_owned(),
            method: Method::Sms,
        });
        ended.map(|()| number)
    }

    /// The configured text sender.
    pub(crate) fn text_sender(&self) -> Result<&dyn TextSender, Error> {
        self.inner
            .texts
            .as_deref()
            .ok_or_else(|| Error::InvalidConfig("text_sender is not configured".into()))
    }
}

//! Where a user's short-lived records live: the store keys of one user ([`UserKeys`]) and the
//! purposes of codes sent outside a login challenge ([`CodePurpose`]). Values only; every flow
//! builds its keys here.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::challenge::TAG_BYTES;
use crate::mail::SecurityAction;
use crate::store::StoreKey;

/// Purposes of codes sent outside a login challenge. A step-up code names the change it
/// confirms in its message, and is bound to it (see [`CodePurpose::scope`]); one step-up code
/// is pending at a time, whatever its change.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum CodePurpose {
    EmailSetup,
    SmsSetup,
    Registration,
    StepUp(SecurityAction),
    /// A security key's registration ceremony (its state, not a code).
    #[cfg(feature = "webauthn")]
    SecurityKeyRegistration,
    /// A security key's step-up ceremony (its state, not a code).
    #[cfg(feature = "webauthn")]
    SecurityKeyStepUp,
}

/// The purpose a step-up code is stored under, whatever change it names (its keyed hash is
/// bound to the change: [`CodePurpose::scope`]).
pub(crate) const STEP_UP: CodePurpose = CodePurpose::StepUp(SecurityAction::AddFactor);

/// Every change a step-up code may name.
pub(crate) const SECURITY_ACTIONS: [SecurityAction; 3] = [
    SecurityAction::AddFactor,
    SecurityAction::DisableTwoFactor,
    SecurityAction::RegenerateBackupCodes,
];

impl CodePurpose {
    pub(crate) fn name(self) -> &'static str {
        match self {
            CodePurpose::EmailSetup => "email-setup",
            CodePurpose::SmsSetup => "sms-setup",
            CodePurpose::Registration => "registration",
            CodePurpose::StepUp(_) => "step-up",
            #[cfg(feature = "webauthn")]
            CodePurpose::SecurityKeyRegistration => "sk-register",
            #[cfg(feature = "webauthn")]
            CodePurpose::SecurityKeyStepUp => "sk-step-up",
        }
    }

    /// What a code of this purpose is bound to, in its keyed hash: the purpose's
    /// [`name`](Self::name) and, for a step-up code, the change it confirms, so that a code
    /// mailed for one change does not confirm another. (A code to add a factor keeps the
    /// purpose's name alone, the scope every step-up code had before the change was bound.)
    pub(crate) fn scope(self) -> &'static str {
        match self {
            CodePurpose::StepUp(SecurityAction::AddFactor) => "step-up",
            CodePurpose::StepUp(SecurityAction::DisableTwoFactor) => "step-up:disable",
            CodePurpose::StepUp(SecurityAction::RegenerateBackupCodes) => "step-up:regenerate",
            other => other.name(),
        }
    }
}

/// The keys of one user's short-lived records. All of them carry the user's key tag (a keyed
/// hash of the user id) as their `{…}` hash tag, so a Redis Cluster keeps them on one slot and
/// one script can reach them together:
///
/// | record | key |
/// | --- | --- |
/// | the user's record (failures, lock, last TOTP step, sends, last verification) | `tf:{tag}` |
/// | the record of the address checks' failures and lock (registration codes) | `tf:{tag}:r` |
/// | a login challenge | `tf:{tag}:c:<id>` |
/// | a pending code of a purpose | `tf:{tag}:p:<purpose>` |
/// | the password checks since the last correct one | `tf:{tag}:pw:run` |
/// | the same, for recovery requests | `tf:{tag}:pw:recovery` |
/// | the send cooldown of either | the key above + `:s` |
pub(crate) struct UserKeys {
    pub(crate) tag: [u8; TAG_BYTES],
    user: StoreKey,
}

impl UserKeys {
    pub(crate) fn from_tag(tag: [u8; TAG_BYTES]) -> Self {
        let mut base = String::with_capacity(24);
        base.push_str("tf:{");
        URL_SAFE_NO_PAD.encode_string(tag, &mut base);
        base.push('}');
        UserKeys {
            tag,
            user: StoreKey::new(base),
        }
    }

    /// The user's record.
    pub(crate) fn user(&self) -> &StoreKey {
        &self.user
    }

    /// The keys to count address checks (registration codes) with: the same tag, but a record
    /// of their own, `tf:{tag}:r`, in place of the user's record. Attempts opened with them
    /// are limited as at the code step (the same threshold, lock and escalation) without
    /// feeding or ending the user's run, and a pass records no verification there: an address
    /// check is not a factor check. Only their [`user`](Self::user) record is theirs; name
    /// pending codes with the user's own keys.
    pub(crate) fn address_checks(&self) -> UserKeys {
        let base = self.user.as_str();
        let mut key = String::with_capacity(base.len() + 2);
        key.push_str(base);
        key.push_str(":r");
        UserKeys {
            tag: self.tag,
            user: StoreKey::new(key),
        }
    }

    fn under(&self, kind: &str, name: &str) -> StoreKey {
        let base = self.user.as_str();
        let mut key = String::with_capacity(base.len() + kind.len() + name.len() + 2);
        key.push_str(base);
        key.push(':');
        key.push_str(kind);
        key.push(':');
        key.push_str(name);
        StoreKey::new(key)
    }

    /// A login challenge, by its id.
    pub(crate) fn challenge(&self, id: &[u8; 16]) -> StoreKey {
        let mut name = String::with_capacity(22);
        URL_SAFE_NO_PAD.encode_string(id, &mut name);
        self.under("c", &name)
    }

    /// The pending code of a purpose.
    pub(crate) fn pending(&self, purpose: CodePurpose) -> StoreKey {
        self.under("p", purpose.name())
    }

    /// The count of password checks since the last correct password, at
    /// [`disable`](crate::service::Account::disable) and the other signed-in changes.
    pub(crate) fn password_run(&self) -> StoreKey {
        self.under("pw", "run")
    }

    /// The same count for [`recovery().request`](crate::service::Recovery::request), which
    /// needs no session: kept apart, so that a stranger's guesses there never lock the owner's
    /// password at `disable`.
    pub(crate) fn recovery_password_run(&self) -> StoreKey {
        self.under("pw", "recovery")
    }

    /// The send cooldown of a challenge or pending code.
    pub(crate) fn cooldown(of: &StoreKey) -> StoreKey {
        let of = of.as_str();
        let mut key = String::with_capacity(of.len() + 2);
        key.push_str(of);
        key.push_str(":s");
        StoreKey::new(key)
    }
}

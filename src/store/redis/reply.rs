//! A composite script's reply: the word that names the outcome, then its values, read with
//! every type and range checked (a reply that does not fit is a corrupt record).

use ::redis::Value;

use crate::clock::Timestamp;
use crate::error::StoreError;
use crate::store::flow::SendRefused;

fn malformed_reply() -> StoreError {
    StoreError::corrupt("a Redis script gave a malformed reply")
}

/// A composite script's reply: an array whose first element names the outcome, then its values.
#[derive(Debug)]
pub(super) struct Reply {
    pub(super) outcome: String,
    rest: std::vec::IntoIter<Value>,
}

impl Reply {
    /// Reads a reply; the outcome `corrupt` (a malformed record, with its reason) is an error.
    pub(super) fn parse(value: Value) -> Result<Self, StoreError> {
        let Value::Array(items) = value else {
            return Err(malformed_reply());
        };
        let mut rest = items.into_iter();
        let outcome = text(rest.next())?;
        let mut reply = Reply { outcome, rest };
        if reply.outcome == "corrupt" {
            let reason = reply.word()?;
            return Err(StoreError::corrupt(format!("Redis holds a {reason}")));
        }
        Ok(reply)
    }

    pub(super) fn word(&mut self) -> Result<String, StoreError> {
        text(self.rest.next())
    }

    pub(super) fn opt_num(&mut self) -> Result<Option<u64>, StoreError> {
        match self.rest.next() {
            Some(Value::Nil) => Ok(None),
            Some(Value::Int(n)) => u64::try_from(n).map(Some).map_err(|_| malformed_reply()),
            _ => Err(malformed_reply()),
        }
    }

    pub(super) fn num(&mut self) -> Result<u64, StoreError> {
        self.opt_num()?.ok_or_else(malformed_reply)
    }

    pub(super) fn count(&mut self) -> Result<u32, StoreError> {
        u32::try_from(self.num()?).map_err(|_| malformed_reply())
    }

    pub(super) fn opt_count(&mut self) -> Result<Option<u32>, StoreError> {
        self.opt_num()?
            .map(|n| u32::try_from(n).map_err(|_| malformed_reply()))
            .transpose()
    }

    pub(super) fn time(&mut self) -> Result<Timestamp, StoreError> {
        self.num().map(Timestamp::from_unix_secs)
    }

    pub(super) fn opt_time(&mut self) -> Result<Option<Timestamp>, StoreError> {
        Ok(self.opt_num()?.map(Timestamp::from_unix_secs))
    }

    pub(super) fn opt_bytes(&mut self) -> Result<Option<Vec<u8>>, StoreError> {
        match self.rest.next() {
            Some(Value::Nil) => Ok(None),
            Some(Value::BulkString(b)) => Ok(Some(b)),
            _ => Err(malformed_reply()),
        }
    }

    pub(super) fn bytes(&mut self) -> Result<Vec<u8>, StoreError> {
        self.opt_bytes()?.ok_or_else(malformed_reply)
    }

    /// A refused send: its kind, then its end.
    pub(super) fn refusal(&mut self, kind: &str) -> Result<SendRefused, StoreError> {
        let until = self.time()?;
        match kind {
            "cooldown" => Ok(SendRefused::Cooldown { until }),
            "capped" => Ok(SendRefused::Capped { until }),
            _ => Err(malformed_reply()),
        }
    }

    pub(super) fn unexpected<T>(&self) -> Result<T, StoreError> {
        Err(StoreError::corrupt(format!(
            "a Redis script gave an unexpected outcome `{}`",
            self.outcome
        )))
    }
}

fn text(value: Option<Value>) -> Result<String, StoreError> {
    match value {
        Some(Value::BulkString(b)) => String::from_utf8(b).map_err(|_| malformed_reply()),
        Some(Value::SimpleString(s)) => Ok(s),
        _ => Err(malformed_reply()),
    }
}

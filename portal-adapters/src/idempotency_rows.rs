//! What the SQL idempotency stores share: the SQL text of a claim's follow-up read, and
//! how a row's columns become a [`Claim`], so both backends read a record alike.

use portal_core::idempotency::{Claim, StoredAnswer};
use portal_core::store::StoreError;

use crate::sql::Backend;

/// A record's columns, as read.
pub(crate) struct RecordRow {
    pub(crate) fingerprint: Vec<u8>,
    pub(crate) hold: Option<Vec<u8>>,
    pub(crate) status: Option<i64>,
    pub(crate) headers: Option<String>,
    pub(crate) body: Option<Vec<u8>>,
}

impl RecordRow {
    /// The claim this row, which the claim did not take, reports.
    pub(crate) fn into_claim(self, backend: Backend) -> Result<Claim, StoreError> {
        let fingerprint: [u8; 32] = backend.decode(
            || "fingerprint of an idempotency record".to_owned(),
            <[u8; 32]>::try_from(self.fingerprint.as_slice()),
        )?;
        if self.hold.is_some() {
            return Ok(Claim::InFlight { fingerprint });
        }
        let answer = match self.status {
            None => None,
            Some(status) => {
                let status = backend.decode(|| "status of an idempotency record".to_owned(), u16::try_from(status))?;
                let headers: Vec<(String, String)> = backend.decode(
                    || "headers of an idempotency record".to_owned(),
                    serde_json::from_str(self.headers.as_deref().unwrap_or("[]")),
                )?;
                Some(StoredAnswer {
                    status,
                    headers,
                    body: self.body.unwrap_or_default(),
                })
            }
        };
        Ok(Claim::Done { fingerprint, answer })
    }
}

/// An answer's headers as stored (a JSON array of pairs).
pub(crate) fn headers_text(backend: Backend, headers: &[(String, String)]) -> Result<String, StoreError> {
    serde_json::to_string(headers).map_err(|_| backend.corrupt("headers of an idempotency answer"))
}

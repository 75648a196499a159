//! What the CRM says happened: a lead reached a stage at a time.

use crate::lead_id::LeadId;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Where a stage change came from, for error messages and quarantine records.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Origin {
    /// Source name: a file path, `stdin`, `http`, a configured source's name.
    pub source: String,
    /// 1-based line (files) or record number (other sources); 0 when unknown.
    pub line: u64,
}

impl Origin {
    /// An origin at `source:line`.
    pub fn new(source: impl Into<String>, line: u64) -> Self {
        Origin {
            source: source.into(),
            line,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}", self.source, self.line)
        } else {
            f.write_str(&self.source)
        }
    }
}

/// Raw contact data as the CRM holds it. It is normalized and hashed by
/// [`crate::prepare`] and must never be stored or logged as is.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Contact {
    /// Email address.
    pub email: Option<String>,
    /// Phone number, in any common notation.
    pub phone: Option<String>,
    /// First name.
    pub first_name: Option<String>,
    /// Last name.
    pub last_name: Option<String>,
    /// City, as the CRM holds it.
    pub city: Option<String>,
    /// State, province or region.
    pub state: Option<String>,
    /// Postal code.
    pub zip: Option<String>,
    /// Country name or code.
    pub country: Option<String>,
    /// Date of birth.
    pub date_of_birth: Option<String>,
    /// Gender word.
    pub gender: Option<String>,
    /// The advertiser's own ID for the person.
    pub external_id: Option<String>,
    /// Further e-mail addresses of the same person (another column of the
    /// export): sent too, Meta takes several values per key.
    pub other_emails: Vec<String>,
    /// Further phone numbers (work and mobile, say): sent too.
    pub other_phones: Vec<String>,
}

impl fmt::Debug for Contact {
    /// Shows which fields are present, never their values.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let present: Vec<&str> = [
            ("email", &self.email),
            ("phone", &self.phone),
            ("first_name", &self.first_name),
            ("last_name", &self.last_name),
            ("city", &self.city),
            ("state", &self.state),
            ("zip", &self.zip),
            ("country", &self.country),
            ("date_of_birth", &self.date_of_birth),
            ("gender", &self.gender),
            ("external_id", &self.external_id),
        ]
        .into_iter()
        .filter(|(_, v)| v.is_some())
        .map(|(k, _)| k)
        .chain((!self.other_emails.is_empty()).then_some("other_emails"))
        .chain((!self.other_phones.is_empty()).then_some("other_phones"))
        .collect();
        write!(f, "Contact {{ present: {present:?} }}")
    }
}

/// Limited Data Use settings (`data_processing_options*`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DataProcessing {
    /// `["LDU"]` to enable Limited Data Use, `[]` to disable it explicitly.
    pub options: Vec<String>,
    /// `data_processing_options_country`: 1 = USA, 0 = geolocate.
    pub country: Option<i64>,
    /// `data_processing_options_state`: 0 = geolocate, 1000–1013 = a US state.
    pub state: Option<i64>,
}

/// One stage change of one lead, as the CRM reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StageChange {
    /// Meta's lead ID, when the CRM stored it.
    pub lead_id: Option<LeadId>,
    /// Why the lead ID the record gave could not be read (a spreadsheet's
    /// scientific notation, a lost digit): the row is rejected only when no
    /// other key can identify the lead (`prepare`).
    pub lead_id_error: Option<crate::lead_id::LeadIdError>,
    /// The CRM's own record ID.
    pub crm_id: Option<String>,
    /// The CRM's stage name.
    pub stage: String,
    /// When the stage changed, Unix seconds.
    pub changed_at: i64,
    /// When the lead was created, Unix seconds, if known.
    pub lead_created_at: Option<i64>,
    /// Contact data, raw.
    pub contact: Contact,
    /// Meta click ID (`fb.1.<ms>.<fbclid>`), passed through unchanged.
    pub fbc: Option<String>,
    /// Meta browser ID (`fb.1.<ms>.<random>`), passed through unchanged.
    pub fbp: Option<String>,
    /// Limited Data Use settings, if any.
    pub data_processing: Option<DataProcessing>,
    /// Where it came from.
    pub origin: Origin,
}

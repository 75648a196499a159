//! Why a stage change cannot become an event.

use serde::Serialize;
use std::fmt;

/// One broken rule. `code` is stable (scripts count by it); `message` is for
/// people and never contains raw contact data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// Stable rule code, e.g. `event_time.too_old`.
    pub code: &'static str,
    /// The record field concerned, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'static str>,
    /// Human explanation.
    pub message: String,
}

impl Violation {
    /// A violation of `code` about `field`.
    pub fn new(
        code: &'static str,
        field: Option<&'static str>,
        message: impl Into<String>,
    ) -> Self {
        Violation {
            code,
            field,
            message: message.into(),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.field {
            Some(field) => write!(f, "{field}: {} [{}]", self.message, self.code),
            None => write!(f, "{} [{}]", self.message, self.code),
        }
    }
}

/// A contact field left out of an event, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dropped {
    /// Record field name (`email`).
    pub field: &'static str,
    /// Stable rule code (`em.invalid`).
    pub rule: &'static str,
    /// Human explanation (no raw value).
    pub message: String,
}

impl fmt::Display for Dropped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} dropped: {} [{}]",
            self.field, self.message, self.rule
        )
    }
}

/// Something the user should know about a stage change that is still used:
/// a value read in a way that may not be what was meant, a stage sent
/// outside the funnel, a status with no time. Messages never repeat raw
/// contact data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// Record field concerned (`changed_at`, `stage`, `email`).
    pub field: &'static str,
    /// Stable rule code (`changed_at.ambiguous_local_time`).
    pub rule: &'static str,
    /// Human explanation (no raw contact value).
    pub message: String,
}

impl Warning {
    /// A warning of `rule` about `field`.
    pub fn new(field: &'static str, rule: &'static str, message: impl Into<String>) -> Self {
        Warning {
            field,
            rule,
            message: message.into(),
        }
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} [{}]", self.field, self.message, self.rule)
    }
}

//! Meta's lead ID: an exact integer of 15 to 17 digits, never hashed, never a float.

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// The ID Meta gives every lead (`leadgen_id` in the webhook, `id` of the lead
/// node, first column of the Lead Ads CSV download). Always 15 to 17 digits.
///
/// Parsing accepts digit strings and JSON integers, tolerates surrounding
/// spaces and the `l:` label of Meta's CSV download, and rejects everything a
/// spreadsheet does to long numbers. It serializes as a JSON integer.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LeadId(u64);

/// Fewest digits a Meta lead ID has.
pub const MIN_DIGITS: usize = 15;
/// Most digits a Meta lead ID has.
pub const MAX_DIGITS: usize = 17;

/// Why a value is not a Meta lead ID. Each variant's message tells the user
/// what probably happened and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeadIdError {
    /// Nothing but spaces (or the bare label).
    #[error("lead_id is empty")]
    Empty,
    /// `1.23457E+15`: a spreadsheet showed the number in scientific notation
    /// and the digits past the precision are gone.
    #[error("lead_id {0:?} is in scientific notation: a spreadsheet rounded it and its last digits are lost; re-export the column as text")]
    Scientific(String),
    /// `1234567890123450.0`: converted to a floating-point number.
    #[error("lead_id {0:?} has a decimal part: it went through a floating-point number, which keeps only 15-16 significant digits, so digits may be lost; re-export the column as text")]
    Decimal(String),
    /// `1,234,567,890,123,456` or `1 234 567 890 123 456`.
    #[error("lead_id {0:?} contains thousands separators: it was formatted as a number; re-export the column as text")]
    ThousandsSeparator(String),
    /// A minus sign.
    #[error("lead_id {0:?} is negative: Meta lead IDs are positive")]
    Negative(String),
    /// Leading zeros: Meta lead IDs never start with 0.
    #[error("lead_id {0:?} starts with 0: Meta lead IDs never do, so it was zero-padded or is not a Meta lead ID")]
    LeadingZero(String),
    /// Digits only, but not 15-17 of them.
    #[error("lead_id {value:?} has {digits} digits: Meta lead IDs have 15 to 17")]
    Length {
        /// The value as given (trimmed).
        value: String,
        /// How many digits it has.
        digits: usize,
    },
    /// Anything else that is not a digit string.
    #[error("lead_id {0:?} is not a number: Meta lead IDs are 15 to 17 digits")]
    NotDigits(String),
}

impl LeadIdError {
    /// As a violation of the record's `lead_id` field.
    pub fn violation(&self) -> crate::Violation {
        crate::Violation::new(self.code(), Some("lead_id"), self.to_string())
    }

    /// Stable rule code, for counting and reports.
    pub fn code(&self) -> &'static str {
        match self {
            LeadIdError::Empty => "lead_id.empty",
            LeadIdError::Scientific(_) => "lead_id.scientific_notation",
            LeadIdError::Decimal(_) => "lead_id.decimal",
            LeadIdError::ThousandsSeparator(_) => "lead_id.thousands_separator",
            LeadIdError::Negative(_) => "lead_id.negative",
            LeadIdError::LeadingZero(_) => "lead_id.leading_zero",
            LeadIdError::Length { .. } => "lead_id.length",
            LeadIdError::NotDigits(_) => "lead_id.not_digits",
        }
    }
}

impl LeadId {
    /// Parses a lead ID from text (see the type's documentation).
    pub fn parse(input: &str) -> Result<LeadId, LeadIdError> {
        let trimmed = input.trim();
        let body = trimmed
            .strip_prefix("l:")
            .or_else(|| trimmed.strip_prefix("L:"))
            .map(str::trim)
            .unwrap_or(trimmed);
        if body.is_empty() {
            return Err(LeadIdError::Empty);
        }
        let bytes = body.as_bytes();
        if bytes.iter().all(u8::is_ascii_digit) {
            return Self::from_digits(body);
        }
        let owned = || body.to_string();
        if bytes[0] == b'-' {
            return Err(LeadIdError::Negative(owned()));
        }
        let numeric_shape = bytes
            .iter()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b',' | b'+' | b'e' | b'E' | b' '));
        if numeric_shape && bytes.iter().any(|b| matches!(b, b'e' | b'E')) {
            return Err(LeadIdError::Scientific(owned()));
        }
        if numeric_shape && looks_grouped(body) {
            return Err(LeadIdError::ThousandsSeparator(owned()));
        }
        if numeric_shape && bytes.iter().filter(|b| matches!(b, b'.' | b',')).count() == 1 {
            return Err(LeadIdError::Decimal(owned()));
        }
        Err(LeadIdError::NotDigits(owned()))
    }

    fn from_digits(digits: &str) -> Result<LeadId, LeadIdError> {
        if digits.starts_with('0') {
            return Err(LeadIdError::LeadingZero(digits.to_string()));
        }
        if !(MIN_DIGITS..=MAX_DIGITS).contains(&digits.len()) {
            return Err(LeadIdError::Length {
                value: digits.to_string(),
                digits: digits.len(),
            });
        }
        // 17 digits always fit in u64 (max 20 digits).
        Ok(LeadId(
            digits.parse().expect("15-17 ASCII digits fit in u64"),
        ))
    }

    /// Checks an integer (a JSON number) as a lead ID.
    pub fn from_u64(value: u64) -> Result<LeadId, LeadIdError> {
        let digits = decimal_len(value);
        if !(MIN_DIGITS..=MAX_DIGITS).contains(&digits) {
            return Err(LeadIdError::Length {
                value: value.to_string(),
                digits,
            });
        }
        Ok(LeadId(value))
    }

    /// The ID as an integer.
    pub fn get(self) -> u64 {
        self.0
    }
}

fn decimal_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 10 {
        v /= 10;
        n += 1;
    }
    n
}

/// `1,234,567` / `1.234.567` / `1 234 567`: groups of three digits after the
/// first group, separated by one repeated separator.
fn looks_grouped(s: &str) -> bool {
    for sep in [',', '.', ' '] {
        let groups: Vec<&str> = s.split(sep).collect();
        if groups.len() >= 3
            && groups[0].len() <= 3
            && !groups[0].is_empty()
            && groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_digit()))
            && groups[1..].iter().all(|g| g.len() == 3)
        {
            return true;
        }
    }
    false
}

impl FromStr for LeadId {
    type Err = LeadIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LeadId::parse(s)
    }
}

impl fmt::Display for LeadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Debug for LeadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LeadId({})", self.0)
    }
}

impl Serialize for LeadId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for LeadId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LeadIdVisitor)
    }
}

struct LeadIdVisitor;

impl Visitor<'_> for LeadIdVisitor {
    type Value = LeadId;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Meta lead ID: an integer or a string of 15 to 17 digits")
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<LeadId, E> {
        LeadId::from_u64(v).map_err(E::custom)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<LeadId, E> {
        if v < 0 {
            return Err(E::custom(LeadIdError::Negative(v.to_string())));
        }
        LeadId::from_u64(v as u64).map_err(E::custom)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<LeadId, E> {
        Err(E::custom(float_error(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<LeadId, E> {
        LeadId::parse(v).map_err(E::custom)
    }
}

/// The error for a lead ID that arrived as a floating-point number.
pub fn float_error(v: f64) -> LeadIdError {
    let text = format!("{v:e}");
    if v.abs() >= 1e15 {
        LeadIdError::Scientific(text)
    } else {
        LeadIdError::Decimal(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_good_ids() {
        for (input, want) in [
            ("1234567890123456", 1234567890123456u64),
            ("  525645896321548 ", 525645896321548),
            ("l:12345678901234567", 12345678901234567),
            ("L: 1234567890123456", 1234567890123456),
        ] {
            assert_eq!(LeadId::parse(input).unwrap().get(), want, "{input}");
        }
    }

    #[test]
    fn rejects_spreadsheet_damage_with_specific_codes() {
        for (input, code) in [
            ("", "lead_id.empty"),
            ("l:", "lead_id.empty"),
            ("1.23457E+15", "lead_id.scientific_notation"),
            ("1,23457E+15", "lead_id.scientific_notation"),
            ("1.234567890123E15", "lead_id.scientific_notation"),
            ("1234567890123450.0", "lead_id.decimal"),
            ("1234567890123450,00", "lead_id.decimal"),
            ("1,234,567,890,123,456", "lead_id.thousands_separator"),
            ("1.234.567.890.123.456", "lead_id.thousands_separator"),
            ("1 234 567 890 123 456", "lead_id.thousands_separator"),
            ("-1234567890123456", "lead_id.negative"),
            ("01234567890123456", "lead_id.leading_zero"),
            ("000001234567890123", "lead_id.leading_zero"),
            ("12345678901234", "lead_id.length"),
            ("123456789012345678", "lead_id.length"),
            ("abc", "lead_id.not_digits"),
            ("12345678901234x6", "lead_id.not_digits"),
        ] {
            let err = LeadId::parse(input).unwrap_err();
            assert_eq!(err.code(), code, "{input:?}: {err}");
        }
    }

    #[test]
    fn json_integer_round_trip_is_exact() {
        // 2^53 + 1 is not representable as f64: it must survive untouched.
        let v = 9_007_199_254_740_993u64;
        let id: LeadId = serde_json::from_str(&v.to_string()).unwrap();
        assert_eq!(id.get(), v);
        assert_eq!(serde_json::to_string(&id).unwrap(), v.to_string());
        let id: LeadId = serde_json::from_str("\"l:12345678901234567\"").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "12345678901234567");
    }

    #[test]
    fn json_floats_and_negatives_are_refused() {
        let e = serde_json::from_str::<LeadId>("1.23457e15").unwrap_err();
        assert!(e.to_string().contains("scientific notation"), "{e}");
        let e = serde_json::from_str::<LeadId>("1234567890123450.0").unwrap_err();
        assert!(
            e.to_string().contains("scientific") || e.to_string().contains("decimal"),
            "{e}"
        );
        let e = serde_json::from_str::<LeadId>("-1234567890123456").unwrap_err();
        assert!(e.to_string().contains("negative"), "{e}");
        let e = serde_json::from_str::<LeadId>("12345").unwrap_err();
        assert!(e.to_string().contains("has 5 digits"), "{e}");
    }
}

//! The stage-change record (ARCHITECTURE.md, "The stage-change record"): one shape for JSONL files, generic
//! CSV headers, the HTTP ingest API and `leadsignal preview`. Values arrive
//! loosely typed (CSV gives text, JSON numbers or text); [`StageChangeRecord::into_stage_change`]
//! checks them and says exactly what is wrong.

use crate::lead_id::{float_error, LeadId};
use crate::stage_change::{Contact, DataProcessing, Origin, StageChange};
use crate::violation::Violation;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A loosely typed value: what a JSON field or a CSV cell holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Scalar {
    /// Text (all CSV cells).
    Text(String),
    /// A JSON integer.
    Int(i128),
    /// A JSON number with a fraction or exponent.
    Float(f64),
    /// A JSON boolean.
    Bool(bool),
}

impl Scalar {
    /// The value as text (numbers in decimal). Empty text counts as absent.
    pub fn text(&self) -> Option<String> {
        match self {
            Scalar::Text(s) if s.trim().is_empty() => None,
            Scalar::Text(s) => Some(s.clone()),
            Scalar::Int(i) => Some(i.to_string()),
            Scalar::Float(f) => Some(f.to_string()),
            Scalar::Bool(b) => Some(b.to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar::Text(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
                Ok(Scalar::Text(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar::Int(v.into()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar::Int(v.into()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar::Float(v))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar::Bool(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// `["LDU"]`, `"LDU"` (one option, as CSV writes it) or `[]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Options {
    /// A JSON array.
    Many(Vec<String>),
    /// One value; a CSV cell may hold several separated by `|` or `,`.
    One(String),
}

/// The stage-change record (field names are a contract: ARCHITECTURE.md).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct StageChangeRecord {
    pub lead_id: Option<Scalar>,
    pub crm_id: Option<Scalar>,
    pub stage: Option<Scalar>,
    pub changed_at: Option<Scalar>,
    pub lead_created_at: Option<Scalar>,
    pub email: Option<Scalar>,
    pub phone: Option<Scalar>,
    pub first_name: Option<Scalar>,
    pub last_name: Option<Scalar>,
    /// "Jane Doe": split into first and last name where those are absent
    /// (never hashed whole).
    pub full_name: Option<Scalar>,
    pub city: Option<Scalar>,
    pub state: Option<Scalar>,
    pub zip: Option<Scalar>,
    pub country: Option<Scalar>,
    pub date_of_birth: Option<Scalar>,
    pub gender: Option<Scalar>,
    pub external_id: Option<Scalar>,
    pub fbc: Option<Scalar>,
    pub fbp: Option<Scalar>,
    pub data_processing_options: Option<Options>,
    pub data_processing_options_country: Option<Scalar>,
    pub data_processing_options_state: Option<Scalar>,
    /// Further e-mail addresses from other columns of a CSV row (not a JSON
    /// key).
    #[serde(skip)]
    pub other_emails: Vec<String>,
    /// Further phone numbers from other columns of a CSV row (not a JSON key).
    #[serde(skip)]
    pub other_phones: Vec<String>,
}

/// Every field name of the record, in declaration order: serde's own list
/// for [`StageChangeRecord`] (fields skipped by serde are not record
/// fields). The struct is the one definition: the CSV header check, the
/// generic column mapping, SQL sources and the HTTP API's schema (checked
/// by a test in the binary) all read this.
pub fn record_fields() -> &'static [&'static str] {
    static FIELDS: std::sync::OnceLock<&'static [&'static str]> = std::sync::OnceLock::new();
    FIELDS.get_or_init(|| {
        let mut capture = FieldCapture(&[]);
        let _ = StageChangeRecord::deserialize(&mut capture);
        capture.0
    })
}

/// A deserializer that only records the field list serde gives it.
struct FieldCapture(&'static [&'static str]);

impl<'de> Deserializer<'de> for &mut FieldCapture {
    type Error = de::value::Error;

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0 = fields;
        Err(de::Error::custom("field list captured"))
    }

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("only a struct's field list is read"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

impl StageChangeRecord {
    /// Sets a field from text by its record name (used for CSV cells).
    /// Returns false for an unknown name.
    pub fn set_text(&mut self, name: &str, value: &str) -> bool {
        let v = (!value.trim().is_empty()).then(|| Scalar::Text(value.to_string()));
        self.set(name, v)
    }

    /// Sets a field by its record name. Returns false for an unknown name.
    pub fn set(&mut self, name: &str, value: Option<Scalar>) -> bool {
        let slot = match name {
            "lead_id" => &mut self.lead_id,
            "crm_id" => &mut self.crm_id,
            "stage" => &mut self.stage,
            "changed_at" => &mut self.changed_at,
            "lead_created_at" => &mut self.lead_created_at,
            "email" => &mut self.email,
            "phone" => &mut self.phone,
            "first_name" => &mut self.first_name,
            "last_name" => &mut self.last_name,
            "full_name" => &mut self.full_name,
            "city" => &mut self.city,
            "state" => &mut self.state,
            "zip" => &mut self.zip,
            "country" => &mut self.country,
            "date_of_birth" => &mut self.date_of_birth,
            "gender" => &mut self.gender,
            "external_id" => &mut self.external_id,
            "fbc" => &mut self.fbc,
            "fbp" => &mut self.fbp,
            "data_processing_options_country" => &mut self.data_processing_options_country,
            "data_processing_options_state" => &mut self.data_processing_options_state,
            "data_processing_options" => {
                self.data_processing_options = value.and_then(|v| v.text()).map(Options::One);
                return true;
            }
            _ => return false,
        };
        *slot = value;
        true
    }

    /// Checks the record's types and formats and builds a `StageChange`.
    pub fn into_stage_change(self, origin: Origin) -> Result<StageChange, Vec<Violation>> {
        let mut v = Vec::new();
        // A malformed lead ID rejects the row only when nothing else can
        // identify the lead: `prepare` decides, knowing the other keys.
        let (lead_id, lead_id_error) = match &self.lead_id {
            None => (None, None),
            Some(s) => match lead_id(s) {
                Ok(id) => (id, None),
                Err(e) => (None, Some(e)),
            },
        };
        let stage = self
            .stage
            .as_ref()
            .and_then(Scalar::text)
            .unwrap_or_default();
        if stage.trim().is_empty() {
            v.push(Violation::new("stage.missing", Some("stage"), "is missing"));
        }
        let changed_at = match &self.changed_at {
            None => {
                v.push(Violation::new(
                    "changed_at.missing",
                    Some("changed_at"),
                    "is missing",
                ));
                0
            }
            Some(s) => time(s, "changed_at", &mut v).unwrap_or(0),
        };
        let lead_created_at = self
            .lead_created_at
            .as_ref()
            .and_then(|s| time(s, "lead_created_at", &mut v));
        let data_processing = data_processing(&self, &mut v);
        if !v.is_empty() {
            // Rejected anyway: say everything that is wrong.
            if let Some(e) = lead_id_error {
                v.insert(0, e.violation());
            }
            return Err(v);
        }
        let text = |s: &Option<Scalar>| s.as_ref().and_then(Scalar::text);
        let mut first_name = text(&self.first_name);
        let mut last_name = text(&self.last_name);
        if let Some(full) = text(&self.full_name) {
            let (f, l) = crate::full_name::split_full_name(&full);
            if first_name.is_none() {
                first_name = f.map(str::to_string);
            }
            if last_name.is_none() {
                last_name = l.map(str::to_string);
            }
        }
        Ok(StageChange {
            lead_id,
            lead_id_error,
            crm_id: text(&self.crm_id).map(|s| s.trim().to_string()),
            stage,
            changed_at,
            lead_created_at,
            contact: Contact {
                email: text(&self.email),
                phone: text(&self.phone),
                first_name,
                last_name,
                city: text(&self.city),
                state: text(&self.state),
                zip: text(&self.zip),
                country: text(&self.country),
                date_of_birth: text(&self.date_of_birth),
                gender: text(&self.gender),
                external_id: text(&self.external_id),
                other_emails: self.other_emails,
                other_phones: self.other_phones,
            },
            fbc: text(&self.fbc),
            fbp: text(&self.fbp),
            data_processing,
            origin,
        })
    }
}

fn lead_id(s: &Scalar) -> Result<Option<LeadId>, crate::lead_id::LeadIdError> {
    match s {
        Scalar::Text(t) if t.trim().is_empty() => Ok(None),
        Scalar::Text(t) => LeadId::parse(t).map(Some),
        Scalar::Int(i) if *i < 0 => Err(crate::lead_id::LeadIdError::Negative(i.to_string())),
        Scalar::Int(i) => match u64::try_from(*i) {
            Ok(u) => LeadId::from_u64(u).map(Some),
            Err(_) => LeadId::parse(&i.to_string()).map(Some),
        },
        Scalar::Float(f) => Err(float_error(*f)),
        Scalar::Bool(b) => LeadId::parse(&b.to_string()).map(Some),
    }
}

/// Unix seconds from an integer, a digit string or an RFC 3339 time.
/// Milliseconds are passed on as they are: the time rules reject them with
/// a specific message.
fn time(s: &Scalar, field: &'static str, v: &mut Vec<Violation>) -> Option<i64> {
    let bad = |v: &mut Vec<Violation>, msg: String| {
        v.push(Violation::new(
            if field == "changed_at" {
                "changed_at.format"
            } else {
                "lead_created_at.format"
            },
            Some(field),
            msg,
        ));
        None
    };
    match s {
        Scalar::Int(i) => i64::try_from(*i)
            .ok()
            .or_else(|| bad(v, format!("{i} is out of range"))),
        Scalar::Float(f) if f.is_finite() => Some(f.floor() as i64),
        Scalar::Float(_) | Scalar::Bool(_) => {
            bad(v, "must be an RFC 3339 time or Unix seconds".into())
        }
        Scalar::Text(t) => {
            let t = t.trim();
            if t.is_empty() {
                if field == "changed_at" {
                    v.push(Violation::new(
                        "changed_at.missing",
                        Some(field),
                        "is missing",
                    ));
                }
                return None;
            }
            if t.bytes().all(|b| b.is_ascii_digit()) {
                return t
                    .parse()
                    .ok()
                    .or_else(|| bad(v, format!("{t:?} is out of range")));
            }
            if let Ok(dt) = chrono::DateTime::parse_from_rfc3339(t) {
                return Some(dt.timestamp());
            }
            let no_zone = chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f").is_ok()
                || chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f").is_ok();
            if no_zone {
                bad(
                    v,
                    format!("{t:?} has no time zone: add Z or an offset such as +02:00"),
                )
            } else {
                bad(
                    v,
                    format!("{t:?} is not an RFC 3339 time (2026-11-20T10:00:00Z) or Unix seconds"),
                )
            }
        }
    }
}

fn small_int(s: &Option<Scalar>, field: &'static str, v: &mut Vec<Violation>) -> Option<i64> {
    match s.as_ref()? {
        Scalar::Int(i) => i64::try_from(*i).ok(),
        Scalar::Text(t) if t.trim().is_empty() => None,
        Scalar::Text(t) => match t.trim().parse() {
            Ok(n) => Some(n),
            Err(_) => {
                v.push(Violation::new(
                    "ldu.format",
                    Some(field),
                    format!("{t:?} is not an integer"),
                ));
                None
            }
        },
        _ => {
            v.push(Violation::new(
                "ldu.format",
                Some(field),
                "must be an integer",
            ));
            None
        }
    }
}

fn data_processing(r: &StageChangeRecord, v: &mut Vec<Violation>) -> Option<DataProcessing> {
    let country = small_int(
        &r.data_processing_options_country,
        "data_processing_options_country",
        v,
    );
    let state = small_int(
        &r.data_processing_options_state,
        "data_processing_options_state",
        v,
    );
    let options: Option<Vec<String>> = r.data_processing_options.as_ref().map(|o| match o {
        Options::Many(list) => list.iter().map(|s| s.trim().to_string()).collect(),
        Options::One(s) => s
            .split(['|', ','])
            .map(|p| p.trim().trim_matches(['[', ']', '"']).trim().to_string())
            .filter(|p| !p.is_empty())
            .collect(),
    });
    if options.is_none() && country.is_none() && state.is_none() {
        return None;
    }
    Some(DataProcessing {
        options: options.unwrap_or_default(),
        country,
        state,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_field_list_is_the_structs_and_every_field_is_settable() {
        let fields = record_fields();
        assert_eq!(fields.len(), 22);
        assert_eq!(&fields[..4], ["lead_id", "crm_id", "stage", "changed_at"]);
        assert!(fields.contains(&"full_name") && !fields.contains(&"other_emails"));
        let mut r = StageChangeRecord::default();
        for f in fields {
            assert!(
                r.set_text(f, "x"),
                "{f} is a record field but set() refuses it"
            );
            // A JSON object with that one key is a record (deny_unknown_fields).
            let one: Result<StageChangeRecord, _> =
                serde_json::from_str(&format!("{{\"{f}\": \"1\"}}"));
            assert!(one.is_ok(), "{f}: {one:?}");
        }
        assert!(!r.set_text("other_emails", "x") && !r.set_text("emails", "x"));
    }

    fn parse(json: &str) -> Result<StageChange, Vec<&'static str>> {
        let r: StageChangeRecord = serde_json::from_str(json).unwrap();
        r.into_stage_change(Origin::new("t", 1))
            .map_err(|v| v.into_iter().map(|v| v.code).collect())
    }

    #[test]
    fn design_example() {
        let sc = parse(
            r#"{"lead_id": "1234567890123456", "crm_id": "HS-1001", "stage": "mql",
            "changed_at": "2026-11-20T10:00:00Z", "lead_created_at": 1763600000,
            "email": "Jane.Doe@Example.com", "phone": "(650) 555-1212",
            "first_name": "Jane", "last_name": "Doe", "city": "Menlo Park",
            "state": "California", "zip": "94025-1234", "country": "United States",
            "date_of_birth": "1990-02-16", "gender": "female", "external_id": "HS-1001",
            "fbc": "fb.1.1700000000000.AbCdEf"}"#,
        )
        .unwrap();
        assert_eq!(sc.lead_id.unwrap().get(), 1234567890123456);
        assert_eq!(sc.changed_at, 1_795_168_800);
        assert_eq!(sc.lead_created_at, Some(1763600000));
        assert_eq!(sc.contact.email.as_deref(), Some("Jane.Doe@Example.com"));
    }

    #[test]
    fn integer_lead_id_and_unix_string_time() {
        let sc =
            parse(r#"{"lead_id": 12345678901234567, "stage": "new", "changed_at": "1763600000"}"#)
                .unwrap();
        assert_eq!(sc.lead_id.unwrap().get(), 12345678901234567);
        assert_eq!(sc.changed_at, 1763600000);
    }

    #[test]
    fn bad_fields_are_all_reported() {
        assert_eq!(
            parse(r#"{"lead_id": 1.23457e15, "changed_at": "2026-11-20 10:00:00"}"#).unwrap_err(),
            [
                "lead_id.scientific_notation",
                "stage.missing",
                "changed_at.format"
            ]
        );
        assert_eq!(
            parse(r#"{"stage": "new"}"#).unwrap_err(),
            ["changed_at.missing"]
        );
        assert_eq!(
            parse(r#"{"stage": "new", "changed_at": "yesterday"}"#).unwrap_err(),
            ["changed_at.format"]
        );
    }

    #[test]
    fn full_name_fills_missing_first_and_last_names() {
        let sc =
            parse(r#"{"stage": "new", "changed_at": 1763600000, "full_name": "Dr. Jane Q. Doe"}"#)
                .unwrap();
        assert_eq!(sc.contact.first_name.as_deref(), Some("Jane"));
        assert_eq!(sc.contact.last_name.as_deref(), Some("Doe"));
        // Its own columns win.
        let sc = parse(r#"{"stage": "new", "changed_at": 1763600000, "full_name": "Jane Doe", "first_name": "Janet"}"#).unwrap();
        assert_eq!(sc.contact.first_name.as_deref(), Some("Janet"));
        assert_eq!(sc.contact.last_name.as_deref(), Some("Doe"));
    }

    #[test]
    fn unknown_fields_are_refused() {
        let e = serde_json::from_str::<StageChangeRecord>(r#"{"emial": "x"}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `emial`"), "{e}");
    }

    #[test]
    fn ldu_from_csv_text() {
        let mut r = StageChangeRecord::default();
        assert!(r.set_text("stage", "new"));
        assert!(r.set_text("changed_at", "1763600000"));
        assert!(r.set_text("data_processing_options", "LDU"));
        assert!(r.set_text("data_processing_options_country", "1"));
        assert!(r.set_text("data_processing_options_state", "1000"));
        assert!(!r.set_text("nope", "x"));
        let sc = r.into_stage_change(Origin::default()).unwrap();
        assert_eq!(
            sc.data_processing,
            Some(DataProcessing {
                options: vec!["LDU".into()],
                country: Some(1),
                state: Some(1000)
            })
        );
    }
}

//! How a CRM export's columns become stage-change records: column names
//! (with the presets of common CRMs), stage-date columns, and the time zone
//! of times written without an offset.

use chrono::{NaiveDate, NaiveDateTime, TimeZone};
use chrono_tz::Tz;
use leadsignal_core::{Scalar, RECORD_FIELDS};

/// Column mapping of a CSV source.
#[derive(Debug, Clone, Default)]
pub struct Mapping {
    /// Preset name, for messages.
    pub name: String,
    /// Record field ← header names, in order of preference (first non-empty
    /// value wins). Matched trimmed, case-insensitively.
    pub columns: Vec<(&'static str, Vec<String>)>,
    /// Header → CRM stage name: each non-empty date in such a column is one
    /// stage change (HubSpot's "Became a ... Date" properties).
    pub stage_dates: Vec<(String, String)>,
    /// Stage of every row when the file has no stage column (Meta's Lead Ads
    /// download: every row is a new lead).
    pub constant_stage: Option<String>,
    /// `chrono` formats of the export's date-times, tried in order after
    /// RFC 3339 and Unix seconds.
    pub formats: Vec<String>,
    /// Time zone of date-times written without an offset.
    pub time_zone: Option<Tz>,
    /// Column holding each row's time zone (IANA name), overriding `time_zone`.
    pub time_zone_column: Option<String>,
}

/// Presets for CRM exports.
pub const PRESETS: &[&str] = &[
    "hubspot",
    "salesforce",
    "zoho",
    "pipedrive",
    "dynamics",
    "meta-lead-ads",
];

fn cols(pairs: &[(&'static str, &[&str])]) -> Vec<(&'static str, Vec<String>)> {
    pairs
        .iter()
        .map(|(f, hs)| (*f, hs.iter().map(|h| h.to_string()).collect()))
        .collect()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

impl Mapping {
    /// Headers are the record's own field names (the generic format).
    pub fn record_fields() -> Mapping {
        Mapping {
            name: "record fields".into(),
            columns: RECORD_FIELDS
                .iter()
                .map(|f| (*f, vec![f.to_string()]))
                .collect(),
            ..Mapping::default()
        }
    }

    /// A named preset. `first_stage` is the funnel's raw lead stage, used by
    /// exports that carry no stage (Meta's Lead Ads download).
    pub fn preset(name: &str, first_stage: &str) -> Option<Mapping> {
        let m = match name {
            // Contacts export; lifecycle history in "Became a ... Date" columns,
            // dates as "2024-03-05 14:23" in the portal's time zone.
            "hubspot" => Mapping {
                columns: cols(&[
                    ("crm_id", &["Record ID", "Contact ID"]),
                    ("lead_id", &["Facebook Lead ID", "Meta Lead ID", "Lead ID"]),
                    ("lead_created_at", &["Create Date"]),
                    ("email", &["Email"]),
                    ("phone", &["Phone Number", "Mobile Phone Number"]),
                    ("first_name", &["First Name"]),
                    ("last_name", &["Last Name"]),
                    ("city", &["City"]),
                    ("state", &["State/Region"]),
                    ("zip", &["Postal Code"]),
                    ("country", &["Country/Region"]),
                    ("external_id", &["Record ID", "Contact ID"]),
                ]),
                stage_dates: [
                    ("Became a Subscriber Date", "subscriber"),
                    ("Became a Lead Date", "lead"),
                    ("Became a Marketing Qualified Lead Date", "mql"),
                    ("Became a Sales Qualified Lead Date", "sql"),
                    ("Became an Opportunity Date", "opportunity"),
                    ("Became a Customer Date", "customer"),
                ]
                .iter()
                .map(|(h, s)| (h.to_string(), s.to_string()))
                .collect(),
                formats: strings(&[
                    "%Y-%m-%d %H:%M",
                    "%Y-%m-%d %H:%M:%S",
                    "%m/%d/%Y %H:%M",
                    "%Y-%m-%d",
                ]),
                ..Mapping::default()
            },
            // Lead report export (labels) or Data Loader / API names.
            "salesforce" => Mapping {
                columns: cols(&[
                    ("crm_id", &["Lead ID", "Id"]),
                    ("lead_id", &["Facebook Lead ID", "Meta Lead ID"]),
                    ("stage", &["Lead Status", "Status"]),
                    (
                        "changed_at",
                        &[
                            "Last Modified Date",
                            "LastModifiedDate",
                            "Status Last Changed",
                        ],
                    ),
                    (
                        "lead_created_at",
                        &["Create Date", "Created Date", "CreatedDate"],
                    ),
                    ("email", &["Email"]),
                    ("phone", &["Phone", "Mobile", "MobilePhone"]),
                    ("first_name", &["First Name", "FirstName"]),
                    ("last_name", &["Last Name", "LastName"]),
                    ("city", &["City"]),
                    ("state", &["State/Province", "State"]),
                    ("zip", &["Zip/Postal Code", "PostalCode"]),
                    ("country", &["Country"]),
                ]),
                formats: strings(&[
                    "%m/%d/%Y %I:%M %p",
                    "%m/%d/%Y %H:%M",
                    "%m/%d/%Y",
                    "%Y-%m-%dT%H:%M:%S%.3f%z",
                ]),
                ..Mapping::default()
            },
            "zoho" => Mapping {
                columns: cols(&[
                    ("crm_id", &["Record Id", "Lead Id"]),
                    ("lead_id", &["Facebook Lead ID", "Meta Lead ID"]),
                    ("stage", &["Lead Status"]),
                    ("changed_at", &["Modified Time", "Last Activity Time"]),
                    ("lead_created_at", &["Created Time"]),
                    ("email", &["Email"]),
                    ("phone", &["Phone", "Mobile"]),
                    ("first_name", &["First Name"]),
                    ("last_name", &["Last Name"]),
                    ("city", &["City"]),
                    ("state", &["State"]),
                    ("zip", &["Zip Code"]),
                    ("country", &["Country"]),
                ]),
                formats: strings(&["%Y-%m-%d %H:%M:%S", "%b %d, %Y %I:%M %p", "%d/%m/%Y %H:%M"]),
                ..Mapping::default()
            },
            // Deals export.
            "pipedrive" => Mapping {
                columns: cols(&[
                    ("crm_id", &["Deal - ID"]),
                    (
                        "lead_id",
                        &["Deal - Facebook Lead ID", "Person - Facebook Lead ID"],
                    ),
                    ("stage", &["Deal - Stage"]),
                    (
                        "changed_at",
                        &["Deal - Last stage change", "Deal - Update time"],
                    ),
                    ("lead_created_at", &["Deal - Deal created"]),
                    ("email", &["Person - Email", "Person - Email - Work"]),
                    (
                        "phone",
                        &[
                            "Person - Phone",
                            "Person - Phone - Work",
                            "Person - Phone - Mobile",
                        ],
                    ),
                    ("first_name", &["Person - First name"]),
                    ("last_name", &["Person - Last name"]),
                ]),
                formats: strings(&["%Y-%m-%d %H:%M:%S", "%Y-%m-%d"]),
                ..Mapping::default()
            },
            // Export to Excel/CSV from a Leads view.
            "dynamics" => Mapping {
                columns: cols(&[
                    ("crm_id", &["(Do Not Modify) Lead", "Lead"]),
                    ("lead_id", &["Facebook Lead ID", "Meta Lead ID"]),
                    ("stage", &["Status Reason", "Status"]),
                    (
                        "changed_at",
                        &["(Do Not Modify) Modified On", "Modified On"],
                    ),
                    ("lead_created_at", &["Created On"]),
                    ("email", &["Email"]),
                    ("phone", &["Business Phone", "Mobile Phone"]),
                    ("first_name", &["First Name"]),
                    ("last_name", &["Last Name"]),
                    ("city", &["City"]),
                    ("state", &["State/Province"]),
                    ("zip", &["ZIP/Postal Code"]),
                    ("country", &["Country/Region"]),
                ]),
                formats: strings(&["%Y-%m-%dT%H:%M:%S", "%m/%d/%Y %I:%M %p", "%m/%d/%Y %H:%M"]),
                ..Mapping::default()
            },
            // The CSV download of a Lead Ads form: every row is a new lead.
            "meta-lead-ads" => Mapping {
                columns: cols(&[
                    ("lead_id", &["id"]),
                    ("changed_at", &["created_time"]),
                    ("lead_created_at", &["created_time"]),
                    ("email", &["email"]),
                    ("phone", &["phone_number", "phone"]),
                    ("first_name", &["first_name"]),
                    ("last_name", &["last_name"]),
                    ("city", &["city"]),
                    ("state", &["state", "province"]),
                    ("zip", &["zip_code", "post_code", "postal_code"]),
                    ("country", &["country"]),
                    ("date_of_birth", &["date_of_birth"]),
                    ("gender", &["gender"]),
                ]),
                constant_stage: Some(first_stage.to_string()),
                formats: strings(&["%Y-%m-%dT%H:%M:%S%z"]),
                ..Mapping::default()
            },
            _ => return None,
        };
        Some(Mapping {
            name: name.into(),
            ..m
        })
    }

    /// Overrides or adds the column of a record field (`[import.columns]`).
    pub fn set_column(&mut self, field: &'static str, header: &str) {
        self.columns.retain(|(f, _)| *f != field);
        self.columns.push((field, vec![header.to_string()]));
    }

    /// Unix seconds from a date-time as the export writes it: Unix seconds
    /// and RFC 3339 as they are; the preset's formats in `tz` (or the
    /// configured zone). `None` when nothing fits: the text is then passed on
    /// and the record check explains what is wrong.
    pub fn unix_time(&self, text: &str, tz: Option<Tz>) -> Option<i64> {
        let t = text.trim();
        if t.is_empty() || t.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        if let Ok(dt) = chrono::DateTime::parse_from_rfc3339(t) {
            return Some(dt.timestamp());
        }
        for f in &self.formats {
            if f.contains("%z") {
                if let Ok(dt) = chrono::DateTime::parse_from_str(t, f) {
                    return Some(dt.timestamp());
                }
                continue;
            }
            let naive = NaiveDateTime::parse_from_str(t, f).ok().or_else(|| {
                NaiveDate::parse_from_str(t, f)
                    .ok()
                    .and_then(|d| d.and_hms_opt(0, 0, 0))
            });
            if let Some(n) = naive {
                let tz = tz.or(self.time_zone)?;
                // A time skipped by a DST change has no instant; an ambiguous
                // one (repeated hour) takes the earlier.
                return tz.from_local_datetime(&n).earliest().map(|d| d.timestamp());
            }
        }
        None
    }

    /// Converts a time cell into the record's value.
    pub(crate) fn time_cell(&self, text: &str, tz: Option<Tz>) -> Option<Scalar> {
        if text.trim().is_empty() {
            return None;
        }
        Some(match self.unix_time(text, tz) {
            Some(t) => Scalar::Int(t.into()),
            None => Scalar::Text(text.to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_preset_formats_and_zones() {
        let mut m = Mapping::preset("hubspot", "Lead").unwrap();
        // Naive time without a zone: left to the record check to explain.
        assert_eq!(m.unix_time("2026-11-20 10:00", None), None);
        m.time_zone = Some(chrono_tz::America::New_York);
        assert_eq!(m.unix_time("2026-11-20 10:00", None), Some(1_795_186_800));
        assert_eq!(
            m.unix_time("2026-11-20 10:00", Some(chrono_tz::Europe::Paris)),
            Some(1_795_165_200)
        );
        assert_eq!(
            m.unix_time("2026-11-20T10:00:00Z", None),
            Some(1_795_168_800)
        );
        let sf = Mapping::preset("salesforce", "Lead").unwrap();
        assert_eq!(
            sf.unix_time("2026-11-20T10:00:00.000+0000", None),
            Some(1_795_168_800)
        );
        let meta = Mapping::preset("meta-lead-ads", "Lead").unwrap();
        assert_eq!(
            meta.unix_time("2026-11-20T10:00:00+0000", None),
            Some(1_795_168_800)
        );
        assert_eq!(meta.constant_stage.as_deref(), Some("Lead"));
        assert!(Mapping::preset("nope", "Lead").is_none());
        for p in PRESETS {
            assert!(Mapping::preset(p, "Lead").is_some(), "{p}");
        }
    }
}

//! How a CRM export's columns become stage-change records: column names
//! (with the presets of common CRMs), stage columns and stage-date columns
//! (the lead's history), date-time formats and the time zone of times
//! written without an offset, and the file's text encoding.

use crate::decode::TextEncoding;
use chrono::{NaiveDate, NaiveDateTime, TimeZone};
use chrono_tz::Tz;
use leadsignal_core::{record_fields, DateOrder, Funnel, Violation, Warning};

/// Column mapping of a CSV source.
#[derive(Debug, Clone, Default)]
pub struct Mapping {
    /// Preset name, for messages.
    pub name: String,
    /// Record field ← header names, in order of preference (the first
    /// non-empty value wins; e-mails and phones take every value). Matched
    /// trimmed, case-insensitively; a header that appears twice gives two
    /// columns, both read.
    pub columns: Vec<(&'static str, Vec<String>)>,
    /// Columns whose every non-empty date is one stage change (HubSpot's
    /// "Became a ... Date" properties, Pipedrive's won and lost times).
    pub stage_dates: Vec<StageDate>,
    /// Stage of every row when the file has no stage column (Meta's Lead Ads
    /// download: every row is a new lead).
    pub constant_stage: Option<String>,
    /// Values of the stage column that mean "no stage" (Zoho's `-None-`).
    pub no_stage: Vec<String>,
    /// A prefix the export puts before CRM record IDs and the CRM's own API
    /// does not (Zoho's `zcrm_`): removed.
    pub crm_id_prefix: Option<String>,
    /// `chrono` formats of the export's date-times, tried after RFC 3339,
    /// before the built-in ISO and spreadsheet forms.
    pub formats: Vec<String>,
    /// Reading of `05/11/2026` (Excel's re-saved dates): month first or day
    /// first (`normalize.date_order`).
    pub date_order: DateOrder,
    /// Time zone of date-times written without an offset.
    pub time_zone: Option<Tz>,
    /// Column holding each row's time zone (IANA name), overriding `time_zone`.
    pub time_zone_column: Option<String>,
    /// The file's text encoding (`import.encoding`).
    pub encoding: TextEncoding,
    /// The funnel, to give a row's stage changes in funnel order (earliest
    /// stage first); without one, in the order of their times.
    pub funnel: Option<Funnel>,
}

/// A column whose dates are stage changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageDate {
    /// The header.
    pub header: String,
    /// The CRM stage each date is a change to.
    pub stage: String,
    /// Only when this column (header, value) says so, e.g. Pipedrive's
    /// `Deal - Status` = `won` for `Deal - Won time`. Compared trimmed,
    /// case-insensitively; a file without the column takes every date.
    pub only_if: Option<(String, String)>,
}

impl StageDate {
    fn new(header: &str, stage: &str) -> StageDate {
        StageDate {
            header: header.into(),
            stage: stage.into(),
            only_if: None,
        }
    }
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

/// HubSpot's lifecycle stages: (internal value, label's stage words).
pub(crate) const HUBSPOT_STAGES: &[(&str, &str)] = &[
    ("subscriber", "a Subscriber"),
    ("lead", "a Lead"),
    ("marketingqualifiedlead", "a Marketing Qualified Lead"),
    ("salesqualifiedlead", "a Sales Qualified Lead"),
    ("opportunity", "an Opportunity"),
    ("customer", "a Customer"),
    ("evangelist", "an Evangelist"),
    ("other", "an Other Lifecycle Stage"),
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

/// What a date-time cell became.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeCell {
    /// An instant (Unix seconds), with a warning when the local time was
    /// ambiguous.
    At(i64, Option<Warning>),
    /// Digits, or an RFC 3339 time: passed to the record check as they are
    /// (Unix seconds, milliseconds refused there with their own message).
    AsIs,
}

impl Mapping {
    /// Headers are the record's own field names (the generic format).
    pub fn record_fields() -> Mapping {
        Mapping {
            name: "record fields".into(),
            columns: record_fields()
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
            // Contacts export with the lifecycle history: a "Became a ...
            // Date" column per stage (labels), or hs_lifecyclestage_<stage>_date
            // (internal names). "Lifecycle Stage" is the current stage, no
            // event of its own; "Lead Status" has no date at all (reported).
            "hubspot" => Mapping {
                columns: cols(&[
                    (
                        "crm_id",
                        &["Record ID", "Contact ID", "hs_object_id", "vid"],
                    ),
                    (
                        "lead_id",
                        &[
                            "Facebook Lead ID",
                            "Meta Lead ID",
                            "Lead ID",
                            "facebook_lead_id",
                        ],
                    ),
                    ("stage", &["Lead Status", "hs_lead_status"]),
                    ("lead_created_at", &["Create Date", "createdate"]),
                    ("email", &["Email", "email", "Additional email addresses"]),
                    (
                        "phone",
                        &[
                            "Phone Number",
                            "Mobile Phone Number",
                            "phone",
                            "mobilephone",
                        ],
                    ),
                    ("first_name", &["First Name", "firstname"]),
                    ("last_name", &["Last Name", "lastname"]),
                    ("city", &["City", "city"]),
                    ("state", &["State/Region", "state"]),
                    ("zip", &["Postal Code", "zip"]),
                    ("country", &["Country/Region", "country"]),
                    (
                        "external_id",
                        &["Record ID", "Contact ID", "hs_object_id", "vid"],
                    ),
                ]),
                stage_dates: HUBSPOT_STAGES
                    .iter()
                    .flat_map(|(value, label)| {
                        [
                            StageDate::new(&format!("Became {label} Date"), value),
                            StageDate::new(&format!("hs_lifecyclestage_{value}_date"), value),
                        ]
                    })
                    .collect(),
                formats: strings(&["%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"]),
                ..Mapping::default()
            },
            // Lead report export (labels) or Data Loader / API names. A
            // report holds the current status: its time is the record's
            // last modification.
            "salesforce" => Mapping {
                columns: cols(&[
                    ("crm_id", &["Lead ID", "Id", "Record ID"]),
                    (
                        "lead_id",
                        &["Facebook Lead ID", "Meta Lead ID", "Meta_Lead_ID__c"],
                    ),
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
                    ("full_name", &["Name", "Full Name"]),
                    ("city", &["City"]),
                    ("state", &["State/Province", "State"]),
                    ("zip", &["Zip/Postal Code", "PostalCode"]),
                    ("country", &["Country"]),
                ]),
                formats: strings(&["%Y-%m-%dT%H:%M:%S%.3f%z"]),
                ..Mapping::default()
            },
            // Leads module export: IDs as "zcrm_<digits>" so that Excel
            // keeps them whole; an unset status is "-None-".
            "zoho" => Mapping {
                columns: cols(&[
                    ("crm_id", &["Record Id", "Lead Id", "Id"]),
                    (
                        "lead_id",
                        &["Facebook Lead ID", "Meta Lead ID", "Lead ID (Facebook)"],
                    ),
                    ("stage", &["Lead Status"]),
                    ("changed_at", &["Modified Time", "Last Activity Time"]),
                    ("lead_created_at", &["Created Time"]),
                    ("email", &["Email", "Secondary Email"]),
                    ("phone", &["Phone", "Mobile"]),
                    ("first_name", &["First Name"]),
                    ("last_name", &["Last Name"]),
                    ("full_name", &["Lead Name", "Full Name"]),
                    ("city", &["City"]),
                    ("state", &["State"]),
                    ("zip", &["Zip Code"]),
                    ("country", &["Country"]),
                ]),
                no_stage: strings(&["-None-"]),
                crm_id_prefix: Some("zcrm_".into()),
                formats: strings(&["%b %d, %Y %I:%M %p", "%b %d, %Y %H:%M"]),
                ..Mapping::default()
            },
            // Deals export: the pipeline stage since its last change (or
            // since the deal was created when it never moved), and won or
            // lost at their own times.
            "pipedrive" => Mapping {
                columns: cols(&[
                    ("crm_id", &["Deal - ID"]),
                    (
                        "lead_id",
                        &[
                            "Deal - Facebook Lead ID",
                            "Person - Facebook Lead ID",
                            "Deal - Meta Lead ID",
                            "Person - Meta Lead ID",
                        ],
                    ),
                    ("stage", &["Deal - Stage"]),
                    (
                        "changed_at",
                        &["Deal - Last stage change", "Deal - Deal created"],
                    ),
                    ("lead_created_at", &["Deal - Deal created"]),
                    (
                        "email",
                        &[
                            "Person - Email",
                            "Person - Email - Work",
                            "Person - Email - Home",
                            "Person - Email - Other",
                        ],
                    ),
                    (
                        "phone",
                        &[
                            "Person - Phone",
                            "Person - Phone - Work",
                            "Person - Phone - Mobile",
                            "Person - Phone - Home",
                            "Person - Phone - Other",
                        ],
                    ),
                    ("first_name", &["Person - First name"]),
                    ("last_name", &["Person - Last name"]),
                    ("full_name", &["Person - Name", "Deal - Contact person"]),
                ]),
                stage_dates: vec![
                    StageDate {
                        only_if: Some(("Deal - Status".into(), "won".into())),
                        ..StageDate::new("Deal - Won time", "won")
                    },
                    StageDate {
                        only_if: Some(("Deal - Status".into(), "lost".into())),
                        ..StageDate::new("Deal - Lost time", "lost")
                    },
                ],
                formats: strings(&["%Y-%m-%d %H:%M:%S", "%Y-%m-%d"]),
                ..Mapping::default()
            },
            // "Export to Excel" of a Leads view, often saved again as CSV.
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
                    ("email", &["Email", "Email Address 2", "Email Address 3"]),
                    ("phone", &["Business Phone", "Mobile Phone", "Home Phone"]),
                    ("first_name", &["First Name"]),
                    ("last_name", &["Last Name"]),
                    ("full_name", &["Name", "Full Name"]),
                    ("city", &["City", "Address 1: City"]),
                    ("state", &["State/Province", "Address 1: State/Province"]),
                    ("zip", &["ZIP/Postal Code", "Address 1: ZIP/Postal Code"]),
                    ("country", &["Country/Region", "Address 1: Country/Region"]),
                ]),
                ..Mapping::default()
            },
            // The CSV download of a Lead Ads form: every row is a new lead.
            "meta-lead-ads" => Mapping {
                columns: cols(&[
                    ("lead_id", &["id"]),
                    ("changed_at", &["created_time"]),
                    ("lead_created_at", &["created_time"]),
                    ("email", &["email", "work_email"]),
                    ("phone", &["phone_number", "phone", "work_phone_number"]),
                    ("first_name", &["first_name"]),
                    ("last_name", &["last_name"]),
                    ("full_name", &["full_name"]),
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

    /// Overrides or adds the columns of a record field (`[import.columns]`):
    /// candidate headers, the first present wins.
    pub fn set_columns(&mut self, field: &'static str, headers: &[String]) {
        self.columns.retain(|(f, _)| *f != field);
        self.columns.push((field, headers.to_vec()));
    }

    /// Adds a stage-date column, or renames the stage of one the preset
    /// has (`[import.stage_dates]`): they combine with a stage column.
    pub fn set_stage_date(&mut self, header: &str, stage: &str) {
        match self
            .stage_dates
            .iter_mut()
            .find(|d| d.header.trim().eq_ignore_ascii_case(header.trim()))
        {
            Some(d) => d.stage = stage.to_string(),
            None => self.stage_dates.push(StageDate::new(header, stage)),
        }
    }

    /// Every format tried for a naive date-time, in order: the preset's and
    /// the configured ones, ISO 8601, then the spreadsheet forms of
    /// `date_order` (Excel writes `m/d/yyyy h:mm` or `dd.mm.yyyy hh:mm`
    /// when it saves a file again).
    fn all_formats(&self) -> impl Iterator<Item = &str> {
        const ISO: &[&str] = &[
            "%Y-%m-%d %H:%M:%S%.f",
            "%Y-%m-%d %H:%M",
            "%Y-%m-%dT%H:%M:%S%.f",
            "%Y-%m-%dT%H:%M",
            "%Y-%m-%d",
        ];
        const MDY: &[&str] = &[
            "%m/%d/%Y %H:%M:%S",
            "%m/%d/%Y %H:%M",
            "%m/%d/%Y %I:%M:%S %p",
            "%m/%d/%Y %I:%M %p",
            "%m/%d/%Y",
        ];
        const DMY: &[&str] = &[
            "%d.%m.%Y %H:%M:%S",
            "%d.%m.%Y %H:%M",
            "%d/%m/%Y %H:%M:%S",
            "%d/%m/%Y %H:%M",
            "%d-%m-%Y %H:%M:%S",
            "%d-%m-%Y %H:%M",
            "%d.%m.%Y",
            "%d/%m/%Y",
        ];
        let spreadsheet = match self.date_order {
            DateOrder::Mdy => MDY,
            DateOrder::Dmy => DMY,
        };
        self.formats
            .iter()
            .map(String::as_str)
            .chain(ISO.iter().copied())
            .chain(spreadsheet.iter().copied())
    }

    /// A date-time cell of `field` as the export writes it: Unix seconds and
    /// RFC 3339 as they are; other forms in `tz` (else the configured zone).
    /// The violation says what to change: the time zone, the format, the
    /// date order.
    pub fn time(
        &self,
        field: &'static str,
        text: &str,
        tz: Option<Tz>,
    ) -> Result<TimeCell, Violation> {
        let t = text.trim();
        if t.bytes().all(|b| b.is_ascii_digit()) || chrono::DateTime::parse_from_rfc3339(t).is_ok()
        {
            return Ok(TimeCell::AsIs);
        }
        let code = |what: &str| -> &'static str {
            match (field, what) {
                ("changed_at", "format") => "changed_at.format",
                ("changed_at", "zone") => "changed_at.no_time_zone",
                ("changed_at", _) => "changed_at.nonexistent_local_time",
                (_, "format") => "lead_created_at.format",
                (_, "zone") => "lead_created_at.no_time_zone",
                _ => "lead_created_at.nonexistent_local_time",
            }
        };
        let tz = tz.or(self.time_zone);
        for f in self.all_formats() {
            if f.contains("%z") || f.contains("%:z") {
                if let Ok(dt) = chrono::DateTime::parse_from_str(t, f) {
                    return Ok(TimeCell::At(dt.timestamp(), None));
                }
                continue;
            }
            let Some(naive) = naive(t, f) else { continue };
            let Some(tz) = tz else {
                return Err(Violation::new(
                    code("zone"),
                    Some(field),
                    format!(
                        "{t:?} is a local time with no offset, and no time zone is set: set import.time_zone to the CRM's zone (an IANA name such as \"America/New_York\"), or import.time_zone_column"
                    ),
                ));
            };
            return match tz.from_local_datetime(&naive) {
                chrono::LocalResult::Single(d) => Ok(TimeCell::At(d.timestamp(), None)),
                chrono::LocalResult::Ambiguous(early, late) => Ok(TimeCell::At(
                    early.timestamp(),
                    Some(Warning::new(
                        field,
                        if field == "changed_at" {
                            "changed_at.ambiguous_local_time"
                        } else {
                            "lead_created_at.ambiguous_local_time"
                        },
                        format!(
                            "{t:?} occurs twice in {tz} (the clocks went back): read as the earlier, {} rather than {}",
                            early.format("%H:%M %Z"),
                            late.format("%H:%M %Z")
                        ),
                    )),
                )),
                chrono::LocalResult::None => Err(Violation::new(
                    code("nonexistent"),
                    Some(field),
                    format!(
                        "{t:?} does not exist in {tz} (the clocks went forward past it): check the time, or import.time_zone"
                    ),
                )),
            };
        }
        let other = match self.date_order {
            DateOrder::Mdy => ("dmy", DMY_FIRST),
            DateOrder::Dmy => ("mdy", MDY_FIRST),
        };
        let hint =
            if naive(t, other.1).is_some() || naive(t, &format!("{} %H:%M", other.1)).is_some() {
                format!(
                    "; it reads as a {} date: set normalize.date_order = \"{}\"",
                    if other.0 == "dmy" {
                        "day-first"
                    } else {
                        "month-first"
                    },
                    other.0
                )
            } else {
                String::new()
            };
        Err(Violation::new(
            code("format"),
            Some(field),
            format!(
                "{t:?} matches none of the date-time formats of the {} mapping ({}){hint}; add its format to import.formats (chrono syntax, e.g. \"%d/%m/%Y %H:%M\")",
                self.name,
                self.all_formats().take(4).collect::<Vec<_>>().join(", "),
            ),
        ))
    }
}

const DMY_FIRST: &str = "%d/%m/%Y";
const MDY_FIRST: &str = "%m/%d/%Y";

/// `t` as a date-time (or a date at midnight) in format `f`.
fn naive(t: &str, f: &str) -> Option<NaiveDateTime> {
    NaiveDateTime::parse_from_str(t, f).ok().or_else(|| {
        NaiveDate::parse_from_str(t, f)
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(m: &Mapping, t: &str) -> Result<i64, &'static str> {
        match m.time("changed_at", t, None) {
            Ok(TimeCell::At(s, _)) => Ok(s),
            Ok(TimeCell::AsIs) => Err("as is"),
            Err(v) => Err(v.code),
        }
    }

    #[test]
    fn times_in_preset_formats_and_zones() {
        let mut m = Mapping::preset("hubspot", "Lead").unwrap();
        // Naive time without a zone: the message names the key.
        let e = m.time("changed_at", "2026-11-20 10:00", None).unwrap_err();
        assert_eq!(e.code, "changed_at.no_time_zone");
        assert!(e.message.contains("import.time_zone"), "{}", e.message);
        m.time_zone = Some(chrono_tz::America::New_York);
        assert_eq!(at(&m, "2026-11-20 10:00"), Ok(1_795_186_800));
        assert_eq!(
            m.time(
                "changed_at",
                "2026-11-20 10:00",
                Some(chrono_tz::Europe::Paris)
            ),
            Ok(TimeCell::At(1_795_165_200, None))
        );
        assert_eq!(at(&m, "2026-11-20T10:00:00Z"), Err("as is"));
        assert_eq!(at(&m, "1795168800"), Err("as is"));
        let sf = Mapping::preset("salesforce", "Lead").unwrap();
        assert_eq!(at(&sf, "2026-11-20T10:00:00.000+0000"), Ok(1_795_168_800));
        let meta = Mapping::preset("meta-lead-ads", "Lead").unwrap();
        assert_eq!(at(&meta, "2026-11-20T10:00:00+0000"), Ok(1_795_168_800));
        assert_eq!(meta.constant_stage.as_deref(), Some("Lead"));
        assert!(Mapping::preset("nope", "Lead").is_none());
        for p in PRESETS {
            assert!(Mapping::preset(p, "Lead").is_some(), "{p}");
        }
    }

    #[test]
    fn excel_resaved_forms_follow_the_date_order() {
        let mut m = Mapping::preset("pipedrive", "Lead").unwrap();
        m.time_zone = Some(chrono_tz::UTC);
        // US Excel: m/d/yyyy h:mm.
        assert_eq!(at(&m, "11/20/2026 16:45"), Ok(1_795_193_100));
        assert_eq!(at(&m, "11/5/2026 9:05"), Ok(1_793_869_500));
        // Day first does not read as month first: the message says so.
        let e = m.time("changed_at", "20/11/2026 16:45", None).unwrap_err();
        assert_eq!(e.code, "changed_at.format");
        assert!(
            e.message.contains("normalize.date_order = \"dmy\""),
            "{}",
            e.message
        );
        assert!(e.message.contains("import.formats"), "{}", e.message);
        m.date_order = DateOrder::Dmy;
        assert_eq!(at(&m, "20/11/2026 16:45"), Ok(1_795_193_100));
        assert_eq!(at(&m, "20.11.2026 16:45"), Ok(1_795_193_100));
        assert_eq!(at(&m, "05.11.2026 09:05"), Ok(1_793_869_500));
        assert_eq!(at(&m, "yesterday"), Err("changed_at.format"));
    }

    #[test]
    fn local_times_around_dst_changes() {
        let mut m = Mapping::preset("hubspot", "Lead").unwrap();
        m.time_zone = Some(chrono_tz::America::New_York);
        // 2026-11-01 01:30 happens twice in New York: the earlier (EDT).
        match m.time("changed_at", "2026-11-01 01:30", None).unwrap() {
            TimeCell::At(t, Some(w)) => {
                assert_eq!(t, 1_793_511_000); // 05:30 UTC
                assert_eq!(w.rule, "changed_at.ambiguous_local_time");
                assert!(w.message.contains("EDT"), "{}", w.message);
            }
            other => panic!("{other:?}"),
        }
        // 2026-03-08 02:30 never happened there.
        let e = m.time("changed_at", "2026-03-08 02:30", None).unwrap_err();
        assert_eq!(e.code, "changed_at.nonexistent_local_time");
        let e = m
            .time("lead_created_at", "2026-03-08 02:30", None)
            .unwrap_err();
        assert_eq!(e.code, "lead_created_at.nonexistent_local_time");
    }

    #[test]
    fn configured_stage_dates_rename_or_add() {
        let mut m = Mapping::preset("hubspot", "Lead").unwrap();
        let n = m.stage_dates.len();
        m.set_stage_date("became a customer date", "won");
        m.set_stage_date("Demo Booked Date", "demo");
        assert_eq!(m.stage_dates.len(), n + 1);
        assert!(m
            .stage_dates
            .iter()
            .any(|d| d.header == "Became a Customer Date" && d.stage == "won"));
    }
}

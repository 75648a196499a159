//! `prepare`: where a CRM stage change becomes the event Meta receives.
//! Maps the stage, normalizes and hashes contact data, applies the rules.
//! Raw personal data stops here.

use crate::event::{CustomData, ServerEvent, UserData, ACTION_SOURCE, EVENT_SOURCE};
use crate::event_id::{event_id, LeadKey};
use crate::funnel::{Funnel, Lifecycle, StageIndex, StageRef};
use crate::hash::Sha256;
use crate::normalize::{hash_field, lookup_country, Context, Field, NormalizeOptions};
use crate::profile::{apply_legacy, Profile};
use crate::rules::{check_data_processing, TimeRules};
use crate::stage_change::StageChange;
use crate::violation::{Dropped, Violation, Warning};
use std::borrow::Cow;
use std::sync::Arc;

/// What `prepare` needs to know (built once from the configuration).
#[derive(Debug, Clone)]
pub struct PrepareConfig {
    /// The CRM dataset (pixel) ID.
    pub dataset_id: String,
    /// The CRM's name, sent as `custom_data.lead_event_source` (trimmed).
    pub lead_event_source: Arc<str>,
    /// The funnel.
    pub funnel: Funnel,
    /// Normalization settings.
    pub normalize: NormalizeOptions,
    /// Time window settings.
    pub time: TimeRules,
    /// Payload profile.
    pub profile: Profile,
    /// Which keys make an event matchable, and which values are no data.
    pub identity: IdentityRules,
}

/// Who an event must be matchable by (`rules.match_keys`) and which values
/// stand for nothing (`normalize.placeholders`, beside the built-in table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityRules {
    /// Keys of which an event needs at least one, as a mask of
    /// [`UserData::key_mask`] bits ([`key_bit`]).
    pub match_keys: u32,
    /// More placeholder values, folded by
    /// [`crate::normalize::fold_placeholder`].
    pub placeholders: Arc<[String]>,
}

impl Default for IdentityRules {
    /// `lead_id`, `em`, `ph`, `fbc`: what Meta matches a lead on (Meta's
    /// guidance: lead ID and click ID "highest", e-mail "highest", phone
    /// "high"; names, city, ZIP... "medium", never alone).
    fn default() -> Self {
        IdentityRules {
            match_keys: DEFAULT_MATCH_KEYS
                .iter()
                .map(|k| key_bit(k).expect("a key"))
                .fold(0, |m, b| m | b),
            placeholders: Arc::from(Vec::new()),
        }
    }
}

/// `rules.match_keys` by default.
pub const DEFAULT_MATCH_KEYS: [&str; 4] = ["lead_id", "em", "ph", "fbc"];

/// The [`UserData::key_mask`] bit of a key: `lead_id`, a hashed field by
/// Meta's key (`em`) or the record's name (`email`), `fbc`, `fbp`.
pub fn key_bit(name: &str) -> Option<u32> {
    match name.trim() {
        "lead_id" => Some(1),
        "fbc" => Some(1 << 12),
        "fbp" => Some(1 << 13),
        other => Field::from_name(other).map(|f| 1 << (f as u32 + 1)),
    }
}

/// The names of the keys in a mask, in [`UserData::key_mask`] order.
pub fn key_names(mask: u32) -> Vec<&'static str> {
    let mut names = Vec::new();
    if mask & 1 != 0 {
        names.push("lead_id");
    }
    for f in Field::ALL {
        if mask & (1 << (f as u32 + 1)) != 0 {
            names.push(f.meta_key());
        }
    }
    for (bit, name) in [(12, "fbc"), (13, "fbp")] {
        if mask & (1 << bit) != 0 {
            names.push(name);
        }
    }
    names
}

/// The rule of a lead made by Meta's Lead Ads testing tool: not production
/// data, never sent, not an error of the input either.
pub const TEST_LEAD: &str = "lead.test_lead";

/// Whether a contact value is one of the answers Meta's Lead Ads testing
/// tool fills in (`<test lead: dummy data for full_name>`, `test@meta.com`).
fn test_lead_value(v: &str) -> bool {
    let v = v.trim();
    let starts =
        |p: &str| v.len() >= p.len() && v.as_bytes()[..p.len()].eq_ignore_ascii_case(p.as_bytes());
    starts("<test lead:")
        || v.eq_ignore_ascii_case("test@meta.com")
        || v.eq_ignore_ascii_case("test@fb.com")
}

/// A stage change turned into an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// The event exactly as Meta will receive it.
    pub event: ServerEvent,
    /// Funnel stage (None for an unmapped CRM stage).
    pub stage: Option<StageIndex>,
    /// Meta lifecycle category of the stage.
    pub lifecycle: Lifecycle,
    /// Who the event is about (the idempotency key's lead part).
    pub lead_key: LeadKey,
    /// Last moment the event may be sent (Unix seconds).
    pub send_by: i64,
    /// Contact values left out, with reasons.
    pub dropped: Vec<Dropped>,
    /// What else the user should know (a stage sent outside the funnel).
    pub warnings: Vec<Warning>,
}

impl Prepared {
    /// Past its send-by deadline at `now`: stored as expired, never sent
    /// (a CRM's history older than Meta's 7-day window).
    pub fn is_expired(&self, now: i64) -> bool {
        now > self.send_by
    }
}

/// Identifier sets that are not enough on their own (Meta's baseline rule,
/// Graph v13.0+), as masks of [`UserData::key_mask`]; `client_user_agent`
/// never occurs in CRM events.
const BASELINE_INVALID: [u32; 4] = {
    use Field::*;
    const fn bit(f: Field) -> u32 {
        1 << (f as u32 + 1)
    }
    [
        bit(Ct) | bit(Country) | bit(St) | bit(Zp) | bit(Ge),
        bit(Db),
        bit(Fn) | bit(Ge),
        bit(Ln) | bit(Ge),
    ]
};

/// Turns one stage change into a `ServerEvent`, or says every reason it
/// cannot. An event older than Meta's window is still prepared (the stage
/// is a fact of the lead's history); [`Prepared::is_expired`] tells, and
/// the outbox stores it as expired instead of sending it.
pub fn prepare(
    sc: &StageChange,
    cfg: &PrepareConfig,
    now: i64,
) -> Result<Prepared, Vec<Violation>> {
    let c = &sc.contact;
    let values = [
        &c.email,
        &c.phone,
        &c.first_name,
        &c.last_name,
        &c.city,
        &c.state,
        &c.zip,
        &c.country,
    ];
    if values.into_iter().flatten().any(|v| test_lead_value(v)) {
        return Err(vec![Violation::new(
            TEST_LEAD,
            None,
            "a lead made by Meta's Lead Ads testing tool (<test lead: dummy data ...>, test@meta.com): not production data, never sent",
        )]);
    }
    let mut violations = Vec::new();

    let stage = cfg.funnel.resolve(&sc.stage);
    if stage.is_none() {
        violations.push(unknown_stage(&sc.stage, &cfg.funnel));
    }
    cfg.time
        .check(sc.changed_at, sc.lead_created_at, now, &mut violations);
    if cfg.lead_event_source.trim().is_empty() {
        violations.push(Violation::new(
            "custom_data.lead_event_source",
            None,
            "lead_event_source is empty: set [crm] name to the CRM's name (HubSpot, Salesforce, In-house CRM, ...)",
        ));
    }
    if let Some(dp) = &sc.data_processing {
        check_data_processing(dp, &mut violations);
    }

    let mut dropped = Vec::new();
    let user_data = user_data(sc, cfg, now, &mut dropped);
    let present = user_data.key_mask();
    let matchable = present & cfg.identity.match_keys != 0;
    if let Some(e) = &sc.lead_id_error {
        // A lead ID a spreadsheet mangled: left out when another key can
        // still tie the event to the lead, else the row is rejected for it.
        if matchable {
            dropped.push(Dropped {
                field: "lead_id",
                rule: e.code(),
                message: e.to_string(),
            });
        } else {
            violations.push(e.violation());
        }
    }
    let explained = sc.lead_id_error.is_some() && !matchable;
    if present == 0 && !explained {
        violations.push(Violation::new(
            "identifier.none",
            None,
            "no usable identifier: give a lead_id, an email, a phone or other contact data",
        ));
    } else if present != 0 && !explained && BASELINE_INVALID.iter().any(|set| present & !set == 0) {
        violations.push(Violation::new(
            "identifier.baseline_invalid",
            None,
            format!(
                "the only identifiers ({}) are too weak for Meta to match on; add a lead_id, email or phone",
                user_data.keys().join(", ")
            ),
        ));
    } else if present != 0 && !matchable && !explained {
        violations.push(Violation::new(
            "identifier.unmatchable",
            None,
            format!(
                "nothing Meta can match the lead on: it has {} but needs one of {} (rules.match_keys)",
                user_data.keys().join(", "),
                key_names(cfg.identity.match_keys).join(", ")
            ),
        ));
    }

    let Some(stage) = stage.filter(|_| violations.is_empty()) else {
        // Explain dropped fields too: they may be why no identifier is left.
        violations.extend(dropped.into_iter().map(|d| Violation {
            code: d.rule,
            field: Some(d.field),
            message: format!("dropped: {}", d.message),
        }));
        return Err(violations);
    };

    let mut warnings = Vec::new();
    let (index, name, lifecycle) = match stage {
        StageRef::Known(i) => (
            Some(i),
            cfg.funnel.event_name(i).clone(),
            cfg.funnel.stage(i).meta,
        ),
        StageRef::Unmapped(name) => {
            warnings.push(Warning::new(
                "stage",
                "stage.not_assigned",
                format!("CRM stage {name:?} is in no funnel stage: sent under its own name as NOT_ASSIGNED (funnel.unknown_stage = \"not_assigned\"); add it to a stage's crm list to count it in the funnel"),
            ));
            (None, Arc::from(name), Lifecycle::NotAssigned)
        }
    };
    let lead_key = lead_key(sc, &user_data);
    let les = cfg.lead_event_source.as_bytes();
    let trimmed = !les.first().is_some_and(u8::is_ascii_whitespace)
        && !les.last().is_some_and(u8::is_ascii_whitespace);
    let lead_event_source = if trimmed {
        cfg.lead_event_source.clone()
    } else {
        Arc::from(cfg.lead_event_source.trim())
    };
    let mut event = ServerEvent {
        event_id: event_id(&cfg.dataset_id, &lead_key, &name, sc.changed_at),
        event_name: name,
        event_time: sc.changed_at,
        action_source: Cow::Borrowed(ACTION_SOURCE),
        user_data,
        custom_data: CustomData {
            event_source: Cow::Borrowed(EVENT_SOURCE),
            lead_event_source,
            facebook_lifecycle_stage_name: None,
            lifecycle_stage_name: None,
        },
        data_processing_options: None,
        data_processing_options_country: None,
        data_processing_options_state: None,
    };
    if let Some(dp) = &sc.data_processing {
        event.data_processing_options = Some(dp.options.clone());
        event.data_processing_options_country = dp.country;
        event.data_processing_options_state = dp.state;
    }
    if cfg.profile == Profile::LegacyV7 {
        apply_legacy(&mut event, lifecycle.as_str(), sc.stage.trim());
    }
    Ok(Prepared {
        event,
        stage: index,
        lifecycle,
        lead_key,
        send_by: cfg.time.send_by(sc.changed_at),
        dropped,
        warnings,
    })
}

fn unknown_stage(stage: &str, funnel: &Funnel) -> Violation {
    if stage.trim().is_empty() {
        return Violation::new("stage.missing", Some("stage"), "is empty");
    }
    let known: Vec<String> = funnel
        .stages()
        .iter()
        .map(|s| {
            if s.crm.is_empty() {
                format!("{:?}", s.name)
            } else {
                format!("{:?} ({})", s.name, s.crm.join(", "))
            }
        })
        .collect();
    Violation::new(
        "stage.unknown",
        Some("stage"),
        format!(
            "CRM stage {:?} is not in the funnel; add it to a stage's crm list in [funnel] or set funnel.unknown_stage = \"not_assigned\". Known stages: {}",
            stage.trim(),
            known.join("; ")
        ),
    )
}

/// Builds `user_data`: lead ID and click IDs as they are, contact fields
/// normalized and hashed, with a reason for every value left out.
fn user_data(
    sc: &StageChange,
    cfg: &PrepareConfig,
    now: i64,
    dropped: &mut Vec<Dropped>,
) -> Box<UserData> {
    let c = &sc.contact;
    // "N/A" is no country (it would read as Namibia): left to the field
    // loop, which drops it as a placeholder.
    let record_country = c
        .country
        .as_deref()
        .filter(|v| !crate::normalize::is_country_placeholder(v))
        .and_then(lookup_country);
    let ctx = Context::new(&cfg.normalize, record_country, now);
    // Boxed: the event moves several times on its way out, the box does not.
    let mut ud = Box::<UserData>::default();
    ud.lead_id = sc.lead_id;
    thread_local! {
        // Reused between events: one allocation per thread, not per event.
        static SCRATCH: std::cell::RefCell<String> = std::cell::RefCell::new(String::with_capacity(64));
    }
    SCRATCH.with_borrow_mut(|scratch| {
        let fields: [(Field, &Option<String>); 11] = [
            (Field::Em, &c.email),
            (Field::Ph, &c.phone),
            (Field::Fn, &c.first_name),
            (Field::Ln, &c.last_name),
            (Field::Ge, &c.gender),
            (Field::Db, &c.date_of_birth),
            (Field::Ct, &c.city),
            (Field::St, &c.state),
            (Field::Zp, &c.zip),
            (Field::Country, &c.country),
            (Field::ExternalId, &c.external_id),
        ];
        for (field, value) in fields {
            let Some(value) = value.as_deref() else {
                continue;
            };
            // The country was resolved once already, for the context.
            if let (Field::Country, Some(code)) = (field, record_country) {
                let h = Sha256::parse_hex(value)
                    .unwrap_or_else(|| Sha256::of_normalized(code.as_str()));
                ud.country.push(h);
                continue;
            }
            if crate::normalize::is_extra_placeholder(value, &cfg.identity.placeholders) {
                dropped.push(Dropped {
                    field: field.record_name(),
                    rule: field.placeholder_rule(),
                    message: crate::normalize::PLACEHOLDER_MESSAGE.into(),
                });
                continue;
            }
            match hash_field(field, value, &ctx, scratch) {
                Ok(h) => ud.slot_mut(field).push(h),
                // A blank value is an absent one, not a problem.
                Err(reason) if reason.rule == "empty" => {}
                Err(reason) => dropped.push(Dropped {
                    field: field.record_name(),
                    rule: reason.rule,
                    message: reason.message.into_owned(),
                }),
            }
        }
    });
    // Further e-mails and phones of the person (another column): Meta
    // takes several values per key. The same value twice is sent once.
    let mut scratch = String::new();
    for (field, values) in [(Field::Em, &c.other_emails), (Field::Ph, &c.other_phones)] {
        for value in values {
            match hash_field(field, value, &ctx, &mut scratch) {
                Ok(h) if !ud.slot(field).contains(&h) => ud.slot_mut(field).push(h),
                Ok(_) => {}
                Err(reason) if reason.rule == "empty" => {}
                Err(reason) => dropped.push(Dropped {
                    field: field.record_name(),
                    rule: reason.rule,
                    message: reason.message.into_owned(),
                }),
            }
        }
    }
    ud.fbc = click_id(sc.fbc.as_deref(), "fbc", dropped);
    ud.fbp = click_id(sc.fbp.as_deref(), "fbp", dropped);
    ud
}

/// `fb.<subdomain index>.<creation time ms>.<id>[.<suffix>]`, passed through
/// byte for byte (the ID part is case-sensitive).
fn click_id(
    value: Option<&str>,
    field: &'static str,
    dropped: &mut Vec<Dropped>,
) -> Option<String> {
    let v = value?.trim();
    if v.is_empty() {
        return None;
    }
    let mut parts = v.splitn(4, '.');
    let ok = parts.next() == Some("fb")
        && parts
            .next()
            .is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        && parts.next().is_some_and(|s| {
            s.len() >= 12 && s.len() <= 14 && s.bytes().all(|b| b.is_ascii_digit())
        })
        && parts
            .next()
            // fbclid and the parameter builder's suffix are visible ASCII;
            // control characters (NUL, separators) are damage, not an ID.
            .is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic()));
    if ok {
        Some(v.to_string())
    } else {
        dropped.push(Dropped {
            field,
            rule: if field == "fbc" {
                "fbc.format"
            } else {
                "fbp.format"
            },
            message: format!(
                "is not of the form fb.<subdomain index>.<creation time in ms>.<{}>",
                if field == "fbc" {
                    "fbclid"
                } else {
                    "random number"
                }
            ),
        });
        None
    }
}

fn lead_key(sc: &StageChange, ud: &UserData) -> LeadKey {
    if let Some(id) = sc.lead_id {
        return LeadKey::LeadId(id);
    }
    if let Some(crm) = sc
        .crm_id
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        return LeadKey::CrmId(crm.to_string());
    }
    for field in [Field::Em, Field::Ph, Field::ExternalId] {
        if let Some(h) = ud.slot(field).first() {
            return LeadKey::Hashed {
                key: field.meta_key().to_string(),
                hash: *h,
            };
        }
    }
    if let Some(fbc) = &ud.fbc {
        return LeadKey::Hashed {
            key: "fbc".into(),
            hash: Sha256::of(fbc),
        };
    }
    // Weak identifiers only: hash them all together.
    let joined: Vec<String> = Field::ALL
        .iter()
        .flat_map(|f| ud.slot(*f).iter().map(move |h| format!("{f}={h}")))
        .collect();
    LeadKey::Hashed {
        key: "user_data".into(),
        hash: Sha256::of(&joined.join("&")),
    }
}

impl Prepared {
    /// The same lead's event for an earlier funnel `stage`, at the same
    /// time: what the `fill` policy enqueues for a stage the CRM never
    /// reported. Its `event_id` is that stage's own deterministic ID.
    pub fn inferred(&self, stage: StageIndex, cfg: &PrepareConfig) -> Prepared {
        let spec = cfg.funnel.stage(stage);
        let name = cfg.funnel.event_name(stage).clone();
        let mut event = self.event.clone();
        event.event_id = event_id(&cfg.dataset_id, &self.lead_key, &name, event.event_time);
        if cfg.profile == Profile::LegacyV7 {
            apply_legacy(&mut event, spec.meta.as_str(), &name);
        }
        event.event_name = name;
        Prepared {
            event,
            stage: Some(stage),
            lifecycle: spec.meta,
            lead_key: self.lead_key.clone(),
            send_by: self.send_by,
            dropped: Vec::new(),
            warnings: Vec::new(),
        }
    }
}

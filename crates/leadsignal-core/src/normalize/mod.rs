//! Normalization of customer information before hashing, per Meta's rules
//! (`docs/meta-rules.md` §3). One function per field family; [`hash_field`]
//! is the entry point: it returns the SHA-256 of the normalized value, or
//! why the value was dropped. Messages never repeat the raw value.

mod country;
mod dob;
mod email;
mod gender;
mod location;
mod phone;
mod placeholder;
mod text;

pub use country::{lookup_country, CountryCode};
pub use dob::DateOrder;
pub use placeholder::fold_extra as fold_placeholder;
pub(crate) use placeholder::is_extra as is_extra_placeholder;

/// Whether a country value is a placeholder ("N/A" must not read as
/// Namibia).
pub(crate) fn is_country_placeholder(value: &str) -> bool {
    placeholder::is_placeholder(Field::Country, value.trim())
}

use crate::hash::Sha256;
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

/// A `HashMap` for the built-in look-up tables: their keys are short and
/// the tables are fixed (nothing outside can insert), so a keyed hash buys
/// nothing; foldhash's fixed state reads eight bytes at a time.
pub(crate) type FixedMap<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

/// The customer-information keys leadsignal normalizes and hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    /// `em`: email address.
    Em,
    /// `ph`: phone number.
    Ph,
    /// `fn`: first name.
    Fn,
    /// `ln`: last name.
    Ln,
    /// `ge`: gender.
    Ge,
    /// `db`: date of birth.
    Db,
    /// `ct`: city.
    Ct,
    /// `st`: state or region.
    St,
    /// `zp`: postal code.
    Zp,
    /// `country`: ISO 3166-1 alpha-2.
    Country,
    /// `external_id`: the advertiser's own ID for the person.
    ExternalId,
}

impl Field {
    /// Every hashed field, in the order Meta's documentation lists them.
    pub const ALL: [Field; 11] = [
        Field::Em,
        Field::Ph,
        Field::Fn,
        Field::Ln,
        Field::Ge,
        Field::Db,
        Field::Ct,
        Field::St,
        Field::Zp,
        Field::Country,
        Field::ExternalId,
    ];

    /// Meta's key in `user_data`.
    pub fn meta_key(self) -> &'static str {
        match self {
            Field::Em => "em",
            Field::Ph => "ph",
            Field::Fn => "fn",
            Field::Ln => "ln",
            Field::Ge => "ge",
            Field::Db => "db",
            Field::Ct => "ct",
            Field::St => "st",
            Field::Zp => "zp",
            Field::Country => "country",
            Field::ExternalId => "external_id",
        }
    }

    /// The rule of a placeholder value in this field (`em.placeholder`).
    pub fn placeholder_rule(self) -> &'static str {
        match self {
            Field::Em => "em.placeholder",
            Field::Ph => "ph.placeholder",
            Field::Fn => "fn.placeholder",
            Field::Ln => "ln.placeholder",
            Field::Ge => "ge.placeholder",
            Field::Db => "db.placeholder",
            Field::Ct => "ct.placeholder",
            Field::St => "st.placeholder",
            Field::Zp => "zp.placeholder",
            Field::Country => "country.placeholder",
            Field::ExternalId => "external_id.placeholder",
        }
    }

    /// The field's name in the stage-change record.
    pub fn record_name(self) -> &'static str {
        match self {
            Field::Em => "email",
            Field::Ph => "phone",
            Field::Fn => "first_name",
            Field::Ln => "last_name",
            Field::Ge => "gender",
            Field::Db => "date_of_birth",
            Field::Ct => "city",
            Field::St => "state",
            Field::Zp => "zip",
            Field::Country => "country",
            Field::ExternalId => "external_id",
        }
    }

    /// Accepts Meta's key (`em`) or the record's name (`email`), any case.
    pub fn from_name(name: &str) -> Option<Field> {
        let name = name.trim().to_ascii_lowercase();
        Field::ALL
            .into_iter()
            .find(|f| f.meta_key() == name || f.record_name() == name)
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.meta_key())
    }
}

/// Why a value was left out of the event. The message describes the problem
/// without repeating the value (it may be personal data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropReason {
    /// Stable rule code, e.g. `ph.no_country_code`.
    pub rule: &'static str,
    /// Human explanation.
    pub message: Cow<'static, str>,
}

impl DropReason {
    pub(crate) fn new(rule: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        DropReason {
            rule,
            message: message.into(),
        }
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.rule)
    }
}

/// Options that shape normalization (the `[normalize]` config section).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NormalizeOptions {
    /// Country of national phone numbers (and of states/ZIPs) when a record
    /// names none.
    pub default_country: Option<CountryCode>,
    /// How to read an ambiguous date of birth like `02/03/1990`.
    pub date_order: DateOrder,
}

/// What the normalizers know about the record being normalized.
#[derive(Debug, Clone, Copy)]
pub struct Context {
    /// The record's own country, when it has a valid one; else the default.
    /// Decides how national phone numbers are read.
    pub country: Option<CountryCode>,
    /// The record's own country only. States and postcodes follow strict US
    /// or Canadian rules only when the record says so; a default country
    /// alone does not turn a UK postcode into a bad ZIP.
    pub record_country: Option<CountryCode>,
    /// Ambiguous date order.
    pub date_order: DateOrder,
    /// The current Unix time, for date-of-birth range checks.
    pub now: i64,
}

impl Context {
    /// Context for a record whose country (already normalized) is `record_country`.
    pub fn new(opts: &NormalizeOptions, record_country: Option<CountryCode>, now: i64) -> Self {
        Context {
            country: record_country.or(opts.default_country),
            record_country,
            date_order: opts.date_order,
            now,
        }
    }

    /// Today (UTC) as (year, month, day).
    pub fn today(&self) -> (i32, u32, u32) {
        use chrono::Datelike;
        chrono::DateTime::from_timestamp(self.now, 0)
            .map_or((1970, 1, 1), |t| (t.year(), t.month(), t.day()))
    }
}

/// The result of normalizing one value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Normalized {
    /// The normalized text; hash it to send it.
    Value(String),
    /// The input already was a SHA-256 digest: sent as given (lowercased).
    PreHashed(Sha256),
}

/// Normalizes `value` for `field` into `out` (cleared first). Returns `Ok(None)`
/// when the value is normalized text in `out`, `Ok(Some(hash))` when it already
/// was a SHA-256 digest.
pub fn normalize_into(
    field: Field,
    value: &str,
    ctx: &Context,
    out: &mut String,
) -> Result<Option<Sha256>, DropReason> {
    out.clear();
    let value = text::trim(value);
    if value.len() >= 64 {
        if let Some(h) = Sha256::parse_hex(value) {
            return Ok(Some(h));
        }
    }
    if value.is_empty() {
        return Err(DropReason::new("empty", "is empty"));
    }
    if let Some(rule) = lossy_encoding(field, value) {
        return Err(DropReason::new(rule, LOSSY_MESSAGE));
    }
    let placeholder = || DropReason::new(field.placeholder_rule(), PLACEHOLDER_MESSAGE);
    // A country is looked up by name: "N/A" must not become Namibia.
    if field == Field::Country && placeholder::is_placeholder(field, value) {
        return Err(placeholder());
    }
    let normalized: Result<(), DropReason> = match field {
        Field::Em => email::normalize(value, out),
        Field::Ph => phone::normalize(value, ctx.country, out),
        Field::Fn | Field::Ln => text::letters_only(value, out, "name", "has no letters"),
        Field::Ct => text::letters_only(value, out, "city", "has no letters"),
        Field::St => location::state(value, ctx.record_country, out),
        Field::Zp => location::zip(value, ctx.record_country, out),
        Field::Country => match country::lookup_country(value) {
            Some(code) => {
                out.push_str(code.as_str());
                Ok(())
            }
            None => Err(DropReason::new(
                "country.unknown",
                "is not an ISO 3166-1 country name or alpha-2/alpha-3 code",
            )),
        },
        Field::Ge => gender::normalize(value, out),
        Field::Db => dob::normalize(value, ctx.date_order, ctx.today(), out),
        Field::ExternalId => {
            text::trimmed(value, out);
            Ok(())
        }
    };
    // Placeholders are looked for in the normalized value (letters only,
    // lowercase: one comparison, no second pass over the input), and in
    // the raw value when normalization refused it (to give the real reason).
    match normalized {
        Err(_) if placeholder::is_placeholder(field, value) => Err(placeholder()),
        Err(reason) => Err(reason),
        Ok(()) if placeholder::normalized(field, out) => Err(placeholder()),
        Ok(()) => Ok(None),
    }
}

pub(crate) const PLACEHOLDER_MESSAGE: &str = "is a placeholder (N/A, unknown, -, test, an all-zero or counting phone, noemail@...), not the person's data: hashed it would match no one, or everyone who typed the same";

const LOSSY_MESSAGE: &str = "has a '?' (or U+FFFD) where a letter was: the file was saved in an encoding without that letter (Excel's \"CSV (Comma delimited)\" turns Ł into ?), so its hash would match no one; export the file as CSV UTF-8";

/// The rule of a value that lost letters when its file was saved: a `?`
/// next to a letter (`?ukasz`, `Gda?sk`), or the replacement character.
/// Only for fields of words (e-mail, names, city, state, country).
fn lossy_encoding(field: Field, value: &str) -> Option<&'static str> {
    let rule = match field {
        Field::Em => "em.lossy_encoding",
        Field::Fn => "fn.lossy_encoding",
        Field::Ln => "ln.lossy_encoding",
        Field::Ct => "ct.lossy_encoding",
        Field::St => "st.lossy_encoding",
        Field::Country => "country.lossy_encoding",
        _ => return None,
    };
    let b = value.as_bytes();
    // The common case: no '?' and plain ASCII, decided in one pass each.
    if !b.contains(&b'?') {
        return (!value.is_ascii() && value.contains('\u{fffd}')).then_some(rule);
    }
    let next_to_letter = b.iter().enumerate().any(|(i, &c)| {
        c == b'?' && {
            let before = value[..i].chars().next_back();
            let after = value[i + 1..].chars().next();
            before.is_some_and(char::is_alphabetic) || after.is_some_and(char::is_alphabetic)
        }
    });
    (next_to_letter || value.contains('\u{fffd}')).then_some(rule)
}

/// Normalizes `value` for `field` and returns the text (or the digest it already was).
pub fn normalize(field: Field, value: &str, ctx: &Context) -> Result<Normalized, DropReason> {
    let mut out = String::new();
    match normalize_into(field, value, ctx, &mut out)? {
        Some(h) => Ok(Normalized::PreHashed(h)),
        None => Ok(Normalized::Value(out)),
    }
}

/// Normalizes then hashes; `scratch` is reused between calls to avoid allocation.
#[inline]
pub fn hash_field(
    field: Field,
    value: &str,
    ctx: &Context,
    scratch: &mut String,
) -> Result<Sha256, DropReason> {
    match normalize_into(field, value, ctx, scratch)? {
        Some(h) => Ok(h),
        None => Ok(Sha256::of_normalized(scratch)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(field: Field, value: &str) -> Result<String, &'static str> {
        let ctx = Context::new(&NormalizeOptions::default(), None, 1_795_262_400);
        match normalize(field, value, &ctx) {
            Ok(Normalized::Value(v)) => Ok(v),
            Ok(Normalized::PreHashed(h)) => Ok(h.to_string()),
            Err(r) => Err(r.rule),
        }
    }

    #[test]
    fn greek_capital_sigma_lowercases_to_final_sigma_at_a_words_end() {
        assert_eq!(rule(Field::Fn, "ΟΔΥΣΣΕΑΣ").as_deref(), Ok("οδυσσεας"));
        assert_eq!(
            rule(Field::Ln, "ΠΑΠΑΔΟΠΟΥΛΟΣ").as_deref(),
            Ok("παπαδοπουλος")
        );
        assert_eq!(rule(Field::Fn, "Σοφία").as_deref(), Ok("σοφία"));
        // Each word's end, though the space itself goes.
        assert_eq!(
            rule(Field::Ct, "ΑΓΙΟΣ ΝΙΚΟΛΑΟΣ").as_deref(),
            Ok("αγιοςνικολαος")
        );
        // As Rust's (and JavaScript's) full-string lowercasing does.
        assert_eq!(
            rule(Field::Em, "ΟΔΥΣΣΕΑΣ@example.gr").as_deref(),
            Ok("οδυσσεας@example.gr")
        );
    }

    #[test]
    fn values_that_lost_letters_in_a_legacy_encoding_are_dropped() {
        assert_eq!(rule(Field::Fn, "?ukasz"), Err("fn.lossy_encoding"));
        assert_eq!(rule(Field::Ln, "Wi?niewska"), Err("ln.lossy_encoding"));
        assert_eq!(rule(Field::Ct, "Gda?sk"), Err("ct.lossy_encoding"));
        // "N/A" is not Namibia; "NA", its ISO code, is.
        assert_eq!(rule(Field::Country, "N/A"), Err("country.placeholder"));
        assert_eq!(rule(Field::Country, "NA").as_deref(), Ok("na"));
        assert_eq!(rule(Field::Em, "?ukasz@firma.pl"), Err("em.lossy_encoding"));
        assert_eq!(rule(Field::Fn, "Zo\u{fffd}"), Err("fn.lossy_encoding"));
        // Letters the encoding had are kept; a '?' not next to a letter is
        // just punctuation.
        assert_eq!(rule(Field::Fn, "Zoë").as_deref(), Ok("zoë"));
        assert_eq!(rule(Field::Ct, "St. Louis ?").as_deref(), Ok("stlouis"));
    }
}

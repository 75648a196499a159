//! `country`: ISO 3166-1 alpha-2, lowercase. Names, alpha-2 and alpha-3 codes
//! and common aliases are accepted; anything unknown is rejected (never
//! truncated: `AUT` is Austria, not `au`).

use super::text::{fold_key, KeyBuf};
use super::FixedMap;
use celes::LookupTable;
use std::fmt;
use std::sync::OnceLock;

/// A lowercase ISO 3166-1 alpha-2 code.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CountryCode(pub(crate) [u8; 2]);

impl CountryCode {
    /// The code as text (`"us"`).
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("ASCII letters")
    }

    /// Accepts exactly an assigned alpha-2 code, any case (`"US"`, `"gb"`).
    pub fn parse_alpha2(code: &str) -> Option<CountryCode> {
        let b = code.trim().as_bytes();
        if b.len() != 2 {
            return None;
        }
        let c = CountryCode([b[0].to_ascii_lowercase(), b[1].to_ascii_lowercase()]);
        index().codes.contains(&c).then_some(c)
    }
}

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CountryCode({})", self.as_str())
    }
}

impl serde::Serialize for CountryCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for CountryCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        lookup_country(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "{s:?} is not an ISO 3166-1 country name or alpha-2/alpha-3 code"
            ))
        })
    }
}

struct Index {
    by_key: FixedMap<String, CountryCode>,
    codes: Vec<CountryCode>,
}

/// Names people write that ISO's list (as packaged by `celes`) lacks.
const EXTRA_ALIASES: &[(&str, &str)] = &[
    ("uk", "gb"),
    ("britain", "gb"),
    ("greatbritain", "gb"),
    ("england", "gb"),
    ("scotland", "gb"),
    ("wales", "gb"),
    ("northernireland", "gb"),
    ("unitedstates", "us"),
    ("us", "us"),
    ("america", "us"),
    ("unitedstatesofamerica", "us"),
    ("holland", "nl"),
    ("thenetherlands", "nl"),
    ("deutschland", "de"),
    ("espana", "es"),
    ("brasil", "br"),
    ("mexico", "mx"),
    ("turkiye", "tr"),
    ("turkey", "tr"),
    ("korea", "kr"),
    ("southkorea", "kr"),
    ("northkorea", "kp"),
    ("russia", "ru"),
    ("vietnam", "vn"),
    ("czechrepublic", "cz"),
    ("czechia", "cz"),
    ("ivorycoast", "ci"),
    ("cotedivoire", "ci"),
    ("laos", "la"),
    ("iran", "ir"),
    ("syria", "sy"),
    ("bolivia", "bo"),
    ("venezuela", "ve"),
    ("tanzania", "tz"),
    ("moldova", "md"),
    ("macedonia", "mk"),
    ("northmacedonia", "mk"),
    ("palestine", "ps"),
    ("taiwan", "tw"),
    ("vatican", "va"),
    ("vaticancity", "va"),
    ("uae", "ae"),
    ("unitedarabemirates", "ae"),
    ("drc", "cd"),
    ("democraticrepublicofthecongo", "cd"),
    ("congo", "cg"),
    ("swaziland", "sz"),
    ("eswatini", "sz"),
    ("burma", "mm"),
    ("myanmar", "mm"),
    ("capeverde", "cv"),
    ("caboverde", "cv"),
    ("easttimor", "tl"),
    ("timorleste", "tl"),
    ("micronesia", "fm"),
    ("brunei", "bn"),
    ("bahamas", "bs"),
    ("gambia", "gm"),
    ("philippines", "ph"),
    ("phillippines", "ph"),
    ("dominicanrepublic", "do"),
    ("saintlucia", "lc"),
    ("stlucia", "lc"),
    ("hongkong", "hk"),
    ("macau", "mo"),
    ("macao", "mo"),
    ("suisse", "ch"),
    ("schweiz", "ch"),
    ("osterreich", "at"),
    ("italia", "it"),
    ("polska", "pl"),
    ("nippon", "jp"),
    ("sverige", "se"),
    ("norge", "no"),
    ("danmark", "dk"),
    ("suomi", "fi"),
    ("belgique", "be"),
    ("belgie", "be"),
    ("magyarorszag", "hu"),
    ("hrvatska", "hr"),
    ("ellada", "gr"),
];

fn index() -> &'static Index {
    static INDEX: OnceLock<Index> = OnceLock::new();
    INDEX.get_or_init(|| {
        let mut by_key = FixedMap::default();
        let mut codes = Vec::new();
        let mut key = KeyBuf::new();
        let countries = celes::Country::get_countries();
        let code_of = |alpha2: &str| {
            let b = alpha2.as_bytes();
            CountryCode([b[0].to_ascii_lowercase(), b[1].to_ascii_lowercase()])
        };
        // Codes first: a name never overrides a code.
        for c in countries.iter() {
            let code = code_of(c.alpha2);
            codes.push(code);
            by_key.insert(c.alpha2.to_ascii_lowercase(), code);
            by_key.insert(c.alpha3.to_ascii_lowercase(), code);
        }
        for (alias, alpha2) in EXTRA_ALIASES {
            by_key.insert((*alias).to_string(), code_of(alpha2));
        }
        for c in countries.iter() {
            let code = code_of(c.alpha2);
            for name in std::iter::once(c.long_name).chain(c.aliases.iter().copied()) {
                let key = fold_key(name, &mut key);
                by_key.entry(key.to_string()).or_insert(code);
                if let Some(short) = key.strip_prefix("the") {
                    by_key.entry(short.to_string()).or_insert(code);
                }
            }
        }
        codes.sort();
        Index { by_key, codes }
    })
}

/// Finds the country a name or code designates.
pub fn lookup_country(value: &str) -> Option<CountryCode> {
    let b = super::text::trim(value).as_bytes();
    if b.len() == 2 && b.iter().all(u8::is_ascii_alphabetic) {
        let c = CountryCode([b[0].to_ascii_lowercase(), b[1].to_ascii_lowercase()]);
        if index().codes.binary_search(&c).is_ok() {
            return Some(c);
        }
    }
    let mut buf = KeyBuf::new();
    let key = fold_key(value, &mut buf);
    if key.is_empty() {
        return None;
    }
    let idx = index();
    idx.by_key
        .get(key)
        .or_else(|| key.strip_prefix("the").and_then(|k| idx.by_key.get(k)))
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_codes() {
        for (input, want) in [
            ("United States", "us"),
            ("USA", "us"),
            ("U.S.A.", "us"),
            ("us", "us"),
            ("UK", "gb"),
            ("United Kingdom", "gb"),
            ("England", "gb"),
            ("AUT", "at"),
            ("Austria", "at"),
            ("IRL", "ie"),
            ("CHN", "cn"),
            ("POL", "pl"),
            ("Deutschland", "de"),
            ("Germany", "de"),
            ("Côte d'Ivoire", "ci"),
            ("México", "mx"),
            ("South Korea", "kr"),
            ("Russia", "ru"),
            ("The Netherlands", "nl"),
            ("Brasil", "br"),
            ("Canada", "ca"),
            ("  fr ", "fr"),
        ] {
            assert_eq!(
                lookup_country(input).map(|c| c.to_string()),
                Some(want.into()),
                "{input}"
            );
        }
    }

    #[test]
    fn unknown_values_are_rejected_not_truncated() {
        for input in ["Atlantis", "XX", "Europe", "EN", "123", "", "Australiaa"] {
            assert_eq!(lookup_country(input), None, "{input}");
        }
    }
}

//! `st` and `zp`, which depend on the record's country.

use super::country::CountryCode;
use super::text::{alphanumeric_lower, fold_key, strip_prefix_ci, KeyBuf};
use super::DropReason;
use super::FixedMap;
use std::sync::OnceLock;

const US: CountryCode = CountryCode(*b"us");
const CA: CountryCode = CountryCode(*b"ca");

/// US states, DC and territories (USPS codes), then Canadian provinces and
/// territories. Keys are folded names (letters only, no accents).
const SUBDIVISIONS: &[(&str, &str)] = &[
    ("alabama", "al"),
    ("alaska", "ak"),
    ("arizona", "az"),
    ("arkansas", "ar"),
    ("california", "ca"),
    ("colorado", "co"),
    ("connecticut", "ct"),
    ("delaware", "de"),
    ("districtofcolumbia", "dc"),
    ("washingtondc", "dc"),
    ("florida", "fl"),
    ("georgia", "ga"),
    ("hawaii", "hi"),
    ("idaho", "id"),
    ("illinois", "il"),
    ("indiana", "in"),
    ("iowa", "ia"),
    ("kansas", "ks"),
    ("kentucky", "ky"),
    ("louisiana", "la"),
    ("maine", "me"),
    ("maryland", "md"),
    ("massachusetts", "ma"),
    ("michigan", "mi"),
    ("minnesota", "mn"),
    ("mississippi", "ms"),
    ("missouri", "mo"),
    ("montana", "mt"),
    ("nebraska", "ne"),
    ("nevada", "nv"),
    ("newhampshire", "nh"),
    ("newjersey", "nj"),
    ("newmexico", "nm"),
    ("newyork", "ny"),
    ("northcarolina", "nc"),
    ("northdakota", "nd"),
    ("ohio", "oh"),
    ("oklahoma", "ok"),
    ("oregon", "or"),
    ("pennsylvania", "pa"),
    ("rhodeisland", "ri"),
    ("southcarolina", "sc"),
    ("southdakota", "sd"),
    ("tennessee", "tn"),
    ("texas", "tx"),
    ("utah", "ut"),
    ("vermont", "vt"),
    ("virginia", "va"),
    ("washington", "wa"),
    ("westvirginia", "wv"),
    ("wisconsin", "wi"),
    ("wyoming", "wy"),
    ("americansamoa", "as"),
    ("guam", "gu"),
    ("northernmarianaislands", "mp"),
    ("puertorico", "pr"),
    ("usvirginislands", "vi"),
    ("virginislands", "vi"),
    ("unitedstatesvirginislands", "vi"),
    // AP-style abbreviations people type.
    ("ala", "al"),
    ("ariz", "az"),
    ("ark", "ar"),
    ("calif", "ca"),
    ("colo", "co"),
    ("conn", "ct"),
    ("del", "de"),
    ("fla", "fl"),
    ("ill", "il"),
    ("ind", "in"),
    ("kan", "ks"),
    ("kans", "ks"),
    ("mass", "ma"),
    ("mich", "mi"),
    ("minn", "mn"),
    ("miss", "ms"),
    ("mont", "mt"),
    ("nebr", "ne"),
    ("nev", "nv"),
    ("okla", "ok"),
    ("ore", "or"),
    ("penn", "pa"),
    ("tenn", "tn"),
    ("tex", "tx"),
    ("wash", "wa"),
    ("wis", "wi"),
    ("wisc", "wi"),
    ("wyo", "wy"),
    // Canada.
    ("alberta", "ab"),
    ("britishcolumbia", "bc"),
    ("manitoba", "mb"),
    ("newbrunswick", "nb"),
    ("newfoundlandandlabrador", "nl"),
    ("newfoundland", "nl"),
    ("novascotia", "ns"),
    ("northwestterritories", "nt"),
    ("nunavut", "nu"),
    ("ontario", "on"),
    ("princeedwardisland", "pe"),
    ("quebec", "qc"),
    ("saskatchewan", "sk"),
    ("yukon", "yt"),
    ("yukonterritory", "yt"),
    ("colombiebritannique", "bc"),
    ("nouveaubrunswick", "nb"),
    ("nouvelleecosse", "ns"),
    ("terreneuveetlabrador", "nl"),
    ("territoiresdunordouest", "nt"),
    ("ileduprinceedouard", "pe"),
];

const CODES: &[&str] = &[
    "al", "ak", "az", "ar", "ca", "co", "ct", "de", "dc", "fl", "ga", "hi", "id", "il", "in", "ia",
    "ks", "ky", "la", "me", "md", "ma", "mi", "mn", "ms", "mo", "mt", "ne", "nv", "nh", "nj", "nm",
    "ny", "nc", "nd", "oh", "ok", "or", "pa", "ri", "sc", "sd", "tn", "tx", "ut", "vt", "va", "wa",
    "wv", "wi", "wy", "as", "gu", "mp", "pr", "vi", "um", "ab", "bc", "mb", "nb", "nl", "ns", "nt",
    "nu", "on", "pe", "qc", "sk", "yt",
];

/// Codes and folded names → code.
fn subdivisions() -> &'static FixedMap<&'static str, &'static str> {
    static MAP: OnceLock<FixedMap<&'static str, &'static str>> = OnceLock::new();
    MAP.get_or_init(|| {
        CODES
            .iter()
            .map(|c| (*c, *c))
            .chain(SUBDIVISIONS.iter().copied())
            .collect()
    })
}

/// US states and Canadian provinces (by name, code or common abbreviation) to
/// their 2-letter code; other regions lowercase without spaces or punctuation.
/// With no known country, US/Canadian names are still recognized, since the
/// two lists do not collide.
pub(super) fn state(
    value: &str,
    country: Option<CountryCode>,
    out: &mut String,
) -> Result<(), DropReason> {
    let north_america = matches!(country, None | Some(US) | Some(CA));
    if north_america {
        // "US-CA", "CA-ON": ISO 3166-2 codes; the part after the dash counts.
        let t = value.trim();
        let iso = (t.len() == 5)
            .then(|| strip_prefix_ci(t, "us-").or_else(|| strip_prefix_ci(t, "ca-")))
            .flatten();
        let mut buf = KeyBuf::new();
        let key = fold_key(iso.unwrap_or(value), &mut buf);
        if let Some(code) = subdivisions().get(key) {
            out.push_str(code);
            return Ok(());
        }
        if country.is_some() {
            return Err(DropReason::new(
                "st.unknown",
                "is not a US state or Canadian province name or code",
            ));
        }
    }
    alphanumeric_lower(value, out);
    if out.is_empty() {
        return Err(DropReason::new("st.empty", "has no letters or digits"));
    }
    Ok(())
}

/// US: the 5-digit ZIP (ZIP+4 cut, with or without dash; 3-4 digits are
/// zero-padded back, since spreadsheets drop leading zeros). Elsewhere:
/// lowercase, letters and digits only (`SW1A 1AA` → `sw1a1aa`).
pub(super) fn zip(
    value: &str,
    country: Option<CountryCode>,
    out: &mut String,
) -> Result<(), DropReason> {
    let v = super::text::trim(value);
    let digits = || v.bytes().filter(u8::is_ascii_digit);
    let n = digits().count();
    let only_digits_and_seps = v
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b' '));
    let us_shaped = only_digits_and_seps && matches!(n, 5 | 9);
    match country {
        Some(US) => {
            if !only_digits_and_seps || !matches!(n, 3 | 4 | 5 | 9) {
                return Err(DropReason::new(
                    "zp.us_format",
                    "is not a US ZIP code (5 digits, or ZIP+4)",
                ));
            }
            for _ in n.min(5)..5 {
                out.push('0');
            }
            out.extend(digits().take(5).map(char::from));
        }
        None if us_shaped => out.extend(digits().take(5).map(char::from)),
        _ => alphanumeric_lower(v, out),
    }
    if out.is_empty() {
        return Err(DropReason::new("zp.empty", "has no letters or digits"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(v: &str, c: Option<&str>) -> Result<String, &'static str> {
        let mut out = String::new();
        state(
            v,
            c.map(|c| CountryCode::parse_alpha2(c).unwrap()),
            &mut out,
        )
        .map(|_| out)
        .map_err(|e| e.rule)
    }
    fn zp(v: &str, c: Option<&str>) -> Result<String, &'static str> {
        let mut out = String::new();
        zip(
            v,
            c.map(|c| CountryCode::parse_alpha2(c).unwrap()),
            &mut out,
        )
        .map(|_| out)
        .map_err(|e| e.rule)
    }

    #[test]
    fn states() {
        for (input, c, want) in [
            ("California", None, "ca"),
            ("CA", Some("us"), "ca"),
            ("New York", Some("us"), "ny"),
            ("new-york", None, "ny"),
            ("Calif.", None, "ca"),
            ("US-TX", None, "tx"),
            ("Québec", None, "qc"),
            ("Ontario", Some("ca"), "on"),
            ("West Virginia", Some("us"), "wv"),
            ("W Virginia", None, "wvirginia"),
            ("New South Wales", Some("au"), "newsouthwales"),
            ("Île-de-France", Some("fr"), "îledefrance"),
            ("NSW", Some("au"), "nsw"),
            ("Bayern", None, "bayern"),
        ] {
            assert_eq!(st(input, c), Ok(want.to_string()), "{input}");
        }
        assert_eq!(st("W Virginia", Some("us")), Err("st.unknown"));
    }

    #[test]
    fn zips() {
        for (input, c, want) in [
            ("94025", Some("us"), "94025"),
            ("94025-1234", Some("us"), "94025"),
            ("941031234", Some("us"), "94103"),
            ("941031234", None, "94103"),
            ("2134", Some("us"), "02134"),
            ("501", Some("us"), "00501"),
            ("SW1A 1AA", Some("gb"), "sw1a1aa"),
            ("M1 1AE", None, "m11ae"),
            ("01310-100", Some("br"), "01310100"),
            ("K1A 0B1", Some("ca"), "k1a0b1"),
            ("75008", Some("fr"), "75008"),
        ] {
            assert_eq!(zp(input, c), Ok(want.to_string()), "{input}");
        }
        assert_eq!(zp("SW1A 1AA", Some("us")), Err("zp.us_format"));
        assert_eq!(zp("123456", Some("us")), Err("zp.us_format"));
        assert_eq!(zp(" - ", None), Err("zp.empty"));
    }
}

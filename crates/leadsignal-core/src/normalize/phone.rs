//! `ph`: digits only, with the country calling code, no `+`, no extension,
//! no trunk prefix.
//!
//! The shape of a number (international prefix, `(0)` trunk marker,
//! extension) is read here, fast and allocation-free; what a country's numbers
//! look like (calling code, national prefix, possible lengths, number pattern)
//! comes from libphonenumber's metadata shipped in the `phonenumber` crate.
//! `phonenumber::parse` itself is not used: it costs several microseconds per
//! number and keeps the `(0)` of `+44 (0)20 …` in the result.

use super::country::CountryCode;
use super::text::strip_prefix_ci;
use super::DropReason;
use super::FixedMap;
use phonenumber::metadata::{Metadata, DATABASE};
use std::sync::OnceLock;

/// Longest digit string we look at (E.164 allows 15 digits; IDD prefixes and
/// a trunk digit add a few).
const MAX_INPUT_DIGITS: usize = 24;

/// What one calling code's numbers look like.
struct CallingCode {
    digits: String,
    /// Bit n set = national numbers of n digits exist.
    lengths: u32,
    /// National (trunk) prefix of the code's main region, e.g. `0` (GB), `1` (US), `8` (RU).
    national_prefix: Option<String>,
    main: &'static Metadata,
}

struct Tables {
    by_code: FixedMap<u16, CallingCode>,
    /// Lower-case alpha-2 → (calling code, the region's metadata).
    by_region: FixedMap<[u8; 2], (u16, &'static Metadata)>,
}

/// Lengths of the number types a person's phone can be. Service numbers
/// (UAN, voicemail access) are left out: Canada's 7-digit UANs would
/// otherwise make every 7-digit fragment a "valid" NANP number.
fn length_mask(meta: &Metadata) -> u32 {
    let d = meta.descriptors();
    let mut mask = 0u32;
    let mut add = |lens: &[u16]| {
        for &l in lens {
            if l < 32 {
                mask |= 1 << l;
            }
        }
    };
    add(d.general().possible_length());
    for desc in [
        d.fixed_line(),
        d.mobile(),
        d.toll_free(),
        d.premium_rate(),
        d.shared_cost(),
        d.personal_number(),
        d.voip(),
        d.pager(),
    ]
    .into_iter()
    .flatten()
    {
        add(desc.possible_length());
    }
    mask
}

fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(|| {
        let mut by_code: FixedMap<u16, CallingCode> = FixedMap::default();
        let mut by_region = FixedMap::default();
        for meta in DATABASE.iter() {
            // `iter` yields every region, including the non-geographic "001" entries.
            let code = meta.country_code();
            let id = meta.id().as_bytes();
            if id.len() == 2 && id.iter().all(u8::is_ascii_alphabetic) {
                by_region.insert(
                    [id[0].to_ascii_lowercase(), id[1].to_ascii_lowercase()],
                    (code, meta),
                );
            }
            let mask = length_mask(meta);
            let entry = by_code.entry(code).or_insert_with(|| CallingCode {
                digits: code.to_string(),
                lengths: 0,
                national_prefix: meta.national_prefix().map(str::to_string),
                main: meta,
            });
            entry.lengths |= mask;
            if meta.is_main_country_for_code() {
                entry.national_prefix = meta.national_prefix().map(str::to_string);
                entry.main = meta;
            }
        }
        Tables { by_code, by_region }
    })
}

/// Digits and markers read from the input.
struct Shape {
    digits: [u8; MAX_INPUT_DIGITS],
    len: usize,
    plus: bool,
}

impl Shape {
    fn digits(&self) -> &str {
        std::str::from_utf8(&self.digits[..self.len]).expect("ASCII digits")
    }
}

fn read_shape(value: &str) -> Result<Shape, DropReason> {
    let v = super::text::trim(value);
    // "tel:" URIs, and the "p:" label of Meta's Lead Ads download.
    let v = strip_prefix_ci(v, "tel:")
        .or_else(|| strip_prefix_ci(v, "p:"))
        .map_or(v, str::trim_start);
    let bytes = v.as_bytes();
    let mut shape = Shape {
        digits: [0; MAX_INPUT_DIGITS],
        len: 0,
        plus: false,
    };
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'0'..=b'9' => {
                if shape.len == MAX_INPUT_DIGITS {
                    return Err(DropReason::new(
                        "ph.length",
                        "has too many digits for a phone number",
                    ));
                }
                shape.digits[shape.len] = b;
                shape.len += 1;
            }
            b'+' if shape.len == 0 && !shape.plus => shape.plus = true,
            b'+' => return Err(DropReason::new("ph.invalid", "has a + inside the number")),
            // "(0)": the trunk digit written between country code and number.
            b'(' if bytes.get(i + 1) == Some(&b'0') && bytes.get(i + 2) == Some(&b')') => i += 2,
            b' ' | b'-' | b'.' | b'/' | b'(' | b')' | b'\t' | b'_' => {}
            // Extension markers end the number: x, ext, ext., #, ;ext=, ",".
            b'x' | b'X' | b'e' | b'E' | b'#' | b';' | b',' | b'*' if shape.len > 0 => break,
            b if b.is_ascii_alphabetic() => {
                return Err(DropReason::new("ph.invalid", "contains letters"));
            }
            b if b < 0x80 => {
                return Err(DropReason::new(
                    "ph.invalid",
                    "contains characters a phone number cannot have",
                ));
            }
            _ => {
                // Non-ASCII: accept the usual space and dash look-alikes only.
                let c = v[i..].chars().next().expect("in bounds");
                match c {
                    '\u{a0}' | '\u{2007}' | '\u{202f}' | '\u{2009}' | '\u{2010}' | '\u{2011}'
                    | '\u{2012}' | '\u{2013}' | '\u{2014}' | '\u{2212}' | '\u{3000}' => {}
                    '\u{ff0b}' if shape.len == 0 && !shape.plus => shape.plus = true,
                    _ => {
                        return Err(DropReason::new(
                            "ph.invalid",
                            "contains characters a phone number cannot have",
                        ))
                    }
                }
                i += c.len_utf8();
                continue;
            }
        }
        i += 1;
    }
    if shape.len == 0 {
        return Err(DropReason::new("ph.invalid", "has no digits"));
    }
    Ok(shape)
}

#[inline]
fn fits(mask: u32, len: usize) -> bool {
    len < 32 && mask & (1 << len) != 0
}

/// Splits a number that starts with its calling code. Returns (code, national).
fn split_international(digits: &str) -> Option<(&'static CallingCode, &str)> {
    let t = tables();
    (1..=3.min(digits.len())).find_map(|n| {
        let code: u16 = digits[..n].parse().ok()?;
        if digits.as_bytes()[0] == b'0' {
            return None;
        }
        t.by_code.get(&code).map(|cc| (cc, &digits[n..]))
    })
}

/// `national` as written after a calling code: drop a trunk prefix that
/// should not be there (`+44 020…`), keep it where it belongs (Italy's 0).
fn national_after_code<'a>(cc: &CallingCode, national: &'a str) -> Result<&'a str, DropReason> {
    if fits(cc.lengths, national.len()) {
        return Ok(national);
    }
    if let Some(np) = cc.national_prefix.as_deref() {
        if let Some(rest) = national.strip_prefix(np) {
            if fits(cc.lengths, rest.len()) {
                return Ok(rest);
            }
        }
    }
    Err(length_error(cc, national.len()))
}

fn length_error(cc: &CallingCode, len: usize) -> DropReason {
    let allowed: Vec<String> = (0..32u32)
        .filter(|&n| cc.lengths & (1 << n) != 0)
        .map(|n| n.to_string())
        .collect();
    DropReason::new(
        "ph.length",
        format!(
            "has {len} digits after country code +{}; numbers there have {}",
            cc.digits,
            allowed.join(", ")
        ),
    )
}

fn emit(cc: &CallingCode, national: &str, out: &mut String) -> Result<(), DropReason> {
    let total = cc.digits.len() + national.len();
    if !(7..=15).contains(&total) {
        return Err(DropReason::new(
            "ph.length",
            format!("has {total} digits with its country code; phone numbers have 7 to 15"),
        ));
    }
    out.push_str(&cc.digits);
    out.push_str(national);
    Ok(())
}

fn international(digits: &str, out: &mut String) -> Result<(), DropReason> {
    let (cc, national) = split_international(digits).ok_or_else(|| {
        DropReason::new(
            "ph.country_code",
            "does not start with a valid country calling code",
        )
    })?;
    let national = national_after_code(cc, national)?;
    emit(cc, national, out)
}

/// A number written without `+`/`00`, read in the context of `region`.
fn national(digits: &str, region: CountryCode, out: &mut String) -> Result<(), DropReason> {
    let t = tables();
    let Some((code, meta)) = t.by_region.get(&region.0).copied() else {
        return Err(DropReason::new(
            "ph.country_code",
            format!(
                "has no country code and country {} has no phone numbering plan",
                region.as_str()
            ),
        ));
    };
    let cc = &t.by_code[&code];
    let np = meta.national_prefix();
    // 1. Trunk prefix as dialled at home: "020 7946 0958" in GB, "8 495 …" in RU.
    if let Some(rest) = np.and_then(|np| digits.strip_prefix(np)) {
        if fits(cc.lengths, rest.len()) {
            return emit(cc, rest, out);
        }
    }
    let plain = fits(cc.lengths, digits.len());
    // 2. Country code already there without "+": "442079460958" in GB.
    if let Some(rest) = digits.strip_prefix(cc.digits.as_str()) {
        if let Ok(rest) = national_after_code(cc, rest) {
            // Both readings possible (e.g. Italian mobiles starting 39…): let
            // the region's number pattern decide, preferring the national one.
            if !plain || !meta.descriptors().general().is_match(digits) {
                return emit(cc, rest, out);
            }
        }
    }
    // 3. International prefix of the region other than 00/011 ("0011" AU, "810" RU).
    if !plain {
        if let Some(m) = meta.international_prefix().and_then(|idd| idd.find(digits)) {
            if m.start() == 0 && m.end() < digits.len() {
                return international(&digits[m.end()..], out);
            }
        }
    }
    // 4. A national significant number.
    if plain {
        return emit(cc, digits, out);
    }
    // 5. Longer than any national number here: an international number
    //    written without "+" (as Meta's own normalized form is).
    if digits.len() >= 11 {
        if let Ok(()) = international(digits, out) {
            return Ok(());
        }
        out.clear();
    }
    Err(length_error(cc, digits.len()))
}

pub(super) fn normalize(
    value: &str,
    region: Option<CountryCode>,
    out: &mut String,
) -> Result<(), DropReason> {
    let shape = read_shape(value)?;
    let digits = shape.digits();
    if shape.plus {
        return international(digits, out);
    }
    if let Some(rest) = digits.strip_prefix("00") {
        // 00 is the international prefix almost everywhere, and no national
        // number starts with 00.
        return international(rest, out);
    }
    let nanp = region.is_some_and(|r| tables().by_region.get(&r.0).is_some_and(|(c, _)| *c == 1));
    if nanp {
        if let Some(rest) = digits.strip_prefix("011") {
            return international(rest, out);
        }
    }
    match region {
        Some(r) => national(digits, r, out),
        // Without a known country, digits are taken as already carrying their
        // country code only when there are enough of them (11+): a 10-digit
        // national number would otherwise be misread ("555…" as Brazil's +55).
        None if digits.len() >= 11 => international(digits, out).map_err(|_| no_country_code()),
        None => Err(no_country_code()),
    }
}

fn no_country_code() -> DropReason {
    DropReason::new(
        "ph.no_country_code",
        "has no country code, and neither the record nor normalize.default_country gives a country",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(v: &str, region: Option<&str>) -> Result<String, &'static str> {
        let mut out = String::new();
        let r = region.map(|r| CountryCode::parse_alpha2(r).unwrap());
        normalize(v, r, &mut out).map(|_| out).map_err(|e| e.rule)
    }

    #[test]
    fn meta_example() {
        assert_eq!(norm("(650)555-1212", Some("us")).unwrap(), "16505551212");
    }

    #[test]
    fn table() {
        let us = Some("us");
        let gb = Some("gb");
        for (input, region, want) in [
            ("+1 (555) 123-4567", us, "15551234567"),
            ("(555) 123-4567", us, "15551234567"),
            ("555.123.4567", us, "15551234567"),
            ("1-650-555-1212", us, "16505551212"),
            ("16505551212", us, "16505551212"),
            ("+44 (0)20 7946 0958", us, "442079460958"),
            ("+44 020 7946 0958", us, "442079460958"),
            ("0044 20 7946 0958", us, "442079460958"),
            ("011 44 20 7946 0958", us, "442079460958"),
            ("+1 555 123 4567 x89", us, "15551234567"),
            ("+1 555 123 4567 ext. 89", us, "15551234567"),
            ("(650) 555-1212 #12", us, "16505551212"),
            ("020 7946 0958", gb, "442079460958"),
            ("(0)20 7946 0958", gb, "442079460958"),
            ("07700 900123", gb, "447700900123"),
            ("442079460958", gb, "442079460958"),
            ("+39 06 1234 5678", us, "390612345678"),
            ("06 1234 5678", Some("it"), "390612345678"),
            ("030 1234567", Some("de"), "49301234567"),
            ("8 (495) 123-45-67", Some("ru"), "74951234567"),
            ("+33 6 12 34 56 78", None, "33612345678"),
            ("33612345678", None, "33612345678"),
            ("tel:+1-650-555-1212", None, "16505551212"),
            ("p:+16505551212", None, "16505551212"),
            ("33612345678", us, "33612345678"),
            ("+1\u{a0}650\u{2011}555\u{2011}1212", None, "16505551212"),
        ] {
            assert_eq!(
                norm(input, region),
                Ok(want.to_string()),
                "{input:?} in {region:?}"
            );
        }
    }

    #[test]
    fn rejects() {
        for (input, region, rule) in [
            ("(555) 123-4567", None, "ph.no_country_code"),
            ("call me", Some("us"), "ph.invalid"),
            ("", Some("us"), "ph.invalid"),
            ("+1 555 1234", None, "ph.length"),
            ("555 1234 5678 9999", Some("us"), "ph.length"),
            ("+999 1234567", None, "ph.country_code"),
            ("+1 650 + 555", None, "ph.invalid"),
            ("12345678901234567890123456", Some("us"), "ph.length"),
        ] {
            assert_eq!(norm(input, region), Err(rule), "{input:?}");
        }
    }
}

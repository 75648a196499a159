//! Letter-only text (names, cities) and trimmed identifiers.

use super::DropReason;
use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategoryGroup, UnicodeGeneralCategory};

/// Lowercases and keeps only letters and combining marks of every script
/// (Unicode categories L and M), after Unicode NFC: `Mary-Ann` → `maryann`,
/// `São Paulo` → `sãopaulo`, `Valéry` → `valéry` (precomposed é).
/// Punctuation, symbols, digits and spaces go.
pub(super) fn letters_only(
    value: &str,
    out: &mut String,
    what: &'static str,
    empty_message: &'static str,
) -> Result<(), DropReason> {
    if value.bytes().all(|b| b.is_ascii_alphabetic()) {
        // The common case ("Jane"): copy, then lowercase in place.
        out.push_str(value);
        out.make_ascii_lowercase();
    } else if value.is_ascii() {
        for b in value.bytes().filter(u8::is_ascii_alphabetic) {
            out.push(b.to_ascii_lowercase() as char);
        }
    } else {
        keep_nfc(value, out, false);
    }
    if out.is_empty() {
        return Err(DropReason::new(
            if what == "name" {
                "name.no_letters"
            } else {
                "city.no_letters"
            },
            empty_message,
        ));
    }
    Ok(())
}

/// Letters, marks and digits (for non-US regions and postcodes).
pub(super) fn alphanumeric_lower(value: &str, out: &mut String) {
    if value.is_ascii() {
        out.extend(
            value
                .bytes()
                .filter(u8::is_ascii_alphanumeric)
                .map(|b| b.to_ascii_lowercase() as char),
        );
    } else {
        keep_nfc(value, out, true);
    }
}

/// Keeps letters (and digits when asked), lowercased, after NFC. A combining
/// mark stays only with the character it belongs to: the accent on a removed
/// apostrophe goes with the apostrophe. Lowercasing is Unicode's full case
/// mapping with its one context rule, the final sigma (`ΟΔΥΣΣΕΑΣ` →
/// `οδυσσεας`), as Meta's pixel and SDKs lowercase: applied to the whole
/// value before separators are removed, since "final" means at a word's end.
fn keep_nfc(value: &str, out: &mut String, digits: bool) {
    if value.contains('Σ') {
        let lowered = value.to_lowercase();
        return keep_nfc_lowered(&lowered, out, digits);
    }
    keep_nfc_lowered(value, out, digits)
}

fn keep_nfc_lowered(value: &str, out: &mut String, digits: bool) {
    let mut base_kept = false;
    for c in value.nfc() {
        let keep = match c.general_category_group() {
            GeneralCategoryGroup::Letter => true,
            GeneralCategoryGroup::Number => digits,
            GeneralCategoryGroup::Mark => base_kept,
            _ => false,
        };
        if keep {
            out.extend(c.to_lowercase());
        }
        if c.general_category_group() != GeneralCategoryGroup::Mark {
            base_kept = keep;
        }
    }
    // Lowercasing can produce sequences that compose (İ → i + U+0307 stays,
    // but others may not): keep the result in NFC.
    if !unicode_normalization::is_nfc(out) {
        let nfc: String = out.nfc().collect();
        *out = nfc;
    }
}

/// `external_id`: trimmed and NFC-normalized, case kept (CRM record IDs such as
/// Salesforce's are case-sensitive; lowercasing would merge distinct people).
pub(super) fn trimmed(value: &str, out: &mut String) {
    let t = value.trim();
    if t.is_ascii() {
        out.push_str(t);
    } else {
        out.extend(t.nfc());
    }
}

/// Stack buffer for look-up keys. No table key is longer than 64 letters,
/// so a longer input folds to the empty key, which matches nothing.
pub(super) struct KeyBuf {
    buf: [u8; 64],
    len: usize,
}

impl KeyBuf {
    pub(super) fn new() -> Self {
        KeyBuf {
            buf: [0; 64],
            len: 0,
        }
    }

    #[inline]
    fn push(&mut self, b: u8) -> bool {
        if self.len == self.buf.len() {
            self.len = 0;
            return false;
        }
        self.buf[self.len] = b;
        self.len += 1;
        true
    }
}

/// ASCII key for table look-ups: letters only, lowercase, accents removed
/// (`Québec` → `quebec`, `U.S.A.` → `usa`).
pub(super) fn fold_key<'a>(value: &str, out: &'a mut KeyBuf) -> &'a str {
    out.len = 0;
    let mut fits = true;
    if value.is_ascii() {
        let mut n = 0;
        for b in value.bytes().filter(u8::is_ascii_alphabetic) {
            let Some(slot) = out.buf.get_mut(n) else {
                fits = false;
                break;
            };
            *slot = b | 0x20; // ASCII letter to lowercase
            n += 1;
        }
        out.len = n;
    } else {
        for c in value.nfd() {
            if c.is_ascii_alphabetic() {
                fits &= out.push(c.to_ascii_lowercase() as u8);
            } else if c == 'ß' {
                fits &= out.push(b's') && out.push(b's');
            }
            if !fits {
                break;
            }
        }
    }
    if !fits {
        out.len = 0;
    }
    std::str::from_utf8(&out.buf[..out.len]).expect("ASCII letters")
}

/// Trims whitespace, with a fast path for the usual already-trimmed value.
#[inline]
pub(crate) fn trim(s: &str) -> &str {
    match (s.as_bytes().first(), s.as_bytes().last()) {
        (Some(&f), Some(&l)) if f > b' ' && f < 0x80 && l > b' ' && l < 0x80 => s,
        _ => s.trim(),
    }
}

/// `value` without `prefix` (ASCII, any case), if it starts with it.
pub(super) fn strip_prefix_ci<'a>(value: &'a str, prefix: &str) -> Option<&'a str> {
    let head = value.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &value[prefix.len()..])
}

//! `em`: trimmed, lowercased, NFC; must look like `local@domain.tld`.

use super::text::strip_prefix_ci;
use super::DropReason;
use unicode_normalization::UnicodeNormalization;

pub(super) fn normalize(value: &str, out: &mut String) -> Result<(), DropReason> {
    let v = value.trim();
    let v = strip_prefix_ci(v, "mailto:").map_or(v, str::trim);
    if v.is_ascii() {
        return ascii(v, out);
    } else {
        let nfc: String = v.nfc().collect();
        out.push_str(&nfc.to_lowercase());
    }
    check(out)
}

/// The common case in one pass: lowercase while finding the `@` and the
/// last dot, then the same checks as [`check`].
fn ascii(v: &str, out: &mut String) -> Result<(), DropReason> {
    let mut at = None;
    for (i, b) in v.bytes().enumerate() {
        match b {
            b'@' if at.is_some() => {
                return Err(DropReason::new("em.invalid", "has more than one @"))
            }
            b'@' => at = Some(i),
            b if b <= b' ' || b == 0x7f => {
                return Err(DropReason::new("em.invalid", "contains spaces"))
            }
            _ => {}
        }
        out.push(b.to_ascii_lowercase() as char);
    }
    match at {
        None => Err(DropReason::new("em.invalid", "has no @")),
        Some(_) => check(out),
    }
}

fn check(e: &str) -> Result<(), DropReason> {
    if e.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(DropReason::new("em.invalid", "contains spaces"));
    }
    let mut parts = e.split('@');
    let (local, domain) = match (parts.next(), parts.next(), parts.next()) {
        (Some(l), Some(d), None) => (l, d),
        (_, None, _) => return Err(DropReason::new("em.invalid", "has no @")),
        _ => return Err(DropReason::new("em.invalid", "has more than one @")),
    };
    if local.is_empty() {
        return Err(DropReason::new("em.invalid", "has nothing before the @"));
    }
    if !domain.contains('.') || domain.split('.').any(str::is_empty) {
        return Err(DropReason::new(
            "em.invalid",
            "domain is not of the form name.tld",
        ));
    }
    let tld = domain.rsplit('.').next().unwrap_or_default();
    if tld.chars().count() < 2 || tld.chars().all(|c| c.is_ascii_digit()) {
        return Err(DropReason::new(
            "em.invalid",
            "domain has no valid top-level part",
        ));
    }
    if domain
        .chars()
        .any(|c| !(c.is_alphanumeric() || c == '-' || c == '.'))
    {
        return Err(DropReason::new(
            "em.invalid",
            "domain contains characters a domain cannot have",
        ));
    }
    Ok(())
}

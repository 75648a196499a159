//! `em`: trimmed, lowercased, NFC; must look like `local@domain.tld`.

use super::text::strip_prefix_ci;
use super::DropReason;
use unicode_normalization::UnicodeNormalization;

pub(super) fn normalize(value: &str, out: &mut String) -> Result<(), DropReason> {
    let v = super::text::trim(value);
    let v = strip_prefix_ci(v, "mailto:").map_or(v, str::trim);
    if v.is_ascii() {
        return ascii(v, out);
    } else {
        let nfc: String = v.nfc().collect();
        out.push_str(&nfc.to_lowercase());
    }
    check(out)
}

/// The common case in one pass: lowercase while finding the `@`, then check
/// the domain's bytes once (labels non-empty, letters, digits, `-`; a
/// top-level label of 2+ characters that is not all digits).
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
    }
    let Some(at) = at else {
        return Err(DropReason::new("em.invalid", "has no @"));
    };
    if at == 0 {
        return Err(DropReason::new("em.invalid", "has nothing before the @"));
    }
    let domain = &v.as_bytes()[at + 1..];
    let (mut label_len, mut labels, mut label_all_digits) = (0usize, 0usize, true);
    for &b in domain {
        match b {
            b'.' if label_len == 0 => break,
            b'.' => {
                labels += 1;
                label_len = 0;
                label_all_digits = true;
            }
            b'0'..=b'9' => label_len += 1,
            b'a'..=b'z' | b'A'..=b'Z' | b'-' => {
                label_len += 1;
                label_all_digits = false;
            }
            _ => {
                return Err(DropReason::new(
                    "em.invalid",
                    "domain contains characters a domain cannot have",
                ))
            }
        }
    }
    if labels == 0
        || label_len == 0
        || domain.ends_with(b".")
        || domain.windows(2).any(|w| w == b"..")
    {
        return Err(DropReason::new(
            "em.invalid",
            "domain is not of the form name.tld",
        ));
    }
    if label_len < 2 || label_all_digits {
        return Err(DropReason::new(
            "em.invalid",
            "domain has no valid top-level part",
        ));
    }
    out.push_str(v);
    out.make_ascii_lowercase();
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn em(v: &str) -> Result<String, &'static str> {
        let mut out = String::new();
        normalize(v, &mut out).map(|_| out).map_err(|e| e.rule)
    }

    /// The ASCII fast path and the general path agree on every case.
    #[test]
    fn ascii_and_general_paths_agree() {
        for v in [
            "Jane.Doe@Example.com",
            "a@b.co",
            "a@b.c",
            "a@b",
            "@b.co",
            "a@@b.co",
            "a@b@c.co",
            "a b@c.co",
            "a@b..co",
            "a@.b.co",
            "a@b.co.",
            "a@b.123",
            "a@b_c.co",
            "a@-b.co",
            "mailto:X@Y.ORG",
            "a@b.c0",
            "a@1.2.3.4",
            "x@xn--bcher-kva.ch",
        ] {
            let mut general = String::new();
            let lowered = v
                .trim()
                .strip_prefix("mailto:")
                .unwrap_or(v)
                .to_ascii_lowercase();
            let general = check(&lowered).map(|_| {
                general.push_str(&lowered);
                general
            });
            assert_eq!(em(v), general.map_err(|e| e.rule), "{v}");
        }
        assert_eq!(
            em(" Jane.Doe@Example.com "),
            Ok("jane.doe@example.com".into())
        );
    }
}

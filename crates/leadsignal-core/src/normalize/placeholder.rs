//! Values a form or a CRM holds where the person gave none: `N/A`,
//! `unknown`, `-`, `test`, an all-zero phone, `noemail@...`. Hashed, they
//! match no one (or, worse, everyone who typed the same), so they are left
//! out before hashing with `<key>.placeholder`. One table for every field;
//! `normalize.placeholders` adds to it.

use super::Field;

/// Words that stand for "nothing" in any field (compared by [`fold`]).
const ANY: &[&str] = &[
    "na",
    "none",
    "null",
    "nil",
    "unknown",
    "unk",
    "undefined",
    "test",
    "testing",
    "x",
    "xx",
    "xxx",
    "asdf",
    "asdfgh",
    "qwerty",
    "tbd",
    "notavailable",
    "notprovided",
    "notgiven",
    "notapplicable",
    "noname",
    "blank",
    "empty",
    "dummy",
    "sample",
    "example",
    "anonymous",
    "nobody",
];

/// More words that stand for no name.
const NAMES: &[&str] = &[
    "first",
    "last",
    "firstname",
    "lastname",
    "fname",
    "lname",
    "name",
    "yourname",
    "customer",
    "client",
];

/// Local parts of addresses that are nobody's.
const EMAIL_LOCAL: &[&str] = &[
    "noemail",
    "noemails",
    "nomail",
    "none",
    "na",
    "null",
    "unknown",
    "nobody",
    "noreply",
    "donotreply",
    "test",
    "asdf",
    "xxx",
    "fake",
    "dummy",
    "notprovided",
    "notavailable",
];

/// Domains that take no mail from a person.
const EMAIL_DOMAIN: &[&str] = &[
    "noemail.com",
    "nomail.com",
    "none.com",
    "fake.com",
    "test.com",
    "noemail.net",
];

/// At most this many letters and digits: longer values are no placeholder.
const MAX_FOLD: usize = 16;

/// Lowercase ASCII letters and digits of `value`, without spaces, dots,
/// slashes, dashes and underscores (`N/A` → `na`, `Not Available` →
/// `notavailable`), in a stack buffer; `None` for anything else (non-ASCII,
/// other characters, longer than any word of the tables).
fn fold<'a>(value: &str, buf: &'a mut [u8; MAX_FOLD]) -> Option<&'a str> {
    let mut n = 0;
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() {
            *buf.get_mut(n)? = b.to_ascii_lowercase();
            n += 1;
        } else if !matches!(
            b,
            b' ' | b'.' | b'/' | b'-' | b'_' | b'\'' | b'\\' | b'*' | b'?' | b'#'
        ) {
            return None;
        }
    }
    std::str::from_utf8(&buf[..n]).ok()
}

/// Whether `value` (trimmed, not empty) is a placeholder for `field`.
pub(super) fn is_placeholder(field: Field, value: &str) -> bool {
    match field {
        Field::Em => email(value),
        Field::Ph => phone(value),
        Field::Zp => zip(value) || word(value, &[]),
        Field::Fn | Field::Ln => word(value, NAMES),
        Field::Ct | Field::St | Field::Country => word(value, &[]),
        Field::Db | Field::Ge | Field::ExternalId => false,
    }
}

/// Whether `value` folds to one of `extra` (`normalize.placeholders`,
/// folded the same way by [`fold_extra`]).
pub(crate) fn is_extra(value: &str, extra: &[String]) -> bool {
    let mut buf = [0; MAX_FOLD];
    !extra.is_empty() && fold(value, &mut buf).is_some_and(|f| extra.iter().any(|e| e == f))
}

/// A configured placeholder as [`is_extra`] compares it (`None` if it could
/// never match: non-ASCII, or longer than 16 letters and digits).
pub fn fold_extra(value: &str) -> Option<String> {
    let mut buf = [0; MAX_FOLD];
    fold(value.trim(), &mut buf).map(str::to_string)
}

/// A value that is one of the words. (Punctuation alone, `-` or `?`, is
/// left to each field's own rule: a name without letters, an invalid phone.)
fn word(value: &str, more: &[&str]) -> bool {
    let mut buf = [0; MAX_FOLD];
    match fold(value, &mut buf) {
        Some(f) => ANY.contains(&f) || more.contains(&f),
        None => false,
    }
}

fn email(value: &str) -> bool {
    let Some((local, domain)) = value.rsplit_once('@') else {
        return word(value, &[]);
    };
    let mut buf = [0; MAX_FOLD];
    let local = fold(local, &mut buf).unwrap_or("-");
    EMAIL_LOCAL.contains(&local)
        || EMAIL_DOMAIN.iter().any(|d| domain.trim().eq_ignore_ascii_case(d))
        // no@email.com, email@email.com
        || (domain.len() > 6
            && domain.as_bytes()[..6].eq_ignore_ascii_case(b"email.")
            && matches!(local, "no" | "email"))
}

/// Digits of `value`, up to 32.
fn digits(value: &str, buf: &mut [u8; 32]) -> usize {
    let mut n = 0;
    for b in value.bytes().filter(u8::is_ascii_digit) {
        if n == buf.len() {
            break;
        }
        buf[n] = b - b'0';
        n += 1;
    }
    n
}

/// All one digit after the first few (`0000000000`, `+1 111-111-1111`,
/// `555-555-5555`), or a counting run (`1234567890`, `0123456789`,
/// `987654321`).
fn phone(value: &str) -> bool {
    let mut buf = [0; 32];
    let n = digits(value, &mut buf);
    let d = &buf[..n];
    if n < 6 {
        return false;
    }
    // Up to three leading digits may be a country or trunk code; what
    // follows is six or more of one digit, or a run of nine or more.
    let same = (0..=3.min(n - 6)).any(|k| d[k..].iter().all(|&x| x == d[k]));
    let run = |step: u8| {
        n >= 9
            && (0..=3.min(n - 9))
                .any(|k| d[k..].windows(2).all(|w| (w[1] + 10 - w[0]) % 10 == step))
    };
    same || run(1) || run(9)
}

/// Four or more digits, all the same, and nothing else (`00000`, `99999`).
fn zip(value: &str) -> bool {
    let mut buf = [0; 32];
    let n = digits(value, &mut buf);
    n >= 4
        && value.bytes().filter(u8::is_ascii_alphanumeric).count() == n
        && buf[..n].iter().all(|&x| x == buf[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_that_stand_for_nothing() {
        for v in [
            "N/A",
            "n.a.",
            "NA",
            "none",
            "NULL",
            "Unknown",
            "test",
            "x",
            "asdf",
            "Not Available",
            "TBD",
        ] {
            assert!(is_placeholder(Field::Ct, v), "{v}");
        }
        for v in ["First Name", "LASTNAME", "name", "Customer"] {
            assert!(is_placeholder(Field::Fn, v), "{v}");
            assert!(!is_placeholder(Field::Ct, v), "{v}");
        }
        for v in ["Jane", "Doe", "Nash", "Xavier", "Testa", "New York"] {
            assert!(!is_placeholder(Field::Fn, v), "{v}");
            assert!(!is_placeholder(Field::Ct, v), "{v}");
        }
    }

    #[test]
    fn addresses_that_are_nobodys() {
        for v in [
            "noemail@gmail.com",
            "no@email.com",
            "none@none.com",
            "NoEmail@Company.com",
            "n/a@x.com",
            "test@test.com",
            "email@email.com",
            "jane@noemail.com",
            "N/A",
        ] {
            assert!(is_placeholder(Field::Em, v), "{v}");
        }
        for v in [
            "jane.doe@example.com",
            "info@company.de",
            "no.reply.jane@gmail.com",
            "nora@email.com",
        ] {
            assert!(!is_placeholder(Field::Em, v), "{v}");
        }
    }

    #[test]
    fn phones_of_one_digit_or_a_counting_run() {
        for v in [
            "0000000000",
            "000-000-0000",
            "+1 111-111-1111",
            "(555) 555-5555",
            "1234567890",
            "+44 0123456789",
            "9876543210",
            "999999",
        ] {
            assert!(is_placeholder(Field::Ph, v), "{v}");
        }
        for v in [
            "(650) 555-1212",
            "+44 20 7946 0958",
            "+1 312 555 0187",
            "12345",
            "+91 98450 12345",
            "(555) 123-4567",
        ] {
            assert!(!is_placeholder(Field::Ph, v), "{v}");
        }
    }

    #[test]
    fn postcodes() {
        assert!(is_placeholder(Field::Zp, "00000"));
        assert!(is_placeholder(Field::Zp, "99999"));
        assert!(is_placeholder(Field::Zp, "N/A"));
        assert!(!is_placeholder(Field::Zp, "94025"));
        assert!(!is_placeholder(Field::Zp, "SW1A 1AA"));
        assert!(!is_placeholder(Field::Zp, "1111AB"));
    }
}

//! Values a form or a CRM holds where the person gave none: `N/A`,
//! `unknown`, `-`, `test`, an all-zero phone, `noemail@...`. Hashed, they
//! match no one (or, worse, everyone who typed the same), so they are left
//! out before hashing with `<key>.placeholder`. One table for every field;
//! `normalize.placeholders` adds to it.

use super::Field;

/// Words that stand for "nothing" in any field (compared by [`fold`];
/// [`any_word`] is the same list as a `match`, checked against it).
#[cfg(test)]
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
fn fold<'a>(value: &str, buf: &'a mut [u8; MAX_FOLD]) -> Option<&'a [u8]> {
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
    Some(&buf[..n])
}

/// Whether a folded value is one of the words of [`ANY`] (a `match`: the
/// compiler compares by length first, the hot path of every name).
fn any_word(f: &[u8]) -> bool {
    // By length first: most values are ruled out by one comparison.
    match f.len() {
        1 => f == b"x",
        2 => f == b"na" || f == b"xx",
        3 => matches!(f, b"nil" | b"unk" | b"xxx" | b"tbd"),
        4 => matches!(f, b"none" | b"null" | b"test" | b"asdf"),
        5 => matches!(f, b"blank" | b"empty" | b"dummy"),
        6 => matches!(f, b"asdfgh" | b"qwerty" | b"noname" | b"sample" | b"nobody"),
        7 => matches!(f, b"unknown" | b"testing" | b"example"),
        8 => f == b"notgiven",
        9 => matches!(f, b"undefined" | b"anonymous"),
        11 => f == b"notprovided",
        12 => f == b"notavailable",
        13 => f == b"notapplicable",
        _ => false,
    }
}

/// Whether a value normalized for `field` (names and cities: lowercase
/// letters; e-mails: lowercase; phones: digits with the country code) is
/// a placeholder: the fast check, on what is about to be hashed.
pub(super) fn normalized(field: Field, out: &str) -> bool {
    match field {
        Field::Fn | Field::Ln => any_word(out.as_bytes()) || name_word(out.as_bytes()),
        Field::Ct | Field::St => any_word(out.as_bytes()),
        Field::Zp => same_digits(out.as_bytes(), 4) || any_word(out.as_bytes()),
        Field::Ph => phone_digits(out.as_bytes()),
        Field::Em => email(out),
        Field::Country | Field::Db | Field::Ge | Field::ExternalId => false,
    }
}

/// Whether a folded value is one of the words of [`NAMES`].
fn name_word(f: &[u8]) -> bool {
    match f.len() {
        4 => matches!(f, b"last" | b"name"),
        5 => matches!(f, b"first" | b"fname" | b"lname"),
        6 => f == b"client",
        8 => matches!(f, b"lastname" | b"yourname" | b"customer"),
        9 => f == b"firstname",
        _ => false,
    }
}

/// Four (or `min`) or more bytes, all one ASCII digit.
fn same_digits(b: &[u8], min: usize) -> bool {
    b.len() >= min && b[0].is_ascii_digit() && b.iter().all(|&x| x == b[0])
}

/// Whether `value` (trimmed, not empty) is a placeholder for `field`.
pub(super) fn is_placeholder(field: Field, value: &str) -> bool {
    match field {
        Field::Em => email(value),
        Field::Ph => phone(value),
        Field::Zp => zip(value) || word(value, &[]),
        Field::Fn | Field::Ln => word(value, NAMES),
        Field::Ct | Field::St => word(value, &[]),
        // Two letters are an ISO code ("NA" is Namibia); "N/A" is not.
        Field::Country => {
            !(value.len() == 2 && value.bytes().all(|b| b.is_ascii_alphabetic()))
                && word(value, &[])
        }
        Field::Db | Field::Ge | Field::ExternalId => false,
    }
}

/// Whether `value` folds to one of `extra` (`normalize.placeholders`,
/// folded the same way by [`fold_extra`]).
pub(crate) fn is_extra(value: &str, extra: &[String]) -> bool {
    let mut buf = [0; MAX_FOLD];
    !extra.is_empty()
        && fold(value, &mut buf).is_some_and(|f| extra.iter().any(|e| e.as_bytes() == f))
}

/// A configured placeholder as [`is_extra`] compares it (`None` if it could
/// never match: non-ASCII, or longer than 16 letters and digits).
pub fn fold_extra(value: &str) -> Option<String> {
    let mut buf = [0; MAX_FOLD];
    fold(value.trim(), &mut buf).map(|f| String::from_utf8_lossy(f).into_owned())
}

/// A value that is one of the words. (Punctuation alone, `-` or `?`, is
/// left to each field's own rule: a name without letters, an invalid phone.)
fn word(value: &str, more: &[&str]) -> bool {
    // No word of the tables is longer than 16 letters, nor has a byte
    // outside ASCII: most values are ruled out before folding.
    if value.len() > 3 * MAX_FOLD || !value.is_ascii() {
        return false;
    }
    let mut buf = [0; MAX_FOLD];
    match fold(value, &mut buf) {
        Some(f) => any_word(f) || more.iter().any(|m| m.as_bytes() == f),
        None => false,
    }
}

fn email(value: &str) -> bool {
    let Some((local, domain)) = value.rsplit_once('@') else {
        return word(value, &[]);
    };
    let mut buf = [0; MAX_FOLD];
    let local = fold(local, &mut buf).unwrap_or(b"-");
    let domain = domain.trim_ascii();
    EMAIL_LOCAL.iter().any(|l| l.as_bytes() == local)
        || EMAIL_DOMAIN.iter().any(|d| domain.eq_ignore_ascii_case(d))
        // no@email.com, email@email.com
        || (domain.len() > 6
            && domain.as_bytes()[..6].eq_ignore_ascii_case(b"email.")
            && matches!(local, b"no" | b"email"))
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
    for d in buf[..n].iter_mut() {
        *d += b'0';
    }
    phone_digits(&buf[..n])
}

/// [`phone`] on ASCII digits.
fn phone_digits(d: &[u8]) -> bool {
    let n = d.len();
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
    fn the_match_and_the_table_agree() {
        for w in ANY {
            assert!(any_word(w.as_bytes()), "{w}");
        }
        for w in NAMES {
            assert!(name_word(w.as_bytes()), "{w}");
        }
        assert!(!any_word(b"jane"));
    }

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

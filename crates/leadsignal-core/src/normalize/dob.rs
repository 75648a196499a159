//! `db`: `YYYYMMDD`, from the formats CRMs and spreadsheets write, with a
//! configured reading of ambiguous day/month order and range checks.

use super::DropReason;
use chrono::NaiveDate;

/// How to read a date like `02/03/1990` where both numbers could be a month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DateOrder {
    /// Month first (US): `02/03/1990` is 3 February.
    #[default]
    Mdy,
    /// Day first (most of the world): `02/03/1990` is 2 March.
    Dmy,
}

const MONTHS: &[(&str, u32)] = &[
    ("january", 1),
    ("february", 2),
    ("march", 3),
    ("april", 4),
    ("may", 5),
    ("june", 6),
    ("july", 7),
    ("august", 8),
    ("september", 9),
    ("october", 10),
    ("november", 11),
    ("december", 12),
    ("sept", 9),
    // French, Spanish, German, Portuguese, Italian full names that differ.
    ("janvier", 1),
    ("fevrier", 2),
    ("mars", 3),
    ("avril", 4),
    ("mai", 5),
    ("juin", 6),
    ("juillet", 7),
    ("aout", 8),
    ("septembre", 9),
    ("octobre", 10),
    ("novembre", 11),
    ("decembre", 12),
    ("enero", 1),
    ("febrero", 2),
    ("marzo", 3),
    ("abril", 4),
    ("mayo", 5),
    ("junio", 6),
    ("julio", 7),
    ("agosto", 8),
    ("septiembre", 9),
    ("octubre", 10),
    ("noviembre", 11),
    ("diciembre", 12),
    ("januar", 1),
    ("februar", 2),
    ("maerz", 3),
    ("marz", 3),
    ("juni", 6),
    ("juli", 7),
    ("oktober", 10),
    ("dezember", 12),
    ("janeiro", 1),
    ("fevereiro", 2),
    ("marco", 3),
    ("maio", 5),
    ("junho", 6),
    ("julho", 7),
    ("setembro", 9),
    ("outubro", 10),
    ("dezembro", 12),
    ("gennaio", 1),
    ("febbraio", 2),
    ("aprile", 4),
    ("maggio", 5),
    ("giugno", 6),
    ("luglio", 7),
    ("settembre", 9),
    ("ottobre", 10),
    ("dicembre", 12),
];

fn month_by_name(word: &str) -> Option<u32> {
    let w = word.to_ascii_lowercase();
    if w.len() < 3 {
        return None;
    }
    MONTHS
        .iter()
        .find(|(name, _)| *name == w)
        .or_else(|| {
            MONTHS[..12]
                .iter()
                .find(|(name, _)| name.starts_with(w.as_str()))
        })
        .map(|&(_, m)| m)
}

enum Token<'a> {
    Num(&'a str),
    Word(&'a str),
}

fn invalid(msg: &'static str) -> DropReason {
    DropReason::new("db.invalid", msg)
}

pub(super) fn normalize(
    value: &str,
    order: DateOrder,
    today: (i32, u32, u32),
    out: &mut String,
) -> Result<(), DropReason> {
    let mut v = super::text::trim(value);
    // ISO date-times: keep the date part.
    if let Some(pos) = v.find(['T', 't']) {
        if pos >= 8
            && v.as_bytes()[..pos]
                .iter()
                .all(|b| b.is_ascii_digit() || *b == b'-')
        {
            v = &v[..pos];
        }
    }
    if let Some((date, time)) = v.split_once(' ') {
        if time.contains(':') && !date.is_empty() {
            v = date;
        }
    }
    let folded: String = {
        use unicode_normalization::UnicodeNormalization;
        v.nfd().filter(char::is_ascii).collect()
    };
    let mut tokens = Vec::with_capacity(3);
    let bytes = folded.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        if bytes[i].is_ascii_digit() {
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            tokens.push(Token::Num(&folded[start..i]));
        } else if bytes[i].is_ascii_alphabetic() {
            while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
                i += 1;
            }
            let w = &folded[start..i];
            // Ordinal suffixes and filler words: "16th", "of".
            if !matches!(
                w.to_ascii_lowercase().as_str(),
                "st" | "nd" | "rd" | "th" | "of" | "de"
            ) {
                tokens.push(Token::Word(w));
            }
        } else if matches!(bytes[i], b'-' | b'/' | b'.' | b' ' | b',' | b'_') {
            i += 1;
        } else {
            return Err(invalid("is not a date"));
        }
    }
    let (y, m, d) = match tokens.as_slice() {
        [Token::Num(s)] if s.len() == 8 => {
            let n = |r: std::ops::Range<usize>| s[r].parse::<u32>().expect("digits");
            (n(0..4) as i32, n(4..6), n(6..8))
        }
        [Token::Num(a), Token::Num(b), Token::Num(c)] => {
            if a.len() == 4 {
                (num(a) as i32, num(b), num(c))
            } else if c.len() == 4 {
                let (a, b) = (num(a), num(b));
                let (m, d) = if a > 12 && b <= 12 {
                    (b, a)
                } else if b > 12 && a <= 12 {
                    (a, b)
                } else {
                    match order {
                        DateOrder::Mdy => (a, b),
                        DateOrder::Dmy => (b, a),
                    }
                };
                (num(c) as i32, m, d)
            } else if c.len() == 2 || a.len() == 2 && b.len() == 2 {
                return Err(DropReason::new(
                    "db.two_digit_year",
                    "has a two-digit year, so the century is unknown",
                ));
            } else {
                return Err(invalid("is not a date"));
            }
        }
        [Token::Num(y), Token::Word(m), Token::Num(d)] if y.len() == 4 => {
            let m = month_by_name(m).ok_or_else(|| invalid("has an unknown month name"))?;
            (num(y) as i32, m, num(d))
        }
        [Token::Num(d), Token::Word(m), Token::Num(y)]
        | [Token::Word(m), Token::Num(d), Token::Num(y)] => {
            let m = month_by_name(m).ok_or_else(|| invalid("has an unknown month name"))?;
            if y.len() != 4 {
                return Err(DropReason::new(
                    "db.two_digit_year",
                    "has a two-digit year, so the century is unknown",
                ));
            }
            (num(y) as i32, m, num(d))
        }
        _ => return Err(invalid("is not a date")),
    };
    if !(1..=12).contains(&m) {
        return Err(DropReason::new("db.range", "has a month outside 1-12"));
    }
    let Some(date) = NaiveDate::from_ymd_opt(y, m, d) else {
        return Err(DropReason::new(
            "db.range",
            "has a day that month does not have",
        ));
    };
    if y < 1900 {
        return Err(DropReason::new("db.range", "is before 1900"));
    }
    let (ty, tm, td) = today;
    if NaiveDate::from_ymd_opt(ty, tm, td).is_some_and(|t| date > t) {
        return Err(DropReason::new("db.range", "is in the future"));
    }
    use std::fmt::Write;
    write!(out, "{y:04}{m:02}{d:02}").expect("writing to a String");
    Ok(())
}

fn num(s: &str) -> u32 {
    // Tokens are ASCII digit runs; absurdly long ones become out of range.
    s.parse().unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TODAY: (i32, u32, u32) = (2026, 11, 21);

    fn db(v: &str, order: DateOrder) -> Result<String, &'static str> {
        let mut out = String::new();
        normalize(v, order, TODAY, &mut out)
            .map(|_| out)
            .map_err(|e| e.rule)
    }

    #[test]
    fn formats() {
        use DateOrder::*;
        for (input, order, want) in [
            ("2/16/1997", Mdy, "19970216"),
            ("2/16/1997", Dmy, "19970216"),
            ("16/2/1997", Mdy, "19970216"),
            ("1990-03-04", Dmy, "19900304"),
            ("1990/03/04", Mdy, "19900304"),
            ("19900304", Mdy, "19900304"),
            ("04/03/1990", Mdy, "19900403"),
            ("04/03/1990", Dmy, "19900304"),
            ("04.03.1990", Dmy, "19900304"),
            ("31/12/1990", Mdy, "19901231"),
            ("16 Feb 1997", Mdy, "19970216"),
            ("February 16, 1997", Dmy, "19970216"),
            ("Feb 16th 1997", Dmy, "19970216"),
            ("1997-Feb-16", Dmy, "19970216"),
            ("3 de março de 1990", Dmy, "19900303"),
            ("1990-03-04T00:00:00Z", Mdy, "19900304"),
            ("1990-03-04 00:00:00", Mdy, "19900304"),
            ("29/02/2000", Dmy, "20000229"),
        ] {
            assert_eq!(db(input, order), Ok(want.to_string()), "{input}");
        }
    }

    #[test]
    fn rejects() {
        use DateOrder::*;
        for (input, rule) in [
            ("2/16/97", "db.two_digit_year"),
            ("13/13/1990", "db.range"),
            ("29/02/2001", "db.range"),
            ("31/04/1990", "db.range"),
            ("1899-12-31", "db.range"),
            ("2030-01-01", "db.range"),
            ("yesterday", "db.invalid"),
            ("1990", "db.invalid"),
            ("1990-03-04-05", "db.invalid"),
            ("12345678901234567890/1/1990", "db.range"),
        ] {
            assert_eq!(db(input, Dmy), Err(rule), "{input}");
        }
    }
}

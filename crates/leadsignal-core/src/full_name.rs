//! A full name ("Dr. Jane Q. Doe", "Doe, Jane") as first and last name.
//! Meta hashes first and last names separately; a whole name hashed as one
//! value matches no one.

/// Titles that may open a name (compared without case and trailing dot).
const TITLES: &[&str] = &[
    "mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "dame", "madam", "herr", "frau", "mme",
    "mlle", "sr", "sra", "srta", "dott", "ing",
];

/// Suffixes that may close a name.
const SUFFIXES: &[&str] = &[
    "jr", "sr", "ii", "iii", "iv", "phd", "md", "esq", "dds", "mba", "jun", "sen",
];

fn bare(word: &str) -> String {
    word.trim_matches(|c: char| c == '.' || c == ',')
        .to_lowercase()
}

/// The first and last name in a full name: the first and the last word
/// after titles (Mr, Mrs, Dr, Prof, ...) and suffixes (Jr, III, PhD, ...)
/// are taken off; `Last, First` is read the other way round (everything
/// before the comma is the last name). One word is a first name only.
pub fn split_full_name(full: &str) -> (Option<&str>, Option<&str>) {
    if let Some((last, first)) = full.split_once(',') {
        let (f, _) = split_full_name(first);
        let w = words(last);
        if let (Some(a), Some(b), Some(_)) = (w.first(), w.last(), f) {
            // The words are slices of `last`: take all of it between them.
            let start = a.as_ptr() as usize - last.as_ptr() as usize;
            let end = b.as_ptr() as usize - last.as_ptr() as usize + b.len();
            return (f, Some(&last[start..end]));
        }
    }
    let w = words(full);
    match w.as_slice() {
        [] => (None, None),
        [one] => (Some(one), None),
        [first, .., last] => (Some(first), Some(last)),
    }
}

/// The words of a name without titles before and suffixes after it.
fn words(s: &str) -> Vec<&str> {
    let mut w: Vec<&str> = s
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.trim_matches('.').is_empty())
        .collect();
    while w.len() > 1 && TITLES.contains(&bare(w[0]).as_str()) {
        w.remove(0);
    }
    while w.len() > 1 && SUFFIXES.contains(&bare(w[w.len() - 1]).as_str()) {
        w.pop();
    }
    w
}

#[cfg(test)]
mod tests {
    use super::split_full_name as s;

    #[test]
    fn first_and_last_word_without_titles() {
        assert_eq!(s("Jane Doe"), (Some("Jane"), Some("Doe")));
        assert_eq!(s("  Dr. Jane Q. Doe  "), (Some("Jane"), Some("Doe")));
        assert_eq!(
            s("Mrs Ana María García López"),
            (Some("Ana"), Some("López"))
        );
        assert_eq!(s("Martin Luther King Jr."), (Some("Martin"), Some("King")));
        assert_eq!(s("Doe, Jane"), (Some("Jane"), Some("Doe")));
        assert_eq!(
            s("van der Berg, Pieter"),
            (Some("Pieter"), Some("van der Berg"))
        );
        assert_eq!(s("Doe Jr., Jane"), (Some("Jane"), Some("Doe")));
        assert_eq!(s("Cher"), (Some("Cher"), None));
        assert_eq!(s("Dr."), (Some("Dr."), None));
        assert_eq!(s("   "), (None, None));
        // A title alone before one name is still a title; the name stays.
        assert_eq!(s("Herr Müller"), (Some("Müller"), None));
        assert_eq!(s("Don Draper"), (Some("Don"), Some("Draper")));
    }
}

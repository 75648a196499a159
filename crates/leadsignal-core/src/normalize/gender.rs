//! `ge`: `f` or `m`. Words in several languages map to those; anything else
//! (other, non-binary, unknown) is dropped, since Meta accepts only the two.

use super::text::{fold_key, KeyBuf};
use super::DropReason;

const FEMALE: &[&str] = &[
    "f",
    "female",
    "woman",
    "women",
    "girl",
    "lady",
    "mrs",
    "ms",
    "miss",
    "fem",
    "feminine",
    "femme",
    "feminin",
    "feminine",
    "femenino",
    "femenina",
    "mujer",
    "feminino",
    "mulher",
    "w",
    "weiblich",
    "frau",
    "donna",
    "femmina",
    "vrouw",
    "vrouwelijk",
    "kobieta",
    "zenska",
    "kvinna",
    "kvinde",
    "kvinne",
    "nainen",
];
const MALE: &[&str] = &[
    "m",
    "male",
    "man",
    "men",
    "boy",
    "mr",
    "masculine",
    "homme",
    "masculin",
    "masculino",
    "hombre",
    "homem",
    "mannlich",
    "maennlich",
    "mann",
    "uomo",
    "maschio",
    "mezczyzna",
    "mannelijk",
    "muski",
    "herr",
    "senor",
    "mies",
    "mand",
];

pub(super) fn normalize(value: &str, out: &mut String) -> Result<(), DropReason> {
    let mut buf = KeyBuf::new();
    let key = fold_key(value, &mut buf);
    if FEMALE.contains(&key) {
        out.push('f');
        Ok(())
    } else if MALE.contains(&key) {
        out.push('m');
        Ok(())
    } else {
        Err(DropReason::new(
            "ge.unknown",
            "is neither female nor male; Meta accepts only f or m",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words() {
        for (input, want) in [
            ("Female", Some("f")),
            ("F", Some("f")),
            ("femme", Some("f")),
            ("Männlich", Some("m")),
            ("Male", Some("m")),
            (" m ", Some("m")),
            ("hombre", Some("m")),
            ("other", None),
            ("non-binary", None),
            ("d", None),
        ] {
            let mut out = String::new();
            let got = normalize(input, &mut out).ok().map(|_| out);
            assert_eq!(got.as_deref(), want, "{input}");
        }
    }
}

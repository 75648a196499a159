//! Meta's published normalization examples (docs/meta-rules.md §3) and the peers' failure
//! cases (docs/meta-rules.md §8), with the answers Meta's rules give.

mod common;
use common::*;
use leadsignal_core::*;

#[test]
fn metas_published_test_vectors() {
    for (field, input, normalized, hash) in [
        (
            Field::Em,
            "John_Smith@gmail.com",
            "john_smith@gmail.com",
            "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f",
        ),
        (
            Field::Ph,
            "(650)555-1212",
            "16505551212",
            "e323ec626319ca94ee8bff2e4c87cf613be6ea19919ed1364124e16807ab3176",
        ),
        (
            Field::Fn,
            "Mary",
            "mary",
            "6915771be1c5aa0c886870b6951b03d7eafc121fea0e80a5ea83beb7c449f4ec",
        ),
        (
            Field::Fn,
            "정",
            "정",
            "8fa8cd9c440be61d0151429310034083132b35975c4bea67fdd74158eb51db14",
        ),
        (
            Field::Fn,
            "Valéry",
            "valéry",
            "08e1996b5dd49e62a4b4c010d44e4345592a863bb9f8e3976219bac29417149c",
        ),
        // The same name typed with a combining accent (NFD) must hash the same.
        (
            Field::Fn,
            "Vale\u{301}ry",
            "valéry",
            "08e1996b5dd49e62a4b4c010d44e4345592a863bb9f8e3976219bac29417149c",
        ),
        (
            Field::Db,
            "2/16/1997",
            "19970216",
            "01acdbf6ec7b4f478a225f1a246e5d6767eeab1a7ffa17f025265b5b94f40f0c",
        ),
        (
            Field::Country,
            "United States",
            "us",
            "79adb2a2fce5c6ba215fe5f27f532d4e7edbac4b6a5e09e1ef3a08084a904621",
        ),
    ] {
        assert_eq!(
            norm(field, input, Some("us")).as_deref(),
            Ok(normalized),
            "{field} {input}"
        );
        let mut scratch = String::new();
        let h = hash_field(field, input, &ctx(Some("us")), &mut scratch).unwrap();
        assert_eq!(h.to_string(), hash, "{field} {input}");
    }
}

/// docs/meta-rules.md §8: every row, with the value Meta's rules call for.
#[test]
fn peers_failure_table_with_right_answers() {
    let us = Some("us");
    for (field, input, want) in [
        (Field::Ph, "+1 (555) 123-4567", "15551234567"),
        // National number + default country US: the country code is added.
        (Field::Ph, "(555) 123-4567", "15551234567"),
        (Field::Ph, "555.123.4567", "15551234567"),
        // The (0) trunk digit goes.
        (Field::Ph, "+44 (0)20 7946 0958", "442079460958"),
        (Field::Ph, "0044 20 7946 0958", "442079460958"),
        (Field::Fn, "Mary-Ann", "maryann"),
        (Field::Ct, "São Paulo", "sãopaulo"),
        (Field::St, "California", "ca"),
        (Field::St, "New York", "ny"),
        (Field::Zp, "SW1A 1AA", "sw1a1aa"),
        (Field::Zp, "941031234", "94103"),
        (Field::Country, "United States", "us"),
        (Field::Country, "USA", "us"),
        // Austria, not Australia.
        (Field::Country, "AUT", "at"),
        (Field::Db, "1990-03-04", "19900304"),
        (Field::Db, "31/12/1990", "19901231"),
        (Field::Ge, "Male", "m"),
        // Hashed, trimmed, case kept (CRM IDs are case-sensitive).
        (Field::ExternalId, " Abc 123 ", "Abc 123"),
        // Locale-independent Unicode lowercase, as browsers do it.
        (Field::Em, "İNFO@EXAMPLE.COM", "i\u{307}nfo@example.com"),
        (Field::Em, "tést@gmail.com", "tést@gmail.com"),
    ] {
        assert_eq!(
            norm(field, input, us).as_deref(),
            Ok(want),
            "{field} {input:?}"
        );
    }
    // The phone extension is dropped, not appended.
    assert_eq!(
        norm(Field::Ph, "+1 555 123 4567 x89", us).as_deref(),
        Ok("15551234567")
    );
    // Non-US regions stay whole, never truncated to a wrong code.
    assert_eq!(
        norm(Field::St, "New South Wales", Some("au")).as_deref(),
        Ok("newsouthwales")
    );
    assert_eq!(
        norm(Field::St, "Île-de-France", Some("fr")).as_deref(),
        Ok("îledefrance")
    );
    // Unknown countries are rejected, never truncated.
    for bad in ["England-ish", "XYZ", "Europe"] {
        assert_eq!(
            norm(Field::Country, bad, us),
            Err("country.unknown"),
            "{bad}"
        );
    }
}

#[test]
fn prehashed_values_pass_through_and_nothing_else_does() {
    let h = "62A14E44F765419D10FEA99367361A727C12365E2520F32218D505ED9AA0F62F";
    for field in Field::ALL {
        assert_eq!(
            norm(field, h, Some("us")).as_deref(),
            Ok(h.to_ascii_lowercase().as_str())
        );
    }
    // A 32-digit MD5 or a 64-letter alphanumeric surname is hashed as text.
    let md5 = "d41d8cd98f00b204e9800998ecf8427e";
    assert_eq!(norm(Field::ExternalId, md5, None).as_deref(), Ok(md5));
    let long_name = "Z".repeat(64);
    assert_eq!(norm(Field::Ln, &long_name, None), Ok("z".repeat(64)));
    let mut scratch = String::new();
    let hashed = hash_field(Field::Ln, &long_name, &ctx(None), &mut scratch).unwrap();
    assert_eq!(hashed, Sha256::of(&"z".repeat(64)));
}

#[test]
fn drops_say_why() {
    for (field, input, rule) in [
        (Field::Em, "jane.doe", "em.invalid"),
        (Field::Em, "jane@localhost", "em.invalid"),
        (Field::Ph, "n/a", "ph.invalid"),
        (Field::Ph, "123", "ph.length"),
        (Field::Fn, "---", "name.no_letters"),
        (Field::Ct, "12345", "city.no_letters"),
        (Field::Ge, "unknown", "ge.unknown"),
        (Field::Db, "02/16/97", "db.two_digit_year"),
        (Field::Db, "1850-01-01", "db.range"),
        (Field::Country, "Narnia", "country.unknown"),
    ] {
        assert_eq!(
            norm(field, input, Some("us")),
            Err(rule),
            "{field} {input:?}"
        );
    }
    // Strict US postcode and state rules apply when the record says US ...
    let us = CountryCode::parse_alpha2("us");
    let record_us = Context::new(&NormalizeOptions::default(), us, NOW);
    assert_eq!(
        normalize(Field::Zp, "ABCDE", &record_us).unwrap_err().rule,
        "zp.us_format"
    );
    assert_eq!(
        normalize(Field::St, "Bavaria", &record_us)
            .unwrap_err()
            .rule,
        "st.unknown"
    );
    // ... not when only the default country is US.
    assert_eq!(
        norm(Field::Zp, "SW1A 1AA", Some("us")).as_deref(),
        Ok("sw1a1aa")
    );
    assert_eq!(
        norm(Field::St, "Bavaria", Some("us")).as_deref(),
        Ok("bavaria")
    );
}

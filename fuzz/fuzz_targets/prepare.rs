//! `prepare` on arbitrary stage changes: never panics, and an accepted
//! event always serializes identically through serde and the fast writer,
//! with no raw email or phone in it.
#![no_main]
use leadsignal_core::sample::config;
use leadsignal_core::{prepare, Contact, Origin, StageChange};
use libfuzzer_sys::fuzz_target;

const NOW: i64 = 1_795_262_400;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    // Fields separated by \u{1f}; missing ones stay empty.
    let mut f = s.split('\u{1f}').map(str::to_string);
    let mut next = || f.next().filter(|v| !v.is_empty());
    let stage = next().unwrap_or_else(|| "new".into());
    let offset: i64 = next().and_then(|v| v.parse().ok()).unwrap_or(60);
    let sc = StageChange {
        lead_id: next().and_then(|v| v.parse().ok()),
        crm_id: next(),
        stage,
        changed_at: NOW.saturating_sub(offset),
        lead_created_at: None,
        contact: Contact {
            email: next(),
            phone: next(),
            first_name: next(),
            last_name: next(),
            city: next(),
            state: next(),
            zip: next(),
            country: next(),
            date_of_birth: next(),
            gender: next(),
            external_id: next(),
        },
        fbc: next(),
        fbp: next(),
        data_processing: None,
        origin: Origin::new("fuzz", 1),
    };
    if let Ok(p) = prepare(&sc, &config(), NOW) {
        let mut fast = Vec::new();
        p.event.write_json(&mut fast);
        let serde = serde_json::to_vec(&p.event).unwrap();
        assert_eq!(fast, serde);
        let text = String::from_utf8(fast).unwrap();
        for raw in [&sc.contact.email, &sc.contact.phone] {
            if let Some(raw) = raw {
                // Click IDs are passed through as given: a raw value that
                // the input also put inside one is not a leak.
                let in_click_id = [&sc.fbc, &sc.fbp]
                    .into_iter()
                    .flatten()
                    .any(|c| c.contains(raw.as_str()));
                if raw.len() >= 8 && raw.chars().any(|c| !c.is_ascii_hexdigit()) && !in_click_id {
                    assert!(!text.contains(raw.as_str()), "raw value in output");
                }
            }
        }
    }
});

//! Lead Ads webhook deliveries: any body and signature header is either
//! refused or parsed, never a panic; a body signed with the right key is
//! always accepted by the signature check, a changed one never.
#![no_main]
use leadsignal_sources::webhook::{parse_leadgen, sign, verify_signature};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (header, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (std::str::from_utf8(&data[..i]).ok(), &data[i + 1..]),
        None => (None, data),
    };
    let _ = verify_signature(b"secret", body, header);
    let good = sign(b"secret", body);
    assert!(verify_signature(b"secret", body, Some(&good)).is_ok());
    assert!(verify_signature(b"other", body, Some(&good)).is_err());
    let mut changed = body.to_vec();
    changed.push(b' ');
    assert!(verify_signature(b"secret", &changed, Some(&good)).is_err());
    if let Ok(leads) = parse_leadgen(body) {
        for l in leads {
            assert!(l.lead_id.get() > 0);
        }
    }
});

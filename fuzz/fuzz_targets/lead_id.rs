//! The lead_id parser: never panics; anything accepted is 15-17 digits and
//! prints back to the same digits.
#![no_main]
use leadsignal_core::LeadId;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(id) = LeadId::parse(s) {
        let digits = id.to_string();
        assert!((15..=17).contains(&digits.len()));
        assert_eq!(LeadId::parse(&digits), Ok(id));
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<LeadId>(&json).unwrap(), id);
    }
    let _ = serde_json::from_slice::<LeadId>(data);
});

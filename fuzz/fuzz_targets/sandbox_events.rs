//! The sandbox's checks of an events request's `data`: never panic on any
//! JSON; whatever passes has an event name and a time inside the window.
#![no_main]
use leadsignal_sandbox::validate::{check_events, MAX_AGE_SECONDS};
use libfuzzer_sys::fuzz_target;

const NOW: i64 = 1_795_262_400;

fuzz_target!(|data: &[u8]| {
    let Ok(serde_json::Value::Array(events)) = serde_json::from_slice(data) else {
        return;
    };
    if let Ok(checked) = check_events(&events, NOW) {
        for c in checked {
            assert!(!c.event_name.trim().is_empty());
            assert!(c.event_time >= NOW - MAX_AGE_SECONDS);
        }
    }
});

//! What Graph answers (status, usage header, body) is outside input: the
//! classifier never panics, and a 2xx is "accepted" only when the count
//! matches.
#![no_main]
use leadsignal_graph::outcome::{classify, Outcome, Usage};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let status = 100 + u16::from(data[0]) * 2;
    let sent = u64::from(data[1]);
    let rest = &data[2..];
    let split = rest.iter().position(|&b| b == 0).unwrap_or(0);
    let header = std::str::from_utf8(&rest[..split]).unwrap_or("");
    let body = &rest[split..];
    let _ = Usage::from_headers([("x-business-use-case-usage", header), ("x-app-usage", header)]);
    if let Outcome::Accepted(r) = classify(status, [("x-business-use-case-usage", header)], body, sent) {
        assert!((200..300).contains(&status));
        assert_eq!(r.events_received, sent);
    }
});

//! Direct JSON writer for [`ServerEvent`], the hot path of every batch.
//!
//! It produces byte for byte what `serde_json::to_writer` produces for the
//! same event (a property test holds it to that), but writes the 64-digit
//! hashes and fixed keys without serde's per-byte escape scan, which is most
//! of the cost of serializing an event. Strings that come from outside
//! (event names, click IDs, the CRM name) still go through `serde_json`'s
//! escaping.

use crate::event::{Hashes, ServerEvent, UserData};
use crate::Field;

/// Whether any byte needs escaping in JSON (< 0x20, `"`, `\\`), eight bytes
/// at a time: the usual "has a byte less than n" / "has a zero byte" tricks.
/// A false positive only sends the string through serde's escaper.
fn needs_escape(s: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH != 0;
    let mut chunks = s.chunks_exact(8);
    for c in &mut chunks {
        let x = u64::from_le_bytes(c.try_into().expect("8 bytes"));
        if x.wrapping_sub(ONES * 0x20) & !x & HIGH != 0
            || has_zero(x ^ (ONES * u64::from(b'"')))
            || has_zero(x ^ (ONES * u64::from(b'\\')))
        {
            return true;
        }
    }
    chunks
        .remainder()
        .iter()
        .any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

fn string(out: &mut Vec<u8>, s: &str) {
    if !needs_escape(s.as_bytes()) {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        serde_json::to_writer(&mut *out, s).expect("writing to a Vec cannot fail");
    }
}

fn int(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Writes `,"key":` (or `{"key":` for the first key of an object).
fn key(out: &mut Vec<u8>, first: &mut bool, k: &str) {
    out.push(if *first { b'{' } else { b',' });
    *first = false;
    out.push(b'"');
    out.extend_from_slice(k.as_bytes());
    out.extend_from_slice(b"\":");
}

fn hashes(out: &mut Vec<u8>, hs: &Hashes) {
    out.push(b'[');
    for (i, h) in hs.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        // `"` + 64 hex digits + `"`, written in place.
        let start = out.len();
        out.resize(start + 66, b'"');
        h.write_hex(&mut out[start + 1..start + 65]);
    }
    out.push(b']');
}

fn user_data(out: &mut Vec<u8>, u: &UserData) {
    let mut first = true;
    if let Some(id) = u.lead_id {
        key(out, &mut first, "lead_id");
        int(out, id.get());
    }
    for f in Field::ALL {
        let hs = match f {
            Field::Em => &u.em,
            Field::Ph => &u.ph,
            Field::Fn => &u.fn_,
            Field::Ln => &u.ln,
            Field::Ge => &u.ge,
            Field::Db => &u.db,
            Field::Ct => &u.ct,
            Field::St => &u.st,
            Field::Zp => &u.zp,
            Field::Country => &u.country,
            Field::ExternalId => &u.external_id,
        };
        if !hs.is_empty() {
            key(out, &mut first, f.meta_key());
            hashes(out, hs);
        }
    }
    for (k, v) in [("fbc", &u.fbc), ("fbp", &u.fbp)] {
        if let Some(v) = v {
            key(out, &mut first, k);
            string(out, v);
        }
    }
    if first {
        out.push(b'{');
    }
    out.push(b'}');
}

impl ServerEvent {
    /// Appends the event's JSON to `out`: the same bytes as
    /// `serde_json::to_writer`, faster.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"event_name\":");
        string(out, &self.event_name);
        out.extend_from_slice(b",\"event_time\":");
        int(out, self.event_time);
        out.extend_from_slice(b",\"action_source\":");
        string(out, &self.action_source);
        out.extend_from_slice(b",\"event_id\":\"");
        out.extend_from_slice(self.event_id.as_bytes());
        out.extend_from_slice(b"\",\"user_data\":");
        user_data(out, &self.user_data);
        let c = &self.custom_data;
        out.extend_from_slice(b",\"custom_data\":{\"event_source\":");
        string(out, &c.event_source);
        out.extend_from_slice(b",\"lead_event_source\":");
        string(out, &c.lead_event_source);
        if let Some(v) = &c.facebook_lifecycle_stage_name {
            out.extend_from_slice(b",\"facebook_lifecycle_stage_name\":");
            string(out, v);
        }
        if let Some(v) = &c.lifecycle_stage_name {
            out.extend_from_slice(b",\"lifecycle_stage_name\":");
            string(out, v);
        }
        out.push(b'}');
        if let Some(opts) = &self.data_processing_options {
            out.extend_from_slice(b",\"data_processing_options\":[");
            for (i, o) in opts.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                string(out, o);
            }
            out.push(b']');
        }
        if let Some(n) = self.data_processing_options_country {
            out.extend_from_slice(b",\"data_processing_options_country\":");
            int(out, n);
        }
        if let Some(n) = self.data_processing_options_state {
            out.extend_from_slice(b",\"data_processing_options_state\":");
            int(out, n);
        }
        out.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    use super::needs_escape;

    #[test]
    fn escape_detection_has_no_false_negatives() {
        for s in [
            "",
            "plain",
            "Marketing Qualified Lead",
            "système",
            "a\"b",
            "a\\b",
            "tab\there",
            "0123456789abcdef\u{1f}",
            "0123456\"",
            "\u{7f}x",
            "éééééééé\n",
        ] {
            let want = s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\');
            if want {
                assert!(needs_escape(s.as_bytes()), "{s:?}");
            }
        }
        assert!(!needs_escape(b"Marketing Qualified Lead"));
        assert!(!needs_escape("système générique".as_bytes()));
    }
}

//! Printing violations and drops, as text or JSON lines, and counting them.

use leadsignal_core::{Dropped, Origin, Violation};
use serde_json::json;
use std::collections::BTreeMap;

/// How problems are printed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// `file:line: field: message [code]`
    Text,
    /// One JSON object per line.
    Json,
}

/// One problem line: `file:line: [warning: ]text`, or a JSON object.
fn line(
    origin: &Origin,
    style: Style,
    kind: &str,
    code: &str,
    field: Option<&str>,
    message: &str,
    text: String,
) -> String {
    match style {
        Style::Text if kind == "dropped" => format!("{origin}: warning: {text}"),
        Style::Text => format!("{origin}: {text}"),
        Style::Json => json!({
            "source": origin.source, "line": origin.line, "kind": kind,
            "code": code, "field": field, "message": message,
        })
        .to_string(),
    }
}

/// Formats a rejected row's problems.
pub fn violation_lines(origin: &Origin, violations: &[Violation], style: Style) -> Vec<String> {
    violations
        .iter()
        .map(|v| {
            line(
                origin,
                style,
                "violation",
                v.code,
                v.field,
                &v.message,
                v.to_string(),
            )
        })
        .collect()
}

/// Formats the values dropped from an accepted row.
pub fn dropped_lines(origin: &Origin, dropped: &[Dropped], style: Style) -> Vec<String> {
    dropped
        .iter()
        .map(|d| {
            line(
                origin,
                style,
                "dropped",
                d.rule,
                Some(d.field),
                &d.message,
                d.to_string(),
            )
        })
        .collect()
}

/// Counts by rule code.
#[derive(Default)]
pub struct Tally {
    /// Rows read.
    pub rows: u64,
    /// Rows that became events.
    pub accepted: u64,
    /// Rows rejected.
    pub rejected: u64,
    /// Violations by code (a row may count under several).
    pub by_rule: BTreeMap<&'static str, u64>,
    /// Dropped values by rule.
    pub dropped_by_rule: BTreeMap<&'static str, u64>,
}

impl Tally {
    /// Records a rejected row.
    pub fn reject(&mut self, violations: &[Violation]) {
        self.rows += 1;
        self.rejected += 1;
        for v in violations {
            *self.by_rule.entry(v.code).or_default() += 1;
        }
    }

    /// Records an accepted row.
    pub fn accept(&mut self, dropped: &[Dropped]) {
        self.rows += 1;
        self.accepted += 1;
        for d in dropped {
            *self.dropped_by_rule.entry(d.rule).or_default() += 1;
        }
    }

    /// The summary as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "rows": self.rows, "accepted": self.accepted, "rejected": self.rejected,
            "rejected_by_rule": self.by_rule, "dropped_by_rule": self.dropped_by_rule,
        })
    }

    /// The summary as text lines.
    pub fn text(&self) -> String {
        let mut s = format!(
            "{} rows: {} valid, {} rejected",
            self.rows, self.accepted, self.rejected
        );
        if !self.by_rule.is_empty() {
            s.push_str("\nrejected by rule:");
            for (rule, n) in &self.by_rule {
                s.push_str(&format!("\n  {rule:<34} {n}"));
            }
        }
        if !self.dropped_by_rule.is_empty() {
            s.push_str("\nvalues dropped (event kept) by rule:");
            for (rule, n) in &self.dropped_by_rule {
                s.push_str(&format!("\n  {rule:<34} {n}"));
            }
        }
        s
    }
}

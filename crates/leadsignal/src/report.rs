//! Printing violations and drops, as text or JSON lines, and counting them.

use leadsignal_core::{Dropped, Origin, Violation, Warning};
use serde_json::json;
use std::collections::BTreeMap;

/// How problems are printed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
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
        Style::Text if kind == "dropped" || kind == "warning" => {
            format!("{origin}: warning: {text}")
        }
        Style::Text if kind == "expired" => format!("{origin}: expired: {text}"),
        Style::Text if kind == "skipped" => format!("{origin}: skipped: {text}"),
        Style::Text => format!("{origin}: {text}"),
        Style::Json => json!({
            "source": origin.source, "line": origin.line, "kind": kind,
            "code": code, "field": field, "message": message,
        })
        .to_string(),
    }
}

/// Formats a rejected row's problems.
pub(crate) fn violation_lines(
    origin: &Origin,
    violations: &[Violation],
    style: Style,
) -> Vec<String> {
    lines_of(origin, violations, style, "violation")
}

/// Formats a row that is not production data (a Meta test lead).
pub(crate) fn skipped_lines(
    origin: &Origin,
    violations: &[Violation],
    style: Style,
) -> Vec<String> {
    lines_of(origin, violations, style, "skipped")
}

fn lines_of(origin: &Origin, violations: &[Violation], style: Style, kind: &str) -> Vec<String> {
    violations
        .iter()
        .map(|v| {
            line(
                origin,
                style,
                kind,
                v.code,
                v.field,
                &v.message,
                v.to_string(),
            )
        })
        .collect()
}

/// Formats the values dropped from an accepted row.
pub(crate) fn dropped_lines(origin: &Origin, dropped: &[Dropped], style: Style) -> Vec<String> {
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

/// Formats a row's warnings.
pub(crate) fn warning_lines(origin: &Origin, warnings: &[Warning], style: Style) -> Vec<String> {
    warnings
        .iter()
        .map(|w| {
            line(
                origin,
                style,
                "warning",
                w.rule,
                Some(w.field),
                &w.message,
                w.to_string(),
            )
        })
        .collect()
}

/// Formats a stage change too old to send: listed, never an error.
pub(crate) fn expired_line(
    origin: &Origin,
    event_name: &str,
    event_time: i64,
    message: &str,
    style: Style,
) -> String {
    match style {
        Style::Text => format!(
            "{origin}: expired: {event_name:?} at {}: {message}",
            utc(event_time)
        ),
        Style::Json => json!({
            "source": origin.source, "line": origin.line, "kind": "expired",
            "event_name": event_name, "event_time": event_time, "message": message,
        })
        .to_string(),
    }
}

/// A Unix time as `2026-11-20 16:45 UTC`.
pub(crate) fn utc(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0).map_or_else(
        || t.to_string(),
        |d| d.format("%Y-%m-%d %H:%M UTC").to_string(),
    )
}

/// `expired: N, older than 7 days (oldest ...)`, or nothing.
pub(crate) fn expired_summary(expired: u64, oldest: Option<i64>) -> Option<String> {
    (expired > 0).then(|| {
        format!(
            "expired: {expired}, older than 7 days (oldest {}): never sent, not an error",
            oldest.map_or_else(|| "-".into(), utc)
        )
    })
}

/// Counts by rule code.
#[derive(Default)]
pub(crate) struct Tally {
    /// Rows read.
    pub(crate) rows: u64,
    /// Rows that became events.
    pub(crate) accepted: u64,
    /// Rows rejected.
    pub(crate) rejected: u64,
    /// Violations by code (a row may count under several).
    pub(crate) by_rule: BTreeMap<&'static str, u64>,
    /// Dropped values by rule.
    pub(crate) dropped_by_rule: BTreeMap<&'static str, u64>,
    /// Warnings by rule.
    pub(crate) warnings_by_rule: BTreeMap<&'static str, u64>,
    /// Stage changes too old to send.
    pub(crate) expired: u64,
    /// Rows that are not production data (Meta test leads).
    pub(crate) skipped: u64,
    /// The oldest of them.
    pub(crate) oldest_expired: Option<i64>,
}

impl Tally {
    /// Records a rejected row.
    pub(crate) fn reject(&mut self, violations: &[Violation]) {
        self.rows += 1;
        self.rejected += 1;
        for v in violations {
            *self.by_rule.entry(v.code).or_default() += 1;
        }
    }

    /// Records an accepted row.
    pub(crate) fn accept(&mut self, dropped: &[Dropped]) {
        self.rows += 1;
        self.accepted += 1;
        for d in dropped {
            *self.dropped_by_rule.entry(d.rule).or_default() += 1;
        }
    }

    /// Records an expired stage change (valid, too old to send).
    pub(crate) fn expire(&mut self, event_time: i64, dropped: &[Dropped]) {
        self.accept(dropped);
        self.accepted -= 1;
        self.expired += 1;
        self.oldest_expired = Some(
            self.oldest_expired
                .map_or(event_time, |o| o.min(event_time)),
        );
    }

    /// Records a row that is not production data.
    pub(crate) fn skip(&mut self) {
        self.rows += 1;
        self.skipped += 1;
    }

    /// Records warnings.
    pub(crate) fn warn(&mut self, warnings: &[Warning]) {
        for w in warnings {
            *self.warnings_by_rule.entry(w.rule).or_default() += 1;
        }
    }

    /// The summary as JSON.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        json!({
            "stage_changes": self.rows, "accepted": self.accepted, "rejected": self.rejected,
            "expired": self.expired, "oldest_expired": self.oldest_expired,
            "skipped": self.skipped,
            "rejected_by_rule": self.by_rule, "dropped_by_rule": self.dropped_by_rule,
            "warnings_by_rule": self.warnings_by_rule,
        })
    }

    /// The summary as text lines.
    pub(crate) fn text(&self) -> String {
        let mut s = format!(
            "{} stage changes: {} valid, {} expired, {} rejected",
            self.rows, self.accepted, self.expired, self.rejected
        );
        if let Some(e) = expired_summary(self.expired, self.oldest_expired) {
            s.push_str(&format!("\n{e}"));
        }
        if self.skipped > 0 {
            s.push_str(&format!(
                "\nskipped: {}, leads made by Meta's Lead Ads testing tool (never sent, not an error)",
                self.skipped
            ));
        }
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
        if !self.warnings_by_rule.is_empty() {
            s.push_str("\nwarnings by rule:");
            for (rule, n) in &self.warnings_by_rule {
                s.push_str(&format!("\n  {rule:<34} {n}"));
            }
        }
        s
    }
}

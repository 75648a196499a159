//! The human summaries of runs (`import`, `send`) and their exit
//! statuses, shared by the commands that run them (`import`, `send`,
//! `sync`).

use leadsignal_deliver::SendReport;
use leadsignal_intake::Summary;
use std::process::ExitCode;

/// The human summary of an import.
pub(crate) fn import_text(s: &Summary) -> String {
    let r = &s.store;
    let mut out = format!(
        "{} rows read in {:.1}s: {} accepted, {} already known, {} inferred earlier stages, {} held, {} expired, {} rejected",
        s.rows, s.seconds, r.accepted, r.already_known, r.inferred, r.held, r.expired, r.rejected
    );
    if r.released > 0 {
        out.push_str(&format!(", {} held events released", r.released));
    }
    if r.recovered > 0 {
        out.push_str(&format!(
            ", {} with Meta's lead ID recovered by e-mail or phone",
            r.recovered
        ));
    }
    if r.ambiguous > 0 {
        out.push_str(&format!(
            ", {} whose e-mail or phone belongs to several leads (no lead ID attached)",
            r.ambiguous
        ));
    }
    if r.skipped > 0 {
        out.push_str(&format!(
            ", {} skipped (leads made by Meta's Lead Ads testing tool)",
            r.skipped
        ));
    }
    if s.footer_lines > 0 {
        out.push_str(&format!("; footer skipped ({} lines)", s.footer_lines));
    }
    if let Some(e) = crate::report::expired_summary(r.expired, r.oldest_expired) {
        out.push_str(&format!("\n{e}"));
    }
    if !r.rejected_by_rule.is_empty() {
        out.push_str("\nrejected by rule:");
    }
    for (rule, n) in &r.rejected_by_rule {
        out.push_str(&format!("\n  {rule:<34} {n}"));
    }
    if !s.warnings_by_rule.is_empty() {
        out.push_str("\nwarnings by rule (rows kept; `leadsignal validate` lists them):");
    }
    for (rule, n) in &s.warnings_by_rule {
        out.push_str(&format!("\n  {rule:<34} {n}"));
    }
    for f in &s.unreadable_files {
        out.push_str(&format!("\nunreadable: {f}"));
    }
    out
}

/// The exit status for a send report.
pub(crate) fn send_exit_code(r: &SendReport) -> ExitCode {
    ExitCode::from(send_severity(r))
}

/// 3 delivery paused, 1 some events rejected or expired, 0 otherwise (the
/// worst of several datasets is the exit status).
pub(crate) fn send_severity(r: &SendReport) -> u8 {
    if r.paused.is_some() {
        3
    } else if r.rejected > 0 || r.expired > 0 {
        1
    } else {
        0
    }
}

/// The human summary of a run.
pub(crate) fn send_text(r: &SendReport, url: &str) -> String {
    let mut s = String::new();
    if r.test {
        s.push_str(&format!(
            "{} events sent to Test Events ({url}) in {:.1}s; nothing marked as sent\n",
            r.test_sent, r.seconds
        ));
    } else {
        s.push_str(&format!(
            "{} events accepted by Meta ({url}) in {:.1}s with {} requests\n",
            r.accepted, r.seconds, r.requests
        ));
    }
    if r.test && !r.errors.is_empty() {
        s.push_str("Meta's verdict on the rest (left untouched):\n");
        for (e, n) in &r.errors {
            s.push_str(&format!("  {n:>8}  {e}\n"));
        }
    }
    if r.rejected + r.expired > 0 {
        s.push_str(&format!(
            "{} rejected by Meta (quarantined), {} expired:\n",
            r.rejected, r.expired
        ));
        for (e, n) in &r.errors {
            s.push_str(&format!("  {n:>8}  {e}\n"));
        }
    }
    if r.retried > 0 {
        s.push_str(&format!(
            "{} retries after transient failures or rate limits\n",
            r.retried
        ));
    }
    if r.left_pending > 0 {
        s.push_str(&format!(
            "{} events still pending (retry scheduled, or not yet claimable); the next `leadsignal send` continues\n",
            r.left_pending
        ));
    }
    if let Some(p) = &r.paused {
        s.push_str(&format!(
            "DELIVERY PAUSED: Meta refused the token or permissions: {p}\nNothing is lost. Fix [meta] access_token (or the dataset's permissions); the next `leadsignal send` probes and resumes by itself.\n"
        ));
    }
    s
}

//! Reading real-world-shaped files: every row comes out with its line, good
//! rows as records, bad rows with a reason; nothing is skipped silently.

use leadsignal_sources::FileRows;
use std::io::Write;
use std::path::{Path, PathBuf};

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata")
        .join(name)
}

#[test]
fn csv_with_bom_semicolons_crlf_quoted_newline_and_blank_tail() {
    let rows: Vec<_> = FileRows::open(&testdata("export_semicolon_bom_crlf.csv"))
        .unwrap()
        .collect();
    let lines: Vec<u64> = rows.iter().map(|r| r.origin.line).collect();
    // The quoted newline makes row 1 span lines 2-3; blank lines at the end are not rows.
    assert_eq!(lines, [2, 4, 5, 6]);
    let changes: Vec<_> = rows.into_iter().map(|r| r.into_stage_change()).collect();
    let sc = changes[0].as_ref().unwrap();
    assert_eq!(sc.lead_id.unwrap().get(), 1234567890123456);
    assert_eq!(sc.stage, "new");
    assert_eq!(sc.contact.email.as_deref(), Some("jane@example.com"));
    let (origin, v) = changes[1].as_ref().unwrap_err();
    assert_eq!(origin.to_string().rsplit(':').next(), Some("4"));
    assert_eq!(v[0].code, "lead_id.scientific_notation");
    assert_eq!(v[0].field, Some("lead_id"));
    assert_eq!(changes[2].as_ref().unwrap().changed_at, 1_795_168_800);
    let (_, v) = changes[3].as_ref().unwrap_err();
    assert_eq!(v[0].code, "csv.field_count");
}

#[test]
fn csv_ignored_columns_are_listed() {
    let rows = FileRows::open(&testdata("export_semicolon_bom_crlf.csv")).unwrap();
    assert_eq!(rows.ignored_columns(), ["notes"]);
}

#[test]
fn jsonl_good_and_bad_lines() {
    let rows: Vec<_> = FileRows::open(&testdata("stage_changes.jsonl"))
        .unwrap()
        .collect();
    let summary: Vec<(u64, Result<(), &'static str>)> = rows
        .into_iter()
        .map(|r| {
            let line = r.origin.line;
            (
                line,
                r.into_stage_change()
                    .map(|_| ())
                    .map_err(|(_, v)| v[0].code),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (1, Ok(())),
            (3, Ok(())),
            (4, Err("json.field")),
            (5, Err("json.syntax")),
            (6, Ok(())),
        ]
    );
}

#[test]
fn unknown_json_field_message_names_it() {
    let row = FileRows::open(&testdata("stage_changes.jsonl"))
        .unwrap()
        .nth(2)
        .unwrap();
    let msg = &row.record.unwrap_err()[0].message;
    assert!(
        msg.contains("unknown field `emial`") && msg.contains("column"),
        "{msg}"
    );
}

#[test]
fn tab_separated_and_sniffed_format() {
    let mut f = tempfile::Builder::new().suffix(".dat").tempfile().unwrap();
    write!(
        f,
        "stage\tchanged_at\tlead_id\nnew\t1795168800\t1234567890123456\n"
    )
    .unwrap();
    let rows: Vec<_> = FileRows::open(f.path()).unwrap().collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].origin.line, 2);
    assert!(rows.into_iter().next().unwrap().into_stage_change().is_ok());
}

#[test]
fn header_problems_are_file_errors() {
    let mut f = tempfile::Builder::new().suffix(".csv").tempfile().unwrap();
    write!(f, "email,phone\na@b.co,1\n").unwrap();
    let e = FileRows::open(f.path()).err().unwrap().to_string();
    assert!(e.contains("missing \"stage\" and \"changed_at\""), "{e}");
    assert!(e.contains("--preset (hubspot, salesforce"), "{e}");
    // A duplicated header is no error: the first non-empty value wins.
    let mut f = tempfile::Builder::new().suffix(".csv").tempfile().unwrap();
    write!(
        f,
        "stage,changed_at,email,Email\nnew,1,,b@x.co\nnew,2,a@x.co,b@x.co\n"
    )
    .unwrap();
    let emails: Vec<Option<String>> = FileRows::open(f.path())
        .unwrap()
        .map(|r| r.into_stage_change().unwrap().contact.email)
        .collect();
    assert_eq!(emails, [Some("b@x.co".into()), Some("a@x.co".into())]);
    assert!(FileRows::open(Path::new("/no/such/file.csv"))
        .err()
        .unwrap()
        .to_string()
        .contains("/no/such/file.csv"));
}

#[test]
fn crlf_lines_are_counted() {
    let mut f = tempfile::Builder::new().suffix(".csv").tempfile().unwrap();
    write!(
        f,
        "stage,changed_at\r\nnew,1795168800\r\nmql,1795168801\r\n"
    )
    .unwrap();
    let lines: Vec<u64> = FileRows::open(f.path())
        .unwrap()
        .map(|r| r.origin.line)
        .collect();
    assert_eq!(lines, [2, 3]);
}

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
    // The mangled lead ID is kept as a problem for `prepare` to weigh
    // against the row's other keys (here an e-mail).
    let sc = changes[1].as_ref().unwrap();
    assert_eq!(sc.origin.line, 4);
    assert_eq!(
        sc.lead_id_error.as_ref().unwrap().code(),
        "lead_id.scientific_notation"
    );
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

fn csv_rows(text: &[u8], mapping: &leadsignal_sources::Mapping) -> FileRows {
    FileRows::from_reader_with(
        "t.csv".into(),
        Box::new(std::io::Cursor::new(text.to_vec())),
        Some(leadsignal_sources::FileFormat::Csv),
        mapping,
    )
    .unwrap()
}

#[test]
fn footers_and_empty_rows_are_not_data() {
    let m = leadsignal_sources::Mapping::record_fields();
    let text = b"stage,changed_at,email\n\
new,1795168800,a@x.co\n\
,,\n\
Total,1795168801,b@x.co\n\
\"Grand Totals (2 records)\"\n\
mql,1795168802,c@x.co\n\
,,\n\
\n\
\"Confidential Information - Do Not Distribute\"\n\
\"Generated By:  Dana  11/21/2026 3:52 AM\"\n\
,,\n";
    let mut rows = csv_rows(text, &m);
    let got: Vec<(u64, Option<&'static str>)> = rows
        .by_ref()
        .map(|r| {
            (
                r.origin.line,
                r.into_stage_change().err().map(|(_, v)| v[0].code),
            )
        })
        .collect();
    // An empty row in the middle is skipped; a "Total" row, and a one-cell
    // row followed by data, are rows like any other (reported, not hidden).
    assert_eq!(
        got,
        [
            (2, None),
            (4, None),
            (5, Some("csv.field_count")),
            (6, None)
        ]
    );
    let s = rows.stats();
    assert_eq!((s.records, s.blank, s.footer_lines), (4, 1, 5), "{s:?}");
}

#[test]
fn a_row_gives_its_stage_changes_in_funnel_order_with_the_stage_column() {
    use leadsignal_core::Funnel;
    let mut m = leadsignal_sources::Mapping::record_fields();
    m.time_zone = Some(chrono_tz::UTC);
    // Columns in the reverse of the funnel, and a stage column beside them.
    m.set_stage_date("Won Date", "won");
    m.set_stage_date("MQL Date", "mql");
    m.set_stage_date("Created", "new");
    m.funnel = Some(Funnel::new(Funnel::default_stages(), false).unwrap());
    let text = b"crm_id,stage,changed_at,Won Date,MQL Date,Created\n\
7,opportunity,2026-11-19 10:00,2026-11-20 10:00,2026-11-18 10:00,2026-11-17 10:00\n";
    let stages: Vec<String> = csv_rows(text, &m)
        .map(|r| r.into_stage_change().unwrap().stage)
        .collect();
    assert_eq!(stages, ["new", "mql", "opportunity", "won"]);
}

#[test]
fn a_stream_that_stops_being_utf8_after_its_first_mib_stops_with_the_offset() {
    let mut text = b"stage,changed_at,first_name\n".to_vec();
    while text.len() < 1024 * 1024 + 10 {
        text.extend_from_slice(b"new,1795168800,Jane\n");
    }
    let bad_at = text.len() + "new,1795168800,Jos".len();
    text.extend_from_slice(b"new,1795168800,Jos\xe9\n");
    let rows: Vec<_> = csv_rows(&text, &leadsignal_sources::Mapping::record_fields()).collect();
    let last = rows.last().unwrap().record.as_ref().unwrap_err();
    assert_eq!(last[0].code, "file.encoding");
    assert!(
        last[0]
            .message
            .contains(&format!("byte {bad_at}: not valid UTF-8")),
        "{}",
        last[0].message
    );
}

//! CSV and JSONL files of stage-change records, read as a stream.
//!
//! Text: UTF-8 with or without BOM, UTF-16 with BOM, Windows-1252 (Excel's
//! "CSV (Comma delimited)"), or the configured encoding (`decode.rs`).
//!
//! CSV: `,` `;` or tab separators (sniffed from the header), quoted fields
//! with newlines, CRLF, blank lines. Header names are mapped to record
//! fields by a [`Mapping`] (the record's own names, or a CRM preset); other
//! columns are ignored and listed once in [`FileRows::ignored_columns`].
//! Empty rows are skipped and counted; a block of empty and one-cell rows at
//! the end (a report's footer, Excel's trailing rows) is skipped and
//! counted as a footer ([`FileRows::stats`]).
//!
//! JSONL: one JSON object per line; blank lines skipped.

use crate::decode::{self, DecodeError, DecodeReader, Detected};
use crate::mapping::{Mapping, TimeCell};
use crate::SourceRow;
use encoding_rs::Encoding;
use leadsignal_core::{
    Funnel, Origin, Scalar, Sha256, StageChangeRecord, StageRef, Violation, Warning,
};
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

/// A file that cannot be read at all (as opposed to a bad row).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Opening or reading failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: io::Error,
    },
    /// The CSV header is unusable.
    #[error("{path}:1: {message}")]
    Header {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// Bytes that are not text in the file's encoding.
    #[error("{path}: {source}")]
    Encoding {
        /// The file.
        path: String,
        /// Where and why.
        source: DecodeError,
    },
}

/// The two file shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// Comma-, semicolon- or tab-separated values with a header row.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

impl FileFormat {
    /// By extension: `.jsonl`/`.ndjson`/`.json` → JSONL, `.csv`/`.tsv`/`.txt` → CSV.
    pub fn from_path(path: &Path) -> Option<FileFormat> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "jsonl" | "ndjson" | "json" => Some(FileFormat::Jsonl),
            "csv" | "tsv" | "txt" => Some(FileFormat::Csv),
            _ => None,
        }
    }
}

/// What a file held besides its stage changes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Data records read (a CSV record with quoted newlines is one; a row
    /// with several stage dates is one).
    pub records: u64,
    /// Empty rows skipped before the end (`,,,,`).
    pub blank: u64,
    /// Lines of the footer skipped at the end (a report's totals and
    /// notices, Excel's trailing empty rows).
    pub footer_lines: u64,
}

/// Rows of one file, in order.
pub struct FileRows {
    name: String,
    inner: Inner,
    ignored: Vec<String>,
    /// Rows already read and waiting (one CSV row can give several stage changes).
    pending: VecDeque<SourceRow>,
    encoding: &'static Encoding,
    detected: Detected,
    stats: ReadStats,
}

/// How each CSV column is used.
struct CsvPlan {
    mapping: Mapping,
    headers: Vec<String>,
    /// Record field → the columns that may hold it, in order of preference.
    fields: Vec<(&'static str, Vec<usize>)>,
    /// The stage column and the change-time columns (the stage column's time).
    stage: Vec<usize>,
    changed_at: Vec<usize>,
    /// Stage-date columns.
    stage_dates: Vec<DateColumn>,
    /// The per-row time-zone column.
    time_zone: Option<usize>,
    width: usize,
}

/// A stage-date column of the header.
struct DateColumn {
    col: usize,
    /// The CRM stage of its dates.
    stage: String,
    /// Only when this column holds this value (lowercase).
    only_if: Option<(usize, String)>,
}

/// A CSV record held back because it may be the start of the footer.
struct Held {
    line: u64,
    record: csv::StringRecord,
    blank: bool,
}

enum Inner {
    Csv {
        reader: Box<csv::Reader<Box<dyn Read>>>,
        plan: Box<CsvPlan>,
        /// Added to the csv crate's line numbers (1 for CRLF files).
        line_fix: u64,
        record: csv::StringRecord,
        /// Empty and footer-like records not yet known to be the footer.
        held: Vec<Held>,
    },
    Jsonl {
        reader: Box<dyn BufRead>,
        line: u64,
        buf: Vec<u8>,
    },
    Done,
}

/// At most this many records are held back as a possible footer; a longer
/// run of empty or one-cell rows is data (and reported as such).
const MAX_FOOTER: usize = 200;

impl FileRows {
    /// Opens a file whose CSV headers are the record's field names; the
    /// format comes from the extension, else from the first non-blank byte
    /// (`{` means JSONL).
    pub fn open(path: &Path) -> Result<FileRows, SourceError> {
        Self::open_with(path, &Mapping::record_fields())
    }

    /// Opens a file with a column mapping (a CRM preset or configured columns;
    /// JSONL files always use the record's field names). The whole file is
    /// checked against its encoding first, so an undecodable byte is a file
    /// error naming its offset, before any row is read.
    pub fn open_with(path: &Path, mapping: &Mapping) -> Result<FileRows, SourceError> {
        let name = path.display().to_string();
        let io_err = |source| SourceError::Io {
            path: name.clone(),
            source,
        };
        let mut file = File::open(path).map_err(io_err)?;
        let head = read_head(&mut file, 64 * 1024).map_err(io_err)?;
        let (encoding, detected) = decode::choose(&head, mapping.encoding, || {
            decode::utf8_check(File::open(path)?)
        })
        .map_err(io_err)?;
        if matches!(
            detected,
            Detected::Bom | Detected::Configured | Detected::NulBytes
        ) {
            let check = DecodeReader::new(File::open(path).map_err(io_err)?, encoding, detected);
            if let Err(e) = io::copy(&mut BufReader::new(check), &mut io::sink()) {
                return Err(decode_error(&name, e));
            }
        }
        let rest: Box<dyn Read> = Box::new(io::Cursor::new(head).chain(file));
        Self::build(
            name,
            rest,
            (encoding, detected),
            FileFormat::from_path(path),
            mapping,
        )
    }

    /// Reads from any reader (`name` is used in positions, e.g. `stdin`).
    pub fn from_reader(
        name: String,
        reader: Box<dyn Read>,
        format: Option<FileFormat>,
    ) -> Result<FileRows, SourceError> {
        Self::from_reader_with(name, reader, format, &Mapping::record_fields())
    }

    /// Reads from any reader with a column mapping. The encoding is chosen
    /// from the first MiB (a stream cannot be read twice); a byte further on
    /// that does not decode stops the file with a row naming its offset.
    pub fn from_reader_with(
        name: String,
        mut reader: Box<dyn Read>,
        format: Option<FileFormat>,
        mapping: &Mapping,
    ) -> Result<FileRows, SourceError> {
        let head = read_head(&mut reader, 1024 * 1024).map_err(|source| SourceError::Io {
            path: name.clone(),
            source,
        })?;
        let chosen = decode::choose(&head, mapping.encoding, || {
            Ok(match std::str::from_utf8(&head) {
                Ok(_) => Ok(()),
                // Cut in the middle of a character by the end of the head.
                Err(e) if e.error_len().is_none() => Ok(()),
                Err(e) => Err(e.valid_up_to() as u64),
            })
        })
        .map_err(|source| SourceError::Io {
            path: name.clone(),
            source,
        })?;
        let rest: Box<dyn Read> = Box::new(io::Cursor::new(head).chain(reader));
        Self::build(name, rest, chosen, format, mapping)
    }

    fn build(
        name: String,
        raw: Box<dyn Read>,
        (encoding, detected): (&'static Encoding, Detected),
        format: Option<FileFormat>,
        mapping: &Mapping,
    ) -> Result<FileRows, SourceError> {
        let mut decoded: Box<dyn Read> = Box::new(DecodeReader::new(raw, encoding, detected));
        // Read ahead a whole first line (up to 64 KiB) for sniffing.
        let mut first = Vec::with_capacity(64 * 1024);
        let mut chunk = [0u8; 8192];
        while first.len() < 64 * 1024 && !first.contains(&b'\n') {
            let n = match decoded.read(&mut chunk) {
                Ok(n) => n,
                Err(e) => return Err(decode_error(&name, e)),
            };
            if n == 0 {
                break;
            }
            first.extend_from_slice(&chunk[..n]);
        }
        let chained: Box<dyn Read> = Box::new(io::Cursor::new(first.clone()).chain(decoded));
        let reader: BufReader<Box<dyn Read>> = BufReader::with_capacity(256 * 1024, chained);
        let head = &first[..];
        let format =
            format.unwrap_or_else(|| match head.iter().find(|b| !b.is_ascii_whitespace()) {
                Some(b'{') => FileFormat::Jsonl,
                _ => FileFormat::Csv,
            });
        let mut rows = FileRows {
            name,
            inner: Inner::Done,
            ignored: Vec::new(),
            pending: VecDeque::new(),
            encoding,
            detected,
            stats: ReadStats::default(),
        };
        match format {
            FileFormat::Jsonl => {
                rows.inner = Inner::Jsonl {
                    reader: Box::new(reader),
                    line: 0,
                    buf: Vec::new(),
                };
            }
            FileFormat::Csv => rows.csv(reader, head, mapping)?,
        }
        Ok(rows)
    }

    fn csv(
        &mut self,
        reader: BufReader<Box<dyn Read>>,
        head: &[u8],
        mapping: &Mapping,
    ) -> Result<(), SourceError> {
        // With CRLF line ends the csv crate counts the "\n" ending a record as
        // part of the next one, so its line numbers are one short.
        let crlf = head
            .iter()
            .position(|&b| b == b'\n')
            .is_some_and(|i| i > 0 && head[i - 1] == b'\r');
        let delimiter = sniff_delimiter(head);
        let mut csv = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .flexible(true)
            .has_headers(true)
            .from_reader(Box::new(reader) as Box<dyn Read>);
        let name = self.name.clone();
        let header_err = |message: String| SourceError::Header {
            path: name.clone(),
            message,
        };
        let headers = match csv.headers() {
            Ok(h) => h.clone(),
            Err(e) => {
                if let csv::ErrorKind::Io(io) = e.kind() {
                    if io.get_ref().is_some_and(|r| r.is::<DecodeError>()) {
                        let io = io::Error::new(io.kind(), io.to_string());
                        return Err(decode_error(&self.name, io));
                    }
                }
                return Err(header_err(format!("cannot read the header row: {e}")));
            }
        };
        let plan = CsvPlan::new(&headers, mapping).map_err(header_err)?;
        self.ignored = headers
            .iter()
            .enumerate()
            .filter(|(i, _)| !plan.uses(*i))
            .map(|(_, h)| h.to_string())
            .collect();
        self.inner = Inner::Csv {
            reader: Box::new(csv),
            plan: Box::new(plan),
            line_fix: u64::from(crlf),
            record: csv::StringRecord::new(),
            held: Vec::new(),
        };
        Ok(())
    }

    /// Header columns the mapping does not use (CSV only).
    pub fn ignored_columns(&self) -> &[String] {
        &self.ignored
    }

    /// The name used in positions.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The encoding the file is read as, and why.
    pub fn encoding(&self) -> (&'static str, Detected) {
        (self.encoding.name(), self.detected)
    }

    /// Records, empty rows and footer lines so far (complete once the rows
    /// are all read).
    pub fn stats(&self) -> ReadStats {
        self.stats
    }
}

/// Up to `max` bytes from the start of `r`.
fn read_head(r: &mut impl Read, max: usize) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(max.min(64 * 1024));
    r.take(max as u64).read_to_end(&mut head)?;
    Ok(head)
}

/// A decoding failure as a file error (or an I/O error as it is).
fn decode_error(name: &str, e: io::Error) -> SourceError {
    let source = e
        .get_ref()
        .and_then(|r| r.downcast_ref::<DecodeError>())
        .cloned();
    match source {
        Some(source) => SourceError::Encoding {
            path: name.to_string(),
            source,
        },
        None => SourceError::Io {
            path: name.to_string(),
            source: e,
        },
    }
}

impl CsvPlan {
    fn new(headers: &csv::StringRecord, mapping: &Mapping) -> Result<CsvPlan, String> {
        let norm = |h: &str| h.trim().trim_start_matches('\u{feff}').to_lowercase();
        let heads: Vec<String> = headers.iter().map(norm).collect();
        let find_all = |name: &str| -> Vec<usize> {
            let n = norm(name);
            (0..heads.len()).filter(|&i| heads[i] == n).collect()
        };
        let mut fields = Vec::new();
        for (field, names) in &mapping.columns {
            // Every column with a preferred name, then the next name; a
            // duplicated header gives two candidates.
            let cols: Vec<usize> = names.iter().flat_map(|n| find_all(n)).collect();
            if !cols.is_empty() {
                fields.push((*field, cols));
            }
        }
        let stage_dates: Vec<DateColumn> = mapping
            .stage_dates
            .iter()
            .flat_map(|d| {
                let only_if = d
                    .only_if
                    .as_ref()
                    .and_then(|(h, v)| find_all(h).first().map(|&c| (c, v.trim().to_lowercase())));
                find_all(&d.header).into_iter().map(move |col| DateColumn {
                    col,
                    stage: d.stage.clone(),
                    only_if: only_if.clone(),
                })
            })
            .collect();
        let time_zone = match &mapping.time_zone_column {
            Some(c) => Some(*find_all(c).first().ok_or_else(|| {
                format!("the time-zone column {c:?} (import.time_zone_column) is not in the header")
            })?),
            None => None,
        };
        let cols_of = |f: &str| {
            fields
                .iter()
                .find(|(g, _)| *g == f)
                .map(|(_, c)| c.clone())
                .unwrap_or_default()
        };
        let stage = cols_of("stage");
        let changed_at = cols_of("changed_at");
        let stage_ok =
            !stage.is_empty() || !stage_dates.is_empty() || mapping.constant_stage.is_some();
        let time_ok = !changed_at.is_empty() || !stage_dates.is_empty();
        if !stage_ok || !time_ok {
            let wanted = |f: &str| {
                mapping
                    .columns
                    .iter()
                    .find(|(g, _)| *g == f)
                    .map(|(_, n)| n.join("\" or \""))
                    .unwrap_or_else(|| f.to_string())
            };
            let dates = || {
                let dates: Vec<&str> = mapping
                    .stage_dates
                    .iter()
                    .map(|d| d.header.as_str())
                    .collect();
                format!(" or stage-date columns (\"{}\")", dates.join("\", \""))
            };
            let mut need = Vec::new();
            if !stage_ok {
                let mut s = format!("\"{}\"", wanted("stage"));
                if !mapping.stage_dates.is_empty() {
                    s.push_str(&dates());
                }
                need.push(s);
            }
            if !time_ok {
                let mut s = format!("\"{}\"", wanted("changed_at"));
                if !mapping.stage_dates.is_empty() {
                    s.push_str(&dates());
                }
                need.push(s);
            }
            let hint = if mapping.stage_dates.is_empty()
                && mapping.constant_stage.is_none()
                && mapping.name == "record fields"
            {
                format!(
                    "; for a CRM's own export use --preset ({}) or [import] columns",
                    crate::mapping::PRESETS.join(", ")
                )
            } else {
                String::new()
            };
            return Err(format!(
                "with the {} mapping the header must have a stage and a time column: missing {} (found: {}){hint}",
                mapping.name,
                need.join(" and "),
                headers.iter().collect::<Vec<_>>().join(", ")
            ));
        }
        Ok(CsvPlan {
            mapping: mapping.clone(),
            headers: headers.iter().map(|h| h.trim().to_string()).collect(),
            fields,
            stage,
            changed_at,
            stage_dates,
            time_zone,
            width: headers.len(),
        })
    }

    fn uses(&self, col: usize) -> bool {
        self.fields.iter().any(|(_, cs)| cs.contains(&col))
            || self
                .stage_dates
                .iter()
                .any(|d| d.col == col || d.only_if.as_ref().is_some_and(|(c, _)| *c == col))
            || self.time_zone == Some(col)
    }

    /// The stage changes of one CSV row, earliest funnel stage first; the
    /// row's warnings go with the first.
    fn rows(&self, record: &csv::StringRecord, origin: Origin) -> Vec<SourceRow> {
        let fingerprint = csv_fingerprint(record);
        let fail = |code: &'static str, field: Option<&'static str>, msg: String| {
            vec![SourceRow {
                origin: origin.clone(),
                fingerprint,
                record: Err(vec![Violation::new(code, field, msg)]),
                warnings: Vec::new(),
            }]
        };
        if record.len() != self.width {
            return fail(
                "csv.field_count",
                None,
                format!(
                    "row has {} fields but the header has {}; check quoting and separators",
                    record.len(),
                    self.width
                ),
            );
        }
        let tz = match self.time_zone.map(|c| record[c].trim()) {
            Some("") | None => None,
            Some(name) => match name.parse::<chrono_tz::Tz>() {
                Ok(tz) => Some(tz),
                Err(_) => {
                    return fail(
                        "csv.time_zone",
                        None,
                        format!("{name:?} is not an IANA time zone such as Europe/Paris"),
                    )
                }
            },
        };
        let mut warnings = Vec::new();
        let mut problems: Vec<Violation> = Vec::new();
        let mut base = StageChangeRecord::default();
        let non_empty = |cols: &[usize]| -> Vec<(usize, &str)> {
            cols.iter()
                .map(|&c| (c, record[c].trim()))
                .filter(|(_, v)| !v.is_empty())
                .collect()
        };
        // The common case, without allocating: the first non-empty value.
        let first = |cols: &[usize]| -> Option<(usize, &str)> {
            cols.iter()
                .map(|&c| (c, record[c].trim()))
                .find(|(_, v)| !v.is_empty())
        };
        for (field, cols) in &self.fields {
            match *field {
                // The stage column's own time, set with each change below.
                "stage" | "changed_at" => {}
                "email" | "phone" => {
                    let Some((c0, v0)) = first(cols) else {
                        continue;
                    };
                    let mut others: Vec<String> = Vec::new();
                    for &c in cols.iter().filter(|&&c| c != c0) {
                        let v = record[c].trim();
                        if !v.is_empty() && v != v0 && !others.iter().any(|o| o == v) {
                            others.push(v.to_string());
                        }
                    }
                    base.set(field, Some(Scalar::Text(v0.to_string())));
                    if *field == "email" {
                        base.other_emails = others;
                    } else {
                        base.other_phones = others;
                    }
                }
                "lead_id" => {
                    let values = non_empty(cols);
                    let bare = |v: &str| v.trim_start_matches("l:").trim().to_string();
                    match values.split_first() {
                        None => {}
                        Some((&(c0, v0), rest)) => {
                            if let Some(&(c1, _)) = rest.iter().find(|(_, v)| bare(v) != bare(v0)) {
                                warnings.push(Warning::new(
                                    "lead_id",
                                    "lead_id.conflict",
                                    format!(
                                        "column {} {:?} and column {} {:?} hold two different lead IDs: neither is sent (the CRM record ID identifies the lead)",
                                        c0 + 1,
                                        self.headers[c0],
                                        c1 + 1,
                                        self.headers[c1]
                                    ),
                                ));
                            } else {
                                base.lead_id = Some(Scalar::Text(v0.to_string()));
                            }
                        }
                    }
                }
                "lead_created_at" => {
                    if let Some((_, v)) = first(cols) {
                        match self.mapping.time(field, v, tz) {
                            Ok(cell) => {
                                base.lead_created_at = Some(time_scalar(cell, v, &mut warnings))
                            }
                            Err(e) => problems.push(e),
                        }
                    }
                }
                "crm_id" => {
                    if let Some((_, v)) = first(cols) {
                        let v = match &self.mapping.crm_id_prefix {
                            Some(p) => v.strip_prefix(p.as_str()).unwrap_or(v),
                            None => v,
                        };
                        base.crm_id = Some(Scalar::Text(v.to_string()));
                    }
                }
                _ => {
                    if let Some((_, v)) = first(cols) {
                        base.set(field, Some(Scalar::Text(v.to_string())));
                    }
                }
            }
        }

        // The stage changes of the row: (stage, time cell, fingerprint).
        let mut changes: Vec<(String, Option<&str>, Sha256)> = Vec::new();
        let changed_at = first(&self.changed_at).map(|(_, v)| v);
        if let Some(stage) = &self.mapping.constant_stage {
            changes.push((stage.clone(), changed_at, fingerprint));
        }
        if let Some((c, stage)) = first(&self.stage) {
            if self
                .mapping
                .no_stage
                .iter()
                .any(|n| n.eq_ignore_ascii_case(stage))
            {
                problems.push(Violation::new(
                    "stage.none",
                    Some("stage"),
                    format!(
                        "{:?} is {stage:?}: the CRM has no status for this record, so there is no stage to send",
                        self.headers[c]
                    ),
                ));
                changes.push((String::new(), changed_at, fingerprint));
            } else if self.changed_at.is_empty() {
                warnings.push(Warning::new(
                    "stage",
                    "stage.no_time",
                    format!(
                        "{:?} is {stage:?} but the export has no time for it: no event is sent for it (only dated stages are)",
                        self.headers[c]
                    ),
                ));
            } else {
                changes.push((stage.to_string(), changed_at, fingerprint));
            }
        }
        for DateColumn {
            col: c,
            stage,
            only_if,
        } in &self.stage_dates
        {
            let date = record[*c].trim();
            let status = only_if
                .as_ref()
                .map(|(sc, want)| (*sc, want, record[*sc].trim()));
            match status {
                Some((sc, want, have)) if !have.eq_ignore_ascii_case(want) => {
                    if !date.is_empty() {
                        warnings.push(Warning::new(
                            "stage",
                            "stage.status_mismatch",
                            format!(
                                "{:?} has a date but {:?} is {have:?}, not {want:?}: no {stage:?} event",
                                self.headers[*c], self.headers[sc]
                            ),
                        ));
                    }
                }
                Some((sc, want, _)) if date.is_empty() => warnings.push(Warning::new(
                    "stage",
                    "stage.no_time",
                    format!(
                        "{:?} is {want:?} but {:?} is empty: no {stage:?} event",
                        self.headers[sc], self.headers[*c]
                    ),
                )),
                _ if date.is_empty() => {}
                _ => changes.push((
                    stage.clone(),
                    Some(date),
                    Sha256::of(&format!("{fingerprint}\u{1e}{stage}")),
                )),
            }
        }
        if changes.is_empty() && !self.stage_dates.is_empty() {
            let names: Vec<&str> = self
                .stage_dates
                .iter()
                .map(|d| self.headers[d.col].as_str())
                .collect();
            problems.push(Violation::new(
                "csv.no_stage_date",
                None,
                format!(
                    "none of the stage-date columns has a date ({})",
                    names.join(", ")
                ),
            ));
        }
        if changes.is_empty() {
            // A row with no stage at all: the record check says what is
            // missing (or the problems above do).
            changes.push((String::new(), changed_at, fingerprint));
        }

        let mut out: Vec<(SortKey, SourceRow)> = changes
            .into_iter()
            .map(|(stage, time, fp)| {
                let mut r = base.clone();
                let mut own = Vec::new();
                if !stage.is_empty() {
                    r.stage = Some(Scalar::Text(stage));
                }
                let mut at = None;
                if let Some(t) = time {
                    match self.mapping.time("changed_at", t, tz) {
                        Ok(cell) => {
                            if let TimeCell::At(s, _) = &cell {
                                at = Some(*s);
                            }
                            r.changed_at = Some(time_scalar(cell, t, &mut warnings));
                        }
                        Err(e) => own.push(e),
                    }
                }
                let key = sort_key(self.mapping.funnel.as_ref(), &r, at);
                let record = if problems.is_empty() && own.is_empty() {
                    Ok(r)
                } else {
                    own.extend(problems.iter().cloned());
                    Err(with_record_check(own, r, &origin))
                };
                (
                    key,
                    SourceRow {
                        origin: origin.clone(),
                        fingerprint: fp,
                        record,
                        warnings: Vec::new(),
                    },
                )
            })
            .collect();
        out.sort_by_key(|(k, _)| *k);
        let mut rows: Vec<SourceRow> = out.into_iter().map(|(_, r)| r).collect();
        rows[0].warnings = warnings;
        rows
    }
}

/// Funnel order: progression stages by position, then terminal stages,
/// then stages outside the funnel; ties by time.
type SortKey = (u8, usize, i64);

fn sort_key(funnel: Option<&Funnel>, r: &StageChangeRecord, at: Option<i64>) -> SortKey {
    let time = at.unwrap_or(i64::MAX);
    let stage = r.stage.as_ref().and_then(Scalar::text).unwrap_or_default();
    match funnel.and_then(|f| f.resolve(&stage).map(|s| (f, s))) {
        Some((f, StageRef::Known(i))) => (u8::from(f.stage(i).terminal), i, time),
        _ if funnel.is_none() => (0, 0, time),
        _ => (2, 0, time),
    }
}

/// A time cell's value for the record, its warning kept.
fn time_scalar(cell: TimeCell, text: &str, warnings: &mut Vec<Warning>) -> Scalar {
    match cell {
        TimeCell::At(t, w) => {
            warnings.extend(w);
            Scalar::Int(t.into())
        }
        TimeCell::AsIs => Scalar::Text(text.to_string()),
    }
}

/// The reader's violations and the record check's, except on the fields
/// the reader already explained and except a missing stage or time (what
/// the reader found is why).
fn with_record_check(
    mut found: Vec<Violation>,
    r: StageChangeRecord,
    origin: &Origin,
) -> Vec<Violation> {
    if let Err(more) = r.into_stage_change(origin.clone()) {
        for v in more {
            let explained = found
                .iter()
                .any(|f| f.field.is_some() && f.field == v.field)
                || matches!(v.code, "stage.missing" | "changed_at.missing");
            if !explained {
                found.push(v);
            }
        }
    }
    found
}

/// The separator that occurs most often in the header line, outside quotes.
fn sniff_delimiter(head: &[u8]) -> u8 {
    let line_end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    let mut counts = [(b',', 0usize), (b';', 0), (b'\t', 0)];
    let mut quoted = false;
    for &b in &head[..line_end] {
        if b == b'"' {
            quoted = !quoted;
        } else if !quoted {
            for c in counts.iter_mut() {
                if c.0 == b {
                    c.1 += 1;
                }
            }
        }
    }
    counts
        .iter()
        .max_by_key(|c| c.1)
        .filter(|c| c.1 > 0)
        .map_or(b',', |c| c.0)
}

/// Phrases that open the lines of a report's footer.
const FOOTER_PHRASES: &[&str] = &[
    "grand total",
    "total",
    "confidential information",
    "copyright",
    "generated by",
    "filtered by",
    "report generated",
];

/// Whether a record is empty (`,,,,`), and whether it may be a footer line:
/// one cell only, or a known footer phrase first.
fn footer_like(record: &csv::StringRecord, width: usize, after_blank: bool) -> (bool, bool) {
    let filled = record.iter().filter(|c| !c.trim().is_empty()).count();
    if filled == 0 {
        return (true, true);
    }
    let first = record.get(0).unwrap_or("").trim().to_lowercase();
    let phrase = FOOTER_PHRASES.iter().any(|p| first.starts_with(p));
    let lone = filled == 1 && !first.is_empty() && (record.len() == 1 || after_blank);
    (false, phrase || (lone && width > 1))
}

impl FileRows {
    /// Rows of held-back records that turned out not to be the footer.
    fn release(&mut self, plan: &CsvPlan, held: Vec<Held>) {
        for h in held {
            if h.blank {
                self.stats.blank += 1;
            } else {
                self.stats.records += 1;
                let origin = Origin::new(self.name.clone(), h.line);
                self.pending.extend(plan.rows(&h.record, origin));
            }
        }
    }
}

impl Iterator for FileRows {
    type Item = SourceRow;

    fn next(&mut self) -> Option<SourceRow> {
        loop {
            if let Some(row) = self.pending.pop_front() {
                return Some(row);
            }
            let inner = std::mem::replace(&mut self.inner, Inner::Done);
            match inner {
                Inner::Done => return None,
                Inner::Csv {
                    mut reader,
                    plan,
                    line_fix,
                    mut record,
                    mut held,
                } => {
                    let line = reader.position().line() + line_fix;
                    let keep = match reader.read_record(&mut record) {
                        Ok(false) => {
                            // The end: what was held back is the footer.
                            if let (Some(first), Some(last)) = (held.first(), held.last()) {
                                self.stats.footer_lines += last.line - first.line + 1;
                            }
                            return None;
                        }
                        Ok(true) => {
                            let line = record.position().map_or(line, |p| p.line() + line_fix);
                            let (blank, footer) =
                                footer_like(&record, plan.width, !held.is_empty());
                            if footer && held.len() < MAX_FOOTER {
                                held.push(Held {
                                    line,
                                    record: record.clone(),
                                    blank,
                                });
                            } else {
                                let earlier = std::mem::take(&mut held);
                                self.release(&plan, earlier);
                                if blank {
                                    self.stats.blank += 1;
                                } else {
                                    self.stats.records += 1;
                                    let origin = Origin::new(self.name.clone(), line);
                                    self.pending.extend(plan.rows(&record, origin));
                                }
                            }
                            true
                        }
                        Err(e) => {
                            let earlier = std::mem::take(&mut held);
                            self.release(&plan, earlier);
                            let origin = Origin::new(
                                self.name.clone(),
                                e.position().map_or(line, |p| p.line() + line_fix),
                            );
                            let (v, fatal) = match e.kind() {
                                csv::ErrorKind::Io(io) => (io_violation(&self.name, io), true),
                                _ => (Violation::new("csv.syntax", None, e.to_string()), false),
                            };
                            self.stats.records += 1;
                            let fingerprint = Sha256::of(&format!("csv-error:{}", v.message));
                            self.pending.push_back(SourceRow {
                                origin,
                                fingerprint,
                                record: Err(vec![v]),
                                warnings: Vec::new(),
                            });
                            // An I/O error does not move the reader on: stop there.
                            !fatal
                        }
                    };
                    if keep {
                        self.inner = Inner::Csv {
                            reader,
                            plan,
                            line_fix,
                            record,
                            held,
                        };
                    }
                }
                Inner::Jsonl {
                    mut reader,
                    mut line,
                    mut buf,
                } => loop {
                    buf.clear();
                    line += 1;
                    match reader.read_until(b'\n', &mut buf) {
                        Ok(0) => return None,
                        Ok(_) => {}
                        Err(e) => {
                            let origin = Origin::new(self.name.clone(), line);
                            let v = io_violation(&self.name, &e);
                            let fingerprint = Sha256::of(&format!("io-error:{}", v.message));
                            self.stats.records += 1;
                            return Some(SourceRow {
                                origin,
                                fingerprint,
                                record: Err(vec![v]),
                                warnings: Vec::new(),
                            });
                        }
                    }
                    let text: &[u8] = &buf;
                    if text.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    self.stats.records += 1;
                    let origin = Origin::new(self.name.clone(), line);
                    let fingerprint = Sha256::of_bytes(text.trim_ascii());
                    let record = serde_json::from_slice::<StageChangeRecord>(text).map_err(|e| {
                        let code = if e.is_data() {
                            "json.field"
                        } else {
                            "json.syntax"
                        };
                        // serde_json counts lines within this one line: give the column only.
                        let msg = e.to_string();
                        let msg = msg
                            .rsplit_once(" at line ")
                            .map_or(msg.clone(), |(m, _)| format!("{m} (column {})", e.column()));
                        vec![Violation::new(code, None, msg)]
                    });
                    self.inner = Inner::Jsonl { reader, line, buf };
                    return Some(SourceRow {
                        origin,
                        fingerprint,
                        record,
                        warnings: Vec::new(),
                    });
                },
            }
        }
    }
}

/// A read that failed mid-file: bytes that do not decode (named by file
/// and offset), or another I/O error.
fn io_violation(name: &str, e: &io::Error) -> Violation {
    if e.get_ref().is_some_and(|r| r.is::<DecodeError>()) {
        Violation::new("file.encoding", None, format!("{name}: {e}"))
    } else {
        Violation::new("io", None, e.to_string())
    }
}

/// SHA-256 over a CSV row's fields, separated by a byte no cell holds.
fn csv_fingerprint(record: &csv::StringRecord) -> Sha256 {
    let mut bytes = Vec::with_capacity(record.as_slice().len() + record.len());
    for field in record.iter() {
        bytes.extend_from_slice(field.as_bytes());
        bytes.push(0x1f);
    }
    Sha256::of_bytes(&bytes)
}

//! CSV and JSONL files of stage-change records, read as a stream.
//!
//! CSV: UTF-8 with or without BOM, `,` `;` or tab separators (sniffed from
//! the header), quoted fields with newlines, CRLF, blank lines. Header names
//! are the record's field names, matched case-insensitively; other columns
//! are ignored and listed once in [`FileRows::ignored_columns`].
//!
//! JSONL: one JSON object per line; blank lines skipped.

use crate::mapping::Mapping;
use crate::SourceRow;
use leadsignal_core::{Origin, Scalar, Sha256, StageChangeRecord, Violation};
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

/// Rows of one file, in order.
pub struct FileRows {
    name: String,
    inner: Inner,
    ignored: Vec<String>,
    /// Rows already read and waiting (one CSV row can give several stage changes).
    pending: VecDeque<SourceRow>,
}

/// How each CSV column is used.
struct CsvPlan {
    mapping: Mapping,
    /// Record field → the columns that may hold it, in order of preference.
    fields: Vec<(&'static str, Vec<usize>)>,
    /// Stage-date columns and their CRM stage.
    stage_dates: Vec<(usize, String)>,
    /// The per-row time-zone column.
    time_zone: Option<usize>,
    width: usize,
}

enum Inner {
    Csv {
        reader: csv::Reader<Box<dyn Read>>,
        plan: Box<CsvPlan>,
        /// Added to the csv crate's line numbers (1 for CRLF files).
        line_fix: u64,
        record: csv::StringRecord,
    },
    Jsonl {
        reader: Box<dyn BufRead>,
        line: u64,
        buf: Vec<u8>,
    },
}

impl FileRows {
    /// Opens a file whose CSV headers are the record's field names; the
    /// format comes from the extension, else from the first non-blank byte
    /// (`{` means JSONL).
    pub fn open(path: &Path) -> Result<FileRows, SourceError> {
        Self::open_with(path, &Mapping::record_fields())
    }

    /// Opens a file with a column mapping (a CRM preset or configured columns;
    /// JSONL files always use the record's field names).
    pub fn open_with(path: &Path, mapping: &Mapping) -> Result<FileRows, SourceError> {
        let name = path.display().to_string();
        let file = File::open(path).map_err(|source| SourceError::Io {
            path: name.clone(),
            source,
        })?;
        Self::from_reader_with(name, Box::new(file), FileFormat::from_path(path), mapping)
    }

    /// Reads from any reader (`name` is used in positions, e.g. `stdin`).
    pub fn from_reader(
        name: String,
        reader: Box<dyn Read>,
        format: Option<FileFormat>,
    ) -> Result<FileRows, SourceError> {
        Self::from_reader_with(name, reader, format, &Mapping::record_fields())
    }

    /// Reads from any reader with a column mapping. UTF-8 (with or without
    /// BOM) and UTF-16 with a BOM (Excel's "Unicode text") are accepted.
    pub fn from_reader_with(
        name: String,
        reader: Box<dyn Read>,
        format: Option<FileFormat>,
        mapping: &Mapping,
    ) -> Result<FileRows, SourceError> {
        let decoded = encoding_rs_io::DecodeReaderBytesBuilder::new()
            .bom_sniffing(true)
            .strip_bom(true)
            .utf8_passthru(true)
            .build(reader);
        // Read ahead a whole first line (up to 64 KiB) for sniffing: the
        // decoder may hand out the first bytes in small pieces.
        let mut decoded: Box<dyn Read> = Box::new(decoded);
        let mut first = Vec::with_capacity(64 * 1024);
        let mut chunk = [0u8; 8192];
        while first.len() < 64 * 1024 && !first.contains(&b'\n') {
            let n = decoded.read(&mut chunk).map_err(|source| SourceError::Io {
                path: name.clone(),
                source,
            })?;
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
        match format {
            FileFormat::Jsonl => Ok(FileRows {
                name,
                inner: Inner::Jsonl {
                    reader: Box::new(reader),
                    line: 0,
                    buf: Vec::new(),
                },
                ignored: Vec::new(),
                pending: VecDeque::new(),
            }),
            FileFormat::Csv => Self::csv(name, reader, head, mapping),
        }
    }

    fn csv(
        name: String,
        reader: BufReader<Box<dyn Read>>,
        head: &[u8],
        mapping: &Mapping,
    ) -> Result<FileRows, SourceError> {
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
        let header_err = |message: String| SourceError::Header {
            path: name.clone(),
            message,
        };
        let headers = csv
            .headers()
            .map_err(|e| header_err(format!("cannot read the header row: {e}")))?
            .clone();
        let plan = CsvPlan::new(&headers, mapping).map_err(header_err)?;
        let used: Vec<bool> = (0..headers.len()).map(|i| plan.uses(i)).collect();
        let ignored = headers
            .iter()
            .zip(used)
            .filter(|(_, u)| !u)
            .map(|(h, _)| h.to_string())
            .collect();
        Ok(FileRows {
            name,
            inner: Inner::Csv {
                reader: csv,
                plan: Box::new(plan),
                line_fix: u64::from(crlf),
                record: csv::StringRecord::new(),
            },
            ignored,
            pending: VecDeque::new(),
        })
    }

    /// Header columns the mapping does not use (CSV only).
    pub fn ignored_columns(&self) -> &[String] {
        &self.ignored
    }

    /// The name used in positions.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Record fields that hold times.
const TIME_FIELDS: [&str; 2] = ["changed_at", "lead_created_at"];

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
            // duplicated header gives two candidates (first non-empty wins).
            let cols: Vec<usize> = names.iter().flat_map(|n| find_all(n)).collect();
            if !cols.is_empty() {
                fields.push((*field, cols));
            }
        }
        let stage_dates: Vec<(usize, String)> = mapping
            .stage_dates
            .iter()
            .flat_map(|(h, stage)| find_all(h).into_iter().map(move |i| (i, stage.clone())))
            .collect();
        let time_zone = match &mapping.time_zone_column {
            Some(c) => Some(*find_all(c).first().ok_or_else(|| {
                format!("the time-zone column {c:?} (import.time_zone_column) is not in the header")
            })?),
            None => None,
        };
        let has = |f: &str| fields.iter().any(|(g, _)| *g == f);
        let stage_ok = has("stage") || !stage_dates.is_empty() || mapping.constant_stage.is_some();
        let time_ok = has("changed_at") || !stage_dates.is_empty();
        if !stage_ok || !time_ok {
            let wanted = |f: &str| {
                mapping
                    .columns
                    .iter()
                    .find(|(g, _)| *g == f)
                    .map(|(_, n)| n.join("\" or \""))
                    .unwrap_or_else(|| f.to_string())
            };
            let mut need = Vec::new();
            if !stage_ok {
                let mut s = format!("\"{}\"", wanted("stage"));
                if !mapping.stage_dates.is_empty() {
                    let dates: Vec<&str> = mapping
                        .stage_dates
                        .iter()
                        .map(|(h, _)| h.as_str())
                        .collect();
                    s.push_str(&format!(
                        " or stage-date columns (\"{}\")",
                        dates.join("\", \"")
                    ));
                }
                need.push(s);
            }
            if !time_ok {
                need.push(format!("\"{}\"", wanted("changed_at")));
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
            fields,
            stage_dates,
            time_zone,
            width: headers.len(),
        })
    }

    fn uses(&self, col: usize) -> bool {
        self.fields.iter().any(|(_, cs)| cs.contains(&col))
            || self.stage_dates.iter().any(|(c, _)| *c == col)
            || self.time_zone == Some(col)
    }

    /// The stage changes of one CSV row.
    fn rows(&self, record: &csv::StringRecord, origin: Origin) -> Vec<SourceRow> {
        let fingerprint = csv_fingerprint(record);
        let fail = |code: &'static str, msg: String| {
            vec![SourceRow {
                origin: origin.clone(),
                fingerprint,
                record: Err(vec![Violation::new(code, None, msg)]),
            }]
        };
        if record.len() != self.width {
            return fail(
                "csv.field_count",
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
                        format!("{name:?} is not an IANA time zone such as Europe/Paris"),
                    )
                }
            },
        };
        let mut base = StageChangeRecord::default();
        for (field, cols) in &self.fields {
            let Some(value) = cols
                .iter()
                .map(|&c| &record[c])
                .find(|v| !v.trim().is_empty())
            else {
                continue;
            };
            let scalar = if TIME_FIELDS.contains(field) {
                self.mapping.time_cell(value, tz)
            } else {
                Some(Scalar::Text(value.to_string()))
            };
            base.set(field, scalar);
        }
        if let Some(stage) = &self.mapping.constant_stage {
            base.stage = Some(Scalar::Text(stage.clone()));
        }
        if self.stage_dates.is_empty() {
            return vec![SourceRow {
                origin,
                fingerprint,
                record: Ok(base),
            }];
        }
        let out: Vec<SourceRow> = self
            .stage_dates
            .iter()
            .filter(|(c, _)| !record[*c].trim().is_empty())
            .map(|(c, stage)| {
                let mut r = base.clone();
                r.stage = Some(Scalar::Text(stage.clone()));
                r.changed_at = self.mapping.time_cell(&record[*c], tz);
                SourceRow {
                    origin: origin.clone(),
                    fingerprint: Sha256::of(&format!("{fingerprint}\u{1e}{stage}")),
                    record: Ok(r),
                }
            })
            .collect();
        if out.is_empty() {
            let names: Vec<&str> = self
                .mapping
                .stage_dates
                .iter()
                .map(|(h, _)| h.as_str())
                .collect();
            return fail(
                "csv.no_stage_date",
                format!(
                    "none of the stage-date columns has a date ({})",
                    names.join(", ")
                ),
            );
        }
        out
    }
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

impl Iterator for FileRows {
    type Item = SourceRow;

    fn next(&mut self) -> Option<SourceRow> {
        if let Some(row) = self.pending.pop_front() {
            return Some(row);
        }
        match &mut self.inner {
            Inner::Csv {
                reader,
                plan,
                line_fix,
                record,
            } => {
                let line = reader.position().line() + *line_fix;
                match reader.read_record(record) {
                    Ok(false) => None,
                    Ok(true) => {
                        let line = record.position().map_or(line, |p| p.line() + *line_fix);
                        let origin = Origin::new(self.name.clone(), line);
                        self.pending.extend(plan.rows(record, origin));
                        self.pending.pop_front()
                    }
                    Err(e) => {
                        let origin = Origin::new(
                            self.name.clone(),
                            e.position().map_or(line, |p| p.line() + *line_fix),
                        );
                        let fatal = matches!(e.kind(), csv::ErrorKind::Io(_));
                        let v = Violation::new("csv.syntax", None, e.to_string());
                        if fatal {
                            // An I/O error does not move the reader on: stop here.
                            self.inner = Inner::Jsonl {
                                reader: Box::new(io::empty()),
                                line: 0,
                                buf: Vec::new(),
                            };
                        }
                        let fingerprint = Sha256::of(&format!("csv-error:{}", v.message));
                        Some(SourceRow {
                            origin,
                            fingerprint,
                            record: Err(vec![v]),
                        })
                    }
                }
            }
            Inner::Jsonl { reader, line, buf } => loop {
                buf.clear();
                *line += 1;
                match reader.read_until(b'\n', buf) {
                    Ok(0) => return None,
                    Ok(_) => {}
                    Err(e) => {
                        let origin = Origin::new(self.name.clone(), *line);
                        let v = Violation::new("io", None, e.to_string());
                        *reader = Box::new(io::empty());
                        let fingerprint = Sha256::of(&format!("io-error:{}", v.message));
                        return Some(SourceRow {
                            origin,
                            fingerprint,
                            record: Err(vec![v]),
                        });
                    }
                }
                let text: &[u8] = buf;
                if text.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let origin = Origin::new(self.name.clone(), *line);
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
                return Some(SourceRow {
                    origin,
                    fingerprint,
                    record,
                });
            },
        }
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

//! CSV and JSONL files of stage-change records, read as a stream.
//!
//! CSV: UTF-8 with or without BOM, `,` `;` or tab separators (sniffed from
//! the header), quoted fields with newlines, CRLF, blank lines. Header names
//! are the record's field names, matched case-insensitively; other columns
//! are ignored and listed once in [`FileRows::ignored_columns`].
//!
//! JSONL: one JSON object per line; blank lines skipped.

use crate::SourceRow;
use leadsignal_core::{Origin, Sha256, StageChangeRecord, Violation, RECORD_FIELDS};
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
}

enum Inner {
    Csv {
        reader: csv::Reader<Box<dyn Read>>,
        /// Record field for each column (None = ignored).
        columns: Vec<Option<&'static str>>,
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
    /// Opens a file; the format comes from the extension, else from the first
    /// non-blank byte (`{` means JSONL).
    pub fn open(path: &Path) -> Result<FileRows, SourceError> {
        let name = path.display().to_string();
        let io_err = |source| SourceError::Io {
            path: name.clone(),
            source,
        };
        let file = File::open(path).map_err(io_err)?;
        Self::from_reader(name.clone(), Box::new(file), FileFormat::from_path(path))
    }

    /// Reads from any reader (`name` is used in positions, e.g. `stdin`).
    pub fn from_reader(
        name: String,
        reader: Box<dyn Read>,
        format: Option<FileFormat>,
    ) -> Result<FileRows, SourceError> {
        let mut reader = BufReader::with_capacity(256 * 1024, reader);
        let io_err = |source| SourceError::Io {
            path: name.clone(),
            source,
        };
        let head = reader.fill_buf().map_err(io_err)?;
        let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
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
            }),
            FileFormat::Csv => Self::csv(name, reader),
        }
    }

    fn csv(name: String, mut reader: BufReader<Box<dyn Read>>) -> Result<FileRows, SourceError> {
        let head = reader.fill_buf().map_err(|source| SourceError::Io {
            path: name.clone(),
            source,
        })?;
        // With CRLF line ends the csv crate counts the "\n" ending a record as
        // part of the next one, so its line numbers are one short.
        let crlf = head
            .iter()
            .position(|&b| b == b'\n')
            .is_some_and(|i| i > 0 && head[i - 1] == b'\r');
        let bom = head.starts_with(b"\xEF\xBB\xBF");
        let delimiter = sniff_delimiter(if bom { &head[3..] } else { head });
        if bom {
            reader.consume(3);
        }
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
        let mut columns = Vec::with_capacity(headers.len());
        let mut ignored = Vec::new();
        for (i, h) in headers.iter().enumerate() {
            let key = h.trim().trim_start_matches('\u{feff}').to_ascii_lowercase();
            let field = RECORD_FIELDS.iter().copied().find(|f| *f == key);
            if let Some(f) = field {
                if let Some(j) = columns.iter().position(|c| *c == Some(f)) {
                    return Err(header_err(format!(
                        "column {f:?} appears twice (columns {} and {}); keep one",
                        j + 1,
                        i + 1
                    )));
                }
            } else {
                ignored.push(h.to_string());
            }
            columns.push(field);
        }
        if !columns.contains(&Some("stage")) || !columns.contains(&Some("changed_at")) {
            return Err(header_err(format!(
                "the header must name at least the columns \"stage\" and \"changed_at\" (found: {})",
                headers.iter().collect::<Vec<_>>().join(", ")
            )));
        }
        Ok(FileRows {
            name,
            inner: Inner::Csv {
                reader: csv,
                columns,
                line_fix: u64::from(crlf),
                record: csv::StringRecord::new(),
            },
            ignored,
        })
    }

    /// Header columns that are not record fields (CSV only).
    pub fn ignored_columns(&self) -> &[String] {
        &self.ignored
    }

    /// The name used in positions.
    pub fn name(&self) -> &str {
        &self.name
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
        match &mut self.inner {
            Inner::Csv {
                reader,
                columns,
                line_fix,
                record,
            } => {
                let line = reader.position().line() + *line_fix;
                match reader.read_record(record) {
                    Ok(false) => None,
                    Ok(true) => {
                        let line = record.position().map_or(line, |p| p.line() + *line_fix);
                        let origin = Origin::new(self.name.clone(), line);
                        if record.len() != columns.len() {
                            let v = Violation::new(
                                "csv.field_count",
                                None,
                                format!(
                                    "row has {} fields but the header has {}; check quoting and separators",
                                    record.len(),
                                    columns.len()
                                ),
                            );
                            let fingerprint = csv_fingerprint(record);
                            return Some(SourceRow {
                                origin,
                                fingerprint,
                                record: Err(vec![v]),
                            });
                        }
                        let fingerprint = csv_fingerprint(record);
                        let mut r = StageChangeRecord::default();
                        for (value, column) in record.iter().zip(columns.iter()) {
                            if let Some(field) = column {
                                r.set_text(field, value);
                            }
                        }
                        Some(SourceRow {
                            origin,
                            fingerprint,
                            record: Ok(r),
                        })
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
                let mut text: &[u8] = buf;
                if *line == 1 {
                    text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
                }
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

//! leadsignal's intake: the one path from a source's rows to outbox items.
//!
//! - [`check`]: a row (or a stage change) through the rules: a prepared
//!   event or a rejection, with its warnings. `import`, `sync`, polled
//!   sources, `serve`'s ingest and webhook and `demo` store what it gives;
//!   `validate` shows it without storing.
//! - [`identities`]: the same e-mail or phone under two CRM record IDs in
//!   one file.
//! - [`files`]: files into the outbox, parsing on a second thread.
//! - [`poll`]: sources read after a cursor (CRM databases), each poll's rows
//!   and cursor in one transaction.
//!
//! It does not deliver (that is `leadsignal-deliver`), read configuration
//! files, or print: callers give it a [`leadsignal_core::PrepareConfig`],
//! a [`leadsignal_sources::Mapping`] and a store, and report what it returns.

pub mod check;
pub mod files;
pub mod identities;
pub mod poll;

pub use check::{check, check_change, skipped, Checked};
pub use files::{import_files, FileSummary, Reject, Summary};
pub use identities::Identities;
pub use poll::{poll_source, Polled, SourceSummary};

/// Why intake stopped (a bad row never stops it: that is a rejection).
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// The outbox could not be written or read.
    #[error("writing to the outbox: {0}")]
    Store(#[from] leadsignal_store::StoreError),
    /// A polled source could not be read.
    #[error("{0}")]
    Source(Box<dyn std::error::Error + Send + Sync>),
    /// The file reader thread panicked (a bug).
    #[error("the file reader panicked")]
    ReaderPanicked,
}

//! Copying the SQLite write-ahead log back into the database file on a
//! second thread, so that the thread accepting input does not.
//!
//! In WAL mode every committed page is written twice: to the log at commit,
//! and into the database file by a checkpoint. SQLite's automatic checkpoint
//! runs inside the commit that crosses `wal_autocheckpoint` pages, on the
//! writer's thread: during a bulk import that thread is the bottleneck, and
//! the other core is half idle. After each enqueue the writer nudges a
//! [`Checkpointer`], whose own connection copies the new pages with a
//! `PASSIVE` checkpoint (it never blocks the writer nor waits for it). The
//! automatic checkpoint stays on: it still restarts the log once it is long
//! enough, but finds nearly everything already copied.

use rusqlite::{Connection, OpenFlags};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;

/// What the checkpoint thread is asked to do.
enum Request {
    /// New pages were committed: copy them back.
    Copy,
    /// Copy what was committed before this request, then answer (tests).
    CopyAndTell(SyncSender<()>),
}

/// A thread with its own connection to the database, copying committed
/// pages back into the database file when told that there are new ones.
pub(crate) struct Checkpointer {
    requests: Option<SyncSender<Request>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts the thread for the database file at `path`; `None` when it is
    /// not a file (an in-memory database) or a second connection cannot be
    /// opened (the automatic checkpoint then does all the work, as without
    /// this). Never creates a file.
    pub(crate) fn start(path: &str) -> Option<Checkpointer> {
        if !std::path::Path::new(path).is_file() {
            return None;
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .ok()?;
        // One request waiting is enough: it copies everything committed
        // before it runs.
        let (requests, rx) = mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || run(conn, rx))
            .ok()?;
        Some(Checkpointer {
            requests: Some(requests),
            thread: Some(thread),
        })
    }

    /// New pages were committed: copy them back soon, without waiting.
    pub(crate) fn nudge(&self) {
        if let Some(r) = &self.requests {
            // Full: a request already waiting copies these pages too.
            let _ = r.try_send(Request::Copy);
        }
    }

    /// Waits until everything committed before this call has been copied
    /// (or tried: a busy checkpoint is skipped).
    pub(crate) fn flush(&self) {
        if let Some(r) = &self.requests {
            let (tx, rx) = mpsc::sync_channel(1);
            if r.send(Request::CopyAndTell(tx)).is_ok() {
                let _ = rx.recv();
            }
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.requests = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(conn: Connection, requests: Receiver<Request>) {
    for request in requests {
        // PASSIVE: copies what no reader still needs, never waits and never
        // blocks a writer. A failure (busy, I/O) leaves the pages to the
        // next request or to the automatic checkpoint.
        let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
        if let Request::CopyAndTell(done) = request {
            let _ = done.send(());
        }
    }
}

//! The one thread that writes what the server receives to the outbox.
//!
//! Requests hand their prepared items over a channel and wait for the
//! answer; the writer takes every request waiting at that moment into one
//! transaction (group commit: one `fsync` for many requests), then answers
//! each with the outcome of its own items.

use leadsignal_core::PrepareConfig;
use leadsignal_store::{EnqueueContext, Incoming, ItemOutcome, MissingStages, Outbox};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Most items written in one transaction.
const GROUP_ITEMS: usize = 10_000;

struct Job {
    items: Vec<Incoming>,
    reply: oneshot::Sender<Result<Vec<ItemOutcome>, String>>,
}

/// A handle to the writer thread.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer thread on `store`.
    pub fn start(
        mut store: Box<dyn Outbox + Send>,
        pc: Arc<PrepareConfig>,
        missing: MissingStages,
    ) -> (Writer, std::thread::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<Job>(1024);
        let handle = std::thread::Builder::new()
            .name("outbox-writer".into())
            .spawn(move || {
                while let Some(first) = rx.blocking_recv() {
                    let mut jobs = vec![first];
                    let mut n = jobs[0].items.len();
                    while n < GROUP_ITEMS {
                        match rx.try_recv() {
                            Ok(j) => {
                                n += j.items.len();
                                jobs.push(j);
                            }
                            Err(_) => break,
                        }
                    }
                    let lens: Vec<usize> = jobs.iter().map(|j| j.items.len()).collect();
                    let mut batch = Vec::with_capacity(n);
                    let mut replies = Vec::with_capacity(jobs.len());
                    for j in jobs {
                        batch.extend(j.items);
                        replies.push(j.reply);
                    }
                    let ctx = EnqueueContext {
                        prepare: &pc,
                        missing,
                        now: super::unix_now(),
                    };
                    match store.enqueue(&batch, &ctx) {
                        Ok(report) => {
                            let mut items = report.items.into_iter();
                            for (reply, len) in replies.into_iter().zip(lens) {
                                let _ = reply.send(Ok(items.by_ref().take(len).collect()));
                            }
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "writing to the outbox failed");
                            for reply in replies {
                                let _ = reply.send(Err(e.to_string()));
                            }
                        }
                    }
                }
            })
            .expect("start the outbox writer");
        (Writer { tx }, handle)
    }

    /// Stores `items` (one transaction, possibly shared with other
    /// requests); the outcome of each, in order.
    pub async fn write(&self, items: Vec<Incoming>) -> Result<Vec<ItemOutcome>, String> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Job { items, reply })
            .await
            .map_err(|_| "the outbox writer has stopped".to_string())?;
        answer
            .await
            .map_err(|_| "the outbox writer has stopped".to_string())?
    }
}

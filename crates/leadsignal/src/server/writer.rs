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

enum Job {
    /// Enqueue (grouped with other waiting writes to the same dataset).
    Write {
        /// Index of the dataset in the writer's targets.
        target: usize,
        items: Vec<Incoming>,
        reply: oneshot::Sender<Result<Vec<ItemOutcome>, String>>,
    },
    /// Replace pending events with enriched ones (`Outbox::refresh`).
    Refresh {
        items: Vec<Incoming>,
        reply: oneshot::Sender<Result<u64, String>>,
    },
}

/// A handle to the writer thread.
#[derive(Clone)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer thread on `store`, for the datasets `targets`
    /// (how their stage changes became events, their missing-stages
    /// policy); the first is the default.
    pub(crate) fn start(
        mut store: Box<dyn Outbox + Send>,
        targets: Vec<(Arc<PrepareConfig>, MissingStages)>,
    ) -> (Writer, std::thread::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<Job>(1024);
        let handle = std::thread::Builder::new()
            .name("outbox-writer".into())
            .spawn(move || {
                let mut next: Option<Job> = None;
                loop {
                    let first = match next.take() {
                        Some(j) => j,
                        None => match rx.blocking_recv() {
                            Some(j) => j,
                            None => break,
                        },
                    };
                    let (target, items, reply) = match first {
                        Job::Refresh { items, reply } => {
                            let r = store
                                .refresh(&items, &targets[0].0.dataset_id)
                                .map_err(|e| e.to_string());
                            let _ = reply.send(r);
                            continue;
                        }
                        Job::Write {
                            target,
                            items,
                            reply,
                        } => (target, items, reply),
                    };
                    let mut n = items.len();
                    let mut jobs = vec![(items, reply)];
                    while n < GROUP_ITEMS {
                        match rx.try_recv() {
                            Ok(Job::Write {
                                target: t,
                                items,
                                reply,
                            }) if t == target => {
                                n += items.len();
                                jobs.push((items, reply));
                            }
                            Ok(other) => {
                                next = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    let (pc, missing) = &targets[target];
                    let lens: Vec<usize> = jobs.iter().map(|j| j.0.len()).collect();
                    let mut batch = Vec::with_capacity(n);
                    let mut replies = Vec::with_capacity(jobs.len());
                    for (items, reply) in jobs {
                        batch.extend(items);
                        replies.push(reply);
                    }
                    let ctx = EnqueueContext {
                        prepare: pc,
                        missing: *missing,
                        now: crate::clock::unix_now(),
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

    /// Stores `items` of the default dataset (one transaction, possibly
    /// shared with other requests); the outcome of each, in order.
    pub(crate) async fn write(&self, items: Vec<Incoming>) -> Result<Vec<ItemOutcome>, String> {
        self.write_to(0, items).await
    }

    /// Stores `items` of dataset `target` (an index of the targets).
    pub(crate) async fn write_to(
        &self,
        target: usize,
        items: Vec<Incoming>,
    ) -> Result<Vec<ItemOutcome>, String> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Job::Write {
                target,
                items,
                reply,
            })
            .await
            .map_err(|_| "the outbox writer has stopped".to_string())?;
        answer
            .await
            .map_err(|_| "the outbox writer has stopped".to_string())?
    }

    /// Replaces pending events with enriched versions; how many were.
    pub(crate) async fn refresh(&self, items: Vec<Incoming>) -> Result<u64, String> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Job::Refresh { items, reply })
            .await
            .map_err(|_| "the outbox writer has stopped".to_string())?;
        answer
            .await
            .map_err(|_| "the outbox writer has stopped".to_string())?
    }
}

//! A sender's walk through one dataset's queue: where the last claim
//! stopped, and which entries it passed over because an earlier stage of
//! their lead was still unsent.
//!
//! Claims walk pending entries in claim order (deadline hour, then arrival)
//! in passes. Within a pass each claim resumes where the previous one
//! stopped, so that the entries at the front that are waiting for an
//! earlier stage (typically one of the requests in flight) are not walked
//! over again and again. A passed-over entry is looked at again as soon as
//! a stage of its lead leaves the queue (sent, quarantined, expired); when a
//! pass reaches the end of the queue, the next starts from the front and
//! sees everything, including retries that came due and entries other
//! processes added. This is memory only: the database stays the truth, and
//! losing the walk costs one extra pass, never an event.

use std::collections::HashMap;

/// Passed-over entries remembered at most (beyond that they wait for the
/// next pass).
const MAX_PASSED: usize = 200_000;

/// The walk of one dataset's queue.
#[derive(Debug, Default)]
pub(crate) struct Walk {
    /// Claim-order position (deadline hour, row ID) of the last entry looked
    /// at in this pass; `None` at the start of a pass.
    pub(crate) after: Option<(i64, i64)>,
    /// Passed-over entries by lead.
    passed: HashMap<i64, Vec<i64>>,
    passed_count: usize,
    /// Passed-over entries whose lead had a stage leave the queue: the next
    /// claim looks at them first.
    pub(crate) recheck: Vec<i64>,
}

impl Walk {
    /// Remembers entry `id` of `lead`, passed over in this pass.
    pub(crate) fn pass(&mut self, id: i64, lead: i64) {
        if self.passed_count < MAX_PASSED {
            self.passed.entry(lead).or_default().push(id);
            self.passed_count += 1;
        }
    }

    /// A stage of `lead` left the queue: its passed-over entries are looked
    /// at again by the next claim.
    pub(crate) fn left_queue(&mut self, lead: i64) {
        if let Some(ids) = self.passed.remove(&lead) {
            self.passed_count -= ids.len();
            self.recheck.extend(ids);
        }
    }

    /// Starts a new pass from the front of the queue (which looks at every
    /// passed-over entry again).
    pub(crate) fn restart(&mut self) {
        self.after = None;
        self.passed.clear();
        self.passed_count = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passed_entries_come_back_when_their_lead_moves() {
        let mut w = Walk::default();
        w.pass(10, 1);
        w.pass(11, 1);
        w.pass(20, 2);
        w.left_queue(1);
        assert_eq!(w.recheck, vec![10, 11]);
        w.left_queue(1);
        assert_eq!(w.recheck, vec![10, 11], "once only");
        w.left_queue(3);
        assert_eq!(w.recheck.len(), 2);
        w.restart();
        w.left_queue(2);
        assert_eq!(w.recheck.len(), 2, "a new pass forgets what it passed");
        assert_eq!(w.after, None);
    }

    #[test]
    fn memory_is_bounded() {
        let mut w = Walk::default();
        for i in 0..(MAX_PASSED as i64 + 10) {
            w.pass(i, i);
        }
        assert_eq!(w.passed_count, MAX_PASSED);
        assert_eq!(w.passed.len(), MAX_PASSED);
        w.left_queue(0);
        assert_eq!(w.passed_count, MAX_PASSED - 1);
    }
}

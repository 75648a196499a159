//! What the CRM source tests share: polling off the async runtime the
//! emulators live on, and the rows as (record ID, stage, time).

use leadsignal_sources::crm::CrmError;
use leadsignal_sources::sql::Poll;

/// Runs `poll` (blocking HTTP) on a blocking thread; gives the source back.
pub async fn poll_off_runtime<S: Send + 'static>(
    source: S,
    cursor: &str,
    limit: usize,
    poll: fn(&S, &str, usize) -> Result<Poll, CrmError>,
) -> (S, Result<Poll, CrmError>) {
    let cursor = cursor.to_string();
    tokio::task::spawn_blocking(move || {
        let r = poll(&source, &cursor, limit);
        (source, r)
    })
    .await
    .unwrap()
}

/// (record ID, stage, time) of each row.
pub fn changes(p: &Poll) -> Vec<(String, String, String)> {
    p.rows
        .iter()
        .map(|r| {
            let rec = r.record.as_ref().unwrap();
            let t = |v: &Option<leadsignal_core::Scalar>| v.as_ref().unwrap().text().unwrap();
            (t(&rec.crm_id), t(&rec.stage), t(&rec.changed_at))
        })
        .collect()
}

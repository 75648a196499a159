//! The dataset lock. Meta restarts a Conversion Leads integration's
//! learning when it starts receiving events in another dataset (pixel), so
//! the outbox remembers, per configured dataset name, the dataset ID it was
//! first used with; `import`, `send`, `sync` and `serve` refuse a
//! configuration that names another ID for it, until `leadsignal dataset
//! rebind` records the change as deliberate.

use crate::config::Config;
use leadsignal_store::Enqueue;

/// Checks (binding on first use) that dataset `name` is still `dataset_id`.
pub(crate) fn check(
    name: &str,
    dataset_id: Option<&str>,
    store: &mut dyn Enqueue,
    now: i64,
) -> anyhow::Result<()> {
    let Some(id) = dataset_id else {
        return Ok(());
    };
    let bound = store.bind_dataset(name, id, now)?;
    if bound.dataset_id != id {
        anyhow::bail!(
            "dataset {name} is bound to dataset ID {} (since {}), but the configuration now names {id}: \
             Meta restarts learning when an integration moves to another dataset, so nothing is \
             imported, sent or served for it. If the change is deliberate, run: \
             leadsignal dataset rebind {name} --to {id} --confirm",
            bound.dataset_id,
            crate::report::utc(bound.bound_at),
        );
    }
    Ok(())
}

/// [`check`] for every configured dataset.
pub(crate) fn check_all(cfg: &Config, store: &mut dyn Enqueue, now: i64) -> anyhow::Result<()> {
    for (name, c) in cfg.all_datasets()? {
        check(&name, c.meta.dataset_id.as_deref(), store, now)?;
    }
    Ok(())
}

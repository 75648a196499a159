//! `leadsignal dataset rebind NAME --to ID --confirm`: moves a dataset
//! name to another dataset (pixel) ID deliberately (see `lock.rs`).

use crate::config::Config;
use std::path::Path;
use std::process::ExitCode;

/// Manage the dataset lock.
#[derive(clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand)]
enum What {
    /// Bind a dataset name to another dataset ID. Meta restarts learning on
    /// a new dataset: do this only when moving the integration on purpose.
    Rebind {
        /// The dataset's name (`default` for `[meta]`'s).
        name: String,
        /// The new dataset (pixel) ID.
        #[arg(long, value_name = "ID")]
        to: String,
        /// Confirms that the move is deliberate.
        #[arg(long)]
        confirm: bool,
    },
}

/// Runs it.
pub(crate) fn run(config: Option<&Path>, a: Args) -> anyhow::Result<ExitCode> {
    let (cfg, _) = Config::load(config)?;
    let What::Rebind { name, to, confirm } = a.what;
    anyhow::ensure!(
        to.len() >= 5 && to.chars().all(|c| c.is_ascii_digit()),
        "--to {to:?} is not a dataset ID (digits, as Events Manager shows it)"
    );
    anyhow::ensure!(
        confirm,
        "moving dataset {name} to {to} restarts Meta's learning for this integration; add --confirm to do it"
    );
    let mut store = leadsignal_store::open(&cfg.store.url)?;
    let now = crate::clock::unix_now();
    match store.rebind_dataset(&name, &to, now)? {
        Some(before) if before.dataset_id == to => {
            println!("dataset {name} is already bound to {to}");
        }
        Some(before) => println!(
            "dataset {name}: {} -> {to} (recorded {}); set the same ID in the configuration",
            before.dataset_id,
            crate::report::utc(now)
        ),
        None => println!(
            "dataset {name} bound to {to} (recorded {})",
            crate::report::utc(now)
        ),
    }
    Ok(ExitCode::SUCCESS)
}

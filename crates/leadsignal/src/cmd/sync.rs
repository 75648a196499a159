//! `leadsignal sync`: import the configured sources, then send. The job a
//! cron runs (Meta asks for uploads at least once a day).

use crate::config::Config;
use leadsignal_deliver::send_due;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Import every file of [import] files (files, or folders of .csv/.jsonl
/// exports), then deliver everything due to Meta. Importing the same
/// export again adds nothing, so the folder can keep old exports. Exit
/// status: the worse of import (1: rejected rows or unreadable files) and
/// send (1: rejected by Meta; 3: delivery paused).
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Files or folders to import instead of [import] files.
    files: Vec<PathBuf>,
    /// Print one JSON object {"import": ..., "send": ...}.
    #[arg(long)]
    json: bool,
    /// The dataset to import into and deliver (`default`: `[meta]`'s;
    /// others by their `[[datasets]]` name).
    #[arg(long, value_name = "NAME")]
    dataset: Option<String>,
}

/// The files named by `entries`: files as they are, folders expanded to
/// their CSV and JSONL files in name order.
pub(crate) fn expand(entries: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in entries {
        if e.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(e)
                .map_err(|err| anyhow::anyhow!("cannot read folder {}: {err}", e.display()))?
                .filter_map(|d| d.ok().map(|d| d.path()))
                .filter(|p| {
                    p.is_file()
                        && p.extension().and_then(|x| x.to_str()).is_some_and(|x| {
                            matches!(x.to_ascii_lowercase().as_str(), "csv" | "jsonl" | "ndjson")
                        })
                })
                .collect();
            files.sort();
            out.extend(files);
        } else {
            out.push(e.clone());
        }
    }
    Ok(out)
}

pub(crate) fn run(config: Option<&Path>, a: Args) -> anyhow::Result<ExitCode> {
    let (cfg, _) = Config::load(config)?;
    let cfg = cfg.for_dataset(a.dataset.as_deref())?;
    let entries = if a.files.is_empty() {
        cfg.import.files.clone()
    } else {
        a.files.clone()
    };
    anyhow::ensure!(
        !entries.is_empty() || !cfg.sources.is_empty(),
        "nothing to import: set [import] files = [\"exports/\"], add [[sources]], or name files: leadsignal sync <file or folder>..."
    );
    let files = expand(&entries)?;
    let pc = cfg.prepare_config_for_outbox()?;
    let mapping = cfg.mapping(None)?;
    let sc = cfg.sender_config()?;
    let client = cfg.graph_client()?;
    let mut store = leadsignal_store::open(&cfg.store.url)?;
    crate::lock::check_all(&cfg, &mut *store, crate::clock::unix_now())?;
    let now = crate::clock::now_or(None);
    let imported = leadsignal_intake::import_files(
        &files,
        &mapping,
        &pc,
        cfg.funnel.missing_stages,
        &mut *store,
        now,
        |_| {},
        |_| {},
    )?;
    let polled = cfg
        .sources
        .iter()
        .map(|source| {
            crate::polling::poll(source, &pc, cfg.funnel.missing_stages, &mut *store, now)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let sent = runtime.block_on(send_due(&mut *store, &client, &sc, |_| {}))?;
    let _ = store.expire_due(now);
    if a.json {
        println!(
            "{}",
            serde_json::json!({"import": imported, "sources": polled, "send": sent})
        );
    } else {
        if !files.is_empty() {
            println!("import: {}", crate::summary::import_text(&imported));
        }
        for p in &polled {
            println!(
                "source {}: {} rows read, {} accepted, {} already known, {} inferred, {} rejected; cursor {}",
                p.source,
                p.rows,
                p.store.accepted,
                p.store.already_known,
                p.store.inferred,
                p.store.rejected,
                p.cursor.as_deref().unwrap_or("-")
            );
        }
        print!(
            "send: {}",
            crate::summary::send_text(&sent, &client.events_url(&sc.dataset_id))
        );
    }
    let import_bad = imported.store.rejected > 0
        || !imported.unreadable_files.is_empty()
        || polled.iter().any(|p| p.store.rejected > 0);
    let send_code = crate::summary::send_exit_code(&sent);
    Ok(
        if sent.paused.is_some() || sent.rejected + sent.expired > 0 {
            send_code
        } else if import_bad {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        },
    )
}

//! The dataset lock through the CLI: a dataset name keeps the dataset ID it
//! was first used with; another ID in the configuration is refused by
//! `import`, `send` and `sync` (exit 2, both IDs and the command that
//! changes it named) until `leadsignal dataset rebind ... --confirm`.

use std::path::Path;
use std::process::{Command, Output};

const FIRST: &str = "2780431635496611";
const SECOND: &str = "1122334455667788";
const NOW: &str = "1795262400";

fn write_config(dir: &Path, dataset: &str) {
    std::fs::write(
        dir.join("leadsignal.toml"),
        format!(
            "[meta]\ndataset_id = \"{dataset}\"\naccess_token = \"EAAlock-test\"\ngraph_url = \"http://127.0.0.1:9\"\n\
             [crm]\nname = \"HubSpot\"\n[normalize]\ndefault_country = \"US\"\n[store]\nurl = \"sqlite://{}\"\n",
            dir.join("outbox.db").display()
        ),
    )
    .unwrap();
}

fn run(dir: &Path, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_leadsignal"));
    for (k, _) in std::env::vars() {
        if k.starts_with("LEADSIGNAL_") {
            c.env_remove(k);
        }
    }
    c.current_dir(dir).args(args).output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn another_dataset_id_is_refused_until_rebound_on_purpose() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("leads.csv"),
        "lead_id,stage,changed_at,email\n1234567890123456,new,1795258800,ann@example.com\n",
    )
    .unwrap();
    write_config(d, FIRST);
    let o = run(d, &["import", "leads.csv", "--now", NOW]);
    assert!(o.status.success(), "{}", text(&o));

    // The configuration moves to another dataset: refused everywhere.
    write_config(d, SECOND);
    for args in [
        vec!["import", "leads.csv", "--now", NOW],
        vec!["send"],
        vec!["sync", "leads.csv"],
    ] {
        let o = run(d, &args);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {t}");
        assert!(
            t.contains(&format!("dataset default is bound to dataset ID {FIRST}"))
                && t.contains(&format!("configuration now names {SECOND}"))
                && t.contains(&format!(
                    "leadsignal dataset rebind default --to {SECOND} --confirm"
                )),
            "{args:?}: {t}"
        );
    }

    // Not without --confirm; then deliberately.
    let o = run(d, &["dataset", "rebind", "default", "--to", SECOND]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("--confirm"), "{}", text(&o));
    let o = run(
        d,
        &[
            "dataset",
            "rebind",
            "default",
            "--to",
            "not-an-id",
            "--confirm",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    let o = run(
        d,
        &["dataset", "rebind", "default", "--to", SECOND, "--confirm"],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("{FIRST} -> {SECOND}")),
        "{}",
        text(&o)
    );
    let o = run(d, &["import", "leads.csv", "--now", NOW]);
    assert!(o.status.success(), "{}", text(&o));

    // The old ID is now the refused one.
    write_config(d, FIRST);
    let o = run(d, &["import", "leads.csv", "--now", NOW]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let db = rusqlite::Connection::open(d.join("outbox.db")).unwrap();
    let (id, previous): (String, String) = db
        .query_row(
            "SELECT dataset_id, previous_id FROM dataset_bindings WHERE name = 'default'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((id.as_str(), previous.as_str()), (SECOND, FIRST));
}

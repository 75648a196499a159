//! `leadsignal doctor` against the sandbox over HTTP on 127.0.0.1: a good
//! token, a revoked one, a dataset the token cannot use, a store that is
//! down, webhook settings that cannot work; exit 0, 1 or 2 and a line that
//! names the fix, never the token.

use leadsignal_sandbox::{self as sandbox, SandboxConfig};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

const DATASET: &str = "2780431635496611";
const TOKEN: &str = "EAAdoctor-token-secret";

fn config(dir: &Path, graph: &str, dataset: &str, store: &str, extra: &str) {
    std::fs::write(
        dir.join("leadsignal.toml"),
        format!(
            "[meta]\ndataset_id = \"{dataset}\"\naccess_token = \"env:DOCTOR_TOKEN\"\ngraph_url = \"{graph}\"\n\
             [crm]\nname = \"HubSpot\"\n[normalize]\ndefault_country = \"US\"\n[store]\nurl = \"{store}\"\n{extra}"
        ),
    )
    .unwrap();
}

async fn doctor(dir: &Path) -> (i32, String, Value) {
    let d = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let run = |json: bool| -> Output {
            let mut c = Command::new(env!("CARGO_BIN_EXE_leadsignal"));
            for (k, _) in std::env::vars() {
                if k.starts_with("LEADSIGNAL_") {
                    c.env_remove(k);
                }
            }
            c.current_dir(&d).env("DOCTOR_TOKEN", TOKEN).arg("doctor");
            if json {
                c.arg("--json");
            }
            c.output().unwrap()
        };
        let text = run(false);
        let out = format!(
            "{}{}",
            String::from_utf8_lossy(&text.stdout),
            String::from_utf8_lossy(&text.stderr)
        );
        assert!(!out.contains(TOKEN), "the token was printed: {out}");
        let json = run(true);
        let v: Value = serde_json::from_slice(&json.stdout).unwrap();
        (text.status.code().unwrap_or(-1), out, v)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_names_what_is_wrong_and_the_fix() {
    let sb = sandbox::start(SandboxConfig::single(DATASET, TOKEN))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let store = format!("sqlite://{}", d.join("outbox.db").display());

    // All good, except that there is no outbox yet: a warning.
    config(d, &sb.url(), DATASET, &store, "");
    let (code, out, v) = doctor(d).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("ok   dataset default") && out.contains(&format!("dataset {DATASET}")),
        "{out}"
    );
    assert!(
        out.contains("WARN store") && out.contains("creates it"),
        "{out}"
    );
    assert!(out.contains("ok   clock"), "{out}");
    assert_eq!(v["verdict"], "warn");
    std::fs::File::create(d.join("outbox.db")).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_leadsignal"))
        .current_dir(d)
        .env("DOCTOR_TOKEN", TOKEN)
        .args(["status"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (code, out, _) = doctor(d).await;
    assert_eq!(code, 0, "{out}");

    // A dataset the token cannot use.
    config(d, &sb.url(), "1122334455667788", &store, "");
    let (code, out, v) = doctor(d).await;
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("FAIL dataset default")
            && out.contains("code 100, subcode 33")
            && out.contains("check [meta] dataset_id"),
        "{out}"
    );
    assert_eq!(v["verdict"], "fail");

    // A revoked token.
    config(d, &sb.url(), DATASET, &store, "");
    sb.revoke_token(DATASET);
    let (code, out, _) = doctor(d).await;
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("code 190") && out.contains("generate a new one"),
        "{out}"
    );

    // A store that is down, and a webhook that could not be verified.
    config(
        d,
        &sb.url(),
        DATASET,
        "postgres://postgres@127.0.0.1:1/none",
        "[server]\napi_token = \"x\"\nwebhook_verify_token = \"verify-me\"\n",
    );
    let (code, out, _) = doctor(d).await;
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("FAIL store") && out.contains("check [store] url"),
        "{out}"
    );
    assert!(
        out.contains("FAIL webhook") && out.contains("app_secret"),
        "{out}"
    );

    // Graph's clock five minutes ahead: event times would be off.
    let mut skewed = SandboxConfig::single(DATASET, TOKEN);
    skewed.faults.clock_offset_secs = 300;
    let sb2 = sandbox::start(skewed).await.unwrap();
    config(d, &sb2.url(), DATASET, &store, "");
    let (code, out, _) = doctor(d).await;
    assert_eq!(code, 1, "{out}");
    let about_300 = ["-299", "-300", "-301"]
        .iter()
        .any(|n| out.contains(&format!("clock is {n} s off Graph's")));
    assert!(out.contains("WARN clock") && about_300, "{out}");

    // A CRM source: reachable with its token, or named with the fix.
    let hub = leadsignal_sandbox::crm::start_hubspot(leadsignal_sandbox::crm::HubspotConfig::new(
        "pat-na1-doctor",
    ))
    .await
    .unwrap();
    for (token, verdict) in [
        ("pat-na1-doctor", "ok   source hubspot"),
        ("pat-na1-old", "FAIL source hubspot"),
    ] {
        config(
            d,
            &sb.url(),
            DATASET,
            &store,
            &format!(
                "[[sources]]\nname = \"hubspot\"\nkind = \"hubspot\"\nbase_url = \"{}\"\ntoken = \"{token}\"\n",
                hub.url()
            ),
        );
        let (_, out, _) = doctor(d).await;
        assert!(out.contains(verdict), "{out}");
        if token == "pat-na1-old" {
            assert!(
                out.contains("crm.objects.contacts.read") && !out.contains("pat-na1-old"),
                "{out}"
            );
        }
    }
}

//! What the `serve` tests share: a sandbox standing in for Meta and a
//! `leadsignal serve` process on a free port of 127.0.0.1.
#![allow(dead_code)]

use leadsignal_sandbox::{self as sandbox, SandboxConfig, SandboxHandle};
use serde_json::Value;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const DATASET: &str = "2780431635496611";
pub const TOKEN: &str = "EAAserve-token-5ecret";
pub const APP_SECRET: &str = "app-5ecret-for-webhooks";
pub const API_TOKEN: &str = "api-t0ken-for-tests";
pub const VERIFY: &str = "verify-me";
pub const LEAD: u64 = 1_234_567_890_123_456;

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Serve {
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    pub base: String,
    pub http: reqwest::Client,
}

impl Serve {
    pub async fn start(sb: &SandboxHandle, extra: &str) -> Serve {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let cfg = format!(
            "[meta]\ndataset_id = \"{DATASET}\"\naccess_token = \"env:TEST_META_TOKEN\"\napp_secret = \"env:TEST_APP_SECRET\"\ngraph_url = \"{}\"\n\
             [crm]\nname = \"HubSpot\"\n[normalize]\ndefault_country = \"US\"\n[store]\nurl = \"sqlite://{}\"\n\
             [delivery]\nbatch_size = 50\nin_flight = 2\nretry_base_ms = 100\nretry_max_secs = 1\n\
             [server]\nlisten = \"127.0.0.1:{port}\"\napi_token = \"env:TEST_API_TOKEN\"\nwebhook_verify_token = \"{VERIFY}\"\nflush_interval_ms = 100\n{extra}",
            sb.url(),
            dir.path().join("outbox.db").display(),
        );
        std::fs::write(dir.path().join("leadsignal.toml"), cfg).unwrap();
        let log = std::fs::File::create(dir.path().join("serve.log")).unwrap();
        let mut c = Command::new(env!("CARGO_BIN_EXE_leadsignal"));
        for (k, _) in std::env::vars() {
            if k.starts_with("LEADSIGNAL_") {
                c.env_remove(k);
            }
        }
        let child = c
            .current_dir(dir.path())
            .arg("serve")
            .env("TEST_META_TOKEN", TOKEN)
            .env("TEST_APP_SECRET", APP_SECRET)
            .env("TEST_API_TOKEN", API_TOKEN)
            .env("LEADSIGNAL_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let s = Serve {
            dir,
            child: Some(child),
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        };
        let t0 = Instant::now();
        while s.http.get(s.url("/healthz")).send().await.is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "serve did not start: {}",
                s.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        s
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
    }

    pub async fn post(&self, path: &str, body: &str) -> (u16, Value) {
        let r = self
            .http
            .post(self.url(path))
            .bearer_auth(API_TOKEN)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let code = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            code,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn get(&self, path: &str, auth: bool) -> (u16, String) {
        let mut r = self.http.get(self.url(path));
        if auth {
            r = r.bearer_auth(API_TOKEN);
        }
        let r = r.send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        let t0 = Instant::now();
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return st;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "serve did not stop: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.dir.path().join("outbox.db")).unwrap()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub async fn sandbox() -> SandboxHandle {
    let mut cfg = SandboxConfig::single(DATASET, TOKEN);
    cfg.datasets[0].app_secret = Some(APP_SECRET.into());
    sandbox::start(cfg).await.unwrap()
}

pub async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

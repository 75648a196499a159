//! `leadsignal.toml`, with every value overridable by an environment
//! variable: `LEADSIGNAL_META__DATASET_ID` sets `[meta] dataset_id`.

use crate::secret::Secret;
use anyhow::{bail, Context as _};
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use leadsignal_core::{
    CountryCode, DateOrder, Funnel, NormalizeOptions, PrepareConfig, Profile, StageSpec, TimeRules,
};
use leadsignal_deliver::{RetryPolicy, SenderConfig};
use leadsignal_graph::Credentials;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    /// The `[meta]` section (every key is in the README).
    #[serde(default)]
    pub(crate) meta: MetaConfig,
    /// The `[crm]` section (every key is in the README).
    #[serde(default)]
    pub(crate) crm: CrmConfig,
    /// The `[normalize]` section (every key is in the README).
    #[serde(default)]
    pub(crate) normalize: NormalizeConfig,
    /// The `[funnel]` section (every key is in the README).
    #[serde(default)]
    pub(crate) funnel: FunnelConfig,
    /// The `[rules]` section (every key is in the README).
    #[serde(default)]
    pub(crate) rules: RulesConfig,
    /// `[import]`: how CSV exports map onto stage changes.
    #[serde(default)]
    pub(crate) import: ImportConfig,
    /// The `[store]` section (every key is in the README).
    #[serde(default)]
    pub(crate) store: StoreConfig,
    /// `[delivery]` (used by the sender).
    #[serde(default)]
    #[allow(dead_code)]
    pub(crate) delivery: DeliveryConfig,
    /// `[server]` (used by `serve`).
    #[serde(default)]
    pub(crate) server: ServerConfig,
    /// `[[sources]]`: CRM databases polled for stage changes.
    #[serde(default)]
    pub(crate) sources: Vec<SourceConfig>,
    /// `[[datasets]]`: more datasets beside `[meta]`'s, each with its own
    /// token, CRM name and funnel, sharing the store and everything else.
    #[serde(default)]
    pub(crate) datasets: Vec<DatasetConfig>,
}

/// One `[[datasets]]` entry: what differs from `[meta]`, `[crm]` and
/// `[funnel]` for another dataset of the same deployment.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DatasetConfig {
    /// Its name (`--dataset NAME`, `?dataset=NAME`).
    pub(crate) name: String,
    /// The CRM dataset (pixel) ID.
    pub(crate) dataset_id: String,
    /// Its Conversions API token (use `env:NAME`).
    pub(crate) access_token: Option<Secret>,
    /// Its app secret, if it differs from `[meta]`'s.
    pub(crate) app_secret: Option<Secret>,
    /// Its CRM name, if it differs from `[crm] name`.
    pub(crate) crm_name: Option<String>,
    /// Its funnel stages, if they differ from `[funnel] stages`.
    pub(crate) stages: Option<Vec<StageSpec>>,
    /// Its missing-stages policy, if it differs from `[funnel]`'s.
    pub(crate) missing_stages: Option<leadsignal_store::MissingStages>,
}

/// The name of `[meta]`'s dataset among `[[datasets]]`.
pub(crate) const DEFAULT_DATASET: &str = "default";

/// One `[[sources]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SourceConfig {
    /// Name: positions and the stored cursor use it (keep it stable).
    pub(crate) name: String,
    /// `sql` (a CRM database), `hubspot`, `salesforce` or `pipedrive` (their
    /// APIs).
    pub(crate) kind: SourceKind,
    /// `sql`: database URL (`sqlite:///path/crm.db`).
    pub(crate) url: Option<String>,
    /// `sql`: query using `:cursor`, ordered by the cursor column.
    pub(crate) query: Option<String>,
    /// `sql`: the result column with each row's cursor value.
    #[serde(default = "default_cursor_column")]
    pub(crate) cursor_column: String,
    /// `sql`: cursor before the first poll.
    #[serde(default = "default_initial_cursor")]
    pub(crate) initial_cursor: String,
    /// `sql`: record field → result column, for columns not named like the
    /// field.
    #[serde(default)]
    pub(crate) columns: std::collections::BTreeMap<String, String>,
    /// CRM APIs: the API's address (default: the CRM's own).
    pub(crate) base_url: Option<String>,
    /// CRM APIs: the access token (use `env:NAME`).
    pub(crate) token: Option<Secret>,
    /// `hubspot`: the property (of the contact, or the deal) holding Meta's
    /// lead ID.
    pub(crate) lead_id_property: Option<String>,
    /// `hubspot`: `contacts` (default) or `deals`.
    pub(crate) object: Option<String>,
    /// `salesforce`: where to log in (default `https://login.salesforce.com`).
    pub(crate) login_url: Option<String>,
    /// `salesforce`: the connected app's consumer key.
    pub(crate) client_id: Option<String>,
    /// `salesforce`: its consumer secret (use `env:NAME`).
    pub(crate) client_secret: Option<Secret>,
    /// `salesforce`: `["Lead"]` (default) or `["Lead", "Opportunity"]`
    /// (also the stage changes of opportunities converted from leads).
    pub(crate) objects: Option<Vec<String>>,
    /// `salesforce`: REST API version (default `v62.0`).
    pub(crate) api_version: Option<String>,
    /// `salesforce`: the Lead field holding Meta's lead ID (default
    /// `Meta_Lead_ID__c`); `pipedrive`: the deal field's key.
    pub(crate) lead_id_field: Option<String>,
    /// CRM APIs: how far back the first poll reads (days; Meta takes
    /// nothing older than 7).
    #[serde(default = "default_lookback_days")]
    pub(crate) initial_lookback_days: i64,
    /// How often `serve` polls it (seconds).
    #[serde(default = "default_poll_secs")]
    pub(crate) poll_secs: u64,
}

/// Kinds of polled sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum SourceKind {
    /// A SQL database.
    Sql,
    /// HubSpot contacts through the CRM API v3.
    Hubspot,
    /// Salesforce leads' status history through the REST API.
    Salesforce,
    /// Pipedrive deals' change logs through its API.
    Pipedrive,
}

fn default_cursor_column() -> String {
    "cursor".into()
}

fn default_initial_cursor() -> String {
    "0".into()
}

fn default_lookback_days() -> i64 {
    7
}

fn default_poll_secs() -> u64 {
    60
}

/// A configured source, ready to poll.
pub(crate) enum SourceReader {
    /// `kind = "sql"`.
    Sql(leadsignal_sources::sql::SqlSource),
    /// `kind = "hubspot"`.
    Hubspot(leadsignal_sources::crm::HubspotSource),
    /// `kind = "salesforce"`.
    Salesforce(leadsignal_sources::crm::SalesforceSource),
    /// `kind = "pipedrive"`.
    Pipedrive(leadsignal_sources::crm::PipedriveSource),
}

impl SourceConfig {
    /// The reader of this source; a missing key is an error naming it.
    pub(crate) fn reader(&self) -> anyhow::Result<SourceReader> {
        let name = &self.name;
        let need = |v: &Option<String>, key: &str, example: &str| {
            v.clone().ok_or_else(|| {
                anyhow::anyhow!(
                    "[[sources]] {name}: kind = \"{}\" needs {key} (e.g. {key} = {example})",
                    self.kind.as_str()
                )
            })
        };
        Ok(match self.kind {
            SourceKind::Sql => SourceReader::Sql(leadsignal_sources::sql::SqlSource {
                name: name.clone(),
                url: need(&self.url, "url", "\"sqlite:///path/crm.db\"")?,
                query: need(
                    &self.query,
                    "query",
                    "\"SELECT ... WHERE updated > :cursor ORDER BY updated\"",
                )?,
                cursor_column: self.cursor_column.clone(),
                columns: self.columns.clone(),
            }),
            SourceKind::Pipedrive => {
                let token = self
                    .token
                    .as_ref()
                    .map(|t| t.expose().to_string())
                    .filter(|t| !t.is_empty());
                let token = need(&token, "token", "\"env:PIPEDRIVE_TOKEN\"")?;
                let base = need(
                    &self.base_url,
                    "base_url",
                    "\"https://yourcompany.pipedrive.com\"",
                )?;
                SourceReader::Pipedrive(leadsignal_sources::crm::PipedriveSource::new(
                    name,
                    &base,
                    &token,
                    self.lead_id_field.clone(),
                ))
            }
            SourceKind::Hubspot => {
                let token = self
                    .token
                    .as_ref()
                    .map(|t| t.expose().to_string())
                    .filter(|t| !t.is_empty());
                let token = need(&token, "token", "\"env:HUBSPOT_TOKEN\"")?;
                use leadsignal_sources::crm::hubspot::HubspotObject;
                let object = match self.object.as_deref() {
                    None | Some("contacts") => HubspotObject::Contacts,
                    Some("deals") => HubspotObject::Deals,
                    Some(other) => anyhow::bail!(
                        "[[sources]] {name}: object = {other:?}: use \"contacts\" or \"deals\""
                    ),
                };
                SourceReader::Hubspot(
                    leadsignal_sources::crm::HubspotSource::new(
                        name,
                        self.base_url.as_deref().unwrap_or("https://api.hubapi.com"),
                        &token,
                        self.lead_id_property.clone(),
                    )
                    .reading(object),
                )
            }
            SourceKind::Salesforce => {
                let secret = self
                    .client_secret
                    .as_ref()
                    .map(|t| t.expose().to_string())
                    .filter(|t| !t.is_empty());
                let secret = need(&secret, "client_secret", "\"env:SALESFORCE_CLIENT_SECRET\"")?;
                let client_id = need(&self.client_id, "client_id", "\"3MVG9...\"")?;
                let objects = self.objects.clone().unwrap_or_else(|| vec!["Lead".into()]);
                if let Some(other) = objects
                    .iter()
                    .find(|o| !matches!(o.as_str(), "Lead" | "Opportunity"))
                {
                    anyhow::bail!(
                        "[[sources]] {name}: objects has {other:?}: use [\"Lead\"] or [\"Lead\", \"Opportunity\"]"
                    );
                }
                if !objects.iter().any(|o| o == "Lead") {
                    anyhow::bail!(
                        "[[sources]] {name}: objects must include \"Lead\" (leads carry Meta's lead ID; opportunities are read as their leads')"
                    );
                }
                let source = leadsignal_sources::crm::SalesforceSource::new(
                    name,
                    self.login_url
                        .as_deref()
                        .unwrap_or("https://login.salesforce.com"),
                    &client_id,
                    &secret,
                    self.api_version.as_deref().unwrap_or("v62.0"),
                    self.lead_id_field.as_deref().unwrap_or("Meta_Lead_ID__c"),
                );
                SourceReader::Salesforce(if objects.iter().any(|o| o == "Opportunity") {
                    source.with_opportunities()
                } else {
                    source
                })
            }
        })
    }

    /// Where a source's first poll starts: `initial_cursor` for a database,
    /// `initial_lookback_days` before `now` for a CRM API (in milliseconds,
    /// or seconds for Pipedrive, as each source's cursor counts).
    pub(crate) fn first_cursor(&self, now: i64) -> String {
        match self.kind {
            SourceKind::Sql => self.initial_cursor.clone(),
            SourceKind::Hubspot | SourceKind::Salesforce => {
                ((now - self.initial_lookback_days.max(0) * 86_400) * 1000).to_string()
            }
            SourceKind::Pipedrive => (now - self.initial_lookback_days.max(0) * 86_400).to_string(),
        }
    }
}

impl SourceKind {
    fn as_str(self) -> &'static str {
        match self {
            SourceKind::Sql => "sql",
            SourceKind::Hubspot => "hubspot",
            SourceKind::Salesforce => "salesforce",
            SourceKind::Pipedrive => "pipedrive",
        }
    }
}

/// `[meta]`: the dataset and how to reach Meta.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub(crate) struct MetaConfig {
    /// The CRM dataset (pixel) ID.
    pub(crate) dataset_id: Option<String>,
    /// Conversions API access token (use `env:NAME`).
    pub(crate) access_token: Option<Secret>,
    /// Graph API version, pinned.
    #[serde(default = "default_api_version")]
    pub(crate) api_version: String,
    /// Graph base URL (the sandbox's URL in tests and the demo).
    #[serde(default = "default_graph_url")]
    pub(crate) graph_url: String,
    /// App secret, for appsecret_proof and webhook signatures (use `env:NAME`).
    pub(crate) app_secret: Option<Secret>,
    /// Payload profile.
    #[serde(default)]
    pub(crate) profile: Profile,
    /// Platform identifier agreed with Meta, sent as `partner_agent`.
    pub(crate) partner_agent: Option<String>,
    /// `appsecret_proof` form when `app_secret` is set: `plain` (what Meta's
    /// SDKs send) or `timed` (with `appsecret_time`).
    #[serde(default)]
    pub(crate) appsecret_proof: leadsignal_graph::ProofMode,
}

impl Default for MetaConfig {
    fn default() -> Self {
        MetaConfig {
            dataset_id: None,
            access_token: None,
            api_version: default_api_version(),
            graph_url: default_graph_url(),
            app_secret: None,
            profile: Profile::default(),
            partner_agent: None,
            appsecret_proof: leadsignal_graph::ProofMode::default(),
        }
    }
}

fn default_api_version() -> String {
    "v23.0".into()
}
fn default_graph_url() -> String {
    "https://graph.facebook.com".into()
}

/// The `[crm]` section (every key is in the README).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CrmConfig {
    /// The CRM's name, sent as `custom_data.lead_event_source`.
    pub(crate) name: Option<String>,
}

/// The `[normalize]` section (every key is in the README).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NormalizeConfig {
    /// Country for national phone numbers without a country code.
    pub(crate) default_country: Option<CountryCode>,
    /// How to read an ambiguous date of birth like `02/03/1990`.
    #[serde(default)]
    pub(crate) date_order: DateOrder,
    /// More values that stand for "no data" (beside the built-in table).
    #[serde(default)]
    pub(crate) placeholders: Vec<String>,
}

/// The `[rules]` section (every key is in the README).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RulesConfig {
    /// Stop this long before Meta's 7-day limit.
    pub(crate) window_margin_seconds: i64,
    /// How far in the future `changed_at` may be.
    pub(crate) future_skew_seconds: i64,
    /// Keys of which an event needs at least one to be sent.
    pub(crate) match_keys: Vec<String>,
}

impl Default for RulesConfig {
    fn default() -> Self {
        let t = TimeRules::default();
        RulesConfig {
            window_margin_seconds: t.window_margin_seconds,
            future_skew_seconds: t.future_skew_seconds,
            match_keys: leadsignal_core::DEFAULT_MATCH_KEYS
                .iter()
                .map(|k| k.to_string())
                .collect(),
        }
    }
}

/// What to do with a CRM stage that is in no funnel stage's list.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum UnknownStage {
    /// Reject the stage change with a violation (default).
    #[default]
    Reject,
    /// Send it under its CRM name with lifecycle `NOT_ASSIGNED`.
    NotAssigned,
}

/// The `[funnel]` section (every key is in the README).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FunnelConfig {
    /// Ordered stages; the first is the raw lead stage.
    #[serde(default = "Funnel::default_stages")]
    pub(crate) stages: Vec<StageSpec>,
    /// Unknown CRM stages: `reject` or `not_assigned`.
    #[serde(default)]
    pub(crate) unknown_stage: UnknownStage,
    /// A stage change whose earlier stages were never seen: `fill`, `hold` or `reject`.
    #[serde(default)]
    pub(crate) missing_stages: leadsignal_store::MissingStages,
}

impl Default for FunnelConfig {
    fn default() -> Self {
        FunnelConfig {
            stages: Funnel::default_stages(),
            unknown_stage: UnknownStage::Reject,
            missing_stages: leadsignal_store::MissingStages::default(),
        }
    }
}

/// The `[import]` section (every key is in the README).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ImportConfig {
    /// A CRM preset: hubspot, salesforce, zoho, pipedrive, dynamics, meta-lead-ads.
    pub(crate) preset: Option<String>,
    /// IANA time zone of date-times written without an offset.
    pub(crate) time_zone: Option<String>,
    /// Column holding each row's time zone.
    pub(crate) time_zone_column: Option<String>,
    /// Record field = "CSV header" or ["header", "other header"] (the first
    /// present wins), overriding or adding to the preset.
    #[serde(default)]
    pub(crate) columns: std::collections::BTreeMap<String, Headers>,
    /// The files' text encoding: `auto` (BOM, else UTF-8 when valid, else
    /// Windows-1252) or a WHATWG label such as `windows-1252`, `utf-16le`.
    pub(crate) encoding: Option<String>,
    /// "CSV header" = "CRM stage": one stage change per non-empty date.
    #[serde(default)]
    pub(crate) stage_dates: std::collections::BTreeMap<String, String>,
    /// Extra date-time formats (chrono syntax, e.g. "%d.%m.%Y %H:%M").
    #[serde(default)]
    pub(crate) formats: Vec<String>,
    /// What `leadsignal sync` imports: files, or folders whose .csv, .jsonl
    /// and .ndjson files are read in name order. Relative to the working
    /// directory.
    #[serde(default)]
    pub(crate) files: Vec<PathBuf>,
}

/// One header or candidate headers (`import.columns`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum Headers {
    /// One header.
    One(String),
    /// Candidates, the first present wins.
    Many(Vec<String>),
}

impl Headers {
    fn list(&self) -> Vec<String> {
        match self {
            Headers::One(h) => vec![h.clone()],
            Headers::Many(v) => v.clone(),
        }
    }
}

/// The `[store]` section (every key is in the README).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StoreConfig {
    /// `sqlite://leadsignal.db` or `postgres://...`.
    pub(crate) url: String,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: "sqlite://leadsignal.db".into(),
        }
    }
}

/// The `[delivery]` section (every key is in the README).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct DeliveryConfig {
    /// Events per request (Meta allows 1000).
    pub(crate) batch_size: usize,
    /// Requests in flight per dataset.
    pub(crate) in_flight: usize,
    /// Request timeout (milliseconds).
    pub(crate) timeout_ms: u64,
    /// First retry wait (milliseconds); doubles per attempt, with jitter.
    pub(crate) retry_base_ms: u64,
    /// Longest retry wait (seconds).
    pub(crate) retry_max_secs: u64,
    /// How long `send` waits for scheduled retries before leaving them to
    /// the next run (seconds).
    pub(crate) max_wait_secs: u64,
    /// Lease of claimed entries (seconds, at least 5): longer than a request
    /// with its bisection steps takes; a crashed run's entries come back
    /// after it.
    pub(crate) lease_secs: i64,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        let retry = RetryPolicy::default();
        DeliveryConfig {
            batch_size: leadsignal_deliver::DEFAULT_BATCH_SIZE,
            in_flight: leadsignal_deliver::DEFAULT_IN_FLIGHT,
            timeout_ms: 10_000,
            retry_base_ms: retry.base.as_millis() as u64,
            retry_max_secs: retry.max.as_secs(),
            max_wait_secs: leadsignal_deliver::DEFAULT_MAX_WAIT_SECS,
            lease_secs: leadsignal_deliver::DEFAULT_LEASE_SECS,
        }
    }
}

impl DeliveryConfig {
    /// The sender's settings for one dataset from this `[delivery]` section
    /// (the one way configuration reaches the sender).
    pub(crate) fn sender_config(&self, dataset_id: &str, creds: Credentials) -> SenderConfig {
        SenderConfig {
            batch_size: self.batch_size,
            in_flight: self.in_flight.max(1),
            lease_secs: self.lease_secs.max(5),
            retry: RetryPolicy {
                base: Duration::from_millis(self.retry_base_ms.max(1)),
                max: Duration::from_secs(self.retry_max_secs.max(1)),
            },
            max_wait: Duration::from_secs(self.max_wait_secs),
            ..SenderConfig::new(dataset_id, creds)
        }
    }
}

impl Config {
    /// This configuration as seen by dataset `name` (`[[datasets]]`): its
    /// dataset ID, token, app secret, CRM name and funnel in `[meta]`,
    /// `[crm]` and `[funnel]`. `None` or `"default"` is `[meta]`'s dataset.
    pub(crate) fn for_dataset(&self, name: Option<&str>) -> anyhow::Result<Config> {
        let Some(name) = name.filter(|n| *n != DEFAULT_DATASET) else {
            return Ok(self.clone());
        };
        let d = self
            .datasets
            .iter()
            .find(|d| d.name == name)
            .ok_or_else(|| {
                let known: Vec<&str> = std::iter::once(DEFAULT_DATASET)
                    .chain(self.datasets.iter().map(|d| d.name.as_str()))
                    .collect();
                anyhow::anyhow!(
                    "no dataset named {name:?} in [[datasets]] (known: {})",
                    known.join(", ")
                )
            })?;
        let mut c = self.clone();
        c.meta.dataset_id = Some(d.dataset_id.clone());
        c.meta.access_token = d.access_token.clone();
        if d.app_secret.is_some() {
            c.meta.app_secret = d.app_secret.clone();
        }
        if let Some(n) = &d.crm_name {
            c.crm.name = Some(n.clone());
        }
        if let Some(stages) = &d.stages {
            c.funnel.stages = stages.clone();
        }
        if let Some(m) = d.missing_stages {
            c.funnel.missing_stages = m;
        }
        c.datasets.clear();
        Ok(c)
    }

    /// Every dataset this deployment delivers to, by name: `[meta]`'s (when
    /// it names one) and each `[[datasets]]` entry.
    pub(crate) fn all_datasets(&self) -> anyhow::Result<Vec<(String, Config)>> {
        let mut out = Vec::new();
        if self.meta.dataset_id.is_some() || self.datasets.is_empty() {
            out.push((DEFAULT_DATASET.to_string(), self.for_dataset(None)?));
        }
        let mut seen = std::collections::HashSet::new();
        for d in &self.datasets {
            anyhow::ensure!(
                d.name != DEFAULT_DATASET && seen.insert(d.name.as_str()),
                "[[datasets]] name {:?} is used twice (or is \"default\", the name of [meta]'s dataset)",
                d.name
            );
            anyhow::ensure!(
                self.meta.dataset_id.as_deref() != Some(d.dataset_id.as_str())
                    && self
                        .datasets
                        .iter()
                        .filter(|o| o.dataset_id == d.dataset_id)
                        .count()
                        == 1,
                "dataset {} is configured twice",
                d.dataset_id
            );
            out.push((d.name.clone(), self.for_dataset(Some(&d.name))?));
        }
        Ok(out)
    }

    /// The dataset's credentials, or why they are missing.
    pub(crate) fn credentials(&self) -> anyhow::Result<leadsignal_graph::Credentials> {
        let token = self.meta.access_token.as_ref().ok_or_else(|| {
            anyhow::anyhow!("[meta] access_token is not set (use access_token = \"env:META_ACCESS_TOKEN\" or LEADSIGNAL_META__ACCESS_TOKEN)")
        })?;
        let c = leadsignal_graph::Credentials::new(token.expose());
        Ok(match &self.meta.app_secret {
            Some(s) => c.with_app_secret(s.expose(), self.meta.appsecret_proof),
            None => c,
        })
    }

    /// A Graph client for `[meta]` and `[delivery]`.
    pub(crate) fn graph_client(&self) -> anyhow::Result<leadsignal_graph::GraphClient> {
        Ok(leadsignal_graph::GraphClient::new(
            &leadsignal_graph::ClientConfig {
                graph_url: self.meta.graph_url.clone(),
                api_version: self.meta.api_version.clone(),
                timeout: std::time::Duration::from_millis(self.delivery.timeout_ms.max(1)),
            },
        )?)
    }

    /// The sender's settings.
    pub(crate) fn sender_config(&self) -> anyhow::Result<SenderConfig> {
        let dataset_id = self
            .meta
            .dataset_id
            .clone()
            .ok_or_else(|| anyhow::anyhow!("[meta] dataset_id is not set"))?;
        let d = &self.delivery;
        if !(1..=1000).contains(&d.batch_size) {
            anyhow::bail!(
                "[delivery] batch_size must be 1 to 1000 (Meta's limit), not {}",
                d.batch_size
            );
        }
        if d.in_flight == 0 {
            anyhow::bail!("[delivery] in_flight must be at least 1");
        }
        let mut sc = d.sender_config(&dataset_id, self.credentials()?);
        sc.partner_agent = self.meta.partner_agent.clone();
        Ok(sc)
    }
}

/// The `[server]` section (every key is in the README).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ServerConfig {
    /// Listen address.
    pub(crate) listen: String,
    /// Bearer token for `/v1/*` (use `env:NAME`); required by `serve`.
    pub(crate) api_token: Option<Secret>,
    /// Lead Ads webhook subscription token (use `env:NAME`).
    pub(crate) webhook_verify_token: Option<Secret>,
    /// The stage a lead announced by the Lead Ads webhook starts at (default:
    /// the funnel's first stage).
    pub(crate) webhook_stage: Option<String>,
    /// The HubSpot property holding the stage (`?format=hubspot`).
    pub(crate) hubspot_stage_property: String,
    /// The Salesforce field holding Meta's lead ID (`?format=salesforce`).
    pub(crate) salesforce_lead_id_field: String,
    /// Largest request body accepted (bytes).
    pub(crate) max_body_bytes: usize,
    /// How often the sender looks for due events (milliseconds).
    pub(crate) flush_interval_ms: u64,
    /// A folder whose CSV/JSONL files are imported, then moved to `done/`.
    pub(crate) inbox_dir: Option<PathBuf>,
    /// Show what the sandbox received at `/sandbox` (also on by itself when
    /// `graph_url` is a leadsignal sandbox on this machine).
    pub(crate) sandbox_page: bool,
    /// Fetch each webhook lead's form answers from Meta (`GET /{lead_id}`)
    /// and send its first event with them (hashed).
    pub(crate) fetch_leads: bool,
    /// How long a webhook lead's first event waits for its answers (s).
    pub(crate) fetch_hold_secs: i64,
    /// HubSpot app client secret: HubSpot webhooks are accepted with a valid
    /// `X-HubSpot-Signature-v3` instead of the bearer token (use `env:NAME`).
    pub(crate) hubspot_client_secret: Option<Secret>,
    /// The URL this server is reached at from outside (e.g.
    /// `https://leads.example.com`), for signatures over the request URI.
    pub(crate) public_url: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8787".into(),
            api_token: None,
            webhook_verify_token: None,
            webhook_stage: None,
            hubspot_stage_property: "lifecyclestage".into(),
            salesforce_lead_id_field: "Meta_Lead_ID__c".into(),
            max_body_bytes: 4 << 20,
            flush_interval_ms: 1000,
            inbox_dir: None,
            sandbox_page: false,
            fetch_leads: false,
            fetch_hold_secs: 30,
            hubspot_client_secret: None,
            public_url: None,
        }
    }
}

/// Where the configuration came from, for messages.
#[derive(Debug, Clone)]
pub(crate) enum ConfigSource {
    /// A file.
    File(PathBuf),
    /// No file: defaults and environment only.
    Defaults,
}

impl Config {
    /// Loads `path` (or `./leadsignal.toml` when it exists, or nothing), then
    /// applies `LEADSIGNAL_*` environment overrides.
    pub(crate) fn load(path: Option<&Path>) -> anyhow::Result<(Config, ConfigSource)> {
        let (figment, source) = match path {
            Some(p) => {
                if !p.exists() {
                    bail!("config file {} does not exist", p.display());
                }
                (
                    Figment::from(Toml::file(p)),
                    ConfigSource::File(p.to_path_buf()),
                )
            }
            None if Path::new("leadsignal.toml").exists() => (
                Figment::from(Toml::file("leadsignal.toml")),
                ConfigSource::File("leadsignal.toml".into()),
            ),
            None => (
                Figment::from(Serialized::defaults(serde_json::json!({}))),
                ConfigSource::Defaults,
            ),
        };
        // Only SECTION__KEY variables are configuration; others with the
        // prefix (LEADSIGNAL_LOG, LEADSIGNAL_SANDBOX_TOKEN) are not.
        let figment = figment.merge(
            Env::prefixed("LEADSIGNAL_")
                .filter(|k| k.as_str().contains("__"))
                .split("__"),
        );
        let config: Config = figment.extract().map_err(|e| {
            let place = match &source {
                ConfigSource::File(p) => p.display().to_string(),
                ConfigSource::Defaults => "the environment".into(),
            };
            anyhow::anyhow!("invalid configuration in {place}: {e}")
        })?;
        Ok((config, source))
    }

    /// Parses a configuration from TOML text (the demo's embedded config).
    pub(crate) fn from_toml(text: &str) -> anyhow::Result<Config> {
        Figment::from(Toml::string(text))
            .extract()
            .context("invalid embedded configuration")
    }

    /// The column mapping for CSV files: `preset` (a `--preset` flag) or
    /// `[import] preset`, then `[import]` overrides.
    pub(crate) fn mapping(
        &self,
        preset: Option<&str>,
    ) -> anyhow::Result<leadsignal_sources::Mapping> {
        use leadsignal_sources::{Mapping, PRESETS};
        let first_stage = self
            .funnel
            .stages
            .first()
            .map_or("Lead", |s| s.name.as_str());
        let mut m = match preset.or(self.import.preset.as_deref()) {
            Some(p) => Mapping::preset(p, first_stage).ok_or_else(|| {
                anyhow::anyhow!(
                    "unknown import preset {p:?}; presets: {}",
                    PRESETS.join(", ")
                )
            })?,
            None => Mapping::record_fields(),
        };
        let i = &self.import;
        if let Some(tz) = &i.time_zone {
            m.time_zone = Some(tz.parse().map_err(|_| {
                anyhow::anyhow!(
                    "[import] time_zone {tz:?} is not an IANA time zone such as Europe/Paris"
                )
            })?);
        }
        m.time_zone_column.clone_from(&i.time_zone_column);
        if let Some(label) = &i.encoding {
            m.encoding = leadsignal_sources::TextEncoding::from_label(label).ok_or_else(|| {
                anyhow::anyhow!(
                    "[import] encoding {label:?} is not an encoding: use \"auto\", \"utf-8\", \"utf-16le\", \"windows-1252\", \"iso-8859-15\" or another WHATWG label"
                )
            })?;
        }
        for (field, headers) in &i.columns {
            let field = leadsignal_core::record_fields()
                .iter()
                .copied()
                .find(|f| f == field)
                .ok_or_else(|| {
                    anyhow::anyhow!("[import.columns] {field:?} is not a record field")
                })?;
            m.set_columns(field, &headers.list());
        }
        for (header, stage) in &i.stage_dates {
            m.set_stage_date(header, stage);
        }
        m.formats.extend(i.formats.iter().cloned());
        m.date_order = self.normalize.date_order;
        m.funnel = Some(
            Funnel::new(
                self.funnel.stages.clone(),
                self.funnel.unknown_stage == UnknownStage::NotAssigned,
            )
            .context("invalid [funnel] configuration")?,
        );
        Ok(m)
    }

    /// Normalization options.
    pub(crate) fn normalize_options(&self) -> NormalizeOptions {
        NormalizeOptions {
            default_country: self.normalize.default_country,
            date_order: self.normalize.date_order,
        }
    }

    /// What `prepare` needs for commands that store events: the dataset and
    /// the CRM name must be set, since events are keyed by the first and
    /// invalid without the second.
    pub(crate) fn prepare_config_for_outbox(&self) -> anyhow::Result<PrepareConfig> {
        if self
            .meta
            .dataset_id
            .as_deref()
            .is_none_or(|d| d.trim().is_empty())
        {
            bail!("[meta] dataset_id is not set (or LEADSIGNAL_META__DATASET_ID): stored events are keyed by their dataset");
        }
        if self.crm.name.as_deref().is_none_or(|n| n.trim().is_empty()) {
            bail!("[crm] name is not set (or LEADSIGNAL_CRM__NAME): it is sent as custom_data.lead_event_source, without which Meta does not count the events");
        }
        self.prepare_config("unset")
    }

    /// What `prepare` needs. The dataset ID may be absent for offline checks
    /// (`validate`, `preview`): `dataset_placeholder` is used instead.
    pub(crate) fn prepare_config(
        &self,
        dataset_placeholder: &str,
    ) -> anyhow::Result<PrepareConfig> {
        let funnel = Funnel::new(
            self.funnel.stages.clone(),
            self.funnel.unknown_stage == UnknownStage::NotAssigned,
        )
        .context("invalid [funnel] configuration")?;
        Ok(PrepareConfig {
            dataset_id: self
                .meta
                .dataset_id
                .clone()
                .unwrap_or_else(|| dataset_placeholder.to_string()),
            lead_event_source: self.crm.name.as_deref().unwrap_or("").trim().into(),
            funnel,
            normalize: self.normalize_options(),
            time: TimeRules {
                window_margin_seconds: self.rules.window_margin_seconds,
                future_skew_seconds: self.rules.future_skew_seconds,
            },
            profile: self.meta.profile,
            identity: self.identity_rules()?,
        })
    }

    /// `rules.match_keys` and `normalize.placeholders`, checked.
    fn identity_rules(&self) -> anyhow::Result<leadsignal_core::IdentityRules> {
        let mut match_keys = 0;
        for k in &self.rules.match_keys {
            match_keys |= leadsignal_core::key_bit(k).ok_or_else(|| {
                anyhow::anyhow!(
                    "[rules] match_keys: {k:?} is not a key; use lead_id, em, ph, fbc, fbp, external_id, fn, ln, ct, st, zp, country, db or ge"
                )
            })?;
        }
        if match_keys == 0 {
            bail!("[rules] match_keys is empty: name at least one key an event must have (default: lead_id, em, ph, fbc)");
        }
        let mut placeholders = Vec::new();
        for p in &self.normalize.placeholders {
            placeholders.push(leadsignal_core::normalize::fold_placeholder(p).ok_or_else(|| {
                anyhow::anyhow!(
                    "[normalize] placeholders: {p:?} can never match (placeholders are compared as ASCII letters and digits, at most 16)"
                )
            })?);
        }
        Ok(leadsignal_core::IdentityRules {
            match_keys,
            placeholders: placeholders.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn design_sketch_loads() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        std::env::set_var("LS_TEST_TOKEN_1", "tok-123");
        write!(
            f,
            r#"
[meta]
dataset_id = "2780431635496611"
access_token = "env:LS_TEST_TOKEN_1"
api_version = "v23.0"
graph_url = "https://graph.facebook.com"

[crm]
name = "HubSpot"

[normalize]
default_country = "US"
date_order = "mdy"

[funnel]
stages = [
  {{ name = "Lead", meta = "LEAD", crm = ["new", "subscriber"] }},
  {{ name = "Marketing Qualified Lead", meta = "MARKETING_QUALIFIED_LEAD", crm = ["mql"] }},
  {{ name = "Sales Opportunity", meta = "SALES_OPPORTUNITY", crm = ["opportunity"] }},
  {{ name = "Converted", meta = "CONVERTED", crm = ["customer", "won"] }},
  {{ name = "Disqualified", meta = "DISQUALIFIED", crm = ["unqualified"], terminal = true }},
]

[store]
url = "sqlite://leadsignal.db"

[delivery]
batch_size = 500
in_flight = 4

[server]
listen = "127.0.0.1:8787"
"#
        )
        .unwrap();
        let (c, _) = Config::load(Some(f.path())).unwrap();
        assert_eq!(c.meta.access_token.as_ref().unwrap().expose(), "tok-123");
        assert_eq!(format!("{:?}", c.meta.access_token), "Some(Secret(***))");
        assert_eq!(c.normalize.default_country.unwrap().as_str(), "us");
        let pc = c.prepare_config("x").unwrap();
        assert_eq!(pc.funnel.stages().len(), 5);
        assert_eq!(&*pc.lead_event_source, "HubSpot");
    }

    #[test]
    fn typos_and_missing_env_are_clear_errors() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        write!(f, "[crm]\nnmae = \"x\"\n").unwrap();
        let e = Config::load(Some(f.path())).unwrap_err().to_string();
        assert!(e.contains("nmae"), "{e}");
        let mut f = tempfile::NamedTempFile::new().unwrap();
        write!(f, "[meta]\naccess_token = \"env:LS_TEST_SURELY_UNSET\"\n").unwrap();
        let e = Config::load(Some(f.path())).unwrap_err().to_string();
        assert!(
            e.contains("LS_TEST_SURELY_UNSET") && e.contains("not set"),
            "{e}"
        );
        let mut f = tempfile::NamedTempFile::new().unwrap();
        write!(f, "[normalize]\ndefault_country = \"Atlantis\"\n").unwrap();
        let e = Config::load(Some(f.path())).unwrap_err().to_string();
        assert!(e.contains("Atlantis"), "{e}");
        assert!(Config::load(Some(Path::new("/no/such.toml"))).is_err());
    }

    #[test]
    fn datasets_override_what_differs_and_nothing_else() {
        let load = |text: &str| {
            let mut f = tempfile::NamedTempFile::new().unwrap();
            write!(f, "{text}").unwrap();
            Config::load(Some(f.path())).map(|(c, _)| c)
        };
        let c = load(
            "[meta]\ndataset_id = \"1\"\naccess_token = \"ta\"\n[crm]\nname = \"HubSpot\"\n\
             [[datasets]]\nname = \"b\"\ndataset_id = \"2\"\naccess_token = \"tb\"\nmissing_stages = \"hold\"\n",
        )
        .unwrap();
        let all = c.all_datasets().unwrap();
        assert_eq!(all.len(), 2);
        let b = &all[1].1;
        assert_eq!(b.meta.dataset_id.as_deref(), Some("2"));
        assert_eq!(b.meta.access_token.as_ref().unwrap().expose(), "tb");
        assert_eq!(b.crm.name.as_deref(), Some("HubSpot"), "inherited");
        assert_eq!(
            b.funnel.missing_stages,
            leadsignal_store::MissingStages::Hold
        );
        assert_eq!(
            all[0].1.funnel.missing_stages,
            leadsignal_store::MissingStages::Fill
        );
        assert!(c
            .for_dataset(Some("zz"))
            .unwrap_err()
            .to_string()
            .contains("known: default, b"));
        let twice =
            load("[meta]\ndataset_id = \"1\"\n[[datasets]]\nname = \"b\"\ndataset_id = \"1\"\n")
                .unwrap();
        assert!(twice
            .all_datasets()
            .unwrap_err()
            .to_string()
            .contains("configured twice"));
        let named_default = load("[[datasets]]\nname = \"default\"\ndataset_id = \"5\"\n").unwrap();
        assert!(named_default.all_datasets().is_err());
    }
}

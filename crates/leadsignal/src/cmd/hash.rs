//! `leadsignal hash <field> <value>`

use crate::config::Config;
use anyhow::anyhow;
use leadsignal_core::{lookup_country, normalize, Context, Field, Normalized, Sha256};
use serde_json::json;
use std::path::Path;
use std::process::ExitCode;

/// Normalize and hash one contact value the way Meta requires.
#[derive(clap::Args)]
#[command(
    after_help = "Fields: em/email, ph/phone, fn/first_name, ln/last_name, ge/gender, \
db/date_of_birth, ct/city, st/state, zp/zip, country, external_id.\n\
Exit status: 0 when hashed, 1 when the value is dropped, 2 on usage errors."
)]
pub(crate) struct Args {
    /// Meta's key (em) or the record's field name (email).
    field: String,
    /// The raw value.
    value: String,
    /// The record's country (decides phone, state and postcode rules).
    #[arg(long)]
    country: Option<String>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// Unix time used for date-of-birth range checks (default: now).
    #[arg(long)]
    now: Option<i64>,
}

pub(crate) fn run(config: Option<&Path>, a: Args) -> anyhow::Result<ExitCode> {
    let field = Field::from_name(&a.field).ok_or_else(|| {
        anyhow!(
            "unknown field {:?}; use one of: {}",
            a.field,
            Field::ALL
                .map(|f| format!("{}/{}", f.meta_key(), f.record_name()))
                .join(", ")
        )
    })?;
    let (cfg, _) = Config::load(config)?;
    let record_country = match a.country.as_deref() {
        Some(c) => {
            Some(lookup_country(c).ok_or_else(|| anyhow!("--country {c:?} is not a country"))?)
        }
        None => None,
    };
    let ctx = Context::new(
        &cfg.normalize_options(),
        record_country,
        crate::clock::now_or(a.now),
    );
    let result = normalize(field, &a.value, &ctx);
    let (normalized, hash) = match &result {
        Ok(Normalized::Value(v)) => (Some(v.clone()), Some(Sha256::of(v))),
        Ok(Normalized::PreHashed(h)) => (None, Some(*h)),
        Err(_) => (None, None),
    };
    if a.json {
        let out = match &result {
            Ok(_) => json!({"field": field.meta_key(), "input": a.value, "normalized": normalized,
                            "hash": hash.map(|h| h.to_string())}),
            Err(d) => json!({"field": field.meta_key(), "input": a.value,
                             "dropped": {"rule": d.rule, "message": d.message}}),
        };
        println!("{out}");
    } else {
        match (&result, normalized, hash) {
            (Ok(_), Some(n), Some(h)) => println!("{}\t{n}\t{h}", field.meta_key()),
            (Ok(_), None, Some(h)) => println!("{}\t(already SHA-256)\t{h}", field.meta_key()),
            (Err(d), _, _) => println!("{}\tdropped: {} [{}]", field.meta_key(), d.message, d.rule),
            _ => unreachable!("hash exists whenever normalization succeeded"),
        }
    }
    Ok(if result.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

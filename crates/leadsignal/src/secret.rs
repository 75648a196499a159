//! Secrets (tokens, app secrets) that never print themselves.

use serde::{Deserialize, Deserializer};
use std::fmt;

/// A secret value from the config. `env:NAME` reads environment variable
/// `NAME` at load time, so the file need not hold the secret. Debug and
/// Display show `***`.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(String);

impl Secret {
    /// The secret itself, for the one place that sends it.
    #[allow(dead_code)] // used by the delivery commands
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        match raw.strip_prefix("env:") {
            Some(name) => std::env::var(name).map(Secret).map_err(|_| {
                serde::de::Error::custom(format!(
                    "environment variable {name} (named by \"env:{name}\") is not set"
                ))
            }),
            None => Ok(Secret(raw)),
        }
    }
}

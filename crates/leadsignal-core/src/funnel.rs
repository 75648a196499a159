//! The advertiser's sales funnel: ordered stages, the CRM stage names that
//! map onto each, and Meta's lifecycle category for each (the categories
//! of Meta's 2020 Lead Ads CRM document; ARCHITECTURE.md, "The default
//! funnel").

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// Meta's lifecycle categories (`facebook_lifecycle_stage_name`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Lifecycle {
    /// Person has provided contact info.
    Lead,
    /// Person has met minimum criteria for further engagement.
    MarketingQualifiedLead,
    /// Person is in the sales pipeline.
    SalesOpportunity,
    /// Person has become a customer.
    Converted,
    /// Person is not interested or not qualified.
    Disqualified,
    /// Person is not ready, or bought elsewhere.
    Lost,
    /// The stage is not mapped to a Meta lifecycle stage.
    NotAssigned,
}

impl Lifecycle {
    /// Meta's spelling (`MARKETING_QUALIFIED_LEAD`).
    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Lead => "LEAD",
            Lifecycle::MarketingQualifiedLead => "MARKETING_QUALIFIED_LEAD",
            Lifecycle::SalesOpportunity => "SALES_OPPORTUNITY",
            Lifecycle::Converted => "CONVERTED",
            Lifecycle::Disqualified => "DISQUALIFIED",
            Lifecycle::Lost => "LOST",
            Lifecycle::NotAssigned => "NOT_ASSIGNED",
        }
    }
}

impl fmt::Display for Lifecycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One configured stage (the `[[funnel.stages]]` entries).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageSpec {
    /// Sent as `event_name`. Keep it stable: renaming restarts Meta's learning.
    pub name: String,
    /// Meta lifecycle category.
    pub meta: Lifecycle,
    /// CRM stage names mapping to this stage (matched trimmed, case-insensitively).
    #[serde(default)]
    pub crm: Vec<String>,
    /// An outcome rather than a step (disqualified, lost): may follow any
    /// stage and needs only the raw-lead stage before it.
    #[serde(default)]
    pub terminal: bool,
}

/// Index of a stage in the funnel.
pub type StageIndex = usize;

/// Which stage a CRM stage name means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageRef<'a> {
    /// A configured stage.
    Known(StageIndex),
    /// A CRM stage outside the funnel, sent as-is with lifecycle `NOT_ASSIGNED`
    /// (only when the funnel is configured to allow it).
    Unmapped(&'a str),
}

/// Invalid funnel configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FunnelError {
    /// Meta needs the raw lead stage plus at least one more.
    #[error("the funnel has {0} stage(s); Meta needs at least two, including the raw lead stage (three or more recommended)")]
    TooFewStages(usize),
    /// The first stage is the raw lead stage; it cannot be an outcome.
    #[error("the first funnel stage ({0:?}) is the raw lead stage and cannot be terminal")]
    FirstTerminal(String),
    /// An empty stage name.
    #[error("funnel stage {0} has an empty name")]
    EmptyName(usize),
    /// Event names longer than Meta handles comfortably.
    #[error("funnel stage name {0:?} is longer than 50 characters")]
    NameTooLong(String),
    /// Two stages with one name.
    #[error("two funnel stages are named {0:?}")]
    DuplicateName(String),
    /// One CRM name mapped twice.
    #[error("CRM stage {crm:?} is mapped to both {first:?} and {second:?}")]
    DuplicateCrm {
        /// The CRM stage name.
        crm: String,
        /// First stage mapping it.
        first: String,
        /// Second stage mapping it.
        second: String,
    },
}

/// The ordered funnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Funnel {
    stages: Vec<StageSpec>,
    /// Trimmed stage names, shared by every event of the stage.
    names: Vec<Arc<str>>,
    /// (lowercased CRM name, stage index), for look-ups.
    crm_names: Vec<(String, StageIndex)>,
    /// Accept CRM stages outside the funnel as `NOT_ASSIGNED`.
    allow_unmapped: bool,
}

impl Funnel {
    /// Builds and checks a funnel. `allow_unmapped` sends unknown CRM stages
    /// under their own name with lifecycle `NOT_ASSIGNED` instead of rejecting them.
    pub fn new(stages: Vec<StageSpec>, allow_unmapped: bool) -> Result<Funnel, FunnelError> {
        if stages.len() < 2 {
            return Err(FunnelError::TooFewStages(stages.len()));
        }
        if stages[0].terminal {
            return Err(FunnelError::FirstTerminal(stages[0].name.clone()));
        }
        let mut crm_names: Vec<(String, StageIndex)> = Vec::new();
        for (i, s) in stages.iter().enumerate() {
            let name = s.name.trim();
            if name.is_empty() {
                return Err(FunnelError::EmptyName(i + 1));
            }
            if name.chars().count() > 50 {
                return Err(FunnelError::NameTooLong(s.name.clone()));
            }
            if stages[..i]
                .iter()
                .any(|o| o.name.trim().eq_ignore_ascii_case(name))
            {
                return Err(FunnelError::DuplicateName(s.name.clone()));
            }
            // A stage is always reachable by its own name too.
            for crm in s
                .crm
                .iter()
                .map(|c| c.as_str())
                .chain(std::iter::once(name))
            {
                let key = crm.trim().to_lowercase();
                match crm_names.iter().find(|(k, _)| *k == key) {
                    Some(&(_, j)) if j != i => {
                        return Err(FunnelError::DuplicateCrm {
                            crm: crm.to_string(),
                            first: stages[j].name.clone(),
                            second: s.name.clone(),
                        })
                    }
                    Some(_) => {}
                    None => crm_names.push((key, i)),
                }
            }
        }
        Ok(Funnel {
            names: stages.iter().map(|s| Arc::from(s.name.trim())).collect(),
            stages,
            crm_names,
            allow_unmapped,
        })
    }

    /// The default funnel (ARCHITECTURE.md): Lead → MQL → Opportunity → Converted, plus Disqualified.
    pub fn default_stages() -> Vec<StageSpec> {
        let s = |name: &str, meta, crm: &[&str], terminal| StageSpec {
            name: name.into(),
            meta,
            crm: crm.iter().map(|c| c.to_string()).collect(),
            terminal,
        };
        vec![
            s(
                "Lead",
                Lifecycle::Lead,
                &["new", "subscriber", "lead"],
                false,
            ),
            s(
                "Marketing Qualified Lead",
                Lifecycle::MarketingQualifiedLead,
                &["mql", "marketingqualifiedlead"],
                false,
            ),
            s(
                "Sales Opportunity",
                Lifecycle::SalesOpportunity,
                &["opportunity", "sql", "salesqualifiedlead"],
                false,
            ),
            s(
                "Converted",
                Lifecycle::Converted,
                &["customer", "won", "closed won"],
                false,
            ),
            s(
                "Disqualified",
                Lifecycle::Disqualified,
                &["unqualified", "disqualified"],
                true,
            ),
            s("Lost", Lifecycle::Lost, &["lost", "closed lost"], true),
        ]
    }

    /// The configured stages, in order.
    pub fn stages(&self) -> &[StageSpec] {
        &self.stages
    }

    /// The stage at `i`.
    pub fn stage(&self, i: StageIndex) -> &StageSpec {
        &self.stages[i]
    }

    /// The `event_name` of stage `i` (its trimmed name).
    pub fn event_name(&self, i: StageIndex) -> &Arc<str> {
        &self.names[i]
    }

    /// Whether unknown CRM stages are sent as `NOT_ASSIGNED`.
    pub fn allows_unmapped(&self) -> bool {
        self.allow_unmapped
    }

    /// Maps a CRM stage name (trimmed, case-insensitive). `None` when the
    /// stage is unknown and unmapped stages are not allowed.
    pub fn resolve<'a>(&self, crm_stage: &'a str) -> Option<StageRef<'a>> {
        let t = crm_stage.trim();
        let found = if t.is_ascii() {
            self.crm_names
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(t))
        } else {
            let lower = t.to_lowercase();
            self.crm_names.iter().find(|(k, _)| *k == lower)
        };
        match found {
            Some(&(_, i)) => Some(StageRef::Known(i)),
            None if self.allow_unmapped && !t.is_empty() => Some(StageRef::Unmapped(t)),
            None => None,
        }
    }

    /// The stages that must have been sent before `new` for this lead, given
    /// the stages already sent (in funnel order). A progression stage needs
    /// every earlier non-terminal stage; a terminal stage (and an unmapped
    /// one) needs only the raw-lead stage.
    pub fn missing_before(&self, sent: &[StageIndex], new: StageRef<'_>) -> Vec<StageIndex> {
        let needed: Vec<StageIndex> = match new {
            StageRef::Known(i) if !self.stages[i].terminal => {
                (0..i).filter(|&j| !self.stages[j].terminal).collect()
            }
            StageRef::Known(0) => Vec::new(),
            StageRef::Known(_) | StageRef::Unmapped(_) => vec![0],
        };
        needed.into_iter().filter(|j| !sent.contains(j)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn funnel() -> Funnel {
        Funnel::new(Funnel::default_stages(), false).unwrap()
    }

    #[test]
    fn resolves_crm_names_case_insensitively() {
        let f = funnel();
        assert_eq!(f.resolve(" MQL "), Some(StageRef::Known(1)));
        assert_eq!(f.resolve("Converted"), Some(StageRef::Known(3)));
        assert_eq!(f.resolve("closed won"), Some(StageRef::Known(3)));
        assert_eq!(f.resolve("nurture"), None);
        let open = Funnel::new(Funnel::default_stages(), true).unwrap();
        assert_eq!(open.resolve("nurture"), Some(StageRef::Unmapped("nurture")));
    }

    #[test]
    fn missing_stages() {
        let f = funnel();
        assert_eq!(
            f.missing_before(&[], StageRef::Known(0)),
            Vec::<usize>::new()
        );
        assert_eq!(f.missing_before(&[], StageRef::Known(3)), vec![0, 1, 2]);
        assert_eq!(f.missing_before(&[0, 2], StageRef::Known(3)), vec![1]);
        assert_eq!(
            f.missing_before(&[0, 1, 2], StageRef::Known(3)),
            Vec::<usize>::new()
        );
        // Terminal stages need only the raw lead.
        assert_eq!(f.missing_before(&[], StageRef::Known(4)), vec![0]);
        assert_eq!(
            f.missing_before(&[0], StageRef::Known(4)),
            Vec::<usize>::new()
        );
        assert_eq!(f.missing_before(&[], StageRef::Unmapped("x")), vec![0]);
    }

    #[test]
    fn rejects_bad_funnels() {
        let mut stages = Funnel::default_stages();
        assert!(matches!(
            Funnel::new(stages[..1].to_vec(), false),
            Err(FunnelError::TooFewStages(1))
        ));
        stages[1].crm.push("NEW".into());
        assert!(matches!(
            Funnel::new(stages.clone(), false),
            Err(FunnelError::DuplicateCrm { .. })
        ));
        let mut stages = Funnel::default_stages();
        stages.swap(0, 4);
        assert!(matches!(
            Funnel::new(stages, false),
            Err(FunnelError::FirstTerminal(_))
        ));
        let mut stages = Funnel::default_stages();
        stages[2].name = "lead".into();
        assert!(matches!(
            Funnel::new(stages, false),
            Err(FunnelError::DuplicateName(_))
        ));
    }
}

//! The sensitivity policy: which artifact may leave a partner at which sensitivity level, and
//! under which agreement. The only thing a transport sends is an [`Outbound`], and the only way
//! to build one is [`authorize`]; raw protocol text has no [`Artifact`] variant, so it cannot
//! be put into one:
//!
//! ```compile_fail
//! // An Outbound cannot be built from a String (or at all) outside the policy check.
//! let out = fl_tiers::policy::Outbound { artifact: "raw protocol text".to_string() };
//! ```
//!
//! The table, derived from the product text (levels 0 public, 1 anonymised, 2 outcomes,
//! 3 proprietary; tier 1 sends ProtocolSpec JSON, tier 2 feature vectors under a Data
//! Processing Agreement, tier 3 DP-noised securely aggregated updates under a federated
//! training agreement):
//!
//! | level | ProtocolSpec | FeatureVector | DP update |
//! |---|---|---|---|
//! | 0 public | yes | yes | with a training agreement |
//! | 1 anonymised | no ("feature vectors only") | with a DPA | with a training agreement |
//! | 2 outcomes | no | with a DPA or IRB agreement | with a training agreement and a DPA or IRB agreement |
//! | 3 proprietary | no ("never transmitted") | no | with a training agreement |

use serde::{Deserialize, Serialize};

use crate::features::FeatureVector;
use crate::spec::ProtocolSpec;
use crate::{Error, Result};

/// Data sensitivity levels of the product.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Sensitivity {
    /// 0: published protocols, no restrictions.
    Public = 0,
    /// 1: internal procedures without outcomes; feature vectors only.
    Anonymised = 1,
    /// 2: procedures with outcomes (efficiency); needs a DPA or IRB agreement.
    Outcomes = 2,
    /// 3: full IP; the protocol never leaves, only DP updates of a local model.
    Proprietary = 3,
}

impl Sensitivity {
    /// Parses `0`–`3`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] for anything else.
    pub fn from_level(level: u8) -> Result<Self> {
        Ok(match level {
            0 => Self::Public,
            1 => Self::Anonymised,
            2 => Self::Outcomes,
            3 => Self::Proprietary,
            _ => return Err(Error::param("sensitivity level", format!("{level} is not 0–3"))),
        })
    }

    /// The level number.
    #[must_use]
    pub fn level(self) -> u8 {
        self as u8
    }
}

/// Kinds of agreement a partner can hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AgreementKind {
    /// Data Processing Agreement.
    Dpa,
    /// Institutional Review Board approval.
    Irb,
    /// Tier-3 federated training agreement.
    FederatedTraining,
}

/// A recorded agreement: its kind and id (e.g. a contract number), kept with what it allowed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agreement {
    /// Kind.
    pub kind: AgreementKind,
    /// Identifier, 1–128 printable characters.
    pub id: String,
}

impl Agreement {
    /// A validated agreement record.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] for an empty, over-long or non-printable id.
    pub fn new(kind: AgreementKind, id: impl Into<String>) -> Result<Self> {
        let id = id.into();
        if id.is_empty() || id.len() > 128 || id.chars().any(char::is_control) {
            return Err(Error::param("agreement id", "1–128 printable characters"));
        }
        Ok(Self { kind, id })
    }
}

/// A tier-3 update as the policy sees it: the serialized, already clipped, noised and
/// (secure-aggregation) masked or encrypted payload and the DP guarantee it carries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DpUpdate {
    /// The payload bytes.
    pub payload: Vec<u8>,
    /// ε of the local mechanism.
    pub epsilon: f64,
    /// δ of the local mechanism.
    pub delta: f64,
}

/// What may be sent: structured artifacts only — there is no variant for text.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Artifact {
    /// Tier 1.
    Spec(ProtocolSpec),
    /// Tier 2.
    Features(FeatureVector),
    /// Tier 3.
    Update(DpUpdate),
}

impl Artifact {
    /// `ProtocolSpec`, `FeatureVector` or `DpUpdate`.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Spec(_) => "ProtocolSpec",
            Self::Features(_) => "FeatureVector",
            Self::Update(_) => "DpUpdate",
        }
    }

    fn validate(&self) -> Result<()> {
        match self {
            Self::Spec(s) => s
                .validate()
                .map_err(|reason| Error::InvalidArtifact { kind: "ProtocolSpec", reason }),
            Self::Features(f) => f.validate(),
            Self::Update(u) => {
                let ok =
                    u.epsilon.is_finite() && u.epsilon > 0.0 && u.delta >= 0.0 && u.delta < 1.0;
                if ok {
                    Ok(())
                } else {
                    Err(Error::InvalidArtifact {
                        kind: "DpUpdate",
                        reason: "needs finite ε > 0 and δ in [0, 1)".into(),
                    })
                }
            }
        }
    }
}

/// An artifact that passed the policy: the only value the transport sends. Its fields are
/// private and it has no constructor but [`authorize`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Outbound {
    artifact: Artifact,
    level: Sensitivity,
    agreements: Vec<Agreement>,
}

impl Outbound {
    /// The artifact.
    #[must_use]
    pub fn artifact(&self) -> &Artifact {
        &self.artifact
    }

    /// The sensitivity level it was authorized at.
    #[must_use]
    pub fn level(&self) -> Sensitivity {
        self.level
    }

    /// The agreements that allowed it (recorded with the submission).
    #[must_use]
    pub fn agreements(&self) -> &[Agreement] {
        &self.agreements
    }
}

/// The decision for one artifact kind at one level: `Ok(required agreements)` or the reason.
///
/// # Errors
///
/// [`Error::Refused`] with the rule.
pub fn rule(kind: &'static str, level: Sensitivity) -> Result<&'static [&'static [AgreementKind]]> {
    use AgreementKind::{Dpa, FederatedTraining, Irb};
    use Sensitivity::{Anonymised, Outcomes, Proprietary, Public};
    let refuse = |reason: &str| Error::Refused {
        artifact: kind,
        level: level.level(),
        reason: reason.into(),
    };
    // Each inner slice is "one of"; every slice must be satisfied.
    Ok(match (kind, level) {
        ("ProtocolSpec", Public) | ("FeatureVector", Public) => &[],
        ("ProtocolSpec", Anonymised) => {
            return Err(refuse("level 1 data leaves as feature vectors only"));
        }
        ("ProtocolSpec", Outcomes) => {
            return Err(refuse(
                "level 2 procedures with outcomes leave only as feature vectors or DP updates",
            ));
        }
        ("ProtocolSpec" | "FeatureVector", Proprietary) => {
            return Err(refuse(
                "level 3 data is never transmitted; only DP updates of a local model leave",
            ));
        }
        ("FeatureVector", Anonymised) => &[&[Dpa]],
        ("FeatureVector", Outcomes) => &[&[Dpa, Irb]],
        ("DpUpdate", Outcomes) => &[&[FederatedTraining], &[Dpa, Irb]],
        ("DpUpdate", _) => &[&[FederatedTraining]],
        _ => return Err(refuse("unknown artifact kind")),
    })
}

/// The policy check: returns the [`Outbound`] for `artifact` at `level` if the rule allows it
/// and `agreements` satisfy it (the ones used are recorded in it), after validating the
/// artifact itself.
///
/// # Errors
///
/// [`Error::Refused`] naming the rule or the missing agreement; [`Error::InvalidArtifact`].
pub fn authorize(
    artifact: Artifact,
    level: Sensitivity,
    agreements: &[Agreement],
) -> Result<Outbound> {
    let kind = artifact.kind();
    let required = rule(kind, level)?;
    artifact.validate()?;
    let mut used = Vec::new();
    for any_of in required {
        let Some(a) = agreements.iter().find(|a| any_of.contains(&a.kind)) else {
            return Err(Error::Refused {
                artifact: kind,
                level: level.level(),
                reason: format!("needs a recorded agreement of kind {any_of:?}"),
            });
        };
        used.push(a.clone());
    }
    Ok(Outbound { artifact, level, agreements: used })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test code")]
mod tests {
    use super::*;

    fn spec() -> ProtocolSpec {
        crate::spec::extract("T\nAdd 5 ml water.").unwrap()
    }

    #[test]
    fn the_table_is_enforced() {
        let dpa = Agreement::new(AgreementKind::Dpa, "DPA-2026-001").unwrap();
        let train = Agreement::new(AgreementKind::FederatedTraining, "FT-7").unwrap();
        let feats = || Artifact::Features(crate::features::features(&spec()));
        let update =
            || Artifact::Update(DpUpdate { payload: vec![1, 2], epsilon: 1.0, delta: 1e-5 });
        assert!(authorize(Artifact::Spec(spec()), Sensitivity::Public, &[]).is_ok());
        for level in [Sensitivity::Anonymised, Sensitivity::Outcomes, Sensitivity::Proprietary] {
            assert!(authorize(Artifact::Spec(spec()), level, std::slice::from_ref(&dpa)).is_err());
        }
        assert!(authorize(feats(), Sensitivity::Anonymised, &[]).is_err());
        let ok =
            authorize(feats(), Sensitivity::Anonymised, &[train.clone(), dpa.clone()]).unwrap();
        assert_eq!(ok.agreements(), std::slice::from_ref(&dpa));
        assert!(
            authorize(feats(), Sensitivity::Proprietary, &[dpa.clone(), train.clone()]).is_err()
        );
        assert!(authorize(update(), Sensitivity::Proprietary, &[]).is_err());
        assert!(
            authorize(update(), Sensitivity::Proprietary, std::slice::from_ref(&train)).is_ok()
        );
        assert!(authorize(update(), Sensitivity::Outcomes, std::slice::from_ref(&train)).is_err());
        assert!(authorize(update(), Sensitivity::Outcomes, &[train, dpa]).is_ok());
        assert!(Sensitivity::from_level(4).is_err());
        assert!(Agreement::new(AgreementKind::Irb, "").is_err());
    }

    #[test]
    fn invalid_artifacts_are_refused() {
        let mut s = spec();
        s.title_sha256 = "not hex".into();
        assert!(matches!(
            authorize(Artifact::Spec(s), Sensitivity::Public, &[]),
            Err(Error::InvalidArtifact { .. })
        ));
        let mut s = spec();
        s.steps[0].reagents.push("one two three four five six seven".into());
        assert!(authorize(Artifact::Spec(s), Sensitivity::Public, &[]).is_err());
    }
}

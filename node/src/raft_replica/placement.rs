//! Placement: whether the voters survive the loss of any one region, as CockroachDB's
//! "survival goals" ask. Five voters as 2-2-1 across three regions survive losing any one
//! region (three of five remain); 3-0-0 or 2-1 do not.
//!
//! The check applies only when the members span at least three regions: with one or two,
//! no voter set can survive a region's loss, and warning about it would only be noise.
//! `--placement` chooses what a membership change that breaks it does: `warn` (the
//! default) logs it and shows it in `GET /cluster/status`, `refuse` refuses a change that
//! would lose the survival a cluster has (`409 MEMBERSHIP_REFUSED`; changes that do not
//! make it worse still pass, so a cluster can move towards it step by step), `off` skips
//! it.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use openraft::ServerState;

use super::Inner;
use crate::replica::{NodeError, NodeId};

/// What a membership change that leaves the voters unable to survive a region's loss does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PlacementPolicy {
    /// Not checked.
    Off,
    /// Logged and shown in the cluster status.
    #[default]
    Warn,
    /// Refused when the voters survive a region's loss today.
    Refuse,
}

impl FromStr for PlacementPolicy {
    type Err = String;

    fn from_str(text: &str) -> Result<PlacementPolicy, String> {
        match text {
            "off" => Ok(PlacementPolicy::Off),
            "warn" => Ok(PlacementPolicy::Warn),
            "refuse" => Ok(PlacementPolicy::Refuse),
            other => Err(format!(
                "placement policy must be off, warn or refuse, not {other:?}"
            )),
        }
    }
}

impl fmt::Display for PlacementPolicy {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            PlacementPolicy::Off => "off",
            PlacementPolicy::Warn => "warn",
            PlacementPolicy::Refuse => "refuse",
        })
    }
}

/// Why `voters` would not survive the loss of one region, when the members span at least
/// three regions (`member_regions` counts them); `None` when they would (or the check does
/// not apply).
pub fn region_loss_risk<'a>(
    voters: impl IntoIterator<Item = &'a str>,
    member_regions: usize,
) -> Option<String> {
    if member_regions < 3 {
        return None;
    }
    let mut per_region: BTreeMap<&str, usize> = BTreeMap::new();
    let mut total = 0;
    for region in voters {
        *per_region.entry(region).or_default() += 1;
        total += 1;
    }
    let (region, count) = per_region.into_iter().max_by_key(|(_, count)| *count)?;
    let left = total - count;
    (left * 2 <= total).then(|| {
        format!("losing region {region:?} would leave {left} of {total} voters, not a majority")
    })
}

impl Inner {
    /// [`region_loss_risk`] of the voter set `voters` among this cluster's members.
    pub(super) fn placement_risk(
        &self,
        voters: &std::collections::BTreeSet<NodeId>,
    ) -> Option<String> {
        let membership = self.node.metrics().borrow().membership_config.clone();
        let membership = membership.membership();
        let regions: std::collections::BTreeSet<&str> = membership
            .nodes()
            .map(|(_, info)| info.region.as_str())
            .collect();
        let voter_regions = voters
            .iter()
            .filter_map(|id| membership.get_node(id).map(|info| info.region.as_str()));
        region_loss_risk(voter_regions, regions.len())
    }

    /// Applies the placement policy to a change from the current voters to `voters`.
    pub(super) fn check_placement(
        &self,
        current: &std::collections::BTreeSet<NodeId>,
        voters: &std::collections::BTreeSet<NodeId>,
    ) -> Result<(), NodeError> {
        if self.config.placement == PlacementPolicy::Off {
            return Ok(());
        }
        let Some(risk) = self.placement_risk(voters) else {
            return Ok(());
        };
        if self.config.placement == PlacementPolicy::Refuse
            && self.placement_risk(current).is_none()
        {
            return Err(NodeError::MembershipRefused {
                message: format!(
                    "{risk}: the voters would no longer survive the loss of a region (--placement refuse)"
                ),
            });
        }
        tracing::warn!(
            ?voters,
            risk,
            "the new voters do not survive the loss of a region"
        );
        Ok(())
    }

    /// The cluster status's placement warning: set while the current voters would not
    /// survive a region's loss (and the policy is not `off`).
    pub(super) fn placement_warning(&self) -> Option<String> {
        if self.config.placement == PlacementPolicy::Off {
            return None;
        }
        let metrics = self.node.metrics().borrow().clone();
        if metrics.state == ServerState::Shutdown {
            return None;
        }
        let voters = metrics.membership_config.membership().voter_ids().collect();
        self.placement_risk(&voters)
    }
}

#[cfg(test)]
mod tests {
    use super::region_loss_risk;

    #[test]
    fn survival_of_a_region_loss() {
        // 2-2-1 across three regions survives any one region.
        assert_eq!(region_loss_risk(["a", "a", "b", "b", "c"], 3), None);
        // 3-0-0 or 2-1 does not.
        assert!(region_loss_risk(["a", "a", "a"], 3)
            .unwrap()
            .contains("\"a\""));
        assert!(region_loss_risk(["a", "a", "b"], 3).is_some());
        // 1-1-1 survives; 2-2 does not (half is not a majority).
        assert_eq!(region_loss_risk(["a", "b", "c"], 3), None);
        assert!(region_loss_risk(["a", "a", "b", "b"], 3).is_some());
        // With members in fewer than three regions the check does not apply.
        assert_eq!(region_loss_risk(["a", "a", "b"], 2), None);
        assert_eq!(region_loss_risk(["local"; 3], 1), None);
    }
}

//! The hold-expiry ticker: on the leader, every interval, proposes an `ExpireHolds` entry
//! when some hold is due (and only then), ending a bounded number of holds per entry.
//! Followers never decide expiry; they apply the leader's entries.

use std::sync::Arc;
use std::time::Duration;

use holdfast_statemachine::{Command, Outcome};
use tokio::sync::watch;

use crate::replica::{self, NodeError, Proposal, Replica};

/// Settings of the expiry ticker.
#[derive(Clone, Debug)]
pub struct ExpiryConfig {
    /// How often the leader looks for due holds (default 1 s): an expired hold's items are
    /// freed up to about this long (plus a commit) after its expiry.
    pub check_interval: Duration,
    /// Holds one `ExpireHolds` entry ends at most (default 1,000; clamped to 1..=10,000,
    /// the state machine's `EXPIRE_HOLDS_PER_ENTRY_MAX`). An entry that ends this many is
    /// followed at once by another, so a backlog does not wait for the next tick.
    pub holds_per_entry_max: u32,
}

impl ExpiryConfig {
    /// [`ExpiryConfig::holds_per_entry_max`] within the state machine's bounds.
    fn holds_per_entry(&self) -> u32 {
        self.holds_per_entry_max
            .clamp(1, holdfast_statemachine::limits::EXPIRE_HOLDS_PER_ENTRY_MAX)
    }
}

impl Default for ExpiryConfig {
    fn default() -> Self {
        ExpiryConfig {
            check_interval: Duration::from_secs(1),
            holds_per_entry_max: 1_000,
        }
    }
}

/// One check: if this node leads and holds are due, proposes their expiry. Returns the
/// number of holds ended.
pub async fn expire_due_holds(
    replica: &dyn Replica,
    config: &ExpiryConfig,
) -> Result<usize, NodeError> {
    let max_holds = config.holds_per_entry();
    let cluster_ms = replica.cluster_time_ms();
    let (due, meta) = replica::read_now(replica, |machine| {
        let now_ms = machine.now_ms().max(cluster_ms);
        machine.holds_due(now_ms, max_holds as usize)
    });
    if due == 0 || meta.leader_id != Some(meta.node_id) {
        return Ok(0);
    }
    let proposal = Proposal {
        request_id: None,
        command: Command::ExpireHolds { max_holds },
    };
    let committed = replica::propose_one(replica, proposal).await?;
    let ended = match committed.outcome {
        Outcome::HoldsExpired { hold_ids } => hold_ids.len(),
        _ => 0,
    };
    metrics::counter!(crate::metrics::EXPIRIES_TOTAL, "outcome" => "expired")
        .increment(ended as u64);
    Ok(ended)
}

/// Runs [`expire_due_holds`] every `check_interval` until `shutdown` turns true.
pub async fn run_expiry_ticker(
    replica: Arc<dyn Replica>,
    config: ExpiryConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut interval = crate::periodic::interval(config.check_interval);
    while crate::periodic::next_tick(&mut interval, &mut shutdown).await {
        // Keep going while a full batch was due: a backlog drains at once, bounded per entry.
        loop {
            match expire_due_holds(&*replica, &config).await {
                Ok(ended) if ended as u32 >= config.holds_per_entry() => continue,
                Ok(_) => break,
                Err(error) => {
                    tracing::warn!(%error, "could not propose hold expiry");
                    break;
                }
            }
        }
    }
}

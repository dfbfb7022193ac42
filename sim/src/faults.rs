//! The fault schedule of a run: what goes wrong, when, drawn from the seed.
//!
//! A [`Scenario`] names a family of faults; [`plan`] turns a scenario and a seed into a
//! time-ordered list of [`Action`]s that the harness carries out between simulation steps.
//! Every plan ends with [`Action::Heal`] at [`Timeline::heal_ms`]: links repaired, latency
//! and loss back to normal, crashed nodes restarted. Clock offsets stay (skew is a state,
//! not an outage).

use std::fmt;

use clap::ValueEnum;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;

/// Families of faults. A seed picks one (see [`Scenario::for_seed`]) unless one is forced.
///
/// The command-line names (`--scenario`) are the variants in kebab case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, ValueEnum)]
pub enum Scenario {
    /// Leader isolation, minority and majority partitions, one-way partitions, flapping
    /// links.
    Partitions,
    /// Message delay and loss (loss breaks TCP connections in turmoil).
    DelayAndLoss,
    /// Crash and restart of random nodes, the leader included, in the middle of confirms.
    Crashes,
    /// Crashes where the host loses power: writes not yet synced are gone.
    PowerLoss,
    /// Skewed clocks, and clocks stepped back and forward, with leader changes.
    ClockSkew,
    /// A learner added and promoted, a voter removed, under load.
    Membership,
    /// A node down for most of the run while the log is compacted: it must catch up by
    /// snapshot.
    SnapshotCatchUp,
    /// Five nodes in three regions (2-2-1), 30–80 ms between regions; a whole region is
    /// lost and comes back.
    RegionLoss,
    /// The webhook receiver goes down for several seconds with a small outbox
    /// ([`WEBHOOK_OUTAGE_OUTBOX_EVENTS_MAX`]): the outbox fills, holds are refused with
    /// `OUTBOX_FULL`, and once the receiver is back every event arrives and holds succeed
    /// again.
    WebhookOutage,
}

/// The outbox's bound in the [`Scenario::WebhookOutage`] runs: room for the customers'
/// active holds (at most 18: the event has 8 seats, 4 expiring seats and a pool of 6) and
/// about thirty events, so that an outage fills it within a second or two of holds. The
/// event sells out early and new holds come only as seats expire or are cancelled, about
/// three a second: with room for 64, seed 116's outage of 4.6 s saw 14 holds and the outbox
/// never filled (1 of the 44 outage seeds from 8 to 395; with 48, none).
pub const WEBHOOK_OUTAGE_OUTBOX_EVENTS_MAX: usize = 48;

impl Scenario {
    /// The scenario a seed runs when none is forced: they take turns.
    pub fn for_seed(seed: u64) -> Scenario {
        let all = Scenario::value_variants();
        all[(seed % all.len() as u64) as usize]
    }

    /// The hosts of the topology: (node id, region), and how many are voters at init.
    pub fn topology(self) -> Topology {
        match self {
            Scenario::RegionLoss => Topology {
                nodes: vec![(1, 1), (2, 1), (3, 2), (4, 2), (5, 3)],
                initial_voters: 5,
            },
            // n4 starts empty and joins as a learner.
            Scenario::Membership => Topology {
                nodes: vec![(1, 1), (2, 1), (3, 1), (4, 1)],
                initial_voters: 3,
            },
            _ => Topology {
                nodes: vec![(1, 1), (2, 1), (3, 1)],
                initial_voters: 3,
            },
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_value_name(self, formatter)
    }
}

/// Writes a command-line value's name (for [`fmt::Display`]).
pub(crate) fn write_value_name(
    value: &impl ValueEnum,
    formatter: &mut fmt::Formatter<'_>,
) -> fmt::Result {
    let name = value
        .to_possible_value()
        .expect("every variant has a command-line name");
    formatter.write_str(name.get_name())
}

/// The hosts of a run.
#[derive(Clone, Debug)]
pub struct Topology {
    /// (node id, region number), in id order.
    pub nodes: Vec<(u64, u32)>,
    /// The first this many nodes are the voters `POST /cluster/init` names; the rest wait
    /// to be added.
    pub initial_voters: usize,
}

impl Topology {
    /// The node ids, in id order.
    pub fn ids(&self) -> Vec<u64> {
        self.nodes.iter().map(|(id, _)| *id).collect()
    }

    /// The region of node `id`; 0 for an id not in the topology.
    pub fn region_of(&self, id: u64) -> u32 {
        self.nodes
            .iter()
            .find(|(node, _)| *node == id)
            .map_or(0, |(_, region)| *region)
    }
}

/// Which node an action is aimed at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Target {
    /// The node that leads when the action runs (any node if none does).
    Leader,
    /// A follower at that time (when there is none, the action is skipped).
    Follower,
    /// The node with this id.
    Node(u64),
}

/// One thing the harness does to the cluster.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Action {
    /// Cuts `target` off from every other node (clients still reach it).
    Isolate(Target),
    /// Splits the nodes in two: these and the rest.
    Partition(Vec<u64>),
    /// Drops everything `from` sends to `to`; the other direction still works.
    PartitionOneWay {
        /// The sender whose messages are dropped.
        from: Target,
        /// The node that stops hearing from `from`. When both name one node, nothing
        /// happens.
        to: Target,
    },
    /// Repairs every link between nodes.
    RepairAll,
    /// Upper bound of the random latency of every link.
    MaxLatency {
        /// The bound, in milliseconds.
        ms: u64,
    },
    /// Probability that a message is lost (which breaks its TCP connection).
    Loss {
        /// Per message, from 0.0 (none lost) to 1.0.
        rate: f64,
    },
    /// Kills the node's process; with `power_loss`, unsynced writes are gone too.
    Crash {
        /// The node to kill.
        target: Target,
        /// Whether its in-memory disk also loses what was not synced.
        power_loss: bool,
    },
    /// Kills every node at once, losing unsynced writes: a whole-cluster power failure.
    PowerFailureAll,
    /// Kills every node of a region.
    CrashRegion(u32),
    /// Restarts every crashed node.
    RestartAll,
    /// Sets a node's clock offset.
    ClockOffset {
        /// The node whose clock is set.
        target: Target,
        /// Ahead (positive) or behind (negative) true time, in milliseconds; replaces the
        /// node's previous offset.
        offset_ms: i64,
    },
    /// Adds the node as a learner (waits until it caught up) and then makes it a voter.
    AddVoter(u64),
    /// Removes a voter from the cluster.
    RemoveVoter(Target),
    /// The webhook receiver answers in this way from now on.
    Receiver(crate::webhook::ReceiverMode),
    /// The webhook receiver's host goes down (deliveries cannot connect).
    ReceiverDown,
    /// The webhook receiver's host comes back up, answering at once.
    ReceiverUp,
    /// Cuts the webhook receiver off from `target` (the leader: its notifier cannot reach it).
    IsolateReceiver(Target),
    /// Network back to normal, every crashed node and the receiver restarted, and the
    /// receiver answering at once.
    Heal,
}

/// A scheduled action.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Scheduled {
    /// When, in simulated milliseconds since the start; the harness carries the action out
    /// before the first simulation step at or after that time.
    pub at_ms: u64,
    /// What to do.
    pub action: Action,
}

/// When the phases of a run happen, in simulated milliseconds.
#[derive(Clone, Copy, Debug)]
pub struct Timeline {
    /// Faults start (the cluster is up and the event exists well before).
    pub faults_from_ms: u64,
    /// Everything is healed.
    pub heal_ms: u64,
    /// Clients start no new calls.
    pub stop_ms: u64,
    /// The run gives up waiting for the replicas to converge.
    pub give_up_ms: u64,
    /// Latency bound of a link in normal operation.
    pub normal_latency_ms: u64,
}

impl Default for Timeline {
    fn default() -> Self {
        Timeline {
            faults_from_ms: 3_000,
            heal_ms: 12_000,
            stop_ms: 14_000,
            give_up_ms: 60_000,
            normal_latency_ms: 5,
        }
    }
}

/// The fault schedule for `scenario` and `seed`, ordered by time.
pub fn plan(scenario: Scenario, seed: u64, timeline: &Timeline) -> Vec<Scheduled> {
    let mut rng = StdRng::seed_from_u64(seed.wrapping_mul(0xA24B_AED4_963E_E407) ^ 0x5EED);
    let topology = scenario.topology();
    let ids = topology.ids();
    let voters: Vec<u64> = ids[..topology.initial_voters].to_vec();
    let mut plan = Vec::new();
    let window = timeline.faults_from_ms..timeline.heal_ms - 1_500;
    let at = |rng: &mut StdRng| rng.gen_range(window.clone());
    match scenario {
        Scenario::Partitions => {
            for _ in 0..rng.gen_range(3..6) {
                let start = at(&mut rng);
                let length = rng.gen_range(800..4_000);
                let action = match rng.gen_range(0..4) {
                    0 => Action::Isolate(Target::Leader),
                    1 => {
                        let mut side = voters.clone();
                        side.shuffle(&mut rng);
                        side.truncate(1);
                        Action::Partition(side)
                    }
                    2 => Action::PartitionOneWay {
                        from: Target::Leader,
                        to: Target::Follower,
                    },
                    _ => Action::PartitionOneWay {
                        from: Target::Follower,
                        to: Target::Leader,
                    },
                };
                plan.push(Scheduled {
                    at_ms: start,
                    action,
                });
                plan.push(Scheduled {
                    at_ms: start + length,
                    action: Action::RepairAll,
                });
            }
            // A flapping link: cut and repaired every few hundred milliseconds.
            let start = at(&mut rng);
            let mut pair = voters.clone();
            pair.shuffle(&mut rng);
            let mut time = start;
            for _ in 0..rng.gen_range(4..10) {
                plan.push(Scheduled {
                    at_ms: time,
                    action: Action::Partition(vec![pair[0]]),
                });
                time += rng.gen_range(100..600);
                plan.push(Scheduled {
                    at_ms: time,
                    action: Action::RepairAll,
                });
                time += rng.gen_range(100..600);
            }
        }
        Scenario::DelayAndLoss => {
            for _ in 0..rng.gen_range(2..5) {
                let start = at(&mut rng);
                let length = rng.gen_range(1_000..3_000);
                let action = if rng.gen_bool(0.5) {
                    Action::MaxLatency {
                        ms: rng.gen_range(50..600),
                    }
                } else {
                    Action::Loss {
                        rate: rng.gen_range(0.005..0.05),
                    }
                };
                plan.push(Scheduled {
                    at_ms: start,
                    action,
                });
                plan.push(Scheduled {
                    at_ms: start + length,
                    action: Action::MaxLatency {
                        ms: timeline.normal_latency_ms,
                    },
                });
                plan.push(Scheduled {
                    at_ms: start + length,
                    action: Action::Loss { rate: 0.0 },
                });
            }
        }
        Scenario::Crashes | Scenario::PowerLoss => {
            let power_loss = scenario == Scenario::PowerLoss;
            for _ in 0..rng.gen_range(2..5) {
                let start = at(&mut rng);
                let target = if rng.gen_bool(0.5) {
                    Target::Leader
                } else {
                    Target::Node(voters[rng.gen_range(0..voters.len())])
                };
                plan.push(Scheduled {
                    at_ms: start,
                    action: Action::Crash { target, power_loss },
                });
                plan.push(Scheduled {
                    at_ms: start + rng.gen_range(300..3_000),
                    action: Action::RestartAll,
                });
            }
            if power_loss {
                let start = at(&mut rng);
                plan.push(Scheduled {
                    at_ms: start,
                    action: Action::PowerFailureAll,
                });
                plan.push(Scheduled {
                    at_ms: start + rng.gen_range(200..1_500),
                    action: Action::RestartAll,
                });
            }
        }
        Scenario::ClockSkew => {
            for &id in &ids {
                plan.push(Scheduled {
                    at_ms: 0,
                    action: Action::ClockOffset {
                        target: Target::Node(id),
                        offset_ms: rng.gen_range(-1_500..1_500),
                    },
                });
            }
            for _ in 0..rng.gen_range(2..4) {
                let start = at(&mut rng);
                let offset_ms = if rng.gen_bool(0.6) {
                    -rng.gen_range(5_000..60_000)
                } else {
                    rng.gen_range(500..1_500)
                };
                plan.push(Scheduled {
                    at_ms: start,
                    action: Action::ClockOffset {
                        target: Target::Leader,
                        offset_ms,
                    },
                });
                // Force a leader change now and then, so that a node with a stepped
                // clock takes over.
                if rng.gen_bool(0.5) {
                    plan.push(Scheduled {
                        at_ms: start + 200,
                        action: Action::Isolate(Target::Leader),
                    });
                    plan.push(Scheduled {
                        at_ms: start + rng.gen_range(2_500..4_000),
                        action: Action::RepairAll,
                    });
                }
            }
            // Once per run, the leader's clock jumps hours ahead (an NTP step gone wrong, a
            // VM restored from an old image): the clock guard must keep cluster time with
            // the voters' clocks.
            plan.push(Scheduled {
                at_ms: at(&mut rng),
                action: Action::ClockOffset {
                    target: Target::Leader,
                    offset_ms: rng.gen_range(2..6) * 3_600_000,
                },
            });
        }
        Scenario::Membership => {
            let learner = ids[topology.initial_voters];
            plan.push(Scheduled {
                at_ms: at(&mut rng),
                action: Action::AddVoter(learner),
            });
            let remove_at = timeline.heal_ms - rng.gen_range(2_000..5_000);
            let removed = if rng.gen_bool(0.5) {
                Target::Leader
            } else {
                Target::Follower
            };
            plan.push(Scheduled {
                at_ms: remove_at,
                action: Action::RemoveVoter(removed),
            });
            let start = at(&mut rng);
            plan.push(Scheduled {
                at_ms: start,
                action: Action::Crash {
                    target: Target::Follower,
                    power_loss: false,
                },
            });
            plan.push(Scheduled {
                at_ms: start + rng.gen_range(500..2_000),
                action: Action::RestartAll,
            });
        }
        Scenario::SnapshotCatchUp => {
            let down = voters[rng.gen_range(0..voters.len())];
            plan.push(Scheduled {
                at_ms: timeline.faults_from_ms,
                action: Action::Crash {
                    target: Target::Node(down),
                    power_loss: false,
                },
            });
            // The others keep taking writes (and compacting their logs) until the heal.
        }
        // Only the receiver fails (see `receiver_plan`).
        Scenario::WebhookOutage => {}
        Scenario::RegionLoss => {
            let start = at(&mut rng);
            let region = rng.gen_range(1..=3);
            plan.push(Scheduled {
                at_ms: start,
                action: Action::CrashRegion(region),
            });
            plan.push(Scheduled {
                at_ms: start + rng.gen_range(2_000..6_000),
                action: Action::RestartAll,
            });
            if rng.gen_bool(0.5) {
                let start = at(&mut rng);
                plan.push(Scheduled {
                    at_ms: start,
                    action: Action::Isolate(Target::Leader),
                });
                plan.push(Scheduled {
                    at_ms: start + rng.gen_range(1_000..3_000),
                    action: Action::RepairAll,
                });
            }
        }
    }
    plan.extend(receiver_plan(scenario, seed, timeline));
    plan.push(Scheduled {
        at_ms: timeline.heal_ms,
        action: Action::Heal,
    });
    // Stable: actions at the same time keep the order they were planned in.
    plan.sort_by_key(|scheduled| scheduled.at_ms);
    plan
}

/// What happens to the webhook receiver, drawn from its own generator so that the other
/// faults of a seed stay what they were before the receiver existed. In the
/// [`Scenario::WebhookOutage`] runs it goes down for 4–6 s early on; in every other run,
/// now and then, it fails, answers slowly or is cut off from the leader for a while.
fn receiver_plan(scenario: Scenario, seed: u64, timeline: &Timeline) -> Vec<Scheduled> {
    use crate::webhook::ReceiverMode;
    let mut rng = StdRng::seed_from_u64(seed.wrapping_mul(0x9FB2_1C65_1E98_DF25) ^ 0x00B0_0C5E);
    let mut plan = Vec::new();
    if scenario == Scenario::WebhookOutage {
        let start = timeline.faults_from_ms + rng.gen_range(0..1_000);
        plan.push(Scheduled {
            at_ms: start,
            action: Action::ReceiverDown,
        });
        plan.push(Scheduled {
            at_ms: start + rng.gen_range(4_000..6_000),
            action: Action::ReceiverUp,
        });
        return plan;
    }
    if !rng.gen_bool(0.5) {
        return plan;
    }
    let start = rng.gen_range(timeline.faults_from_ms..timeline.heal_ms - 2_000);
    let length = rng.gen_range(300..1_500);
    let (fault, end) = match rng.gen_range(0..3) {
        0 => (
            Action::Receiver(ReceiverMode::Failing),
            Action::Receiver(ReceiverMode::Up),
        ),
        1 => (
            Action::Receiver(ReceiverMode::Slow {
                ms: rng.gen_range(100..3_000),
            }),
            Action::Receiver(ReceiverMode::Up),
        ),
        _ => (Action::IsolateReceiver(Target::Leader), Action::ReceiverUp),
    };
    plan.push(Scheduled {
        at_ms: start,
        action: fault,
    });
    plan.push(Scheduled {
        at_ms: start + length,
        action: end,
    });
    plan
}

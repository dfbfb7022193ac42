//! Writes: the bounded queue, the batcher and group commit.
//!
//! Every proposal enters one bounded queue ([`Inner::submit`]: a full queue answers
//! `OVERLOADED` at once; a proposal too big for one Raft entry is refused). One batcher task
//! ([`run_batcher`]) takes an in-flight slot first and then drains what waits, up to
//! [`RaftReplicaConfig::batch_entries_max`] commands and
//! [`RaftReplicaConfig::entry_bytes_max`] bytes, into one group; [`Inner::commit_group`]
//! commits the group as one Raft entry on the leader ([`Inner::commit_as_leader`]: stamped
//! with cluster time) or forwards it (`forward.rs`), and answers each caller in order.

use super::*;

/// Proposals of one caller, waiting for the batcher.
pub(super) struct Pending {
    proposals: Vec<Proposal>,
    reply: oneshot::Sender<Result<Vec<CommittedOutcome>, NodeError>>,
    /// Forwarded by a follower: committed only while this node leads, never forwarded
    /// again (no forwarding loops).
    forwarded: bool,
    /// The encoded size of the proposals ([`proposal_bytes`]), counted against
    /// [`RaftReplicaConfig::entry_bytes_max`].
    bytes: usize,
}

/// Room for what a state machine entry adds to its command in a Raft entry (time, request
/// id framing) and for the entry's own framing.
const ENTRY_OVERHEAD_BYTES: usize = 64;

/// The bytes `proposal` adds to a Raft entry: its command encoded as the log encodes it,
/// its request id, and [`ENTRY_OVERHEAD_BYTES`].
fn proposal_bytes(proposal: &Proposal) -> usize {
    let mut size = bincode::enc::write::SizeWriter::default();
    bincode::serde::encode_into_writer(&proposal.command, &mut size, bincode::config::standard())
        .expect("counting the bytes of a command cannot fail");
    size.bytes_written + proposal.request_id.as_ref().map_or(0, String::len) + ENTRY_OVERHEAD_BYTES
}

/// A group being formed: the callers' proposals, their commands and encoded bytes.
struct Group {
    pending: Vec<Pending>,
    commands: usize,
    bytes: usize,
}

impl Group {
    fn of(first: Pending) -> Group {
        Group {
            commands: first.proposals.len(),
            bytes: first.bytes,
            pending: vec![first],
        }
    }

    /// Adds `next` if it fits under `bytes_max`; hands it back otherwise.
    fn add(&mut self, next: Pending, bytes_max: usize) -> Option<Pending> {
        if self.bytes.saturating_add(next.bytes) > bytes_max {
            return Some(next);
        }
        self.commands += next.proposals.len();
        self.bytes += next.bytes;
        self.pending.push(next);
        None
    }
}

/// Where a committed group's request ids are read from: the entries the leader proposed
/// (the proposals are their last ones, from `first` on, after any entry the leader put
/// first) or the proposals a follower forwarded.
enum RequestIds {
    Entries {
        entries: Arc<Vec<Entry>>,
        first: usize,
    },
    Proposals(Vec<Proposal>),
}

impl RequestIds {
    /// The request id of the group's `n`th proposal.
    fn get(&self, n: usize) -> Option<&str> {
        match self {
            RequestIds::Entries { entries, first } => entries[first + n].request_id.as_deref(),
            RequestIds::Proposals(proposals) => proposals[n].request_id.as_deref(),
        }
    }
}

/// One forward out, counted in the batcher's watch until it is dropped: when the leader
/// answers (before the follower waits to apply the entry), when it fails, or when its task
/// unwinds.
pub(super) struct ForwardOut(watch::Sender<usize>);

impl ForwardOut {
    fn count(out: &watch::Sender<usize>) -> ForwardOut {
        out.send_modify(|out| *out += 1);
        ForwardOut(out.clone())
    }
}

impl Drop for ForwardOut {
    fn drop(&mut self) {
        self.0.send_modify(|out| *out = out.saturating_sub(1));
    }
}

pub(super) async fn run_batcher(
    inner: std::sync::Weak<Inner>,
    mut receiver: mpsc::Receiver<Pending>,
) {
    let (in_flight, forwards_in_flight) = match inner.upgrade() {
        Some(inner) => (
            Arc::new(Semaphore::new(inner.config.batches_in_flight_max.max(1))),
            Arc::new(Semaphore::new(inner.config.forwards_in_flight_max.max(1))),
        ),
        None => return,
    };
    // A follower's forwards out (sent and not yet answered).
    let (forwards_out, mut forwards_idle) = watch::channel(0usize);
    // Proposals taken from the queue that did not fit the last group.
    let mut carried: Option<Pending> = None;
    loop {
        let first = match carried.take() {
            Some(pending) => pending,
            None => match receiver.recv().await {
                Some(pending) => pending,
                None => return,
            },
        };
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let leader = strong.is_leader();
        let batch_max = strong.config.batch_entries_max.max(1);
        let bytes_max = strong.config.entry_bytes_max;
        let mut group = Group::of(first);
        // A follower forwards as Nagle's rule sends: at once when no forward is out (a lone
        // caller waits for nothing), and while one is out, only once a good group's worth
        // waits ([`RaftReplicaConfig::forward_overlap_commands`]); until then what arrives
        // gathers into this group. The leader takes a forwarded group into its next entry
        // anyway, so several small forwards out at once only cost a call each: with 64
        // HTTP clients on a follower, eight forwards out gave 8,800-9,000 holds/s and one
        // 10,300-10,500 (BENCHMARKS.md, 2026-12-05). Far from the leader, a busy follower
        // still fills groups to the threshold and sends them side by side.
        if !leader {
            let overlap = strong.config.forward_overlap_commands.clamp(1, batch_max);
            while group.commands < overlap && carried.is_none() {
                tokio::select! {
                    biased;
                    _ = forwards_idle.wait_for(|&out| out == 0) => break,
                    next = receiver.recv() => match next {
                        Some(next) => carried = group.add(next, bytes_max),
                        None => break,
                    },
                }
            }
        }
        // A slot first, then the rest of the group: what arrives while the batches in
        // flight commit joins this group. (Formed before the wait, a group would leave
        // behind everything that arrived during it for one more commit, and carry few
        // commands itself: with 64 HTTP clients a third of the commands per entry, and a
        // p99 four times longer.)
        let slots = if leader {
            &in_flight
        } else {
            &forwards_in_flight
        };
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        // A group ends at `batch_max` commands or before it would pass `bytes_max` bytes;
        // the proposals that did not fit open the next group.
        while group.commands < batch_max && carried.is_none() {
            match receiver.try_recv() {
                Ok(next) => carried = group.add(next, bytes_max),
                Err(_) => break,
            }
        }
        let out = (!leader).then(|| ForwardOut::count(&forwards_out));
        tokio::spawn(async move {
            strong.commit_group(group.pending, out).await;
            drop(permit);
        });
    }
}

impl Inner {
    /// Commits or forwards `group`; `out` counts the forward out until the leader answers.
    async fn commit_group(&self, mut group: Vec<Pending>, mut out: Option<ForwardOut>) {
        // Only to a leader this node believes in; unsent batches wait (bounded) for one
        // and are refused with NO_LEADER (not committed: never sent) when none comes.
        let (target, leader) = loop {
            let Some(target) = self.await_believed_leader().await else {
                for pending in group {
                    let _ = pending.reply.send(Err(NodeError::NoLeader));
                }
                return;
            };
            let leader = target == Target::Here;
            if leader {
                // Formed on a follower, this group is not forwarded after all: the next
                // group need not wait for it (the clock check below may take a while).
                drop(out.take());
                // A new leader stamps nothing before it can compare its clock with a
                // quorum's (looked at by the first batch of each term only: voters that
                // cannot be sampled, e.g. of an older version, leave it stamping near the
                // log's time instead).
                let term = self.node.metrics().borrow().current_term;
                if self.clock_awaited_term.swap(term, Ordering::Relaxed) != term
                    && !self.clock_ready()
                {
                    self.await_clock_ready().await;
                }
            }
            // A leader transfer that began meanwhile: wait for the next leader instead.
            if leader && self.handing_over() {
                continue;
            }
            break (target, leader);
        };
        if !leader {
            // Batches forwarded to this node while it led are not forwarded again.
            let (forwarded, own): (Vec<Pending>, Vec<Pending>) =
                group.into_iter().partition(|pending| pending.forwarded);
            for pending in forwarded {
                let _ = pending.reply.send(Err(NodeError::NoLeader));
            }
            group = own;
            if group.is_empty() {
                return;
            }
        }
        // The proposals move out of their callers' lists into one (commands are not
        // copied); each caller's count says which outcomes are its.
        let counts: Vec<usize> = group.iter().map(|p| p.proposals.len()).collect();
        let total = counts.iter().sum();
        let mut proposals = Vec::with_capacity(total);
        for pending in &mut group {
            proposals.append(&mut pending.proposals);
        }
        let result = match target {
            Target::Here => {
                self.commit_entries(proposals)
                    .await
                    .map(|(index, outcomes, entries)| {
                        let first = entries.len() - total;
                        (index, outcomes, RequestIds::Entries { entries, first })
                    })
            }
            Target::Leader(leader_id) => self
                .forward(leader_id, &proposals, out)
                .await
                .map(|(index, outcomes)| (index, outcomes, RequestIds::Proposals(proposals))),
        };
        match result {
            Ok((index, outcomes, ids)) => {
                let now_ms = self.node.read_stale(|state| state.machine.now_ms());
                let mut outcomes = outcomes.into_iter();
                let mut next = 0;
                let mut table = self
                    .request_index
                    .lock()
                    .expect("request index lock poisoned");
                for (pending, count) in group.into_iter().zip(counts) {
                    let answers: Vec<CommittedOutcome> = (next..next + count)
                        .map(|n| {
                            let outcome = outcomes.next().expect("one outcome per proposal");
                            let request_id = ids.get(n);
                            // A refusal the state machine does not remember under the
                            // id is not the id's first index either.
                            let remembered = !matches!(
                                &outcome,
                                Outcome::Rejected(rejection)
                                    if rejection.refuses_the_request_itself()
                            );
                            let index = match request_id {
                                Some(id) if remembered => table.record(id, index, now_ms),
                                _ => index,
                            };
                            CommittedOutcome { outcome, index }
                        })
                        .collect();
                    next += count;
                    let _ = pending.reply.send(Ok(answers));
                }
            }
            Err(error) => {
                for pending in group {
                    let _ = pending.reply.send(Err(error.clone()));
                }
            }
        }
    }

    /// Puts proposals into the bounded queue for the batcher and waits for their answers.
    pub(super) async fn submit(
        &self,
        proposals: Vec<Proposal>,
        forwarded: bool,
    ) -> Result<Vec<CommittedOutcome>, NodeError> {
        if proposals.is_empty() {
            return Ok(Vec::new());
        }
        let bytes = proposals.iter().map(proposal_bytes).sum::<usize>();
        if bytes > self.config.entry_bytes_max {
            return Err(NodeError::InvalidField {
                field: "command".into(),
                reason: format!(
                    "encodes to {bytes} bytes; one Raft entry carries at most {}",
                    self.config.entry_bytes_max
                ),
            });
        }
        let (reply, answer) = oneshot::channel();
        self.queue
            .try_send(Pending {
                proposals,
                reply,
                forwarded,
                bytes,
            })
            .map_err(|error| match error {
                mpsc::error::TrySendError::Full(_) => NodeError::Overloaded {
                    message: format!("{} proposals are waiting", self.config.proposals_queued_max),
                },
                mpsc::error::TrySendError::Closed(_) => NodeError::NotReady {
                    message: "the node is shutting down".into(),
                },
            })?;
        answer.await.unwrap_or_else(|_| {
            Err(NodeError::Internal {
                message: "the batcher stopped".into(),
            })
        })
    }

    /// Stamps and proposes a batch on this node, which must be the leader.
    pub(super) async fn commit_as_leader(
        &self,
        proposals: Vec<Proposal>,
    ) -> Result<(u64, Vec<Outcome>), NodeError> {
        self.commit_entries(proposals)
            .await
            .map(|(index, outcomes, _)| (index, outcomes))
    }

    /// [`Inner::commit_as_leader`], also handing back the committed entries, whose last
    /// ones are the proposals (so their request ids need not be copied beforehand).
    async fn commit_entries(
        &self,
        proposals: Vec<Proposal>,
    ) -> Result<(u64, Vec<Outcome>, Arc<Vec<Entry>>), NodeError> {
        if !self.is_leader() {
            return Err(NodeError::NoLeader);
        }
        let time_ms = self
            .clock
            .stamp_guarded(self.applied_time(), |wall, applied| {
                self.clock_ceiling(wall, applied, true)
            });
        let count = proposals.len();
        // A new cluster's first write keys its ids (see `holdfast_statemachine`'s `ids.rs`):
        // the key goes in ahead of the batch, so no hold, booking or refund is ever made
        // with a sequential id. Its answer is not one of the proposals'.
        let key_ids = self.wants_id_key();
        let mut entries = Vec::with_capacity(count + usize::from(key_ids));
        if key_ids {
            use rand::Rng;
            entries.push(Entry {
                time_ms,
                request_id: None,
                command: Command::SetIdKey {
                    key: holdfast_raft::runtime::RaftRng.gen(),
                },
            });
        }
        entries.extend(proposals.into_iter().map(|proposal| Entry {
            time_ms,
            request_id: proposal.request_id,
            command: proposal.command,
        }));
        let batch = Batch::new(entries);
        let entries = Arc::clone(&batch.entries);
        let commit = self.node.propose(batch);
        let result = match tokio::time::timeout(self.config.commit_timeout, commit).await {
            Ok(result) => result.map_err(|error| match raft_error(error) {
                NodeError::NotLeader { .. } => NodeError::NoLeader,
                other => other,
            })?,
            Err(_) => {
                return Err(NodeError::OutcomeUnknown {
                    message: format!(
                        "the write was not committed within {:?}; its outcome is unknown: retry with the same Idempotency-Key",
                        self.config.commit_timeout
                    ),
                })
            }
        };
        let mut outcomes = result.outcomes;
        if key_ids && !outcomes.is_empty() {
            outcomes.remove(0);
        }
        if outcomes.len() != count {
            return Err(NodeError::Internal {
                message: "the state machine answered a different number of outcomes".into(),
            });
        }
        Ok((result.log_id.index, outcomes, entries))
    }

    /// Whether the state still wants its id key (a new cluster); once it does not, never
    /// asked again.
    fn wants_id_key(&self) -> bool {
        if self.ids_keyed.load(Ordering::Relaxed) {
            return false;
        }
        let wants = self.node.read_stale(|state| state.machine.wants_id_key());
        if !wants {
            self.ids_keyed.store(true, Ordering::Relaxed);
        }
        wants
    }
}

//! Waiting for the state to reach a log index ([`crate::RaftNode::wait_applied`]).
//!
//! Openraft's metrics could answer it (`wait_for` on their watch channel), but they change
//! several times per entry and every change wakes every waiter to check its index again:
//! with a follower's forwarded writes and the linearizable reads waiting at once, that was
//! thousands of wake-ups a second for nothing. Here each waiter is woken once, when the
//! index it waits for is applied.

use std::collections::BTreeMap;
use std::sync::Mutex;

use tokio::sync::oneshot;

/// The applied index and the tasks waiting for a later one.
#[derive(Debug)]
pub(crate) struct AppliedWaiters {
    inner: Mutex<Waiters>,
}

#[derive(Debug)]
struct Waiters {
    applied: u64,
    /// By the index each waits for.
    waiting: BTreeMap<u64, Vec<oneshot::Sender<()>>>,
    /// Senders in `waiting`, including those whose waiter gave up.
    count: usize,
    /// Above this many, the ones whose waiter gave up are dropped (see [`Self::register`]).
    prune_at: usize,
}

/// Fewest registrations before abandoned ones are looked for.
const PRUNE_AT_LEAST: usize = 1024;

impl AppliedWaiters {
    /// Starts at `applied`.
    pub(crate) fn new(applied: u64) -> AppliedWaiters {
        AppliedWaiters {
            inner: Mutex::new(Waiters {
                applied,
                waiting: BTreeMap::new(),
                count: 0,
                prune_at: PRUNE_AT_LEAST,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiters> {
        self.inner.lock().expect("applied waiters lock poisoned")
    }

    /// `None` if `index` is applied already; else what completes once it is (or errs if
    /// the store is dropped first).
    pub(crate) fn wait(&self, index: u64) -> Option<oneshot::Receiver<()>> {
        let mut waiters = self.lock();
        if waiters.applied >= index {
            return None;
        }
        let (sender, receiver) = oneshot::channel();
        waiters.register(index, sender);
        Some(receiver)
    }

    /// Records that everything up to `index` is applied and wakes whoever waited for it.
    /// An index below the current one (a snapshot installed over a newer state cannot
    /// happen, but the store does not rely on it) moves nothing back.
    pub(crate) fn applied(&self, index: u64) {
        let reached = {
            let mut waiters = self.lock();
            if index <= waiters.applied {
                return;
            }
            waiters.applied = index;
            if waiters.waiting.is_empty() {
                return;
            }
            let later = waiters.waiting.split_off(&(index + 1));
            let reached = std::mem::replace(&mut waiters.waiting, later);
            waiters.count -= reached.values().map(Vec::len).sum::<usize>();
            reached
        };
        for sender in reached.into_values().flatten() {
            let _ = sender.send(());
        }
    }
}

impl Waiters {
    /// Adds a waiter. Waiters that gave up (a deadline, a dropped request) stay until
    /// their index is applied, and a hostile `min_index` may never be: so once there are
    /// more than twice as many as after the last clean-up (and at least
    /// [`PRUNE_AT_LEAST`]), the abandoned ones are dropped. Memory stays within twice
    /// the live waiters, at an amortised constant cost per registration.
    fn register(&mut self, index: u64, sender: oneshot::Sender<()>) {
        if self.count >= self.prune_at {
            self.waiting.retain(|_, senders| {
                senders.retain(|sender| !sender.is_closed());
                !senders.is_empty()
            });
            self.count = self.waiting.values().map(Vec::len).sum();
            self.prune_at = (self.count * 2).max(PRUNE_AT_LEAST);
        }
        self.waiting.entry(index).or_default().push(sender);
        self.count += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_waiter_is_woken_when_its_index_is_applied() {
        let waiters = AppliedWaiters::new(5);
        assert!(waiters.wait(5).is_none(), "applied already");
        let mut at_7 = waiters.wait(7).unwrap();
        let mut at_9 = waiters.wait(9).unwrap();
        waiters.applied(6);
        assert!(at_7.try_recv().is_err() && at_9.try_recv().is_err());
        waiters.applied(8);
        assert!(at_7.try_recv().is_ok(), "7 is applied");
        assert!(at_9.try_recv().is_err(), "9 is not");
        waiters.applied(3);
        assert!(waiters.wait(8).is_none(), "nothing moves back");
        waiters.applied(20);
        assert!(at_9.await.is_ok());
        assert_eq!(waiters.lock().count, 0);
    }

    #[test]
    fn abandoned_waiters_for_an_index_never_applied_do_not_pile_up() {
        let waiters = AppliedWaiters::new(0);
        for _ in 0..100_000 {
            // A hostile min_index: the waiter gives up at its deadline.
            drop(waiters.wait(u64::MAX));
        }
        let live: Vec<_> = (0..10).map(|i| waiters.wait(1 + i).unwrap()).collect();
        let count = waiters.lock().count;
        assert!(count <= 2 * PRUNE_AT_LEAST + 10, "{count} kept");
        waiters.applied(10);
        for mut receiver in live {
            assert!(
                receiver.try_recv().is_ok(),
                "the live ones are kept and woken"
            );
        }
    }

    #[test]
    fn a_dropped_store_ends_the_waits() {
        let waiters = AppliedWaiters::new(0);
        let mut receiver = waiters.wait(1).unwrap();
        drop(waiters);
        assert!(matches!(
            receiver.try_recv(),
            Err(oneshot::error::TryRecvError::Closed)
        ));
    }
}

//! openraft's async runtime for Holdfast: tokio, with a random generator that a
//! simulation can seed.
//!
//! openraft draws each election timeout from its runtime's thread-local generator. In
//! production that is the operating system's entropy ([`rand::thread_rng`]); a simulation
//! calls [`seed_thread_rng`] on its thread first, so that the same seed gives the same
//! timeouts and therefore the same elections.

use std::cell::RefCell;
use std::future::Future;
use std::time::Duration;

use openraft::async_runtime::TokioOneShotSender;
use openraft::{AsyncRuntime, OptionalSend, TokioInstant, TokioRuntime};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

thread_local! {
    static SEEDED: RefCell<Option<StdRng>> = const { RefCell::new(None) };
}

/// Makes every [`RaftRng`] on this thread draw from a generator seeded with `seed`, until
/// [`unseed_thread_rng`]. For simulations, which run every node on one thread.
pub fn seed_thread_rng(seed: u64) {
    SEEDED.with(|seeded| *seeded.borrow_mut() = Some(StdRng::seed_from_u64(seed)));
}

/// Returns this thread to entropy-seeded randomness.
pub fn unseed_thread_rng() {
    SEEDED.with(|seeded| *seeded.borrow_mut() = None);
}

/// The generator openraft gets: the thread's seeded generator if there is one, else
/// [`rand::thread_rng`].
#[derive(Clone, Copy, Debug, Default)]
pub struct RaftRng;

impl RaftRng {
    fn with<T>(draw: impl FnOnce(&mut dyn RngCore) -> T) -> T {
        SEEDED.with(|seeded| match seeded.borrow_mut().as_mut() {
            Some(rng) => draw(rng),
            None => draw(&mut rand::thread_rng()),
        })
    }
}

impl RngCore for RaftRng {
    fn next_u32(&mut self) -> u32 {
        RaftRng::with(|rng| rng.next_u32())
    }

    fn next_u64(&mut self) -> u64 {
        RaftRng::with(|rng| rng.next_u64())
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        RaftRng::with(|rng| rng.fill_bytes(dest))
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        RaftRng::with(|rng| rng.try_fill_bytes(dest))
    }
}

/// tokio, as openraft's [`TokioRuntime`], with [`RaftRng`] as the generator.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HoldfastRuntime;

impl AsyncRuntime for HoldfastRuntime {
    type JoinError = <TokioRuntime as AsyncRuntime>::JoinError;
    type JoinHandle<T: OptionalSend + 'static> = <TokioRuntime as AsyncRuntime>::JoinHandle<T>;
    type Sleep = <TokioRuntime as AsyncRuntime>::Sleep;
    type Instant = TokioInstant;
    type TimeoutError = <TokioRuntime as AsyncRuntime>::TimeoutError;
    type Timeout<R, T: Future<Output = R> + OptionalSend> =
        <TokioRuntime as AsyncRuntime>::Timeout<R, T>;
    type ThreadLocalRng = RaftRng;
    type OneshotSender<T: OptionalSend> = TokioOneShotSender<T>;
    type OneshotReceiver<T: OptionalSend> = <TokioRuntime as AsyncRuntime>::OneshotReceiver<T>;
    type OneshotReceiverError = <TokioRuntime as AsyncRuntime>::OneshotReceiverError;

    fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
    where
        T: Future + OptionalSend + 'static,
        T::Output: OptionalSend + 'static,
    {
        TokioRuntime::spawn(future)
    }

    fn sleep(duration: Duration) -> Self::Sleep {
        TokioRuntime::sleep(duration)
    }

    fn sleep_until(deadline: Self::Instant) -> Self::Sleep {
        TokioRuntime::sleep_until(deadline)
    }

    fn timeout<R, F: Future<Output = R> + OptionalSend>(
        duration: Duration,
        future: F,
    ) -> Self::Timeout<R, F> {
        TokioRuntime::timeout(duration, future)
    }

    fn timeout_at<R, F: Future<Output = R> + OptionalSend>(
        deadline: Self::Instant,
        future: F,
    ) -> Self::Timeout<R, F> {
        TokioRuntime::timeout_at(deadline, future)
    }

    fn is_panic(join_error: &Self::JoinError) -> bool {
        TokioRuntime::is_panic(join_error)
    }

    fn thread_rng() -> Self::ThreadLocalRng {
        RaftRng
    }

    fn oneshot<T>() -> (Self::OneshotSender<T>, Self::OneshotReceiver<T>)
    where
        T: OptionalSend,
    {
        TokioRuntime::oneshot()
    }
}

#[cfg(test)]
mod tests {
    use rand::Rng;

    use super::*;

    #[test]
    fn a_seeded_thread_draws_the_same_sequence_twice() {
        let draw = || {
            (0..8)
                .map(|_| HoldfastRuntime::thread_rng().gen_range(1_000..2_000))
                .collect::<Vec<u64>>()
        };
        seed_thread_rng(42);
        let first = draw();
        seed_thread_rng(42);
        let second = draw();
        unseed_thread_rng();
        assert_eq!(first, second);
        assert!(first.iter().all(|timeout| (1_000..2_000).contains(timeout)));
    }
}

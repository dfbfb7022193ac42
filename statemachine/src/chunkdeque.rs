//! [`ChunkDeque`]: a double-ended queue kept in fixed-size chunks, for the derived tables
//! that grow with every hold (the expiry and ended-hold queues, each event's customers).
//!
//! A `Vec` or a `VecDeque` grows by doubling: past half a million 32-byte entries, one
//! push allocates 32 MiB, copies 16 MiB into it, and the kernel zeroes each new page as the
//! copy first writes it — all inside one apply, with every read and every answer waiting.
//! The apply bench's first sale with 600,000 holds measured that as its longest batch,
//! 11 ms against 3 ms with chunks (and 53 ms at a quarter of a million when transparent
//! huge pages were on, which the node now switches off). Here the queue grows one chunk of
//! [`CHUNK_BYTES`] at a time; the only thing that still doubles is the list of chunks, 32
//! bytes per chunk.
//!
//! Every chunk is full except the first (popped from the front) and the last (pushed to
//! at the back), so an element's chunk is one division away.

use std::collections::VecDeque;
use std::fmt;

/// The size of one chunk: a new chunk is one allocation this large, touched as it fills.
const CHUNK_BYTES: usize = 64 * 1024;

/// A double-ended queue in chunks (see the module documentation).
#[derive(Clone)]
pub(crate) struct ChunkDeque<T> {
    /// Each allocated with room for [`ChunkDeque::CHUNK`] elements and never grown past it.
    chunks: VecDeque<VecDeque<T>>,
    len: usize,
}

impl<T> Default for ChunkDeque<T> {
    fn default() -> Self {
        ChunkDeque {
            chunks: VecDeque::new(),
            len: 0,
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for ChunkDeque<T> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_list().entries(self.iter()).finish()
    }
}

impl<T> ChunkDeque<T> {
    /// Elements per chunk: a power of two, so that locating an element is a shift.
    const CHUNK: usize = {
        let fit = CHUNK_BYTES
            / if size_of::<T>() == 0 {
                1
            } else {
                size_of::<T>()
            };
        if fit <= 1 {
            1
        } else {
            1 << (usize::BITS - 1 - fit.leading_zeros())
        }
    };

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn push_back(&mut self, value: T) {
        match self.chunks.back_mut() {
            Some(last) if last.len() < Self::CHUNK => last.push_back(value),
            _ => {
                let mut chunk = VecDeque::with_capacity(Self::CHUNK);
                chunk.push_back(value);
                self.chunks.push_back(chunk);
            }
        }
        self.len += 1;
    }

    pub fn pop_back(&mut self) -> Option<T> {
        let last = self.chunks.back_mut()?;
        let value = last.pop_back();
        if last.is_empty() {
            self.chunks.pop_back();
        }
        self.len -= 1;
        value
    }

    pub fn pop_front(&mut self) -> Option<T> {
        let first = self.chunks.front_mut()?;
        let value = first.pop_front();
        if first.is_empty() {
            self.chunks.pop_front();
        }
        self.len -= 1;
        value
    }

    pub fn front(&self) -> Option<&T> {
        self.chunks.front()?.front()
    }

    pub fn back(&self) -> Option<&T> {
        self.chunks.back()?.back()
    }

    /// The chunk and the place in it of element `index`, which must be below `len`.
    fn locate(&self, index: usize) -> (usize, usize) {
        let first = self.chunks[0].len();
        if index < first {
            (0, index)
        } else {
            let rest = index - first;
            (1 + rest / Self::CHUNK, rest % Self::CHUNK)
        }
    }

    pub fn get(&self, index: usize) -> Option<&T> {
        if index >= self.len {
            return None;
        }
        let (chunk, at) = self.locate(index);
        self.chunks[chunk].get(at)
    }

    pub fn get_mut(&mut self, index: usize) -> Option<&mut T> {
        if index >= self.len {
            return None;
        }
        let (chunk, at) = self.locate(index);
        self.chunks[chunk].get_mut(at)
    }

    /// The index of the first element for which `pred` is false, the elements being
    /// partitioned by it (all true, then all false), as [`slice::partition_point`].
    pub fn partition_point(&self, mut pred: impl FnMut(&T) -> bool) -> usize {
        // The chunk where the answer lies: the first whose last element is false.
        let chunk = self
            .chunks
            .partition_point(|chunk| chunk.back().is_some_and(&mut pred));
        let before: usize = match chunk {
            0 => 0,
            chunk => self.chunks[0].len() + (chunk - 1) * Self::CHUNK,
        };
        match self.chunks.get(chunk) {
            Some(found) => before + found.partition_point(pred),
            None => self.len,
        }
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &T> + '_ {
        self.chunks.iter().flat_map(|chunk| chunk.iter())
    }

    pub fn clear(&mut self) {
        self.chunks.clear();
        self.len = 0;
    }
}

impl<T> std::ops::Index<usize> for ChunkDeque<T> {
    type Output = T;

    fn index(&self, index: usize) -> &T {
        self.get(index).expect("index within the queue")
    }
}

impl<T> std::ops::IndexMut<usize> for ChunkDeque<T> {
    fn index_mut(&mut self, index: usize) -> &mut T {
        self.get_mut(index).expect("index within the queue")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    #[derive(Clone, Debug)]
    enum Op {
        PushBack(u64),
        PopBack,
        PopFront,
        Set(usize, u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => any::<u64>().prop_map(Op::PushBack),
            1 => Just(Op::PopBack),
            3 => Just(Op::PopFront),
            1 => (any::<usize>(), any::<u64>()).prop_map(|(at, value)| Op::Set(at, value)),
        ]
    }

    /// Small chunks (the element is 16 KiB), so that a few hundred operations cross many.
    type Big = [u64; 2048];

    #[test]
    fn chunks_hold_a_power_of_two_of_elements_in_about_chunk_bytes() {
        assert_eq!(ChunkDeque::<(u64, u64)>::CHUNK, 4096);
        assert_eq!(ChunkDeque::<[u8; 24]>::CHUNK, 2048);
        assert_eq!(ChunkDeque::<Big>::CHUNK, 4);
        assert_eq!(ChunkDeque::<[u8; 100_000]>::CHUNK, 1);
    }

    proptest! {
        /// Whatever is pushed and popped, the queue reads as a `VecDeque` given the same
        /// operations does, element by element and in every search.
        #[test]
        fn behaves_as_a_vecdeque(ops in prop::collection::vec(op(), 0..600)) {
            let mut queue: ChunkDeque<Big> = ChunkDeque::default();
            let mut model: VecDeque<u64> = VecDeque::new();
            let big = |value: u64| -> Big { [value; 2048] };
            for op in ops {
                match op {
                    Op::PushBack(value) => {
                        queue.push_back(big(value));
                        model.push_back(value);
                    }
                    Op::PopBack => prop_assert_eq!(queue.pop_back().map(|v| v[0]), model.pop_back()),
                    Op::PopFront => prop_assert_eq!(queue.pop_front().map(|v| v[0]), model.pop_front()),
                    Op::Set(at, value) if !model.is_empty() => {
                        let at = at % model.len();
                        queue[at] = big(value);
                        model[at] = value;
                    }
                    Op::Set(..) => prop_assert!(queue.get_mut(0).is_none()),
                }
                prop_assert_eq!(queue.len(), model.len());
                prop_assert_eq!(queue.front().map(|v| v[0]), model.front().copied());
                prop_assert_eq!(queue.back().map(|v| v[0]), model.back().copied());
                let read: Vec<u64> = queue.iter().map(|v| v[0]).collect();
                prop_assert_eq!(&read, &model.iter().copied().collect::<Vec<_>>());
                for (at, value) in model.iter().enumerate() {
                    prop_assert_eq!(queue.get(at).map(|v| v[0]), Some(*value));
                }
                prop_assert!(queue.get(model.len()).is_none());
            }
            // Searches over a sorted queue, some popped from the front: the model's
            // answer at every threshold.
            let mut values: Vec<u64> = model.iter().map(|value| value % 64).collect();
            values.sort_unstable();
            let mut sorted: ChunkDeque<Big> = ChunkDeque::default();
            for value in &values {
                sorted.push_back(big(*value));
            }
            for _ in 0..values.len() % 7 {
                sorted.pop_front();
                values.remove(0);
            }
            for threshold in 0..=65 {
                prop_assert_eq!(
                    sorted.partition_point(|v| v[0] < threshold),
                    values.partition_point(|v| *v < threshold)
                );
            }
        }
    }
}

//! [`CowVec`]: a sequence kept in shared, fixed-size chunks, so that a copy of it costs a
//! pointer per chunk and a chunk is copied only when one side writes to it.
//!
//! This is what lets a snapshot be taken without a second copy of the state: freezing the
//! state ([`crate::StateMachine::frozen`]) clones every large sequence (a venue's seats and
//! rows, the outbox) and every [`crate::idmap::IdMap`], which costs microseconds and shares
//! all the records; apply goes on at once and copies a chunk the first time it writes to
//! one the frozen copy still holds (`Arc::make_mut`). When the frozen copy has been encoded
//! and dropped, nothing is shared and writes copy nothing again.
//!
//! It serialises exactly as a `Vec<T>` does (a length, then the elements), so snapshots do
//! not depend on the choice.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use arrayvec::ArrayVec;
use serde::de::{SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Elements per chunk: a seat is about 56 bytes, so a chunk is some 14 KB — copied in about
/// a microsecond, and a million seats are 3,907 chunks (a freeze clones as many pointers).
pub(crate) const CHUNK: usize = 256;

type Chunk<T> = ArrayVec<T, CHUNK>;

/// A sequence in shared chunks (see the module documentation). Every chunk is full except
/// the last; the first `head` elements of the first chunk have been popped from the front
/// (they are dropped with their chunk).
pub(crate) struct CowVec<T> {
    /// A `Vec`, not a `VecDeque`: indexing is the hot path (a seat lookup), popping from the
    /// front (the outbox) moves the chunk pointers once per chunk emptied.
    chunks: Vec<Arc<Chunk<T>>>,
    head: usize,
    len: usize,
}

impl<T> Default for CowVec<T> {
    fn default() -> Self {
        CowVec {
            chunks: Vec::new(),
            head: 0,
            len: 0,
        }
    }
}

/// A clone shares every chunk; see the module documentation.
impl<T> Clone for CowVec<T> {
    fn clone(&self) -> Self {
        CowVec {
            chunks: self.chunks.clone(),
            head: self.head,
            len: self.len,
        }
    }
}

impl<T> CowVec<T> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The chunk and slot of element `index`, which must be below `len`.
    fn locate(&self, index: usize) -> (usize, usize) {
        let position = self.head + index;
        (position / CHUNK, position % CHUNK)
    }

    pub fn get(&self, index: usize) -> Option<&T> {
        if index >= self.len {
            return None;
        }
        let (chunk, slot) = self.locate(index);
        Some(&self.chunks[chunk][slot])
    }

    /// Asks the processor to fetch element `index`, if there is one, and the line of its
    /// chunk that a read of it checks (the chunk's length), without reading either: the two
    /// misses overlap instead of the second waiting for the first.
    pub fn prefetch(&self, index: usize) {
        if index >= self.len {
            return;
        }
        let (chunk, slot) = self.locate(index);
        let chunk: &Chunk<T> = &self.chunks[chunk];
        crate::prefetch::prefetch(chunk);
        crate::prefetch::prefetch_all(chunk.as_ptr().wrapping_add(slot));
    }

    pub fn front(&self) -> Option<&T> {
        self.get(0)
    }

    /// Drops the first element, if there is one. Its memory goes with its chunk, once every
    /// element of the chunk has gone.
    pub fn pop_front(&mut self) {
        if self.len == 0 {
            return;
        }
        self.len -= 1;
        self.head += 1;
        if self.len == 0 {
            self.chunks.clear();
            self.head = 0;
        } else if self.head == CHUNK {
            self.chunks.remove(0);
            self.head = 0;
        }
    }

    /// The elements in order; the iterator knows its length (serde sequences need it).
    pub fn iter(&self) -> Iter<'_, T> {
        self.iter_from(0)
    }

    /// The elements from `start` on, in order. Starts at the chunk of `start`, so the cost
    /// does not grow with the elements before it.
    pub fn iter_from(&self, start: usize) -> Iter<'_, T> {
        let start = start.min(self.len);
        let (chunk, slot) = self.locate(start);
        Iter {
            chunks: self.chunks[chunk.min(self.chunks.len())..].iter(),
            current: [].iter(),
            skip: slot,
            left: self.len - start,
        }
    }

    /// The index of the first element for which `pred` is false, the elements being
    /// partitioned by it (all `true` before all `false`), as `slice::partition_point`.
    pub fn partition_point(&self, mut pred: impl FnMut(&T) -> bool) -> usize {
        let (mut low, mut high) = (0, self.len);
        while low < high {
            let middle = low + (high - low) / 2;
            if pred(self.chunks_get(middle)) {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        low
    }

    fn chunks_get(&self, index: usize) -> &T {
        let (chunk, slot) = self.locate(index);
        &self.chunks[chunk][slot]
    }
}

impl<T: Clone> CowVec<T> {
    /// The element at `index`, copying its chunk first if a frozen copy shares it.
    pub fn get_mut(&mut self, index: usize) -> Option<&mut T> {
        if index >= self.len {
            return None;
        }
        let (chunk, slot) = self.locate(index);
        Some(&mut Arc::make_mut(&mut self.chunks[chunk])[slot])
    }

    pub fn push(&mut self, value: T) {
        if self.chunks.last().is_none_or(|chunk| chunk.is_full()) {
            self.chunks.push(Arc::new(ArrayVec::new()));
        }
        let last = self.chunks.last_mut().expect("a chunk with room");
        Arc::make_mut(last).push(value);
        self.len += 1;
    }
}

impl<T> std::ops::Index<usize> for CowVec<T> {
    type Output = T;

    fn index(&self, index: usize) -> &T {
        assert!(
            index < self.len,
            "index {index} out of range for length {}",
            self.len
        );
        self.chunks_get(index)
    }
}

impl<T: Clone> std::ops::IndexMut<usize> for CowVec<T> {
    fn index_mut(&mut self, index: usize) -> &mut T {
        let len = self.len;
        self.get_mut(index)
            .unwrap_or_else(|| panic!("index {index} out of range for length {len}"))
    }
}

/// An iterator over a [`CowVec`] (see [`CowVec::iter`]).
pub(crate) struct Iter<'a, T> {
    chunks: std::slice::Iter<'a, Arc<Chunk<T>>>,
    current: std::slice::Iter<'a, T>,
    /// Elements still to skip at the start of the next chunk.
    skip: usize,
    left: usize,
}

impl<'a, T> Iterator for Iter<'a, T> {
    type Item = &'a T;

    fn next(&mut self) -> Option<&'a T> {
        if self.left == 0 {
            return None;
        }
        loop {
            if let Some(value) = self.current.next() {
                self.left -= 1;
                return Some(value);
            }
            let chunk = self.chunks.next()?;
            self.current = chunk[std::mem::take(&mut self.skip)..].iter();
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl<T> ExactSizeIterator for Iter<'_, T> {}

impl<'a, T> IntoIterator for &'a CowVec<T> {
    type Item = &'a T;
    type IntoIter = Iter<'a, T>;

    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

impl<T: Clone> FromIterator<T> for CowVec<T> {
    fn from_iter<I: IntoIterator<Item = T>>(values: I) -> Self {
        let mut vec = CowVec::default();
        for value in values {
            vec.push(value);
        }
        vec
    }
}

impl<T: PartialEq> PartialEq for CowVec<T> {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl<T: Eq> Eq for CowVec<T> {}

impl<T: fmt::Debug> fmt::Debug for CowVec<T> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_list().entries(self.iter()).finish()
    }
}

impl<T: Serialize> Serialize for CowVec<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.len))?;
        for value in self {
            seq.serialize_element(value)?;
        }
        seq.end()
    }
}

impl<'de, T: Deserialize<'de> + Clone> Deserialize<'de> for CowVec<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<CowVec<T>, D::Error> {
        struct CowVecVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de> + Clone> Visitor<'de> for CowVecVisitor<T> {
            type Value = CowVec<T>;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a sequence")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<CowVec<T>, A::Error> {
                let mut vec = CowVec::default();
                while let Some(value) = access.next_element()? {
                    vec.push(value);
                }
                Ok(vec)
            }
        }

        deserializer.deserialize_seq(CowVecVisitor(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use proptest::prelude::*;

    use super::*;

    /// What a test does to the sequence (and to a `VecDeque` beside it).
    #[derive(Clone, Debug)]
    enum Step {
        Push(u32),
        PopFront,
        Set(usize, u32),
        /// Keeps a clone (a frozen copy) from here on.
        Freeze,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            6 => any::<u32>().prop_map(Step::Push),
            2 => Just(Step::PopFront),
            2 => (any::<usize>(), any::<u32>()).prop_map(|(index, value)| Step::Set(index, value)),
            1 => Just(Step::Freeze),
        ]
    }

    proptest! {
        /// Behaves as a `VecDeque`, and a clone taken at any point keeps exactly what the
        /// sequence held then, whatever is written afterwards.
        #[test]
        fn behaves_like_a_deque_and_clones_never_change(steps in proptest::collection::vec(step(), 0..2_000)) {
            let mut vec = CowVec::default();
            let mut model = VecDeque::new();
            let mut frozen: Vec<(CowVec<u32>, Vec<u32>)> = Vec::new();
            for step in steps {
                match step {
                    Step::Push(value) => {
                        vec.push(value);
                        model.push_back(value);
                    }
                    Step::PopFront => {
                        vec.pop_front();
                        model.pop_front();
                    }
                    Step::Set(index, value) if !model.is_empty() => {
                        let index = index % model.len();
                        vec[index] = value;
                        model[index] = value;
                    }
                    Step::Set(..) => {}
                    Step::Freeze => frozen.push((vec.clone(), model.iter().copied().collect())),
                }
                prop_assert_eq!(vec.len(), model.len());
            }
            prop_assert!(vec.iter().eq(model.iter()));
            prop_assert_eq!(vec.iter().len(), model.len());
            for start in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, model.len()] {
                prop_assert!(vec.iter_from(start).eq(model.iter().skip(start)));
            }
            for index in 0..model.len() {
                prop_assert_eq!(vec.get(index), model.get(index));
            }
            prop_assert_eq!(vec.get(model.len()), None);
            prop_assert_eq!(vec.front(), model.front());
            for (copy, then) in &frozen {
                prop_assert!(copy.iter().eq(then.iter()));
            }
        }
    }

    #[test]
    fn serialises_like_a_vec_and_back() {
        let mut vec = CowVec::default();
        for value in 0..1_000u32 {
            vec.push(value);
        }
        for _ in 0..300 {
            vec.pop_front();
        }
        let model: Vec<u32> = (300..1_000).collect();
        let config = bincode::config::standard();
        let bytes = bincode::serde::encode_to_vec(&vec, config).unwrap();
        assert_eq!(
            bytes,
            bincode::serde::encode_to_vec(&model, config).unwrap()
        );
        let (back, _): (CowVec<u32>, usize) =
            bincode::serde::decode_from_slice(&bytes, config).unwrap();
        assert_eq!(back, vec);
    }

    #[test]
    fn a_write_copies_only_the_chunk_a_clone_shares() {
        let vec: CowVec<u32> = (0..CHUNK as u32 * 4).collect();
        let mut written = vec.clone();
        written[CHUNK + 1] = 7;
        for chunk in [0, 2, 3] {
            assert!(Arc::ptr_eq(&vec.chunks[chunk], &written.chunks[chunk]));
        }
        assert!(!Arc::ptr_eq(&vec.chunks[1], &written.chunks[1]));
        assert_eq!(vec[CHUNK + 1], CHUNK as u32 + 1);
        assert_eq!(written[CHUNK + 1], 7);
    }

    #[test]
    fn partition_point_finds_the_first_false() {
        let vec: CowVec<u32> = (0..1_000u32).collect();
        assert_eq!(vec.partition_point(|value| *value < 617), 617);
        assert_eq!(vec.partition_point(|_| true), 1_000);
        assert_eq!(vec.partition_point(|_| false), 0);
    }
}

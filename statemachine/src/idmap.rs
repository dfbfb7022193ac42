//! [`IdMap`]: records keyed by the sequential ids the state machine hands out (holds,
//! bookings, refunds), stored densely.
//!
//! Ids are issued in increasing order and records leave roughly in that order (a hold is
//! forgotten a retention window after it ends, and no hold lives longer than the
//! configured maximum), so the live ids form a window. A ring buffer of slots over that
//! window costs one record per id, where a `BTreeMap` costs its half-full nodes — about
//! twice the memory on the hottest write path, and a node split every few inserts. Empty
//! stretches inside the window cost their slots until the window moves past them.
//!
//! It serialises exactly as a `BTreeMap<u64, T>` does (a map in ascending id order), so
//! snapshots do not depend on the choice.

use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Slots per chunk. Chunks keep growth incremental: a new chunk is one allocation, never a
/// copy of everything stored (a flat ring buffer would move every record when it doubles,
/// stalling apply for tens of milliseconds at a million holds).
const CHUNK: usize = 64;

#[derive(Clone, Debug, PartialEq, Eq)]
struct Chunk<T> {
    used: usize,
    slots: [Option<T>; CHUNK],
}

impl<T> Chunk<T> {
    fn new() -> Arc<Chunk<T>> {
        Arc::new(Chunk {
            used: 0,
            slots: std::array::from_fn(|_| None),
        })
    }
}

/// A map from sequential ids to records. The first and the last chunk always hold a
/// record, so equal contents have equal representations.
///
/// Chunks are shared between clones, as [`crate::cowvec::CowVec`]'s are: a clone (a frozen
/// state that a snapshot encodes) costs a pointer per chunk, and a write copies the chunk
/// it lands in if a clone still holds it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct IdMap<T> {
    /// The id of the first slot of `chunks[0]`, a multiple of [`CHUNK`].
    base: u64,
    chunks: VecDeque<Arc<Chunk<T>>>,
    len: usize,
}

/// A clone shares every chunk (see [`IdMap`]).
impl<T> Clone for IdMap<T> {
    fn clone(&self) -> Self {
        IdMap {
            base: self.base,
            chunks: self.chunks.clone(),
            len: self.len,
        }
    }
}

impl<T> Default for IdMap<T> {
    fn default() -> Self {
        IdMap {
            base: 0,
            chunks: VecDeque::new(),
            len: 0,
        }
    }
}

impl<T> IdMap<T> {
    /// Records stored.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The chunk and slot of `id`, when it lies inside the stored window.
    fn locate(&self, id: u64) -> Option<(usize, usize)> {
        let offset = usize::try_from(id.checked_sub(self.base)?).ok()?;
        let chunk = offset / CHUNK;
        (chunk < self.chunks.len()).then_some((chunk, offset % CHUNK))
    }

    pub fn get(&self, id: &u64) -> Option<&T> {
        let (chunk, slot) = self.locate(*id)?;
        self.chunks[chunk].slots[slot].as_ref()
    }

    pub fn contains_key(&self, id: &u64) -> bool {
        self.get(id).is_some()
    }

    /// Records in ascending id order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &T)> + '_ {
        let base = self.base;
        self.chunks
            .iter()
            .flat_map(|chunk| chunk.slots.iter())
            .enumerate()
            .filter_map(move |(offset, slot)| {
                slot.as_ref().map(|value| (base + offset as u64, value))
            })
    }
}

impl<T: Clone> IdMap<T> {
    /// The record of `id`, its chunk copied first if a clone shares it.
    pub fn get_mut(&mut self, id: &u64) -> Option<&mut T> {
        let (chunk, slot) = self.locate(*id)?;
        self.chunks[chunk].slots[slot].as_ref()?;
        Arc::make_mut(&mut self.chunks[chunk]).slots[slot].as_mut()
    }

    /// Inserts or replaces the record of `id`, returning the one it replaced. Ids are
    /// normally issued in increasing order, which appends.
    pub fn insert(&mut self, id: u64, value: T) -> Option<T> {
        let chunk_base = id - id % CHUNK as u64;
        if self.chunks.is_empty() {
            self.base = chunk_base;
        }
        while chunk_base < self.base {
            self.chunks.push_front(Chunk::new());
            self.base -= CHUNK as u64;
        }
        let offset = usize::try_from(id - self.base).expect("ids within a window fit usize");
        while offset / CHUNK >= self.chunks.len() {
            self.chunks.push_back(Chunk::new());
        }
        let chunk = Arc::make_mut(&mut self.chunks[offset / CHUNK]);
        let slot = &mut chunk.slots[offset % CHUNK];
        if slot.is_some() {
            return slot.replace(value);
        }
        // Written without reading the empty slot back out (the usual case: a new id).
        *slot = Some(value);
        chunk.used += 1;
        self.len += 1;
        None
    }

    pub fn remove(&mut self, id: &u64) -> Option<T> {
        let (chunk, slot) = self.locate(*id)?;
        self.chunks[chunk].slots[slot].as_ref()?;
        let chunk = Arc::make_mut(&mut self.chunks[chunk]);
        let removed = chunk.slots[slot].take()?;
        chunk.used -= 1;
        self.len -= 1;
        while self.chunks.front().is_some_and(|chunk| chunk.used == 0) {
            self.chunks.pop_front();
            self.base += CHUNK as u64;
        }
        while self.chunks.back().is_some_and(|chunk| chunk.used == 0) {
            self.chunks.pop_back();
        }
        if self.chunks.is_empty() {
            self.base = 0;
        }
        Some(removed)
    }
}

impl<T> IdMap<T> {
    /// Records with an id of at least `first`, in ascending id order. Starts at the chunk of
    /// `first`, so the cost does not grow with the records before it.
    pub fn iter_from(&self, first: u64) -> impl Iterator<Item = (u64, &T)> + '_ {
        let offset = first.saturating_sub(self.base);
        let first_chunk = usize::try_from(offset / CHUNK as u64)
            .unwrap_or(usize::MAX)
            .min(self.chunks.len());
        let chunk_base = self.base + (first_chunk * CHUNK) as u64;
        let skip = if first_chunk < self.chunks.len() {
            (offset % CHUNK as u64) as usize
        } else {
            0
        };
        self.chunks
            .range(first_chunk..)
            .flat_map(|chunk| chunk.slots.iter())
            .enumerate()
            .skip(skip)
            .filter_map(move |(offset, slot)| {
                slot.as_ref()
                    .map(|value| (chunk_base + offset as u64, value))
            })
    }

    /// The records in ascending id order, without their ids; the iterator knows its length
    /// (serde sequences need it).
    pub fn values(&self) -> impl ExactSizeIterator<Item = &T> + '_ {
        Counted {
            values: self.iter().map(|(_, value)| value),
            left: self.len,
        }
    }
}

/// An iterator over an [`IdMap`]'s values that knows how many are left.
struct Counted<I> {
    values: I,
    left: usize,
}

impl<I: Iterator> Iterator for Counted<I> {
    type Item = I::Item;

    fn next(&mut self) -> Option<I::Item> {
        let value = self.values.next()?;
        self.left -= 1;
        Some(value)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl<I: Iterator> ExactSizeIterator for Counted<I> {}

impl<T> std::ops::Index<&u64> for IdMap<T> {
    type Output = T;

    fn index(&self, id: &u64) -> &T {
        self.get(id).expect("no record with this id")
    }
}

impl<T: Serialize> Serialize for IdMap<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len))?;
        for (id, value) in self.iter() {
            map.serialize_entry(&id, value)?;
        }
        map.end()
    }
}

impl<'de, T: Deserialize<'de> + Clone> Deserialize<'de> for IdMap<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<IdMap<T>, D::Error> {
        struct IdMapVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de> + Clone> Visitor<'de> for IdMapVisitor<T> {
            type Value = IdMap<T>;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a map of ids in ascending order")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<IdMap<T>, A::Error> {
                let mut map = IdMap::default();
                let mut last = None;
                while let Some((id, value)) = access.next_entry::<u64, T>()? {
                    // Ascending order is what a snapshot writes; anything else is corrupt.
                    if last.is_some_and(|last| id <= last) {
                        return Err(serde::de::Error::custom(format!("id {id} is out of order")));
                    }
                    last = Some(id);
                    map.insert(id, value);
                }
                Ok(map)
            }
        }

        deserializer.deserialize_map(IdMapVisitor(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn behaves_like_a_btree_map_and_serialises_like_one() {
        let mut map = IdMap::default();
        let mut model = BTreeMap::new();
        // Ascending inserts, removals from the front, the middle and the back, an insert
        // below the window, a replacement.
        for id in 1..=20u64 {
            assert_eq!(map.insert(id, id * 10), model.insert(id, id * 10));
        }
        for id in [1, 2, 7, 8, 20, 19, 3, 42] {
            assert_eq!(map.remove(&id), model.remove(&id));
        }
        assert_eq!(map.insert(2, 5), model.insert(2, 5));
        assert_eq!(map.insert(9, 90), model.insert(9, 90));
        assert_eq!(map.insert(30, 300), model.insert(30, 300));
        assert_eq!(map.iter().count(), model.len());
        let pairs: Vec<(u64, u64)> = map.iter().map(|(id, value)| (id, *value)).collect();
        let expected: Vec<(u64, u64)> = model.iter().map(|(id, value)| (*id, *value)).collect();
        assert_eq!(pairs, expected);
        for id in 0..40 {
            assert_eq!(map.get(&id), model.get(&id));
        }

        let config = bincode::config::standard();
        let bytes = bincode::serde::encode_to_vec(&map, config).unwrap();
        assert_eq!(
            bytes,
            bincode::serde::encode_to_vec(&model, config).unwrap()
        );
        let (back, _): (IdMap<u64>, usize) =
            bincode::serde::decode_from_slice(&bytes, config).unwrap();
        assert_eq!(back, map);
    }

    #[test]
    fn a_window_moving_across_many_chunks_keeps_only_its_own() {
        let mut map = IdMap::default();
        for id in 1..=10_000u64 {
            map.insert(id, id);
            if id > 1_000 {
                assert_eq!(map.remove(&(id - 1_000)), Some(id - 1_000));
            }
        }
        assert_eq!(map.len, 1_000);
        assert!(map.chunks.len() <= 1_000 / CHUNK + 2);
        assert_eq!(map.iter().next(), Some((9_001, &9_001)));
        assert_eq!(map.get(&9_000), None);
        assert_eq!(map[&10_000], 10_000);
    }

    #[test]
    fn removing_everything_leaves_an_empty_map() {
        let mut map = IdMap::default();
        for id in 5..10u64 {
            map.insert(id, ());
        }
        for id in (5..10u64).rev() {
            map.remove(&id);
        }
        assert_eq!(map, IdMap::default());
        map.insert(100, ());
        assert_eq!(map.iter().map(|(id, _)| id).collect::<Vec<_>>(), [100]);
    }

    #[test]
    fn ids_out_of_order_are_refused_on_decode() {
        let model: Vec<(u64, u8)> = vec![(3, 1), (2, 1)];
        let config = bincode::config::standard();
        let mut bytes = bincode::serde::encode_to_vec(model.len() as u64, config).unwrap();
        for pair in &model {
            bytes.extend(bincode::serde::encode_to_vec(pair, config).unwrap());
        }
        let decoded: Result<(IdMap<u8>, usize), _> =
            bincode::serde::decode_from_slice(&bytes, config);
        assert!(decoded.is_err());
    }
}

//! [`ShardedMap`]: a hash map split into [`SHARDS`] tables by each key's hash, for the
//! derived indexes that grow with every booking (a customer's bookings, what each payment
//! went to).
//!
//! One hash table doubles all at once: at a quarter of a million bookings, one confirm
//! rehashed every entry into a fresh table while apply, and every answer behind it,
//! waited (the apply bench's confirms: a batch of 512 took 24 ms). Split 256 ways, a table
//! that doubles holds a 256th of the entries. Lookups cost one hash, as before: the top
//! byte of the key's hash picks the table, and the table sees the hash rotated so that
//! byte is neither its control tag (the top bits) nor its slot (the low bits).
//!
//! Looked up, never iterated (but for `Debug`), so where entries sit cannot reach any
//! outcome.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};

use hashbrown::hash_table::Entry;
use hashbrown::{DefaultHashBuilder, HashTable};

/// Tables a map is split into: the top byte of a hash.
const SHARDS: usize = 256;

/// A hash map in [`SHARDS`] tables (see the module documentation).
#[derive(Clone)]
pub(crate) struct ShardedMap<K, V> {
    hasher: DefaultHashBuilder,
    shards: Box<[HashTable<(K, V)>]>,
}

impl<K, V> Default for ShardedMap<K, V> {
    fn default() -> Self {
        ShardedMap {
            hasher: DefaultHashBuilder::default(),
            shards: (0..SHARDS).map(|_| HashTable::new()).collect(),
        }
    }
}

impl<K: fmt::Debug, V: fmt::Debug> fmt::Debug for ShardedMap<K, V> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_map()
            .entries(
                self.shards
                    .iter()
                    .flat_map(|shard| shard.iter())
                    .map(|(k, v)| (k, v)),
            )
            .finish()
    }
}

/// Equal when they hold the same entries, wherever they sit.
impl<K: Hash + Eq, V: PartialEq> PartialEq for ShardedMap<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len()
            && self
                .shards
                .iter()
                .flat_map(|shard| shard.iter())
                .all(|(key, value)| other.get(key) == Some(value))
    }
}

impl<K: Hash + Eq, V> ShardedMap<K, V> {
    /// The table of a key with hash `hash`, and the hash that table uses.
    fn place(hash: u64) -> (usize, u64) {
        ((hash >> 56) as usize, hash.rotate_right(8))
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(HashTable::len).sum()
    }

    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (shard, hash) = Self::place(self.hasher.hash_one(key));
        self.shards[shard]
            .find(hash, |(stored, _)| stored.borrow() == key)
            .map(|(_, value)| value)
    }

    /// The entry of `key` in its table.
    fn entry<'a>(
        hasher: &DefaultHashBuilder,
        shards: &'a mut [HashTable<(K, V)>],
        key: &K,
    ) -> Entry<'a, (K, V)> {
        let (shard, hash) = Self::place(hasher.hash_one(key));
        shards[shard].entry(
            hash,
            |(stored, _)| stored == key,
            |(stored, _)| Self::place(hasher.hash_one(stored)).1,
        )
    }

    /// The value of `key`, inserted as `V::default()` if it had none.
    pub fn get_or_default(&mut self, key: K) -> &mut V
    where
        V: Default,
    {
        match Self::entry(&self.hasher, &mut self.shards, &key) {
            Entry::Occupied(entry) => &mut entry.into_mut().1,
            Entry::Vacant(entry) => &mut entry.insert((key, V::default())).into_mut().1,
        }
    }

    /// Sets `key` to `value`; the value it had, if any.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        match Self::entry(&self.hasher, &mut self.shards, &key) {
            Entry::Occupied(mut entry) => Some(std::mem::replace(&mut entry.get_mut().1, value)),
            Entry::Vacant(entry) => {
                entry.insert((key, value));
                None
            }
        }
    }

    pub fn clear(&mut self) {
        for shard in self.shards.iter_mut() {
            *shard = HashTable::new();
        }
    }

    /// The entries of the largest table (for the tests).
    #[cfg(test)]
    fn largest_table(&self) -> usize {
        self.shards.iter().map(HashTable::len).max().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    proptest! {
        /// Reads as a `HashMap` given the same inserts does, key by key.
        #[test]
        fn answers_as_a_map_does(
            ops in prop::collection::vec((0u32..400, any::<u16>(), any::<bool>()), 0..800),
        ) {
            let mut map: ShardedMap<String, Vec<u16>> = ShardedMap::default();
            let mut model: HashMap<String, Vec<u16>> = HashMap::new();
            for (key, value, append) in ops {
                let key = format!("customer-{key}");
                if append {
                    map.get_or_default(key.clone()).push(value);
                    model.entry(key).or_default().push(value);
                } else {
                    prop_assert_eq!(map.insert(key.clone(), vec![value]), model.insert(key, vec![value]));
                }
                prop_assert_eq!(map.len(), model.len());
            }
            for key in 0..400 {
                let key = format!("customer-{key}");
                prop_assert_eq!(map.get(key.as_str()), model.get(&key));
            }
            let mut rebuilt: ShardedMap<String, Vec<u16>> = ShardedMap::default();
            for (key, value) in &model {
                rebuilt.insert(key.clone(), value.clone());
            }
            prop_assert!(rebuilt == map);
            rebuilt.clear();
            prop_assert_eq!(rebuilt.len(), 0);
            prop_assert!(rebuilt.get("customer-1").is_none());
            prop_assert!(rebuilt != map || model.is_empty());
        }
    }

    #[test]
    fn the_tables_share_the_entries() {
        let mut map: ShardedMap<u64, u64> = ShardedMap::default();
        for key in 0..100_000 {
            map.insert(key, key);
        }
        assert_eq!(map.len(), 100_000);
        // 390 a table on average; far from all in a few.
        assert!(map.largest_table() < 600, "{}", map.largest_table());
    }
}

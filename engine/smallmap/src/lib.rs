//! SmallMap: a map kept as one sorted vector, for the many tiny maps a large run holds (a task's
//! one or two inputs and outputs, an instance's manifest): a `BTreeMap` spends an eleven-slot node
//! on each, ten times the space.

use std::borrow::Borrow;
use std::fmt;
use std::ops::{Deref, DerefMut, Index};

use litemap::LiteMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A sorted-vector map with the `BTreeMap` API a manifest needs (through `Deref` to
/// [`LiteMap`]): lookups by binary search, iteration in key order, and the same serialized
/// form as a `BTreeMap` (a map, `{}` when empty).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SmallMap<K, V>(LiteMap<K, V>);

impl<K, V> SmallMap<K, V> {
    /// An empty map (allocates nothing).
    pub const fn new() -> Self {
        SmallMap(LiteMap::new_vec())
    }
}

impl<K, V> Default for SmallMap<K, V> {
    fn default() -> Self {
        SmallMap::new()
    }
}

impl<K: fmt::Debug, V: fmt::Debug> fmt::Debug for SmallMap<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.0.iter()).finish()
    }
}

impl<K, V> Deref for SmallMap<K, V> {
    type Target = LiteMap<K, V>;
    fn deref(&self) -> &LiteMap<K, V> {
        &self.0
    }
}

impl<K, V> DerefMut for SmallMap<K, V> {
    fn deref_mut(&mut self) -> &mut LiteMap<K, V> {
        &mut self.0
    }
}

impl<K: Ord + Borrow<Q>, V, Q: Ord + ?Sized> Index<&Q> for SmallMap<K, V> {
    type Output = V;
    /// The value of `key`; panics when there is none, as `BTreeMap` does.
    fn index(&self, key: &Q) -> &V {
        self.0.get(key).expect("no entry found for key")
    }
}

impl<K: Ord, V> FromIterator<(K, V)> for SmallMap<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        SmallMap(compact(iter.into_iter().collect()))
    }
}

impl<K: Ord, V, const N: usize> From<[(K, V); N]> for SmallMap<K, V> {
    fn from(entries: [(K, V); N]) -> Self {
        entries.into_iter().collect()
    }
}

impl<'a, K, V> IntoIterator for &'a SmallMap<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = std::iter::Map<std::slice::Iter<'a, (K, V)>, fn(&'a (K, V)) -> (&'a K, &'a V)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.as_slice().iter().map(|(k, v)| (k, v))
    }
}

impl<K, V> IntoIterator for SmallMap<K, V> {
    type Item = (K, V);
    type IntoIter = std::vec::IntoIter<(K, V)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_tuple_vec().into_iter()
    }
}

impl<K: Serialize, V: Serialize> Serialize for SmallMap<K, V> {
    /// Always a map (`LiteMap` writes an empty map as `[]`): the on-disk form of a `BTreeMap`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter())
    }
}

impl<'de, K: Deserialize<'de> + Ord, V: Deserialize<'de>> Deserialize<'de> for SmallMap<K, V> {
    /// A map in any key order (a key given twice keeps its last value, as a `BTreeMap` does).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(SmallMap(compact(LiteMap::<K, V>::deserialize(d)?)))
    }
}

/// `m` without spare capacity (a large run keeps thousands of these for its whole length).
fn compact<K, V>(m: LiteMap<K, V>) -> LiteMap<K, V> {
    let mut v = m.into_tuple_vec();
    v.shrink_to_fit();
    // Still sorted, without duplicate keys: it is the same store.
    LiteMap::from_sorted_store_unchecked(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn reads_and_writes_like_a_btree_map() {
        let b: BTreeMap<String, u32> = [("b".into(), 2), ("a".into(), 1), ("c".into(), 3)].into();
        let s: SmallMap<String, u32> = [("c".into(), 3), ("a".into(), 1), ("b".into(), 2)].into();
        assert_eq!(serde_json::to_string(&s).unwrap(), serde_json::to_string(&b).unwrap());
        assert_eq!(serde_json::to_string(&SmallMap::<String, u32>::new()).unwrap(), "{}");
        let back: SmallMap<String, u32> = serde_json::from_str(r#"{"c": 3, "a": 1, "b": 2, "a": 5}"#).unwrap();
        let order: Vec<(&String, &u32)> = back.iter().collect();
        assert_eq!(order, vec![(&"a".to_owned(), &5), (&"b".to_owned(), &2), (&"c".to_owned(), &3)]);
        assert_eq!(back.get("b"), Some(&2));
        assert_eq!((&back).into_iter().count(), 3);
    }
}

//! Sharded backfills: `--shard I/N` takes a deterministic, balanced slice of a run's partitions
//! so that N machines (a CI matrix) together cover a range, each partition exactly once.
//!
//! The slice is round-robin by position in time order: shard I gets the partitions at positions
//! I-1, I-1+N, I-1+2N, ... of each scheme's sorted partitions. It depends only on the range and
//! N (never on the machine, the order `--partitions` were given in or the cache), shard sizes
//! differ by at most one, and every shard gets old and new partitions alike: recent data is
//! often the bigger part, which contiguous blocks would give to the last shard alone.

use std::fmt;
use std::str::FromStr;

/// Shard `index` of `count` (1 ≤ index ≤ count), as `--shard I/N` gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shard {
    index: u32,
    count: u32,
}

/// Why a `--shard` value is not a shard.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    /// Not two whole numbers separated by one `/`.
    #[error("`{0}` is not a shard: write I/N, shard I of N shards (e.g. 2/3)")]
    Syntax(String),
    /// `N` is 0.
    #[error("`{0}`: the number of shards must be at least 1 (e.g. 1/1)")]
    NoShards(String),
    /// `I` is 0 or more than `N`.
    #[error("`{given}`: shards are numbered 1 to {count} (1/{count} to {count}/{count})")]
    OutOfRange {
        /// The value as given.
        given: String,
        /// `N`.
        count: u32,
    },
}

impl Shard {
    /// Shard `index` (from 1) of `count`.
    pub fn new(index: u32, count: u32) -> Result<Shard, ShardError> {
        let given = || format!("{index}/{count}");
        if count == 0 {
            return Err(ShardError::NoShards(given()));
        }
        if index == 0 || index > count {
            return Err(ShardError::OutOfRange { given: given(), count });
        }
        Ok(Shard { index, count })
    }

    /// `I`, from 1.
    pub fn index(self) -> u32 {
        self.index
    }

    /// `N`.
    pub fn count(self) -> u32 {
        self.count
    }

    /// Whether this shard is the whole run (`1/1`).
    pub fn is_whole(self) -> bool {
        self.count == 1
    }

    /// This shard's items of `items` (in the order given, which the caller makes the time
    /// order): those at positions `index - 1` modulo `count`.
    pub fn take<T>(self, items: Vec<T>) -> Vec<T> {
        let (n, i) = (self.count as usize, self.index as usize - 1);
        items.into_iter().enumerate().filter(|(p, _)| p % n == i).map(|(_, t)| t).collect()
    }
}

impl FromStr for Shard {
    type Err = ShardError;

    fn from_str(s: &str) -> Result<Shard, ShardError> {
        let syntax = || ShardError::Syntax(s.to_owned());
        let (i, n) = s.trim().split_once('/').ok_or_else(syntax)?;
        let number = |p: &str| {
            let p = p.trim();
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(syntax());
            }
            p.parse::<u32>().map_err(|_| syntax())
        };
        let (index, count) = (number(i)?, number(n)?);
        Shard::new(index, count).map_err(|e| match e {
            ShardError::NoShards(_) => ShardError::NoShards(s.to_owned()),
            ShardError::OutOfRange { count, .. } => ShardError::OutOfRange { given: s.to_owned(), count },
            e => e,
        })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(count: u32, len: usize) -> Vec<Vec<usize>> {
        (1..=count).map(|i| Shard::new(i, count).unwrap().take((0..len).collect())).collect()
    }

    #[test]
    fn shards_are_disjoint_cover_the_range_and_are_balanced() {
        for count in 1..=12u32 {
            for len in 0..=40usize {
                let shards = all(count, len);
                let mut union: Vec<usize> = shards.iter().flatten().copied().collect();
                union.sort_unstable();
                assert_eq!(union, (0..len).collect::<Vec<_>>(), "{count} shards of {len}: each item exactly once");
                let sizes: Vec<usize> = shards.iter().map(Vec::len).collect();
                let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
                assert!(max - min <= 1, "{count} shards of {len}: sizes {sizes:?}");
                assert!(shards.iter().all(|s| s.windows(2).all(|w| w[0] < w[1])), "each shard keeps the order");
            }
        }
    }

    #[test]
    fn the_split_is_round_robin_by_position() {
        assert_eq!(all(3, 8), vec![vec![0, 3, 6], vec![1, 4, 7], vec![2, 5]]);
        assert_eq!(all(1, 3), vec![vec![0, 1, 2]]);
        assert_eq!(all(4, 2), vec![vec![0], vec![1], vec![], vec![]], "shards beyond the items are empty");
        let dates: Vec<String> = (1..=5).map(|d| format!("2025-01-0{d}")).collect();
        let two: Shard = "2/2".parse().unwrap();
        assert_eq!(two.take(dates.clone()), ["2025-01-02", "2025-01-04"]);
        assert_eq!(two.take(dates), two.take((1..=5).map(|d| format!("2025-01-0{d}")).collect()), "deterministic");
    }

    #[test]
    fn shards_parse_and_print_as_i_of_n() {
        let s: Shard = "2/3".parse().unwrap();
        assert_eq!((s.index(), s.count(), s.to_string()), (2, 3, "2/3".to_owned()));
        assert_eq!(" 1/1 ".parse::<Shard>().unwrap(), Shard::new(1, 1).unwrap());
        assert!(Shard::new(1, 1).unwrap().is_whole() && !s.is_whole());
    }

    #[test]
    fn bad_shards_say_what_is_wrong() {
        let err = |s: &str| s.parse::<Shard>().unwrap_err().to_string();
        assert_eq!(err("0/3"), "`0/3`: shards are numbered 1 to 3 (1/3 to 3/3)");
        assert_eq!(err("4/3"), "`4/3`: shards are numbered 1 to 3 (1/3 to 3/3)");
        assert_eq!(err("1/0"), "`1/0`: the number of shards must be at least 1 (e.g. 1/1)");
        for bad in ["abc", "1/3/4", "3", "/3", "1/", "-1/3", "+1/3", "1.5/3", "a/3", "", "99999999999/3"] {
            assert_eq!(err(bad), format!("`{bad}` is not a shard: write I/N, shard I of N shards (e.g. 2/3)"));
        }
    }
}

//! The decision index: one hash probe from a (server, client) pair to the
//! client's rules towards that server.
//!
//! Keys carry a precomputed 64-bit hash and the pair's names in one string, so
//! a probe touches few cache lines however large the policy. The index is
//! split into shards that are shared between snapshots and copied on write, so
//! a change copies only the shards it touches.

use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Arc;

use foldhash::fast::RandomState;
use hashbrown::{Equivalent, HashMap};
use ibac_model::WorkloadId;

use crate::rules::ClientRules;

const SHARDS: usize = 1024;

/// Hashes a precomputed hash: keys hash themselves once, when built.
#[derive(Clone, Copy, Default)]
struct PassThrough;

#[derive(Default)]
struct PassThroughHasher(u64);

impl Hasher for PassThroughHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

impl BuildHasher for PassThrough {
    type Hasher = PassThroughHasher;
    fn build_hasher(&self) -> PassThroughHasher {
        PassThroughHasher::default()
    }
}

/// `server` and `client` joined by a space (names never contain one).
#[derive(Clone, Debug, PartialEq, Eq)]
struct PairKey {
    hash: u64,
    joined: Arc<str>,
}

impl Hash for PairKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// A lookup key that borrows the names instead of joining them.
struct PairRef<'a> {
    hash: u64,
    server: &'a str,
    client: &'a str,
}

impl Hash for PairRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl Equivalent<PairKey> for PairRef<'_> {
    fn equivalent(&self, key: &PairKey) -> bool {
        let joined = key.joined.as_bytes();
        let (s, c) = (self.server.as_bytes(), self.client.as_bytes());
        self.hash == key.hash
            && joined.len() == s.len() + 1 + c.len()
            && joined.starts_with(s)
            && joined.get(s.len()) == Some(&b' ')
            && joined.ends_with(c)
    }
}

type Shard = HashMap<PairKey, Arc<ClientRules>, PassThrough>;

/// (server, client) → rules, persistent by shard.
#[derive(Clone)]
pub(crate) struct PairIndex {
    seed: RandomState,
    shards: Arc<Vec<Arc<Shard>>>,
}

impl PairIndex {
    pub(crate) fn new() -> Self {
        PairIndex {
            seed: RandomState::default(),
            shards: Arc::new((0..SHARDS).map(|_| Arc::new(Shard::default())).collect()),
        }
    }

    fn hash(&self, server: &str, client: &str) -> u64 {
        let mut h = self.seed.build_hasher();
        server.hash(&mut h);
        client.hash(&mut h);
        h.finish()
    }

    /// Bits from 32 up pick the shard; hashbrown uses the low bits and the top seven.
    fn shard_of(hash: u64) -> usize {
        ((hash >> 32) as usize) % SHARDS
    }

    pub(crate) fn get(&self, server: &WorkloadId, client: &WorkloadId) -> Option<&ClientRules> {
        let probe = PairRef {
            hash: self.hash(server.as_str(), client.as_str()),
            server: server.as_str(),
            client: client.as_str(),
        };
        self.shards
            .get(Self::shard_of(probe.hash))?
            .get(&probe)
            .map(Arc::as_ref)
    }

    fn shard_mut(&mut self, hash: u64) -> Option<&mut Shard> {
        let shards = Arc::make_mut(&mut self.shards);
        shards.get_mut(Self::shard_of(hash)).map(Arc::make_mut)
    }

    pub(crate) fn insert(
        &mut self,
        server: &WorkloadId,
        client: &WorkloadId,
        rules: Arc<ClientRules>,
    ) {
        let hash = self.hash(server.as_str(), client.as_str());
        let key = PairKey {
            hash,
            joined: format!("{server} {client}").into(),
        };
        if let Some(shard) = self.shard_mut(hash) {
            shard.insert(key, rules);
        }
    }

    pub(crate) fn remove(&mut self, server: &WorkloadId, client: &WorkloadId) {
        let probe = PairRef {
            hash: self.hash(server.as_str(), client.as_str()),
            server: server.as_str(),
            client: client.as_str(),
        };
        if let Some(shard) = self.shard_mut(probe.hash) {
            shard.remove(&probe);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> WorkloadId {
        WorkloadId::parse(s).unwrap()
    }

    #[test]
    fn finds_only_the_exact_pair_and_copies_on_write() {
        let mut index = PairIndex::new();
        let rules = Arc::new(ClientRules::default());
        index.insert(&id("a.x"), &id("b.x"), rules.clone());
        let before = index.clone();
        index.insert(&id("c.x"), &id("d.x"), rules);
        assert!(index.get(&id("a.x"), &id("b.x")).is_some());
        assert!(index.get(&id("b.x"), &id("a.x")).is_none());
        assert!(index.get(&id("a.x"), &id("b.y")).is_none());
        assert!(
            before.get(&id("c.x"), &id("d.x")).is_none(),
            "the older snapshot is untouched"
        );
        index.remove(&id("a.x"), &id("b.x"));
        assert!(index.get(&id("a.x"), &id("b.x")).is_none());
        assert!(before.get(&id("a.x"), &id("b.x")).is_some());
    }
}

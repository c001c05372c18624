//! The bounded cache of valid keys and the per-peer limit on failed authentications.

use super::*;

/// A valid key as cached: its digest, who it is, until when it may be trusted.
#[derive(Clone)]
pub(crate) struct Cached {
    pub(crate) digest: String,
    pub(crate) caller: Caller,
    pub(crate) fetched: Instant,
    pub(crate) expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Valid keys by key id, at most `capacity`, each trusted for `ttl`.
pub(crate) struct KeyCache {
    pub(crate) entries: HashMap<String, Cached>,
    pub(crate) capacity: usize,
    pub(crate) ttl: Duration,
}

impl KeyCache {
    /// Whether this key was valid when last looked up (cached, fresh or not): its holder knows
    /// the secret, so a peer over its failure limit may still have it looked up again.
    pub(crate) fn known(&self, key_id: &str, digest: &str) -> bool {
        self.entries
            .get(key_id)
            .is_some_and(|c| digests_equal(&c.digest, digest))
    }

    pub(crate) fn get(&self, key_id: &str, digest: &str) -> Option<Caller> {
        let c = self.entries.get(key_id)?;
        let fresh =
            c.fetched.elapsed() < self.ttl && c.expires_at.is_none_or(|at| chrono::Utc::now() < at);
        (fresh && digests_equal(&c.digest, digest)).then(|| c.caller.clone())
    }

    pub(crate) fn insert(&mut self, key_id: String, entry: Cached) {
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&key_id) {
            let ttl = self.ttl;
            self.entries.retain(|_, c| c.fetched.elapsed() < ttl);
            if self.entries.len() >= self.capacity {
                // Still full of fresh keys: forget the oldest (it is looked up again if used).
                if let Some(oldest) = self
                    .entries
                    .iter()
                    .min_by_key(|(_, c)| c.fetched)
                    .map(|(k, _)| k.clone())
                {
                    self.entries.remove(&oldest);
                }
            }
        }
        self.entries.insert(key_id, entry);
        metrics::gauge!("mahnwerk_auth_cached_keys").set(self.entries.len() as f64);
    }
}

/// Token buckets of failed authentications per peer, in thousandths of a failure.
pub(crate) struct FailureLimiter {
    pub(crate) peers: HashMap<IpAddr, (u64, Instant)>,
    pub(crate) burst: u32,
    pub(crate) per_second: u32,
    pub(crate) max_peers: usize,
}

/// The peer a failure is charged to: the IP address, IPv6 by its /64 (one subscriber's net).
pub(crate) fn peer_key(addr: SocketAddr) -> IpAddr {
    match addr.ip() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

impl Default for FailureLimiter {
    fn default() -> Self {
        Self {
            peers: HashMap::new(),
            burst: FAILURE_BURST,
            per_second: FAILURES_PER_SECOND,
            max_peers: TRACKED_PEERS,
        }
    }
}

impl FailureLimiter {
    /// The peer's failures left now, in thousandths.
    pub(crate) fn tokens(&self, peer: &IpAddr, now: Instant) -> u64 {
        let full = u64::from(self.burst) * 1000;
        self.peers.get(peer).map_or(full, |(tokens, at)| {
            let ms = u64::try_from(now.duration_since(*at).as_millis()).unwrap_or(u64::MAX);
            tokens
                .saturating_add(ms.saturating_mul(u64::from(self.per_second)))
                .min(full)
        })
    }

    /// Whether the peer has failures left (a lookup may be tried).
    pub(crate) fn allowed(&self, peer: &IpAddr) -> bool {
        self.tokens(peer, Instant::now()) >= 1000
    }

    /// Take one failure from the peer's budget before a lookup, if it has one left: check and
    /// charge under one lock, so concurrent requests of a peer (HTTP/2 streams) cannot all pass
    /// the check before any is charged. A lookup that finds a valid key gives it back
    /// ([`FailureLimiter::refund`]).
    pub(crate) fn try_reserve(&mut self, peer: IpAddr) -> bool {
        if !self.allowed(&peer) {
            return false;
        }
        self.failed(peer);
        true
    }

    /// Give back what [`FailureLimiter::try_reserve`] took (the key was valid).
    pub(crate) fn refund(&mut self, peer: IpAddr) {
        let now = Instant::now();
        if self.peers.contains_key(&peer) {
            let full = u64::from(self.burst) * 1000;
            let left = self.tokens(&peer, now).saturating_add(1000).min(full);
            self.peers.insert(peer, (left, now));
        }
    }

    /// Charge one failure to the peer.
    pub(crate) fn failed(&mut self, peer: IpAddr) {
        let now = Instant::now();
        let left = self.tokens(&peer, now).saturating_sub(1000);
        if self.peers.len() >= self.max_peers && !self.peers.contains_key(&peer) {
            // Forget the peers whose buckets have refilled; if none has, the idlest one.
            let full = u64::from(self.burst) * 1000;
            let refilled: Vec<IpAddr> = self
                .peers
                .keys()
                .filter(|p| self.tokens(p, now) >= full)
                .copied()
                .collect();
            for p in refilled {
                self.peers.remove(&p);
            }
            if self.peers.len() >= self.max_peers
                && let Some(idlest) = self
                    .peers
                    .iter()
                    .min_by_key(|(_, (_, at))| *at)
                    .map(|(p, _)| *p)
            {
                self.peers.remove(&idlest);
            }
        }
        self.peers.insert(peer, (left, now));
        metrics::gauge!("mahnwerk_auth_failure_peers").set(self.peers.len() as f64);
    }
}

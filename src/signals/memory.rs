//! What the server remembers per request between evaluations: the last good answer (held
//! while a job restarts, or standing in for a stream whose series left the query window),
//! the parallelism it was measured at, and since when it has been held. One bounded store
//! with one eviction rule: an entry not requested for `idle_after` is dropped, and past
//! `max_entries` (`cache.maxRemembered`, apart from the value cache's bound) new requests are
//! not remembered. Keyed by a [`TextKey`] of the request, without its text.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::request::Item;
use crate::text_key::{TextHasher, TextKey};

#[derive(Debug, Clone, Default)]
pub(super) struct Remembered {
    pub items: Option<Vec<Item>>,
    /// The job's parallelism when `items` were measured.
    pub parallelism: Option<f64>,
    /// When `items` were last measured (backend time, Unix seconds).
    pub at: f64,
    /// Since when (backend time) the answer has been held for a restart.
    pub hold_since: Option<f64>,
    /// The restart episode (`Jobs::episode`) the hold began in.
    pub hold_episode: Option<f64>,
}

struct Slot {
    value: Remembered,
    requested: Instant,
}

pub(super) struct Memory {
    hasher: TextHasher,
    slots: Mutex<HashMap<TextKey, Slot>>,
    max_entries: usize,
    idle_after: Duration,
}

impl Memory {
    pub fn new(max_entries: usize, idle_after: Duration) -> Self {
        Self {
            hasher: TextHasher::default(),
            slots: Mutex::new(HashMap::new()),
            max_entries,
            idle_after,
        }
    }

    /// Runs `f` on the entry for `key` (a default one if new) and returns what it returns.
    /// When the store is full and `key` is new, `f` runs on a scratch entry that is not kept.
    pub fn with<R>(&self, key: &str, f: impl FnOnce(&mut Remembered) -> R) -> R {
        let key = self.hasher.key(key);
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if !slots.contains_key(&key) && slots.len() >= self.max_entries {
            let idle = self.idle_after;
            slots.retain(|_, s| s.requested.elapsed() < idle);
        }
        if let Some(slot) = slots.get_mut(&key) {
            slot.requested = Instant::now();
            return f(&mut slot.value);
        }
        let mut value = Remembered::default();
        let r = f(&mut value);
        if slots.len() < self.max_entries {
            slots.insert(
                key,
                Slot {
                    value,
                    requested: Instant::now(),
                },
            );
        }
        r
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.slots.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_idle_entries_make_room() {
        let m = Memory::new(2, Duration::from_millis(500));
        m.with("a", |r| r.at = 1.0);
        m.with("b", |r| r.at = 2.0);
        // Full: a new key is served but not kept while the others are fresh.
        assert_eq!(m.with("c", |r| r.at), 0.0);
        assert_eq!(m.len(), 2);
        assert_eq!(m.with("a", |r| r.at), 1.0);
        std::thread::sleep(Duration::from_millis(600));
        m.with("c", |r| r.at = 3.0);
        assert_eq!(m.with("c", |r| r.at), 3.0);
        assert_eq!(m.len(), 1);
    }
}

//! Serialized answers, kept while the data behind them is current.
//!
//! An HPA asks the same question every sync period, and many ask within one refresh interval
//! of the value cache: between two refreshes the answer cannot change, so its bytes are kept
//! and served as they are. The provider says until when an answer stays what a new evaluation
//! would give (the snapshot's refresh, or a value turning stale, whichever comes first); an
//! answer it cannot vouch for is never stored.
//!
//! Keyed by a [`TextKey`] of the request's path and query, without the text itself. Bounded by entries and
//! by body bytes, apart from the value cache: when full, expired answers make room, and past
//! that new answers are served but not kept.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use axum::body::Bytes;
use axum::http::Uri;

use crate::text_key::{TextHasher, TextKey};

/// Most answers kept at once.
pub const DEFAULT_MAX_ANSWERS: usize = 4096;
/// Most body bytes kept at once (a `pods/*` answer over 2,000 pods is about 450 KB).
pub const DEFAULT_MAX_ANSWER_BYTES: usize = 8 << 20;

pub type AnswerKey = TextKey;

/// One kept answer: its body, until when it holds, and the served values' timestamps (for
/// the age histogram every answer feeds).
#[derive(Debug, Clone)]
pub struct Kept {
    pub body: Bytes,
    pub timestamps: std::sync::Arc<[f64]>,
}

struct Slot {
    kept: Kept,
    until: Instant,
}

struct Slots {
    map: HashMap<AnswerKey, Slot>,
    bytes: usize,
}

pub struct Answers {
    hasher: TextHasher,
    slots: Mutex<Slots>,
    max_entries: usize,
    max_bytes: usize,
}

impl Default for Answers {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_ANSWERS, DEFAULT_MAX_ANSWER_BYTES)
    }
}

impl Answers {
    pub fn new(max_entries: usize, max_bytes: usize) -> Self {
        Self {
            hasher: TextHasher::default(),
            slots: Mutex::new(Slots {
                map: HashMap::new(),
                bytes: 0,
            }),
            max_entries,
            max_bytes,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn key(&self, uri: &Uri) -> AnswerKey {
        let text = uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or_else(|| uri.path());
        self.hasher.key(text)
    }

    /// The answer kept for `key`, if it still holds.
    pub fn get(&self, key: AnswerKey) -> Option<Kept> {
        let slots = self.lock();
        let slot = slots.map.get(&key)?;
        (Instant::now() < slot.until).then(|| slot.kept.clone())
    }

    /// Keeps `kept` for `key` until `until`, if there is room.
    pub fn put(&self, key: AnswerKey, kept: Kept, until: Instant) {
        let now = Instant::now();
        if until <= now || kept.body.len() > self.max_bytes {
            return;
        }
        let mut slots = self.lock();
        if let Some(old) = slots.map.remove(&key) {
            slots.bytes -= old.kept.body.len();
        }
        if slots.map.len() >= self.max_entries || slots.bytes + kept.body.len() > self.max_bytes {
            slots.map.retain(|_, s| s.until > now);
            slots.bytes = slots.map.values().map(|s| s.kept.body.len()).sum();
        }
        if slots.map.len() >= self.max_entries || slots.bytes + kept.body.len() > self.max_bytes {
            return;
        }
        slots.bytes += kept.body.len();
        slots.map.insert(key, Slot { kept, until });
    }

    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn kept(body: &'static [u8]) -> Kept {
        Kept {
            body: Bytes::from_static(body),
            timestamps: Vec::new().into(),
        }
    }

    #[test]
    fn answers_hold_until_their_deadline() {
        let a = Answers::new(10, 1000);
        let k = a.key(&Uri::from_static("/apis/x?labelSelector=a%3Db"));
        assert_ne!(k, a.key(&Uri::from_static("/apis/x?labelSelector=a%3Dc")));
        a.put(k, kept(b"{}"), Instant::now() + Duration::from_millis(40));
        assert_eq!(a.get(k).map(|k| k.body), Some(Bytes::from_static(b"{}")));
        std::thread::sleep(Duration::from_millis(50));
        assert!(a.get(k).is_none());
    }

    #[test]
    fn bounded_by_entries_and_bytes() {
        let a = Answers::new(2, 10);
        let later = Instant::now() + Duration::from_secs(60);
        for (i, body) in [&b"1234"[..], b"5678", b"9"].iter().enumerate() {
            let key = a.key(&Uri::try_from(format!("/k{i}")).unwrap());
            a.put(key, kept(body), later);
        }
        assert_eq!(a.len(), 2);
        let big = a.key(&Uri::from_static("/big"));
        a.put(big, kept(b"0123456789ab"), later);
        assert!(a.get(big).is_none());
        let short = Instant::now() + Duration::from_millis(20);
        let b = Answers::new(1, 100);
        let k1 = b.key(&Uri::from_static("/1"));
        let k2 = b.key(&Uri::from_static("/2"));
        b.put(k1, kept(b"a"), short);
        std::thread::sleep(Duration::from_millis(30));
        b.put(k2, kept(b"b"), later);
        assert!(b.get(k2).is_some(), "an expired answer makes room");
    }
}

//! The value cache between the API and Prometheus.
//!
//! Keyed by the PromQL text, so every request that needs the same query shares one entry.
//! Identical concurrent misses share one query (single flight). An entry younger than the
//! refresh interval is served as is; one younger than twice the interval is served while a
//! refresh runs; entries requested recently are refreshed in the background so the next
//! poll finds them fresh. Entries not requested for `idle_after` are dropped, and the cache
//! never holds more than `max_entries`.
//!
//! The map holds a [`TextKey`] of the text, not the text: the text lives once, in the entry's
//! fetch. Background
//! refreshes run at most `max_refreshes` at a time: thousands of entries falling due in the
//! same second would otherwise open as many connections to Prometheus, which runs only
//! `--query.max-concurrency` (20) queries at once and queues the rest, and hold every answer
//! in memory at once. Entries waiting their turn are keys in a queue served by that many
//! workers, not a task each (a waiting task with its future cost ~200 bytes per entry). A
//! request that finds no usable value does not wait for that limit.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use futures::future::{BoxFuture, FutureExt, Shared};

use crate::metrics::Metrics;
use crate::text_key::{TextHasher, TextKey as Key};

#[derive(Debug, Clone, Copy)]
pub struct CacheSettings {
    pub refresh_interval: Duration,
    pub max_entries: usize,
    pub idle_after: Duration,
    /// Most background refreshes running at once.
    pub max_refreshes: usize,
}

/// How an entry gets its value again: one shared object per entry, so what a refresh needs
/// (the backend, the request's matchers, …) costs one allocation, not one per captured part.
pub trait Refetch<V>: Send + Sync {
    fn fetch(self: Arc<Self>) -> BoxFuture<'static, V>;
}

impl<V, F> Refetch<V> for F
where
    F: Fn() -> BoxFuture<'static, V> + Send + Sync,
{
    fn fetch(self: Arc<Self>) -> BoxFuture<'static, V> {
        (*self)()
    }
}

pub type Fetch<V> = Arc<dyn Refetch<V>>;
/// A fetch under way: its value, and when it was sent.
type InFlight<V> = Shared<BoxFuture<'static, (Arc<V>, Instant)>>;

struct Entry<V> {
    /// The last value, and when the fetch that gave it was sent: what it shows is as of then.
    value: Option<(Arc<V>, Instant)>,
    in_flight: Option<InFlight<V>>,
    last_access: Instant,
    fetch: Fetch<V>,
    /// Waiting in the refresh queue.
    queued: bool,
}

/// Keys waiting for a background refresh, and the workers' wake-up.
#[derive(Default)]
struct RefreshQueue {
    keys: Mutex<VecDeque<Key>>,
    wake: tokio::sync::Notify,
    /// The cache is gone: workers stop.
    closed: AtomicBool,
}

impl RefreshQueue {
    fn pop(&self) -> Option<Key> {
        self.keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()
    }
}

pub struct Cache<V> {
    entries: Mutex<HashMap<Key, Entry<V>>>,
    hasher: TextHasher,
    queue: Arc<RefreshQueue>,
    workers_started: AtomicBool,
    settings: CacheSettings,
    metrics: Arc<Metrics>,
    /// What a fetch that panicked yields, so waiters get an answer.
    on_panic: fn(String) -> V,
}

impl<V: Send + Sync + 'static> Cache<V> {
    pub fn new(
        settings: CacheSettings,
        metrics: Arc<Metrics>,
        on_panic: fn(String) -> V,
    ) -> Arc<Self> {
        Arc::new(Self {
            entries: Mutex::new(HashMap::new()),
            hasher: TextHasher::default(),
            queue: Arc::default(),
            workers_started: AtomicBool::new(false),
            settings,
            metrics,
            on_panic,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Entry<V>>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn refresh_interval(&self) -> Duration {
        self.settings.refresh_interval
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value for `key`, fetching it with `make_fetch()` when there is none fresh enough.
    pub async fn get(self: &Arc<Self>, key: &str, make_fetch: impl FnOnce() -> Fetch<V>) -> Arc<V> {
        self.get_since(key, make_fetch, None).await
    }

    /// [`Cache::get`], but a value whose fetch was sent before `since` does not count: one
    /// that must be at least as new as another answer (a job's state next to the data it
    /// qualifies) is fetched again, or taken from a fetch sent since. A fetch that was already
    /// under way before `since` is waited for and then not used: it may have been answered
    /// before the data it must follow.
    pub async fn get_since(
        self: &Arc<Self>,
        key: &str,
        make_fetch: impl FnOnce() -> Fetch<V>,
        since: Option<Instant>,
    ) -> Arc<V> {
        let refresh = self.settings.refresh_interval;
        let key = self.hasher.key(key);
        let mut make_fetch = Some(make_fetch);
        // The second round finds no fetch under way from before `since`; a third only when
        // entries are evicted under it, and then its value is taken whatever its age.
        for round in 0..3 {
            let waiting = {
                let mut entries = self.lock();
                if !entries.contains_key(&key) {
                    self.make_room(&mut entries);
                    let Some(make_fetch) = make_fetch.take() else {
                        return Arc::new((self.on_panic)("cache entry vanished".into()));
                    };
                    entries.insert(
                        key,
                        Entry {
                            value: None,
                            in_flight: None,
                            last_access: Instant::now(),
                            fetch: make_fetch(),
                            queued: false,
                        },
                    );
                    self.metrics.cache_entries.set(entries.len() as i64);
                }
                let Some(entry) = entries.get_mut(&key) else {
                    return Arc::new((self.on_panic)("cache entry vanished".into()));
                };
                entry.last_access = Instant::now();
                let current = entry
                    .value
                    .as_ref()
                    .filter(|(_, at)| since.is_none_or(|s| *at >= s));
                match current {
                    Some((v, at)) if at.elapsed() < refresh => {
                        self.metrics.cache_lookups.with_label_values(&["hit"]).inc();
                        return v.clone();
                    }
                    Some((v, at)) if at.elapsed() < refresh * 2 => {
                        self.metrics
                            .cache_lookups
                            .with_label_values(&["stale"])
                            .inc();
                        let v = v.clone();
                        self.enqueue(key, entry);
                        return v;
                    }
                    _ => {
                        self.metrics
                            .cache_lookups
                            .with_label_values(&["miss"])
                            .inc();
                        match &entry.in_flight {
                            Some(f) => f.clone(),
                            None => {
                                let f = self.start(key, entry.fetch.clone());
                                entry.in_flight = Some(f.clone());
                                f
                            }
                        }
                    }
                }
            };
            let (value, sent) = waiting.await;
            if round == 2 || since.is_none_or(|s| sent >= s) {
                return value;
            }
        }
        Arc::new((self.on_panic)("cache entry kept going stale".into()))
    }

    /// Runs `fetch` on its own task, which stores the result whether or not anyone waits for
    /// it, so a caller that gives up does not cancel it for the others and a background or
    /// stale-while-refresh fetch lands in the cache.
    fn start(self: &Arc<Self>, key: Key, fetch: Fetch<V>) -> InFlight<V> {
        let weak: Weak<Self> = Arc::downgrade(self);
        let on_panic = self.on_panic;
        let task = tokio::spawn(async move {
            let sent = Instant::now();
            let value = Arc::new(
                match std::panic::AssertUnwindSafe(fetch.fetch())
                    .catch_unwind()
                    .await
                {
                    Ok(v) => v,
                    Err(_) => on_panic("the query task panicked".into()),
                },
            );
            if let Some(cache) = weak.upgrade() {
                let mut entries = cache.lock();
                if let Some(entry) = entries.get_mut(&key) {
                    entry.value = Some((value.clone(), sent));
                    entry.in_flight = None;
                }
            }
            (value, sent)
        });
        async move {
            match task.await {
                Ok(v) => v,
                Err(e) => (
                    Arc::new(on_panic(format!("query task failed: {e}"))),
                    Instant::now(),
                ),
            }
        }
        .boxed()
        .shared()
    }

    /// Evicts the least recently requested entry when the cache is full.
    fn make_room(&self, entries: &mut HashMap<Key, Entry<V>>) {
        while entries.len() >= self.settings.max_entries.max(1) {
            let oldest = entries
                .iter()
                .filter(|(_, e)| e.in_flight.is_none())
                .min_by_key(|(_, e)| e.last_access)
                .map(|(k, _)| *k);
            match oldest {
                Some(k) => {
                    entries.remove(&k);
                    self.metrics.cache_evictions.inc();
                }
                None => break,
            }
        }
    }

    /// One pass of background maintenance: refresh what was requested recently and is due,
    /// drop what nobody asked for in `idle_after`.
    pub fn maintain(self: &Arc<Self>) {
        let mut entries = self.lock();
        let idle = self.settings.idle_after;
        let refresh = self.settings.refresh_interval;
        let before = entries.len();
        entries.retain(|_, e| e.last_access.elapsed() < idle || e.in_flight.is_some());
        let evicted = before - entries.len();
        if evicted > 0 {
            self.metrics.cache_evictions.inc_by(evicted as u64);
        }
        let due: Vec<Key> = entries
            .iter()
            .filter(|(_, e)| e.in_flight.is_none() && !e.queued)
            .filter(|(_, e)| {
                e.value
                    .as_ref()
                    .is_none_or(|(_, at)| at.elapsed() >= refresh)
            })
            .map(|(k, _)| *k)
            .collect();
        for key in due {
            if let Some(entry) = entries.get_mut(&key) {
                self.enqueue(key, entry);
            }
        }
        self.metrics.cache_entries.set(entries.len() as i64);
    }

    /// Queues a background refresh of `entry` unless one is queued or under way.
    fn enqueue(self: &Arc<Self>, key: Key, entry: &mut Entry<V>) {
        if entry.queued || entry.in_flight.is_some() {
            return;
        }
        self.start_workers();
        entry.queued = true;
        self.queue
            .keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(key);
        self.queue.wake.notify_one();
    }

    /// The refresh workers, started with the first queued refresh (so a cache made outside a
    /// runtime, or one that never refreshes, starts none). Without a runtime nothing is
    /// started: queued entries then go stale and their next request fetches them itself.
    fn start_workers(self: &Arc<Self>) {
        if self.workers_started.load(Ordering::Relaxed) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.workers_started.swap(true, Ordering::AcqRel) {
            return;
        }
        for _ in 0..self.settings.max_refreshes.max(1) {
            runtime.spawn(refresh_worker(Arc::downgrade(self), self.queue.clone()));
        }
    }

    /// Runs [`Cache::maintain`] until the cache is dropped.
    pub fn spawn_refresher(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let tick = (self.settings.refresh_interval / 4)
            .clamp(Duration::from_millis(50), Duration::from_secs(1));
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(tick);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                match weak.upgrade() {
                    Some(cache) => cache.maintain(),
                    None => break,
                }
            }
        });
    }
}

impl<V> Drop for Cache<V> {
    fn drop(&mut self) {
        self.queue.closed.store(true, Ordering::Release);
        self.queue.wake.notify_waiters();
    }
}

/// Takes queued keys one at a time and refreshes them, so at most as many refreshes run as
/// there are workers.
async fn refresh_worker<V: Send + Sync + 'static>(cache: Weak<Cache<V>>, queue: Arc<RefreshQueue>) {
    loop {
        // Registered before the checks, so a wake-up sent between them and the wait (a key
        // queued, or the cache dropped) is not missed.
        let wake = queue.wake.notified();
        tokio::pin!(wake);
        wake.as_mut().enable();
        if queue.closed.load(Ordering::Acquire) {
            return;
        }
        let Some(key) = queue.pop() else {
            wake.await;
            continue;
        };
        let Some(cache) = cache.upgrade() else {
            return;
        };
        let waiting = {
            let mut entries = cache.lock();
            match entries.get_mut(&key) {
                // An entry evicted while queued, or a new one under the same key, is not
                // refreshed from an old queue slot.
                Some(entry) if entry.queued => {
                    entry.queued = false;
                    match entry.in_flight {
                        Some(_) => None,
                        None => {
                            let f = cache.start(key, entry.fetch.clone());
                            entry.in_flight = Some(f.clone());
                            Some(f)
                        }
                    }
                }
                _ => None,
            }
        };
        drop(cache);
        if let Some(f) = waiting {
            f.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn counting_fetch(calls: Arc<AtomicUsize>, delay: Duration) -> Fetch<usize> {
        Arc::new(move || {
            let calls = calls.clone();
            async move {
                tokio::time::sleep(delay).await;
                calls.fetch_add(1, Ordering::SeqCst) + 1
            }
            .boxed()
        })
    }

    fn cache(refresh_ms: u64, max: usize) -> Arc<Cache<usize>> {
        Cache::new(
            CacheSettings {
                refresh_interval: Duration::from_millis(refresh_ms),
                max_entries: max,
                idle_after: Duration::from_millis(refresh_ms * 10),
                max_refreshes: 2,
            },
            Metrics::new(),
            |_| 0,
        )
    }

    #[tokio::test]
    async fn concurrent_misses_share_one_fetch() {
        let c = cache(10_000, 10);
        let calls = Arc::new(AtomicUsize::new(0));
        let mut handles = Vec::new();
        for _ in 0..50 {
            let c = c.clone();
            let calls = calls.clone();
            handles.push(tokio::spawn(async move {
                *c.get("q", || counting_fetch(calls, Duration::from_millis(50)))
                    .await
            }));
        }
        for h in handles {
            assert_eq!(h.await.unwrap(), 1);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // Fresh: served from memory.
        assert_eq!(*c.get("q", || unreachable_fetch()).await, 1);
    }

    #[tokio::test]
    async fn a_value_must_come_from_a_fetch_sent_after_since() {
        let c = cache(10_000, 10);
        let calls = Arc::new(AtomicUsize::new(0));
        // A fetch under way (sent now, answered in 100 ms)...
        let first = {
            let (c, calls) = (c.clone(), calls.clone());
            tokio::spawn(async move {
                *c.get("q", || counting_fetch(calls, Duration::from_millis(100)))
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        // ...does not answer for data sent after it: a second fetch does.
        let since = Instant::now();
        let later = c.get_since("q", || unreachable_fetch(), Some(since)).await;
        assert_eq!((*later, first.await.unwrap()), (2, 1));
        // The stored value now counts for that `since`, and for an earlier one.
        assert_eq!(
            *c.get_since("q", || unreachable_fetch(), Some(since)).await,
            2
        );
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    fn unreachable_fetch() -> Fetch<usize> {
        Arc::new(|| async { 999 }.boxed())
    }

    #[tokio::test]
    async fn stale_entries_are_served_while_refreshing() {
        let c = cache(50, 10);
        let calls = Arc::new(AtomicUsize::new(0));
        assert_eq!(
            *c.get("q", || counting_fetch(calls.clone(), Duration::ZERO))
                .await,
            1
        );
        tokio::time::sleep(Duration::from_millis(60)).await;
        // Older than the interval but within twice it: the old value, and a refresh starts.
        assert_eq!(*c.get("q", || unreachable_fetch()).await, 1);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(*c.get("q", || unreachable_fetch()).await, 2);
    }

    /// One entry fetched, left past the refresh interval (30 ms), and a maintenance pass:
    /// its background refresh is queued. Returns the entry's fetch count.
    async fn one_entry_due_and_maintained(c: &Arc<Cache<usize>>) -> Arc<AtomicUsize> {
        let calls = Arc::new(AtomicUsize::new(0));
        c.get("q", || counting_fetch(calls.clone(), Duration::ZERO))
            .await;
        tokio::time::sleep(Duration::from_millis(40)).await;
        c.maintain();
        calls
    }

    #[tokio::test]
    async fn background_refresh_and_idle_eviction() {
        let c = cache(30, 10);
        let calls = one_entry_due_and_maintained(&c).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "refreshed without a request"
        );
        tokio::time::sleep(Duration::from_millis(310)).await;
        c.maintain();
        assert!(c.is_empty(), "idle entries are dropped");
    }

    #[tokio::test]
    async fn background_refreshes_run_a_few_at_a_time_and_misses_do_not_wait_for_them() {
        let c = cache(30, 100);
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let calls = Arc::new(AtomicUsize::new(0));
        let tracked = |pause: Duration| -> Fetch<usize> {
            let (running, most, calls) = (running.clone(), most.clone(), calls.clone());
            Arc::new(move || {
                let (running, most, calls) = (running.clone(), most.clone(), calls.clone());
                async move {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(pause).await;
                    running.fetch_sub(1, Ordering::SeqCst);
                    calls.fetch_add(1, Ordering::SeqCst)
                }
                .boxed()
            })
        };
        for i in 0..10 {
            c.get(&format!("q{i}"), || tracked(Duration::from_millis(20)))
                .await;
        }
        most.store(0, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(40)).await;
        c.maintain();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 20, "every entry refreshed");
        assert_eq!(most.load(Ordering::SeqCst), 2, "two refreshes at a time");

        // Both turns taken by slow refreshes: a request for a new query still goes straight
        // to the backend.
        for i in 0..2 {
            c.get(&format!("slow{i}"), || tracked(Duration::from_secs(2)))
                .await;
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
        c.maintain();
        let miss = tokio::time::timeout(
            Duration::from_secs(1),
            c.get("new", || tracked(Duration::ZERO)),
        )
        .await;
        assert!(miss.is_ok(), "a miss does not queue behind refreshes");
    }

    #[tokio::test]
    async fn refresh_workers_stop_when_the_cache_is_dropped() {
        let c = cache(30, 10);
        one_entry_due_and_maintained(&c).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let queue = c.queue.clone();
        // The cache and its two workers.
        assert_eq!(Arc::strong_count(&queue), 4);
        drop(c);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(Arc::strong_count(&queue), 1, "every worker has stopped");
    }

    #[tokio::test]
    async fn size_is_bounded() {
        let c = cache(10_000, 3);
        let calls = Arc::new(AtomicUsize::new(0));
        for i in 0..10 {
            c.get(&format!("q{i}"), || {
                counting_fetch(calls.clone(), Duration::ZERO)
            })
            .await;
        }
        assert_eq!(c.len(), 3);
    }
}

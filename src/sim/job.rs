//! A Flink job in Reactive Mode, stepped in time: TaskManager pods that take a while to
//! register, a full restart on every change of the slot count, a backlog that grows while the
//! job is down or short of capacity and drains afterwards, and the series Flink's Prometheus
//! reporter exports for it (names and labels as in a real scrape of Flink 1.20).
//!
//! Default timings are the ones measured on a real Flink 1.20.5 (see the project's notes on
//! running Flink): a scale-up takes 7.9–12.9 s from `taskmanager.sh start` to the job RUNNING
//! at the new parallelism, 2–4 s of which is cancel + redeploy + restore; a graceful
//! scale-down (SIGTERM) 3.5 s; a killed TaskManager is detected after ≈19 s with the default
//! heartbeat settings (`heartbeat.rpc-failure-threshold` × interval), a hung one after the
//! 50 s `heartbeat.timeout`; Reactive Mode defers a scale-up until
//! `jobmanager.adaptive-scheduler.scaling-interval.min` (30 s) after the previous rescale.

use std::collections::VecDeque;

use crate::fixtures::exporter::{flink_value, Series};

/// How a removed TaskManager leaves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ScaleDown {
    /// SIGTERM: the TaskManager tells the JobManager it is leaving; the job restarts at once.
    Graceful,
    /// The pod vanishes without a word: its slots stay registered, and the job keeps failing
    /// to deploy to them, until the JobManager notices after `detect_seconds`.
    Ungraceful { detect_seconds: f64 },
}

#[derive(Debug, Clone, PartialEq)]
pub struct JobConfig {
    pub namespace: String,
    pub job_name: String,
    pub slots_per_task_manager: usize,
    /// Records per second one subtask of the processing vertex handles at busy 1000 ms/s.
    pub capacity_per_slot: f64,
    /// Pod created → container running (scheduling, image): the pod is `Pending` meanwhile.
    pub pod_pending_seconds: f64,
    /// Pod created → TaskManager registered with the ResourceManager.
    pub task_manager_start_seconds: f64,
    /// Cancel + redeploy after a rescale decision: no task runs, nothing is processed.
    pub restart_seconds: f64,
    /// Tasks deployed but restoring state: busy 1000 ms/s, nothing processed yet.
    pub task_init_seconds: f64,
    /// `jobmanager.adaptive-scheduler.scaling-interval.min`: a scale-up waits this long after
    /// the previous rescale.
    pub min_scaling_interval_seconds: f64,
    pub scale_down: ScaleDown,
    /// Offsets rewind to the last checkpoint on a restart: records processed since are
    /// replayed. `None` = exactly-once at no cost.
    pub checkpoint_interval_seconds: Option<f64>,
    /// Busy time of a source subtask per record, relative to the processing vertex.
    pub source_cost: f64,
    /// Unix time of simulated second 0, for sample timestamps.
    pub start_unix_ms: i64,
}

impl Default for JobConfig {
    fn default() -> Self {
        Self {
            namespace: "flink".into(),
            job_name: "orders-enrich".into(),
            slots_per_task_manager: 2,
            capacity_per_slot: 500.0,
            pod_pending_seconds: 2.0,
            // 8 s + 2 s + 1.5 s = 11.5 s pod start → RUNNING, inside the measured 7.9–12.9 s.
            task_manager_start_seconds: 8.0,
            restart_seconds: 2.0,
            // 2 s + 1.5 s = 3.5 s for a graceful scale-down, as measured.
            task_init_seconds: 1.5,
            min_scaling_interval_seconds: 30.0,
            scale_down: ScaleDown::Graceful,
            checkpoint_interval_seconds: Some(10.0),
            source_cost: 0.1,
            start_unix_ms: 1_767_225_600_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct TmPod {
    serial: u64,
    created: f64,
}

/// MeterView (flink-metrics-core): the counter sampled every 5 s into a ring of
/// 60/5 + 1 values that starts at zeros, rate = (newest − oldest) / 60 — so a meter under-reads
/// for its first minute.
#[derive(Debug, Clone)]
struct Meter {
    samples: VecDeque<f64>,
}

const METER_UPDATE_SECONDS: f64 = 5.0;
const METER_SPAN_SECONDS: f64 = 60.0;

impl Meter {
    fn new() -> Self {
        let n = (METER_SPAN_SECONDS / METER_UPDATE_SECONDS) as usize + 1;
        Self {
            samples: std::iter::repeat_n(0.0, n).collect(),
        }
    }
    fn update(&mut self, count: f64) {
        self.samples.pop_front();
        self.samples.push_back(count);
    }
    fn rate(&self) -> f64 {
        let first = self.samples.front().copied().unwrap_or(0.0);
        let last = self.samples.back().copied().unwrap_or(0.0);
        (last - first) / METER_SPAN_SECONDS
    }
}

/// Per-vertex totals of the current execution attempt (reset on every restart, as task
/// metrics are re-registered with the new attempt).
#[derive(Debug, Clone)]
struct Attempt {
    records: f64,
    source_busy_ms: f64,
    work_busy_ms: f64,
    /// (step length, source busy ms, work busy ms, source back-pressured ms) of the last 60 s.
    window: VecDeque<(f64, f64, f64, f64)>,
    meter: Meter,
    next_meter_update: f64,
}

impl Attempt {
    fn new(t: f64) -> Self {
        Self {
            records: 0.0,
            source_busy_ms: 0.0,
            work_busy_ms: 0.0,
            window: VecDeque::new(),
            meter: Meter::new(),
            next_meter_update: t + METER_UPDATE_SECONDS,
        }
    }
}

/// The job and its TaskManager Deployment.
#[derive(Debug, Clone)]
pub struct FlinkJob {
    pub config: JobConfig,
    pub t: f64,
    /// The Deployment's `spec.replicas`.
    pub replicas: usize,
    pods: Vec<TmPod>,
    next_serial: u64,
    /// TaskManagers removed without notice: still registered until the given time.
    lost: Vec<(TmPod, f64)>,
    /// Running parallelism (0 while no slot is available).
    pub parallelism: usize,
    down_until: f64,
    init_until: f64,
    last_rescale: f64,
    pub num_restarts: u64,
    /// Rescales (restarts caused by a change of slots).
    pub rescales: u64,
    pub backlog: f64,
    arrived: f64,
    consumed: f64,
    since_checkpoint: f64,
    next_checkpoint: f64,
    /// (time, cumulative arrivals) for the age of the oldest unconsumed record.
    arrivals_history: Vec<(f64, f64)>,
    attempt: Attempt,
    attempt_nums: Vec<u32>,
    last_rate: f64,
    last_processed_rate: f64,
}

const JOB_ID: &str = "62b6ab75a23413780e94899d0ba1c305";
const SOURCE_TASK_ID: &str = "e5a72f353fc1e6bbf3bd96a41384998c";
const WORK_TASK_ID: &str = "674df9b0384c0348e0b9d1034a44c46c";
const GRAPH_ID: &str = "66be5f96a183f35798de1c3b83a3e893";
const SOURCE_NAME: &str = "Source: orders";
const WORK_NAME: &str = "enrich";

impl FlinkJob {
    /// A job running on `task_managers` registered TaskManagers since before t = 0, past any
    /// scaling interval; its task metrics start empty at t = 0 (as after a restart).
    pub fn new(config: JobConfig, task_managers: usize) -> Self {
        let warm = -(config.task_manager_start_seconds + METER_SPAN_SECONDS + 60.0);
        let pods = (0..task_managers as u64)
            .map(|serial| TmPod {
                serial,
                created: warm,
            })
            .collect();
        let p = task_managers * config.slots_per_task_manager;
        Self {
            replicas: task_managers,
            pods,
            next_serial: task_managers as u64,
            lost: Vec::new(),
            parallelism: p,
            down_until: warm,
            init_until: warm,
            last_rescale: warm,
            num_restarts: 0,
            rescales: 0,
            backlog: 0.0,
            arrived: 0.0,
            consumed: 0.0,
            since_checkpoint: 0.0,
            next_checkpoint: config.checkpoint_interval_seconds.unwrap_or(f64::INFINITY),
            arrivals_history: vec![(0.0, 0.0)],
            attempt: Attempt::new(0.0),
            attempt_nums: vec![0; p],
            last_rate: 0.0,
            last_processed_rate: 0.0,
            t: 0.0,
            config,
        }
    }

    fn registered_at(&self, p: &TmPod) -> f64 {
        p.created + self.config.task_manager_start_seconds
    }

    /// TaskManager pods that exist (the Deployment's `status.replicas`).
    pub fn pod_count(&self) -> usize {
        self.pods.len()
    }

    /// TaskManagers the JobManager counts as registered, including lost ones not yet detected.
    pub fn registered_task_managers(&self) -> usize {
        self.pods
            .iter()
            .filter(|p| self.registered_at(p) <= self.t)
            .count()
            + self.lost.len()
    }

    fn live_slots(&self) -> usize {
        self.pods
            .iter()
            .filter(|p| self.registered_at(p) <= self.t)
            .count()
            * self.config.slots_per_task_manager
    }

    /// Records per second the running job can process now (0 while down or initialising).
    pub fn capacity(&self) -> f64 {
        if self.processing() {
            self.parallelism as f64 * self.config.capacity_per_slot
        } else {
            0.0
        }
    }

    fn processing(&self) -> bool {
        self.parallelism > 0 && self.t >= self.init_until
    }

    fn tasks_deployed(&self) -> bool {
        self.parallelism > 0 && self.t >= self.down_until
    }

    pub fn arrival_rate(&self) -> f64 {
        self.last_rate
    }

    pub fn processed_rate(&self) -> f64 {
        self.last_processed_rate
    }

    /// Seconds the oldest unconsumed record has waited.
    pub fn lag_seconds(&self) -> f64 {
        if self.backlog <= 0.0 {
            return 0.0;
        }
        // The first instant cumulative arrivals exceeded what has been consumed.
        let h = &self.arrivals_history;
        let i = h.partition_point(|&(_, a)| a <= self.consumed);
        if i == 0 {
            return self.t - h[0].0;
        }
        if i >= h.len() {
            return 0.0;
        }
        let ((t0, a0), (t1, a1)) = (h[i - 1], h[i]);
        let at = if a1 > a0 {
            t0 + (t1 - t0) * (self.consumed - a0) / (a1 - a0)
        } else {
            t1
        };
        (self.t - at).max(0.0)
    }

    /// The pods the scale selector matches, as the HPA's pod lister sees them.
    pub fn pods(&self) -> Vec<crate::hpa::Pod> {
        self.pods
            .iter()
            .map(|p| {
                let running = self.t >= p.created + self.config.pod_pending_seconds;
                crate::hpa::Pod {
                    name: self.pod_name(p.serial),
                    phase: if running {
                        crate::hpa::PodPhase::Running
                    } else {
                        crate::hpa::PodPhase::Pending
                    },
                    ready: running,
                    deleted: false,
                }
            })
            .collect()
    }

    pub fn pod_name(&self, serial: u64) -> String {
        // A Deployment's pod names: `<deployment>-<template hash>-<5 random characters>`.
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        let mut x = serial.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5DEE_CE66;
        let mut s = String::new();
        for _ in 0..5 {
            s.push(ALPHABET[(x % ALPHABET.len() as u64) as usize] as char);
            x /= ALPHABET.len() as u64;
        }
        format!("flink-taskmanager-5d8f7c9b4-{s}")
    }

    /// The Deployment is scaled to `n` TaskManagers now: new pods start, or the newest pods go.
    pub fn set_replicas(&mut self, n: usize) {
        self.replicas = n;
        while self.pods.len() < n {
            self.pods.push(TmPod {
                serial: self.next_serial,
                created: self.t,
            });
            self.next_serial += 1;
        }
        while self.pods.len() > n {
            let Some(p) = self.pods.pop() else { break };
            let registered = self.registered_at(&p) <= self.t;
            if !registered {
                continue;
            }
            match self.config.scale_down {
                ScaleDown::Graceful => {}
                ScaleDown::Ungraceful { detect_seconds } => {
                    // Its tasks fail at once; the job keeps restarting onto the dead slots
                    // until the JobManager notices.
                    let until = self.t + detect_seconds;
                    self.lost.push((p, until));
                    if self.tasks_deployed() || self.t < self.down_until {
                        self.num_restarts += 1;
                        self.down_until = self.down_until.max(until);
                        self.init_until = self.init_until.max(until);
                    }
                }
            }
        }
    }

    fn restart(&mut self, parallelism: usize) {
        // Offsets rewind to the last completed checkpoint.
        self.consumed -= self.since_checkpoint;
        self.backlog += self.since_checkpoint;
        self.since_checkpoint = 0.0;
        let old = self.parallelism;
        self.parallelism = parallelism;
        self.down_until = self.t + self.config.restart_seconds;
        self.init_until = self.down_until + self.config.task_init_seconds;
        self.last_rescale = self.t;
        self.num_restarts += 1;
        if old != parallelism {
            self.rescales += 1;
        }
        // Subtasks that existed get a new attempt; new ones start at attempt 0.
        let mut nums: Vec<u32> = self
            .attempt_nums
            .iter()
            .take(parallelism)
            .map(|a| a + 1)
            .collect();
        nums.resize(parallelism, 0);
        self.attempt_nums = nums;
        self.attempt = Attempt::new(self.down_until);
        self.next_checkpoint = self.init_until
            + self
                .config
                .checkpoint_interval_seconds
                .unwrap_or(f64::INFINITY);
    }

    /// Moves the job forward by `dt` seconds under `rate` records/s of arrivals.
    pub fn advance(&mut self, dt: f64, rate: f64) {
        // Lost TaskManagers are noticed: their slots go, the job rescales to what is left.
        let t = self.t;
        let before = self.lost.len();
        self.lost.retain(|(_, until)| *until > t);
        let detected = self.lost.len() < before;

        let live = self.live_slots();
        let lost_slots = self.lost.len() * self.config.slots_per_task_manager;
        if self.lost.is_empty() {
            if live < self.parallelism || (detected && live != self.parallelism) {
                // Resources gone: a failover, not subject to the scaling interval.
                self.restart(live);
            } else if live > self.parallelism
                && t >= self.last_rescale + self.config.min_scaling_interval_seconds
                && (self.t >= self.init_until || self.parallelism == 0)
            {
                self.restart(live);
            }
        } else if live + lost_slots < self.parallelism {
            self.restart(live + lost_slots);
        }

        let arrivals = rate * dt;
        self.arrived += arrivals;
        let mut processed = 0.0;
        let capacity = self.capacity() * dt;
        if capacity > 0.0 {
            processed = (self.backlog + arrivals).min(capacity);
        }
        self.backlog = (self.backlog + arrivals - processed).max(0.0);
        self.consumed += processed;
        if self.config.checkpoint_interval_seconds.is_some() {
            self.since_checkpoint += processed;
        }
        self.last_rate = rate;
        self.last_processed_rate = processed / dt;

        // Task metrics of the running attempt.
        if self.tasks_deployed() {
            let p = self.parallelism as f64;
            let (work_busy, source_busy, source_bp) = if !self.processing() {
                (1000.0 * dt, 1000.0 * dt, 0.0)
            } else {
                let util = processed / capacity;
                let work = 1000.0 * util * dt;
                let src = work * self.config.source_cost;
                // Saturated downstream: the source waits on it the rest of the time.
                let bp = if util >= 0.999 && self.backlog > 0.0 {
                    1000.0 * dt - src
                } else {
                    0.0
                };
                (work, src, bp)
            };
            let a = &mut self.attempt;
            a.records += processed / p;
            a.work_busy_ms += work_busy;
            a.source_busy_ms += source_busy;
            a.window.push_back((dt, source_busy, work_busy, source_bp));
            let mut span: f64 = a.window.iter().map(|w| w.0).sum();
            while span > METER_SPAN_SECONDS {
                if let Some(w) = a.window.pop_front() {
                    span -= w.0;
                } else {
                    break;
                }
            }
        }
        self.t += dt;
        if self.tasks_deployed() {
            while self.attempt.next_meter_update <= self.t + 1e-9 {
                let r = self.attempt.records;
                self.attempt.meter.update(r);
                self.attempt.next_meter_update += METER_UPDATE_SECONDS;
            }
        }
        if self.processing() && self.t >= self.next_checkpoint {
            self.since_checkpoint = 0.0;
            self.next_checkpoint += self
                .config
                .checkpoint_interval_seconds
                .unwrap_or(f64::INFINITY);
        }
        self.arrivals_history.push((self.t, self.arrived));
    }

    fn tm_of_subtask(&self, subtask: usize) -> Option<u64> {
        let mut live: Vec<u64> = self
            .pods
            .iter()
            .filter(|p| self.registered_at(p) <= self.t)
            .map(|p| p.serial)
            .collect();
        live.extend(self.lost.iter().map(|(p, _)| p.serial));
        live.sort_unstable();
        live.get(subtask / self.config.slots_per_task_manager.max(1))
            .copied()
    }

    fn host(serial: u64) -> String {
        format!("10_244_{}_{}", 1 + serial / 250, 2 + serial % 250)
    }

    /// What Flink's reporters (and Kubernetes pod scraping) expose now, stamped with the
    /// simulated time.
    pub fn series(&self) -> Vec<Series> {
        let ts = self.config.start_unix_ms + (self.t * 1000.0).round() as i64;
        let ns = self.config.namespace.as_str();
        let job = flink_value(&self.config.job_name);
        let mut out = Vec::new();
        if self.tasks_deployed() {
            let a = &self.attempt;
            let span: f64 = a.window.iter().map(|w| w.0).sum();
            let avg = |f: fn(&(f64, f64, f64, f64)) -> f64| -> f64 {
                if span > 0.0 {
                    a.window.iter().map(f).sum::<f64>() / span
                } else {
                    0.0
                }
            };
            let work_busy = avg(|w| w.2).round().clamp(0.0, 1000.0);
            let src_busy = avg(|w| w.1).round().clamp(0.0, 1000.0);
            let src_bp = avg(|w| w.3).round().clamp(0.0, 1000.0);
            let rate = a.meter.rate();
            let records = a.records.floor();
            for subtask in 0..self.parallelism {
                let Some(serial) = self.tm_of_subtask(subtask) else {
                    continue;
                };
                let pod = self.pod_name(serial);
                let host = Self::host(serial);
                let tm_id = format!("{host}:6122_{:06x}", (serial * 7919 + 4099) & 0xff_ffff);
                let attempt = self.attempt_nums.get(subtask).copied().unwrap_or(0);
                let labels = |task_id: &str, task_name: &str, op: Option<(&str, &str)>| {
                    let mut l: Vec<(String, String)> = vec![
                        ("job_id".into(), JOB_ID.into()),
                        ("task_id".into(), task_id.into()),
                        (
                            "task_attempt_id".into(),
                            format!("{GRAPH_ID}_{task_id}_{subtask}_{attempt}"),
                        ),
                        ("host".into(), host.clone()),
                    ];
                    if let Some((id, name)) = op {
                        l.push(("operator_id".into(), id.into()));
                        l.push(("operator_name".into(), flink_value(name)));
                    }
                    l.extend([
                        ("task_name".into(), flink_value(task_name)),
                        ("task_attempt_num".into(), attempt.to_string()),
                        ("job_name".into(), job.clone()),
                        ("tm_id".into(), tm_id.clone()),
                        ("subtask_index".into(), subtask.to_string()),
                        ("namespace".into(), ns.to_string()),
                        ("pod".into(), pod.clone()),
                    ]);
                    l
                };
                let mut push = |name: &str, labels: &Vec<(String, String)>, v: f64| {
                    out.push(Series {
                        name: name.to_string(),
                        labels: labels.clone(),
                        value: v,
                        timestamp_ms: Some(ts),
                    });
                };
                let t_src = labels(SOURCE_TASK_ID, SOURCE_NAME, None);
                let o_src = labels(
                    SOURCE_TASK_ID,
                    SOURCE_NAME,
                    Some((SOURCE_TASK_ID, SOURCE_NAME)),
                );
                let t_work = labels(WORK_TASK_ID, WORK_NAME, None);
                let o_work = labels(WORK_TASK_ID, WORK_NAME, Some((WORK_TASK_ID, WORK_NAME)));
                let task = |m: &str| format!("flink_taskmanager_job_task_{m}");
                let op = |m: &str| format!("flink_taskmanager_job_task_operator_{m}");
                let per = |x: f64| x / self.parallelism as f64;
                // Source: its task-level input is 0, its output only counted at operator level
                // and task level as records emitted.
                push(&task("busyTimeMsPerSecond"), &t_src, src_busy);
                push(&task("backPressuredTimeMsPerSecond"), &t_src, src_bp);
                push(
                    &task("idleTimeMsPerSecond"),
                    &t_src,
                    (1000.0 - src_busy - src_bp).max(0.0),
                );
                push(
                    &task("accumulateBusyTimeMs"),
                    &t_src,
                    a.source_busy_ms.floor(),
                );
                push(&task("numRecordsIn"), &t_src, 0.0);
                push(&task("numRecordsOut"), &t_src, records);
                push(&task("numRecordsInPerSecond"), &t_src, 0.0);
                push(&task("numRecordsOutPerSecond"), &t_src, rate);
                push(&op("numRecordsIn"), &o_src, 0.0);
                push(&op("numRecordsOut"), &o_src, records);
                push(&op("numRecordsInPerSecond"), &o_src, 0.0);
                push(&op("numRecordsOutPerSecond"), &o_src, rate);
                push(&op("pendingRecords"), &o_src, per(self.backlog).round());
                // Processing vertex.
                push(&task("busyTimeMsPerSecond"), &t_work, work_busy);
                push(&task("backPressuredTimeMsPerSecond"), &t_work, 0.0);
                push(
                    &task("idleTimeMsPerSecond"),
                    &t_work,
                    (1000.0 - work_busy).max(0.0),
                );
                push(
                    &task("accumulateBusyTimeMs"),
                    &t_work,
                    a.work_busy_ms.floor(),
                );
                push(&task("numRecordsIn"), &t_work, records);
                push(&task("numRecordsOut"), &t_work, records);
                push(&task("numRecordsInPerSecond"), &t_work, rate);
                push(&task("numRecordsOutPerSecond"), &t_work, rate);
                push(&op("numRecordsIn"), &o_work, records);
                push(&op("numRecordsOut"), &o_work, records);
                push(&op("numRecordsInPerSecond"), &o_work, rate);
                push(&op("numRecordsOutPerSecond"), &o_work, rate);
            }
        }
        let jm_pod = "flink-jobmanager-0";
        let jm_host = "10_244_0_5";
        let job_labels = vec![
            ("job_id".to_string(), JOB_ID.to_string()),
            ("host".into(), jm_host.into()),
            ("job_name".into(), job.clone()),
            ("namespace".into(), ns.into()),
            ("pod".into(), jm_pod.into()),
        ];
        let jm_labels = vec![
            ("host".to_string(), jm_host.to_string()),
            ("namespace".into(), ns.into()),
            ("pod".into(), jm_pod.into()),
        ];
        let running_ms = if self.tasks_deployed() {
            ((self.t - self.down_until) * 1000.0).round()
        } else {
            0.0
        };
        let registered = self.registered_task_managers();
        let slots = (registered * self.config.slots_per_task_manager) as f64;
        let used = if self.tasks_deployed() {
            self.parallelism as f64
        } else {
            0.0
        };
        for (name, labels, v) in [
            ("flink_jobmanager_job_runningTime", &job_labels, running_ms),
            ("flink_jobmanager_job_uptime", &job_labels, running_ms),
            (
                "flink_jobmanager_job_numRestarts",
                &job_labels,
                self.num_restarts as f64,
            ),
            (
                "flink_jobmanager_numRegisteredTaskManagers",
                &jm_labels,
                registered as f64,
            ),
            ("flink_jobmanager_taskSlotsTotal", &jm_labels, slots),
            (
                "flink_jobmanager_taskSlotsAvailable",
                &jm_labels,
                (slots - used).max(0.0),
            ),
        ] {
            out.push(Series {
                name: name.into(),
                labels: labels.clone(),
                value: v,
                timestamp_ms: Some(ts),
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> JobConfig {
        JobConfig {
            checkpoint_interval_seconds: None,
            ..JobConfig::default()
        }
    }

    fn run(job: &mut FlinkJob, seconds: usize, rate: f64) {
        for _ in 0..seconds {
            job.advance(1.0, rate);
        }
    }

    fn value(series: &[Series], name: &str, label: (&str, &str)) -> Vec<f64> {
        series
            .iter()
            .filter(|s| {
                s.name == name && s.labels.iter().any(|(k, v)| k == label.0 && v == label.1)
            })
            .map(|s| s.value)
            .collect()
    }

    #[test]
    fn step_load_backlog_grows_and_drains_in_hand_computed_time() {
        // 2 TMs × 2 slots × 500 = 2000 rec/s. 3000 rec/s for 60 s: +1000/s → 60,000 backlog.
        let mut job = FlinkJob::new(cfg(), 2);
        run(&mut job, 60, 3000.0);
        assert!((job.backlog - 60_000.0).abs() < 1e-6, "{}", job.backlog);
        // The oldest record arrived at t = 40 (2000/s consumed of 3000/s arrived: consumed
        // 120,000 = arrivals up to t = 40), so it has waited 20 s.
        assert!(
            (job.lag_seconds() - 20.0).abs() < 1e-6,
            "{}",
            job.lag_seconds()
        );
        // Load drops to 1000 rec/s: drains at 2000 − 1000 = 1000/s → empty after 60 s.
        run(&mut job, 59, 1000.0);
        assert!((job.backlog - 1000.0).abs() < 1e-6);
        run(&mut job, 1, 1000.0);
        assert_eq!(job.backlog, 0.0);
        assert_eq!(job.lag_seconds(), 0.0);
    }

    #[test]
    fn rescale_downtime_then_catch_up() {
        // 1 TM (1000 rec/s) at 1000 rec/s; scale to 2 at t = 0 (past the scaling interval).
        let mut job = FlinkJob::new(cfg(), 1);
        job.set_replicas(2);
        // Registered at t = 8: restart 2 s (t 8..10) + init 1.5 s (10..11.5) with 1 s steps:
        // processing resumes at the first step starting at t ≥ 11.5, i.e. t = 12.
        run(&mut job, 8, 1000.0);
        assert_eq!(job.backlog, 0.0);
        assert_eq!(job.parallelism, 2);
        job.advance(1.0, 1000.0); // t = 8 → 9: restarting
        assert_eq!(job.capacity(), 0.0);
        assert!(value(
            &job.series(),
            "flink_taskmanager_job_task_busyTimeMsPerSecond",
            ("task_name", "enrich")
        )
        .is_empty());
        run(&mut job, 2, 1000.0); // t = 11: deployed, initialising
        let busy = value(
            &job.series(),
            "flink_taskmanager_job_task_busyTimeMsPerSecond",
            ("task_name", "enrich"),
        );
        assert_eq!(busy, vec![1000.0; 4]);
        run(&mut job, 1, 1000.0); // t = 12: 4 s down → 4000 records behind
        assert!((job.backlog - 4000.0).abs() < 1e-6, "{}", job.backlog);
        // Capacity 2000, arrivals 1000: drains 1000/s → 0 after 4 more seconds.
        run(&mut job, 3, 1000.0);
        assert!((job.backlog - 1000.0).abs() < 1e-6);
        run(&mut job, 1, 1000.0);
        assert_eq!(job.backlog, 0.0);
        assert_eq!((job.num_restarts, job.rescales), (1, 1));
    }

    #[test]
    fn scale_up_waits_for_the_scaling_interval() {
        let mut job = FlinkJob::new(cfg(), 1);
        job.set_replicas(2);
        run(&mut job, 20, 0.0); // rescaled at t = 8
        job.set_replicas(3); // registers at t = 28, but the interval ends at 8 + 30 = 38
        run(&mut job, 18, 0.0);
        assert_eq!(job.parallelism, 4);
        run(&mut job, 1, 0.0);
        assert_eq!(job.parallelism, 6);
        assert_eq!(job.rescales, 2);
    }

    #[test]
    fn ungraceful_scale_down_stalls_until_detection() {
        let c = JobConfig {
            scale_down: ScaleDown::Ungraceful {
                detect_seconds: 19.0,
            },
            ..cfg()
        };
        let mut job = FlinkJob::new(c, 3);
        job.set_replicas(2);
        // Down from t = 0 until detection at 19, then restart 2 + init 1.5 → processing from 23.
        run(&mut job, 19, 2000.0);
        // The JobManager still counts the lost TaskManager until it has noticed.
        assert_eq!(job.registered_task_managers(), 3);
        assert!((job.backlog - 38_000.0).abs() < 1e-6);
        run(&mut job, 4, 2000.0);
        assert_eq!(job.parallelism, 4);
        assert_eq!(job.registered_task_managers(), 2);
        assert!((job.backlog - 46_000.0).abs() < 1e-6);
        // 2000/s arriving, 2000/s of capacity: the backlog holds.
        run(&mut job, 10, 2000.0);
        assert!((job.backlog - 46_000.0).abs() < 1e-6);
        assert_eq!(job.num_restarts, 2);
    }

    #[test]
    fn checkpoint_replay_adds_records_processed_since_the_last_checkpoint() {
        let c = JobConfig {
            checkpoint_interval_seconds: Some(10.0),
            ..cfg()
        };
        let mut job = FlinkJob::new(c, 1);
        // Checkpoints at t = 10, 20; at t = 25 a rescale replays 5 s × 500 = 2500 records.
        run(&mut job, 25, 500.0);
        job.set_replicas(0);
        job.advance(1.0, 0.0);
        assert!((job.backlog - 2500.0).abs() < 1e-6, "{}", job.backlog);
    }

    #[test]
    fn counters_restart_from_zero_with_a_new_attempt() {
        let mut job = FlinkJob::new(cfg(), 1);
        run(&mut job, 30, 800.0);
        let s = job.series();
        let n = value(
            &s,
            "flink_taskmanager_job_task_numRecordsIn",
            ("task_name", "enrich"),
        );
        assert_eq!(n, vec![12_000.0, 12_000.0]); // 30 s × 800 / 2 subtasks
                                                 // Meter: 30 of 60 s elapsed → (12,000 − 0) / 60 = 200, an under-read of 400.
        let r = value(
            &s,
            "flink_taskmanager_job_task_numRecordsInPerSecond",
            ("task_name", "enrich"),
        );
        assert_eq!(r, vec![200.0, 200.0]);
        assert!(
            value(
                &s,
                "flink_taskmanager_job_task_busyTimeMsPerSecond",
                ("task_attempt_num", "0")
            )
            .len()
                == 4
        );
        job.set_replicas(2);
        run(&mut job, 20, 800.0);
        let s = job.series();
        let n = value(
            &s,
            "flink_taskmanager_job_task_numRecordsIn",
            ("task_name", "enrich"),
        );
        assert_eq!(n.len(), 4);
        assert!(n.iter().all(|&x| x < 12_000.0), "{n:?}");
        assert_eq!(
            value(
                &s,
                "flink_jobmanager_job_numRestarts",
                ("job_name", "orders_enrich")
            ),
            vec![1.0]
        );
        assert_eq!(
            value(
                &s,
                "flink_jobmanager_taskSlotsTotal",
                ("pod", "flink-jobmanager-0")
            ),
            vec![4.0]
        );
        // Subtasks 0 and 1 existed before: attempt 1; 2 and 3 are new: attempt 0.
        assert_eq!(
            value(
                &s,
                "flink_taskmanager_job_task_busyTimeMsPerSecond",
                ("task_attempt_num", "1")
            )
            .len(),
            4
        );
    }

    #[test]
    fn series_carry_the_reporters_names_and_labels() {
        let job = FlinkJob::new(cfg(), 1);
        let s = job.series();
        let pending = s
            .iter()
            .find(|s| s.name == "flink_taskmanager_job_task_operator_pendingRecords")
            .unwrap();
        let keys: Vec<&str> = pending.labels.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "job_id",
                "task_id",
                "task_attempt_id",
                "host",
                "operator_id",
                "operator_name",
                "task_name",
                "task_attempt_num",
                "job_name",
                "tm_id",
                "subtask_index",
                "namespace",
                "pod"
            ]
        );
        assert!(pending
            .labels
            .iter()
            .any(|(k, v)| k == "operator_name" && v == "Source:_orders"));
        assert!(s.iter().all(|x| x.timestamp_ms.is_some()));
        for name in [
            "flink_jobmanager_numRegisteredTaskManagers",
            "flink_jobmanager_job_runningTime",
            "flink_taskmanager_job_task_accumulateBusyTimeMs",
            "flink_taskmanager_job_task_operator_numRecordsOutPerSecond",
        ] {
            assert!(s.iter().any(|x| x.name == name), "{name}");
        }
    }
}

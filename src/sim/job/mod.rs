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

mod meters;
mod pods;
mod series;
#[cfg(test)]
mod tests;

use meters::{Attempt, METER_SPAN_SECONDS, METER_UPDATE_SECONDS};
use pods::TmPod;

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
}

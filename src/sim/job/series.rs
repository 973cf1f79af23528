//! What Flink's Prometheus reporter exports for the job, with the names and labels of a real
//! scrape of Flink 1.20.

use super::FlinkJob;
use crate::fixtures::exporter::{flink_value, Series};

const JOB_ID: &str = "62b6ab75a23413780e94899d0ba1c305";
const SOURCE_TASK_ID: &str = "e5a72f353fc1e6bbf3bd96a41384998c";
const WORK_TASK_ID: &str = "674df9b0384c0348e0b9d1034a44c46c";
const GRAPH_ID: &str = "66be5f96a183f35798de1c3b83a3e893";
const SOURCE_NAME: &str = "Source: orders";
const WORK_NAME: &str = "enrich";

impl FlinkJob {
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

use super::*;
use crate::fixtures::exporter::Series;

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
        .filter(|s| s.name == name && s.labels.iter().any(|(k, v)| k == label.0 && v == label.1))
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

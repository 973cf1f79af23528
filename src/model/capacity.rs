//! Required TaskManagers: how many a Reactive Mode job needs to keep up with its arrivals and
//! to catch up its backlog, following the Flink Kubernetes Operator autoscaler's evaluation
//! (flink-autoscaler: `ScalingMetricEvaluator`, `AutoScalerUtils.getTargetProcessingCapacity`,
//! `JobVertexScaler`, `ScalingExecutor.allVerticesWithinUtilizationTarget`) collapsed to the
//! one knob Reactive Mode has: every vertex runs at the job's parallelism unless capped.
//!
//! Per vertex v with parallelism P_v, busy fraction b_v and input rate in_v, and for the job
//! the sources' consumption rate S, backlog L and backlog growth dL/dt:
//! - arrival rate R = max(0, S + dL/dt);
//! - true processing rate TPR_v = in_v / b_v (what the vertex would do fully busy);
//! - vertex target rate = R × in_v / S (edge ratios assumed steady), its backlog share
//!   L × in_v / S;
//! - required capacity C_v = target/u + backlog/T_catchUp + target × T_restart / T_catchUp;
//! - required parallelism P_req_v = ceil(P_v × C_v / TPR_v), capped where the vertex cannot
//!   grow; TaskManagers = ceil(max_v P_req_v / slots per TaskManager).

/// One job vertex as measured over the window.
#[derive(Debug, Clone, PartialEq)]
pub struct VertexLoad {
    pub id: String,
    /// Running subtasks.
    pub parallelism: f64,
    /// Busy fraction of its busiest subtask (0–1); `None` when not measurable (NaN).
    pub busy: Option<f64>,
    /// Records/s into the vertex (for a source: what it consumes).
    pub input_rate: Option<f64>,
    /// Whether the vertex reads from outside the job.
    pub source: bool,
    /// For a source: records waiting outside the job, and their growth, records/s.
    pub backlog: Option<f64>,
    pub backlog_growth: Option<f64>,
    /// For a source: partitions (or segments) it can read in parallel, when known.
    pub partitions: Option<f64>,
}

/// What the computation is told to aim for.
#[derive(Debug, Clone, PartialEq)]
pub struct Targets {
    pub utilization: f64,
    pub utilization_min: f64,
    pub utilization_max: f64,
    pub catch_up_seconds: f64,
    pub restart_seconds: f64,
    /// A backlog worth more than this many seconds of arrivals is being drained: no
    /// scale-down meanwhile.
    pub backlog_threshold_seconds: f64,
    pub min_task_managers: f64,
    pub max_task_managers: Option<f64>,
    pub max_parallelism: Option<f64>,
}

/// One vertex's terms, for the explanation.
#[derive(Debug, Clone, PartialEq)]
pub struct VertexTerms {
    pub id: String,
    pub parallelism: f64,
    pub busy: f64,
    pub input_rate: f64,
    pub true_processing_rate: f64,
    pub target_rate: f64,
    pub required_capacity: f64,
    pub utilization: f64,
    pub required_parallelism: f64,
    /// Why the required parallelism was lowered, if it was.
    pub cap: Option<String>,
}

/// What decided the answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// The bottleneck vertex's required parallelism.
    Bottleneck(String),
    /// Every vertex's utilization lies inside the band: the current count.
    InsideBand,
    /// No records arrive and none wait: the minimum.
    Idle,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub arrival_rate: f64,
    pub source_rate: f64,
    pub backlog: f64,
    pub backlog_growth: f64,
    pub slots_per_task_manager: f64,
    pub current_task_managers: f64,
    pub vertices: Vec<VertexTerms>,
    pub decision: Decision,
    /// Raised to the current count while a large backlog drains, or clamped to min/max.
    pub limited_by: Option<String>,
    pub task_managers: f64,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CapacityError {
    #[error("no vertex has a measurable busy time")]
    NoBusyTime,
    #[error("vertex {0} has no input-rate series")]
    NoInputRate(String),
    #[error("no source vertex (no source operator consumption series)")]
    NoSource,
    #[error("the sources consume nothing while {0} records wait: the job is stalled")]
    Stalled(f64),
    #[error(
        "no slots per TaskManager: not configured, and no TaskManager runs the job's subtasks"
    )]
    NoSlots,
}

/// The TaskManagers the job needs. `arrival_forecast` (records/s), when given and higher
/// than the measured arrival rate, stands in for it.
pub fn required_task_managers(
    vertices: &[VertexLoad],
    current_task_managers: f64,
    slots_per_task_manager: f64,
    t: &Targets,
    arrival_forecast: Option<f64>,
) -> Result<Report, CapacityError> {
    if slots_per_task_manager.is_nan() || slots_per_task_manager <= 0.0 {
        return Err(CapacityError::NoSlots);
    }
    let sources: Vec<&VertexLoad> = vertices.iter().filter(|v| v.source).collect();
    if sources.is_empty() {
        return Err(CapacityError::NoSource);
    }
    let mut source_rate = 0.0;
    for s in &sources {
        source_rate += s
            .input_rate
            .ok_or_else(|| CapacityError::NoInputRate(s.id.clone()))?;
    }
    let backlog: f64 = sources.iter().filter_map(|s| s.backlog).sum();
    let growth: f64 = sources.iter().filter_map(|s| s.backlog_growth).sum();
    let measured = (source_rate + growth).max(0.0);
    let arrival = arrival_forecast.map_or(measured, |f| f.max(measured));
    let base = Report {
        arrival_rate: arrival,
        source_rate,
        backlog,
        backlog_growth: growth,
        slots_per_task_manager,
        current_task_managers,
        vertices: Vec::new(),
        decision: Decision::Idle,
        limited_by: None,
        task_managers: t.min_task_managers,
    };
    if source_rate <= 0.0 {
        if backlog > 0.0 {
            return Err(CapacityError::Stalled(backlog));
        }
        if arrival <= 0.0 {
            return Ok(clamp(base, t));
        }
    }
    let job_parallelism = vertices.iter().map(|v| v.parallelism).fold(0.0, f64::max);
    let mut terms = Vec::new();
    for v in vertices {
        let Some(busy) = v.busy else { continue };
        let input = v
            .input_rate
            .ok_or_else(|| CapacityError::NoInputRate(v.id.clone()))?;
        // The vertex's share of what the sources consume carries over to the arrivals and
        // the backlog. With nothing consumed yet, every vertex is taken to see all of it.
        let share = if source_rate > 0.0 {
            input / source_rate
        } else {
            1.0
        };
        let target = arrival * share;
        let catch_up = backlog * share / t.catch_up_seconds;
        let capacity =
            target / t.utilization + catch_up + target * t.restart_seconds / t.catch_up_seconds;
        let tpr = if busy > 0.0 {
            input / busy
        } else {
            f64::INFINITY
        };
        let utilization = if tpr.is_finite() && tpr > 0.0 {
            (target + catch_up) / tpr
        } else {
            0.0
        };
        let mut required = if tpr.is_finite() && tpr > 0.0 {
            (v.parallelism * capacity / tpr).ceil()
        } else {
            1.0
        };
        let mut cap = None;
        let mut limit = |value: f64, why: String| {
            if required > value {
                required = value;
                cap = Some(why);
            }
        };
        // The more specific reason first: a source's partitions usually are why it runs
        // below the job's parallelism.
        if let Some(p) = v.partitions.filter(|_| v.source) {
            limit(
                p,
                format!("a source cannot read more than its {p} partitions"),
            );
        }
        if v.parallelism < job_parallelism {
            limit(
                v.parallelism,
                format!("runs at its maximum parallelism {}", v.parallelism),
            );
        }
        if let Some(m) = t.max_parallelism {
            limit(m, format!("maxParallelism {m}"));
        }
        terms.push(VertexTerms {
            id: v.id.clone(),
            parallelism: v.parallelism,
            busy,
            input_rate: input,
            true_processing_rate: tpr,
            target_rate: target,
            required_capacity: capacity,
            utilization,
            required_parallelism: required.max(1.0),
            cap,
        });
    }
    if terms.is_empty() {
        return Err(CapacityError::NoBusyTime);
    }
    let draining = arrival > 0.0 && backlog / arrival > t.backlog_threshold_seconds;
    let mut report = Report {
        vertices: terms,
        ..base
    };
    let bottleneck = report
        .vertices
        .iter()
        .max_by(|a, b| a.required_parallelism.total_cmp(&b.required_parallelism))
        .map(|v| (v.id.clone(), v.required_parallelism, v.utilization))
        .unwrap_or_default();
    // The operator autoscaler asks every vertex to lie inside the band, because it sizes each
    // vertex on its own. In Reactive Mode every vertex runs at the job's one parallelism, so
    // a light sink or source can never be moved into the band: only the vertex that sets the
    // count (the bottleneck) is judged.
    let inside = bottleneck.2 >= t.utilization_min && bottleneck.2 <= t.utilization_max;
    if inside && !draining {
        report.decision = Decision::InsideBand;
        report.task_managers = current_task_managers;
        return Ok(clamp(report, t));
    }
    report.decision = Decision::Bottleneck(bottleneck.0);
    report.task_managers = (bottleneck.1 / slots_per_task_manager).ceil();
    if draining && report.task_managers < current_task_managers {
        report.task_managers = current_task_managers;
        report.limited_by = Some(format!(
            "the backlog ({:.0} s of arrivals) is above backlogThreshold: no scale-down while it drains",
            backlog / arrival
        ));
    }
    Ok(clamp(report, t))
}

fn clamp(mut r: Report, t: &Targets) -> Report {
    if r.task_managers < t.min_task_managers {
        r.task_managers = t.min_task_managers;
        r.limited_by = Some(format!("minTaskManagers {}", t.min_task_managers));
    }
    if let Some(max) = t.max_task_managers.filter(|m| r.task_managers > *m) {
        r.task_managers = max;
        r.limited_by = Some(format!("maxTaskManagers {max}"));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets() -> Targets {
        Targets {
            utilization: 0.7,
            utilization_min: 0.4,
            utilization_max: 1.0,
            catch_up_seconds: 600.0,
            restart_seconds: 90.0,
            backlog_threshold_seconds: 300.0,
            min_task_managers: 1.0,
            max_task_managers: None,
            max_parallelism: None,
        }
    }

    fn source(p: f64, busy: f64, rate: f64, backlog: f64, growth: f64) -> VertexLoad {
        VertexLoad {
            id: "source".into(),
            parallelism: p,
            busy: Some(busy),
            input_rate: Some(rate),
            source: true,
            backlog: Some(backlog),
            backlog_growth: Some(growth),
            partitions: None,
        }
    }

    fn vertex(id: &str, p: f64, busy: f64, rate: f64) -> VertexLoad {
        VertexLoad {
            id: id.into(),
            parallelism: p,
            busy: Some(busy),
            input_rate: Some(rate),
            source: false,
            backlog: None,
            backlog_growth: None,
            partitions: None,
        }
    }

    #[test]
    fn backlog_to_catch_up_on_a_saturated_vertex() {
        // The README's worked example. R = 2,000 + 500 = 2,500 records/s;
        // C = 2,500/0.7 + 60,000/600 + 2,500·90/600 = 3,571.43 + 100 + 375 = 4,046.43;
        // enrich: TPR = 2,000/1.0, P_req = ceil(4 × 4,046.43/2,000) = ceil(8.09) = 9;
        // source: TPR = 2,000/0.3 = 6,666.7, P_req = ceil(4 × 0.607) = 3;
        // TaskManagers = ceil(9 / 2) = 5.
        let r = required_task_managers(
            &[
                source(4.0, 0.3, 2_000.0, 60_000.0, 500.0),
                vertex("enrich", 4.0, 1.0, 2_000.0),
            ],
            2.0,
            2.0,
            &targets(),
            None,
        )
        .unwrap();
        assert_eq!(r.arrival_rate, 2_500.0);
        assert!((r.vertices[1].required_capacity - 4_046.428_571).abs() < 1e-3);
        assert_eq!(r.vertices[1].required_parallelism, 9.0);
        assert_eq!(r.vertices[0].required_parallelism, 3.0);
        assert_eq!(r.decision, Decision::Bottleneck("enrich".into()));
        assert_eq!(r.task_managers, 5.0);
    }

    #[test]
    fn steady_load_inside_the_band_keeps_the_current_count() {
        // 1,000 records/s, enrich 60 % busy, no backlog: the bottleneck is enrich
        // (P_req = ceil(2 × (1,000/0.7 + 150) / (1,000/0.6)) = ceil(1.89) = 2 against the
        // source's ceil(2 × 1,578.6 / 5,000) = 1), its utilization 0.6 ∈ [0.4, 1.0]. The
        // source's 0.2 lies below the band, but it runs at the job's parallelism whatever
        // the count, so it does not force a rescale.
        let r = required_task_managers(
            &[
                source(2.0, 0.2, 1_000.0, 0.0, 0.0),
                vertex("enrich", 2.0, 0.6, 1_000.0),
            ],
            3.0,
            1.0,
            &targets(),
            None,
        )
        .unwrap();
        assert_eq!(r.vertices[1].required_parallelism, 2.0);
        assert_eq!(r.vertices[0].required_parallelism, 1.0);
        assert_eq!(r.decision, Decision::InsideBand);
        assert_eq!(r.task_managers, 3.0);
    }

    #[test]
    fn light_load_scales_down_in_one_step() {
        // 2,000 records/s, every vertex 20 % busy at parallelism 4 (2 slots × 2 TMs):
        // utilization 0.2 < 0.4. C = 2,000/0.7 + 0 + 2,000·90/600 = 3,157.14;
        // P_req = ceil(4 × 3,157.14 / 10,000) = ceil(1.26) = 2 → 1 TaskManager.
        let r = required_task_managers(
            &[
                source(4.0, 0.2, 2_000.0, 0.0, 0.0),
                vertex("enrich", 4.0, 0.2, 2_000.0),
            ],
            2.0,
            2.0,
            &targets(),
            None,
        )
        .unwrap();
        assert_eq!(r.vertices[1].required_parallelism, 2.0);
        assert_eq!(r.task_managers, 1.0);
    }

    #[test]
    fn a_rising_ramp_is_seen_through_backlog_growth() {
        // Consumption 3,000/s but the backlog grows 1,500/s: arrivals are 4,500/s.
        // C = 4,500/0.7 + 0 + 4,500·90/600 = 6,428.57 + 675 = 7,103.57;
        // enrich P_req = ceil(6 × 7,103.57/3,000) = ceil(14.2) = 15 → ceil(15/3) = 5.
        let r = required_task_managers(
            &[
                source(6.0, 0.5, 3_000.0, 0.0, 1_500.0),
                vertex("enrich", 6.0, 1.0, 3_000.0),
            ],
            2.0,
            3.0,
            &targets(),
            None,
        )
        .unwrap();
        assert_eq!(r.arrival_rate, 4_500.0);
        assert_eq!(r.vertices[1].required_parallelism, 15.0);
        assert_eq!(r.task_managers, 5.0);
    }

    #[test]
    fn a_capped_vertex_and_a_partition_bound_source() {
        // The source saturates at its 2 partitions; enrich runs at 8 and is half busy.
        // R = 4,000; C = 4,000/0.7 + 4,000·0.15 = 5,714.29 + 600 = 6,314.29; k = 1.5786.
        // source: wants ceil(2 × 1.0 × 1.5786) = 4, capped at 2 partitions;
        // enrich: ceil(8 × 0.5 × 1.5786) = ceil(6.31) = 7 → ceil(7/2) = 4.
        let mut s = source(2.0, 1.0, 4_000.0, 0.0, 0.0);
        s.partitions = Some(2.0);
        let r = required_task_managers(
            &[s, vertex("enrich", 8.0, 0.5, 4_000.0)],
            4.0,
            2.0,
            &targets(),
            None,
        )
        .unwrap();
        assert_eq!(r.vertices[0].required_parallelism, 2.0);
        assert!(r.vertices[0]
            .cap
            .as_deref()
            .unwrap_or("")
            .contains("partitions"));
        assert_eq!(r.vertices[1].required_parallelism, 7.0);
        assert_eq!(r.task_managers, 4.0);
    }

    #[test]
    fn a_draining_backlog_blocks_scale_down_and_idle_means_minimum() {
        // 600,000 records waiting at 1,000/s arrivals: 600 s > 300 s threshold. Busy is low
        // (the job is throttled elsewhere), yet the count stays at 6.
        let r = required_task_managers(
            &[
                source(12.0, 0.1, 1_000.0, 600_000.0, 0.0),
                vertex("enrich", 12.0, 0.1, 1_000.0),
            ],
            6.0,
            2.0,
            &targets(),
            None,
        )
        .unwrap();
        assert_eq!(r.task_managers, 6.0);
        assert!(r.limited_by.is_some());

        let idle = required_task_managers(
            &[
                source(4.0, 0.0, 0.0, 0.0, 0.0),
                vertex("enrich", 4.0, 0.0, 0.0),
            ],
            2.0,
            2.0,
            &targets(),
            None,
        )
        .unwrap();
        assert_eq!((idle.decision, idle.task_managers), (Decision::Idle, 1.0));
        assert_eq!(
            required_task_managers(
                &[source(4.0, 0.0, 0.0, 5.0, 0.0)],
                2.0,
                2.0,
                &targets(),
                None
            ),
            Err(CapacityError::Stalled(5.0))
        );
    }

    #[test]
    fn a_forecast_above_the_measured_rate_leads() {
        // Measured 2,000/s; forecast 3,000/s. C = 3,000/0.7 + 3,000·0.15 = 4,735.71;
        // enrich ceil(4 × 0.7 × 4,735.71/2,000) = ceil(6.63) = 7 → 4 TaskManagers.
        let load = [
            source(4.0, 0.3, 2_000.0, 0.0, 0.0),
            vertex("enrich", 4.0, 0.7, 2_000.0),
        ];
        let r = required_task_managers(&load, 2.0, 2.0, &targets(), Some(3_000.0)).unwrap();
        assert_eq!(r.arrival_rate, 3_000.0);
        assert_eq!(r.task_managers, 4.0);
        // A forecast below the measured rate changes nothing.
        let low = required_task_managers(&load, 2.0, 2.0, &targets(), Some(1_000.0)).unwrap();
        assert_eq!(low.arrival_rate, 2_000.0);
    }

    #[test]
    fn clamps_and_missing_data() {
        let load = [
            source(4.0, 0.3, 2_000.0, 60_000.0, 500.0),
            vertex("enrich", 4.0, 1.0, 2_000.0),
        ];
        let capped = Targets {
            max_task_managers: Some(3.0),
            ..targets()
        };
        let r = required_task_managers(&load, 2.0, 2.0, &capped, None).unwrap();
        assert_eq!(r.task_managers, 3.0);
        let mut no_rate = load.clone();
        no_rate[1].input_rate = None;
        assert_eq!(
            required_task_managers(&no_rate, 2.0, 2.0, &targets(), None),
            Err(CapacityError::NoInputRate("enrich".into()))
        );
        let mut nan = load.clone();
        nan[0].busy = None;
        nan[1].busy = None;
        assert_eq!(
            required_task_managers(&nan, 2.0, 2.0, &targets(), None),
            Err(CapacityError::NoBusyTime)
        );
        assert_eq!(
            required_task_managers(&load, 2.0, 0.0, &targets(), None),
            Err(CapacityError::NoSlots)
        );
    }
}

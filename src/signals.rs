//! The signals: how each served metric is computed from Prometheus.
//!
//! Each evaluation sends one PromQL query. A signal that needs several aggregates (a value and
//! the time of its newest sample; a backlog and a rate) sends them as one query whose parts
//! are tagged with the label [`PART_LABEL`] and split again here, so Prometheus' load is one
//! query per evaluation.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use crate::config::{Api, Config, OnMissing, SignalSpec, SignalType, MATCHERS_PLACEHOLDER};
use crate::prometheus::{self, PromError, Sample};
use crate::promql::{join, vector, Matcher, Translation, PART_LABEL};
use crate::provider::{
    CustomRequest, CustomValue, ExternalRequest, ExternalValue, MetricError, MetricInfo,
    MetricTarget, MetricsProvider, ObjectName, ObjectRef,
};
use crate::selector::Selector;

pub const BUSY_TIME: &str = "flink_taskmanager_job_task_busyTimeMsPerSecond";
pub const PENDING_RECORDS: &str = "flink_taskmanager_job_task_operator_pendingRecords";
pub const OPERATOR_RECORDS_OUT_RATE: &str =
    "flink_taskmanager_job_task_operator_numRecordsOutPerSecond";
pub const KAFKA_GROUP_LAG: &str = "kafka_consumergroup_lag";
pub const KAFKA_GROUP_OFFSET: &str = "kafka_consumergroup_current_offset";
pub const PRAVEGA_SEGMENTS: &str = "pravega_controller_segments_count";

/// Flink names every FLIP-27 source operator `Source: <name>`; its records-out rate is what
/// the job consumes.
const SOURCE_OPERATOR_REGEX: &str = "Source:.*";
/// Most remembered Pravega answers; past this, new keys are not remembered.
const MAX_REMEMBERED: usize = 10_000;

/// Resolves a `pods/*` label selector to pod names through the Kubernetes API.
pub trait PodLister: Send + Sync {
    /// Names of the pods in `namespace` matching `selector`, or why they cannot be listed.
    fn pods(&self, namespace: &str, selector: &Selector) -> Result<Vec<String>, String>;
}

/// A signal's answer before it is shaped for an API version.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub labels: BTreeMap<String, String>,
    /// The described object's name, for custom metrics.
    pub object: Option<String>,
    pub value: f64,
    pub timestamp: f64,
}

/// Everything about one evaluation, for the `query` command and for logs.
#[derive(Debug)]
pub struct Evaluation {
    pub promql: Option<String>,
    pub samples: Vec<Sample>,
    pub warnings: Vec<String>,
    pub result: Result<Vec<Item>, MetricError>,
}

/// What is being asked, independent of the API group.
#[derive(Debug, Clone)]
pub struct Request {
    pub namespace: Option<String>,
    /// Selects series (external `labelSelector`, custom `metricLabelSelector`).
    pub series: Selector,
    /// For custom metrics: which objects.
    pub objects: Option<Objects>,
}

#[derive(Debug, Clone)]
pub enum Objects {
    All(Selector),
    Named(String),
}

pub struct Signal {
    spec: SignalSpec,
    remembered: Mutex<HashMap<String, Vec<Item>>>,
}

pub struct Signals {
    signals: BTreeMap<String, Signal>,
    prom: prometheus::Client,
    pods: Option<Arc<dyn PodLister>>,
}

impl Signals {
    pub fn new(
        config: &Config,
        prom: prometheus::Client,
        pods: Option<Arc<dyn PodLister>>,
    ) -> Self {
        let signals = config
            .signals
            .iter()
            .map(|s| {
                (
                    s.name.clone(),
                    Signal {
                        spec: s.clone(),
                        remembered: Mutex::new(HashMap::new()),
                    },
                )
            })
            .collect();
        Self {
            signals,
            prom,
            pods,
        }
    }

    pub fn spec(&self, name: &str) -> Option<&SignalSpec> {
        self.signals.get(name).map(|s| &s.spec)
    }

    pub fn prometheus(&self) -> &prometheus::Client {
        &self.prom
    }

    /// Evaluates metric `name` for `req`, keeping the query and samples for inspection.
    pub async fn evaluate(&self, name: &str, req: &Request) -> Evaluation {
        let Some(signal) = self.signals.get(name) else {
            return Evaluation::failed(MetricError::UnknownMetric {
                metric: name.to_string(),
                resource: "external metrics".into(),
            });
        };
        signal.evaluate(self, req).await
    }
}

impl Evaluation {
    fn failed(e: MetricError) -> Self {
        Self {
            promql: None,
            samples: Vec::new(),
            warnings: Vec::new(),
            result: Err(e),
        }
    }
}

fn target_of(spec: &SignalSpec) -> MetricTarget {
    match (spec.kind, spec.api) {
        (_, Api::External) => MetricTarget::External,
        (_, Api::Custom) => MetricTarget::Custom {
            resource: spec.resource.clone(),
            namespaced: spec.resource != "namespaces" && spec.resource != "nodes",
        },
    }
}

#[async_trait]
impl MetricsProvider for Signals {
    fn metrics(&self) -> Vec<MetricInfo> {
        self.signals
            .values()
            .map(|s| MetricInfo {
                name: s.spec.name.clone(),
                target: target_of(&s.spec),
            })
            .collect()
    }

    async fn external(&self, req: &ExternalRequest) -> Result<Vec<ExternalValue>, MetricError> {
        let signal = self
            .signals
            .get(&req.metric)
            .filter(|s| s.spec.api == Api::External)
            .ok_or_else(|| MetricError::UnknownMetric {
                metric: req.metric.clone(),
                resource: "external metrics".into(),
            })?;
        let request = Request {
            namespace: Some(req.namespace.clone()),
            series: req.selector.clone(),
            objects: None,
        };
        let items = signal.evaluate(self, &request).await.result?;
        Ok(items
            .into_iter()
            .map(|i| ExternalValue {
                labels: i.labels,
                value: i.value,
                timestamp: i.timestamp,
            })
            .collect())
    }

    async fn custom(&self, req: &CustomRequest) -> Result<Vec<CustomValue>, MetricError> {
        let unknown = || MetricError::UnknownMetric {
            metric: req.metric.clone(),
            resource: req.resource.clone(),
        };
        let signal = self
            .signals
            .get(&req.metric)
            .filter(|s| s.spec.api == Api::Custom && s.spec.resource == req.resource)
            .ok_or_else(unknown)?;
        let request = Request {
            namespace: req.namespace.clone(),
            series: req.metric_selector.clone(),
            objects: Some(match &req.name {
                ObjectName::All => Objects::All(req.selector.clone()),
                ObjectName::Named(n) => Objects::Named(n.clone()),
            }),
        };
        let items = signal.evaluate(self, &request).await.result?;
        let (kind, api_version) = kind_of(&req.resource);
        Ok(items
            .into_iter()
            .filter_map(|i| {
                Some(CustomValue {
                    object: ObjectRef {
                        kind: kind.clone(),
                        api_version: api_version.clone(),
                        namespace: req.namespace.clone(),
                        name: i.object?,
                    },
                    value: i.value,
                    timestamp: i.timestamp,
                })
            })
            .collect())
    }
}

/// Kind and apiVersion for `describedObject`. The HPA keys Pods metrics by name only; the
/// rest is for people reading the answer.
pub fn kind_of(resource: &str) -> (String, String) {
    let known = match resource {
        "pods" => Some(("Pod", "v1")),
        "namespaces" => Some(("Namespace", "v1")),
        "nodes" => Some(("Node", "v1")),
        "services" => Some(("Service", "v1")),
        "deployments.apps" => Some(("Deployment", "apps/v1")),
        "statefulsets.apps" => Some(("StatefulSet", "apps/v1")),
        "jobs.batch" => Some(("Job", "batch/v1")),
        "flinkdeployments.flink.apache.org" => {
            Some(("FlinkDeployment", "flink.apache.org/v1beta1"))
        }
        _ => None,
    };
    if let Some((k, v)) = known {
        return (k.to_string(), v.to_string());
    }
    let (plural, group) = resource.split_once('.').unwrap_or((resource, ""));
    let singular = plural.strip_suffix('s').unwrap_or(plural);
    let mut kind: String = singular
        .chars()
        .take(1)
        .flat_map(char::to_uppercase)
        .collect();
    kind.push_str(singular.get(1..).unwrap_or(""));
    (kind, group.to_string())
}

/// Where the requested series come from, with how their labels are matched.
struct Source {
    namespaced: bool,
    flink_values: bool,
}

/// A group of series aggregated together, with the parts that describe it.
#[derive(Debug, Clone, Default)]
struct Group {
    labels: BTreeMap<String, String>,
    value: Option<f64>,
    newest: Option<f64>,
    rate: Option<f64>,
    eval_time: f64,
}

impl Signal {
    async fn evaluate(&self, signals: &Signals, req: &Request) -> Evaluation {
        let spec = &self.spec;
        let plan = match self.plan(signals, req) {
            Ok(p) => p,
            Err(e) => return Evaluation::failed(e),
        };
        let promql = plan.promql();
        let mut eval = Evaluation {
            promql: Some(promql.clone()),
            samples: Vec::new(),
            warnings: Vec::new(),
            result: Err(MetricError::NoData(String::new())),
        };
        let result = match signals.prom.instant(&promql).await {
            Ok(r) => r,
            Err(e) => {
                eval.result = Err(backend_error(&spec.name, e));
                return eval;
            }
        };
        eval.samples = result.samples;
        eval.warnings = result.warnings;
        let groups = plan.groups(&eval.samples);
        let computed = match spec.kind {
            SignalType::FlinkBusyTimeMax => self.max_of_groups(&plan, groups),
            SignalType::FlinkKafkaLagRecords => self.each_group(&plan, groups),
            SignalType::FlinkKafkaLagSeconds => self.lag_seconds(&plan, groups),
            SignalType::PravegaStreamSegments => self.segments(req, groups),
            SignalType::FlinkTaskManagerBusyTime => self.per_object(&plan, groups, &spec.pod_label),
            SignalType::Promql => self.templated(&plan, &eval.samples),
        };
        eval.result = computed.or_else(|e| self.on_missing(e, req, &eval.samples));
        eval
    }

    /// Applies `onMissing: zero` to "no data" and "unusable data" outcomes. Only where the
    /// answer is one value: for `*` requests there is no list of objects to give zeros to.
    fn on_missing(
        &self,
        e: MetricError,
        req: &Request,
        samples: &[Sample],
    ) -> Result<Vec<Item>, MetricError> {
        if self.spec.on_missing != OnMissing::Zero
            || !matches!(e, MetricError::NoData(_) | MetricError::Unusable(_))
        {
            return Err(e);
        }
        let timestamp = samples
            .first()
            .map(|s| s.timestamp)
            .unwrap_or_else(now_unix);
        match &req.objects {
            None => Ok(vec![Item {
                labels: BTreeMap::new(),
                object: None,
                value: 0.0,
                timestamp,
            }]),
            Some(Objects::Named(n)) => Ok(vec![Item {
                labels: BTreeMap::new(),
                object: Some(n.clone()),
                value: 0.0,
                timestamp,
            }]),
            Some(Objects::All(_)) => Err(e),
        }
    }

    fn translation<'a>(&'a self, flink_values: bool, reserved: &'a [&'a str]) -> Translation<'a> {
        Translation {
            rename: Some(&self.spec.labels),
            flink_values,
            reserved,
        }
    }

    /// Matchers for the request's namespace and series selector.
    fn series_matchers(&self, src: &Source, req: &Request) -> Result<Vec<Matcher>, MetricError> {
        let spec = &self.spec;
        let ns_label = [spec.namespace_label.as_str()];
        let reserved: &[&str] = if src.namespaced { &ns_label } else { &[] };
        let mut out = Vec::new();
        if src.namespaced {
            if let Some(ns) = &req.namespace {
                out.push(Matcher::eq(&spec.namespace_label, ns));
            }
        }
        let t = self.translation(src.flink_values, reserved);
        out.extend(
            t.matchers(&req.series)
                .map_err(|e| MetricError::BadRequest(e.to_string()))?,
        );
        Ok(out)
    }

    /// Adds the matchers that pick the requested objects; returns the pod names to keep when
    /// the Kubernetes API resolved the selector.
    fn object_matchers(
        &self,
        signals: &Signals,
        req: &Request,
        object_label: &str,
        matchers: &mut Vec<Matcher>,
    ) -> Result<Option<Vec<String>>, MetricError> {
        match &req.objects {
            None => Ok(None),
            Some(Objects::Named(name)) => {
                matchers.push(Matcher::eq(object_label, name));
                Ok(None)
            }
            Some(Objects::All(selector)) => {
                if let (Some(lister), Some(ns), "pods") =
                    (&signals.pods, &req.namespace, self.spec.resource.as_str())
                {
                    let names = lister
                        .pods(ns, selector)
                        .map_err(MetricError::BackendUnavailable)?;
                    // Never a regex of pod names: results are filtered by name here instead.
                    matchers.push(Matcher {
                        label: object_label.to_string(),
                        op: crate::promql::MatchOp::Ne,
                        value: String::new(),
                    });
                    return Ok(Some(names));
                }
                let reserved = [self.spec.namespace_label.as_str(), object_label];
                let t = Translation {
                    rename: Some(&self.spec.labels),
                    flink_values: false,
                    reserved: &reserved,
                };
                matchers.extend(
                    t.matchers(selector)
                        .map_err(|e| MetricError::BadRequest(e.to_string()))?,
                );
                Ok(None)
            }
        }
    }

    fn plan(&self, signals: &Signals, req: &Request) -> Result<Plan, MetricError> {
        let spec = &self.spec;
        let flink = Source {
            namespaced: spec.namespaced,
            flink_values: spec.flink_label_values,
        };
        let kafka = Source {
            namespaced: spec.kafka_exporter_namespaced,
            flink_values: false,
        };
        // kafka_exporter is chosen by asking for its labels.
        let wants_kafka = req.series.mentions("consumergroup") || req.series.mentions("topic");
        match spec.kind {
            SignalType::FlinkBusyTimeMax => {
                let m = self.series_matchers(&flink, req)?;
                Ok(Plan::value_and_newest(&["job_name"], BUSY_TIME, &m, None))
            }
            SignalType::FlinkKafkaLagRecords => {
                if wants_kafka {
                    let m = self.series_matchers(&kafka, req)?;
                    Ok(Plan::value_and_newest(
                        &["consumergroup", "topic"],
                        KAFKA_GROUP_LAG,
                        &m,
                        Some("sum"),
                    ))
                } else {
                    let m = self.series_matchers(&flink, req)?;
                    Ok(Plan::value_and_newest(
                        &["job_name"],
                        PENDING_RECORDS,
                        &m,
                        Some("sum"),
                    ))
                }
            }
            SignalType::FlinkKafkaLagSeconds => {
                let (by, lag, m, rate) = if wants_kafka {
                    let m = self.series_matchers(&kafka, req)?;
                    let rate = format!(
                        "sum by (consumergroup) (rate({}[{}]))",
                        vector(KAFKA_GROUP_OFFSET, &m),
                        promql_duration(spec.rate_window)
                    );
                    (&["consumergroup"][..], KAFKA_GROUP_LAG, m, rate)
                } else {
                    let m = self.series_matchers(&flink, req)?;
                    let mut sm = m.clone();
                    sm.push(Matcher::re("operator_name", SOURCE_OPERATOR_REGEX));
                    let rate = format!(
                        "sum by (job_name) ({} >= 0)",
                        vector(OPERATOR_RECORDS_OUT_RATE, &sm)
                    );
                    (&["job_name"][..], PENDING_RECORDS, m, rate)
                };
                let mut plan = Plan::value_and_newest(by, lag, &m, Some("sum"));
                plan.parts.push(("rate", rate));
                Ok(plan)
            }
            SignalType::PravegaStreamSegments => {
                let src = Source {
                    namespaced: spec.namespaced,
                    flink_values: spec.flink_label_values,
                };
                let m = self.series_matchers(&src, req)?;
                // The controller re-reports this gauge only when the stream scales, and it can
                // drop out of the exposition: take the last value within the lookback.
                let expr = format!(
                    "max by (scope, stream) (last_over_time({}[{}]))",
                    vector(PRAVEGA_SEGMENTS, &m),
                    promql_duration(spec.lookback)
                );
                Ok(Plan {
                    by: vec!["scope".into(), "stream".into()],
                    parts: vec![("value", expr)],
                    keep_objects: None,
                })
            }
            SignalType::FlinkTaskManagerBusyTime => {
                let mut m = self.series_matchers(&flink, req)?;
                let keep = self.object_matchers(signals, req, &spec.pod_label, &mut m)?;
                let by = [spec.pod_label.as_str()];
                let mut plan = Plan::value_and_newest(&by, BUSY_TIME, &m, None);
                plan.keep_objects = keep;
                Ok(plan)
            }
            SignalType::Promql => {
                let src = Source {
                    namespaced: spec.namespaced,
                    flink_values: spec.flink_label_values,
                };
                let mut m = self.series_matchers(&src, req)?;
                let keep = if spec.api == Api::Custom {
                    self.object_matchers(signals, req, &spec.resource_label, &mut m)?
                } else {
                    None
                };
                let template = spec.query.as_deref().unwrap_or_default();
                let expr = template.replace(MATCHERS_PLACEHOLDER, &join(&m));
                Ok(Plan {
                    by: Vec::new(),
                    parts: vec![("value", expr)],
                    keep_objects: keep,
                })
            }
        }
    }

    /// One item: the maximum over all groups (a job's busiest subtask).
    fn max_of_groups(&self, plan: &Plan, groups: Vec<Group>) -> Result<Vec<Item>, MetricError> {
        let usable = self.usable(plan, groups)?;
        let best = usable
            .iter()
            .filter_map(|g| g.value.map(|v| (v, g)))
            .max_by(|a, b| a.0.total_cmp(&b.0));
        let Some((value, g)) = best else {
            return Err(MetricError::NoData(self.no_series(plan)));
        };
        Ok(vec![Item {
            labels: if usable.len() == 1 {
                g.labels.clone()
            } else {
                BTreeMap::new()
            },
            object: None,
            value,
            timestamp: newest_of(&usable),
        }])
    }

    /// One item per group; the HPA sums them.
    fn each_group(&self, plan: &Plan, groups: Vec<Group>) -> Result<Vec<Item>, MetricError> {
        Ok(self
            .usable(plan, groups)?
            .into_iter()
            .filter_map(|g| {
                Some(Item {
                    value: g.value?,
                    timestamp: g.newest.unwrap_or(g.eval_time),
                    labels: g.labels,
                    object: None,
                })
            })
            .collect())
    }

    /// Backlog divided by consumption rate, worst group first. A zero backlog is 0 s whatever
    /// the rate; a backlog with no consumption has no finite lag and is an error unless
    /// `zeroRateSeconds` says what to report.
    fn lag_seconds(&self, plan: &Plan, groups: Vec<Group>) -> Result<Vec<Item>, MetricError> {
        let usable = self.usable(plan, groups)?;
        let mut worst: Option<Item> = None;
        for g in &usable {
            let Some(backlog) = g.value else { continue };
            let seconds = if backlog <= 0.0 {
                0.0
            } else {
                match g.rate.filter(|r| r.is_finite()) {
                    Some(rate) if rate > 0.0 => backlog / rate,
                    Some(_) => match self.spec.zero_rate_seconds {
                        Some(s) => s,
                        None => {
                            return Err(MetricError::Unusable(format!(
                                "{}: backlog of {backlog} records{} but a consumption rate of 0: lag in seconds is undefined (set zeroRateSeconds to report a fixed value)",
                                self.spec.name,
                                describe_labels(&g.labels)
                            )))
                        }
                    },
                    None => {
                        return Err(MetricError::NoData(format!(
                            "{}: no consumption-rate series{} (plan: {})",
                            self.spec.name,
                            describe_labels(&g.labels),
                            plan.describe_part("rate")
                        )))
                    }
                }
            };
            if worst.as_ref().is_none_or(|w| seconds > w.value) {
                worst = Some(Item {
                    labels: g.labels.clone(),
                    object: None,
                    value: seconds,
                    timestamp: g.newest.unwrap_or(g.eval_time),
                });
            }
        }
        worst
            .map(|w| vec![w])
            .ok_or_else(|| MetricError::NoData(self.no_series(plan)))
    }

    /// One item per stream; remembers the last answer per request so a stream whose gauge
    /// fell out of Prometheus keeps its segment count.
    fn segments(&self, req: &Request, groups: Vec<Group>) -> Result<Vec<Item>, MetricError> {
        let key = format!(
            "{}|{}",
            req.namespace
                .as_deref()
                .filter(|_| self.spec.namespaced)
                .unwrap_or(""),
            req.series
        );
        let items: Vec<Item> = groups
            .into_iter()
            .filter_map(|g| {
                let v = g.value.filter(|v| v.is_finite() && *v >= 0.0)?;
                Some(Item {
                    labels: g.labels,
                    object: None,
                    value: v,
                    timestamp: g.eval_time,
                })
            })
            .collect();
        let mut remembered = self
            .remembered
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !items.is_empty() {
            if remembered.len() < MAX_REMEMBERED || remembered.contains_key(&key) {
                remembered.insert(key, items.clone());
            }
            return Ok(items);
        }
        match remembered.get(&key) {
            Some(last) => Ok(last.clone()),
            None => Err(MetricError::NoData(format!(
                "{}: no {PRAVEGA_SEGMENTS} series for {} within the last {}",
                self.spec.name,
                if req.series.is_empty() {
                    "any stream".to_string()
                } else {
                    format!("selector {}", req.series)
                },
                promql_duration(self.spec.lookback)
            ))),
        }
    }

    /// One item per described object (custom metrics). Objects with unusable data are left
    /// out: the HPA treats a missing pod conservatively, never as 0.
    fn per_object(
        &self,
        plan: &Plan,
        groups: Vec<Group>,
        label: &str,
    ) -> Result<Vec<Item>, MetricError> {
        let total = groups.len();
        let mut reasons = Vec::new();
        let mut items = Vec::new();
        for g in groups {
            let Some(name) = g.labels.get(label).cloned() else {
                continue;
            };
            if let Some(keep) = &plan.keep_objects {
                if !keep.contains(&name) {
                    continue;
                }
            }
            match self.check_group(&g) {
                Ok(value) => items.push(Item {
                    labels: g.labels.clone(),
                    object: Some(name),
                    value,
                    timestamp: g.newest.unwrap_or(g.eval_time),
                }),
                Err(why) => reasons.push(format!("{name}: {why}")),
            }
        }
        if items.is_empty() {
            if reasons.is_empty() {
                let msg = match &plan.keep_objects {
                    Some(keep) if keep.is_empty() => {
                        format!("{}: no pods match the label selector", self.spec.name)
                    }
                    _ if total > 0 => format!(
                        "{}: none of the series belong to the selected pods",
                        self.spec.name
                    ),
                    _ => self.no_series(plan),
                };
                return Err(MetricError::NoData(msg));
            }
            return Err(MetricError::Unusable(format!(
                "{}: no usable value for any pod: {}",
                self.spec.name,
                reasons.join("; ")
            )));
        }
        Ok(items)
    }

    /// A user-written query: each finite sample is one item.
    fn templated(&self, plan: &Plan, samples: &[Sample]) -> Result<Vec<Item>, MetricError> {
        if samples.is_empty() {
            return Err(MetricError::NoData(self.no_series(plan)));
        }
        let mut items: Vec<Item> = Vec::new();
        let custom = self.spec.api == Api::Custom;
        for s in samples.iter().filter(|s| s.value.is_finite()) {
            let mut labels = s.labels.clone();
            labels.remove("__name__");
            let object = if custom {
                let Some(name) = labels.get(&self.spec.resource_label).cloned() else {
                    continue;
                };
                if let Some(keep) = &plan.keep_objects {
                    if !keep.contains(&name) {
                        continue;
                    }
                }
                if items
                    .iter()
                    .any(|i| i.object.as_deref() == Some(name.as_str()))
                {
                    return Err(MetricError::BackendFailed(format!(
                        "{}: the query returns several series for {} {name:?}; aggregate it by ({})",
                        self.spec.name, self.spec.resource, self.spec.resource_label
                    )));
                }
                Some(name)
            } else {
                None
            };
            items.push(Item {
                labels,
                object,
                value: s.value,
                timestamp: s.timestamp,
            });
        }
        if items.is_empty() {
            return Err(MetricError::Unusable(format!(
                "{}: all {} samples are NaN or infinite{}",
                self.spec.name,
                samples.len(),
                if custom {
                    " or lack the object label"
                } else {
                    ""
                }
            )));
        }
        Ok(items)
    }

    /// Keeps the groups with a fresh, finite value; refuses the whole answer if any group the
    /// selector matched is unusable, since dropping it would understate the total.
    fn usable(&self, plan: &Plan, groups: Vec<Group>) -> Result<Vec<Group>, MetricError> {
        if groups.is_empty() {
            return Err(MetricError::NoData(self.no_series(plan)));
        }
        let mut problems = Vec::new();
        for g in &groups {
            if let Err(why) = self.check_group(g) {
                problems.push(format!("{}{}", why, describe_labels(&g.labels)));
            }
        }
        if !problems.is_empty() {
            return Err(MetricError::Unusable(format!(
                "{}: {}",
                self.spec.name,
                problems.join("; ")
            )));
        }
        Ok(groups)
    }

    fn check_group(&self, g: &Group) -> Result<f64, String> {
        let value = match g.value {
            Some(v) if v.is_finite() => v,
            Some(_) => return Err("the value is not finite".into()),
            None if g.newest.is_some() => return Err("every sample is NaN".into()),
            None => return Err("no series of the measured metric".into()),
        };
        if let (Some(max_age), Some(newest)) = (self.spec.max_age, g.newest) {
            let age = g.eval_time - newest;
            if age > max_age.as_secs_f64() {
                return Err(format!(
                    "the newest sample is {:.0}s old, older than maxAge {}",
                    age,
                    promql_duration(max_age)
                ));
            }
        }
        Ok(value)
    }

    fn no_series(&self, plan: &Plan) -> String {
        format!(
            "{}: no series match (query: {})",
            self.spec.name,
            plan.describe_part("value")
        )
    }
}

fn describe_labels(labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let inner = labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    format!(" for {{{inner}}}")
}

fn newest_of(groups: &[Group]) -> f64 {
    groups
        .iter()
        .map(|g| g.newest.unwrap_or(g.eval_time))
        .fold(f64::NEG_INFINITY, f64::max)
}

fn backend_error(signal: &str, e: PromError) -> MetricError {
    let msg = format!("{signal}: {e}");
    if e.is_unavailable() {
        MetricError::BackendUnavailable(msg)
    } else {
        MetricError::BackendFailed(msg)
    }
}

pub fn now_unix() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A duration in PromQL syntax (`90s`, `2m`, `1h`), whole seconds.
pub fn promql_duration(d: Duration) -> String {
    let s = d.as_secs().max(1);
    if s % 3600 == 0 {
        format!("{}h", s / 3600)
    } else if s % 60 == 0 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// The query for one evaluation: named parts, each aggregated by the same labels.
struct Plan {
    by: Vec<String>,
    parts: Vec<(&'static str, String)>,
    /// Pod names resolved through the Kubernetes API.
    keep_objects: Option<Vec<String>>,
}

impl Plan {
    /// `value`: the aggregate of the non-NaN samples (`>= 0` drops NaN and negatives, which
    /// none of Flink's gauges used here can legitimately hold); `newest`: the time of the
    /// newest sample, for staleness and for the served timestamp.
    fn value_and_newest(by: &[&str], metric: &str, m: &[Matcher], agg: Option<&str>) -> Self {
        let by_list = by.join(", ");
        let sel = vector(metric, m);
        let agg = agg.unwrap_or("max");
        Self {
            by: by.iter().map(|s| s.to_string()).collect(),
            parts: vec![
                ("value", format!("{agg} by ({by_list}) ({sel} >= 0)")),
                ("newest", format!("max by ({by_list}) (timestamp({sel}))")),
            ],
            keep_objects: None,
        }
    }

    fn promql(&self) -> String {
        if self.parts.len() == 1 {
            return self.parts[0].1.clone();
        }
        self.parts
            .iter()
            .map(|(name, expr)| {
                format!("label_replace({expr}, \"{PART_LABEL}\", \"{name}\", \"\", \"\")")
            })
            .collect::<Vec<_>>()
            .join(" or ")
    }

    fn describe_part(&self, name: &str) -> String {
        self.parts
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, e)| e.clone())
            .unwrap_or_default()
    }

    /// Splits the samples by part and joins them on the grouping labels.
    fn groups(&self, samples: &[Sample]) -> Vec<Group> {
        let mut groups: BTreeMap<BTreeMap<String, String>, Group> = BTreeMap::new();
        let single = self.parts.len() == 1;
        for s in samples {
            let part = if single {
                "value"
            } else {
                match s.labels.get(PART_LABEL) {
                    Some(p) => p.as_str(),
                    None => continue,
                }
            };
            let key: BTreeMap<String, String> = self
                .by
                .iter()
                .filter_map(|l| s.labels.get(l).map(|v| (l.clone(), v.clone())))
                .collect();
            let g = groups.entry(key.clone()).or_insert_with(|| Group {
                labels: key,
                eval_time: s.timestamp,
                ..Default::default()
            });
            match part {
                "value" => g.value = Some(s.value),
                "newest" => g.newest = Some(s.value),
                "rate" => g.rate = Some(s.value),
                _ => {}
            }
        }
        groups.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_combines_parts_into_one_query() {
        let m = vec![
            Matcher::eq("namespace", "flink"),
            Matcher::eq("job_name", "j"),
        ];
        let p = Plan::value_and_newest(&["job_name"], BUSY_TIME, &m, None);
        assert_eq!(
            p.promql(),
            "label_replace(max by (job_name) (flink_taskmanager_job_task_busyTimeMsPerSecond{namespace=\"flink\",job_name=\"j\"} >= 0), \"bridge_part\", \"value\", \"\", \"\") or label_replace(max by (job_name) (timestamp(flink_taskmanager_job_task_busyTimeMsPerSecond{namespace=\"flink\",job_name=\"j\"})), \"bridge_part\", \"newest\", \"\", \"\")"
        );
    }

    #[test]
    fn groups_join_parts_on_labels() {
        let p = Plan::value_and_newest(&["job_name"], BUSY_TIME, &[], None);
        let s = |part: &str, job: &str, v: f64| Sample {
            labels: [
                ("job_name".to_string(), job.to_string()),
                (PART_LABEL.to_string(), part.to_string()),
            ]
            .into(),
            value: v,
            timestamp: 100.0,
        };
        let g = p.groups(&[
            s("value", "a", 5.0),
            s("newest", "a", 99.0),
            s("newest", "b", 98.0),
        ]);
        assert_eq!(g.len(), 2);
        assert_eq!((g[0].value, g[0].newest), (Some(5.0), Some(99.0)));
        assert_eq!((g[1].value, g[1].newest), (None, Some(98.0)));
    }

    #[test]
    fn durations_in_promql_form() {
        assert_eq!(promql_duration(Duration::from_secs(90)), "90s");
        assert_eq!(promql_duration(Duration::from_secs(120)), "2m");
        assert_eq!(promql_duration(Duration::from_secs(3600)), "1h");
    }

    #[test]
    fn kinds_for_described_objects() {
        assert_eq!(kind_of("pods"), ("Pod".into(), "v1".into()));
        assert_eq!(
            kind_of("widgets.example.com"),
            ("Widget".into(), "example.com".into())
        );
    }
}

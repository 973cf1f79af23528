//! Hot functions on the request path: `cargo bench --bench hot_paths`.

use std::hint::black_box;
use std::sync::Arc;

use async_trait::async_trait;
use axum::body::Body;
use criterion::{criterion_group, criterion_main, Criterion};
use flink_hpa_bridge::api::{self, wire, AppState};
use flink_hpa_bridge::metrics::Metrics;
use flink_hpa_bridge::promql::{LabelFilter, Translation};
use flink_hpa_bridge::provider::{
    Current, CustomRequest, CustomValue, ExternalRequest, ExternalValue, MetricError, MetricInfo,
    MetricTarget, MetricsProvider,
};
use flink_hpa_bridge::quantity;
use flink_hpa_bridge::selector::Selector;
use flink_hpa_bridge::signals::plan::{Agg, Group, Part, PartName, QuerySpec};
use tower::ServiceExt;

/// A provider that answers from memory, to measure the API layer alone.
struct Static;

#[async_trait]
impl MetricsProvider for Static {
    fn metrics(&self) -> Vec<MetricInfo> {
        vec![MetricInfo {
            name: "flink_busy_time_max".into(),
            target: MetricTarget::External,
        }]
    }
    async fn external(&self, _: &ExternalRequest) -> Result<Vec<ExternalValue>, MetricError> {
        Ok(vec![ExternalValue {
            labels: [("job_name".into(), "orders_enrich".into())]
                .into_iter()
                .collect(),
            value: 734.0,
            timestamp: 1_700_000_000.0,
        }])
    }
    async fn custom(&self, _: &CustomRequest) -> Result<Vec<CustomValue>, MetricError> {
        Ok(vec![])
    }
}

/// [`Static`], vouching for its answers for an hour: every request after the first is a hit.
struct Vouching;

#[async_trait]
impl MetricsProvider for Vouching {
    fn metrics(&self) -> Vec<MetricInfo> {
        Static.metrics()
    }
    async fn external(&self, req: &ExternalRequest) -> Result<Vec<ExternalValue>, MetricError> {
        Static.external(req).await
    }
    async fn custom(&self, req: &CustomRequest) -> Result<Vec<CustomValue>, MetricError> {
        Static.custom(req).await
    }
    async fn external_current(
        &self,
        req: &ExternalRequest,
    ) -> Result<Current<Vec<ExternalValue>>, MetricError> {
        Ok(Current {
            values: Static.external(req).await?,
            until: Some(std::time::Instant::now() + std::time::Duration::from_secs(3600)),
        })
    }
}

fn groups(n: usize) -> (QuerySpec, Vec<Group>) {
    let spec = QuerySpec {
        parts: vec![
            Part {
                name: PartName::VALUE,
                expr: String::new(),
                agg: Agg::Max,
            },
            Part {
                name: PartName::NEWEST,
                expr: String::new(),
                agg: Agg::Max,
            },
        ],
        by: vec!["namespace".into(), "job_name".into(), "task_name".into()],
        keep_samples: false,
    };
    let groups = (0..n)
        .map(|i| {
            Group::new(
                [
                    ("namespace".into(), format!("ns-{}", i % 10).into()),
                    ("job_name".into(), format!("job_{}", i / 3).into()),
                    ("task_name".into(), format!("task_{}", i % 3).into()),
                ]
                .into_iter()
                .collect(),
            )
            .with(PartName::VALUE, i as f64)
            .with(PartName::NEWEST, 1_700_000_000.0)
        })
        .collect();
    (spec, groups)
}

fn bench(c: &mut Criterion) {
    c.bench_function("selector_parse", |b| {
        b.iter(|| {
            Selector::parse(black_box(
                "job_name=orders-enrich,task_name in (enrich,sink),!canary",
            ))
        })
    });
    let sel = Selector::parse("job_name=orders-enrich,task_name in (enrich,sink)").unwrap();
    c.bench_function("selector_to_filters", |b| {
        let t = Translation {
            flink_values: true,
            ..Default::default()
        };
        b.iter(|| t.filters(black_box(&sel)))
    });
    for n in [300, 3000] {
        let (spec, gs) = groups(n);
        let filters = vec![
            LabelFilter::eq("namespace", "ns-1"),
            LabelFilter::eq("job_name", "job_7"),
        ];
        let by = vec!["job_name".to_string()];
        c.bench_function(&format!("regroup_{n}_groups"), |b| {
            b.iter(|| spec.regroup(black_box(&gs), black_box(&filters), &by))
        });
    }
    c.bench_function("quantity_format", |b| {
        b.iter(|| quantity::format(black_box(733.3331)))
    });
    let values = vec![ExternalValue {
        labels: Default::default(),
        value: 734.0,
        timestamp: 1_700_000_000.0,
    }];
    c.bench_function("external_list_json", |b| {
        b.iter(|| {
            serde_json::to_vec(
                &wire::external_list("flink_busy_time_max", black_box(&values)).unwrap(),
            )
        })
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let insecure = flink_hpa_bridge::auth::AuthSettings {
        insecure_skip_auth: true,
        ..Default::default()
    };
    let auth = flink_hpa_bridge::auth::Auth::new(&insecure, None).unwrap();
    let path = "/apis/external.metrics.k8s.io/v1beta1/namespaces/flink/flink_busy_time_max?labelSelector=job_name%3Dorders-enrich";
    for (name, provider) in [
        (
            "router_external_request",
            Arc::new(Static) as Arc<dyn MetricsProvider>,
        ),
        ("router_external_cached_hit", Arc::new(Vouching)),
    ] {
        let state = AppState::new(provider, Metrics::new(), auth.clone());
        let app = api::router(state);
        c.bench_function(name, |b| {
            b.iter(|| {
                let req = axum::http::Request::get(path).body(Body::empty()).unwrap();
                rt.block_on(app.clone().oneshot(req)).unwrap()
            })
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);

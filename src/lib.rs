//! flink-hpa-bridge: a Kubernetes custom and external metrics APIService that lets a stock
//! HorizontalPodAutoscaler scale Flink Reactive Mode TaskManagers on signals from Prometheus.
//!
//! # Where things are
//!
//! A request travels from the outside in:
//!
//! - [`server`] wires it together: configuration → Prometheus client → signals → API → TLS
//!   listener ([`tls`]); [`commands`] holds what the subcommands do (`main.rs` only parses
//!   flags).
//! - [`api`] is the HTTP API the kube-aggregator calls: `api::layers` is the tower stack
//!   (trace, parsed path, request metrics, in-flight limit, body limit, authorization), one
//!   file per layer; `api::extract` turns a path, parsed once ([`path`]), into a typed
//!   request; `api::wire` is the JSON of the metrics APIs and [`status`] the `Status` errors.
//! - [`auth`] is kube-apiserver's delegated authentication and authorization.
//! - [`provider`] is the boundary: the API knows [`MetricsProvider`] and nothing of
//!   Prometheus. The cluster-scope rule (namespaces and nodes) is [`path::is_cluster_scoped`].
//! - [`signals`] implements the provider: `signals::kinds` has one module per signal kind,
//!   [`model`] the pure arithmetic, [`backend`] the query backend trait over [`prometheus`],
//!   [`cache`] the shared value cache, [`promql`] and [`selector`] the translation of label
//!   selectors.
//! - [`pods`] resolves `pods/*` selectors through the Kubernetes API, reached as
//!   [`kubeconfig`] chooses; [`metrics`] is the server's own `/metrics`; [`logging`] sets up
//!   the log format.
//! - [`hpa`] models the HPA controller and [`sim`] steps a simulated Flink job against it;
//!   [`simulate`] runs that offline (`simulate`, and `replay` over Prometheus history) and
//!   [`demo`] on the wall clock against a real Prometheus and this server.
//! - [`keda`] serves the same signals to KEDA as an external scaler over gRPC; [`adapter`]
//!   converts a prometheus-adapter configuration into `signals:` entries.
//! - [`fixtures`] are real parts for tests, the demo and the simulator: a synthetic Flink
//!   exporter and a local Prometheus.
//!
//! **To add a signal kind:** a module in `src/signals/kinds/` (one file, or a folder once it
//! grows, as `required_taskmanagers/`); in `src/signals/kinds/mod.rs` its `mod` line, its
//! `SignalType` variant and its `REGISTRY` line, and a `BUILTIN_SIGNALS` line if it is served
//! without configuration (the manifests tests then ask for an example under `hpa-examples/` and
//! a dashboard panel); and its row in the README's signal table.

pub mod adapter;
pub mod api;
pub mod auth;
pub mod backend;
pub mod cache;
pub mod commands;
pub mod config;
pub mod demo;
pub mod fixtures;
pub mod hpa;
pub mod keda;
pub mod kubeconfig;
pub mod labels;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod path;
pub mod pods;
pub mod prometheus;
pub mod promql;
pub mod provider;
pub mod quantity;
pub mod selector;
pub mod server;
pub mod signals;
pub mod sim;
pub mod simulate;
pub mod status;
pub mod text_key;
pub(crate) mod tls;

pub use config::Config;
pub use provider::{
    CustomRequest, CustomValue, ExternalRequest, ExternalValue, MetricError, MetricInfo,
    MetricsProvider,
};
pub use server::{start, Running, StartOptions};
pub use signals::Signals;
pub use status::ApiError;

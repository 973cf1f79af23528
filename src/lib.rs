//! flink-hpa-bridge: a Kubernetes custom and external metrics APIService that lets a stock
//! HorizontalPodAutoscaler scale Flink Reactive Mode TaskManagers on signals from Prometheus.

pub mod adapter;
pub mod api;
pub mod auth;
pub mod backend;
pub mod cache;
pub mod commands;
pub mod config;
pub mod demo;
pub mod exporter;
pub mod hpa;
pub mod keda;
pub mod local_prometheus;
pub mod metrics;
pub mod model;
pub mod pods;
pub mod prometheus;
pub mod promql;
pub mod provider;
pub mod quantity;
pub mod selector;
pub mod server;
pub mod signals;
pub mod sim;
pub mod tls;

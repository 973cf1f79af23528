//! The files a cluster admin applies: manifests/ (kustomize base, components and overlays, the
//! Flink Reactive Mode cluster, the Prometheus scrape jobs), hpa-examples/, the Grafana dashboard
//! and the Dockerfile, read the way the tools that consume them read them.
//!
//! - Every YAML document is parsed into its k8s-openapi type and serialized back. k8s-openapi
//!   ignores fields it does not know, so a misspelt or misplaced field vanishes in the round
//!   trip and is reported, as the API server's strict field validation would.
//! - Cross-references are checked on what kustomize renders: `kubectl kustomize` when kubectl is
//!   installed, else a reading of the kustomization files (resources, components, generators;
//!   patches are then not applied and the checks that need them are left out).
//! - The server's configuration goes through `check-config`; the Flink configuration is checked
//!   against the configuration keys of the Flink release the manifests run, listed from its
//!   jars by scripts/flink-config-keys.sh.
//! - With Prometheus installed, the scrape jobs run against a real Flink 1.20.5 scrape, served
//!   to targets carrying the discovery labels Kubernetes gives the Job's and the Deployment's
//!   pods; the series keep Flink's labels, and the server answers every example HPA's metric and
//!   the README's `kubectl get --raw` commands.
//! - The example HPAs' behavior is checked against the restart and warm-up the Flink
//!   configuration implies; the server's own alerts go through `promtool check rules` and
//!   `promtool test rules`.
//!
//! One module per suite; the helpers the suites share are re-exported here.

mod flink;
mod hpas;
mod image_and_dashboard;
mod kustomize;
mod monitoring;
mod objects;
mod references;
mod scrape;
mod support;

pub(crate) use flink::*;
pub(crate) use hpas::*;
pub(crate) use image_and_dashboard::*;
pub(crate) use kustomize::*;
pub(crate) use objects::*;
pub(crate) use references::*;
pub(crate) use support::*;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use flink_hpa_bridge::commands::{self, Overrides, QueryArgs};
use flink_hpa_bridge::config::PodSource;
use flink_hpa_bridge::{demo, pods, server};

/// Serves Flink autoscaling signals from Prometheus to the Kubernetes HPA through the custom
/// and external metrics APIs.
#[derive(Parser)]
#[command(name = "flink-hpa-bridge", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct ConfigArgs {
    /// Prometheus (or Thanos/Cortex/Mimir) base URL; overrides prometheus.url in the file.
    #[arg(long, env = "PROMETHEUS_URL")]
    prometheus_url: Option<String>,
    /// YAML configuration file.
    #[arg(long)]
    config: Option<PathBuf>,
}

/// Authentication and authorization, as kube-apiserver's delegated options.
#[derive(clap::Args)]
struct AuthArgs {
    /// INSECURE: no authentication or authorization at all; every request is served. For
    /// local runs and tests only.
    #[arg(long)]
    insecure_skip_auth: bool,
    /// CA that signs the front proxy's client certificate (default: from the ConfigMap
    /// kube-system/extension-apiserver-authentication, followed while running).
    #[arg(long)]
    requestheader_client_ca_file: Option<PathBuf>,
    /// Client certificate CNs allowed to act as the front proxy (comma-separated; empty: any).
    #[arg(long, value_delimiter = ',')]
    requestheader_allowed_names: Vec<String>,
    #[arg(long, value_delimiter = ',')]
    requestheader_username_headers: Vec<String>,
    #[arg(long, value_delimiter = ',')]
    requestheader_group_headers: Vec<String>,
    #[arg(long, value_delimiter = ',')]
    requestheader_extra_headers_prefix: Vec<String>,
    /// CA for clients' own certificates (user = CN, groups = O).
    #[arg(long)]
    client_ca_file: Option<PathBuf>,
    /// Do not accept bearer tokens (otherwise checked with TokenReview).
    #[arg(long)]
    disable_token_review: bool,
}

impl AuthArgs {
    fn apply(self, a: &mut flink_hpa_bridge::auth::AuthSettings) {
        a.insecure_skip_auth |= self.insecure_skip_auth;
        if self.requestheader_client_ca_file.is_some() {
            a.requestheader_client_ca_file = self.requestheader_client_ca_file;
        }
        if !self.requestheader_allowed_names.is_empty() {
            a.requestheader_allowed_names = self.requestheader_allowed_names;
        }
        if !self.requestheader_username_headers.is_empty() {
            a.requestheader_username_headers = self.requestheader_username_headers;
        }
        if !self.requestheader_group_headers.is_empty() {
            a.requestheader_group_headers = self.requestheader_group_headers;
        }
        if !self.requestheader_extra_headers_prefix.is_empty() {
            a.requestheader_extra_headers_prefix = self.requestheader_extra_headers_prefix;
        }
        if self.client_ca_file.is_some() {
            a.client_ca_file = self.client_ca_file;
        }
        if self.disable_token_review {
            a.token_review = false;
        }
    }
}

/// The pod's namespace, from its service account mount.
fn own_namespace() -> Option<String> {
    std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

#[derive(Subcommand)]
enum Command {
    /// Serve the metrics APIs over HTTPS.
    Serve {
        #[command(flatten)]
        cfg: ConfigArgs,
        #[arg(long)]
        secure_port: Option<u16>,
        #[arg(long)]
        bind_address: Option<String>,
        /// PEM certificate (chain); a self-signed one is generated when absent.
        #[arg(long, requires = "tls_private_key_file")]
        tls_cert_file: Option<PathBuf>,
        #[arg(long, requires = "tls_cert_file")]
        tls_private_key_file: Option<PathBuf>,
        /// Extra DNS names or IPs for the generated certificate.
        #[arg(long = "tls-san")]
        tls_sans: Vec<String>,
        /// The Service in front of the server: the generated certificate then carries
        /// <name>.<namespace>.svc, as an APIService with caBundle verifies.
        #[arg(long)]
        service_name: Option<String>,
        /// The Service's namespace (default: the pod's own, from its service account).
        #[arg(long)]
        service_namespace: Option<String>,
        #[command(flatten)]
        auth: AuthArgs,
    },
    /// Evaluate one metric once and show the PromQL, the samples and what the HPA would get.
    Query {
        metric: String,
        #[command(flatten)]
        cfg: ConfigArgs,
        #[arg(short = 'n', long, default_value = "default")]
        namespace: String,
        /// Label selector: external metrics' series, or the objects of a custom metric.
        #[arg(short = 'l', long, default_value = "")]
        selector: String,
        /// Custom metrics only: metricLabelSelector.
        #[arg(long, default_value = "")]
        metric_selector: String,
        /// Custom metrics only: one object instead of all matching `-l`.
        #[arg(long)]
        name: Option<String>,
        /// Also print how the value was computed: every input, each vertex's terms and what
        /// decided (flink_required_taskmanagers' scaling report).
        #[arg(long)]
        explain: bool,
    },
    /// Validate a configuration file.
    CheckConfig { file: PathBuf },
    /// Run a synthetic Flink job, a real Prometheus and the server, and show what the HPA reads.
    Demo {
        #[arg(long, default_value_t = 6443)]
        secure_port: u16,
        /// Seconds between readings.
        #[arg(long, default_value_t = 5)]
        refresh: u64,
        /// Stop after this many seconds (default: run until Ctrl-C).
        #[arg(long)]
        duration: Option<u64>,
    },
}

fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            cfg,
            secure_port,
            bind_address,
            tls_cert_file,
            tls_private_key_file,
            tls_sans,
            service_name,
            service_namespace,
            auth,
        } => {
            init_logging("info");
            let overrides = Overrides {
                prometheus_url: cfg.prometheus_url,
                secure_port,
                bind_address,
                tls_cert_file,
                tls_private_key_file,
            };
            let mut config = commands::effective_config(cfg.config.as_deref(), &overrides)?;
            auth.apply(&mut config.server.auth);
            let mut tls_hosts = tls_sans;
            if let Some(name) = &service_name {
                let ns = service_namespace
                    .clone()
                    .or_else(own_namespace)
                    .unwrap_or_else(|| "default".into());
                tls_hosts.extend([
                    name.clone(),
                    format!("{name}.{ns}"),
                    format!("{name}.{ns}.svc"),
                    format!("{name}.{ns}.svc.cluster.local"),
                ]);
            }
            // The Kubernetes API is needed for the pod cache and for delegated authorization.
            let kube = if config.server.auth.insecure_skip_auth
                && config.pod_source == PodSource::Labels
            {
                None
            } else {
                pods::kube_client().await
            };
            let pod_lister = pods::lister_for(config.pod_source, kube.as_ref())?;
            let opts = server::StartOptions {
                tls_hosts,
                pods: pod_lister,
                kube,
            };
            let mut running = server::start(&config, opts).await?;
            let stop = running.shutdown_sender();
            shutdown_signal().await;
            tracing::info!("shutting down: no new connections, finishing requests in flight");
            if let Some(stop) = stop {
                let _ = stop.send(());
            }
            running.wait().await;
            Ok(())
        }
        Command::Query {
            metric,
            cfg,
            namespace,
            selector,
            metric_selector,
            name,
            explain,
        } => {
            init_logging("warn");
            let config = commands::effective_config(
                cfg.config.as_deref(),
                &Overrides {
                    prometheus_url: cfg.prometheus_url,
                    ..Default::default()
                },
            )?;
            let args = QueryArgs {
                metric,
                namespace,
                selector,
                metric_selector,
                name,
                explain,
            };
            let ok = commands::query(&config, &args, &mut std::io::stdout())
                .await
                .map_err(anyhow::Error::msg)?;
            if !ok {
                std::process::exit(2);
            }
            Ok(())
        }
        Command::CheckConfig { file } => {
            commands::check_config(&file, &mut std::io::stdout())?;
            Ok(())
        }
        Command::Demo {
            secure_port,
            refresh,
            duration,
        } => {
            init_logging("warn");
            let opts = demo::DemoOptions {
                secure_port,
                refresh: Duration::from_secs(refresh.max(1)),
                duration: duration.map(Duration::from_secs),
                scrape_interval: Duration::from_secs(2),
            };
            demo::run(opts, &mut std::io::stdout())
                .await
                .context("demo failed")
        }
    }
}

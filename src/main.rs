use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use flink_hpa_bridge::commands::{self, Overrides, QueryArgs};
use flink_hpa_bridge::{demo, server};

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
        /// Extra DNS names or IPs for the generated certificate (e.g. <service>.<namespace>.svc).
        #[arg(long = "tls-san")]
        tls_sans: Vec<String>,
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
        } => {
            init_logging("info");
            let overrides = Overrides {
                prometheus_url: cfg.prometheus_url,
                secure_port,
                bind_address,
                tls_cert_file,
                tls_private_key_file,
            };
            let config = commands::effective_config(cfg.config.as_deref(), &overrides)?;
            let opts = server::StartOptions {
                tls_hosts: tls_sans,
                ..Default::default()
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

use std::path::PathBuf;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};
use flink_hpa_bridge::commands::serve::ServeOptions;
use flink_hpa_bridge::commands::{self, Overrides, QueryArgs};
use flink_hpa_bridge::config;
use flink_hpa_bridge::logging::{self, LogFormat};

/// Serves Flink autoscaling signals from Prometheus to the Kubernetes HPA through the custom
/// and external metrics APIs.
#[derive(Parser)]
#[command(
    name = "flink-hpa-bridge",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("FLINK_HPA_BRIDGE_GIT_COMMIT"), ")"),
    after_help = "Logging: RUST_LOG (e.g. RUST_LOG=flink_hpa_bridge=debug,info) overrides -v."
)]
struct Cli {
    /// Log line format on stderr: text for people, json for log pipelines.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// More log detail: -v debug, -vv trace (RUST_LOG, when set, wins).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct ConfigArgs {
    /// Prometheus (or Thanos/Cortex/Mimir) base URL; overrides prometheus.url in the file.
    #[arg(long, env = "PROMETHEUS_URL")]
    prometheus_url: Option<String>,
    /// YAML configuration file (default: the built-in signals only).
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
    /// Headers naming the user (default: X-Remote-User, or the ConfigMap's).
    #[arg(long, value_delimiter = ',')]
    requestheader_username_headers: Vec<String>,
    /// Headers naming the groups (default: X-Remote-Group, or the ConfigMap's).
    #[arg(long, value_delimiter = ',')]
    requestheader_group_headers: Vec<String>,
    /// Header prefixes of extra user attributes (default: X-Remote-Extra-, or the ConfigMap's).
    #[arg(long, value_delimiter = ',')]
    requestheader_extra_headers_prefix: Vec<String>,
    /// CA for clients' own certificates (user = CN, groups = O).
    #[arg(long)]
    client_ca_file: Option<PathBuf>,
    /// Do not accept bearer tokens (otherwise checked with TokenReview).
    #[arg(long)]
    disable_token_review: bool,
    /// Kubeconfig for the authentication ConfigMap and TokenReview (default: --kubeconfig's).
    #[arg(long)]
    authentication_kubeconfig: Option<PathBuf>,
    /// Kubeconfig for SubjectAccessReview (default: --kubeconfig's).
    #[arg(long)]
    authorization_kubeconfig: Option<PathBuf>,
}

impl AuthArgs {
    fn apply(&self, a: &mut flink_hpa_bridge::auth::AuthSettings) {
        a.insecure_skip_auth |= self.insecure_skip_auth;
        let set = |to: &mut Vec<String>, from: &Vec<String>| {
            if !from.is_empty() {
                to.clone_from(from);
            }
        };
        if self.requestheader_client_ca_file.is_some() {
            a.requestheader_client_ca_file = self.requestheader_client_ca_file.clone();
        }
        set(
            &mut a.requestheader_allowed_names,
            &self.requestheader_allowed_names,
        );
        set(
            &mut a.requestheader_username_headers,
            &self.requestheader_username_headers,
        );
        set(
            &mut a.requestheader_group_headers,
            &self.requestheader_group_headers,
        );
        set(
            &mut a.requestheader_extra_headers_prefix,
            &self.requestheader_extra_headers_prefix,
        );
        if self.client_ca_file.is_some() {
            a.client_ca_file = self.client_ca_file.clone();
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

fn query_help() -> String {
    format!(
        "Metrics served by the built-in configuration: {}.\nWith --config, the file's signals.",
        config::Config::default()
            .signals
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

#[derive(clap::Args)]
struct ServeArgs {
    #[command(flatten)]
    cfg: ConfigArgs,
    /// HTTPS port (default: server.securePort in the file, else 6443).
    #[arg(long)]
    secure_port: Option<u16>,
    /// IP address to listen on (default: server.bindAddress in the file, else 0.0.0.0).
    #[arg(long)]
    bind_address: Option<String>,
    /// PEM certificate (chain); a self-signed one is generated when absent.
    #[arg(long, requires = "tls_private_key_file")]
    tls_cert_file: Option<PathBuf>,
    /// PEM private key of --tls-cert-file.
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
    /// Kubeconfig for the Kubernetes API (pod cache, delegated auth). Default: in-cluster,
    /// then $KUBECONFIG, then ~/.kube/config.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    #[command(flatten)]
    auth: AuthArgs,
    /// Also serve the KEDA external scaler (gRPC over TLS) on this port; off by default.
    #[arg(long)]
    grpc_port: Option<u16>,
    /// CA for the gRPC clients' certificates (KEDA's tlsClientCert): mutual TLS.
    #[arg(long, requires = "grpc_port")]
    grpc_client_ca_file: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the metrics APIs over HTTPS.
    Serve(Box<ServeArgs>),
    /// Evaluate one metric once and show the PromQL, the samples and what the HPA would get.
    #[command(after_help = query_help())]
    Query {
        /// The metric, as the HPA names it.
        metric: String,
        #[command(flatten)]
        cfg: ConfigArgs,
        /// The HPA's namespace.
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
    CheckConfig {
        /// The YAML configuration file.
        file: PathBuf,
        /// Also ask this Prometheus once per signal and print what each would serve (exit
        /// code 2 when a signal has no value).
        #[arg(long)]
        prometheus_url: Option<String>,
    },
    /// Print a prometheus-adapter configuration's rules as `promql` signals, saying rule by
    /// rule what cannot be expressed and why.
    ConvertAdapterConfig {
        /// The prometheus-adapter configuration file (its `rules` and `externalRules`).
        file: PathBuf,
    },
    /// Run a simulated Flink job, a real Prometheus, the server and an HPA model in a closed loop.
    Demo(flink_hpa_bridge::demo::cli::DemoArgs),
    /// Print a shell completion script (e.g. `flink-hpa-bridge completions bash > /etc/bash_completion.d/flink-hpa-bridge`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Simulate a Flink Reactive Mode job under an HPA, in accelerated time, offline.
    Simulate(flink_hpa_bridge::simulate::cli::SimulateArgs),
    /// What an HPA would have done over a Prometheus history.
    Replay(flink_hpa_bridge::simulate::cli::ReplayArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let log = |default: &str| logging::init(cli.log_format, default, cli.verbose);
    match cli.command {
        Command::Serve(args) => {
            let ServeArgs {
                cfg,
                secure_port,
                bind_address,
                tls_cert_file,
                tls_private_key_file,
                tls_sans,
                service_name,
                service_namespace,
                kubeconfig,
                auth,
                grpc_port,
                grpc_client_ca_file,
            } = *args;
            log("info");
            let overrides = Overrides {
                prometheus_url: cfg.prometheus_url,
                secure_port,
                bind_address,
                tls_cert_file,
                tls_private_key_file,
            };
            let mut config = commands::effective_config(cfg.config.as_deref(), &overrides)?;
            auth.apply(&mut config.server.auth);
            let source = cfg
                .config
                .as_deref()
                .map(|f| f.display().to_string())
                .unwrap_or_else(|| "command line".into());
            commands::checks::preflight(&config, &source)?;
            let service = service_name.map(|name| {
                let ns = service_namespace
                    .or_else(own_namespace)
                    .unwrap_or_else(|| "default".into());
                (name, ns)
            });
            let opts = ServeOptions {
                tls_hosts: tls_sans,
                service,
                kubeconfig,
                authentication_kubeconfig: auth.authentication_kubeconfig,
                authorization_kubeconfig: auth.authorization_kubeconfig,
                grpc: grpc_port
                    .map(|p| flink_hpa_bridge::keda::GrpcOptions::new(p, grpc_client_ca_file)),
            };
            commands::serve::run(&config, opts, flink_hpa_bridge::commands::shutdown_signal())
                .await?;
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
            log("warn");
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
            if !commands::query(&config, &args, &mut std::io::stdout()).await? {
                std::process::exit(2);
            }
            Ok(())
        }
        Command::ConvertAdapterConfig { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let cfg = flink_hpa_bridge::adapter::parse(&text, &file.display().to_string())?;
            let (yaml, not_converted) = flink_hpa_bridge::adapter::convert(&cfg);
            print!("{yaml}");
            if not_converted > 0 {
                eprintln!("{not_converted} rule(s) not converted: see the NOT CONVERTED comments");
            }
            Ok(())
        }
        Command::CheckConfig {
            file,
            prometheus_url,
        } => {
            let mut config = commands::check_config(&file, &mut std::io::stdout())?;
            if let Some(url) = prometheus_url {
                log("warn");
                config::validate_url(&url).map_err(anyhow::Error::msg)?;
                config.prometheus.url = Some(url);
                let without =
                    commands::checks::try_signals(&config, &mut std::io::stdout()).await?;
                if without > 0 {
                    std::process::exit(2);
                }
            }
            Ok(())
        }
        Command::Demo(args) => {
            // The demo says itself that it serves loopback without authentication; the
            // server's start-up warning about it would only push the view off the screen.
            log("warn,flink_hpa_bridge::auth=error");
            flink_hpa_bridge::demo::cli::demo(args)
                .await
                .context("demo failed")
        }
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "flink-hpa-bridge", &mut std::io::stdout());
            Ok(())
        }
        Command::Simulate(a) => flink_hpa_bridge::simulate::cli::simulate(a),
        Command::Replay(a) => flink_hpa_bridge::simulate::cli::replay(a).await,
    }
}

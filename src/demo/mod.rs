//! `flink-hpa-bridge demo`: the whole loop on one machine, on the wall clock.
//!
//! A simulated Flink Reactive Mode job (the simulator's model) exports Flink's series; a real
//! Prometheus scrapes them; the server answers the metrics APIs over HTTPS; an HPA model reads
//! those answers every sync period exactly as the controller does and sets the job's
//! TaskManager count, which rescales the job. The terminal shows each sync; at the end the
//! timeline, summary and plot are written as `simulate` writes them.

pub mod reader;
pub mod view;
pub mod world;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::fixtures::exporter;
use crate::fixtures::local_prometheus::LocalPrometheus;
use crate::hpa::{ControllerConfig, Hpa};
use crate::server::{self, StartOptions};
use crate::sim::{self, oracle_task_managers, DriverConfig, FlinkJob, Tally, Workload};
use crate::simulate::{self, HpaFile};
use world::LiveJob;

/// The HPA the demo runs when none is given: the one the README starts with.
pub const BUILTIN_HPA: &str = include_str!("../../hpa-examples/required-taskmanagers.yaml");
const BUILTIN_HPA_NAME: &str = "hpa-examples/required-taskmanagers.yaml (built in)";

/// The signal options the demo runs with unless `--config` names a file: the tuning for a
/// load that changes over tens of minutes (README, "Required TaskManagers"), which the demo's
/// sped-up load is.
pub const DEMO_CONFIG: &str = "signals:
  - name: flink_required_taskmanagers
    type: flinkRequiredTaskManagers
    targetUtilization: 0.85
    window: 2m
";

/// How long the job has run before the demo shows it: longer than the built-in signals'
/// windows and warm-ups (5 min), so the first answers are not held as a fresh start.
const PRE_ROLL_SECONDS: u32 = 330;

#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The HPA manifest; the built-in required-TaskManagers example when `None`.
    pub hpa: Option<PathBuf>,
    pub workload: String,
    pub period_seconds: f64,
    pub peak: f64,
    /// Stop after this long; run until Ctrl-C when `None`.
    pub duration: Option<Duration>,
    pub sync_period_seconds: u32,
    pub scrape_interval: Duration,
    pub secure_port: u16,
    pub config: Option<PathBuf>,
    pub out: PathBuf,
    pub capacity_per_task_manager: f64,
    pub slots_per_task_manager: usize,
    pub lag_limit_seconds: f64,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            hpa: None,
            workload: "sine".into(),
            period_seconds: 1200.0,
            peak: 6000.0,
            duration: None,
            sync_period_seconds: 15,
            scrape_interval: Duration::from_secs(5),
            secure_port: 6443,
            config: None,
            out: PathBuf::from("demo-output"),
            capacity_per_task_manager: 1000.0,
            slots_per_task_manager: 2,
            lag_limit_seconds: 300.0,
        }
    }
}

/// Where the demo's workload starts: a sine an eighth into its period (15 % of the peak and
/// rising), so the first scaling happens within minutes instead of after a quiet trough.
fn start_offset(workload: &Workload) -> f64 {
    match workload {
        Workload::Sine { period, .. } => period / 8.0,
        _ => 0.0,
    }
}

fn load_hpa(path: Option<&Path>) -> Result<(HpaFile, String), simulate::SimulateError> {
    match path {
        Some(p) => Ok((HpaFile::load(p)?, p.display().to_string())),
        None => Ok((
            HpaFile::parse(BUILTIN_HPA, BUILTIN_HPA_NAME)?,
            BUILTIN_HPA_NAME.to_string(),
        )),
    }
}

pub async fn run(opts: DemoOptions, out: &mut (impl Write + Send)) -> anyhow::Result<()> {
    // Everything a user can get wrong is checked before any process starts.
    let (hpa_file, hpa_name) = load_hpa(opts.hpa.as_deref())?;
    let workload = simulate::load_workload(&opts.workload, opts.period_seconds, opts.peak)?;
    if opts.slots_per_task_manager == 0 || !simulate::positive(opts.capacity_per_task_manager) {
        anyhow::bail!("--capacity-per-taskmanager and --slots-per-taskmanager must be above 0");
    }
    if opts.sync_period_seconds == 0 {
        anyhow::bail!("--sync-period must be at least 1s");
    }
    let mut cfg = match &opts.config {
        Some(file) => Config::load(file)?,
        None => Config::from_yaml(DEMO_CONFIG, "the demo's built-in configuration")?,
    };
    if opts.secure_port != 0 {
        if let Err(e) = std::net::TcpListener::bind(("127.0.0.1", opts.secure_port)) {
            anyhow::bail!(
                "cannot listen on 127.0.0.1:{}: {e}; pass --secure-port with a free port (0 picks one)",
                opts.secure_port
            );
        }
    }

    let offset = start_offset(&workload);
    let job_config =
        hpa_file.job_config(opts.slots_per_task_manager, opts.capacity_per_task_manager);
    // A job sized for its load at the start, as a team would have left it.
    let start_rate = workload.rate(offset);
    let initial = (oracle_task_managers(start_rate, opts.capacity_per_task_manager) as i32).clamp(
        hpa_file.spec.min_replicas.max(1),
        hpa_file.spec.max_replicas.max(1),
    );
    let mut model = FlinkJob::new(job_config, initial as usize);
    for _ in 0..PRE_ROLL_SECONDS {
        model.advance(1.0, start_rate);
    }
    let driver = DriverConfig {
        lag_limit_seconds: opts.lag_limit_seconds,
        ..DriverConfig::default()
    };
    let mut tally = Tally::new(&model, &driver);
    let job = LiveJob::new(model);

    let exporter_addr = exporter::spawn(std::sync::Arc::new(job.clone())).await?;
    let prom = LocalPrometheus::start(&[exporter_addr], opts.scrape_interval).await?;
    prom.wait_for_first_scrape(Duration::from_secs(30)).await?;
    cfg.prometheus.url = Some(prom.url.clone());
    cfg.server.secure_port = opts.secure_port;
    cfg.server.bind_address = "127.0.0.1".into();
    // Loopback only, nothing to authenticate against.
    cfg.server.auth.insecure_skip_auth = true;
    let running = server::start(&cfg, StartOptions::default()).await?;
    let port = running.addr.port();
    let base = format!("https://localhost:{port}");
    let mut client = reqwest::Client::builder()
        .resolve("localhost", running.addr)
        .timeout(Duration::from_secs(10));
    if let Some(pem) = &running.generated_cert_pem {
        client = client.add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes())?);
    }
    let client = client.build()?;

    let metric_names = hpa_file.metric_names();
    writeln!(
        out,
        "Flink job {}/{} (simulated, Reactive Mode): {} TaskManager(s) × {} slots, {} records/s each",
        hpa_file.namespace,
        job.lock().config.job_name,
        initial,
        opts.slots_per_task_manager,
        view::thousands(opts.capacity_per_task_manager)
    )?;
    writeln!(
        out,
        "  load: {} (period {}, peak {} records/s); every rescale restarts the job",
        opts.workload,
        humantime::format_duration(Duration::from_secs(opts.period_seconds as u64)),
        view::thousands(opts.peak)
    )?;
    writeln!(
        out,
        "  series: http://{exporter_addr}/metrics, scraped every {:?} by Prometheus at {}",
        opts.scrape_interval, prom.url
    )?;
    writeln!(
        out,
        "  flink-hpa-bridge: {base} (self-signed certificate; loopback only, no authentication)"
    )?;
    writeln!(
        out,
        "  HPA {} from {hpa_name}: reads {} over HTTPS every {} s, as the controller does",
        hpa_file.spec.name,
        metric_names.join(", "),
        opts.sync_period_seconds
    )?;
    match &opts.config {
        Some(f) => writeln!(out, "  signals configured by {}", f.display())?,
        None => writeln!(
            out,
            "  flink_required_taskmanagers with targetUtilization 0.85 and window 2m, tuned for a load that changes over minutes (--config FILE to change)"
        )?,
    }
    if let Some(path) = hpa_file
        .requests
        .first()
        .and_then(|r| reader::path_of(r).ok())
    {
        let query = path
            .1
            .iter()
            .map(|(k, v)| format!("{k}={}", v.replace('=', "%3D").replace(',', "%2C")))
            .collect::<Vec<_>>()
            .join("&");
        let sep = if query.is_empty() { "" } else { "?" };
        writeln!(
            out,
            "  try: kubectl get --raw '{}{sep}{query}' --server https://127.0.0.1:{port} --insecure-skip-tls-verify --token unused",
            path.0
        )?;
    }
    writeln!(
        out,
        "Ctrl-C stops it and writes {}/plot.png and the summary.\n",
        opts.out.display()
    )?;
    writeln!(out, "{}", view::HEADER)?;

    let mut hpa = Hpa::new(
        hpa_file.spec.clone(),
        ControllerConfig {
            sync_period_seconds: f64::from(opts.sync_period_seconds),
            ..ControllerConfig::default()
        },
    );
    let mut rows = Vec::new();
    let started = Instant::now();
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    // A late tick is caught up, so the model's time stays the wall clock's.
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let stop = crate::commands::shutdown_signal();
    tokio::pin!(stop);
    let mut t: u32 = 0;
    loop {
        if t % opts.sync_period_seconds == 0 {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
            let reads = reader::read_all(&client, &base, &hpa_file.requests, now).await;
            let readings = reads.iter().map(|r| r.reading.clone()).collect();
            let ts = f64::from(t);
            let rate = workload.rate(offset + ts);
            let row = sim::sync(&mut job.lock(), &mut hpa, rate, ts, readings, &mut tally);
            writeln!(out, "{}", view::line(ts, &row, &metric_names, &reads))?;
            out.flush()?;
            rows.push(row);
        }
        if opts.duration.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
        tokio::select! {
            _ = ticks.tick() => {}
            _ = &mut stop => break,
        }
        let rate = workload.rate(offset + f64::from(t));
        tally.advance(&mut job.lock(), 1.0, rate);
        t += 1;
    }
    running.stop().await;
    prom.stop().await;

    let summary = tally.finish(&job.lock());
    let report = simulate::report(
        &hpa_file.spec.name,
        &opts.workload,
        summary,
        &rows,
        opts.lag_limit_seconds,
        Some(&workload),
    );
    writeln!(out)?;
    simulate::write_outputs(
        &opts.out,
        &rows,
        &report,
        &metric_names,
        opts.capacity_per_task_manager,
    )?;
    simulate::print_summary(&report, &opts.out, out);
    Ok(())
}

/// The command-line arguments of `demo`, kept here so that `main.rs` only names them.
pub mod cli {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::DemoOptions;
    use crate::simulate::parse_duration;

    /// A duration such as `90s` or `10m`; a bare number is seconds.
    fn wall_duration(s: &str) -> Result<f64, String> {
        match s.trim().parse::<u64>() {
            Ok(n) => Ok(n as f64),
            Err(_) => parse_duration(s),
        }
    }

    fn whole_seconds(s: &str) -> Result<u32, String> {
        let d = wall_duration(s)?;
        if d < 1.0 || d.fract() != 0.0 || d > f64::from(u32::MAX) {
            return Err(format!("expected whole seconds of at least 1s, got {s:?}"));
        }
        Ok(d as u32)
    }

    /// Run a simulated Flink job, a real Prometheus, the server and an HPA model in a closed
    /// loop on this machine; show every HPA sync; write timeline.csv, summary.json and plot.png.
    #[derive(clap::Args, Debug)]
    pub struct DemoArgs {
        /// An HPA manifest (autoscaling/v2), e.g. hpa-examples/busy-time.yaml. Default: the
        /// built-in hpa-examples/required-taskmanagers.yaml.
        #[arg(long)]
        pub hpa: Option<PathBuf>,
        /// sine, step, spike, or a CSV file of `seconds,records_per_second` lines.
        #[arg(long, default_value = "sine")]
        pub workload: String,
        /// The workload's period: the sine goes 0 → peak → 0 in it (sped up from hours).
        #[arg(long, default_value = "20m", value_parser = parse_duration)]
        pub period: f64,
        /// The workload's peak, records/s.
        #[arg(long, default_value_t = 6000.0)]
        pub peak: f64,
        /// Stop after this long (90s, 10m; a bare number is seconds). Default: until Ctrl-C.
        #[arg(long, value_parser = wall_duration)]
        pub duration: Option<f64>,
        /// The HPA controller's sync period (--horizontal-pod-autoscaler-sync-period).
        #[arg(long, default_value = "15s", value_parser = whole_seconds)]
        pub sync_period: u32,
        /// How often Prometheus scrapes the job.
        #[arg(long, default_value = "5s", value_parser = whole_seconds)]
        pub scrape_interval: u32,
        /// HTTPS port of the demo's server (0 picks a free one).
        #[arg(long, default_value_t = 6443)]
        pub secure_port: u16,
        /// Signals configuration (default: the built-in signals).
        #[arg(long)]
        pub config: Option<PathBuf>,
        /// Records/s one TaskManager processes at full busy time.
        #[arg(long, default_value_t = 1000.0)]
        pub capacity_per_taskmanager: f64,
        #[arg(long, default_value_t = 2)]
        pub slots_per_taskmanager: usize,
        /// Lag above which time is counted in seconds_lag_above_limit.
        #[arg(long, default_value = "5m", value_parser = parse_duration)]
        pub lag_limit: f64,
        /// Where timeline.csv, summary.json and plot.png go.
        #[arg(long, default_value = "demo-output")]
        pub out: PathBuf,
    }

    impl From<DemoArgs> for DemoOptions {
        fn from(a: DemoArgs) -> Self {
            Self {
                hpa: a.hpa,
                workload: a.workload,
                period_seconds: a.period,
                peak: a.peak,
                duration: a.duration.map(Duration::from_secs_f64),
                sync_period_seconds: a.sync_period,
                scrape_interval: Duration::from_secs(u64::from(a.scrape_interval)),
                secure_port: a.secure_port,
                config: a.config,
                out: a.out,
                capacity_per_task_manager: a.capacity_per_taskmanager,
                slots_per_task_manager: a.slots_per_taskmanager,
                lag_limit_seconds: a.lag_limit,
            }
        }
    }

    pub async fn demo(args: DemoArgs) -> anyhow::Result<()> {
        super::run(args.into(), &mut std::io::stdout()).await
    }
}

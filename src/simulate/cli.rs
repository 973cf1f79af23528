//! The command-line arguments of `simulate` and `replay`, kept here so that `main.rs` only
//! names them.

use std::path::PathBuf;

use super::replay::{parse_time, ReplayOptions};
use super::{parse_duration, SimulateOptions};

/// Run the Flink job model under an HPA in simulated time, with the server's own signal
/// code over an in-memory Prometheus; write timeline.csv, summary.json and plot.png.
#[derive(clap::Args, Debug)]
pub struct SimulateArgs {
    /// The HorizontalPodAutoscaler manifest (autoscaling/v2), e.g. hpa-examples/busy-time.yaml.
    #[arg(long)]
    pub hpa: PathBuf,
    /// sine, step, spike, or a CSV file of `seconds,records_per_second` lines.
    #[arg(long, default_value = "sine")]
    pub workload: String,
    /// Simulated time to run (30s, 2m, 6h).
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub duration: f64,
    /// The workload's period (sine: 0 → peak → 0).
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub period: f64,
    /// The workload's peak, records/s.
    #[arg(long, default_value_t = 6000.0)]
    pub peak: f64,
    /// Lag above which time is counted in seconds_lag_above_limit.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub lag_limit: f64,
    /// Signals configuration (default: the built-in signals).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Records/s one TaskManager processes at full busy time.
    #[arg(long, default_value_t = 1000.0)]
    pub capacity_per_taskmanager: f64,
    #[arg(long, default_value_t = 2)]
    pub slots_per_taskmanager: usize,
    /// Output directory.
    #[arg(long, default_value = "simulation")]
    pub out: PathBuf,
}

impl From<SimulateArgs> for SimulateOptions {
    fn from(a: SimulateArgs) -> Self {
        Self {
            hpa: a.hpa,
            workload: a.workload,
            duration_seconds: a.duration,
            period_seconds: a.period,
            peak: a.peak,
            lag_limit_seconds: a.lag_limit,
            config: a.config,
            out: a.out,
            capacity_per_task_manager: a.capacity_per_taskmanager,
            slots_per_task_manager: a.slots_per_taskmanager,
        }
    }
}

/// What an HPA would have done over a Prometheus' history: the signals evaluated at each
/// past sync time, the HPA model deciding. Same outputs as simulate.
#[derive(clap::Args, Debug)]
pub struct ReplayArgs {
    #[arg(long, env = "PROMETHEUS_URL")]
    pub prometheus_url: String,
    #[arg(long)]
    pub hpa: PathBuf,
    /// Start: Unix seconds or RFC 3339 (2026-12-04T10:00:00Z).
    #[arg(long, value_parser = parse_time)]
    pub from: f64,
    #[arg(long, value_parser = parse_time)]
    pub to: f64,
    /// Between HPA syncs.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub step: f64,
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[arg(long, default_value = "replay")]
    pub out: PathBuf,
}

impl From<ReplayArgs> for ReplayOptions {
    fn from(a: ReplayArgs) -> Self {
        Self {
            prometheus_url: a.prometheus_url,
            hpa: a.hpa,
            from: a.from,
            to: a.to,
            step_seconds: a.step,
            config: a.config,
            out: a.out,
        }
    }
}

pub fn simulate(args: SimulateArgs) -> anyhow::Result<()> {
    super::simulate(&args.into(), &mut std::io::stdout())?;
    Ok(())
}

pub async fn replay(args: ReplayArgs) -> anyhow::Result<()> {
    super::replay::replay(&args.into(), &mut std::io::stdout()).await?;
    Ok(())
}

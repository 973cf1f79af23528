//! Log set-up for the binary: text for people, JSON for log pipelines.

/// How log lines are written (to stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per event, fields at the top level.
    Json,
}

/// The filter: `RUST_LOG` when set (e.g. `RUST_LOG=flink_hpa_bridge=debug,info`); otherwise
/// `default` raised by `verbose` (`-v` debug, `-vv` trace).
pub fn filter_directive(rust_log: Option<&str>, default: &str, verbose: u8) -> String {
    match (rust_log.filter(|s| !s.trim().is_empty()), verbose) {
        (Some(s), _) => s.to_string(),
        (None, 0) => default.to_string(),
        (None, 1) => "debug".to_string(),
        (None, _) => "trace".to_string(),
    }
}

/// Installs the global subscriber; later calls do nothing.
pub fn init(format: LogFormat, default: &str, verbose: u8) {
    let directive = filter_directive(std::env::var("RUST_LOG").ok().as_deref(), default, verbose);
    let filter = tracing_subscriber::EnvFilter::try_new(&directive)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_log_wins_then_verbosity() {
        assert_eq!(filter_directive(Some("warn"), "info", 2), "warn");
        assert_eq!(filter_directive(None, "info", 0), "info");
        assert_eq!(filter_directive(Some(" "), "info", 1), "debug");
        assert_eq!(filter_directive(None, "warn", 3), "trace");
    }
}

//! Logs to stderr, as text or JSON lines, filtered by `RUST_LOG`.

/// Starts logging to stderr: text, or JSON lines when `json` is set. The level comes from
/// `RUST_LOG` (default `info`). Calling it twice is harmless (tests start several services).
pub fn init_logging(json: bool) {
    init_with_default_filter(json, "info");
}

/// As [`init_logging`], with `default_filter` where `RUST_LOG` is unset (the benchmark keeps its
/// stderr for progress: `warn`).
pub fn init_with_default_filter(json: bool, default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let _ = if json {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init()
    } else {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init()
    };
}

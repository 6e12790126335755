//! What the audit's child processes (the sinks, the replica that is killed) share: starting one
//! with its output appended to its log, stopping one with SIGTERM, and the end of its log.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Starts `binary` with `args` and `RUST_LOG=rust_log`, appending its stdout and stderr to `log`;
/// `what` names it in errors.
pub(super) fn spawn_logged(
    binary: &Path,
    args: &[String],
    rust_log: &str,
    log: &Path,
    what: &str,
) -> Result<Child, String> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
    Command::new(binary)
        .args(args)
        .env("RUST_LOG", rust_log)
        .stdin(Stdio::null())
        .stdout(file.try_clone().map_err(|e| e.to_string())?)
        .stderr(file)
        .spawn()
        .map_err(|e| format!("cannot start {what} ({}): {e}", binary.display()))
}

/// SIGTERM, then waits up to `timeout` for `child` to exit (SIGKILL after that); what went
/// wrong, if anything.
pub(super) fn terminate(mut child: Child, what: &str, timeout: Duration) -> Option<String> {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return None,
            Ok(Some(status)) => return Some(format!("{what} exited with {status}")),
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    Some(format!(
        "{what} did not stop within {} s of SIGTERM",
        timeout.as_secs()
    ))
}

/// The last `lines` lines of `log`.
pub(super) fn log_tail(log: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

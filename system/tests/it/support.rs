//! What the whole-system tests share: child processes stopped when a test ends, the product's
//! binaries, unique names, database queries and waiting for a condition.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// A child process that is stopped when the test ends, whatever happens.
pub(crate) struct Process {
    pub name: &'static str,
    child: Option<Child>,
    log: PathBuf,
}

impl Process {
    pub(crate) fn spawn(name: &'static str, mut command: Command, logs: &Path) -> Self {
        let log = logs.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Self {
            name,
            child: Some(child),
            log,
        }
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then the exit status within 30 s.
    pub(crate) fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return (status, self.log());
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "{} did not stop within 30 s of SIGTERM:\n{}",
                    self.name,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A product binary, built by the workspace build (`cargo nextest run --workspace` builds them).
pub(crate) fn binary(name: &str) -> PathBuf {
    let dir = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().and_then(Path::parent).map(Path::to_path_buf))
        .expect("the test's target directory");
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is not built; run `cargo build --workspace --bins` (the test command does)",
        path.display()
    );
    path
}

pub(crate) fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", uuid_like())
}

fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{:x}{:x}", nanos, std::process::id())
}

/// The output of a database client; empty while the query fails (the sink has not created the
/// table yet).
pub(crate) fn query(command: &mut Command) -> String {
    let output: Output = command.output().expect("the database client runs");
    if output.status.success() {
        String::from_utf8_lossy(&output.stdout).into_owned()
    } else {
        String::new()
    }
}

pub(crate) async fn eventually(mut check: impl FnMut() -> bool) -> bool {
    for _ in 0..300 {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// What MariaDB (`test` on 127.0.0.1:3306 as root) answers to `sql`, tab-separated without a
/// header; empty while the query fails (the sink has not created its table yet).
pub(crate) fn mysql_query(sql: &str) -> String {
    query(
        Command::new("mariadb")
            .args(["-h127.0.0.1", "-uroot", "test", "-N", "-e"])
            .arg(sql),
    )
}

/// What PostgreSQL (`test` on 127.0.0.1:5432 as postgres) answers to `sql`, `|`-separated
/// without a header; empty while the query fails.
pub(crate) fn postgres_query(sql: &str) -> String {
    query(
        Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                "test",
                "-At",
                "-c",
            ])
            .arg(sql),
    )
}

/// The repository's root.
pub(crate) fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A folder list of the root manifest's `[workspace]`: `members` or `exclude`.
pub(crate) fn workspace_list(key: &str) -> Vec<String> {
    let manifest = std::fs::read_to_string(repo().join("Cargo.toml")).expect("Cargo.toml");
    let Some(list) = manifest
        .split(&format!("\n{key} = ["))
        .nth(1)
        .and_then(|rest| rest.split(']').next())
    else {
        return Vec::new();
    };
    list.split(',')
        .map(|folder| folder.trim().trim_matches('"').to_owned())
        .filter(|folder| !folder.is_empty())
        .collect()
}

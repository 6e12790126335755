//! Test support shared by the workspace's integration tests (feature `testing`): real services on
//! loopback ports chosen at run time.
//!
//! A missing tool is a failed test with a message saying how to install it, never a skip:
//! `.ci/test` installs every tool these helpers look for.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use tokio_util::sync::CancellationToken;

use crate::registry::{self, store::Store};

/// A free TCP port on 127.0.0.1 (free when asked; bind soon after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on 127.0.0.1")
}

/// Waits until something accepts TCP connections on `addr`, at most `within`.
pub fn wait_for_port(addr: SocketAddr, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Where a tool is: the environment variable, then `PATH`, then `fallback` under `$HOME`.
pub fn locate_tool(env_var: &str, name: &str, home_fallback: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(env_var) {
        return PathBuf::from(path);
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let candidate = home.join(home_fallback);
    assert!(
        candidate.is_file(),
        "{name} is not installed (looked at ${env_var}, PATH and ~/{home_fallback}); run `.ci/test`, which installs it"
    );
    candidate
}

/// A tansu broker (Kafka-compatible) with in-memory storage on a free loopback port; killed on drop.
#[derive(Debug)]
pub struct Tansu {
    child: Child,
    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub bootstrap: String,
}

impl Tansu {
    /// Starts a broker and waits until it accepts connections.
    pub fn start() -> Self {
        let port = free_port();
        Self::start_with(port, &format!("tcp://127.0.0.1:{port}"))
    }

    /// Starts a broker on `port` that tells clients to connect to `advertised` (for example a
    /// TLS-terminating proxy in front of it), and waits until it accepts connections.
    pub fn start_with(port: u16, advertised: &str) -> Self {
        let binary = locate_tool("TANSU_BIN", "tansu", ".cargo/bin/tansu");
        let url = format!("tcp://127.0.0.1:{port}");
        let log = std::env::temp_dir().join(format!("tansu-{port}.log"));
        let log_file = std::fs::File::create(&log).expect("cannot create the tansu log file");
        let child = Command::new(&binary)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                advertised,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let mut broker = Self {
            child,
            bootstrap: format!("127.0.0.1:{port}"),
        };
        let addr: SocketAddr = broker.bootstrap.parse().expect("loopback address");
        if !wait_for_port(addr, Duration::from_secs(30)) {
            let _ = broker.child.kill();
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            panic!("tansu did not start listening on {addr} within 30 s; its log:\n{log}");
        }
        broker
    }

    /// Creates a topic (tansu does not create topics on first use).
    pub async fn create_topic(&self, name: &str, partitions: i32) {
        create_topic(&self.bootstrap, name, partitions).await;
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Creates `name` with `partitions` partitions on the cluster at `bootstrap`.
pub async fn create_topic(bootstrap: &str, name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .create_topics([&topic], &options)
        .await
        .expect("create_topics request");
    for result in results {
        if let Err((topic, code)) = result {
            assert!(
                code == rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists,
                "cannot create topic {topic}: {code}"
            );
        }
    }
}

/// A schema registry on a free loopback port, stopped when the token is cancelled or dropped.
#[derive(Debug)]
pub struct TestRegistry {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The state behind it.
    pub store: Arc<Store>,
    shutdown: CancellationToken,
}

impl TestRegistry {
    /// Starts an empty in-memory registry.
    pub async fn start() -> Self {
        Self::start_on(
            "127.0.0.1:0".parse().expect("address"),
            Arc::new(Store::in_memory()),
        )
        .await
    }

    /// Starts a registry on `addr` over `store`.
    pub async fn start_on(addr: SocketAddr, store: Arc<Store>) -> Self {
        let shutdown = CancellationToken::new();
        let (addr, _) = registry::spawn(addr, Arc::clone(&store), None, shutdown.clone())
            .await
            .expect("cannot start the schema registry");
        Self {
            url: format!("http://{addr}"),
            store,
            shutdown,
        }
    }

    /// Stops serving (the port closes).
    pub fn stop(&self) {
        self.shutdown.cancel();
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The Python interpreter of the test virtualenv (with confluent-kafka, grpcio-tools, ...):
/// `$AUCTION_PYTHON`, else `~/.cache/auction/venv/bin/python` as `.ci/test` creates it.
pub fn python() -> PathBuf {
    locate_tool(
        "AUCTION_PYTHON",
        "auction-python-not-on-path",
        ".cache/auction/venv/bin/python",
    )
}

/// Polls `check` until it returns true, at most `within`; whether it did.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

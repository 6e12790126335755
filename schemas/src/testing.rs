//! Test support shared by the workspace's integration tests (feature `testing`): real services on
//! loopback ports chosen at run time.
//!
//! A missing tool is a failed test with a message saying how to install it, never a skip:
//! `.ci/test` installs every tool these helpers look for.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
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

/// The folder with Apache Kafka's jars: `$AUCTION_KAFKA_LIBS`, else what `.ci/kafka/assemble`
/// made (`~/.cache/auction/kafka/current/libs`).
pub fn kafka_libs() -> Result<PathBuf, String> {
    let libs = std::env::var_os("AUCTION_KAFKA_LIBS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default()
                .join(".cache/auction/kafka/current/libs")
        });
    if libs.join(".complete").is_file() {
        Ok(libs)
    } else {
        Err(format!(
            "Apache Kafka is not assembled in {} (set AUCTION_KAFKA_LIBS, or run `.ci/kafka/assemble`, which `.ci/test` runs)",
            libs.display()
        ))
    }
}

/// Apache Kafka 4 as one KRaft node (broker and controller in one JVM) on free loopback ports,
/// its log in a temporary folder; killed and removed on drop (also when the test fails).
#[derive(Debug)]
pub struct Kafka {
    child: Child,
    dir: tempfile::TempDir,
    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub bootstrap: String,
    /// The SASL_SSL listener's `127.0.0.1:PORT`, when it has one.
    pub sasl_ssl: Option<String>,
    /// Apache Kafka's version, from its jar.
    pub version: String,
}

/// The user and password of the PLAIN mechanism on a test broker's SASL_SSL listener (the only
/// user it knows).
pub const KAFKA_SASL_USER: &str = "alice";
/// See [`KAFKA_SASL_USER`].
pub const KAFKA_SASL_PASSWORD: &str = "alice-secret";

impl Kafka {
    /// Starts a broker with a PLAINTEXT listener and waits until it accepts connections.
    pub fn start() -> Self {
        Self::try_start().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts a broker with a PLAINTEXT listener and, beside it, a SASL_SSL listener with the
    /// PLAIN mechanism (user [`KAFKA_SASL_USER`], password [`KAFKA_SASL_PASSWORD`]) serving the
    /// PEM `keystore` (the PKCS#8 private key followed by the certificate chain): the original
    /// demo's Confluent Cloud settings. [`Self::sasl_ssl`] is its address.
    pub fn start_with_sasl_ssl(keystore: &Path) -> Self {
        Self::try_start_with(Some(keystore)).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Self::start`], saying what went wrong instead of panicking.
    pub fn try_start() -> Result<Self, String> {
        Self::try_start_with(None)
    }

    fn try_start_with(sasl_ssl_keystore: Option<&Path>) -> Result<Self, String> {
        let port = free_port();
        let libs = kafka_libs()?;
        let classpath = format!("{}/*", libs.display());
        let dir = tempfile::Builder::new()
            .prefix("auction-kafka-")
            .tempdir()
            .map_err(|e| format!("cannot create a folder for Kafka: {e}"))?;
        let controller = free_port();
        let properties = dir.path().join("server.properties");
        let sasl_ssl = sasl_ssl_keystore.map(|keystore| (free_port(), keystore));
        let mut listeners =
            format!("PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}");
        let mut advertised = format!("PLAINTEXT://127.0.0.1:{port}");
        let mut protocols = "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT".to_owned();
        let mut sasl_config = String::new();
        if let Some((sasl_port, keystore)) = sasl_ssl {
            listeners.push_str(&format!(",SASL_SSL://127.0.0.1:{sasl_port}"));
            advertised.push_str(&format!(",SASL_SSL://127.0.0.1:{sasl_port}"));
            protocols.push_str(",SASL_SSL:SASL_SSL");
            sasl_config = format!(
                "inter.broker.listener.name=PLAINTEXT\n\
                 sasl.enabled.mechanisms=PLAIN\n\
                 listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_{KAFKA_SASL_USER}=\"{KAFKA_SASL_PASSWORD}\";\n\
                 listener.name.sasl_ssl.ssl.keystore.type=PEM\n\
                 listener.name.sasl_ssl.ssl.keystore.location={}\n",
                keystore.display()
            );
        }
        let config = format!(
            "process.roles=broker,controller\n\
             node.id=1\n\
             controller.quorum.bootstrap.servers=127.0.0.1:{controller}\n\
             listeners={listeners}\n\
             advertised.listeners={advertised}\n\
             controller.listener.names=CONTROLLER\n\
             listener.security.protocol.map={protocols}\n\
             {sasl_config}\
             log.dirs={logs}\n\
             num.partitions=1\n\
             offsets.topic.replication.factor=1\n\
             offsets.topic.num.partitions=5\n\
             transaction.state.log.replication.factor=1\n\
             transaction.state.log.min.isr=1\n\
             transaction.state.log.num.partitions=5\n\
             share.coordinator.state.topic.replication.factor=1\n\
             share.coordinator.state.topic.min.isr=1\n\
             group.initial.rebalance.delay.ms=0\n",
            logs = dir.path().join("data").display(),
        );
        std::fs::write(&properties, config)
            .map_err(|e| format!("cannot write server.properties: {e}"))?;
        let java = |main: &str| {
            let mut command = Command::new("java");
            command
                .args(["-Xms128m", "-Xmx512m", "-XX:+UseSerialGC", "-Xshare:auto"])
                .arg(format!(
                    "-Dkafka.logs.dir={}",
                    dir.path().join("logs").display()
                ))
                .args(["-cp", &classpath, main]);
            command
        };
        let formatted = java("kafka.tools.StorageTool")
            .args(["format", "--standalone", "-t", "YXVjdGlvbi10ZXN0LWthZg"])
            .arg("-c")
            .arg(&properties)
            .output()
            .map_err(|e| format!("cannot run java (Apache Kafka needs Java 17): {e}"))?;
        if !formatted.status.success() {
            return Err(format!(
                "formatting Kafka's storage failed: {}{}",
                String::from_utf8_lossy(&formatted.stdout),
                String::from_utf8_lossy(&formatted.stderr)
            ));
        }
        let log = dir.path().join("broker.log");
        let log_file = std::fs::File::create(&log)
            .and_then(|file| Ok((file.try_clone()?, file)))
            .map_err(|e| format!("cannot create the Kafka log file: {e}"))?;
        let child = java("kafka.Kafka")
            .arg(&properties)
            .stdin(Stdio::null())
            .stdout(log_file.0)
            .stderr(log_file.1)
            .spawn()
            .map_err(|e| format!("cannot start Apache Kafka: {e}"))?;
        let version = std::fs::read_dir(&libs)
            .into_iter()
            .flatten()
            .flatten()
            .find_map(|entry| {
                let name = entry.file_name().to_string_lossy().into_owned();
                name.strip_prefix("kafka_2.13-")?
                    .strip_suffix(".jar")
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        let broker = Self {
            child,
            dir,
            bootstrap: format!("127.0.0.1:{port}"),
            sasl_ssl: sasl_ssl.map(|(sasl_port, _)| format!("127.0.0.1:{sasl_port}")),
            version,
        };
        let ports = std::iter::once(port).chain(sasl_ssl.map(|(sasl_port, _)| sasl_port));
        for port in ports {
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            if !wait_for_port(addr, Duration::from_secs(60)) {
                return Err(format!(
                    "Kafka did not start listening on {addr} within 60 s; its log:\n{}",
                    broker.log()
                ));
            }
        }
        Ok(broker)
    }

    /// The broker's process id (to measure or signal it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Creates a topic (replication factor 1: one broker).
    pub async fn create_topic(&self, name: &str, partitions: i32) {
        create_topic(&self.bootstrap, name, partitions).await;
    }

    /// The broker's own log so far (for a failing test's message).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("broker.log")).unwrap_or_default()
    }
}

impl Drop for Kafka {
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

/// The original demo's producer (confluent-kafka-python, JSONSerializer, the v1 schema), as a
/// script for [`python`]: `demo_producer.py [--config CONFIG_PY] BOOTSTRAP REGISTRY_URL TOPIC
/// SCHEMA_FILE NAME:PRICE...`; it prints how many records the broker acknowledged.
pub fn demo_producer() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testing/demo_producer.py")
}

/// The demo's JSON Schema (version 1, byte for byte).
pub fn demo_schema() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("json/auction-value.v1.json")
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

//! Apache Kafka 4 for the tests, assembled from Maven Central by `.ci/kafka/assemble` and run
//! with the machine's Java: one KRaft node ([`Kafka`], optionally with a SASL_SSL + PLAIN
//! listener), or a three-node cluster ([`KafkaCluster`]) whose nodes a test can SIGKILL,
//! SIGSTOP/SIGCONT and restart. Every node listens on free loopback ports and keeps its log in a
//! temporary folder; all are killed and removed when the test ends, also when it fails.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, wait_for_port};

/// The user and password of the PLAIN mechanism on a test broker's SASL_SSL listener (the only
/// user it knows).
pub const KAFKA_SASL_USER: &str = "alice";
/// See [`KAFKA_SASL_USER`].
pub const KAFKA_SASL_PASSWORD: &str = "alice-secret";

/// Any 22-character base64url UUID names a cluster; every node of one cluster has the same.
const CLUSTER_ID: &str = "YXVjdGlvbi10ZXN0LWthZg";

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

/// One node's process: its configuration file, its log, its ports.
#[derive(Debug)]
struct Node {
    id: u32,
    port: u16,
    sasl_port: Option<u16>,
    properties: PathBuf,
    log: PathBuf,
    libs: PathBuf,
    child: Option<Child>,
}

/// What differs between the nodes of a single-node broker and of a cluster.
struct NodeConfig<'a> {
    id: u32,
    port: u16,
    controller: u16,
    /// `None`: a single node that is its own quorum; else the static voters of a cluster.
    voters: Option<&'a str>,
    /// A SASL_SSL listener: its port and the PEM keystore it serves.
    sasl_ssl: Option<(u16, &'a Path)>,
    /// Replication factor and `min.insync.replicas` of the internal topics and of new topics.
    replication: u32,
    min_insync: u32,
}

impl Node {
    fn configure(dir: &Path, config: &NodeConfig<'_>) -> Result<Self, String> {
        let libs = kafka_libs()?;
        let node_dir = dir.join(format!("node-{}", config.id));
        std::fs::create_dir_all(&node_dir)
            .map_err(|e| format!("cannot create {}: {e}", node_dir.display()))?;
        let (port, controller) = (config.port, config.controller);
        let mut listeners =
            format!("PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}");
        let mut advertised = format!("PLAINTEXT://127.0.0.1:{port}");
        let mut protocols = "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT".to_owned();
        let mut extra = String::new();
        if let Some((sasl_port, keystore)) = config.sasl_ssl {
            listeners.push_str(&format!(",SASL_SSL://127.0.0.1:{sasl_port}"));
            advertised.push_str(&format!(",SASL_SSL://127.0.0.1:{sasl_port}"));
            protocols.push_str(",SASL_SSL:SASL_SSL");
            extra.push_str(&format!(
                "sasl.enabled.mechanisms=PLAIN\n\
                 listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_{KAFKA_SASL_USER}=\"{KAFKA_SASL_PASSWORD}\";\n\
                 listener.name.sasl_ssl.ssl.keystore.type=PEM\n\
                 listener.name.sasl_ssl.ssl.keystore.location={}\n",
                keystore.display()
            ));
        }
        match config.voters {
            Some(voters) => extra.push_str(&format!("controller.quorum.voters={voters}\n")),
            None => extra.push_str(&format!(
                "controller.quorum.bootstrap.servers=127.0.0.1:{controller}\n"
            )),
        }
        let (replication, min_insync) = (config.replication, config.min_insync);
        let text = format!(
            "process.roles=broker,controller\n\
             node.id={id}\n\
             listeners={listeners}\n\
             advertised.listeners={advertised}\n\
             inter.broker.listener.name=PLAINTEXT\n\
             controller.listener.names=CONTROLLER\n\
             listener.security.protocol.map={protocols}\n\
             {extra}\
             log.dirs={data}\n\
             num.partitions=1\n\
             default.replication.factor={replication}\n\
             min.insync.replicas={min_insync}\n\
             unclean.leader.election.enable=false\n\
             offsets.topic.replication.factor={replication}\n\
             offsets.topic.num.partitions=5\n\
             transaction.state.log.replication.factor={replication}\n\
             transaction.state.log.min.isr={min_insync}\n\
             transaction.state.log.num.partitions=5\n\
             share.coordinator.state.topic.replication.factor={replication}\n\
             share.coordinator.state.topic.min.isr={min_insync}\n\
             group.initial.rebalance.delay.ms=0\n",
            id = config.id,
            data = node_dir.join("data").display(),
        );
        let properties = node_dir.join("server.properties");
        std::fs::write(&properties, text)
            .map_err(|e| format!("cannot write {}: {e}", properties.display()))?;
        let node = Self {
            id: config.id,
            port,
            sasl_port: config.sasl_ssl.map(|(sasl_port, _)| sasl_port),
            properties,
            log: node_dir.join("broker.log"),
            libs,
            child: None,
        };
        let mut format = node.java("kafka.tools.StorageTool");
        format
            .args(["format", "-t", CLUSTER_ID, "-c"])
            .arg(&node.properties);
        if config.voters.is_none() {
            format.arg("--standalone");
        }
        let formatted = format
            .output()
            .map_err(|e| format!("cannot run java (Apache Kafka needs Java 17): {e}"))?;
        if !formatted.status.success() {
            return Err(format!(
                "formatting node {}'s storage failed: {}{}",
                config.id,
                String::from_utf8_lossy(&formatted.stdout),
                String::from_utf8_lossy(&formatted.stderr)
            ));
        }
        Ok(node)
    }

    fn java(&self, main: &str) -> Command {
        let mut command = Command::new("java");
        command
            .args(["-Xms128m", "-Xmx512m", "-XX:+UseSerialGC", "-Xshare:auto"])
            .arg(format!(
                "-Dkafka.logs.dir={}",
                self.log.with_file_name("logs").display()
            ))
            .args(["-cp", &format!("{}/*", self.libs.display()), main]);
        command
    }

    /// Starts the node's process (its log is appended to across restarts).
    fn spawn(&mut self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .and_then(|file| Ok((file.try_clone()?, file)))
            .map_err(|e| format!("cannot open {}: {e}", self.log.display()))?;
        let child = self
            .java("kafka.Kafka")
            .arg(&self.properties)
            .stdin(Stdio::null())
            .stdout(log.0)
            .stderr(log.1)
            .spawn()
            .map_err(|e| format!("cannot start Apache Kafka node {}: {e}", self.id))?;
        self.child = Some(child);
        Ok(())
    }

    fn wait_listening(&self) -> Result<(), String> {
        for port in std::iter::once(self.port).chain(self.sasl_port) {
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            if !wait_for_port(addr, Duration::from_secs(90)) {
                return Err(format!(
                    "Kafka node {} did not listen on {addr} within 90 s; its log:\n{}",
                    self.id,
                    self.log()
                ));
            }
        }
        Ok(())
    }

    fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            let status = Command::new("kill")
                .args([signal, &child.id().to_string()])
                .status();
            assert!(
                status.is_ok_and(|s| s.success()),
                "kill {signal} node {} failed",
                self.id
            );
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Apache Kafka's version, from the name of its jar.
fn version(libs: &Path) -> String {
    std::fs::read_dir(libs)
        .into_iter()
        .flatten()
        .flatten()
        .find_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            name.strip_prefix("kafka_2.13-")?
                .strip_suffix(".jar")
                .map(str::to_owned)
        })
        .unwrap_or_default()
}

fn temporary_dir() -> Result<tempfile::TempDir, String> {
    tempfile::Builder::new()
        .prefix("auction-kafka-")
        .tempdir()
        .map_err(|e| format!("cannot create a folder for Kafka: {e}"))
}

/// Apache Kafka as one KRaft node (broker and controller in one JVM).
#[derive(Debug)]
pub struct Kafka {
    node: Node,
    _dir: tempfile::TempDir,
    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub bootstrap: String,
    /// The SASL_SSL listener's `127.0.0.1:PORT`, when it has one.
    pub sasl_ssl: Option<String>,
    /// Apache Kafka's version, from its jar.
    pub version: String,
}

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
        let dir = temporary_dir()?;
        let port = free_port();
        let sasl_ssl = sasl_ssl_keystore.map(|keystore| (free_port(), keystore));
        let mut node = Node::configure(
            dir.path(),
            &NodeConfig {
                id: 1,
                port,
                controller: free_port(),
                voters: None,
                sasl_ssl,
                replication: 1,
                min_insync: 1,
            },
        )?;
        node.spawn()?;
        node.wait_listening()?;
        Ok(Self {
            version: version(&node.libs),
            bootstrap: format!("127.0.0.1:{port}"),
            sasl_ssl: sasl_ssl.map(|(sasl_port, _)| format!("127.0.0.1:{sasl_port}")),
            node,
            _dir: dir,
        })
    }

    /// The broker's process id (to measure or signal it).
    pub fn pid(&self) -> u32 {
        self.node.child.as_ref().map_or(0, Child::id)
    }

    /// Creates a topic (replication factor 1: one broker); panics when Kafka refuses.
    pub async fn create_topic(&self, name: &str, partitions: i32) {
        if let Err(e) = self.try_create_topic(name, partitions).await {
            panic!("{e}");
        }
    }

    /// Creates a topic (replication factor 1: one broker); a topic that exists already is fine.
    pub async fn try_create_topic(&self, name: &str, partitions: i32) -> Result<(), String> {
        super::try_create_topic(&self.bootstrap, name, partitions).await
    }

    /// The broker's own log so far (for a failing test's message).
    pub fn log(&self) -> String {
        self.node.log()
    }
}

/// Three (or more) Apache Kafka nodes, each broker and controller, with a static quorum:
/// internal and new topics get replication factor 3 and `min.insync.replicas=2`, unclean leader
/// election is off. Nodes are numbered from 1 (their `node.id`, which is also the broker id in
/// Kafka's metadata).
#[derive(Debug)]
pub struct KafkaCluster {
    nodes: Vec<Node>,
    _dir: tempfile::TempDir,
    /// Every node's `127.0.0.1:PORT`, comma-separated, for `bootstrap.servers`.
    pub bootstrap: String,
}

impl KafkaCluster {
    /// Starts `nodes` nodes (at least 3) and waits until each accepts connections.
    pub fn start(nodes: u32) -> Self {
        assert!(nodes >= 3, "a cluster here has at least three nodes");
        let dir = temporary_dir().unwrap_or_else(|e| panic!("{e}"));
        let ports: Vec<(u16, u16)> = (0..nodes).map(|_| (free_port(), free_port())).collect();
        let voters = ports
            .iter()
            .zip(1..)
            .map(|((_, controller), id)| format!("{id}@127.0.0.1:{controller}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut started: Vec<Node> = ports
            .iter()
            .zip(1..)
            .map(|(&(port, controller), id)| {
                Node::configure(
                    dir.path(),
                    &NodeConfig {
                        id,
                        port,
                        controller,
                        voters: Some(&voters),
                        sasl_ssl: None,
                        replication: 3,
                        min_insync: 2,
                    },
                )
                .unwrap_or_else(|e| panic!("{e}"))
            })
            .collect();
        for node in &mut started {
            node.spawn().unwrap_or_else(|e| panic!("{e}"));
        }
        for node in &started {
            node.wait_listening().unwrap_or_else(|e| panic!("{e}"));
        }
        let bootstrap = ports
            .iter()
            .map(|(port, _)| format!("127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",");
        Self {
            nodes: started,
            _dir: dir,
            bootstrap,
        }
    }

    fn node(&mut self, id: i32) -> &mut Node {
        let found = self
            .nodes
            .iter_mut()
            .find(|node| i64::from(node.id) == i64::from(id));
        found.unwrap_or_else(|| panic!("no Kafka node {id}"))
    }

    /// `127.0.0.1:PORT` of node `id`.
    pub fn address(&mut self, id: i32) -> String {
        format!("127.0.0.1:{}", self.node(id).port)
    }

    /// SIGKILLs node `id` and waits for it to be gone.
    pub fn kill(&mut self, id: i32) {
        self.node(id).kill();
    }

    /// SIGSTOPs node `id`: it keeps its connections but answers nothing.
    pub fn pause(&mut self, id: i32) {
        self.node(id).signal("-STOP");
    }

    /// SIGCONTs node `id` after [`Self::pause`].
    pub fn resume(&mut self, id: i32) {
        self.node(id).signal("-CONT");
    }

    /// Starts node `id` again after [`Self::kill`], with its data, and waits until it listens.
    pub fn restart(&mut self, id: i32) {
        let node = self.node(id);
        node.kill();
        node.spawn().unwrap_or_else(|e| panic!("{e}"));
        node.wait_listening().unwrap_or_else(|e| panic!("{e}"));
    }

    /// Node `id`'s own log so far (for a failing test's message).
    pub fn log(&mut self, id: i32) -> String {
        self.node(id).log()
    }

    /// Creates a topic with three replicas of each partition (and the cluster's
    /// `min.insync.replicas=2`); a topic that exists already is fine.
    pub async fn try_create_topic(&self, name: &str, partitions: i32) -> Result<(), String> {
        super::try_create_replicated_topic(&self.bootstrap, name, partitions, 3).await
    }
}

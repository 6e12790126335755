//! Settings of the bid service. The binary fills them from flags and environment variables (and
//! `.env`); tests build them directly.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use auction_schemas::{RegistrySettings, Secret};

/// TLS for the gRPC port: the server's certificate and key, and optionally the CA that client
/// certificates must chain to (then every client must present one).
#[derive(Debug, Clone)]
pub struct GrpcTls {
    /// The server certificate chain, PEM.
    pub certificate_pem: String,
    /// The server's private key, PEM.
    pub key_pem: Secret,
    /// When set, clients must present a certificate signed by this CA (PEM).
    pub client_ca_pem: Option<String>,
}

/// librdkafka properties, passed through as given. Values of properties whose name mentions a
/// password, secret or key never appear in `Debug` output or logs.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct KafkaProperties(BTreeMap<String, String>);

impl KafkaProperties {
    /// Properties with only `bootstrap.servers` set.
    pub fn bootstrap(servers: impl Into<String>) -> Self {
        let mut properties = Self::default();
        properties.set("bootstrap.servers", servers);
        properties
    }

    /// Sets one property.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.0.insert(name.into(), value.into());
        self
    }

    /// The value of a property.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Every property, for building a client.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Reads every `KAFKA_*` variable as a librdkafka property: `KAFKA_SASL_USERNAME=u` becomes
    /// `sasl.username=u` (prefix dropped, lower case, `_` to `.`).
    pub fn from_env_vars(vars: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut properties = Self::default();
        for (name, value) in vars {
            if let Some(rest) = name.strip_prefix("KAFKA_")
                && !rest.is_empty()
            {
                properties.set(rest.to_ascii_lowercase().replace('_', "."), value);
            }
        }
        properties
    }

    /// Whether a property's value must be hidden.
    pub fn is_secret(name: &str) -> bool {
        ["password", "secret", "key", "token"]
            .iter()
            .any(|word| name.contains(word))
            && !name.ends_with(".location")
    }
}

impl fmt::Debug for KafkaProperties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (name, value) in &self.0 {
            if Self::is_secret(name) {
                map.entry(name, &"[redacted]");
            } else {
                map.entry(name, value);
            }
        }
        map.finish()
    }
}

/// Everything the bid service needs to run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// gRPC, gRPC-Web, health and reflection.
    pub grpc_listen: SocketAddr,
    /// Prometheus `/metrics`, `/healthz`, `/readyz`.
    pub metrics_listen: SocketAddr,
    /// Kafka client properties (at least `bootstrap.servers`).
    pub kafka: KafkaProperties,
    /// The bid topic.
    pub topic: String,
    /// Create the topic at start when it is missing.
    pub create_topic: bool,
    /// Partitions of a topic created at start.
    pub topic_partitions: i32,
    /// Replication factor of a topic created at start.
    pub topic_replication: i32,
    /// The schema registry.
    pub registry: RegistrySettings,
    /// How much a bid must add to the current highest.
    pub min_increment: i32,
    /// The lowest first bid of an auction.
    pub starting_price: i32,
    /// How many recent bids each auction keeps for `ListRecentBids`.
    pub recent_bids_per_auction: usize,
    /// How many `request_id` outcomes are remembered for retries.
    pub remembered_requests: usize,
    /// How long the producer tries to deliver a bid before the call fails with UNAVAILABLE.
    pub delivery_timeout: Duration,
    /// The deadline of a call that sets none.
    pub default_deadline: Duration,
    /// Most `PlaceBid` calls in progress at once; more are refused with RESOURCE_EXHAUSTED.
    pub max_bids_in_flight: usize,
    /// Origins allowed to call over gRPC-Web from a browser; empty allows any origin.
    pub cors_allowed_origins: Vec<String>,
    /// TLS on the gRPC port; plaintext when unset.
    pub tls: Option<GrpcTls>,
}

impl Settings {
    /// Defaults for a broker at `bootstrap` and a registry at `registry_url`, on the product's
    /// default ports.
    pub fn new(bootstrap: &str, registry_url: &str) -> Self {
        Self {
            grpc_listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            metrics_listen: SocketAddr::from(([127, 0, 0, 1], 9101)),
            kafka: KafkaProperties::bootstrap(bootstrap),
            topic: "auction".to_owned(),
            create_topic: true,
            topic_partitions: 6,
            topic_replication: 1,
            registry: RegistrySettings::new(registry_url),
            min_increment: 1,
            starting_price: 1,
            recent_bids_per_auction: 20,
            remembered_requests: 100_000,
            delivery_timeout: Duration::from_secs(5),
            default_deadline: Duration::from_secs(10),
            max_bids_in_flight: 10_000,
            cors_allowed_origins: Vec::new(),
            tls: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_variables_become_properties_and_secrets_stay_hidden() {
        let vars = [
            ("KAFKA_BOOTSTRAP_SERVERS", "broker:9092"),
            ("KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
            ("KAFKA_SASL_MECHANISM", "PLAIN"),
            ("KAFKA_SASL_USERNAME", "key"),
            ("KAFKA_SASL_PASSWORD", "hunter2"),
            ("KAFKA_SSL_CA_LOCATION", "/etc/ca.pem"),
            ("PATH", "/bin"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let properties = KafkaProperties::from_env_vars(vars);
        assert_eq!(properties.get("bootstrap.servers"), Some("broker:9092"));
        assert_eq!(properties.get("sasl.password"), Some("hunter2"));
        assert_eq!(properties.get("ssl.ca.location"), Some("/etc/ca.pem"));
        assert_eq!(properties.iter().count(), 6);
        let shown = format!("{properties:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.contains("/etc/ca.pem") && shown.contains("SASL_SSL"),
            "{shown}"
        );
    }
}

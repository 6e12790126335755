//! librdkafka properties as every binary takes them: from `KAFKA_<NAME>` environment variables
//! and repeatable `--kafka-property NAME=VALUE` flags, with one rule for which values are secret.

use std::collections::BTreeMap;
use std::fmt;

/// librdkafka properties, passed through as given. Values of properties whose name mentions a
/// password, secret, key or token never appear in `Debug` output or logs ([`is_secret_property`]).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct KafkaProperties(BTreeMap<String, String>);

impl KafkaProperties {
    /// Properties with only `bootstrap.servers` set.
    pub fn bootstrap(servers: impl Into<String>) -> Self {
        let mut properties = Self::default();
        properties.set("bootstrap.servers", servers);
        properties
    }

    /// Reads every `KAFKA_*` variable as a librdkafka property: `KAFKA_SASL_USERNAME=u` becomes
    /// `sasl.username=u` (prefix dropped, lower case, `_` read as `.`). This is how every process
    /// passes any librdkafka property through from its environment.
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

    /// Sets one property.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.0.insert(name.into(), value.into());
        self
    }

    /// Sets every property of `other`, replacing values already set.
    pub fn extend(&mut self, other: impl IntoIterator<Item = (String, String)>) -> &mut Self {
        self.0.extend(other);
        self
    }

    /// Removes a property, returning its value.
    pub fn remove(&mut self, name: &str) -> Option<String> {
        self.0.remove(name)
    }

    /// The value of a property.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Every property, sorted by name, for building a client.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Every property as `name=value`, secret values replaced by `[redacted]`, for logs.
    pub fn redacted(&self) -> Vec<String> {
        self.iter()
            .map(|(name, value)| {
                if is_secret_property(name) {
                    format!("{name}=[redacted]")
                } else {
                    format!("{name}={value}")
                }
            })
            .collect()
    }
}

impl fmt::Debug for KafkaProperties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (name, value) in &self.0 {
            if is_secret_property(name) {
                map.entry(name, &"[redacted]");
            } else {
                map.entry(name, value);
            }
        }
        map.finish()
    }
}

impl FromIterator<(String, String)> for KafkaProperties {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

/// Whether a Kafka property's value must never be printed: its name mentions a password, secret,
/// key or token (but not a file location, such as `ssl.key.location`).
pub fn is_secret_property(name: &str) -> bool {
    ["password", "secret", "key", "token"]
        .iter()
        .any(|word| name.contains(word))
        && !name.ends_with(".location")
}

/// Parses one `--kafka-property` value, `NAME=VALUE` (the name trimmed, the value as given);
/// the error says what was expected. Made for clap's `value_parser`.
pub fn parse_property(raw: &str) -> Result<(String, String), String> {
    match raw.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_owned(), value.to_owned()))
        }
        _ => Err(format!(
            "expected NAME=VALUE (a librdkafka property such as fetch.wait.max.ms=10), got {raw:?}"
        )),
    }
}

/// The Kafka flags every binary that talks to Kafka takes (flattened into its command line).
///
/// Every environment variable `KAFKA_<NAME>` becomes the librdkafka property `<name>` with `_`
/// read as `.` (`KAFKA_SECURITY_PROTOCOL=SASL_SSL`, `KAFKA_SASL_PASSWORD`, ...);
/// `--kafka-property NAME=VALUE` adds more and overrides them.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers (librdkafka `bootstrap.servers`).
    #[arg(
        long,
        env = "KAFKA_BOOTSTRAP_SERVERS",
        alias = "kafka-bootstrap-servers",
        global = true
    )]
    pub bootstrap_servers: Option<String>,
    /// An extra librdkafka property, `NAME=VALUE`; repeatable. Overrides `KAFKA_*` variables.
    #[arg(
        long = "kafka-property",
        value_name = "NAME=VALUE",
        value_parser = parse_property,
        global = true
    )]
    pub kafka_properties: Vec<(String, String)>,
}

impl KafkaArgs {
    /// The properties these flags and the `KAFKA_*` variables among `env` describe; an error
    /// when no bootstrap servers are given anywhere.
    pub fn into_properties(
        self,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<KafkaProperties, String> {
        let mut properties = KafkaProperties::from_env_vars(env);
        properties.extend(self.kafka_properties);
        if let Some(servers) = self.bootstrap_servers {
            properties.set("bootstrap.servers", servers);
        }
        if properties
            .get("bootstrap.servers")
            .is_none_or(str::is_empty)
        {
            return Err(
                "the Kafka bootstrap servers are not set (KAFKA_BOOTSTRAP_SERVERS or \
                        --bootstrap-servers)"
                    .to_owned(),
            );
        }
        Ok(properties)
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
            ("KAFKA_", "ignored"),
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
        assert!(
            properties
                .redacted()
                .contains(&"sasl.password=[redacted]".to_owned())
        );
    }

    #[test]
    fn secret_names_are_recognised() {
        assert!(is_secret_property("sasl.password"));
        assert!(is_secret_property("sasl.oauthbearer.client.secret"));
        assert!(!is_secret_property("ssl.key.location"));
        assert!(!is_secret_property("security.protocol"));
    }

    #[test]
    fn flags_override_variables_and_bootstrap_servers_are_required() {
        let env = || {
            [
                ("KAFKA_BOOTSTRAP_SERVERS", "env:9092"),
                ("KAFKA_LINGER_MS", "5"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        };
        let args = KafkaArgs {
            bootstrap_servers: Some("flag:9092".to_owned()),
            kafka_properties: vec![("linger.ms".to_owned(), "1".to_owned())],
        };
        let properties = args.into_properties(env()).unwrap();
        assert_eq!(properties.get("bootstrap.servers"), Some("flag:9092"));
        assert_eq!(properties.get("linger.ms"), Some("1"));
        let from_env = KafkaArgs::default().into_properties(env()).unwrap();
        assert_eq!(from_env.get("bootstrap.servers"), Some("env:9092"));
        let missing = KafkaArgs::default()
            .into_properties(Vec::new())
            .unwrap_err();
        assert!(missing.contains("KAFKA_BOOTSTRAP_SERVERS"), "{missing}");
    }

    #[test]
    fn a_property_flag_must_be_name_equals_value() {
        assert_eq!(
            parse_property(" linger.ms =5"),
            Ok(("linger.ms".to_owned(), "5".to_owned()))
        );
        assert!(parse_property("linger.ms").is_err());
        assert!(parse_property("=5").is_err());
    }
}

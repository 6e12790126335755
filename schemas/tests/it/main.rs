//! Integration tests of the schemas crate against real services: the registry over HTTP,
//! confluent-kafka-python against it, and Apache Kafka.

mod codec;
mod kafka_smoke;
mod python_interop;
mod registry_api;

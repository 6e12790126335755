//! Integration tests of the bid contract against real services: the codec through the registry,
//! confluent-kafka-python against it, and Apache Kafka.

mod codec;
mod kafka_smoke;
mod python_interop;

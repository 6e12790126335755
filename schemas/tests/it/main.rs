//! Integration tests of the schemas crate against real services: the registry over HTTP,
//! confluent-kafka-python against it, and the tansu broker.

mod codec;
mod python_interop;
mod registry_api;
mod tansu_smoke;

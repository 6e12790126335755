//! Integration tests of the schema registry over HTTP.

mod compat_soundness;
mod compat_vectors;
mod python_client;
mod registry_api;

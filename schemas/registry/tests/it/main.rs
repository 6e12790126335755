//! Integration tests of the schema registry over HTTP.

mod access_and_limits;
mod compat_soundness;
mod compat_vectors;
mod data_file;
mod python_client;
mod registry_api;

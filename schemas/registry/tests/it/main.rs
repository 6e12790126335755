//! Integration tests of the schema registry over HTTP.

mod registry_api;

//! Integration tests of the gateway against an in-process bid service on librdkafka's mock
//! cluster and the product's schema registry.

mod abuse;
mod browser;
mod helpers;
mod live;
mod pages;

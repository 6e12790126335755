//! Tests of the whole system: the README's run command, and the components as separate
//! production processes against real services.

mod architecture;
mod cutover;
mod embedded;
mod failover;
mod production;
mod settings_docs;
mod support;

//! Integration tests of the sinks against real services: MariaDB, SQLite, CSV files, PostgreSQL
//! over unixODBC + psqlODBC, and Apache Kafka.

mod black_hole;
mod contract;
mod csv_crash;
mod dead_letters;
mod end_to_end;
mod faults;
mod helpers;
mod hive;
mod migration;
mod registry_outage;
mod results;
mod stalls;
mod takeover;
mod watched;

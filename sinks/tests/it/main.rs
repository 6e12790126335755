//! Integration tests of the sinks against real services: MariaDB, SQLite, CSV files, PostgreSQL
//! over unixODBC + psqlODBC, and Apache Kafka.

mod contract;
mod csv_crash;
mod end_to_end;
mod faults;
mod helpers;
mod migration;
mod results;
mod takeover;

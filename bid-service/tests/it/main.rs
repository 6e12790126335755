//! Integration tests of the bid service: each scenario runs against librdkafka's mock cluster and
//! against a real Apache Kafka broker; fault injection uses the mock cluster; grpcurl talks to it through
//! reflection.

mod abuse;
mod clients;
mod doors;
mod faults;
mod grpcurl;
mod helpers;
mod lifecycle;
mod ownership;
mod registry;
mod retention;
mod scenarios;
mod tls;

/// Runs each named scenario against both brokers.
macro_rules! on_both_brokers {
    ($($scenario:ident),* $(,)?) => {
        mod mock_cluster {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    crate::scenarios::$scenario(crate::helpers::Backend::mock().await).await;
                }
            )*
        }
        mod kafka {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    crate::scenarios::$scenario(crate::helpers::Backend::kafka().await).await;
                }
            )*
        }
    };
}

on_both_brokers!(
    accepts_and_answers,
    rejects_each_rule,
    retries_are_idempotent,
    watchers_see_every_change,
    replicas_converge_and_restarts_rebuild,
    counts_bids_of_the_original_demo,
);

//! Starting bid services against a broker (the mock cluster or Apache Kafka) and a registry, and reading
//! back what is in the log.

use std::process::Command;
use std::time::Duration;

use auction_bid_service::{RunningBidService, Settings};
use auction_proto::v1::bid_service_client::BidServiceClient;
use auction_proto::v1::{HighestBidRequest, PlaceBidRequest, PlaceBidResponse};
pub(crate) use auction_testkit::read_bids;
use auction_testkit::{Kafka, TestRegistry, demo_producer, demo_schema, python};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

/// The broker a scenario runs against.
pub(crate) enum Broker {
    /// librdkafka's in-process mock cluster.
    Mock(MockCluster<'static, DefaultProducerContext>),
    /// A real Apache Kafka broker (kept so that it runs until the test ends).
    Kafka(#[allow(dead_code)] Kafka),
}

/// A broker and a registry.
pub(crate) struct Backend {
    pub broker: Broker,
    pub bootstrap: String,
    pub registry: TestRegistry,
}

impl Backend {
    pub(crate) async fn mock() -> Self {
        let cluster = MockCluster::new(1).expect("mock cluster");
        // The mock cluster has no CreateTopics API; its owner creates topics directly.
        cluster.create_topic("auction", 3, 1).expect("topic");
        cluster
            .create_topic("auction.state", 3, 1)
            .expect("state topic");
        cluster
            .create_topic("auction.results", 3, 1)
            .expect("results topic");
        let bootstrap = cluster.bootstrap_servers();
        Self {
            broker: Broker::Mock(cluster),
            bootstrap,
            registry: TestRegistry::start().await,
        }
    }

    pub(crate) async fn kafka() -> Self {
        let kafka = Kafka::start();
        let bootstrap = kafka.bootstrap.clone();
        Self {
            broker: Broker::Kafka(kafka),
            bootstrap,
            registry: TestRegistry::start().await,
        }
    }

    pub(crate) fn mock_cluster(&self) -> &MockCluster<'static, DefaultProducerContext> {
        match &self.broker {
            Broker::Mock(cluster) => cluster,
            Broker::Kafka(_) => panic!("this scenario needs the mock cluster"),
        }
    }

    /// Settings for a service on free ports.
    pub(crate) fn settings(&self) -> Settings {
        let mut settings = Settings::new(&self.bootstrap, &self.registry.url);
        settings.grpc_listen = "127.0.0.1:0".parse().expect("address");
        settings.metrics_listen = "127.0.0.1:0".parse().expect("address");
        settings.topic_partitions = 3;
        settings.create_topic = matches!(self.broker, Broker::Kafka(_));
        settings
    }
}

/// A running bid service with a client.
pub(crate) struct Service {
    pub running: RunningBidService,
    pub client: BidServiceClient<Channel>,
    pub shutdown: CancellationToken,
}

impl Service {
    pub(crate) async fn start(settings: Settings) -> Self {
        let shutdown = CancellationToken::new();
        let mut running = auction_bid_service::spawn(settings, shutdown.clone())
            .await
            .unwrap_or_else(|e| panic!("the bid service did not start: {e}"));
        assert!(
            running.wait_caught_up(Duration::from_secs(60)).await,
            "the service did not replay the log"
        );
        let client = BidServiceClient::connect(format!("http://{}", running.grpc_addr))
            .await
            .expect("connect");
        Self {
            running,
            client,
            shutdown,
        }
    }

    pub(crate) async fn stop(self) {
        self.shutdown.cancel();
        let stopped = tokio::time::timeout(Duration::from_secs(30), self.running.stopped()).await;
        assert!(
            matches!(stopped, Ok(Ok(()))),
            "the service did not stop cleanly: {stopped:?}"
        );
    }

    pub(crate) async fn place(
        &mut self,
        auction: &str,
        name: &str,
        price: i64,
    ) -> Result<PlaceBidResponse, tonic::Status> {
        self.place_with_id(auction, name, price, "").await
    }

    pub(crate) async fn place_with_id(
        &mut self,
        auction: &str,
        name: &str,
        price: i64,
        request_id: &str,
    ) -> Result<PlaceBidResponse, tonic::Status> {
        self.client
            .place_bid(PlaceBidRequest {
                auction_id: auction.to_owned(),
                name: name.to_owned(),
                price,
                request_id: request_id.to_owned(),
                ..Default::default()
            })
            .await
            .map(tonic::Response::into_inner)
    }

    /// (highest price, highest bidder, bid count) of an auction.
    pub(crate) async fn highest(&mut self, auction: &str) -> (Option<i64>, Option<String>, u64) {
        highest_of(self.client.clone(), auction).await
    }
}

/// (highest price, highest bidder, bid count) of an auction.
pub(crate) async fn highest_of(
    mut client: BidServiceClient<Channel>,
    auction: &str,
) -> (Option<i64>, Option<String>, u64) {
    {
        let state = client
            .highest_bid(HighestBidRequest {
                auction_id: auction.to_owned(),
            })
            .await
            .expect("HighestBid")
            .into_inner()
            .auction
            .expect("auction state");
        let highest = state.highest_bid;
        (
            highest.as_ref().map(|b| b.price),
            highest.map(|b| b.name),
            state.bid_count,
        )
    }
}

/// Produces bids with confluent-kafka-python the way the original demo did (v1 schema).
pub(crate) async fn demo_produce(bootstrap: &str, registry_url: &str, topic: &str, bids: &[&str]) {
    let mut command = Command::new(python());
    command
        .arg(demo_producer())
        .args([bootstrap, registry_url, topic])
        .arg(demo_schema())
        .args(bids);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("task")
        .expect("run python");
    assert!(
        output.status.success(),
        "the demo producer failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

pub(crate) use auction_testkit::resident_kib;

pub(crate) use auction_testkit::eventually;

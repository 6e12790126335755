//! Auctions that open, close and sell, on Apache Kafka: a created auction with a 3-second end and
//! a 2-second soft-close window takes a bid in the window, extends, closes on its own with the
//! right winner, and the close reaches `WatchAuction` on every replica; proxy bids answer in the
//! log; the result lands in the MySQL sink's results table (MariaDB); bids after the close, and
//! cancellations without the seller key or after a bid, are refused. The owner SIGKILLed just
//! before the end: the next owner closes the auction, once.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use auction_proto::v1::bid_service_client::BidServiceClient;
use auction_proto::v1::{
    AuctionState, AuctionStatus, CancelAuctionRequest, CreateAuctionRequest, CreateAuctionResponse,
    GetAuctionRequest, PlaceBidRequest, PlaceBidResponse, WatchAuctionRequest,
};
use auction_schemas::RecordCodec;
use auction_schemas::RegistrySettings;
use auction_schemas::result::AuctionResult;
use auction_schemas::state::StateRecord;
use auction_sinks::destination::sql::{SqlDestination, SqlSettings, TableName};
use auction_sinks::{KafkaSettings, RuntimeSettings};
use auction_testkit::{Kafka, TestRegistry};
use chrono::Utc;
use futures::StreamExt;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use tokio_util::sync::CancellationToken;
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

use crate::helpers::{Service, read_bids};
use crate::ownership::{Replica, owner_of};

fn stamp(at: chrono::DateTime<Utc>) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(0),
    })
}

fn seconds(s: i64) -> Option<prost_types::Duration> {
    Some(prost_types::Duration {
        seconds: s,
        nanos: 0,
    })
}

fn end_of(state: &AuctionState) -> chrono::DateTime<Utc> {
    let t = state.end_time.expect("an end time");
    chrono::DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0)).expect("time")
}

async fn create(
    client: &mut BidServiceClient<Channel>,
    id: &str,
    end_in: chrono::Duration,
    window: i64,
    reserve: i64,
) -> CreateAuctionResponse {
    client
        .create_auction(CreateAuctionRequest {
            auction_id: id.to_owned(),
            title: format!("Lot {id}"),
            seller: "sam".to_owned(),
            starting_price: 10,
            reserve_price: reserve,
            end_time: stamp(Utc::now() + end_in),
            soft_close_window: seconds(window),
            extension: seconds(window),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("create {id}: {e:?}"))
        .into_inner()
}

async fn bid(
    client: &mut BidServiceClient<Channel>,
    auction: &str,
    name: &str,
    price: i64,
    max_price: i64,
) -> Result<PlaceBidResponse, tonic::Status> {
    client
        .place_bid(PlaceBidRequest {
            auction_id: auction.to_owned(),
            name: name.to_owned(),
            price,
            max_price,
            ..Default::default()
        })
        .await
        .map(tonic::Response::into_inner)
}

async fn get(client: &mut BidServiceClient<Channel>, auction: &str) -> AuctionState {
    client
        .get_auction(GetAuctionRequest {
            auction_id: auction.to_owned(),
        })
        .await
        .expect("get auction")
        .into_inner()
        .auction
        .expect("state")
}

/// Follows an auction on one replica until it is closed; returns every state seen.
fn watch_until_closed(
    mut client: BidServiceClient<Channel>,
    auction: &str,
) -> tokio::task::JoinHandle<Vec<AuctionState>> {
    let auction = auction.to_owned();
    tokio::spawn(async move {
        let mut stream = client
            .watch_auction(WatchAuctionRequest {
                auction_id: auction,
            })
            .await
            .expect("watch")
            .into_inner();
        let mut seen = Vec::new();
        while let Ok(Some(Ok(update))) =
            tokio::time::timeout(Duration::from_secs(30), stream.next()).await
        {
            let state = update.auction.expect("state");
            let closed = state.status == AuctionStatus::Closed as i32;
            seen.push(state);
            if closed {
                break;
            }
        }
        seen
    })
}

fn reason(status: &tonic::Status) -> Option<String> {
    status.get_details_error_info().map(|info| info.reason)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_soft_close_auction_extends_then_closes_on_its_own_with_the_proxy_winner() {
    let kafka = Kafka::start();
    let registry = TestRegistry::start().await;
    let mut services = Vec::new();
    for _ in 0..2 {
        let mut settings = auction_bid_service::Settings::new(&kafka.bootstrap, &registry.url);
        settings.grpc_listen = "127.0.0.1:0".parse().expect("address");
        settings.metrics_listen = "127.0.0.1:0".parse().expect("address");
        settings.topic_partitions = 3;
        services.push(Service::start(settings).await);
    }
    let (mut a, mut b) = (services[0].client.clone(), services[1].client.clone());
    let (sink_stop, results_table) = mysql_sink(&kafka.bootstrap, &registry.url).await;

    let created = create(&mut a, "soft-1", chrono::Duration::seconds(3), 2, 0).await;
    let key = created.seller_key;
    let state = created.auction.expect("state");
    assert_eq!(state.status, AuctionStatus::Open as i32);
    let first_end = end_of(&state);
    let watchers = [
        watch_until_closed(a.clone(), "soft-1"),
        watch_until_closed(b.clone(), "soft-1"),
    ];

    // Ann bids in the window (through the other replica): the end moves.
    let in_window = first_end - chrono::Duration::milliseconds(1500);
    tokio::time::sleep((in_window - Utc::now()).to_std().unwrap_or_default()).await;
    let ann = bid(&mut b, "soft-1", "ann", 10, 0)
        .await
        .expect("ann's bid");
    let after_ann = ann.auction.expect("state");
    assert_eq!(after_ann.extensions, 1, "a bid in the window extends");
    assert!(end_of(&after_ann) > first_end, "the end moved");

    // Bob's maximum leads at one increment; Ann's higher plain bid is answered by it at once.
    let bob = bid(&mut a, "soft-1", "bob", 0, 30)
        .await
        .expect("bob's maximum");
    assert_eq!(bob.bid.as_ref().map(|b| b.price), Some(11));
    let ann2 = bid(&mut b, "soft-1", "ann", 20, 0)
        .await
        .expect("ann's second bid");
    assert!(ann2.outbid, "an earlier, higher maximum outbids it at once");

    let closes: Vec<Vec<AuctionState>> = futures::future::join_all(watchers)
        .await
        .into_iter()
        .map(|seen| seen.expect("watcher"))
        .collect();
    for (replica, seen) in closes.iter().enumerate() {
        let last = seen.last().expect("updates");
        assert_eq!(
            last.status,
            AuctionStatus::Closed as i32,
            "replica {replica} streamed the close: {seen:#?}"
        );
        let result = last.result.as_ref().expect("a result");
        let winner = result.winning_bid.as_ref().expect("a winning bid");
        assert!(result.sold);
        assert_eq!(
            (winner.name.as_str(), winner.price),
            ("bob", 21),
            "replica {replica}"
        );
        assert!(
            seen.iter().any(|s| s.extensions >= 1),
            "replica {replica} streamed the extension"
        );
    }
    let closed_at = closes[0][closes[0].len() - 1]
        .result
        .as_ref()
        .and_then(|r| r.closed_at)
        .expect("closed at");
    let closed_at = chrono::DateTime::from_timestamp(closed_at.seconds, 0).expect("time");
    let final_end = end_of(closes[0].last().expect("state"));
    assert!(
        closed_at >= final_end - chrono::Duration::seconds(1),
        "closed at {closed_at}, not before the moved end {final_end}"
    );
    println!("closed at {closed_at}, end {final_end} (first end {first_end})");

    // The result is in the results topic once, for the sinks to export.
    let results = results_of(&kafka.bootstrap, "soft-1");
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(
        (
            results[0].sold,
            results[0].winner.as_deref(),
            results[0].final_price,
            results[0].bid_count
        ),
        (true, Some("bob"), Some(21), 4)
    );

    // ...and in the MySQL sink's results table.
    let row = results_row(&results_table, "soft-1").await;
    assert_eq!(
        row,
        Some((true, Some("bob".to_owned()), Some(21))),
        "the result in MariaDB"
    );
    sink_stop.cancel();

    // After the close: bids are refused with the reason, on every replica.
    for client in [&mut a, &mut b] {
        let late = bid(client, "soft-1", "cid", 500, 0)
            .await
            .expect_err("a bid after the close");
        assert_eq!(late.code(), Code::FailedPrecondition, "{late:?}");
        assert_eq!(
            reason(&late).as_deref(),
            Some("AUCTION_NOT_OPEN"),
            "{late:?}"
        );
        assert_eq!(
            get(client, "soft-1").await.status,
            AuctionStatus::Closed as i32
        );
    }
    // The log holds every visible price, Bob's automatic answer included.
    let log = read_bids(&kafka.bootstrap, &registry.url, "auction").await;
    let prices: Vec<(String, i32)> = log
        .iter()
        .filter(|(bid, _, _)| bid.auction_id.as_str() == "soft-1")
        .map(|(bid, _, _)| (bid.name.to_string(), bid.price.get()))
        .collect();
    assert_eq!(
        prices,
        vec![
            ("ann".to_owned(), 10),
            ("bob".to_owned(), 11),
            ("ann".to_owned(), 20),
            ("bob".to_owned(), 21)
        ]
    );

    // Cancelling: needs the seller key and no bid.
    let wrong = a
        .cancel_auction(CancelAuctionRequest {
            auction_id: "soft-1".into(),
            seller_key: "not-the-key".into(),
        })
        .await
        .expect_err("a wrong key");
    assert_eq!(wrong.code(), Code::PermissionDenied, "{wrong:?}");
    let with_bids = a
        .cancel_auction(CancelAuctionRequest {
            auction_id: "soft-1".into(),
            seller_key: key,
        })
        .await
        .expect_err("an auction with bids");
    assert_eq!(with_bids.code(), Code::FailedPrecondition, "{with_bids:?}");
    let fresh = create(&mut b, "cancel-1", chrono::Duration::minutes(5), 0, 100).await;
    let cancelled = a
        .cancel_auction(CancelAuctionRequest {
            auction_id: "cancel-1".into(),
            seller_key: fresh.seller_key,
        })
        .await
        .expect("cancel")
        .into_inner()
        .auction
        .expect("state");
    assert_eq!(cancelled.status, AuctionStatus::Cancelled as i32);
    let refused = bid(&mut b, "cancel-1", "ann", 10, 0)
        .await
        .expect_err("a bid on a cancelled auction");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("cancelled"), "{refused:?}");
    let duplicate = a
        .create_auction(CreateAuctionRequest {
            auction_id: "cancel-1".into(),
            title: "again".into(),
            seller: "sam".into(),
            starting_price: 1,
            end_time: stamp(Utc::now() + chrono::Duration::minutes(1)),
            ..Default::default()
        })
        .await
        .expect_err("the same id twice");
    assert_eq!(duplicate.code(), Code::AlreadyExists);
    for service in services {
        service.stop().await;
    }
}

/// MariaDB as the test command starts it.
const MYSQL_URL: &str = "mysql://root@127.0.0.1:3306/test";

/// Starts the MySQL sink in this process (bids to a table of its own, results to another);
/// returns its stop token and the results table.
async fn mysql_sink(bootstrap: &str, registry_url: &str) -> (CancellationToken, String) {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let mut sql = SqlSettings::new(auction_process::Secret::new(MYSQL_URL));
    sql.table = TableName::parse(&format!("bid_{}", &suffix[..12])).expect("table");
    let results_table = format!("result_{}", &suffix[..12]);
    sql.results_table = Some(TableName::parse(&results_table).expect("table"));
    let mut kafka = KafkaSettings::new(
        auction_process::KafkaProperties::bootstrap(bootstrap),
        "mysql",
    );
    kafka.group_id = format!("lifecycle-{suffix}");
    let settings = RuntimeSettings::new(kafka, RegistrySettings::new(registry_url));
    let target = SqlDestination::connect(&sql).await.expect("MariaDB");
    let stop = CancellationToken::new();
    tokio::spawn(auction_sinks::run(
        settings,
        target,
        auction_process::Readiness::default(),
        auction_sinks::Progress::default(),
        stop.clone(),
    ));
    (stop, results_table)
}

/// The result row of `auction` in `table` (sold, winner, final price), waiting up to 30 s for it.
async fn results_row(table: &str, auction: &str) -> Option<(bool, Option<String>, Option<i32>)> {
    let mut sql = SqlSettings::new(auction_process::Secret::new(MYSQL_URL));
    sql.results_table = None;
    let reader = SqlDestination::connect(&sql).await.expect("MariaDB");
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let row = reader
            .connection()
            .query_one(Statement::from_sql_and_values(
                DbBackend::MySql,
                format!("SELECT sold, winner, final_price FROM `{table}` WHERE auction_id = ?"),
                [auction.into()],
            ))
            .await
            .ok()
            .flatten();
        if let Some(row) = row {
            return Some((
                row.try_get("", "sold").expect("sold"),
                row.try_get("", "winner").expect("winner"),
                row.try_get("", "final_price").expect("final_price"),
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    None
}

/// Every committed value of `topic` whose key is `key`, in order within its partition.
fn values_of(bootstrap: &str, topic: &str, key: &str) -> Vec<Vec<u8>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "value-reader")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .create()
        .expect("consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let partitions = metadata.topics()[0].partitions().len();
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        assignment
            .add_partition_offset(topic, p as i32, Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&assignment).expect("assign");
    let mut ended = 0;
    let mut values = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while ended < partitions && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(message)) if message.key() == Some(key.as_bytes()) => {
                values.push(message.payload().unwrap_or_default().to_vec());
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => ended += 1,
            _ => {}
        }
    }
    values
}

/// Every distinct close of `auction` the state topic holds (its `closed_at`).
fn closes_in_state_topic(bootstrap: &str, auction: &str) -> HashSet<String> {
    values_of(bootstrap, "auction.state", auction)
        .iter()
        .filter_map(|value| match RecordCodec::decode(Some(value)) {
            Ok(StateRecord::Auction(record)) => record.lifecycle.and_then(|l| l.closed),
            _ => None,
        })
        .map(|closed| closed.closed_at)
        .collect()
}

/// The results topic's records of `auction`.
fn results_of(bootstrap: &str, auction: &str) -> Vec<AuctionResult> {
    values_of(bootstrap, "auction.results", auction)
        .iter()
        .map(|value| RecordCodec::decode(Some(value)).expect("a result"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_killed_just_before_the_end_is_replaced_and_the_new_owner_closes_once() {
    let kafka = Kafka::start();
    let registry = TestRegistry::start().await;
    let mut replicas = [
        Replica::start(&kafka.bootstrap, &registry.url, 2).await,
        Replica::start(&kafka.bootstrap, &registry.url, 2).await,
    ];
    tokio::time::sleep(Duration::from_secs(3)).await;
    let auction = "kill-close";
    let partition = auction_bid_service::partition_for(auction, 2);
    let owner = owner_of(&kafka.bootstrap, partition).expect("the partition has an owner");
    let victim = replicas
        .iter()
        .position(|r| r.address == owner)
        .expect("the owner is one of the replicas");
    let survivor = 1 - victim;
    let mut client = replicas[survivor].client.clone();
    let created = create(&mut client, auction, chrono::Duration::seconds(4), 0, 0).await;
    let end = end_of(created.auction.as_ref().expect("state"));
    bid(&mut client, auction, "ann", 0, 50).await.expect("ann");
    bid(&mut client, auction, "bob", 25, 0).await.expect("bob");
    let watcher = watch_until_closed(client.clone(), auction);

    // Kill the owner a second before the end, so that it cannot have closed the auction.
    tokio::time::sleep(
        (end - chrono::Duration::seconds(1) - Utc::now())
            .to_std()
            .unwrap_or_default(),
    )
    .await;
    assert_eq!(
        get(&mut client, auction).await.status,
        AuctionStatus::Open as i32,
        "still open before the kill"
    );
    replicas[victim].child.kill().expect("SIGKILL");
    let status = replicas[victim].child.wait().expect("reaped");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "the owner died of the SIGKILL"
    );

    let seen = watcher.await.expect("watcher");
    let last = seen.last().expect("updates");
    assert_eq!(last.status, AuctionStatus::Closed as i32, "{seen:#?}");
    let winner = last
        .result
        .as_ref()
        .and_then(|r| r.winning_bid.as_ref())
        .expect("sold");
    assert_eq!((winner.name.as_str(), winner.price), ("ann", 26));
    let new_owner = owner_of(&kafka.bootstrap, partition).expect("a new owner");
    assert_eq!(
        new_owner, replicas[survivor].address,
        "the survivor took over"
    );
    let closes = closes_in_state_topic(&kafka.bootstrap, auction);
    assert_eq!(closes.len(), 1, "closed once: {closes:?}");
    assert_eq!(
        results_of(&kafka.bootstrap, auction).len(),
        1,
        "one result in the results topic"
    );
    println!(
        "closed at {:?} by the new owner, {} s after the end",
        closes,
        (Utc::now() - end).num_seconds()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_implicit_auctions_and_with_a_creation_token_only_token_holders_open_auctions() {
    let kafka = Kafka::start();
    let registry = TestRegistry::start().await;
    let mut settings = auction_bid_service::Settings::new(&kafka.bootstrap, &registry.url);
    settings.grpc_listen = "127.0.0.1:0".parse().expect("address");
    settings.metrics_listen = "127.0.0.1:0".parse().expect("address");
    settings.topic_partitions = 3;
    settings.implicit_auctions = false;
    settings.creation_token = Some(auction_process::Secret::new("let-me-sell"));
    let service = Service::start(settings).await;
    let mut client = service.client.clone();

    let unknown = bid(&mut client, "nobody-made-this", "ann", 10, 0)
        .await
        .expect_err("a bid on an auction nobody created");
    assert_eq!(unknown.code(), Code::NotFound, "{unknown:?}");
    let request = |token: &str| CreateAuctionRequest {
        auction_id: "token-lot".into(),
        title: "A chair".into(),
        seller: "sam".into(),
        starting_price: 5,
        end_time: stamp(Utc::now() + chrono::Duration::minutes(5)),
        creation_token: token.to_owned(),
        ..Default::default()
    };
    for wrong in ["", "let-me-sel", "let-me-sell!"] {
        let refused = client
            .create_auction(request(wrong))
            .await
            .expect_err("a wrong creation token");
        assert_eq!(
            refused.code(),
            Code::PermissionDenied,
            "{wrong:?}: {refused:?}"
        );
    }
    client
        .create_auction(request("let-me-sell"))
        .await
        .expect("the right token");
    let placed = bid(&mut client, "token-lot", "ann", 5, 0)
        .await
        .expect("a bid on the created auction");
    assert_eq!(placed.bid.map(|b| b.price), Some(5));
    // Every field wrong at once is named at once.
    let invalid = client
        .create_auction(CreateAuctionRequest {
            auction_id: "bad id".into(),
            starting_price: -1,
            creation_token: "let-me-sell".into(),
            ..Default::default()
        })
        .await
        .expect_err("an invalid definition");
    assert_eq!(invalid.code(), Code::InvalidArgument);
    let fields: Vec<String> = invalid
        .get_details_bad_request()
        .expect("field violations")
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect();
    for field in [
        "auction_id",
        "title",
        "seller",
        "starting_price",
        "end_time",
    ] {
        assert!(fields.iter().any(|f| f == field), "{field} in {fields:?}");
    }
    service.stop().await;
}

//! Faults: a sink killed with SIGKILL mid-stream, MySQL down for a while, two instances in one
//! group.

use std::process::Stdio;
use std::time::Duration;

use auction_testkit::free_port;
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use crate::helpers::{
    MYSQL_URL, RunningSink, Stack, assert_exactly_once, csv_rows, sql_rows, sql_target, unique,
    wait_until,
};

/// Starts the `auction-sink` binary for `stack` with `args` (the target's subcommand and flags).
fn spawn_binary(stack: &Stack, group: &str, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_auction-sink"))
        .args(args)
        .env("KAFKA_BOOTSTRAP_SERVERS", &stack.broker.bootstrap)
        .env("AUCTION_TOPIC", &stack.topic)
        .env("SINK_DEAD_LETTER_TOPIC", &stack.dead_letter_topic)
        .env("SINK_GROUP_ID", group)
        .env("SCHEMA_REGISTRY_URL", &stack.registry.url)
        .env("SINK_METRICS_LISTEN", "127.0.0.1:0")
        // Small batches, so that the kill lands between many commits.
        .env("SINK_BATCH_SIZE", "20")
        .env("SINK_BATCH_LINGER_MS", "20")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("cannot start auction-sink")
}

#[tokio::test]
async fn a_sink_killed_mid_stream_restarts_without_losing_or_duplicating() {
    let stack = Stack::start(3).await;
    let mut bids = stack.produce_bids(4000, 11, "first").await;
    let table = unique("bid_kill");
    let dir = tempfile::tempdir().unwrap();
    let csv_path = dir.path().join("output.csv");
    let csv_arg = csv_path.to_str().unwrap().to_owned();
    let mysql_args = ["mysql", "--database-url", MYSQL_URL, "--table", &table];
    let csv_args = ["csv", "--path", &csv_arg];
    let reader = sql_target(MYSQL_URL, &table).await;
    let mysql_count = || async { reader.stored_rows().await.map(|r| r.len()).unwrap_or(0) };

    let mut mysql = spawn_binary(&stack, "kill-mysql", &mysql_args);
    let mut csv = spawn_binary(&stack, "kill-csv", &csv_args);
    wait_until(
        Duration::from_secs(60),
        "both sinks are writing",
        || async { mysql_count().await >= 200 && csv_rows(&csv_path).len() >= 200 },
    )
    .await;
    mysql.kill().await.unwrap(); // SIGKILL: no commit, no close
    csv.kill().await.unwrap();
    let at_kill = (mysql_count().await, csv_rows(&csv_path).len());
    assert!(
        at_kill.0 < bids.len() && at_kill.1 < bids.len(),
        "the kill came mid-stream: {at_kill:?} of {}",
        bids.len()
    );

    bids.extend(stack.produce_bids(1000, 11, "second").await);
    let mut mysql = spawn_binary(&stack, "kill-mysql", &mysql_args);
    let mut csv = spawn_binary(&stack, "kill-csv", &csv_args);
    let total = bids.len();
    wait_until(
        Duration::from_secs(120),
        "every bid landed after the restart",
        || async { mysql_count().await >= total && csv_rows(&csv_path).len() >= total },
    )
    .await;
    // Give a duplicate, if the restart were to write one, time to show up.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for rows in [sql_rows(&reader).await, csv_rows(&csv_path)] {
        assert_eq!(rows.len(), total);
        assert_exactly_once(&rows, &bids);
    }

    // SIGTERM: a clean exit with status 0.
    for child in [&mut mysql, &mut csv] {
        let pid = child.id().unwrap().to_string();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = tokio::time::timeout(Duration::from_secs(20), child.wait())
            .await
            .expect("the sink exits within 20 s of SIGTERM")
            .unwrap();
        assert!(exit.success(), "{exit}");
    }
}

/// A TCP proxy in front of MariaDB that can be started and stopped, to take "the database" away.
struct Proxy {
    stop: CancellationToken,
}

impl Proxy {
    fn start(port: u16) -> Self {
        let stop = CancellationToken::new();
        let token = stop.clone();
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("proxy port");
        listener.set_nonblocking(true).unwrap();
        tokio::spawn(async move {
            let listener = TcpListener::from_std(listener).unwrap();
            loop {
                let accepted = tokio::select! {
                    () = token.cancelled() => return,
                    accepted = listener.accept() => accepted,
                };
                let Ok((mut client, _)) = accepted else {
                    continue;
                };
                let token = token.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect("127.0.0.1:3306").await else {
                        return;
                    };
                    tokio::select! {
                        () = token.cancelled() => {}
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                    }
                });
            }
        });
        Self { stop }
    }

    fn stop(&self) {
        self.stop.cancel();
    }
}

#[tokio::test]
async fn mysql_down_for_a_while_backs_off_then_everything_lands() {
    // Count this process's retries, to show the sink backs off instead of spinning.
    let metrics = auction_process::metrics_handle();
    let stack = Stack::start(2).await;
    let table = unique("bid_outage");
    let port = free_port();
    // Nothing listens on the port yet: the database is down from the start.
    let url = format!("mysql://root@127.0.0.1:{port}/test");
    let mut bids = stack.produce_bids(200, 5, "during-outage").await;
    let sink = RunningSink::spawn(
        stack.settings("mysql", "outage"),
        sql_target(&url, &table).await,
    );

    wait_until(Duration::from_secs(30), "the sink has started", || async {
        sink.readiness.get()
    })
    .await;
    wait_until(
        Duration::from_secs(30),
        "the sink reports not ready",
        || async { !sink.readiness.get() },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !sink.readiness.get(),
        "still not ready while the database is down"
    );
    let reader = sql_target(MYSQL_URL, &table).await;
    assert_eq!(reader.stored_rows().await.map(|r| r.len()).unwrap_or(0), 0);
    // No hot loop: with backoff doubling from 100 ms, seconds of outage take a handful of
    // attempts, not thousands.
    let retries =
        auction_process::metric_sum_in(&metrics.render(), "sink_write_retries_total", None);
    assert!(
        (1.0..40.0).contains(&retries),
        "{retries} write attempts during the outage"
    );

    let proxy = Proxy::start(port);
    wait_until(
        Duration::from_secs(60),
        "every bid landed after the database came back",
        || async { reader.stored_rows().await.map(|r| r.len()).unwrap_or(0) >= bids.len() },
    )
    .await;
    wait_until(
        Duration::from_secs(10),
        "the sink is ready again",
        || async { sink.readiness.get() },
    )
    .await;

    // Down again in the middle of the stream, then back.
    proxy.stop();
    bids.extend(stack.produce_bids(200, 5, "second-outage").await);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _proxy = Proxy::start(port);
    wait_until(
        Duration::from_secs(60),
        "every bid landed after the second outage",
        || async { reader.stored_rows().await.map(|r| r.len()).unwrap_or(0) >= bids.len() },
    )
    .await;
    let rows = sql_rows(&reader).await;
    assert_eq!(rows.len(), bids.len());
    assert_exactly_once(&rows, &bids);
    let summary = sink.stop().await;
    assert_eq!(summary.written, bids.len());
}

#[tokio::test]
async fn two_mysql_instances_in_one_group_split_the_partitions_and_write_every_bid_once() {
    let stack = Stack::start(4).await;
    let table = unique("bid_pair");
    let first = RunningSink::spawn(
        stack.settings("mysql", "pair"),
        sql_target(MYSQL_URL, &table).await,
    );
    let second = RunningSink::spawn(
        stack.settings("mysql", "pair"),
        sql_target(MYSQL_URL, &table).await,
    );
    // Let both join the group before there is anything to read: the group is stable with two
    // members (a fixed wait was too short on a loaded machine, and one instance took it all).
    let bootstrap = stack.broker.bootstrap.clone();
    wait_until(
        Duration::from_secs(60),
        "both instances are members of the stable group",
        || {
            let bootstrap = bootstrap.clone();
            async move {
                tokio::task::spawn_blocking(move || stable_members(&bootstrap, "pair"))
                    .await
                    .unwrap_or(0)
                    == 2
            }
        },
    )
    .await;

    let bids = stack.produce_bids(800, 23, "pair").await;
    let reader = sql_target(MYSQL_URL, &table).await;
    wait_until(Duration::from_secs(60), "every bid landed", || async {
        reader.stored_rows().await.map(|r| r.len()).unwrap_or(0) >= bids.len()
    })
    .await;
    let rows = sql_rows(&reader).await;
    assert_eq!(rows.len(), bids.len());
    assert_exactly_once(&rows, &bids);

    let (a, b) = (first.stop().await, second.stop().await);
    assert!(
        a.written > 0 && b.written > 0,
        "both instances wrote: {a:?} {b:?}"
    );
    assert_eq!(a.written + b.written, bids.len(), "{a:?} {b:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_joining_and_leaving_mid_stream_changes_nothing_in_the_books() {
    let stack = Stack::start(4).await;
    let table = unique("bid_churn");
    let first = RunningSink::spawn(
        stack.settings("mysql", "churn"),
        sql_target(MYSQL_URL, &table).await,
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    // Small batches, so that the rebalances land in the middle of the stream.
    let bids = stack.produce_bids(3_000, 97, "churn").await;
    let reader = sql_target(MYSQL_URL, &table).await;
    wait_until(
        Duration::from_secs(60),
        "the first instance started writing",
        || async { reader.stored_rows().await.map(|r| r.len()).unwrap_or(0) > 0 },
    )
    .await;
    // A second instance joins (a rebalance while the first is mid-stream) ...
    let second = RunningSink::spawn(
        stack.settings("mysql", "churn"),
        sql_target(MYSQL_URL, &table).await,
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    // ... and leaves again (another rebalance), with its partitions going back to the first.
    let left = second.stop().await;
    wait_until(Duration::from_secs(90), "every bid landed", || async {
        reader.stored_rows().await.map(|r| r.len()).unwrap_or(0) >= bids.len()
    })
    .await;
    let rows = sql_rows(&reader).await;
    assert_eq!(rows.len(), bids.len(), "no bid lost, none written twice");
    assert_exactly_once(&rows, &bids);
    let stayed = first.stop().await;
    assert_eq!(
        stayed.written + left.written,
        bids.len(),
        "each bid written by exactly one instance: {stayed:?} {left:?}"
    );
}

/// How many members the consumer group `group` has, if it is stable (0 otherwise).
fn stable_members(bootstrap: &str, group: &str) -> usize {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let Ok(consumer) = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create::<BaseConsumer>()
    else {
        return 0;
    };
    match consumer.fetch_group_list(Some(group), Duration::from_secs(5)) {
        Ok(list) => list
            .groups()
            .iter()
            .filter(|g| g.name() == group && g.state() == "Stable")
            .map(|g| g.members().len())
            .sum(),
        Err(_) => 0,
    }
}

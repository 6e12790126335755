//! Databases that do not answer: a MySQL black hole (a TCP listener that accepts connections and
//! never sends a byte) in front of the `auction-sink` binary and of the SQL target, and statements
//! stuck on a row lock in MariaDB and in PostgreSQL (through ODBC). Every statement has a time
//! limit (`SINK_STATEMENT_TIMEOUT_MS`): the sink turns not-ready instead of hanging, SIGTERM still
//! ends it, and a transaction that timed out leaves nothing of its batch behind.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use auction_process::Secret;
use auction_schemas::result::AuctionResult;
use auction_sinks::destination::ResultRecord;
use auction_sinks::destination::odbc::{Dialect, OdbcDestination, OdbcSettings};
use auction_sinks::destination::sql::{SqlDestination, SqlSettings, TableName};
use auction_sinks::{Destination, SinkRecord, SourcePosition};
use auction_testkit::free_port;
use sea_orm::{ConnectionTrait, Database, Statement, TransactionTrait};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};

use crate::helpers::{
    MYSQL_URL, ODBC_POSTGRES, Row, Stack, assert_exactly_once, odbc_rows, record, sql_rows, unique,
};

/// A TCP listener that accepts every connection and never reads or writes: a database host whose
/// network swallows everything after the handshake's SYN/ACK.
struct BlackHole {
    addr: SocketAddr,
    accepted: Arc<Mutex<Vec<Instant>>>,
}

impl BlackHole {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&accepted);
        tokio::spawn(async move {
            // Connections are kept open (never answered) for as long as the test runs.
            let mut held = Vec::new();
            while let Ok((connection, _)) = listener.accept().await {
                log.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(Instant::now());
                held.push(connection);
            }
        });
        Self { addr, accepted }
    }

    fn mysql_url(&self) -> String {
        format!("mysql://root@{}/test", self.addr)
    }

    /// When each connection was accepted.
    fn accepted(&self) -> Vec<Instant> {
        self.accepted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The status code of `GET /readyz`, or `None` while nothing answers on `addr`.
async fn readyz(addr: SocketAddr) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    stream
        .write_all(b"GET /readyz HTTP/1.1\r\nHost: sink\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.ok()?;
    let status = String::from_utf8_lossy(&response);
    status.split_whitespace().nth(1)?.parse().ok()
}

fn spawn_sink(
    stack: &Stack,
    metrics: SocketAddr,
    database_url: &str,
    settings: &[(&str, &str)],
) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_auction-sink"));
    command
        .args(["mysql", "--database-url", database_url])
        .env("KAFKA_BOOTSTRAP_SERVERS", &stack.broker.bootstrap)
        .env("AUCTION_TOPIC", &stack.topic)
        .env("SINK_DEAD_LETTER_TOPIC", &stack.dead_letter_topic)
        .env("SINK_GROUP_ID", unique("black-hole"))
        .env("SCHEMA_REGISTRY_URL", &stack.registry.url)
        .env("SINK_METRICS_LISTEN", metrics.to_string())
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    for (name, value) in settings {
        command.env(name, value);
    }
    command.spawn().expect("cannot start auction-sink")
}

fn sigterm(child: &Child) {
    let pid = child.id().expect("the sink is running").to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn a_black_holed_mysql_makes_the_sink_not_ready_within_its_statement_timeout_and_sigterm_ends_it()
 {
    let statement_timeout = Duration::from_secs(2);
    let close_timeout = Duration::from_secs(5);
    let stack = Stack::start(1).await;
    // Records wait on the topic before the sink starts: its first batch comes at once.
    stack.produce_bids(50, 3, "black-hole").await;
    let black_hole = BlackHole::start().await;
    let metrics = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut sink = spawn_sink(
        &stack,
        metrics,
        &black_hole.mysql_url(),
        &[
            ("SINK_STATEMENT_TIMEOUT_MS", "2000"),
            ("SINK_CLOSE_TIMEOUT_MS", "5000"),
            ("SINK_RETRY_INITIAL_MS", "100"),
            ("SINK_RETRY_MAX_MS", "500"),
        ],
    );

    // Ready once subscribed; the first write attempt (the check for the demo's rows, then the
    // batch) opens a connection to the black hole; not ready once that attempt times out.
    let started = Instant::now();
    let mut was_ready = false;
    let not_ready_at = loop {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the sink did not turn not-ready within 60 s (ready seen: {was_ready}, connections: {})",
            black_hole.accepted().len()
        );
        match readyz(metrics).await {
            Some(200) => was_ready = true,
            Some(503) if !black_hole.accepted().is_empty() => break Instant::now(),
            Some(503) | None => {}
            Some(other) => panic!("/readyz answered {other}"),
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let accepted = black_hole.accepted();
    let first_attempt = accepted[0];
    let not_ready_after = not_ready_at.duration_since(first_attempt);
    println!(
        "first connection to the black hole {:.2} s after start; not ready {:.2} s after it \
         (statement timeout {:.1} s)",
        first_attempt.duration_since(started).as_secs_f64(),
        not_ready_after.as_secs_f64(),
        statement_timeout.as_secs_f64()
    );
    assert!(
        was_ready,
        "the sink was ready before its first write attempt"
    );
    assert!(
        not_ready_after <= statement_timeout + Duration::from_millis(1500),
        "not ready {not_ready_after:?} after the first write attempt; the statement timeout is \
         {statement_timeout:?}"
    );

    // It keeps trying (each attempt bounded) and stays not ready while the database is silent.
    let attempts = accepted.len();
    let watch_until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < watch_until {
        assert_eq!(
            readyz(metrics).await,
            Some(503),
            "not ready while MySQL is silent"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let attempts_later = black_hole.accepted().len();
    assert!(
        attempts_later > attempts,
        "the sink retried: {attempts} then {attempts_later} connections in 5 s"
    );

    // SIGTERM right after a new attempt started, so that it lands on a statement in flight.
    let before = black_hole.accepted().len();
    let wait_for_attempt = Instant::now();
    while black_hole.accepted().len() == before {
        assert!(
            wait_for_attempt.elapsed() < Duration::from_secs(10),
            "no new attempt within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let terminated = Instant::now();
    sigterm(&sink);
    let exit = tokio::time::timeout(close_timeout + Duration::from_secs(2), sink.wait())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the sink did not exit within the close timeout {close_timeout:?} + 2 s of SIGTERM"
            )
        })
        .unwrap();
    println!(
        "exited {:.2} s after SIGTERM (close timeout {:.1} s), {} connections to the black hole",
        terminated.elapsed().as_secs_f64(),
        close_timeout.as_secs_f64(),
        black_hole.accepted().len()
    );
    assert!(exit.success(), "a clean exit after SIGTERM: {exit}");
}

fn a_result() -> ResultRecord {
    ResultRecord {
        result: AuctionResult {
            auction_id: "lot-1".to_owned(),
            title: "A lot".to_owned(),
            seller: "seller".to_owned(),
            sold: false,
            winner: None,
            final_price: None,
            winning_bid_id: None,
            bid_count: 0,
            closed_at: "2026-11-23T10:15:30Z".to_owned(),
        },
        position: SourcePosition {
            topic: "auction.results".to_owned(),
            partition: 0,
            offset: 0,
        },
    }
}

#[tokio::test]
async fn a_mysql_black_holed_at_start_fails_each_call_within_the_statement_timeout() {
    let black_hole = BlackHole::start().await;
    let limit = Duration::from_millis(1500);
    let mut settings = SqlSettings::new(Secret::new(black_hole.mysql_url()));
    settings.table = TableName::parse(&unique("bid_black_hole")).unwrap();
    settings.statement_timeout = limit;

    let started = Instant::now();
    let mut target =
        tokio::time::timeout(Duration::from_secs(5), SqlDestination::connect(&settings))
            .await
            .expect("setting up the target does not wait for the database")
            .unwrap();
    assert!(
        started.elapsed() < limit,
        "connect is lazy: {:?}",
        started.elapsed()
    );

    // The takeover refusal's check, a batch, and closed auctions' results: each gives up in time
    // with a retriable error that names the setting.
    let bounded = limit + Duration::from_secs(1);
    let started = Instant::now();
    let error = tokio::time::timeout(bounded, target.rows_from_elsewhere())
        .await
        .expect("the check for the demo's rows gives up within the statement timeout")
        .unwrap_err();
    println!("rows_from_elsewhere: {error} ({:?})", started.elapsed());
    assert!(
        error.to_string().contains("SINK_STATEMENT_TIMEOUT_MS"),
        "{error}"
    );
    assert!(target.is_retriable(&error));

    let started = Instant::now();
    let error = tokio::time::timeout(bounded, target.write(&[record("Ann", 10, 0, 0)]))
        .await
        .expect("a write gives up within the statement timeout")
        .unwrap_err();
    println!("write: {error} ({:?})", started.elapsed());
    assert!(
        error.to_string().contains("SINK_STATEMENT_TIMEOUT_MS"),
        "{error}"
    );
    assert!(target.is_retriable(&error));

    let started = Instant::now();
    let error = tokio::time::timeout(bounded, target.write_results(&[a_result()]))
        .await
        .expect("a results write gives up within the statement timeout")
        .unwrap_err();
    println!("write_results: {error} ({:?})", started.elapsed());
    assert!(
        error.to_string().contains("SINK_STATEMENT_TIMEOUT_MS"),
        "{error}"
    );
    assert!(
        !black_hole.accepted().is_empty(),
        "the target really connected to the black hole"
    );
}

/// 600 bids: two INSERT statements in one transaction (500 rows each at most), and the bid whose
/// id sorts last, which the second statement writes.
fn two_statement_batch(prefix: &str) -> (Vec<SinkRecord>, SinkRecord) {
    let batch: Vec<SinkRecord> = (0..600)
        .map(|i| record(&format!("{prefix} {i}"), 10 + i, 0, i))
        .collect();
    let last = batch
        .iter()
        .max_by_key(|r| r.bid.bid_id.as_uuid())
        .cloned()
        .unwrap();
    (batch, last)
}

#[tokio::test]
async fn a_mysql_statement_stuck_mid_transaction_times_out_and_leaves_nothing_behind() {
    let table = unique("bid_stuck");
    let limit = Duration::from_secs(2);
    let mut settings = SqlSettings::new(Secret::new(MYSQL_URL));
    settings.table = TableName::parse(&table).unwrap();
    settings.statement_timeout = limit;
    // One connection: if the stuck one kept its pool slot, nothing could be written again.
    settings.max_connections = 1;
    let mut target = SqlDestination::connect(&settings).await.unwrap();
    target.write(&[]).await.unwrap(); // creates the table
    let connection_id = |target: &SqlDestination| {
        let db = target.connection().clone();
        async move {
            db.query_one(Statement::from_string(
                db.get_database_backend(),
                "SELECT CAST(CONNECTION_ID() AS SIGNED) AS id",
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get::<i64>("", "id")
            .unwrap()
        }
    };
    let first_connection = connection_id(&target).await;

    // Another session inserts the bid that the batch's second INSERT writes, and keeps its
    // transaction open: that INSERT waits for the row lock (50 s by InnoDB's default).
    let (batch, last) = two_statement_batch("stuck");
    let other = Database::connect(MYSQL_URL).await.unwrap();
    let blocker = other.begin().await.unwrap();
    blocker
        .execute(Statement::from_sql_and_values(
            blocker.get_database_backend(),
            format!(
                "INSERT INTO `{table}` (bid_id, auction_id, name, price, bid_ts, kafka_partition, kafka_offset) \
                 VALUES (?, 'lot-1', 'blocker', 1, '2026-11-23 10:15:30', 0, 999999)"
            ),
            [last.bid.bid_id.to_string().into()],
        ))
        .await
        .unwrap();

    let started = Instant::now();
    let error = tokio::time::timeout(Duration::from_secs(30), target.write(&batch))
        .await
        .expect("the write gives up long before InnoDB's lock wait timeout")
        .unwrap_err();
    let took = started.elapsed();
    println!(
        "stuck INSERT gave up after {:.2} s: {error}",
        took.as_secs_f64()
    );
    assert!(
        took <= limit + Duration::from_secs(1),
        "gave up after {took:?}, limit {limit:?}"
    );
    let message = error.to_string();
    assert!(
        message.starts_with("cannot insert bids"),
        "stuck on the INSERT: {message}"
    );
    assert!(message.contains("SINK_STATEMENT_TIMEOUT_MS"), "{message}");
    assert!(target.is_retriable(&error));

    // The server stays silent (the lock is held): the pool's bounded check of the returned
    // connection gives up within the limit and closes it, freeing the pool's only slot.
    let pool = target.connection().get_mysql_connection_pool().clone();
    let closed_by = Instant::now() + limit + Duration::from_secs(2);
    while pool.size() > 0 {
        assert!(
            Instant::now() < closed_by,
            "the timed-out connection still holds its pool slot"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let reader = crate::helpers::sql_target(MYSQL_URL, &table).await;
    assert_eq!(
        sql_rows(&reader).await.len(),
        0,
        "nothing of the batch is committed"
    );

    // The lock goes away; the server ends the sink's old session (closed by the sink), rolling
    // its transaction back.
    blocker.rollback().await.unwrap();
    let backend = other.get_database_backend();
    let gone_by = Instant::now() + Duration::from_secs(15);
    loop {
        let listed = other
            .query_one(Statement::from_sql_and_values(
                backend,
                "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE ID = ?",
                [first_connection.into()],
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get::<i64>("", "n")
            .unwrap();
        if listed == 0 {
            break;
        }
        assert!(
            Instant::now() < gone_by,
            "the timed-out connection {first_connection} is still open on the server"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        sql_rows(&reader).await.len(),
        0,
        "the first INSERT of the timed-out transaction was rolled back, not committed"
    );

    // Retried as the runtime does, the batch lands once, on a new connection.
    let retry_until = Instant::now() + Duration::from_secs(30);
    let outcome = loop {
        match target.write(&batch).await {
            Ok(outcome) => break outcome,
            Err(e) => {
                assert!(Instant::now() < retry_until, "the retry kept failing: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    assert_eq!(outcome.written, batch.len());
    assert_ne!(
        connection_id(&target).await,
        first_connection,
        "the timed-out connection was not reused"
    );
    let rows = sql_rows(&reader).await;
    assert_eq!(rows, {
        let mut expected: Vec<Row> = batch.iter().map(Row::of).collect();
        expected.sort();
        expected
    });
}

#[tokio::test]
async fn an_odbc_statement_stuck_on_a_lock_times_out_and_the_batch_lands_once_after() {
    let table = unique("bid_odbc_stuck");
    let limit = Duration::from_secs(1);
    let mut settings = OdbcSettings::new(Secret::new(ODBC_POSTGRES), Dialect::Ansi);
    settings.table = TableName::parse(&table).unwrap();
    settings.statement_timeout = limit;
    let mut target = OdbcDestination::new(settings).unwrap();
    target.write(&[]).await.unwrap(); // creates the table

    let (batch, last) = two_statement_batch("odbc stuck");
    let batch = &batch[..50];
    let last = batch
        .iter()
        .max_by_key(|r| r.bid.bid_id.as_uuid())
        .cloned()
        .unwrap_or(last);
    // Another session inserts one of the batch's bids without committing: the sink's INSERT waits
    // for it (PostgreSQL has no lock timeout by default).
    let blocker = odbc_api::environment()
        .unwrap()
        .connect_with_connection_string(ODBC_POSTGRES, odbc_api::ConnectionOptions::default())
        .unwrap();
    blocker.set_autocommit(false).unwrap();
    blocker
        .execute(
            &format!(
                "INSERT INTO {table} VALUES ('{}', 'lot-1', 'blocker', 1, TIMESTAMP '2026-11-23 10:15:30', 0, 999999)",
                last.bid.bid_id
            ),
            (),
            None,
        )
        .unwrap();

    let started = Instant::now();
    let error = tokio::time::timeout(Duration::from_secs(30), target.write(batch))
        .await
        .expect("the write gives up")
        .unwrap_err();
    let took = started.elapsed();
    let message = error.to_string();
    let cancelled_by_driver = error.sqlstate().is_some();
    println!(
        "stuck ODBC INSERT gave up after {:.2} s ({}): {message}",
        took.as_secs_f64(),
        if cancelled_by_driver {
            "the driver honoured SQL_ATTR_QUERY_TIMEOUT"
        } else {
            "the sink's watchdog"
        }
    );
    // The driver's limit is whole seconds; the watchdog gives it one more.
    assert!(
        took <= limit + Duration::from_millis(2500),
        "gave up after {took:?}, limit {limit:?}"
    );
    assert!(message.contains("SINK_STATEMENT_TIMEOUT_MS"), "{message}");
    assert!(target.is_retriable(&error));
    let reader = crate::helpers::odbc_target(&table);
    assert_eq!(
        odbc_rows(&reader).await.len(),
        0,
        "nothing of the batch is committed"
    );

    blocker.rollback().unwrap();
    drop(blocker);
    let retry_until = Instant::now() + Duration::from_secs(30);
    loop {
        match target.write(batch).await {
            Ok(_) => break,
            Err(e) => {
                assert!(Instant::now() < retry_until, "the retry kept failing: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    let rows = odbc_rows(&reader).await;
    assert_eq!(rows.len(), batch.len());
    let bids: Vec<_> = batch.iter().map(|r| r.bid.clone()).collect();
    assert_exactly_once(&rows, &bids);
}

#[tokio::test]
async fn a_black_holed_odbc_data_source_fails_the_write_within_the_statement_timeout() {
    let black_hole = BlackHole::start().await;
    let limit = Duration::from_secs(1);
    let connection_string = format!(
        "Driver={{PostgreSQL Unicode}};Server=127.0.0.1;Port={};Database=test;Uid=postgres;",
        black_hole.addr.port()
    );
    let mut settings = OdbcSettings::new(Secret::new(connection_string), Dialect::Ansi);
    settings.table = TableName::parse(&unique("bid_odbc_black_hole")).unwrap();
    settings.statement_timeout = limit;
    let mut target = OdbcDestination::new(settings).unwrap();

    // The driver's login timeout or, if it ignores it, the sink's watchdog; never a hang. The
    // second write finds the first attempt's call still stuck (when the driver ignores the
    // timeout) and gives up again without queuing behind it.
    for attempt in 1..=2 {
        let started = Instant::now();
        let error = tokio::time::timeout(
            Duration::from_secs(30),
            target.write(&[record("Ann", 10, 0, 0)]),
        )
        .await
        .expect("the write gives up")
        .unwrap_err();
        let took = started.elapsed();
        println!(
            "attempt {attempt} against the black hole gave up after {:.2} s ({}): {error}",
            took.as_secs_f64(),
            if error.sqlstate().is_some() {
                "the driver's login timeout"
            } else {
                "the sink's watchdog"
            }
        );
        assert!(
            took <= limit + Duration::from_millis(2500),
            "gave up after {took:?}, limit {limit:?}"
        );
        assert!(target.is_retriable(&error));
    }
    assert!(
        !black_hole.accepted().is_empty(),
        "the driver really connected to the black hole"
    );
}

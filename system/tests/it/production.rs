//! The production shape: every component its own process, configured only by environment
//! variables, against Apache Kafka's SASL_SSL listener with the PLAIN mechanism (the original
//! demo's Confluent Cloud settings, with CA verification on), MariaDB, and PostgreSQL through
//! unixODBC and psqlODBC; the demo's own Python producer with its config.py keys beside them. And
//! the settings a process must refuse at start, with Kafka's reason and without its secrets.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{Process, binary, eventually, mysql_query, postgres_query, unique};

use auction_proto::v1::bid_service_client::BidServiceClient;
use auction_proto::v1::{CreateAuctionRequest, PlaceBidRequest};
use auction_testkit::{
    KAFKA_SASL_PASSWORD, KAFKA_SASL_USER, Kafka, demo_producer, demo_schema, free_port, python,
    wait_for_port,
};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// A CA, and a certificate for 127.0.0.1 and localhost signed by it; plus an unrelated CA.
    fn new() -> Self {
        let ca = |name: &str| {
            let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
            params.distinguished_name.push(DnType::CommonName, name);
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA")
        };
        let issuer = ca("auction test CA");
        let other = ca("an unrelated CA");
        let key = KeyPair::generate().expect("key");
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .expect("params");
        params
            .distinguished_name
            .push(DnType::CommonName, "kafka proxy");
        let certificate = params.signed_by(&key, &issuer).expect("signed");
        let dir = tempfile::tempdir().expect("temp dir");
        for (name, content) in [
            ("ca.pem", issuer.pem()),
            ("other-ca.pem", other.pem()),
            ("server.pem", certificate.pem()),
            ("server.key", key.serialize_pem()),
            // Kafka's PEM keystore: the PKCS#8 key, then the certificate.
            (
                "keystore.pem",
                format!("{}{}", key.serialize_pem(), certificate.pem()),
            ),
        ] {
            std::fs::write(dir.path().join(name), content).expect("write");
        }
        Self { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

/// Apache Kafka with a SASL_SSL + PLAIN listener whose certificate the test CA signs.
fn kafka_over_sasl_ssl(pki: &Pki) -> (Kafka, String) {
    let kafka = Kafka::start_with_sasl_ssl(Path::new(&pki.path("keystore.pem")));
    let bootstrap = kafka.sasl_ssl.clone().expect("a SASL_SSL listener");
    (kafka, bootstrap)
}

/// The environment of a production deployment on Confluent Cloud: SASL_SSL with PLAIN, the CA
/// that signs the broker's certificate (hostname verification on, librdkafka's default).
fn sasl_ssl_environment(command: &mut Command, bootstrap: &str, pki: &Pki) {
    command
        .env("KAFKA_BOOTSTRAP_SERVERS", bootstrap)
        .env("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
        .env("KAFKA_SASL_MECHANISM", "PLAIN")
        .env("KAFKA_SASL_USERNAME", KAFKA_SASL_USER)
        .env("KAFKA_SASL_PASSWORD", KAFKA_SASL_PASSWORD)
        .env("KAFKA_SSL_CA_LOCATION", pki.path("ca.pem"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn separate_processes_over_sasl_ssl_deliver_bids_to_every_sink() {
    let pki = Pki::new();
    let logs = tempfile::tempdir().expect("log dir");
    let (_kafka, bootstrap) = kafka_over_sasl_ssl(&pki);
    let topic = unique("auction");
    let table = unique("bid");
    let results_table = unique("auction_result");
    let csv = logs.path().join("output.csv");
    let registry_port = free_port();
    let registry_url = format!("http://127.0.0.1:{registry_port}");
    let grpc_port = free_port();

    let mut registry = Command::new(binary("schema-registry"));
    registry.env(
        "SCHEMA_REGISTRY_LISTEN",
        format!("127.0.0.1:{registry_port}"),
    );
    let registry = Process::spawn("schema-registry", registry, logs.path());
    assert!(wait_for_port(
        format!("127.0.0.1:{registry_port}")
            .parse()
            .expect("address"),
        Duration::from_secs(10)
    ));

    // The same environment as a production deployment would set.
    let environment = |command: &mut Command| {
        sasl_ssl_environment(command, &bootstrap, &pki);
        command
            .current_dir(logs.path())
            .env("AUCTION_TOPIC", &topic)
            .env("SCHEMA_REGISTRY_URL", &registry_url)
            .env("RUST_LOG", "info");
    };
    let mut bid_service = Command::new(binary("bid-service"));
    environment(&mut bid_service);
    bid_service
        .env("BID_SERVICE_LISTEN", format!("127.0.0.1:{grpc_port}"))
        .env("BID_SERVICE_METRICS_LISTEN", "127.0.0.1:0")
        .env("AUCTION_TOPIC_PARTITIONS", "3");
    let bid_service = Process::spawn("bid-service", bid_service, logs.path());

    let sink = |name: &'static str, target: &[&str], extra: &[(&str, String)]| {
        let mut command = Command::new(binary("auction-sink"));
        environment(&mut command);
        command
            .env("SINK_METRICS_LISTEN", "127.0.0.1:0")
            .env("SINK_GROUP_ID", unique(name));
        for (key, value) in extra {
            command.env(key, value);
        }
        command.args(target);
        Process::spawn(name, command, logs.path())
    };
    let mysql = sink(
        "sink-mysql",
        &["mysql"],
        &[
            (
                "DATABASE_URL",
                "mysql://root@127.0.0.1:3306/test".to_owned(),
            ),
            ("SINK_TABLE", table.clone()),
            ("SINK_RESULTS_TABLE", results_table.clone()),
        ],
    );
    let csv_sink = sink(
        "sink-csv",
        &["csv"],
        &[("SINK_CSV_PATH", csv.display().to_string())],
    );
    let odbc = sink(
        "sink-odbc",
        &["odbc"],
        &[
            (
                "ODBC_CONNECTION_STRING",
                "Driver={PostgreSQL Unicode};Server=127.0.0.1;Port=5432;Database=test;Uid=postgres;".to_owned(),
            ),
            ("SINK_TABLE", table.clone()),
        ],
    );

    // The bid service is up once it answers on gRPC (it creates the topic over SASL_SSL).
    let mut client = None;
    for _ in 0..600 {
        if let Ok(connected) =
            BidServiceClient::connect(format!("http://127.0.0.1:{grpc_port}")).await
        {
            client = Some(connected);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut client =
        client.unwrap_or_else(|| panic!("the bid service did not start:\n{}", bid_service.log()));
    let mut placed = None;
    for _ in 0..100 {
        match client
            .place_bid(PlaceBidRequest {
                auction_id: "prod".into(),
                name: "Grace, \"over SASL_SSL\"".into(),
                price: 77,
                request_id: "0b7c3a2e-5d1f-4c7e-9a8b-2f6d4e1c0a95".into(),
                ..Default::default()
            })
            .await
        {
            Ok(response) => {
                placed = Some(response.into_inner());
                break;
            }
            // NOT_SERVING while it replays, and sinks still joining: retry with the same id.
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    let placed = placed.unwrap_or_else(|| panic!("no bid was accepted:\n{}", bid_service.log()));
    let bid_id = placed.bid.expect("bid").bid_id;

    // The original demo's producer, configured by its own config.py keys, over the same listener.
    let config = logs.path().join("config.py");
    std::fs::write(
        &config,
        format!(
            "API_KEY = '{KAFKA_SASL_USER}'\nAPI_SECRET_KEY = '{KAFKA_SASL_PASSWORD}'\n\
             BOOTSTRAP_SERVER = '{bootstrap}'\nSECURITY_PROTOCOL = 'SASL_SSL'\nSSL_MECHANISM = 'PLAIN'\n\
             ENDPOINT_SCHEMA_URL = '{registry_url}'\n\
             SCHEMA_REGISTRY_API_KEY = 'sr-key'\nSCHEMA_REGISTRY_API_SECRET = 'sr-secret'\n\
             SSL_CA_LOCATION = '{}'\n",
            pki.path("ca.pem")
        ),
    )
    .expect("config.py");
    let demo = Command::new(python())
        .arg(demo_producer())
        .arg("--config")
        .arg(&config)
        .args(["-", "-", &topic])
        .arg(demo_schema())
        .arg("Ada, from the demo:88")
        .output()
        .expect("the demo producer runs");
    assert!(
        demo.status.success() && String::from_utf8_lossy(&demo.stdout).trim() == "1",
        "the demo producer failed over SASL_SSL:\n{}{}",
        String::from_utf8_lossy(&demo.stdout),
        String::from_utf8_lossy(&demo.stderr)
    );

    let in_mysql = || {
        mysql_query(&format!(
            "SELECT name, price FROM {table} WHERE bid_id = '{bid_id}'"
        ))
    };
    assert!(
        eventually(|| !in_mysql().is_empty()).await,
        "the bid never reached MariaDB:\n{}",
        mysql.log()
    );
    assert_eq!(in_mysql().trim(), "Grace, \"over SASL_SSL\"\t77");
    let demo_in_mysql = || {
        mysql_query(&format!(
            "SELECT price FROM {table} WHERE name = 'Ada, from the demo'"
        ))
    };
    assert!(
        eventually(|| demo_in_mysql().trim() == "88").await,
        "the demo's bid never reached MariaDB:\n{}",
        mysql.log()
    );
    assert!(
        eventually(|| std::fs::read_to_string(&csv)
            .is_ok_and(|t| t.contains(&bid_id) && t.contains("\"Ada, from the demo\",88")))
        .await,
        "the bids never reached the CSV file:\n{}",
        csv_sink.log()
    );
    let in_postgres = || {
        postgres_query(&format!(
            "SELECT name, price FROM {table} WHERE bid_id = '{bid_id}'"
        ))
    };
    assert!(
        eventually(|| !in_postgres().is_empty()).await,
        "the bid never reached PostgreSQL over ODBC:\n{}",
        odbc.log()
    );
    assert_eq!(in_postgres().trim(), "Grace, \"over SASL_SSL\"|77");
    let demo_in_postgres = || {
        postgres_query(&format!(
            "SELECT price FROM {table} WHERE name = 'Ada, from the demo'"
        ))
    };
    assert!(
        eventually(|| demo_in_postgres().trim() == "88").await,
        "the demo's bid never reached PostgreSQL over ODBC:\n{}",
        odbc.log()
    );

    // An auction that closes on its own lands in the results table and the results file.
    client
        .create_auction(CreateAuctionRequest {
            auction_id: "prod-lot".into(),
            title: "Lamp, \"brass\"".into(),
            seller: "Sam".into(),
            starting_price: 5,
            end_time: Some(prost_types::Timestamp {
                seconds: chrono::Utc::now().timestamp() + 3,
                nanos: 0,
            }),
            ..Default::default()
        })
        .await
        .expect("create an auction");
    client
        .place_bid(PlaceBidRequest {
            auction_id: "prod-lot".into(),
            name: "Grace".into(),
            price: 9,
            ..Default::default()
        })
        .await
        .expect("a bid on the auction");
    let result_in_mysql = || {
        mysql_query(&format!(
            "SELECT title, sold, winner, final_price, bid_count FROM {results_table} WHERE auction_id = 'prod-lot'"
        ))
    };
    assert!(
        eventually(|| !result_in_mysql().is_empty()).await,
        "the result never reached MariaDB:\n{}",
        mysql.log()
    );
    assert_eq!(result_in_mysql().trim(), "Lamp, \"brass\"\t1\tGrace\t9\t1");
    let results_csv = logs.path().join("output-results.csv");
    assert!(
        eventually(|| std::fs::read_to_string(&results_csv)
            .is_ok_and(|t| t.contains("prod-lot,\"Lamp, \"\"brass\"\"\",Sam,true,Grace,9,")))
        .await,
        "the result never reached the CSV results file:\n{}",
        csv_sink.log()
    );

    // Every process stops cleanly on SIGTERM.
    for process in [bid_service, mysql, csv_sink, odbc, registry] {
        let name = process.name;
        let (status, log) = process.terminate();
        assert!(status.success(), "{name} exited with {status:?}:\n{log}");
    }
}

/// Starts `binary` (the bid service, or a sink of `kind`) against `bootstrap` over SASL_SSL with
/// the given changes to the right settings; it must stop at start. Returns its last line of
/// stderr (the error) after checking that no secret was printed.
fn refused_at_start(
    binary_name: &str,
    bootstrap: &str,
    pki: &Pki,
    change: &[(&str, String)],
) -> String {
    let mut command = Command::new(binary(binary_name));
    sasl_ssl_environment(&mut command, bootstrap, pki);
    command
        .env("BID_SERVICE_LISTEN", "127.0.0.1:0")
        .env("BID_SERVICE_METRICS_LISTEN", "127.0.0.1:0")
        .env("SINK_METRICS_LISTEN", "127.0.0.1:0")
        .env("SCHEMA_REGISTRY_URL", "http://127.0.0.1:9")
        .env("RUST_LOG", "debug");
    for (name, value) in change {
        command.env(name, value);
    }
    if binary_name == "auction-sink" {
        command
            .env("SINK_CSV_PATH", pki.path("refused.csv"))
            .arg("csv");
    }
    let output = command.output().expect("the process runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "{binary_name} started with {change:?}:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    for (name, value) in change
        .iter()
        .chain([&("KAFKA_SASL_PASSWORD", KAFKA_SASL_PASSWORD.to_owned())])
    {
        if name.ends_with("PASSWORD") {
            assert!(
                !stdout.contains(value.as_str()) && !stderr.contains(value.as_str()),
                "{binary_name} printed the password:\n{stdout}{stderr}"
            );
        }
    }
    let last = stderr.lines().last().unwrap_or_default().to_owned();
    assert!(
        last.starts_with(&format!("{binary_name}: ")),
        "the last line should be the error: {last}"
    );
    last
}

/// Each binary, started with `change` to the right settings, stops at start with an error that
/// holds every one of `reasons` (librdkafka's words).
fn refused_by_both(change: (&str, &dyn Fn(&Pki) -> String), reasons: &[&str]) {
    let pki = Pki::new();
    let (_kafka, bootstrap) = kafka_over_sasl_ssl(&pki);
    for binary_name in ["bid-service", "auction-sink"] {
        let error = refused_at_start(binary_name, &bootstrap, &pki, &[(change.0, change.1(&pki))]);
        assert!(
            reasons.iter().all(|reason| error.contains(reason)),
            "not Kafka's reason ({reasons:?}): {error}"
        );
    }
}

#[test]
fn a_wrong_sasl_password_stops_the_bid_service_and_the_sinks_at_start_with_kafkas_reason() {
    refused_by_both(
        ("KAFKA_SASL_PASSWORD", &|_| "not-alice-secret".to_owned()),
        &["SASL authentication error", "Invalid username or password"],
    );
}

#[test]
fn an_untrusted_broker_certificate_stops_the_bid_service_and_the_sinks_at_start() {
    refused_by_both(
        ("KAFKA_SSL_CA_LOCATION", &|pki| pki.path("other-ca.pem")),
        &["certificate verify failed"],
    );
}

#[test]
fn a_sasl_mechanism_the_broker_does_not_offer_stops_the_bid_service_and_the_sinks_at_start() {
    // The broker offers PLAIN only.
    refused_by_both(
        ("KAFKA_SASL_MECHANISM", &|_| "SCRAM-SHA-256".to_owned()),
        &["SCRAM-SHA-256", "PLAIN"],
    );
}

#[test]
fn sasl_settings_become_librdkafka_properties_and_the_password_is_never_logged() {
    let password = "hunter2-very-secret";
    // Nothing listens on port 9: the service logs its settings, then fails to reach Kafka.
    let child = Command::new(binary("bid-service"))
        .env("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9")
        .env("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
        .env("KAFKA_SASL_MECHANISM", "PLAIN")
        .env("KAFKA_SASL_USERNAME", "api-key")
        .env("KAFKA_SASL_PASSWORD", password)
        .env("SCHEMA_REGISTRY_PASSWORD", password)
        .env("SCHEMA_REGISTRY_USERNAME", "registry-key")
        .env("BID_SERVICE_LISTEN", "127.0.0.1:0")
        .env("BID_SERVICE_METRICS_LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bid-service runs");
    std::thread::sleep(Duration::from_secs(3));
    let _ = Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status();
    let output = child.wait_with_output().expect("output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        text.contains("sasl.mechanism"),
        "the settings were not logged:\n{text}"
    );
    assert!(text.contains("\"SASL_SSL\""), "{text}");
    assert!(text.contains("\"api-key\""), "{text}");
    assert!(text.contains("[redacted]"), "{text}");
    assert!(
        !text.contains(password),
        "the password appeared in the output:\n{text}"
    );

    // A SASL mechanism librdkafka does not know is refused at start, naming the property.
    let output = Command::new(binary("bid-service"))
        .env("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9")
        .env("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
        .env("KAFKA_SASL_MECHANISM", "PLAINISH")
        .env("BID_SERVICE_LISTEN", "127.0.0.1:0")
        .env("BID_SERVICE_METRICS_LISTEN", "127.0.0.1:0")
        .output()
        .expect("bid-service runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("bid-service: ") && last.contains("SASL mechanism: PLAINISH"),
        "{stderr}"
    );
}

#[test]
fn the_sinks_and_the_gateway_never_log_their_secrets() {
    let password = "hunter2-database-secret";
    let cookie_key = "hunter2-cookie-secret";
    let logs = tempfile::tempdir().expect("log dir");
    // A database that does not answer and a registry password: the sink starts, logs its settings
    // and keeps retrying; then it is stopped.
    let mut sink = Command::new(binary("auction-sink"));
    sink.env("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9")
        .env("KAFKA_SASL_PASSWORD", password)
        .env("SCHEMA_REGISTRY_USERNAME", "registry-key")
        .env("SCHEMA_REGISTRY_PASSWORD", password)
        .env("SINK_METRICS_LISTEN", "127.0.0.1:0")
        .env(
            "DATABASE_URL",
            format!("mysql://auction:{password}@127.0.0.1:9/test"),
        )
        .env("RUST_LOG", "debug")
        .arg("mysql");
    let sink = Process::spawn("sink-secrets", sink, logs.path());
    let mut gateway = Command::new(binary("gateway"));
    gateway
        .env("GATEWAY_LISTEN", "127.0.0.1:0")
        .env("GATEWAY_METRICS_LISTEN", "127.0.0.1:0")
        .env("BID_SERVICE_URL", "http://127.0.0.1:9")
        .env("GATEWAY_COOKIE_KEY", cookie_key)
        .env("RUST_LOG", "debug");
    let gateway = Process::spawn("gateway-secrets", gateway, logs.path());
    std::thread::sleep(Duration::from_secs(4));
    for process in [sink, gateway] {
        let name = process.name;
        let (_, log) = process.terminate();
        assert!(!log.is_empty(), "{name} logged nothing");
        assert!(!log.contains(password), "{name} logged a password:\n{log}");
        assert!(
            !log.contains(cookie_key),
            "{name} logged the cookie key:\n{log}"
        );
    }
}

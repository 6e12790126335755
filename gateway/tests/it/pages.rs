//! The pages and the bid form through `Router::oneshot`, against a real bid service.

use std::time::Duration;

use axum::http::StatusCode;
use axum::http::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE};

use crate::helpers::{Stack, bid_count, eventually, input_value, place};

#[tokio::test]
async fn the_list_shows_auctions_with_their_highest_bid() {
    let stack = Stack::start().await;
    let empty = stack.get("/", "").await;
    assert_eq!(empty.status, StatusCode::OK);
    assert!(empty.body.contains("No auction is open"), "{}", empty.body);

    place(&stack.url, "lot-1", "Ada", 10).await;
    place(&stack.url, "lot-1", "Grace", 25).await;
    place(&stack.url, "lot-2", "Alan", 7).await;
    let page = stack.get("/", "").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains(r#"<a href="/auctions/lot-1">lot-1</a>"#),
        "{}",
        page.body
    );
    assert!(page.body.contains(r#"<a href="/auctions/lot-2">lot-2</a>"#));
    assert!(page.body.contains(">25</td>") && page.body.contains(">Grace</td>"));
    assert!(page.body.contains(">7</td>") && page.body.contains(">Alan</td>"));
    assert!(
        !page.body.contains(">Ada</td>"),
        "only the highest bid is listed"
    );
    // The form that opens or starts an auction by id.
    assert!(page.body.contains(r#"action="/open""#));
    assert!(page.body.contains(r#"<label for="auction_id">"#));
}

#[tokio::test]
async fn opening_an_auction_by_id_redirects_to_its_page() {
    let stack = Stack::start().await;
    let open = stack.get("/open?auction_id=new-lot_1.a", "").await;
    assert_eq!(open.status, StatusCode::SEE_OTHER);
    assert_eq!(open.location(), "/auctions/new-lot_1.a");
    let page = stack.get("/auctions/new-lot_1.a", "").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("No bids yet"));

    let bad = stack.get("/open?auction_id=no%20spaces%3Cb%3E", "").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("is not an auction id"), "{}", bad.body);
    assert!(
        bad.body.contains("no spaces&#60;b&#62;"),
        "escaped: {}",
        bad.body
    );
    let dots = stack.get("/auctions/..", "").await;
    assert_eq!(dots.status, StatusCode::NOT_FOUND);
    let unknown = stack.get("/no/such/page", "").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(unknown.body.contains("There is no page at this address."));
}

#[tokio::test]
async fn the_auction_page_has_the_form_the_highest_bid_and_the_recent_bids() {
    let stack = Stack::start().await;
    place(&stack.url, "lot-3", "Ada", 10).await;
    place(&stack.url, "lot-3", "Grace", 12).await;
    let page = stack.get("/auctions/lot-3", "").await;
    assert_eq!(page.status, StatusCode::OK);
    let body = &page.body;
    assert!(
        body.contains(r#"<span id="highest-price">12</span>"#),
        "{body}"
    );
    assert!(body.contains(r#"<span id="highest-name">Grace</span>"#));
    assert!(body.contains(r#"<dd id="minimum-next">13</dd>"#));
    assert!(body.contains(r#"<dd id="bid-count">2</dd>"#));
    // Recent bids, newest first.
    let grace = body
        .find(r#"<span class="bidder">Grace</span>"#)
        .expect("Grace listed");
    let ada = body
        .find(r#"<span class="bidder">Ada</span>"#)
        .expect("Ada listed");
    assert!(grace < ada);
    // The form: labelled fields, a CSRF token and a request id.
    assert!(body.contains(r#"<form method="post" action="/auctions/lot-3/bids">"#));
    assert!(body.contains(r#"<label for="name">"#) && body.contains(r#"<label for="price">"#));
    assert!(uuid::Uuid::parse_str(&page.hidden("request_id")).is_ok());
    assert!(page.hidden("csrf_token").len() >= 40);
    let cookie = page.cookie("auction_csrf").expect("CSRF cookie");
    assert!(!cookie.is_empty());
    // No inline script: the only script is the gateway's own file, and the policy says so.
    assert_eq!(body.matches("<script").count(), 1);
    assert!(body.contains(r#"<script src="/assets/live.js" defer></script>"#));
    let csp = page.headers[CONTENT_SECURITY_POLICY].to_str().expect("CSP");
    assert!(
        csp.contains("script-src 'self'") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"));
    let set_cookie = page.headers["set-cookie"].to_str().expect("cookie");
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"));
}

#[tokio::test]
async fn an_accepted_bid_redirects_back_with_a_message_once() {
    let stack = Stack::start().await;
    let (redirect, page) = stack.submit_bid("lot-4", "  Ada Lovelace ", "100").await;
    assert_eq!(redirect.location(), "/auctions/lot-4");
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("Bid accepted: Ada Lovelace bid 100."),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains(r#"class="flash flash-ok" role="status""#)
    );
    assert!(page.body.contains(r#"<span id="highest-price">100</span>"#));
    assert_eq!(bid_count(&stack.url, "lot-4").await, 1);
    // The message is deleted once shown.
    let cleared = page
        .cookie("auction_flash")
        .expect("the message cookie is cleared");
    assert!(cleared.is_empty());
    // The message is for this auction only.
    let flash = redirect.cookie("auction_flash").expect("flash");
    let elsewhere = stack
        .get("/auctions/lot-5", &format!("auction_flash={flash}"))
        .await;
    assert!(!elsewhere.body.contains("Bid accepted"));
}

#[tokio::test]
async fn submitting_the_same_form_twice_bids_once() {
    let stack = Stack::start().await;
    let page = stack.get("/auctions/lot-6", "").await;
    let cookies = format!(
        "auction_csrf={}",
        page.cookie("auction_csrf").expect("csrf")
    );
    let form = [
        ("csrf_token", page.hidden("csrf_token")),
        ("request_id", page.hidden("request_id")),
        ("name", "Ada".to_owned()),
        ("price", "5".to_owned()),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for _ in 0..2 {
        let redirect = stack
            .post_form("/auctions/lot-6/bids", &cookies, &form)
            .await;
        assert_eq!(redirect.status, StatusCode::SEE_OTHER);
    }
    assert_eq!(bid_count(&stack.url, "lot-6").await, 1);
}

#[tokio::test]
async fn a_bid_too_low_says_the_minimum_next_bid() {
    let stack = Stack::start().await;
    place(&stack.url, "lot-7", "Grace", 50).await;
    let (_, page) = stack.submit_bid("lot-7", "Ada", "50").await;
    assert!(
        page.body.contains(
            "Your bid is too low: the current highest bid is 50, so the minimum next bid is 51."
        ),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains(r#"class="flash flash-error" role="alert""#)
    );
    // The name stays filled in.
    assert_eq!(input_value(&page.body, "name").as_deref(), Some("Ada"));
    assert_eq!(bid_count(&stack.url, "lot-7").await, 1);
}

#[tokio::test]
async fn an_invalid_field_says_which_and_why() {
    let stack = Stack::start().await;
    let (_, page) = stack.submit_bid("lot-8", "Ada", "0").await;
    assert!(
        page.body.contains(
            "The bid was not placed: the price must be a whole number from 1 to 2147483647, got 0."
        ),
        "{}",
        page.body
    );
    let long_name = "x".repeat(101);
    let (_, page) = stack.submit_bid("lot-8", &long_name, "5").await;
    assert!(
        page.body
            .contains("The bid was not placed: your name must be at most 100 characters, got 101."),
        "{}",
        page.body
    );
    let (_, page) = stack.submit_bid("lot-8", "   ", "5").await;
    assert!(
        page.body.contains("your name must not be empty"),
        "{}",
        page.body
    );
    let (_, page) = stack.submit_bid("lot-8", "Ada", "twelve").await;
    assert!(
        page.body
            .contains("the price must be a whole number, such as 125."),
        "{}",
        page.body
    );
    // What was typed is kept for correcting.
    assert_eq!(input_value(&page.body, "price").as_deref(), Some("twelve"));
    assert_eq!(bid_count(&stack.url, "lot-8").await, 0);
}

#[tokio::test]
async fn an_unavailable_bid_service_is_said_and_the_entry_is_kept() {
    let mut stack = Stack::start().await;
    let page = stack.get("/auctions/lot-9", "").await;
    let cookies = format!(
        "auction_csrf={}",
        page.cookie("auction_csrf").expect("csrf")
    );
    let request_id = page.hidden("request_id");
    stack.stop_bid_service().await;
    let redirect = stack
        .post_form(
            "/auctions/lot-9/bids",
            &cookies,
            &[
                ("csrf_token", &page.hidden("csrf_token")),
                ("request_id", &request_id),
                ("name", "Ada <b>"),
                ("price", "77"),
            ],
        )
        .await;
    assert_eq!(redirect.status, StatusCode::SEE_OTHER);
    let flash = redirect.cookie("auction_flash").expect("flash");
    let page = stack
        .get(
            "/auctions/lot-9",
            &format!("{cookies}; auction_flash={flash}"),
        )
        .await;
    assert_eq!(page.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        page.body.contains(
            "The bid service is unavailable right now, so your bid was not placed. \
             What you typed is kept: submit again to retry."
        ),
        "{}",
        page.body
    );
    assert_eq!(
        input_value(&page.body, "name").as_deref(),
        Some("Ada &#60;b&#62;")
    );
    assert_eq!(input_value(&page.body, "price").as_deref(), Some("77"));
    // The retry carries the same request id, so that it cannot bid twice.
    assert_eq!(page.hidden("request_id"), request_id);
    // The list page says so too, without details.
    let list = stack.get("/", "").await;
    assert_eq!(list.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        list.body
            .contains("The bid service is unavailable right now")
    );
    assert!(!list.body.contains("tcp connect") && !list.body.contains("transport error"));
}

#[tokio::test]
async fn bidder_names_are_shown_as_text() {
    let stack = Stack::start().await;
    let evil = r#"<script>alert("x")</script>"#;
    place(&stack.url, "lot-10", evil, 10).await;
    let escaped = "&#60;script&#62;alert(&#34;x&#34;)&#60;/script&#62;";
    for path in ["/", "/auctions/lot-10"] {
        let page = stack.get(path, "").await;
        assert!(
            !page.body.contains("<script>alert"),
            "{path}: {}",
            page.body
        );
        assert!(page.body.contains(escaped), "{path}: {}", page.body);
    }
    // Through the form and the message too.
    let (_, page) = stack
        .submit_bid("lot-10", "<img src=x onerror=alert(1)>", "11")
        .await;
    assert!(!page.body.contains("<img src=x"), "{}", page.body);
    assert!(
        page.body
            .contains("Bid accepted: &#60;img src=x onerror=alert(1)&#62; bid 11.")
    );
}

#[tokio::test]
async fn a_post_without_a_valid_csrf_token_is_refused_before_any_grpc_call() {
    let stack = Stack::start().await;
    let page = stack.get("/auctions/lot-11", "").await;
    let cookie = page.cookie("auction_csrf").expect("csrf");
    let token = page.hidden("csrf_token");
    let request_id = page.hidden("request_id");
    let other_site = stack.get("/auctions/lot-11", "").await;
    let forged_cookie = {
        // A token signed with another key, as an attacker could mint on their own gateway.
        let mut settings = crate::helpers::gateway_settings(&stack.url);
        settings.cookie_key = Some(auction_process::Secret::new("another key"));
        let app = auction_gateway::App::new(settings, stack.shutdown.clone()).expect("app");
        let router = auction_gateway::router(app);
        let response = tower::ServiceExt::oneshot(
            router,
            axum::http::Request::get("/auctions/lot-11")
                .body(axum::body::Body::empty())
                .expect("request"),
        )
        .await
        .expect("response");
        let set_cookie = response.headers()["set-cookie"]
            .to_str()
            .expect("cookie")
            .to_owned();
        let value = set_cookie
            .split(';')
            .next()
            .and_then(|p| p.split_once('='))
            .map(|(_, v)| v.to_owned())
            .expect("value");
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        (
            value,
            input_value(&String::from_utf8_lossy(&body), "csrf_token").expect("token"),
        )
    };

    let attempts: Vec<(&str, String, String)> = vec![
        ("no token, no cookie", String::new(), String::new()),
        (
            "cookie but no token",
            format!("auction_csrf={cookie}"),
            String::new(),
        ),
        ("token but no cookie", String::new(), token.clone()),
        (
            "another browser's token",
            format!("auction_csrf={cookie}"),
            other_site.hidden("csrf_token"),
        ),
        (
            "cookie signed by another key",
            format!("auction_csrf={}", forged_cookie.0),
            forged_cookie.1.clone(),
        ),
        (
            "tampered cookie",
            format!("auction_csrf={}x", cookie),
            token.clone(),
        ),
    ];
    for (what, cookies, csrf) in attempts {
        let page = stack
            .post_form(
                "/auctions/lot-11/bids",
                &cookies,
                &[
                    ("csrf_token", &csrf),
                    ("request_id", &request_id),
                    ("name", "Mallory"),
                    ("price", "1000"),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{what}");
        assert!(
            page.body
                .contains("This form has expired or did not come from this site"),
            "{what}: {}",
            page.body
        );
        assert!(page.cookie("auction_flash").is_none(), "{what}");
    }
    // Nothing reached the bid service: the auction has no bid, and the log is empty.
    assert_eq!(bid_count(&stack.url, "lot-11").await, 0);
    let list = stack.get("/", "").await;
    assert!(list.body.contains("No auction is open"), "{}", list.body);
    // The same form with its token goes through.
    let ok = stack
        .post_form(
            "/auctions/lot-11/bids",
            &format!("auction_csrf={cookie}"),
            &[
                ("csrf_token", &token),
                ("request_id", &request_id),
                ("name", "Ada"),
                ("price", "1000"),
            ],
        )
        .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
    assert_eq!(bid_count(&stack.url, "lot-11").await, 1);
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_and_places_nothing() {
    let stack = Stack::start().await;
    let page = stack.get("/auctions/lot-12", "").await;
    let cookies = format!(
        "auction_csrf={}",
        page.cookie("auction_csrf").expect("csrf")
    );
    let body = format!(
        "csrf_token={}&request_id={}&name={}&price=5",
        page.hidden("csrf_token"),
        page.hidden("request_id"),
        "a".repeat(64 * 1024)
    );
    let refused = stack
        .post_raw("/auctions/lot-12/bids", &cookies, body)
        .await;
    assert_eq!(refused.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        refused
            .body
            .contains("The form was larger than this site accepts"),
        "{}",
        refused.body
    );
    assert_eq!(bid_count(&stack.url, "lot-12").await, 0);
    // A form that cannot be read is a sentence too, not a parser message.
    let garbage = stack
        .send(
            axum::http::Request::post("/auctions/lot-12/bids")
                .header(CONTENT_TYPE, "application/json")
                .body(axum::body::Body::from("{}"))
                .expect("request"),
        )
        .await;
    assert_eq!(garbage.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(
        garbage.body.contains("The form could not be read"),
        "{}",
        garbage.body
    );
}

#[tokio::test]
async fn assets_are_served_by_the_gateway() {
    let stack = Stack::start().await;
    let css = stack.get("/assets/app.css", "").await;
    assert_eq!(css.status, StatusCode::OK);
    assert_eq!(css.headers[CONTENT_TYPE], "text/css; charset=utf-8");
    assert!(css.body.contains("@media"));
    let js = stack.get("/assets/live.js", "").await;
    assert_eq!(js.status, StatusCode::OK);
    assert_eq!(js.headers[CONTENT_TYPE], "text/javascript; charset=utf-8");
    assert!(js.body.contains("EventSource") && !js.body.contains("innerHTML"));
}

#[tokio::test]
async fn health_readiness_follows_the_bid_service_and_metrics_count_bids() {
    let mut stack = Stack::start().await;
    assert_eq!(stack.get_ops("/healthz").await.status, StatusCode::OK);
    assert!(
        eventually(Duration::from_secs(20), || async {
            stack.get_ops("/readyz").await.status == StatusCode::OK
        })
        .await,
        "the gateway did not become ready"
    );
    stack.submit_bid("lot-13", "Ada", "3").await;
    let metrics = stack.get_ops("/metrics").await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(
        metrics
            .body
            .contains(r#"gateway_bids_total{outcome="accepted"} 1"#),
        "{}",
        metrics.body
    );
    // None of them on the public address.
    for path in ["/metrics", "/readyz", "/healthz"] {
        assert_eq!(
            stack.get(path, "").await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    stack.stop_bid_service().await;
    assert!(
        eventually(Duration::from_secs(20), || async {
            stack.get_ops("/readyz").await.status == StatusCode::SERVICE_UNAVAILABLE
        })
        .await,
        "the gateway stayed ready without its bid service"
    );
    assert_eq!(stack.get_ops("/healthz").await.status, StatusCode::OK);
}

//! The registry's REST API as Confluent clients see it.

use auction_process::Secret;
use auction_schema_registry::{BasicAuth, ServerSettings};
use auction_schemas::event::{SCHEMA_V1, SCHEMA_V2};
use auction_testkit::TestRegistry;
use reqwest::StatusCode;
use serde_json::{Value, json};

use tokio_util::sync::CancellationToken;

async fn post(url: &str, body: Value) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/vnd.schemaregistry.v1+json")
        .body(body.to_string())
        .send()
        .await
        .expect("request");
    let status = response.status();
    (status, response.json().await.expect("JSON body"))
}

async fn get(url: &str) -> (StatusCode, Value) {
    let response = reqwest::get(url).await.expect("request");
    let status = response.status();
    (status, response.json().await.expect("JSON body"))
}

fn schema_body(schema: &str) -> Value {
    json!({"schema": schema, "schemaType": "JSON"})
}

fn v3_with_required_currency() -> String {
    let mut v3: Value = serde_json::from_str(SCHEMA_V2).unwrap();
    v3["properties"]["currency"] = json!({"type": "string"});
    v3["required"] = json!(["name", "price", "bid_ts", "currency"]);
    v3.to_string()
}

#[tokio::test]
async fn v1_then_v2_register_and_a_new_required_field_is_refused_with_409() {
    let registry = TestRegistry::start().await;
    let versions = format!("{}/subjects/auction-value/versions", registry.url);

    let (status, body) = post(&versions, schema_body(SCHEMA_V1)).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"id": 1})));
    let (status, body) = post(&versions, schema_body(SCHEMA_V2)).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"id": 2})));
    // Registering the same schema again gives the same id and no new version.
    let (status, body) = post(&versions, schema_body(SCHEMA_V1)).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"id": 1})));

    let compat = format!(
        "{}/compatibility/subjects/auction-value/versions/latest?verbose=true",
        registry.url
    );
    let (status, body) = post(&compat, schema_body(&v3_with_required_currency())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["is_compatible"], json!(false));
    assert!(
        body["messages"][0].as_str().unwrap().contains("currency"),
        "{body}"
    );

    let (status, body) = post(&versions, schema_body(&v3_with_required_currency())).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error_code"], json!(409));
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("\"currency\" is newly required"),
        "{body}"
    );

    let (_, body) = get(&versions).await;
    assert_eq!(body, json!([1, 2]));
    let (_, body) = get(&format!("{versions}/latest")).await;
    assert_eq!(body["id"], json!(2));
    assert_eq!(body["version"], json!(2));
    assert_eq!(body["schema"], json!(SCHEMA_V2));
    let (_, body) = get(&format!("{}/schemas/ids/1", registry.url)).await;
    assert_eq!(body, json!({"schema": SCHEMA_V1, "schemaType": "JSON"}));
    let (_, body) = get(&format!("{}/subjects", registry.url)).await;
    assert_eq!(body, json!(["auction-value"]));
}

#[tokio::test]
async fn lookup_config_and_errors_use_confluent_shapes() {
    let registry = TestRegistry::start().await;
    let base = &registry.url;
    post(
        &format!("{base}/subjects/auction-value/versions"),
        schema_body(SCHEMA_V1),
    )
    .await;

    let (status, body) = post(
        &format!("{base}/subjects/auction-value"),
        schema_body(SCHEMA_V1),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (body["id"].clone(), body["version"].clone()),
        (json!(1), json!(1))
    );
    let (status, body) = post(
        &format!("{base}/subjects/auction-value"),
        schema_body(SCHEMA_V2),
    )
    .await;
    assert_eq!(
        (status, body["error_code"].clone()),
        (StatusCode::NOT_FOUND, json!(40403))
    );
    let (status, body) = post(&format!("{base}/subjects/nope"), schema_body(SCHEMA_V1)).await;
    assert_eq!(
        (status, body["error_code"].clone()),
        (StatusCode::NOT_FOUND, json!(40401))
    );
    let (status, body) = get(&format!("{base}/schemas/ids/99")).await;
    assert_eq!(
        (status, body["error_code"].clone()),
        (StatusCode::NOT_FOUND, json!(40403))
    );
    let (status, body) = get(&format!("{base}/subjects/auction-value/versions/7")).await;
    assert_eq!(
        (status, body["error_code"].clone()),
        (StatusCode::NOT_FOUND, json!(40402))
    );
    let (status, body) = get(&format!("{base}/subjects/auction-value/versions/zero")).await;
    assert_eq!(
        (status, body["error_code"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!(42202))
    );
    let (status, body) = post(
        &format!("{base}/subjects/s/versions"),
        json!({"schema": "{", "schemaType": "JSON"}),
    )
    .await;
    assert_eq!(
        (status, body["error_code"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!(42201))
    );

    let (_, body) = get(&format!("{base}/config")).await;
    assert_eq!(body, json!({"compatibilityLevel": "BACKWARD"}));
    let (status, _) = get(&format!("{base}/config/auction-value")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, body) = get(&format!("{base}/config/auction-value?defaultToGlobal=true")).await;
    assert_eq!(body, json!({"compatibilityLevel": "BACKWARD"}));
    let put = reqwest::Client::new()
        .put(format!("{base}/config/auction-value"))
        .body(json!({"compatibility": "NONE"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::OK);
    let (_, body) = get(&format!("{base}/config/auction-value")).await;
    assert_eq!(body, json!({"compatibilityLevel": "NONE"}));
    // With NONE, the incompatible v3 is accepted.
    let (status, body) = post(
        &format!("{base}/subjects/auction-value/versions"),
        schema_body(&v3_with_required_currency()),
    )
    .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"id": 2})));
    let bad_level = reqwest::Client::new()
        .put(format!("{base}/config"))
        .body(json!({"compatibility": "SOMETIMES"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(bad_level.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn basic_auth_is_enforced_when_configured() {
    let shutdown = CancellationToken::new();
    let auth = BasicAuth {
        username: "key".into(),
        password: Secret::new("s3cret"),
    };
    let mut settings = ServerSettings::in_memory("127.0.0.1:0".parse().unwrap());
    settings.auth = Some(auth);
    let addr = auction_schema_registry::start(settings, shutdown.clone())
        .await
        .unwrap()
        .addr;
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/subjects");
    let anonymous = client.get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        anonymous.json::<Value>().await.unwrap()["error_code"],
        json!(401)
    );
    // Wrong passwords of every length, a wrong user, and the right pair split elsewhere.
    for (user, password) in [
        ("key", "guess"),
        ("key", "s3cre"),
        ("key", "s3cret!"),
        ("key", ""),
        ("Key", "s3cret"),
        ("key:s3cret", ""),
    ] {
        let wrong = client
            .get(&url)
            .basic_auth(user, Some(password))
            .send()
            .await
            .unwrap();
        assert_eq!(
            wrong.status(),
            StatusCode::UNAUTHORIZED,
            "{user}:{password}"
        );
        assert_eq!(
            wrong.json::<Value>().await.unwrap()["error_code"],
            json!(401)
        );
    }
    let right = client
        .get(&url)
        .basic_auth("key", Some("s3cret"))
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), StatusCode::OK);
    // Health stays open for probes.
    assert_eq!(
        client
            .get(format!("http://{addr}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    shutdown.cancel();
}

#[tokio::test]
async fn boolean_query_parameters_are_read_in_any_case() {
    let registry = TestRegistry::start().await;
    let base = &registry.url;
    // confluent-kafka-python sends Python's capitalised booleans.
    let (status, body) = post(
        &format!("{base}/subjects/auction-value/versions?normalize=False"),
        schema_body(SCHEMA_V1),
    )
    .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"id": 1})));
    for (raw, verbose) in [
        ("true", true),
        ("True", true),
        ("TRUE", true),
        ("false", false),
        ("False", false),
    ] {
        let (status, body) = post(
            &format!(
                "{base}/compatibility/subjects/auction-value/versions/latest?normalize=False&verbose={raw}"
            ),
            schema_body(&v3_with_required_currency()),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "verbose={raw}: {body}");
        assert_eq!(body["is_compatible"], json!(false));
        assert_eq!(
            body.get("messages").is_some(),
            verbose,
            "verbose={raw}: {body}"
        );
    }
    let (status, body) = post(
        &format!("{base}/compatibility/subjects/auction-value/versions/latest?verbose=maybe"),
        schema_body(SCHEMA_V1),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error_code"], json!(400));
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("\"verbose\"")
            && message.contains("true or false")
            && message.contains("maybe"),
        "{message}"
    );
    let (status, body) = get(&format!("{base}/config/auction-value?defaultToGlobal=True")).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"compatibilityLevel": "BACKWARD"}))
    );
    let (status, _) = get(&format!("{base}/subjects?deleted=FALSE")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_schema_without_dollar_schema_is_read_as_draft_07() {
    let registry = TestRegistry::start().await;
    let versions = format!("{}/subjects/pair-value/versions", registry.url);
    // Draft-07's tuple form of `items`; draft 2020-12 (the validator's own default) refuses it.
    let tuple = json!({"type": "array", "items": [{"type": "string"}, {"type": "integer"}]});
    let (status, body) = post(&versions, schema_body(&tuple.to_string())).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"id": 1})));
    // The tuple is compared as a tuple: widening the second item is compatible...
    let widened = json!({"type": "array", "items": [{"type": "string"}, {"type": "number"}]});
    let (status, body) = post(&versions, schema_body(&widened.to_string())).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"id": 2})));
    // ...narrowing the first is not.
    let narrowed = json!({"type": "array", "items": [{"enum": ["a"]}, {"type": "number"}]});
    let (status, body) = post(&versions, schema_body(&narrowed.to_string())).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("#/items/0"),
        "{body}"
    );
}

//! A separate write credential, and the limits on subjects and versions.

use auction_process::Secret;
use auction_schema_registry::{BasicAuth, RegistryLimits, ServerSettings};
use auction_schemas::event::{SCHEMA_V1, SCHEMA_V2};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// Starts a registry serving until `shutdown` is cancelled; its base URL.
async fn start(settings: ServerSettings, shutdown: &CancellationToken) -> String {
    auction_schema_registry::start(settings, shutdown.clone())
        .await
        .expect("the registry starts")
        .url()
}

fn credential(user: &str, password: &str) -> BasicAuth {
    BasicAuth {
        username: user.into(),
        password: Secret::new(password),
    }
}

/// One request with an optional `user:password`; the status and JSON body.
async fn call(
    method: Method,
    url: &str,
    login: Option<(&str, &str)>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new()
        .request(method, url)
        .header("content-type", "application/vnd.schemaregistry.v1+json");
    if let Some((user, password)) = login {
        request = request.basic_auth(user, Some(password));
    }
    if let Some(body) = body {
        request = request.body(body.to_string());
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn schema_body(schema: &str) -> Value {
    json!({"schema": schema, "schemaType": "JSON"})
}

#[tokio::test]
async fn with_a_write_credential_the_read_credential_reads_but_cannot_change_anything() {
    let shutdown = CancellationToken::new();
    let mut settings = ServerSettings::in_memory("127.0.0.1:0".parse().unwrap());
    settings.auth = Some(credential("reader", "read-secret"));
    settings.write_auth = Some(credential("writer", "write-secret"));
    let base = start(settings, &shutdown).await;
    let reader = Some(("reader", "read-secret"));
    let writer = Some(("writer", "write-secret"));
    let versions = format!("{base}/subjects/auction-value/versions");

    // The read credential cannot register: 403 in Confluent's shape, and nothing is stored.
    let (status, body) = call(
        Method::POST,
        &versions,
        reader,
        Some(schema_body(SCHEMA_V1)),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error_code"], json!(40301));
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("write credential"),
        "{body}"
    );
    let (status, body) = call(Method::GET, &format!("{base}/subjects"), reader, None).await;
    assert_eq!((status, body), (StatusCode::OK, json!([])));
    // Nor without a credential, or with a wrong one: 401.
    for login in [None, Some(("writer", "read-secret")), Some(("reader", "x"))] {
        let (status, body) =
            call(Method::POST, &versions, login, Some(schema_body(SCHEMA_V1))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{login:?}: {body}");
        assert_eq!(body["error_code"], json!(401));
    }

    // The write credential registers.
    let (status, body) = call(
        Method::POST,
        &versions,
        writer,
        Some(schema_body(SCHEMA_V1)),
    )
    .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"id": 1})));

    // Both read; look-ups and compatibility checks are reads (the bid service's verify-only mode
    // looks its schema up with the read credential).
    for login in [reader, writer] {
        let (status, body) = call(Method::GET, &format!("{base}/schemas/ids/1"), login, None).await;
        assert_eq!(status, StatusCode::OK, "{login:?}: {body}");
        let (status, body) = call(
            Method::POST,
            &format!("{base}/subjects/auction-value"),
            login,
            Some(schema_body(SCHEMA_V1)),
        )
        .await;
        assert_eq!((status, body["id"].clone()), (StatusCode::OK, json!(1)));
        let (status, body) = call(
            Method::POST,
            &format!("{base}/compatibility/subjects/auction-value/versions/latest"),
            login,
            Some(schema_body(SCHEMA_V2)),
        )
        .await;
        assert_eq!(
            (status, body),
            (StatusCode::OK, json!({"is_compatible": true}))
        );
    }
    // Reads without a credential are still refused.
    let (status, _) = call(Method::GET, &format!("{base}/subjects"), None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Configuration changes and deletes need the write credential too.
    let config = json!({"compatibility": "NONE"});
    for (method, path, body) in [
        (Method::PUT, "/config", Some(config.clone())),
        (Method::PUT, "/config/auction-value", Some(config.clone())),
        (Method::DELETE, "/config", None),
        (Method::DELETE, "/subjects/auction-value/versions/1", None),
        (Method::DELETE, "/subjects/auction-value", None),
    ] {
        let url = format!("{base}{path}");
        let (status, answer) = call(method.clone(), &url, reader, body.clone()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {answer}");
    }
    let (_, body) = call(Method::GET, &format!("{base}/config"), reader, None).await;
    assert_eq!(body, json!({"compatibilityLevel": "BACKWARD"}));
    let (_, body) = call(Method::GET, &versions, reader, None).await;
    assert_eq!(body, json!([1]));
    let (status, _) = call(Method::PUT, &format!("{base}/config"), writer, Some(config)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = call(
        Method::DELETE,
        &format!("{base}/subjects/auction-value"),
        writer,
        None,
    )
    .await;
    assert_eq!((status, body), (StatusCode::OK, json!([1])));
    shutdown.cancel();
}

#[tokio::test]
async fn a_write_credential_alone_protects_changes_and_leaves_reads_open() {
    let shutdown = CancellationToken::new();
    let mut settings = ServerSettings::in_memory("127.0.0.1:0".parse().unwrap());
    settings.write_auth = Some(credential("writer", "write-secret"));
    let base = start(settings, &shutdown).await;
    let versions = format!("{base}/subjects/auction-value/versions");
    let (status, _) = call(Method::POST, &versions, None, Some(schema_body(SCHEMA_V1))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = call(
        Method::POST,
        &versions,
        Some(("writer", "write-secret")),
        Some(schema_body(SCHEMA_V1)),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = call(Method::GET, &versions, None, None).await;
    assert_eq!((status, body), (StatusCode::OK, json!([1])));
    shutdown.cancel();
}

#[tokio::test]
async fn a_write_credential_equal_to_the_read_credential_is_refused_at_start() {
    let mut settings = ServerSettings::in_memory("127.0.0.1:0".parse().unwrap());
    settings.auth = Some(credential("key", "same"));
    settings.write_auth = Some(credential("key", "same"));
    let error = auction_schema_registry::start(settings, CancellationToken::new())
        .await
        .expect_err("the same credential for reads and writes");
    assert!(
        error
            .to_string()
            .contains("SCHEMA_REGISTRY_WRITE_BASIC_AUTH_USER"),
        "{error}"
    );
}

#[tokio::test]
async fn registering_beyond_the_subject_and_version_limits_is_refused_and_stores_nothing() {
    let shutdown = CancellationToken::new();
    let mut settings = ServerSettings::in_memory("127.0.0.1:0".parse().unwrap());
    settings.limits = RegistryLimits {
        max_subjects: 2,
        max_versions_per_subject: 2,
    };
    let base = start(settings, &shutdown).await;
    let register = |subject: &str, schema: &str| {
        let url = format!("{base}/subjects/{subject}/versions");
        let body = schema_body(schema);
        async move { call(Method::POST, &url, None, Some(body)).await }
    };
    let (status, _) = call(
        Method::PUT,
        &format!("{base}/config"),
        None,
        Some(json!({"compatibility": "NONE"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    assert_eq!(
        register("a", r#"{"type": "string"}"#).await.1,
        json!({"id": 1})
    );
    assert_eq!(
        register("a", r#"{"type": "integer"}"#).await.1,
        json!({"id": 2})
    );
    let (status, body) = register("a", r#"{"type": "boolean"}"#).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error_code"], json!(42205));
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("subject \"a\" has 2 versions")
            && message.contains("SCHEMA_REGISTRY_MAX_VERSIONS_PER_SUBJECT")
            && message.contains("nothing was stored"),
        "{message}"
    );
    // A schema the subject already has is still answered with its id.
    assert_eq!(
        register("a", r#"{"type": "string"}"#).await.1,
        json!({"id": 1})
    );

    assert_eq!(
        register("b", r#"{"type": "string"}"#).await.1,
        json!({"id": 1})
    );
    let (status, body) = register("c", r#"{"type": "string"}"#).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error_code"], json!(42205));
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("at most 2 subjects") && message.contains("SCHEMA_REGISTRY_MAX_SUBJECTS"),
        "{message}"
    );

    // Nothing of the refused registrations was stored.
    let (_, body) = call(Method::GET, &format!("{base}/subjects"), None, None).await;
    assert_eq!(body, json!(["a", "b"]));
    let (_, body) = call(
        Method::GET,
        &format!("{base}/subjects/a/versions"),
        None,
        None,
    )
    .await;
    assert_eq!(body, json!([1, 2]));
    let (status, _) = call(Method::GET, &format!("{base}/schemas/ids/3"), None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Soft-deleted versions still count; deleting one permanently makes room.
    let version = format!("{base}/subjects/a/versions/2");
    assert_eq!(
        call(Method::DELETE, &version, None, None).await.0,
        StatusCode::OK
    );
    let (status, _) = register("a", r#"{"type": "boolean"}"#).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let permanent = format!("{version}?permanent=true");
    assert_eq!(
        call(Method::DELETE, &permanent, None, None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        register("a", r#"{"type": "boolean"}"#).await.1,
        json!({"id": 3})
    );
    shutdown.cancel();
}

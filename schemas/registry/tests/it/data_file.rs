//! The file-backed registry: a failed write changes nothing and every id answered is on disk;
//! corrupt and locked data files are refused with a sentence.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use auction_schema_registry::{RunningRegistry, ServerSettings, Storage};
use auction_schemas::event::{SCHEMA_V1, SCHEMA_V2};
use auction_schemas::result::RESULT_SCHEMA_V1;
use auction_schemas::state::STATE_SCHEMA_V1;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// A registry serving from a data file, stopped (and its file released) by [`Self::stop`].
struct FileRegistry {
    running: RunningRegistry,
    shutdown: CancellationToken,
    url: String,
}

impl FileRegistry {
    async fn start(file: &Path) -> Result<Self, String> {
        let shutdown = CancellationToken::new();
        let mut settings = ServerSettings::in_memory("127.0.0.1:0".parse().expect("address"));
        settings.storage = Storage::File(file.to_owned());
        let running = auction_schema_registry::start(settings, shutdown.clone())
            .await
            .map_err(|e| e.to_string())?;
        let url = running.url();
        Ok(Self {
            running,
            shutdown,
            url,
        })
    }

    /// Stops serving and waits until the server, and with it the store and its lock, are gone.
    async fn stop(self) {
        self.shutdown.cancel();
        self.running
            .stopped()
            .await
            .expect("the registry stops cleanly");
    }

    async fn register(&self, subject: &str, schema: &str) -> (StatusCode, Value) {
        let response = reqwest::Client::new()
            .post(format!("{}/subjects/{subject}/versions", self.url))
            .header("content-type", "application/vnd.schemaregistry.v1+json")
            .body(json!({"schema": schema, "schemaType": "JSON"}).to_string())
            .send()
            .await
            .expect("request");
        (response.status(), response.json().await.expect("JSON body"))
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let response = reqwest::get(format!("{}{path}", self.url))
            .await
            .expect("request");
        (response.status(), response.json().await.expect("JSON body"))
    }

    async fn put_config(&self, level: &str) -> (StatusCode, Value) {
        let response = reqwest::Client::new()
            .put(format!("{}/config", self.url))
            .body(json!({"compatibility": level}).to_string())
            .send()
            .await
            .expect("request");
        (response.status(), response.json().await.expect("JSON body"))
    }

    /// Checks that every `(id, schema)` answered with 200 earlier is served, identically.
    async fn assert_serves(&self, answered: &[(u64, &str)]) {
        for (id, schema) in answered {
            let (status, body) = self.get(&format!("/schemas/ids/{id}")).await;
            assert_eq!(status, StatusCode::OK, "id {id}: {body}");
            assert_eq!(
                body,
                json!({"schema": schema, "schemaType": "JSON"}),
                "id {id}"
            );
        }
    }
}

fn id_of(answer: &(StatusCode, Value)) -> u64 {
    assert_eq!(answer.0, StatusCode::OK, "{}", answer.1);
    answer.1["id"].as_u64().expect("an id")
}

#[tokio::test]
async fn a_failed_write_answers_5xx_changes_nothing_and_every_answered_id_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("registry.json");
    let first = FileRegistry::start(&file).await.unwrap();
    let mut answered: Vec<(u64, &str)> = Vec::new();
    for (subject, schema) in [
        ("auction-value", SCHEMA_V1),
        ("auction-value", SCHEMA_V2),
        ("auction.state-value", STATE_SCHEMA_V1),
    ] {
        let id = id_of(&first.register(subject, schema).await);
        answered.push((id, schema));
    }
    assert_eq!(
        answered.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        [1, 2, 3]
    );

    // The fault: a directory where the registry writes its temporary file, so creating the
    // temporary file fails (as root, permissions would not stop it).
    let obstacle = dir.path().join("registry.json.tmp");
    std::fs::create_dir(&obstacle).unwrap();
    std::fs::write(obstacle.join("keep"), b"x").unwrap();

    let (status, body) = first
        .register("auction.results-value", RESULT_SCHEMA_V1)
        .await;
    assert_eq!(
        status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "the write must really fail: {body}"
    );
    assert_eq!(body["error_code"], json!(50001), "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("registry.json") && message.contains("nothing was changed"),
        "{message}"
    );
    // A configuration change fails the same way.
    let (status, body) = first.put_config("NONE").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");

    // The running registry did not take the failed changes either.
    let (status, body) = first.get("/schemas/ids/4").await;
    assert_eq!(
        (status, body["error_code"].clone()),
        (StatusCode::NOT_FOUND, json!(40403))
    );
    let (status, body) = first.get("/subjects/auction.results-value/versions").await;
    assert_eq!(
        (status, body["error_code"].clone()),
        (StatusCode::NOT_FOUND, json!(40401))
    );
    assert_eq!(
        first.get("/config").await.1,
        json!({"compatibilityLevel": "BACKWARD"})
    );
    // Registering what is already stored needs no write and still answers.
    assert_eq!(id_of(&first.register("auction-value", SCHEMA_V1).await), 1);
    first.stop().await;

    // After a restart on the same file: every id answered is served as it was, the failed one
    // is not.
    let second = FileRegistry::start(&file).await.unwrap();
    second.assert_serves(&answered).await;
    let (status, body) = second.get("/schemas/ids/4").await;
    assert_eq!(
        (status, body["error_code"].clone()),
        (StatusCode::NOT_FOUND, json!(40403)),
        "an id never answered must not be served"
    );
    assert_eq!(
        second.get("/subjects").await.1,
        json!(["auction-value", "auction.state-value"])
    );
    assert_eq!(
        second.get("/config").await.1,
        json!({"compatibilityLevel": "BACKWARD"})
    );

    // With the fault gone, registering the same schema works, and its id is on disk.
    std::fs::remove_dir_all(&obstacle).unwrap();
    let id = id_of(
        &second
            .register("auction.results-value", RESULT_SCHEMA_V1)
            .await,
    );
    answered.push((id, RESULT_SCHEMA_V1));
    second.stop().await;

    let third = FileRegistry::start(&file).await.unwrap();
    third.assert_serves(&answered).await;
    let (_, body) = third
        .get("/subjects/auction.results-value/versions/latest")
        .await;
    assert_eq!(body["id"], json!(id));
    third.stop().await;
}

/// What starting a registry on `contents` says.
async fn refusal_of(contents: &[u8]) -> (String, PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("registry.json");
    std::fs::write(&file, contents).unwrap();
    let error = match FileRegistry::start(&file).await {
        Ok(registry) => {
            registry.stop().await;
            panic!(
                "a registry started on {:?}",
                String::from_utf8_lossy(contents)
            );
        }
        Err(error) => error,
    };
    // The file is left as it was: nothing started empty over it.
    assert_eq!(std::fs::read(&file).unwrap(), contents);
    (error, file, dir)
}

#[tokio::test]
async fn a_corrupt_data_file_is_refused_with_a_sentence_naming_it() {
    for (contents, expected) in [
        (&b"not json at all"[..], "is not a schema registry data file"),
        (b"", "is not a schema registry data file"),
        (
            br#"{"schemas": 5, "subjects": {}, "global_level": "BACKWARD", "subject_levels": {}}"#,
            "is not a schema registry data file",
        ),
        (
            br#"{"schemas": [{"id": 7, "schema_type": "JSON", "schema": "{}"}], "subjects": {}, "global_level": "BACKWARD", "subject_levels": {}}"#,
            "schema number 1 has id 7",
        ),
        (
            br#"{"schemas": [], "subjects": {"s": [{"version": 1, "id": 1}]}, "global_level": "BACKWARD", "subject_levels": {}}"#,
            "names schema id 1, which the file does not hold",
        ),
        (
            br#"{"schemas": [{"id": 1, "schema_type": "JSON", "schema": "{oops"}], "subjects": {}, "global_level": "BACKWARD", "subject_levels": {}}"#,
            "schema 1 is not JSON",
        ),
    ] {
        let (error, file, _dir) = refusal_of(contents).await;
        assert!(
            error.contains(&file.display().to_string()) && error.contains(expected),
            "{error}"
        );
        assert!(error.contains("restore it from a backup"), "{error}");
    }
}

#[tokio::test]
async fn a_data_file_another_registry_holds_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("registry.json");
    let first = FileRegistry::start(&file).await.unwrap();
    assert_eq!(id_of(&first.register("auction-value", SCHEMA_V1).await), 1);

    let error = match FileRegistry::start(&file).await {
        Ok(second) => {
            second.stop().await;
            panic!("a second registry started on a file the first one holds");
        }
        Err(error) => error,
    };
    assert!(
        error.contains(&file.display().to_string())
            && error.contains("in use by another schema registry process"),
        "{error}"
    );
    // The first one goes on serving and writing.
    assert_eq!(id_of(&first.register("auction-value", SCHEMA_V2).await), 2);
    first.stop().await;
    // Once it has stopped, the file is free.
    let again = FileRegistry::start(&file).await.unwrap();
    again.assert_serves(&[(1, SCHEMA_V1), (2, SCHEMA_V2)]).await;
    again.stop().await;
}

#[test]
fn a_second_registry_process_on_the_same_file_exits_with_a_sentence() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("registry.json");
    let binary = env!("CARGO_BIN_EXE_schema-registry");
    let mut first = Command::new(binary)
        .args(["--listen", "127.0.0.1:0", "--data-file"])
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the first registry");
    // Wait until it listens: it has taken the lock by then.
    let mut stdout = std::io::BufReader::new(first.stdout.take().expect("stdout"));
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).expect("read its first line");
    assert!(line.contains("listening on"), "{line}");

    let second = Command::new(binary)
        .args(["--listen", "127.0.0.1:0", "--data-file"])
        .arg(&file)
        .output()
        .expect("run the second registry");
    let stderr = String::from_utf8_lossy(&second.stderr);
    first.kill().expect("stop the first registry");
    first.wait().expect("reap the first registry");
    assert!(!second.status.success(), "the second registry started");
    assert!(
        stderr.contains("in use by another schema registry process"),
        "{stderr}"
    );

    // With the first process gone, its lock went with it.
    let mut third = Command::new(binary)
        .args(["--listen", "127.0.0.1:0", "--data-file"])
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the third registry");
    let mut stdout = std::io::BufReader::new(third.stdout.take().expect("stdout"));
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).expect("read its first line");
    third.kill().expect("stop the third registry");
    let output = third.wait_with_output().expect("reap the third registry");
    assert!(
        line.contains("listening on"),
        "the registry did not start after the first one ended: {line} {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

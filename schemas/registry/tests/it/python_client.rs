//! confluent-kafka-python's `SchemaRegistryClient`, method by method, against the registry
//! (`tests/python/client_methods.py`, run with the test virtualenv's Python).
//!
//! Deliberately not covered, because the registry does not implement their routes:
//! - `get_mode`, `update_mode`, `delete_mode`, `get_global_mode`, `update_global_mode`
//!   (`/mode`): the registry is always READWRITE; it has no IMPORT or READONLY mode.
//! - `get_contexts` (`/contexts`): no schema contexts; every subject is in the default one.
//! - `get_schema_by_guid` (`/schemas/guids/{guid}`): schemas have numeric ids only.
//! - `get_latest_with_metadata` (`/subjects/{s}/metadata`): no schema metadata or rule sets.
//! - `create_association`, `get_associations_by_resource_name`, `delete_associations`
//!   (`/associations`): a Confluent Cloud feature binding subjects to Kafka resources.
//!
//! Every other public method is called and must answer as Confluent's registry does.

use std::path::Path;
use std::process::Command;

use auction_testkit::{TestRegistry, python};

/// The client methods the script must report `skipped` (see the module comment for why).
const NOT_COVERED: &[&str] = &[
    "create_association",
    "delete_associations",
    "delete_mode",
    "get_associations_by_resource_name",
    "get_contexts",
    "get_global_mode",
    "get_latest_with_metadata",
    "get_mode",
    "get_schema_by_guid",
    "update_global_mode",
    "update_mode",
];

#[tokio::test]
async fn every_client_method_that_maps_onto_the_registry_works() {
    let registry = TestRegistry::start().await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/client_methods.py");
    let url = registry.url.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python())
            .arg(script)
            .arg(url)
            .output()
            .expect("cannot run the test virtualenv's python")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "the script failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let lines: Vec<(&str, &str)> = stdout
        .lines()
        .filter_map(|line| line.split_once(' '))
        .collect();
    let with_status = |status: &str| -> Vec<&str> {
        lines
            .iter()
            .filter(|(s, _)| *s == status)
            .map(|(_, rest)| *rest)
            .collect()
    };
    assert_eq!(with_status("failed"), Vec::<&str>::new(), "{stdout}");
    assert_eq!(with_status("unaccounted"), Vec::<&str>::new(), "{stdout}");
    assert_eq!(with_status("skipped"), NOT_COVERED, "{stdout}");
    let ok = with_status("ok");
    for method in [
        "register_schema",
        "register_schema_full_response",
        "get_schema",
        "lookup_schema",
        "get_subjects",
        "get_versions",
        "get_version",
        "get_latest_version",
        "get_schema_versions",
        "get_subjects_by_schema_id",
        "get_schema_types",
        "get_referenced_by",
        "delete_version",
        "delete_subject",
        "test_compatibility",
        "test_compatibility_all_versions",
        "set_compatibility",
        "get_compatibility",
        "set_config",
        "get_config",
        "delete_config",
    ] {
        assert!(
            ok.contains(&method),
            "{method} is not reported ok:\n{stdout}"
        );
    }
}

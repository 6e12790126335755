//! `.env.example` documents every environment variable a production binary reads.

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `env = "NAME"` of the clap definitions under `dir`.
fn env_names(dir: &Path, names: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).expect("source dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            env_names(&path, names);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let source = std::fs::read_to_string(&path).expect("source");
            for piece in source.split("env = \"").skip(1) {
                if let Some(name) = piece.split('"').next() {
                    names.push(name.to_owned());
                }
            }
        }
    }
}

#[test]
fn every_setting_of_the_production_binaries_is_in_the_env_example() {
    let example = std::fs::read_to_string(repo().join(".env.example")).expect(".env.example");
    let mut names = Vec::new();
    for crate_dir in ["bid-service/src", "gateway/src", "sinks/src"] {
        env_names(&repo().join(crate_dir), &mut names);
    }
    names.sort();
    names.dedup();
    assert!(names.len() > 20, "found too few settings: {names:?}");
    let missing: Vec<&String> = names
        .iter()
        .filter(|name| !example.contains(&format!("{name}=")))
        .collect();
    assert!(
        missing.is_empty(),
        ".env.example does not document {missing:?}"
    );
}

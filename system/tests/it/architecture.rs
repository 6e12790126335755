//! ARCHITECTURE.md's code map has a section for every crate of the repository (the workspace's
//! members and the crates it excludes), headed by its folder and package name, naming each of its
//! modules of more than 150 lines, so that a new crate or a grown module cannot land without a
//! line saying what it is.

use std::path::{Path, PathBuf};

use crate::support::{repo, workspace_list};

/// Modules longer than this must be named in the code map.
const LONG_MODULE_LINES: usize = 150;

fn package_name(member: &str) -> String {
    let manifest =
        std::fs::read_to_string(repo().join(member).join("Cargo.toml")).expect("member manifest");
    manifest
        .lines()
        .find(|line| line.trim_start().starts_with("name"))
        .and_then(|line| line.split('"').nth(1))
        .expect("a package name")
        .to_owned()
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

#[test]
fn the_code_map_names_every_crate_and_every_long_module() {
    let map = std::fs::read_to_string(repo().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let mut missing = Vec::new();
    // The workspace's members and the crates kept outside it (the fuzz targets).
    let mut members = workspace_list("members");
    assert!(members.len() >= 10, "too few members found: {members:?}");
    members.extend(workspace_list("exclude"));
    for member in &members {
        let package = package_name(member);
        // The crate's section: from its heading to the next one.
        let heading = format!("### `{member}/` — `{package}`");
        let Some(section) = map
            .split_once(heading.as_str())
            .map(|(_, rest)| rest.split("\n### ").next().unwrap_or_default())
        else {
            missing.push(format!("crate {package}: no heading {heading:?}"));
            continue;
        };
        let src = repo().join(member).join("src");
        let mut files = Vec::new();
        sources(&src, &mut files);
        for file in files {
            let lines = std::fs::read_to_string(&file)
                .expect("source")
                .lines()
                .count();
            let relative = file.strip_prefix(&src).expect("under src");
            // `bench/mod.rs` is named as the folder `bench/`.
            let name = if relative.ends_with("mod.rs") {
                format!("{}/", relative.parent().expect("folder").display())
            } else {
                relative.display().to_string()
            };
            let file_name = relative
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if lines > LONG_MODULE_LINES
                && !section.contains(&format!("`{name}`"))
                && !section.contains(&format!("`{file_name}`"))
            {
                missing.push(format!(
                    "{member}/src/{} ({lines} lines)",
                    relative.display()
                ));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md's code map does not name: {missing:#?}"
    );
}

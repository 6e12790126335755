//! `.env.example` documents every environment variable of every binary of the workspace, as each
//! binary's own `--help` lists them (so flattened and shared flags count too), and no binary is
//! left out of the check.

use std::process::Command;

use crate::support::{binary, repo, workspace_list};

/// Every binary of the workspace, with the subcommands whose `--help` lists their settings.
const BINARIES: &[(&str, &[&str])] = &[
    ("bid-service", &[]),
    ("gateway", &[]),
    ("auction-sink", &["mysql", "csv", "odbc"]),
    ("schema-registry", &[]),
    ("auction", &["dev"]),
    ("auction-tools", &["bench", "audit"]),
];

/// The `[[bin]]` names of a member's manifest.
fn binaries_of(member: &str) -> Vec<String> {
    let manifest =
        std::fs::read_to_string(repo().join(member).join("Cargo.toml")).expect("member manifest");
    manifest
        .split("[[bin]]")
        .skip(1)
        .filter_map(|section| {
            let line = section
                .lines()
                .find(|l| l.trim_start().starts_with("name"))?;
            Some(line.split('"').nth(1)?.to_owned())
        })
        .collect()
}

/// The `[env: NAME=...]` and `[env: NAME]` of one `--help` page.
fn env_names(help: &str) -> Vec<String> {
    help.split("[env: ")
        .skip(1)
        .filter_map(|rest| rest.split(['=', ']']).next())
        .map(str::to_owned)
        .collect()
}

fn help(binary_name: &str, subcommand: Option<&str>) -> String {
    let mut command = Command::new(binary(binary_name));
    command.args(subcommand).arg("--help");
    // The user's own settings must not decide what the help shows.
    for (name, _) in std::env::vars() {
        if name.starts_with("KAFKA_") || name.starts_with("SINK_") || name.starts_with("AUCTION_") {
            command.env_remove(name);
        }
    }
    let output = command.output().expect("run --help");
    assert!(
        output.status.success(),
        "{binary_name} {subcommand:?} --help failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn every_binary_of_the_workspace_is_checked() {
    let mut found: Vec<String> = workspace_list("members")
        .iter()
        .flat_map(|m| binaries_of(m))
        .collect();
    found.sort();
    let mut checked: Vec<String> = BINARIES.iter().map(|(b, _)| (*b).to_owned()).collect();
    checked.sort();
    assert_eq!(
        found, checked,
        "the binaries of the workspace and the ones this test checks differ: add the new one to BINARIES"
    );
}

#[test]
fn every_setting_of_every_binary_is_in_the_env_example() {
    let example = std::fs::read_to_string(repo().join(".env.example")).expect(".env.example");
    let mut names = Vec::new();
    for (binary_name, subcommands) in BINARIES {
        if subcommands.is_empty() {
            names.extend(env_names(&help(binary_name, None)));
        }
        for subcommand in *subcommands {
            names.extend(env_names(&help(binary_name, Some(subcommand))));
        }
    }
    names.sort();
    names.dedup();
    assert!(names.len() > 30, "found too few settings: {names:?}");
    let missing: Vec<&String> = names
        .iter()
        .filter(|name| !example.contains(&format!("{name}=")))
        .collect();
    assert!(
        missing.is_empty(),
        ".env.example does not document {missing:?}"
    );
}

//! Governance of the auction.v1 contract with buf: lint, breaking-change detection (against the
//! released baseline and against the main branch), and generated clients kept in step.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn proto_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn buf() -> PathBuf {
    if let Some(path) = std::env::var_os("BUF") {
        return PathBuf::from(path);
    }
    let buf = proto_dir().join("../.ci/node_modules/.bin/buf");
    assert!(
        buf.is_file(),
        "buf is not installed; run `.ci/test`, which installs it from .ci/package.json"
    );
    buf
}

fn run_buf(dir: &Path, args: &[&str]) -> Output {
    Command::new(buf())
        .current_dir(dir)
        .args(args)
        .output()
        .expect("buf runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn the_contract_passes_buf_lint() {
    let output = run_buf(&proto_dir(), &["lint"]);
    assert!(output.status.success(), "buf lint:\n{}", text(&output));
    // buf lint prints one line per finding; a clean contract prints none.
    assert!(
        output.stdout.is_empty(),
        "buf lint reported:\n{}",
        text(&output)
    );
}

#[test]
fn the_contract_keeps_compatibility_with_the_released_baseline_and_main() {
    let output = run_buf(
        &proto_dir(),
        &["breaking", "--against", "buf.baseline.binpb"],
    );
    assert!(
        output.status.success(),
        "breaking change against the baseline:\n{}",
        text(&output)
    );
    let repo = proto_dir().join("..");
    let has_main = Command::new("git")
        .current_dir(&repo)
        .args(["rev-parse", "--verify", "--quiet", "refs/heads/main"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        has_main,
        "the repository has no main branch to compare the contract with"
    );
    let output = run_buf(
        &repo,
        &[
            "breaking",
            "proto",
            "--against",
            ".git#branch=main,subdir=proto",
        ],
    );
    assert!(
        output.status.success(),
        "breaking change against main:\n{}",
        text(&output)
    );
}

#[test]
fn a_breaking_change_is_detected() {
    let copy = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(copy.path().join("auction/v1")).expect("dirs");
    std::fs::copy(proto_dir().join("buf.yaml"), copy.path().join("buf.yaml")).expect("buf.yaml");
    let contract =
        std::fs::read_to_string(proto_dir().join("auction/v1/auction.proto")).expect("proto");
    // Renumber a field of PlaceBidRequest: old clients would send the price under the wrong number.
    let broken = contract.replacen("  int64 price = 3;", "  int64 price = 9;", 1);
    assert_ne!(
        broken, contract,
        "the test's edit no longer applies; update it"
    );
    std::fs::write(copy.path().join("auction/v1/auction.proto"), broken).expect("write");
    let baseline = proto_dir().join("buf.baseline.binpb");
    let output = run_buf(
        copy.path(),
        &[
            "breaking",
            "--against",
            baseline.to_str().expect("UTF-8 path"),
        ],
    );
    assert!(
        !output.status.success(),
        "buf breaking accepted a renumbered field"
    );
    assert!(text(&output).contains("price"), "{}", text(&output));
}

fn files_under(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("readable dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n == "__pycache__") {
                    continue;
                }
                pending.push(path);
            } else {
                let relative = path.strip_prefix(root).expect("under root").to_path_buf();
                files.push((relative, std::fs::read(&path).expect("readable file")));
            }
        }
    }
    files.sort();
    files
}

#[test]
fn the_committed_clients_are_what_buf_generate_produces() {
    let out = tempfile::tempdir().expect("temp dir");
    let python_bin = auction_python_bin();
    let path = format!(
        "{}:{}",
        python_bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = Command::new(buf())
        .current_dir(proto_dir())
        .env("PATH", path)
        .args(["generate", "-o", out.path().to_str().expect("UTF-8 path")])
        .output()
        .expect("buf generate runs");
    assert!(output.status.success(), "buf generate:\n{}", text(&output));
    for generated in ["clients/python/generated", "clients/typescript/src/gen"] {
        let fresh = files_under(&out.path().join(generated));
        let committed = files_under(&proto_dir().join(generated));
        assert!(
            !fresh.is_empty(),
            "buf generate wrote nothing under {generated}"
        );
        assert!(
            fresh == committed,
            "{generated} is out of date: run `buf generate` in proto/ (see the README) and commit the result"
        );
    }
}

/// The directory of the test virtualenv's `python` (with grpcio-tools), which the Python plugin needs.
fn auction_python_bin() -> PathBuf {
    let python = std::env::var_os("AUCTION_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/auction/venv/bin/python")
        });
    assert!(
        python.is_file(),
        "the test virtualenv is missing ({}); run `.ci/test`",
        python.display()
    );
    python.parent().expect("bin dir").to_path_buf()
}

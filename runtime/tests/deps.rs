//! The runtime must stay small: no compiler crate anywhere in its dependency tree.

use std::collections::{HashMap, HashSet};

#[test]
fn no_compiler_crates_in_the_dependency_tree() {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: HashMap<&str, &str> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let nodes: HashMap<&str, &serde_json::Value> = meta["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_str().unwrap(), n))
        .collect();
    let root = names
        .iter()
        .find(|(_, n)| **n == "optc-runtime")
        .map(|(id, _)| *id)
        .expect("optc-runtime in the metadata");
    // Normal and build dependencies, transitively (dev-dependencies do not ship).
    let mut seen = HashSet::new();
    let mut stack = vec![root];
    while let Some(id) = stack.pop() {
        for dep in nodes[id]["deps"].as_array().unwrap() {
            let shipped = dep["dep_kinds"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kind"].is_null() || k["kind"] == "build");
            let pkg = dep["pkg"].as_str().unwrap();
            if shipped && seen.insert(pkg) {
                stack.push(pkg);
            }
        }
    }
    let deps: HashSet<&str> = seen.iter().map(|id| names[id]).collect();
    assert!(
        deps.contains("wgpu"),
        "the walk found the real dependencies: {deps:?}"
    );
    for banned in [
        "egg",
        "petgraph",
        "protobuf",
        "onnx-protobuf",
        "optc",
        "optc-ir",
        "optc-passes",
        "optc-codegen",
        "optc-kernels",
    ] {
        assert!(
            !deps.contains(banned),
            "optc-runtime depends on {banned} (through {deps:?})"
        );
    }
}

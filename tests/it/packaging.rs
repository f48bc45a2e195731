//! Packaging: what `cargo package` ships, the license notice and the manifest's links.
//!
//! Runs `cargo package --list` on this crate (no network, no build), so the `include` list in
//! `Cargo.toml` is checked against the files it really selects. The repository is a workspace:
//! every cargo command here names this package (`-p twofactor`), the published library.

use std::path::Path;
use std::process::Command;

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(manifest_dir());
    cmd
}

fn packaged_files() -> Vec<String> {
    let out = cargo()
        .args([
            "package",
            "--list",
            "-p",
            "twofactor",
            "--allow-dirty",
            "--offline",
            "--quiet",
        ])
        .output()
        .expect("run cargo package --list");
    assert!(
        out.status.success(),
        "cargo package --list failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8 listing")
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Every `.lua` file under `dir`, as a path relative to the manifest with `/` separators.
fn lua_sources(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read a source folder") {
        let path = entry.expect("a folder entry").path();
        if path.is_dir() {
            found.extend(lua_sources(&path));
        } else if path.extension().is_some_and(|e| e == "lua") {
            let relative = path
                .strip_prefix(manifest_dir())
                .expect("under the manifest");
            let parts: Vec<_> = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            found.push(parts.join("/"));
        }
    }
    found
}

/// `cargo metadata` of the workspace, without dependencies.
fn metadata() -> serde_json::Value {
    let out = cargo()
        .args([
            "metadata",
            "--no-deps",
            "--offline",
            "--format-version",
            "1",
        ])
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("metadata json")
}

#[test]
fn the_package_ships_the_library_and_no_ci_fuzz_browser_or_test_servers() {
    let files = packaged_files();
    for needed in [
        "Cargo.toml",
        "README.md",
        "CHANGELOG.md",
        "SECURITY.md",
        "LICENSE",
        "LICENSE-MIT",
        "LICENSE-APACHE",
        "src/lib.rs",
        "src/manual/mod.rs",
        "src/manual/flows.md",
        "src/manual/rate_limits.md",
        "src/manual/stores.md",
        "src/manual/security_model.md",
        "src/manual/defaults.md",
        "src/manual/smtp.md",
        "src/manual/performance.md",
        "src/manual/server.md",
        "migrations/postgres/0001_init.sql",
        "migrations/sqlite/0001_init.sql",
        "examples/quickstart.rs",
    ] {
        assert!(files.iter().any(|f| f == needed), "{needed} is not shipped");
    }
    // The Redis store's Lua scripts are compiled in with `include_str!`: without them the
    // published crate does not build.
    let scripts = lua_sources(&manifest_dir().join("src"));
    assert!(!scripts.is_empty(), "no Lua script found under src/");
    for script in &scripts {
        assert!(files.contains(script), "{script} is not shipped");
    }
    let unwanted = |f: &String| {
        f.starts_with(".ci/")
            || f.starts_with("fuzz/")
            || f.starts_with("tests/")
            || f.starts_with("benches/")
            || f.starts_with("examples/server/")
            // The workspace's example packages and the other examples: of examples/, only the
            // quickstart's source ships.
            || (f.starts_with("examples/") && f != "examples/quickstart.rs")
            || f.ends_with("package-lock.json")
            || f.ends_with(".py")
            || f.ends_with(".sh")
            || f == ".gitignore"
    };
    let shipped: Vec<&String> = files.iter().filter(|f| unwanted(f)).collect();
    assert!(shipped.is_empty(), "shipped but should not be: {shipped:?}");
}

#[test]
fn the_license_notice_names_both_license_files() {
    let notice = std::fs::read_to_string(manifest_dir().join("LICENSE")).expect("LICENSE");
    assert!(notice.contains("LICENSE-MIT"), "{notice}");
    assert!(notice.contains("LICENSE-APACHE"), "{notice}");
    assert!(notice.contains("MIT OR Apache-2.0"), "{notice}");
}

#[test]
fn the_manifest_names_the_repository_and_the_documentation() {
    let meta = metadata();
    let pkg = meta["packages"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == "twofactor"))
        .expect("the twofactor package");
    assert_eq!(
        pkg["repository"],
        "https://github.com/twofactor-rs/twofactor"
    );
    assert_eq!(pkg["documentation"], "https://docs.rs/twofactor");
}

/// The distinct crates (name and version, this one included) a build of this package with these
/// cargo arguments compiles, normal dependencies only: what `cargo tree -e normal` lists.
fn crates_in_build(args: &[&str]) -> Vec<String> {
    crates_in_tree("twofactor", "normal", args)
}

/// The distinct crates (name and version, the package included) `cargo tree -e <edges>` lists for
/// `package` with these cargo arguments.
fn crates_in_tree(package: &str, edges: &str, args: &[&str]) -> Vec<String> {
    let out = cargo()
        .args([
            "tree",
            "-p",
            package,
            "-e",
            edges,
            "--prefix",
            "none",
            "--offline",
        ])
        .args(args)
        .output()
        .expect("run cargo tree");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut crates: Vec<String> = String::from_utf8(out.stdout)
        .expect("utf-8 tree")
        .lines()
        .map(|l| l.trim_end_matches(" (*)").to_owned())
        .filter(|l| !l.is_empty())
        .collect();
    crates.sort();
    crates.dedup();
    crates
}

#[test]
fn a_build_without_default_features_is_lean() {
    let lean = crates_in_build(&["--no-default-features"]);
    assert!(
        lean.len() <= 60,
        "{} distinct crates without default features (at most 60):\n{}",
        lean.len(),
        lean.join("\n")
    );
    for heavy in ["image ", "png ", "url ", "idna "] {
        assert!(
            !lean.iter().any(|c| c.starts_with(heavy)),
            "{heavy}in the lean build"
        );
    }
    // The PNG renderer is the default-on `qr-png` feature.
    let default = crates_in_build(&[]);
    assert!(default.iter().any(|c| c.starts_with("image ")));
}

/// The README's first command, `cargo run --example quickstart`, builds the quickstart's own
/// package: the library and Tokio, without the test and benchmark dependencies of this package
/// (criterion, passkey, proptest, …), which Cargo builds for any example of a package. Counted
/// with the development dependencies, so that one added to that package shows here.
#[test]
fn the_quickstart_package_is_light() {
    let crates = crates_in_tree("twofactor-quickstart-example", "normal,build,dev", &[]);
    assert!(
        crates.len() <= 120,
        "{} distinct crates for the quickstart (at most 120):\n{}",
        crates.len(),
        crates.join("\n")
    );
    for heavy in [
        "criterion ",
        "passkey ",
        "proptest ",
        "axum ",
        "reqwest ",
        "webauthn-rs ",
    ] {
        assert!(
            !crates.iter().any(|c| c.starts_with(heavy)),
            "{heavy}in the quickstart's build"
        );
    }
}

/// The packages beside the library (the examples) are never published.
#[test]
fn only_the_library_is_published() {
    let meta = metadata();
    let packages = meta["packages"].as_array().expect("packages");
    assert!(packages.len() > 1, "a workspace of several packages");
    for pkg in packages {
        if pkg["name"] == "twofactor" {
            assert!(pkg["publish"].is_null(), "the library is published");
        } else {
            assert_eq!(
                pkg["publish"],
                serde_json::json!([]),
                "{} is published",
                pkg["name"]
            );
        }
    }
}

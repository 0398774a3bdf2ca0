//! The container image (issue 16), checked where no Docker engine runs (ours:
//! `scripts/container` builds and smoke-tests the image where one does):
//! the binary loads no library the runtime image lacks, and no newer glibc or
//! OpenSSL than its Debian release has; the Dockerfile builds in two stages,
//! runs as a non-root user, copies the binary alone into the runtime image,
//! and its build context holds the whole workspace.
//!
//! The binary checked is the one built here from the same sources and
//! features (on Debian 12, the image builder's release too), not the
//! image's: where an engine runs, `scripts/container` runs the image's.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// The runtime image the Dockerfile names, and what it holds of what a
/// program loads: glibc 2.36 (libc6), libgcc_s (libgcc-s1), libstdc++6,
/// libgomp1 and OpenSSL 3.0 (libssl3), Debian 12's packages, with the CA
/// certificates (GoogleContainerTools/distroless, `cc` on `base`).
const RUNTIME_IMAGE: &str = "gcr.io/distroless/cc-debian12:nonroot";
const RUNTIME_LIBRARIES: &[&str] = &[
    "ld-linux-x86-64.so.2",
    "ld-linux-aarch64.so.1",
    "libc.so.6",
    "libm.so.6",
    "libdl.so.2",
    "libpthread.so.0",
    "librt.so.1",
    "libgcc_s.so.1",
    "libstdc++.so.6",
    "libgomp.so.1",
    "libssl.so.3",
    "libcrypto.so.3",
];
/// The newest symbol versions of the runtime's glibc and OpenSSL.
const RUNTIME_GLIBC: (u32, u32) = (2, 36);
const RUNTIME_OPENSSL: (u32, u32) = (3, 0);
/// The builder's Debian release must be the runtime's.
const RUNTIME_DEBIAN: &str = "bookworm";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn readelf(flag: &str) -> String {
    let out = Command::new("readelf")
        .args([flag, "-W", env!("CARGO_BIN_EXE_kafka-backup")])
        .output()
        .expect("readelf (binutils) runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `X.Y` of a version name such as `GLIBC_2.34` or `OPENSSL_3.0.0`.
fn major_minor(version: &str) -> (u32, u32) {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap());
    (parts.next().unwrap(), parts.next().unwrap_or(0))
}

#[test]
fn the_binary_loads_only_what_the_runtime_image_holds() {
    let needed: BTreeSet<String> = readelf("-d")
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| Some(l.split_once('[')?.1.trim_end_matches(']').to_owned()))
        .collect();
    assert!(needed.contains("libc.so.6"), "{needed:?}");
    let missing: Vec<_> = needed
        .iter()
        .filter(|lib| !RUNTIME_LIBRARIES.contains(&lib.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "the binary loads {missing:?}, which {RUNTIME_IMAGE} does not hold: link it in \
         statically (as zlib: rdkafka's `libz-static`) or copy it into the image"
    );

    // the symbol versions it asks of glibc and OpenSSL exist in the runtime's
    let versions = readelf("-V");
    let mut seen = 0;
    for name in versions
        .split_whitespace()
        .filter(|w| w.starts_with("GLIBC_") || w.starts_with("OPENSSL_"))
    {
        let (library, version) = name.split_once('_').unwrap();
        if !version.starts_with(|c: char| c.is_ascii_digit()) {
            continue; // GLIBC_PRIVATE and the like: none expected
        }
        let newest = if library == "GLIBC" {
            RUNTIME_GLIBC
        } else {
            RUNTIME_OPENSSL
        };
        assert!(
            major_minor(version) <= newest,
            "the binary needs {name}, newer than {RUNTIME_IMAGE}'s {library} {newest:?}"
        );
        seen += 1;
    }
    assert!(seen > 0, "no versioned glibc symbols read:\n{versions}");
}

#[test]
fn the_dockerfile_builds_in_two_stages_and_runs_the_binary_alone_as_non_root() {
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let lines: Vec<&str> = dockerfile
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let arg = |name: &str| {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(&format!("ARG {name}=")))
            .unwrap_or_else(|| panic!("no `ARG {name}=` in the Dockerfile"))
    };
    assert_eq!(arg("RUNTIME_IMAGE"), RUNTIME_IMAGE);
    let rust_image = arg("RUST_IMAGE");
    assert!(
        rust_image.ends_with(&format!("-{RUNTIME_DEBIAN}")),
        "the builder `{rust_image}` is not Debian {RUNTIME_DEBIAN}, the runtime's release"
    );
    // the builder's toolchain is at least the crate's rust-version
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let rust_version = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .unwrap()
        .trim_matches('"');
    let builder = rust_image
        .strip_prefix("rust:")
        .and_then(|t| t.split('-').next())
        .unwrap();
    assert!(
        major_minor(builder) >= major_minor(rust_version),
        "the builder's Rust {builder} is older than rust-version {rust_version}"
    );

    let stages: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].starts_with("FROM "))
        .collect();
    assert_eq!(stages.len(), 2, "a build stage and a runtime stage");
    assert_eq!(lines[stages[0]], "FROM ${RUST_IMAGE} AS build");
    assert_eq!(lines[stages[1]], "FROM ${RUNTIME_IMAGE}");
    let build = &lines[stages[0]..stages[1]];
    assert!(
        build
            .iter()
            .any(|l| l.contains("cargo build --release --locked -p kafka-backup")),
        "the image builds the locked release binary: {build:?}"
    );
    let runtime = &lines[stages[1]..];
    let copies: Vec<_> = runtime.iter().filter(|l| l.starts_with("COPY")).collect();
    assert_eq!(
        copies,
        [&"COPY --from=build /out/kafka-backup /usr/local/bin/kafka-backup"],
        "the runtime image gets the binary alone"
    );
    assert!(
        !runtime.iter().any(|l| l.starts_with("RUN")),
        "distroless has no shell"
    );
    let user = runtime
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER in the runtime stage");
    let uid = user.split(':').next().unwrap();
    assert!(
        uid.parse::<u32>().is_ok_and(|u| u != 0),
        "runs as `{user}`: a numeric non-root user (Kubernetes' runAsNonRoot can check it)"
    );
    assert!(
        runtime.contains(&r#"ENTRYPOINT ["/usr/local/bin/kafka-backup"]"#),
        "{runtime:?}"
    );
}

#[test]
fn the_build_context_leaves_out_build_output_but_not_the_workspace() {
    let ignore = std::fs::read_to_string(root().join(".dockerignore")).unwrap();
    let patterns: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for big in ["target", ".venv", ".run", ".git", "kafka-backups"] {
        assert!(patterns.contains(&big), "{big} goes into the build context");
    }
    // every file cargo reads to build the workspace is in the context
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let members = manifest
        .split_once("members = [")
        .and_then(|(_, rest)| rest.split_once(']'))
        .unwrap()
        .0;
    let mut needed = vec!["Cargo.toml", "Cargo.lock", "src", "benches", "examples"];
    needed.extend(
        members
            .split(',')
            .map(|m| m.trim().trim_matches('"'))
            .filter(|m| !m.is_empty() && *m != "."),
    );
    for path in needed {
        assert!(root().join(path).exists(), "{path}");
        for pattern in &patterns {
            assert!(
                !(path == *pattern || path.starts_with(&format!("{pattern}/"))),
                "`{pattern}` in .dockerignore leaves out {path}, which the build reads"
            );
        }
    }
}

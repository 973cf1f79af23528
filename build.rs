//! Puts the git commit into `--version` (without git, a source tarball or a container build
//! without `.git`, the commit is "unknown": the build never fails for it), and compiles KEDA's
//! external scaler proto with a pure-Rust parser (protox), so that building needs no `protoc`.

use std::process::Command;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/externalscaler.proto");
    let fds = protox::compile(["proto/externalscaler.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        // The client is for the integration tests; transport is the caller's (real TLS).
        .build_client(true)
        .build_transport(false)
        .compile_fds(fds)?;

    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=FLINK_HPA_BRIDGE_GIT_COMMIT={commit}");
    // Rebuilt when HEAD or the branch it names moves; git says where those files are (a
    // worktree keeps them apart).
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let mut watched = vec![git(&["rev-parse", "--git-path", "HEAD"])];
    if let Some(branch) = git(&["rev-parse", "--symbolic-full-name", "HEAD"]) {
        watched.push(git(&["rev-parse", "--git-path", &branch]));
    }
    for path in watched.into_iter().flatten() {
        if std::path::Path::new(&path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    println!("cargo:rerun-if-changed=build.rs");

    // Tests that need an outside tool are compiled as ignored when it is missing, so the run
    // reports them as ignored rather than passed; under CI=true they always run (and fail
    // without the tool).
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    for (tool, cfg) in [("kubectl", "has_kubectl"), ("promtool", "has_promtool")] {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        let found = Command::new(tool)
            .arg(if tool == "kubectl" {
                "version"
            } else {
                "--version"
            })
            .args(if tool == "kubectl" {
                &["--client"][..]
            } else {
                &[][..]
            })
            .output()
            .is_ok_and(|o| o.status.success());
        if found || ci {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
    println!("cargo:rerun-if-env-changed=CI");
    println!("cargo:rerun-if-env-changed=PATH");
    Ok(())
}

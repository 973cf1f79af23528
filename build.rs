//! Puts the git commit into `--version`. Without git (a source tarball, a container build
//! without `.git`) the commit is "unknown": the build never fails for it.

use std::process::Command;

fn main() {
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
}

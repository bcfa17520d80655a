//! The Kubernetes manifest cannot run here, so its structure is checked and kept in step with
//! the command line: an Indexed Job whose completions, parallelism and `--segment auto/N`
//! agree, an assembly Job with the same input, style and output, and arguments the binary
//! accepts. (The Slurm files run for real in tests/slurm.rs.)

mod common;

use std::process::Command;

use yaml_rust2::{Yaml, YamlLoader};

fn container_args(job: &Yaml) -> Vec<String> {
    let container = &job["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["command"][0].as_str(), Some("stylize-video"));
    container["args"].as_vec().expect("args").iter().map(|a| a.as_str().expect("string argument").to_string()).collect()
}

/// Runs the binary with `args`, the files swapped for ones that do not exist here: the
/// arguments must parse (exit 1 on the missing work, not 2 on a bad option).
fn assert_cli_accepts(args: &[String], expected_error: &str) {
    let dir = common::scratch_dir("deploy-args");
    let args: Vec<String> =
        args.iter().map(|a| if a.starts_with("/work/") { dir.join(a.trim_start_matches("/work/")).display().to_string() } else { a.clone() }).collect();
    let run = Command::new(env!("CARGO_BIN_EXE_stylize-video")).args(&args).env("JOB_COMPLETION_INDEX", "0").output().unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{args:?}: {stderr}");
    assert!(stderr.contains(expected_error), "{stderr}");
    assert!(std::fs::read_dir(&dir).unwrap().next().is_none(), "nothing left behind by a failed start");
}

#[test]
fn the_kubernetes_manifest_is_an_indexed_job_in_step_with_the_cli() {
    let text = std::fs::read_to_string(common::repo_path("deploy/kubernetes/indexed-job.yaml")).unwrap();
    let documents = YamlLoader::load_from_str(&text).expect("valid YAML");
    assert_eq!(documents.len(), 2, "the segments Job and the assembly Job");
    let (segments, assembly) = (&documents[0], &documents[1]);
    for job in [segments, assembly] {
        assert_eq!((job["apiVersion"].as_str(), job["kind"].as_str()), (Some("batch/v1"), Some("Job")));
        assert_eq!(job["spec"]["template"]["spec"]["restartPolicy"].as_str(), Some("Never"));
        let volume = &job["spec"]["template"]["spec"]["volumes"][0];
        assert_eq!(volume["persistentVolumeClaim"]["claimName"].as_str(), Some("stylize-work"));
    }
    assert_eq!(segments["metadata"]["labels"]["stage"].as_str(), Some("segments"));
    assert_eq!(assembly["metadata"]["labels"]["stage"].as_str(), Some("assemble"));

    let spec = &segments["spec"];
    assert_eq!(spec["completionMode"].as_str(), Some("Indexed"));
    let completions = spec["completions"].as_i64().expect("completions");
    assert_eq!(spec["parallelism"].as_i64(), Some(completions));
    let args = container_args(segments);
    let at = args.iter().position(|a| a == "--segment").expect("--segment");
    assert_eq!(args[at + 1], format!("auto/{completions}"), "--segment auto/N with N = completions");

    let assemble_args = container_args(assembly);
    assert!(assemble_args.contains(&"--assemble".to_string()));
    // The same input, style and output: everything but --segment auto/N and --assemble.
    let mut common_args = args.clone();
    common_args.drain(at..at + 2);
    let mut assemble_common = assemble_args.clone();
    assemble_common.retain(|a| a != "--assemble");
    assert_eq!(common_args, assemble_common);

    assert_cli_accepts(&args, "clip.mp4: file not found");
    assert_cli_accepts(&assemble_args, "no segments to assemble");
}

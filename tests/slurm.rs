//! The Slurm path for real: a single-node cluster on this machine (scripts/local-slurm:
//! munged, slurmctld, slurmd on localhost), a 3-task array submitted by deploy/slurm/submit
//! with its dependent assembly job, and the result checked against the input (frames, timing)
//! and against a single-process run (the joins, pair by pair). Skipped, saying why, only where
//! Slurm cannot run (not root, or Debian's slurm-wlm and munge not installed).

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{assert_same_timing, frames_at};
use stylize_video::motion::flow::FlowMethod;
use stylize_video::motion::temporal::pair_warping_errors;

/// Stops the local cluster however the test ends.
struct Cluster {
    dir: PathBuf,
    conf: String,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(common::repo_path("scripts/local-slurm")).arg("stop").arg(&self.dir).status();
    }
}

fn missing_prerequisite() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("not root (slurmd must start jobs)".into());
    }
    for tool in ["munged", "slurmctld", "slurmd", "sbatch", "squeue"] {
        let found = Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().ok()?.status.success();
        if !found {
            return Some(format!("{tool} is not installed (Debian's slurm-wlm and munge; scripts/install-deps --tests installs them)"));
        }
    }
    None
}

#[test]
fn a_clip_runs_as_a_slurm_array_on_a_local_cluster() {
    if let Some(why) = missing_prerequisite() {
        eprintln!("SKIPPED: the local Slurm cluster cannot run here: {why}");
        return;
    }
    let dir = common::scratch_dir("slurm");
    let start = Command::new(common::repo_path("scripts/local-slurm")).arg("start").arg(dir.join("cluster")).output().unwrap();
    assert!(start.status.success(), "local cluster: {}", String::from_utf8_lossy(&start.stderr));
    let conf = String::from_utf8_lossy(&start.stdout).trim().trim_start_matches("export SLURM_CONF=").to_string();
    let cluster = Cluster { dir: dir.join("cluster"), conf };

    let input = common::repo_path("samples/cup.mp4");
    let style = common::repo_path("samples/starry_night.jpg");
    let output = dir.join("out.mp4");
    let options = ["--size", "48", "--first-iterations", "20", "--iterations", "4", "--no-audio"];
    let submitted = Command::new(common::repo_path("deploy/slurm/submit"))
        .arg("3")
        .args([&input, &style, &output])
        .args(options)
        .args(["--", "--cpus-per-task=1"])
        .arg(format!("--chdir={}", dir.display()))
        .env("SLURM_CONF", &cluster.conf)
        .env("STYLIZE_VIDEO", env!("CARGO_BIN_EXE_stylize-video"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&submitted.stdout).into_owned();
    assert!(submitted.status.success(), "submit: {}{}", said, String::from_utf8_lossy(&submitted.stderr));
    assert!(said.contains("array 0-2") && said.contains("assembly: job"), "{said}");

    // Wait for the queue to empty (segments, then the assembly).
    let started = Instant::now();
    loop {
        let queue = Command::new("squeue").arg("-h").env("SLURM_CONF", &cluster.conf).output().unwrap();
        if queue.status.success() && queue.stdout.is_empty() {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(600), "jobs still queued: {}", String::from_utf8_lossy(&queue.stdout));
        std::thread::sleep(Duration::from_millis(500));
    }
    let logs: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .map(|e| format!("{}: {}", e.file_name().to_string_lossy(), std::fs::read_to_string(e.path()).unwrap_or_default()))
        .collect();
    assert_eq!(logs.len(), 4, "three segment tasks and the assembly logged: {logs:?}");
    assert!(output.exists(), "no output; the job logs say: {logs:?}");
    assert!(!dir.join("out.mp4.partial").exists(), "the work directory is removed after assembly");

    // Every frame once, at the input's times.
    let (_, out_frames) = assert_same_timing(&input, &output);

    // The joins against the same settings in one process.
    let single = dir.join("single.mp4");
    let run = Command::new(env!("CARGO_BIN_EXE_stylize-video"))
        .arg(&input)
        .args(["--style", style.to_str().unwrap(), "-o", single.to_str().unwrap(), "-q"])
        .args(options)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let size = out_frames[0].image.dimensions();
    let inputs = frames_at(&input, size);
    let single_errors = pair_warping_errors(&inputs, &frames_at(&single, size), FlowMethod::Dis).unwrap();
    let array_errors = pair_warping_errors(&inputs, &frames_at(&output, size), FlowMethod::Dis).unwrap();
    let ratio = |t: usize| array_errors[t].unwrap() / single_errors[t].unwrap();
    // The clip's mean warping error over the single run's (pair ratios alone are noisy: where
    // the single run's pair is near 0, one-thread and two-thread runs differ by 10× and more).
    let mean_of = |errors: &[Option<f64>]| errors.iter().flatten().sum::<f64>() / errors.iter().flatten().count() as f64;
    let mean = mean_of(&array_errors) / mean_of(&single_errors);
    // 54 frames in 3: the joins are at frames 18 and 36.
    eprintln!("Slurm array of 3: joins {:.2}× and {:.2}×, mean warping error {mean:.3}× the single run's", ratio(18), ratio(36));
    // A join pair is bounded loosely: a cold start there is 140× (docs/cluster.md), while two
    // warm chains at 48 px and 4 iterations a frame differ by up to 1.8× pair by pair for
    // several frames after a join (a segment's chain is a different painting of the same
    // frames, not a worse one: the whole clip's mean is the tight check).
    for join in [18, 36] {
        assert!(ratio(join) <= 2.0, "join at frame {join}: {:.2}× the single run's warping error", ratio(join));
    }
    assert!(mean <= 1.1, "mean warping error {mean:.3}× the single run's");
}

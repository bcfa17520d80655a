//! `--precision`: what each CPU makes of it, the fallback to fp32 where the CPU has no bf16
//! kernel (forced through `STYLIZE_VIDEO_BF16_KERNEL=none`), and the two bf16 kernels agreeing.

mod common;

use std::process::Command;

use stylize_video::net::cpu::bf16::{Kernel, KERNEL_ENV};

/// Runs a 64×48 still with `args` (no iterations: J of the starting image, the content), the
/// bf16 kernel forced to `kernel` (None: as for this test process), and returns the report's
/// precision and J.
fn still(name: &str, kernel: Option<&str>, args: &[&str]) -> (String, f64) {
    let dir = common::scratch_dir(name);
    let input = dir.join("photo.png");
    common::synthetic_content(64, 48).save(&input).unwrap();
    let (out, report) = (dir.join("out.png"), dir.join("r.json"));
    let mut command = Command::new(env!("CARGO_BIN_EXE_stylize-video"));
    command.arg(&input).arg("--style").arg(common::repo_path("samples/starry_night.jpg"));
    command.arg("-o").arg(&out).arg("--report").arg(&report).args(["--size", "64", "--iterations", "0"]).args(args);
    // Inherits the suite's own STYLIZE_VIDEO_BF16_KERNEL (so the whole suite can be run as on a
    // CPU without bf16) unless a test names a kernel.
    if let Some(kernel) = kernel {
        command.env(KERNEL_ENV, kernel);
    }
    let output = command.output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    (report["precision"].as_str().unwrap().to_string(), report["J"].as_f64().unwrap())
}

#[test]
fn without_a_bf16_kernel_bf16_runs_as_fp32_and_gives_fp32_results() {
    let (fp32, j_fp32) = still("precision-fp32", None, &["--precision", "fp32"]);
    assert_eq!(fp32, "fp32");
    let (fallback, j_fallback) = still("precision-fallback", Some("none"), &["--precision", "bf16"]);
    assert_eq!(fallback, "fp32", "bf16 asked for on a CPU without a bf16 kernel");
    // The fp32 path itself: equal up to the order of parallel sums.
    assert!((j_fallback - j_fp32).abs() <= 1e-6 * j_fp32, "fallback J {j_fallback} against fp32 {j_fp32}");
    let (default, _) = still("precision-default-none", Some("none"), &[]);
    assert_eq!(default, "fp32");
    // tf32 is a GPU mode: fp32 on a CPU.
    assert_eq!(still("precision-tf32", None, &["--precision", "tf32"]).0, "fp32");
}

#[test]
fn the_default_is_bf16_exactly_where_the_cpu_has_amx() {
    let expected = if Kernel::detect() == Some(Kernel::Amx) { "bf16" } else { "fp32" };
    assert_eq!(still("precision-default", None, &[]).0, expected);
    // With AVX-512 BF16 as the only kernel the default stays fp32; asked for, bf16 runs.
    if Kernel::Avx512Bf16.available() {
        assert_eq!(still("precision-default-avx512", Some("avx512bf16"), &[]).0, "fp32");
        assert_eq!(still("precision-asked-avx512", Some("avx512bf16"), &["--precision", "bf16"]).0, "bf16");
    }
}

#[test]
fn both_bf16_kernels_give_the_same_result_and_differ_from_fp32_by_rounding() {
    let kernels = Kernel::all_available();
    if kernels.is_empty() {
        eprintln!("SKIPPED: no bf16 kernel on this CPU");
        return;
    }
    let (_, j_fp32) = still("precision-vs-fp32", None, &["--precision", "fp32"]);
    let runs: Vec<(Kernel, f64)> = kernels
        .iter()
        .map(|k| {
            let (precision, j) = still(&format!("precision-{k}"), Some(&k.to_string()), &["--precision", "bf16"]);
            assert_eq!(precision, "bf16");
            (*k, j)
        })
        .collect();
    for &(kernel, j) in &runs {
        let rel = (j - j_fp32).abs() / j_fp32;
        eprintln!("{kernel}: J {j:.6e} against fp32 {j_fp32:.6e} ({rel:.2e})");
        // bf16 rounding moves J a little (measured 2.5e-3 here), and does move it.
        assert!(rel > 1e-6 && rel < 1e-2, "{kernel}: J {j} against fp32 {j_fp32}");
    }
    // The kernels sum the same bf16 products in different orders and round their f32 partial
    // sums differently (measured 1.1e-5 apart in J).
    if let [(_, a), (_, b)] = runs[..] {
        assert!((a - b).abs() / a < 1e-4, "AMX J {a} against AVX-512 BF16 J {b}");
    }
}

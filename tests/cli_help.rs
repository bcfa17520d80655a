//! The command line's help: `-h` is the summary (one line per option, under headings), `--help`
//! the long form; typed options refuse bad values, naming the option and the values it takes.

use std::process::Command;

fn stylize_video(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_stylize-video")).args(args).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

const HEADINGS: [&str; 7] =
    ["Input and output:", "Style and weights:", "Optimisation:", "Video and motion:", "Performance:", "Cluster:", "Preview:"];

#[test]
fn short_help_is_a_line_per_option_under_headings_and_long_help_explains() {
    let (code, short, _) = stylize_video(&["-h"]);
    assert_eq!(code, 0);
    let (code, long, _) = stylize_video(&["--help"]);
    assert_eq!(code, 0);
    for heading in HEADINGS {
        assert_eq!(short.lines().filter(|l| *l == heading).count(), 1, "-h lacks the heading {heading}:\n{short}");
        assert_eq!(long.lines().filter(|l| *l == heading).count(), 1, "--help lacks the heading {heading}");
    }
    // Every option once in each, and -h's explanations are the first sentence only.
    let options = |text: &str| text.lines().filter(|l| l.trim_start().starts_with("--") || l.trim_start().starts_with('-')).count();
    assert!(options(&short) >= 50, "-h lists {} options", options(&short));
    assert!(short.lines().count() < long.lines().count() / 2, "-h ({}) is not the short form of --help ({})", short.lines().count(), long.lines().count());
    assert!(!short.contains("SLURM_ARRAY_TASK_ID") && long.contains("SLURM_ARRAY_TASK_ID"));
    assert!(long.contains("prev-warped: the previous stylized frame warped"));
}

#[test]
fn typed_options_refuse_unknown_values_naming_the_choices() {
    for (option, value, choices) in [
        ("--pooling", "median", "max, avg"),
        ("--codec", "vp9", "h264, ffv1, prores"),
        ("--init-video", "warped", "prev-warped, prev, content"),
        ("--optimizer", "sgd", "lbfgs, adam"),
        ("--precision", "fp16", "fp32, tf32, bf16"),
        ("--bit-depth", "12", "8, 16"),
    ] {
        let (code, _, err) = stylize_video(&["in.mp4", "--style", "s.jpg", option, value]);
        assert_eq!(code, 2, "{option} {value}");
        assert!(err.contains(option) && err.contains(value), "{option} {value}: {err}");
        assert!(err.contains(choices), "{option} {value} should list {choices}: {err}");
    }
    // Aliases still parse: f32 for fp32.
    let (code, _, err) = stylize_video(&["missing-input.mp4", "--style", "s.jpg", "--precision", "f32"]);
    assert_ne!(code, 2, "--precision f32 should parse: {err}");
}

#[test]
fn clap_errors_reach_the_user_whole() {
    // A missing required option: the list of what is missing, the usage line, --help's pointer.
    let (code, _, err) = stylize_video(&["in.mp4"]);
    assert_eq!(code, 2);
    assert!(err.contains("the following required arguments were not provided") && err.contains("--style <STYLE>"), "{err}");
    assert!(err.contains("Usage:") && err.contains("--help"), "{err}");
    // A misspelt option: clap's suggestion.
    let (code, _, err) = stylize_video(&["in.mp4", "--style", "s.jpg", "--iteration", "3"]);
    assert_eq!(code, 2);
    assert!(err.contains("--iteration") && err.contains("tip:") && err.contains("--iterations"), "{err}");
}

#[test]
fn options_given_where_they_do_nothing_are_refused_before_any_work() {
    // None of these inputs is read: the refusal comes from the options alone (and the names).
    let cases: [(&[&str], &str); 7] = [
        (&["clip.mp4", "-s", "s.jpg", "--frame-rate", "12"], "--frame-rate is an image sequence's frame rate, and clip.mp4 is a video"),
        (&["clip.mp4", "-s", "s.jpg", "--bit-depth", "16", "-o", "out.mp4"], "--bit-depth is for image-sequence outputs"),
        (&["clip.mp4", "-s", "s.jpg", "--bit-depth", "8"], "--bit-depth is for image-sequence outputs"),
        (&["clip.mp4", "-s", "s.jpg", "--preview", "grid.png", "--segment", "1/2"], "--segment does not apply to --preview"),
        (&["photo.jpg", "-s", "s.jpg", "--max-frames", "3"], "--max-frames is for videos, and photo.jpg is a still image"),
        (&["photo.png", "-s", "s.jpg", "--codec", "prores"], "--codec is for videos"),
        (&["clip.mp4", "-s", "s.jpg", "--codec", "ffv1", "--crf", "3"], "--crf sets H.264's quality"),
    ];
    for (args, message) in cases {
        let (code, _, err) = stylize_video(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.starts_with("stylize-video: error: ") && err.contains(message) && err.lines().count() == 1, "{args:?}: {err}");
    }
    // Counts say what they take, not Rust's "invalid digit found in string".
    for (option, value) in [("--max-frames", "-5"), ("--iterations", "2.5"), ("--temporal-frames", "1,-2"), ("--preview-frames", "x")] {
        let arg = format!("{option}={value}");
        let (code, _, err) = stylize_video(&["clip.mp4", "-s", "s.jpg", &arg]);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains(option) && err.contains("is not a whole number (0, 1, 2…)") && !err.contains("invalid digit"), "{err}");
    }
    // Where they apply, they are taken: a sequence's rate and depth, a batch where one input is
    // a video (the error is then the missing file's, not the option's).
    let (_, _, err) = stylize_video(&["shots/f_%04d.png", "-s", "s.jpg", "--frame-rate", "12", "--bit-depth", "16"]);
    assert!(!err.contains("--frame-rate") && !err.contains("--bit-depth"), "{err}");
    let (_, _, err) = stylize_video(&["photo.jpg", "clip.mp4", "-s", "s.jpg", "--max-frames", "3"]);
    assert!(!err.contains("--max-frames"), "{err}");
}

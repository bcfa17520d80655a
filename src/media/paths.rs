//! What a job reads against what it writes: the tool never writes over a file it reads (an
//! input, a style image, an `--init` image, an input sequence's frames), not even with `-y`.
//! Checked before any work, by identity (the same file after following links, or a file that
//! does not exist yet in the same directory under the same name), so that `-o photo.jpg` on
//! `photo.jpg`, `--report clip.mp4` on `clip.mp4`, or an output pattern that names the input
//! sequence's frames is refused at once with one line.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::media::image_io::directory_of;
use crate::media::sequence::{self, Pattern};

/// A path a job reads or writes, with the option or role that names it in an error
/// (`"the input"`, `"--style"`, `"-o"`, `"--report"`, …).
#[derive(Debug, Clone)]
pub struct Named {
    pub role: &'static str,
    pub path: PathBuf,
}

impl Named {
    pub fn new(role: &'static str, path: impl Into<PathBuf>) -> Self {
        Named { role, path: path.into() }
    }
}

/// Fails, naming both, when something in `writes` is something in `reads`: the same file; an
/// output sequence pattern that matches a file read (an input sequence's frame, say); or an
/// output sequence written into a directory given as an input sequence.
pub fn check_writes_spare_reads(reads: &[Named], writes: &[Named]) -> Result<()> {
    let read_files: Vec<(&Named, PathBuf)> = reads.iter().flat_map(|read| files_read(read).into_iter().map(move |f| (read, f))).collect();
    for write in writes {
        let pattern = Pattern::parse(&write.path);
        for read in reads {
            if let Some(pattern) = &pattern {
                if read.path.is_dir() && same_file(&pattern.frames_directory(), &read.path) {
                    return Err(refusal(write, read, &read.path));
                }
            }
        }
        for (read, file) in &read_files {
            let clash = match &pattern {
                Some(pattern) => {
                    let name = file.file_name().and_then(|n| n.to_str());
                    name.is_some_and(|n| pattern.matches(n)) && same_file(directory_of(file), &pattern.frames_directory())
                }
                None => same_file(&write.path, file),
            };
            if clash {
                return Err(refusal(write, read, file));
            }
        }
    }
    Ok(())
}

fn refusal(write: &Named, read: &Named, file: &Path) -> Error {
    let what = if file == read.path { format!("{} {}", read.role, file.display()) } else { format!("{} ({})", file.display(), read.role) };
    Error::output(&write.path, format!("{} would write over {what}; stylize-video never writes over a file it reads, even with -y", write.role))
}

/// The files a read stands for: a sequence's frames (a pattern or a directory of frames), or
/// the file itself.
fn files_read(read: &Named) -> Vec<PathBuf> {
    if sequence::is_sequence(&read.path) {
        if let Ok(found) = sequence::SequenceInput::find(&read.path) {
            return (found.start_number..found.start_number + found.frames).map(|n| found.pattern.path(n)).collect();
        }
        return Vec::new();
    }
    vec![read.path.clone()]
}

/// Whether `a` and `b` are one file: the same device and inode after following links where
/// both exist; where one does not exist yet, the same name in the same directory.
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => same_identity(&a, &b),
        _ => resolved(a).is_some_and(|a| resolved(b).is_some_and(|b| a == b)),
    }
}

#[cfg(unix)]
fn same_identity(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    (a.dev(), a.ino()) == (b.dev(), b.ino())
}

#[cfg(not(unix))]
fn same_identity(_: &std::fs::Metadata, _: &std::fs::Metadata) -> bool {
    false
}

/// The path with its directory resolved (links followed), for a file that may not exist.
fn resolved(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?;
    Some(std::fs::canonicalize(directory_of(path)).ok()?.join(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("stylize-video-paths-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_write_over_a_read_file_is_refused_by_identity() {
        let dir = scratch("files");
        let (photo, style, out) = (dir.join("photo.jpg"), dir.join("st.jpg"), dir.join("out.png"));
        std::fs::write(&photo, b"x").unwrap();
        std::fs::write(&style, b"y").unwrap();
        let reads = [Named::new("the input", &photo), Named::new("--style", &style)];
        assert!(check_writes_spare_reads(&reads, &[Named::new("-o", &out)]).is_ok());
        let err = check_writes_spare_reads(&reads, &[Named::new("-o", &out), Named::new("--report", &style)]).unwrap_err().to_string();
        assert!(err.contains("--report would write over --style") && err.contains("st.jpg") && err.contains("even with -y"), "{err}");
        // Another spelling of the same file, and a link to it.
        let spelled = dir.join(".").join("photo.jpg");
        assert!(check_writes_spare_reads(&reads, &[Named::new("-o", &spelled)]).is_err());
        #[cfg(unix)]
        {
            let link = dir.join("link.jpg");
            std::os::unix::fs::symlink(&photo, &link).unwrap();
            let err = check_writes_spare_reads(&reads, &[Named::new("-o", &link)]).unwrap_err().to_string();
            assert!(err.contains("the input"), "{err}");
        }
    }

    #[test]
    fn an_output_pattern_that_names_input_frames_is_refused() {
        let dir = scratch("sequence");
        for n in 1..=3 {
            std::fs::write(dir.join(format!("f_{n:04}.png")), b"x").unwrap();
        }
        let input = dir.join("f_%04d.png");
        let reads = [Named::new("the input", &input)];
        let same = dir.join("f_%04d.png");
        let err = check_writes_spare_reads(&reads, &[Named::new("-o", &same)]).unwrap_err().to_string();
        assert!(err.contains("f_0001.png") && err.contains("the input"), "{err}");
        // Other names in the same directory are fine: another prefix, or unpadded numbers
        // (f_1.png is not f_0001.png).
        assert!(check_writes_spare_reads(&reads, &[Named::new("-o", dir.join("g_%04d.png"))]).is_ok());
        assert!(check_writes_spare_reads(&reads, &[Named::new("-o", dir.join("f_%d.png"))]).is_ok());
        assert!(check_writes_spare_reads(&reads, &[Named::new("-o", dir.join("f_%03d.png"))]).is_err(), "f_%03d names f_0001.png");
        // A directory given as the input: nothing is written into it.
        let reads = [Named::new("the input", &dir)];
        let err = check_writes_spare_reads(&reads, &[Named::new("--frames-dir", dir.join("frame_%06d.png"))]).unwrap_err().to_string();
        assert!(err.contains("--frames-dir"), "{err}");
        let elsewhere = scratch("sequence-out");
        assert!(check_writes_spare_reads(&reads, &[Named::new("-o", elsewhere.join("f_%04d.png"))]).is_ok());
    }
}

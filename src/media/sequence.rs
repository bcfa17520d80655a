//! Numbered image sequences, the compositor's form of a clip, in and out.
//!
//! Names follow FFmpeg's image2 patterns: `shots/f_%04d.png` is `f_0001.png`, `f_0002.png`, …
//! (`%d` unpadded, `%%` a literal percent sign). In, a pattern or a directory of numbered
//! frames is resolved to the pattern, its first number and its frame count ([`SequenceInput`]),
//! and FFmpeg's image2 demuxer reads it (PNG, TIFF, JPEG, DPX…) at a stated frame rate. Out,
//! [`SequenceWriter`] writes 8- or 16-bit PNG or TIFF frames numbered as the input's were,
//! under temporary names first and renamed into place by `finish`, so no partial sequence ever
//! carries the output's names.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::media::image_io::{check_writable_destination, temporary_sibling, FinishedFrame};

/// Image extensions recognised in a directory of frames.
const FRAME_EXTENSIONS: &[&str] = &["png", "tif", "tiff", "jpg", "jpeg", "dpx", "exr", "bmp"];

/// A file name pattern with one frame-number field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pattern {
    /// The pattern as given, e.g. `out/frame_%06d.png`.
    pub text: String,
    /// The directory of the frames (empty: the current one).
    #[serde(skip)]
    directory: PathBuf,
    /// File-name text before and after the number field (`%%` already made `%`).
    prefix: String,
    suffix: String,
    /// Minimum digits (`%04d`: 4; `%d`: 0).
    width: usize,
}

impl Pattern {
    /// The pattern in `path`'s file name, if it has exactly one number field (`%d`, `%0Nd`, N at
    /// most 20) and no other `%` conversion.
    pub fn parse(path: &Path) -> Option<Pattern> {
        let name = path.file_name()?.to_str()?;
        let mut parts = (String::new(), String::new());
        let mut width = None;
        let mut chars = name.chars().peekable();
        while let Some(c) = chars.next() {
            let part = if width.is_none() { &mut parts.0 } else { &mut parts.1 };
            if c != '%' {
                part.push(c);
                continue;
            }
            if chars.peek() == Some(&'%') {
                chars.next();
                part.push('%');
                continue;
            }
            let mut digits = String::new();
            while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                digits.push(*d);
                chars.next();
            }
            if chars.next() != Some('d') || width.is_some() {
                return None;
            }
            // A frame number has at most 20 digits; a wider field is no pattern of ours.
            let digits = if digits.is_empty() { 0 } else { digits.parse().ok().filter(|&w: &usize| w <= 20)? };
            width = Some(digits);
        }
        Some(Pattern {
            text: path.to_str()?.to_string(),
            directory: path.parent().map(Path::to_path_buf).unwrap_or_default(),
            prefix: parts.0,
            suffix: parts.1,
            width: width?,
        })
    }

    /// The path of frame `number`.
    pub fn path(&self, number: u64) -> PathBuf {
        self.directory.join(format!("{}{:0width$}{}", self.prefix, number, self.suffix, width = self.width))
    }

    /// The frame number of a file name, if it is one of this pattern's (padded patterns match
    /// their width or more digits, unpadded ones no leading zeros).
    fn number_of(&self, file_name: &str) -> Option<u64> {
        let digits = file_name.strip_prefix(&self.prefix)?.strip_suffix(&self.suffix)?;
        let all_digits = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
        let canonical = if self.width > 0 { digits.len() >= self.width } else { digits == "0" || !digits.starts_with('0') };
        if all_digits && canonical { digits.parse().ok() } else { None }
    }

    /// Whether `file_name` is one of this pattern's frames.
    pub fn matches(&self, file_name: &str) -> bool {
        self.number_of(file_name).is_some()
    }

    /// The directory the frames are in (`.` for the current one).
    pub fn frames_directory(&self) -> PathBuf {
        if self.directory.as_os_str().is_empty() { PathBuf::from(".") } else { self.directory.clone() }
    }

    /// The lowercase extension of the frames.
    pub fn extension(&self) -> String {
        self.suffix.rsplit_once('.').map(|(_, e)| e.to_lowercase()).unwrap_or_default()
    }
}

/// Whether `path` names an image sequence: a pattern, or a directory.
pub fn is_sequence(path: &Path) -> bool {
    Pattern::parse(path).is_some() || path.is_dir()
}

/// The default output of a sequence input: the same frame names in a sibling directory named
/// `<directory>-stylized` (`shots/f_%04d.png` → `shots-stylized/f_%04d.png`); `None` for
/// anything else.
pub fn default_output(input: &Path) -> Option<PathBuf> {
    let (directory, name) = if input.is_dir() {
        let pattern = pattern_in_directory(input).ok()?;
        (input.to_path_buf(), Path::new(&pattern.text).file_name()?.to_os_string())
    } else {
        Pattern::parse(input)?;
        let parent = input.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        (parent.to_path_buf(), input.file_name()?.to_os_string())
    };
    let directory = std::fs::canonicalize(&directory).unwrap_or(directory);
    let base = directory.file_name()?.to_string_lossy().into_owned();
    Some(directory.with_file_name(format!("{base}-stylized")).join(name))
}

/// A frame rate as `24`, `23.976` (the NTSC rates 23.976, 29.97, 59.94 as their exact
/// fractions) or `24000/1001`.
pub fn parse_rate(text: &str) -> std::result::Result<(i32, i32), String> {
    let bad = || format!("'{text}' is not a frame rate (like 24, 23.976 or 30000/1001)");
    let rate = if let Some((n, d)) = text.split_once('/') {
        (n.trim().parse::<i32>().map_err(|_| bad())?, d.trim().parse::<i32>().map_err(|_| bad())?)
    } else {
        let value: f64 = text.trim().parse().map_err(|_| bad())?;
        match [23.976, 29.97, 47.952, 59.94, 119.88].iter().position(|ntsc| (value - ntsc).abs() < 0.005) {
            Some(_) => (((value * 1.001).round() as i32) * 1000, 1001),
            None if (value - value.round()).abs() < 1e-9 => (value.round() as i32, 1),
            None => ((value * 1000.0).round() as i32, 1000),
        }
    };
    if rate.0 <= 0 || rate.1 <= 0 || rate.0 as f64 / rate.1 as f64 > 1000.0 {
        return Err(bad());
    }
    Ok(rate)
}

/// An input sequence as found on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SequenceInput {
    pub pattern: Pattern,
    /// Number of the first frame (FFmpeg's `-start_number`).
    pub start_number: u64,
    /// Frames from the first on, without gaps.
    pub frames: u64,
}

impl SequenceInput {
    /// Resolves a pattern, or a directory holding one numbered sequence, to its frames on disk.
    pub fn find(path: &Path) -> Result<SequenceInput> {
        let pattern = if path.is_dir() {
            pattern_in_directory(path)?
        } else {
            Pattern::parse(path).ok_or_else(|| Error::input(path, "is not an image sequence pattern"))?
        };
        let directory = pattern.frames_directory();
        let entries = std::fs::read_dir(&directory)
            .map_err(|e| Error::input(path, format!("cannot list {}: {e}", directory.display())))?;
        let mut numbers: Vec<u64> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| pattern.number_of(e.file_name().to_str()?))
            .collect();
        numbers.sort_unstable();
        let Some(&start_number) = numbers.first() else {
            return Err(Error::input(path, "no frames match this pattern"));
        };
        // The frames must follow on without gaps: FFmpeg's reader (and a comp) would stop at one.
        for (expected, &number) in (start_number..).zip(&numbers) {
            if number != expected {
                return Err(Error::input(
                    path,
                    format!(
                        "frame {expected} ({}) is missing between {} and {number}; a sequence must have no gaps",
                        pattern.path(expected).display(),
                        expected - 1
                    ),
                ));
            }
        }
        Ok(SequenceInput { frames: numbers.len() as u64, start_number, pattern })
    }

    /// Checks, before any work, that every frame is there and readable, and all of one size:
    /// FFmpeg's image reader skips a frame it cannot decode (an empty or cut-short file) and
    /// squashes one of another size, and either way the output would be silently short or
    /// wrong. Reads each frame's header only (PNG, JPEG and TIFF; other formats are checked
    /// for being non-empty).
    pub fn check_frames(&self) -> Result<()> {
        let mut first: Option<(u64, (u32, u32))> = None;
        for number in self.start_number..self.start_number + self.frames {
            let path = self.pattern.path(number);
            let problem = |what: String| Error::input(&path, format!("frame {number} of the sequence {what}; replace it, or move it and the frames after it out of the sequence"));
            let length = std::fs::metadata(&path).map_err(|e| problem(format!("cannot be read ({e})")))?.len();
            if length == 0 {
                return Err(problem("is empty (0 bytes)".into()));
            }
            let Ok(format) = image::ImageFormat::from_path(&path) else { continue };
            if !matches!(format, image::ImageFormat::Png | image::ImageFormat::Jpeg | image::ImageFormat::Tiff) {
                continue;
            }
            let size = image::ImageReader::open(&path)
                .and_then(|r| r.with_guessed_format())
                .map_err(|e| problem(format!("cannot be read ({e})")))?
                .into_dimensions()
                .map_err(|e| problem(format!("is not a readable image ({e})")))?;
            match first {
                None => first = Some((number, size)),
                Some((first_number, first_size)) if first_size != size => {
                    return Err(problem(format!(
                        "is {}×{} while frame {first_number} is {}×{} (a sequence has one frame size)",
                        size.0, size.1, first_size.0, first_size.1
                    )));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}

/// The pattern of the numbered frames in `directory`: the largest group of image files named
/// `<prefix><digits>.<ext>` with one prefix and extension.
fn pattern_in_directory(directory: &Path) -> Result<Pattern> {
    let entries = std::fs::read_dir(directory).map_err(|e| Error::input(directory, format!("cannot list: {e}")))?;
    let mut groups: std::collections::BTreeMap<(String, String), (usize, std::collections::BTreeSet<usize>)> = Default::default();
    for entry in entries.filter_map(|e| e.ok()) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((stem, extension)) = name.rsplit_once('.') else { continue };
        if !FRAME_EXTENSIONS.contains(&extension.to_lowercase().as_str()) {
            continue;
        }
        let digits = stem.chars().rev().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            continue;
        }
        let prefix = &stem[..stem.len() - digits];
        let group = groups.entry((prefix.to_string(), extension.to_string())).or_default();
        group.0 += 1;
        group.1.insert(digits);
    }
    let ((prefix, extension), (_, widths)) = groups
        .into_iter()
        .max_by_key(|(_, (count, _))| *count)
        .ok_or_else(|| Error::input(directory, "holds no numbered image frames (like frame_0001.png)"))?;
    // One width for all: padded names (%04d); several: unpadded numbers (%d).
    let field = if widths.len() == 1 { format!("%0{}d", widths.first().copied().unwrap_or(1)) } else { "%d".to_string() };
    let text = directory.join(format!("{}{field}.{extension}", prefix.replace('%', "%%")));
    Pattern::parse(&text).ok_or_else(|| Error::input(directory, "cannot make a pattern of its frame names"))
}

/// Bits per channel of a written sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default, clap::ValueEnum)]
pub enum BitDepth {
    #[default]
    #[value(name = "8")]
    Eight,
    #[value(name = "16")]
    Sixteen,
}

impl std::str::FromStr for BitDepth {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "8" => Ok(BitDepth::Eight),
            "16" => Ok(BitDepth::Sixteen),
            _ => Err(format!("unknown bit depth '{s}' (expected 8 or 16)")),
        }
    }
}

/// Checks that `output` is a sequence pattern of a format that can hold `depth`.
pub fn check_output(output: &Path, depth: BitDepth) -> Result<Pattern> {
    let pattern = Pattern::parse(output).ok_or_else(|| Error::output(output, "is not an image sequence pattern (like out/frame_%06d.png)"))?;
    match (pattern.extension().as_str(), depth) {
        ("png" | "tif" | "tiff", _) | ("jpg" | "jpeg", BitDepth::Eight) => Ok(pattern),
        #[cfg(feature = "media")]
        ("exr", _) => Ok(pattern),
        ("jpg" | "jpeg", BitDepth::Sixteen) => Err(Error::output(output, "JPEG frames are 8-bit only (use .png or .tif for 16 bits)")),
        (ext, _) => Err(Error::output(output, format!("an image sequence is written as .png, .tif, .exr or .jpg frames, not .{ext}"))),
    }
}

/// Writes frames as a numbered sequence: into a hidden temporary directory beside the frames
/// while running, renamed into place by [`SequenceWriter::finish`]; dropped unfinished, it
/// removes the temporary directory.
pub struct SequenceWriter {
    pattern: Pattern,
    depth: BitDepth,
    temporary: PathBuf,
    /// (staged, final) paths of the frames written.
    written: Vec<(PathBuf, PathBuf)>,
    first_number: Option<u64>,
    last_number: Option<u64>,
    size: Option<(u32, u32)>,
    /// Whether frames were written with their alpha.
    alpha: bool,
    finished: bool,
}

/// What a finished sequence holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WrittenSequence {
    pub pattern: String,
    pub first_number: u64,
    pub frames: u64,
    pub width: u32,
    pub height: u32,
    pub bits: u32,
    /// Whether the frames carry the source's alpha (RGBA).
    pub alpha: bool,
    /// Frames of an earlier sequence under the same names that this one does not have
    /// (numbered beyond it, say), removed: the output is this run's sequence alone.
    pub stale_removed: u64,
}

impl SequenceWriter {
    /// Checks the pattern, its format and the destination; nothing is written yet. The frames
    /// will be numbered from `first_number`.
    pub fn create(output: &Path, depth: BitDepth) -> Result<SequenceWriter> {
        let pattern = check_output(output, depth)?;
        let directory = pattern.frames_directory();
        std::fs::create_dir_all(&directory)
            .map_err(|e| Error::output(output, format!("cannot create directory {}: {e}", directory.display())))?;
        check_writable_destination(&pattern.path(0))?;
        let temporary = temporary_sibling(output);
        std::fs::create_dir_all(&temporary)
            .map_err(|e| Error::output(output, format!("cannot create {}: {e}", temporary.display())))?;
        Ok(SequenceWriter {
            pattern,
            depth,
            temporary,
            written: Vec::new(),
            first_number: None,
            last_number: None,
            size: None,
            alpha: false,
            finished: false,
        })
    }

    /// Writes frame `number` (into the temporary directory); numbers must increase.
    pub fn write_frame(&mut self, image: &FinishedFrame, number: u64) -> Result<()> {
        if self.last_number.is_some_and(|last| number <= last) {
            return Err(Error::output(Path::new(&self.pattern.text), format!("frame numbers must increase (got {number})")));
        }
        let destination = self.pattern.path(number);
        let staged = self.temporary.join(destination.file_name().unwrap_or_default());
        #[cfg(feature = "media")]
        if self.pattern.extension() == "exr" {
            // Scene-linear half floats: the painting decoded from sRGB, what the source held
            // outside 0..1 added back, premultiplied by its alpha.
            let planes = crate::media::video::linear::to_linear(&image.to_rgb16(), image.beyond.as_ref(), image.alpha.as_ref());
            let bytes = crate::media::video::linear::encode_exr(&planes, image.rgb8.dimensions())
                .map_err(|e| Error::output(&destination, format!("cannot write frame {number}: {e}")))?;
            std::fs::write(&staged, bytes).map_err(|e| Error::output(&destination, format!("cannot write frame {number}: {e}")))?;
            self.alpha |= image.alpha.is_some();
            self.staged(staged, destination, image.rgb8.dimensions(), number);
            return Ok(());
        }
        let format = match self.pattern.extension().as_str() {
            "tif" | "tiff" => image::ImageFormat::Tiff,
            "jpg" | "jpeg" => image::ImageFormat::Jpeg,
            _ => image::ImageFormat::Png,
        };
        // The source's alpha goes with the frame where the format holds it (PNG, TIFF).
        let alpha = image.alpha.is_some() && format != image::ImageFormat::Jpeg;
        let result = match (self.depth, alpha) {
            (BitDepth::Eight, false) => image.rgb8.save_with_format(&staged, format),
            (BitDepth::Sixteen, false) => image.to_rgb16().save_with_format(&staged, format),
            (BitDepth::Eight, true) => image.rgba8().expect("has alpha").save_with_format(&staged, format),
            (BitDepth::Sixteen, true) => image.rgba16().expect("has alpha").save_with_format(&staged, format),
        };
        if alpha {
            self.alpha = true;
        }
        result.map_err(|e| Error::output(&destination, format!("cannot write frame {number}: {e}")))?;
        self.staged(staged, destination, image.rgb8.dimensions(), number);
        Ok(())
    }

    /// Records a frame written to `staged`, to be moved to `destination`.
    fn staged(&mut self, staged: PathBuf, destination: PathBuf, size: (u32, u32), number: u64) {
        self.size.get_or_insert(size);
        self.first_number.get_or_insert(number);
        self.last_number = Some(number);
        self.written.push((staged, destination));
    }

    /// Moves every frame into place and removes the temporary directory.
    pub fn finish(mut self) -> Result<WrittenSequence> {
        let (width, height) = self.size.ok_or_else(|| Error::output(Path::new(&self.pattern.text), "no frames were given to write"))?;
        for (staged, destination) in &self.written {
            std::fs::rename(staged, destination)
                .map_err(|e| Error::output(destination, format!("cannot move the finished frame into place: {e}")))?;
        }
        let _ = std::fs::remove_dir_all(&self.temporary);
        self.finished = true;
        let stale_removed = self.remove_stale_frames()?;
        Ok(WrittenSequence {
            pattern: self.pattern.text.clone(),
            first_number: self.first_number.unwrap_or_default(),
            frames: self.written.len() as u64,
            width,
            height,
            bits: match (self.pattern.extension().as_str(), self.depth) {
                ("exr", _) => 16,
                (_, BitDepth::Sixteen) => 16,
                _ => 8,
            },
            alpha: self.alpha,
            stale_removed,
        })
    }

    /// Removes the pattern's frames that this sequence did not write: what an earlier, longer
    /// sequence under the same names left (the run replaced it, with -y). The job checked
    /// before any work that the pattern names no file it reads.
    fn remove_stale_frames(&self) -> Result<u64> {
        let directory = self.pattern.frames_directory();
        let entries = std::fs::read_dir(&directory).map_err(|e| Error::output(&directory, format!("cannot list: {e}")))?;
        let written: std::collections::HashSet<&std::ffi::OsStr> =
            self.written.iter().filter_map(|(_, destination)| destination.file_name()).collect();
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let stale = name.to_str().is_some_and(|n| self.pattern.matches(n)) && !written.contains(name.as_os_str());
            if stale && entry.file_type().is_ok_and(|t| t.is_file()) {
                std::fs::remove_file(entry.path())
                    .map_err(|e| Error::output(entry.path(), format!("cannot remove a frame of the earlier sequence: {e}")))?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

impl Drop for SequenceWriter {
    fn drop(&mut self) {
        if !self.finished {
            let _ = std::fs::remove_dir_all(&self.temporary);
        }
    }
}

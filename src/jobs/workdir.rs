//! The work directory beside a video's output (`<output>.partial/`): every finished stylized
//! frame is kept there losslessly (PNG) with its record, together with the settings that made
//! it, so a run that was interrupted — Ctrl-C, `kill -9`, a power cut — resumes after the
//! last finished frame instead of recomputing what the user already paid for.
//!
//! A frame counts as finished once its record (`frame_NNNNNN.json`) exists; the record is
//! written after the image, both through a temporary name, an fsync and a rename (and an fsync
//! of the directory), and the record holds the image file's CRC-32. A frame whose record or
//! image does not read back whole, or whose image does not match its record's checksum (what
//! a power cut or a full disk can leave), is [`Finished::Damaged`]: the run recomputes it
//! instead of failing.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::jobs::progress::FrameRecord;
use crate::media::image_io::{self, Alpha16, FinishedFrame, Rgb32FImage};

/// The on-disk record of a finished frame: the report's record and the image's checksum.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredRecord {
    #[serde(flatten)]
    record: FrameRecord,
    /// CRC-32 of the image file's bytes (none in records of older runs: not checked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    image_crc32: Option<u32>,
}

/// What the work directory holds of one frame.
pub enum Finished {
    /// Nothing: the frame was not finished.
    Missing,
    /// The finished frame and its record.
    Frame(FinishedFrame, Box<FrameRecord>),
    /// Something that does not read back whole; says what.
    Damaged(String),
}

pub struct WorkDir {
    dir: PathBuf,
    /// Held while the run uses the directory: a second run on the same output is refused.
    _lock: std::fs::File,
}

const SETTINGS_FILE: &str = "settings.json";
const LOCK_FILE: &str = "lock";

impl WorkDir {
    /// The work directory that belongs to `output`.
    pub fn path_for(output: &Path) -> PathBuf {
        let mut name = output.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        name.push(".partial");
        output.with_file_name(name)
    }

    /// Opens (or creates) the work directory of `output` for a run whose stylized frames are
    /// determined by `settings`. An existing directory made with other settings is an error
    /// naming what differs, unless `fresh`, which discards it.
    pub fn open(output: &Path, settings: &serde_json::Value, fresh: bool) -> Result<WorkDir> {
        Self::open_dir(&Self::path_for(output), settings, fresh)
    }

    /// [`WorkDir::open`] for a directory named outright (a segment's, inside the output's).
    pub fn open_dir(dir: &Path, settings: &serde_json::Value, fresh: bool) -> Result<WorkDir> {
        let dir = dir.to_path_buf();
        let settings_path = dir.join(SETTINGS_FILE);
        let (text, settings) = as_read_back(settings, &settings_path)?;
        let settings = &settings;
        if dir.exists() && !dir.is_dir() {
            return Err(Error::output(&dir, "is a file, not a work directory; move it out of the way (it is not deleted, even with --fresh)"));
        }
        // Another run on the same output holds the lock: say so at once, touch nothing.
        let lock = if dir.exists() { Some(Self::lock(&dir)?) } else { None };
        if dir.exists() && !fresh && compare_settings(&dir, settings)? == Kept::Matching {
            let lock = lock.expect("taken: the directory exists");
            return Ok(WorkDir { dir, _lock: lock });
        }
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| Error::output(&dir, format!("cannot remove: {e}")))?;
        }
        drop(lock);
        std::fs::create_dir_all(&dir).map_err(|e| Error::output(&dir, format!("cannot create: {e}")))?;
        let lock = Self::lock(&dir)?;
        image_io::write_atomically(&settings_path, |tmp| std::fs::write(tmp, text).map_err(|e| format!("cannot write: {e}")))?;
        Ok(WorkDir { dir, _lock: lock })
    }

    /// Number of consecutive finished frames in the work directory `dir` made with `settings`
    /// (0 when there is none), read without taking it: another process may be running it (a
    /// segment counting the others' progress).
    pub fn finished_in(dir: &Path, settings: &serde_json::Value) -> Result<u64> {
        let (_, settings) = as_read_back(settings, dir)?;
        if !dir.is_dir() || compare_settings(dir, &settings)? == Kept::Absent {
            return Ok(0);
        }
        Ok(finished_frames_in(dir, 0))
    }

    /// The settings in which the work directory `dir` differs from `settings` (empty when it
    /// matches, or holds nothing; `["settings.json"]` when its settings do not read back).
    pub fn differing_settings(dir: &Path, settings: &serde_json::Value) -> Result<Vec<String>> {
        let (_, settings) = as_read_back(settings, dir)?;
        if !dir.is_dir() {
            return Ok(Vec::new());
        }
        Ok(match kept_settings(dir) {
            Some(existing) => differing_keys(&existing, &settings),
            None if holds_more_than_the_lock(dir) => vec![SETTINGS_FILE.to_string()],
            None => Vec::new(),
        })
    }

    /// Takes the directory's lock (an flock'd file, released when the process ends, even by
    /// kill -9), or says that another run holds it.
    fn lock(dir: &Path) -> Result<std::fs::File> {
        let path = dir.join(LOCK_FILE);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::output(&path, format!("cannot open the work directory's lock: {e}")))?;
        match file.try_lock() {
            Ok(()) => Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => Err(Error::output(
                dir,
                "another stylize-video run is writing this output (it holds this work directory); wait for it to end, or stop it",
            )),
            Err(std::fs::TryLockError::Error(e)) => Err(Error::output(&path, format!("cannot lock: {e}"))),
        }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn image_path(&self, index: u64) -> PathBuf {
        self.dir.join(format!("frame_{:06}.png", index + 1))
    }

    fn record_path(&self, index: u64) -> PathBuf {
        record_path_in(&self.dir, index)
    }

    /// Number of consecutive finished frames from the first.
    pub fn finished_count(&self) -> u64 {
        finished_frames_in(&self.dir, 0)
    }

    /// What an earlier run left of frame `index`.
    pub fn load(&self, index: u64) -> Finished {
        let (record_path, image_path) = (self.record_path(index), self.image_path(index));
        if !record_path.is_file() {
            return Finished::Missing;
        }
        let name = |path: &Path| path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let record = match std::fs::read(&record_path) {
            Ok(bytes) => bytes,
            Err(e) => return Finished::Damaged(format!("{}: not a readable frame record ({e})", name(&record_path))),
        };
        let image = match std::fs::read(&image_path) {
            Ok(bytes) => bytes,
            Err(e) => return Finished::Damaged(format!("{}: {e}", name(&image_path))),
        };
        match read_finished(&record, &image) {
            Ok((image, record)) => Finished::Frame(image, Box::new(record)),
            Err(Damage::Record(e)) => Finished::Damaged(format!("{}: not a readable frame record ({e})", name(&record_path))),
            Err(Damage::Image(e)) => Finished::Damaged(format!("{}: {e}", name(&image_path))),
        }
    }

    /// Keeps a finished frame (16-bit PNG when it is deep): the image first, then its record
    /// with the image's checksum (which marks it finished).
    pub fn save(&self, image: &FinishedFrame, record: &FrameRecord) -> Result<()> {
        let image_path = self.image_path(record.index);
        let bytes = image_io::encode_finished(image).map_err(|e| Error::output(&image_path, format!("cannot encode image: {e}")))?;
        image_io::write_atomically(&image_path, |tmp| std::fs::write(tmp, &bytes).map_err(|e| format!("cannot write image: {e}")))?;
        let stored = StoredRecord { record: record.clone(), image_crc32: Some(crc32fast::hash(&bytes)) };
        let record_path = self.record_path(record.index);
        let text = serde_json::to_string_pretty(&stored).map_err(|e| Error::output(&record_path, e))?;
        image_io::write_atomically(&record_path, |tmp| std::fs::write(tmp, text).map_err(|e| format!("cannot write: {e}")))
    }

    /// Keeps input frame `index` at the processing size, for the passes after the first
    /// (`--passes`, which read the clip again in both directions). Every run writes them anew
    /// as its first pass decodes the clip, so one that does not read back is rewritten.
    pub fn save_input(&self, index: u64, image: &image::RgbImage) -> Result<()> {
        image_io::save_rgb(image, &self.input_path(index))
    }

    /// Input frame `index` as [`WorkDir::save_input`] kept it.
    pub fn load_input(&self, index: u64) -> Result<image::RgbImage> {
        let path = self.input_path(index);
        image::open(&path)
            .map(|image| image.into_rgb8())
            .map_err(|e| Error::output(&path, format!("the kept input frame does not read back ({e}); run the same command again to rewrite it")))
    }

    /// Keeps frame `index`'s alpha (a 16-bit PNG) for what writes the video later: the passes
    /// after the first, a segments' assembly.
    pub fn save_alpha(&self, index: u64, alpha: &Alpha16) -> Result<()> {
        save_png(&self.alpha_path(index), alpha)
    }

    /// Frame `index`'s alpha as [`WorkDir::save_alpha`] kept it; none if it kept none.
    pub fn load_alpha(&self, index: u64) -> Result<Option<Alpha16>> {
        load_png(&self.alpha_path(index), "alpha", image::DynamicImage::into_luma16)
    }

    /// Keeps what frame `index`'s scene-linear source held outside 0..1 (raw little-endian f32
    /// after the width and height) for what writes the video later.
    pub fn save_beyond(&self, index: u64, beyond: &Rgb32FImage) -> Result<()> {
        let path = self.beyond_path(index);
        let mut bytes = Vec::with_capacity(8 + 4 * beyond.len());
        bytes.extend_from_slice(&beyond.width().to_le_bytes());
        bytes.extend_from_slice(&beyond.height().to_le_bytes());
        bytes.extend(beyond.as_raw().iter().flat_map(|v| v.to_le_bytes()));
        image_io::write_atomically(&path, |tmp| std::fs::write(tmp, &bytes).map_err(|e| format!("cannot write: {e}")))
    }

    /// What [`WorkDir::save_beyond`] kept for frame `index`; none if it kept nothing.
    pub fn load_beyond(&self, index: u64) -> Result<Option<Rgb32FImage>> {
        let path = self.beyond_path(index);
        if !path.exists() {
            return Ok(None);
        }
        let damaged = || Error::output(&path, "the kept out-of-range values do not read back; run the same command again to rewrite them");
        let bytes = std::fs::read(&path).map_err(|_| damaged())?;
        let word = |at: usize| bytes.get(at..at + 4).map(|b| [b[0], b[1], b[2], b[3]]);
        let (Some(w), Some(h)) = (word(0), word(4)) else { return Err(damaged()) };
        let values: Vec<f32> = bytes[8..].chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        Rgb32FImage::from_raw(u32::from_le_bytes(w), u32::from_le_bytes(h), values).map(Some).ok_or_else(damaged)
    }

    /// Keeps frame `index`'s matte (an 8-bit grey PNG) for the passes after the first.
    pub fn save_matte(&self, index: u64, matte: &image::GrayImage) -> Result<()> {
        save_png(&self.matte_path(index), matte)
    }

    /// Frame `index`'s matte as [`WorkDir::save_matte`] kept it; none if it kept none.
    pub fn load_matte(&self, index: u64) -> Result<Option<image::GrayImage>> {
        load_png(&self.matte_path(index), "matte", image::DynamicImage::into_luma8)
    }

    fn matte_path(&self, index: u64) -> PathBuf {
        self.dir.join(format!("matte_{:06}.png", index + 1))
    }

    fn beyond_path(&self, index: u64) -> PathBuf {
        self.dir.join(format!("beyond_{:06}.f32", index + 1))
    }

    fn alpha_path(&self, index: u64) -> PathBuf {
        self.dir.join(format!("alpha_{:06}.png", index + 1))
    }

    fn input_path(&self, index: u64) -> PathBuf {
        self.dir.join(format!("input_{:06}.png", index + 1))
    }

    /// The work directory of pass `pass` (2, 3, … of `--passes`) inside this one, for a clip of
    /// `frames` frames painted with `settings` (it goes when this one is removed or discarded).
    /// A pass's frames depend on the whole clip (a backward pass starts from its last frame): one
    /// kept for another length (a rerun with another `--max-frames`) is discarded, not taken.
    pub fn pass(&self, pass: usize, settings: &serde_json::Value, frames: u64) -> Result<WorkDir> {
        let dir = self.dir.join(format!("pass-{pass}"));
        let mut settings = settings.clone();
        settings["clip_frames"] = frames.into();
        let stale = !Self::differing_settings(&dir, &settings)?.is_empty();
        Self::open_dir(&dir, &settings, stale)
    }

    /// Number of finished frames from index `first` on (an earlier run's, beyond what a run with
    /// a smaller `--max-frames` used).
    pub fn finished_from(&self, first: u64) -> u64 {
        finished_frames_in(&self.dir, first)
    }

    /// Removes the directory after a successful run.
    pub fn remove(self) -> Result<()> {
        std::fs::remove_dir_all(&self.dir).map_err(|e| Error::output(&self.dir, format!("cannot remove: {e}")))
    }
}

/// Which of a finished frame's two files does not read back, and why.
#[derive(Debug)]
pub enum Damage {
    Record(String),
    Image(String),
}

/// A finished frame from the bytes of its record and of its image (what [`WorkDir::load`]
/// reads), checked against the record's checksum; the record is marked `resumed`.
pub fn read_finished(record: &[u8], image: &[u8]) -> std::result::Result<(FinishedFrame, FrameRecord), Damage> {
    let mut stored: StoredRecord = serde_json::from_slice(record).map_err(|e| Damage::Record(e.to_string()))?;
    if stored.image_crc32.is_some_and(|expected| crc32fast::hash(image) != expected) {
        return Err(Damage::Image("its checksum is not its record's (damaged or replaced)".into()));
    }
    let image = image_io::finished_from_bytes(image).map_err(|e| Damage::Image(format!("not a readable image ({e})")))?;
    stored.record.resumed = true;
    Ok((image, stored.record))
}

/// What an existing work directory holds, as far as its settings go.
#[derive(PartialEq)]
enum Kept {
    /// Frames made with these settings.
    Matching,
    /// Nothing (no settings, and no file but the lock).
    Absent,
}

/// Compares the settings an existing work directory was made with to `settings` (as read
/// back): an error names what differs, or says the settings are unreadable.
fn compare_settings(dir: &Path, settings: &serde_json::Value) -> Result<Kept> {
    match kept_settings(dir) {
        Some(existing) if &existing == settings => Ok(Kept::Matching),
        Some(existing) => Err(Error::Settings(format!(
            "{} holds {} finished frames made with different settings ({}); rerun with --fresh to discard them",
            dir.display(),
            finished_frames_in(dir, 0),
            differing_keys(&existing, settings).join(", ")
        ))),
        None if holds_more_than_the_lock(dir) => {
            Err(Error::Settings(format!(
                "{} exists but its settings.json is missing or unreadable; rerun with --fresh to discard it",
                dir.display()
            )))
        }
        None => Ok(Kept::Absent),
    }
}

/// The settings the work directory `dir` was made with, if they read back.
fn kept_settings(dir: &Path) -> Option<serde_json::Value> {
    std::fs::read_to_string(dir.join(SETTINGS_FILE)).ok().and_then(|t| serde_json::from_str(&t).ok())
}

/// Whether `dir` holds anything but the lock (or cannot be listed).
fn holds_more_than_the_lock(dir: &Path) -> bool {
    dir.read_dir().map(|mut d| d.any(|e| e.map_or(true, |e| e.file_name() != LOCK_FILE))).unwrap_or(true)
}

/// The record of frame `index` (from 0) in the work directory `dir`.
fn record_path_in(dir: &Path, index: u64) -> PathBuf {
    dir.join(format!("frame_{:06}.json", index + 1))
}

/// Consecutive finished frames (records) in `dir` from index `first`.
fn finished_frames_in(dir: &Path, first: u64) -> u64 {
    (first..).take_while(|&i| record_path_in(dir, i).is_file()).count() as u64
}

/// `settings` as pretty JSON and as that text reads back: what a work directory keeps, and what
/// is compared with what it kept (the same text parses to the same numbers, while a float and
/// its parsed text may differ in the last bit).
fn as_read_back(settings: &serde_json::Value, dir: &Path) -> Result<(String, serde_json::Value)> {
    let text = serde_json::to_string_pretty(settings).map_err(|e| Error::output(dir, e))?;
    let read_back = serde_json::from_str(&text).map_err(|e| Error::output(dir, e))?;
    Ok((text, read_back))
}

/// Top-level keys whose values differ between two JSON objects.
fn differing_keys(a: &serde_json::Value, b: &serde_json::Value) -> Vec<String> {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else { return vec!["everything".into()] };
    let mut keys: Vec<String> = a.keys().chain(b.keys()).filter(|k| a.get(*k) != b.get(*k)).cloned().collect();
    keys.sort();
    keys.dedup();
    keys
}


/// Writes a greyscale plane kept beside the frames (a matte, an alpha) as a PNG, atomically.
fn save_png<P>(path: &Path, image: &image::ImageBuffer<P, Vec<P::Subpixel>>) -> Result<()>
where
    P: image::PixelWithColorType,
    [P::Subpixel]: image::EncodableLayout,
{
    image_io::write_atomically(path, |tmp| image.save_with_format(tmp, image::ImageFormat::Png).map_err(|e| format!("cannot write: {e}")))
}

/// A plane [`save_png`] kept (`what` names it in errors), converted; none if none was kept.
fn load_png<T>(path: &Path, what: &str, convert: impl FnOnce(image::DynamicImage) -> T) -> Result<Option<T>> {
    if !path.exists() {
        return Ok(None);
    }
    image::open(path)
        .map(|image| Some(convert(image)))
        .map_err(|e| Error::output(path, format!("the kept {what} does not read back ({e}); run the same command again to rewrite it")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_reads_back_from_its_record_and_image_bytes_or_names_the_damaged_one() {
        let record = r#"{"index": 3, "pts_seconds": 0.12, "iterations": 1, "J": 2.0, "J_content": 1.0, "J_style": 1.0,
            "J_tv": 0.0, "seconds": 0.5"#;
        let frame = FinishedFrame::new(image::RgbImage::from_pixel(3, 2, image::Rgb([10, 20, 30])));
        let image = image_io::encode_finished(&frame).unwrap();
        let crc = crc32fast::hash(&image);
        let with_crc = |crc: u32| format!("{record}, \"image_crc32\": {crc}}}");
        let (read, stored) = read_finished(with_crc(crc).as_bytes(), &image).unwrap();
        assert_eq!((read.rgb8, stored.index, stored.pts_seconds, stored.resumed), (frame.rgb8.clone(), 3, 0.12, true));
        // Records of older runs have no checksum: the image is only decoded.
        assert_eq!(read_finished(format!("{record}}}").as_bytes(), &image).unwrap().1.index, 3);
        let (wrong_crc, no_crc) = (with_crc(crc ^ 1), format!("{record}}}"));
        let cases: [(&[u8], &[u8], &str); 4] = [
            (wrong_crc.as_bytes(), &image, "checksum"),
            (no_crc.as_bytes(), &image[..image.len() / 2], "not a readable image"),
            (record.as_bytes(), &image, "EOF"),
            (b"", b"", "EOF"),
        ];
        for (record, image, why) in cases {
            let damage = match read_finished(record, image) {
                Err(Damage::Record(e) | Damage::Image(e)) => e,
                Ok(_) => panic!("{why}: read back"),
            };
            assert!(damage.contains(why), "{damage}");
        }
        assert!(matches!(read_finished(record.as_bytes(), &image), Err(Damage::Record(_))));
        assert!(matches!(read_finished(wrong_crc.as_bytes(), &image), Err(Damage::Image(_))));
    }

    #[test]
    fn a_second_run_on_the_same_output_is_refused_while_the_first_holds_it() {
        let dir = std::env::temp_dir().join(format!("stylize-video-workdir-lock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let output = dir.join("out.mp4");
        let settings = serde_json::json!({ "size": 64 });
        let first = WorkDir::open(&output, &settings, false).unwrap();
        for fresh in [false, true] {
            let err = WorkDir::open(&output, &settings, fresh).err().expect("refused").to_string();
            assert!(err.contains("another stylize-video run") && err.contains("out.mp4.partial"), "{err}");
        }
        assert!(first.path().join(SETTINGS_FILE).is_file(), "--fresh did not discard the running one's directory");
        drop(first);
        let again = WorkDir::open(&output, &settings, false).unwrap();
        drop(again);
        // A file where the work directory goes is the user's: refused, never deleted.
        let file_output = dir.join("b.mp4");
        std::fs::write(WorkDir::path_for(&file_output), "notes").unwrap();
        let err = WorkDir::open(&file_output, &settings, true).err().expect("refused").to_string();
        assert!(err.contains("is a file") && err.contains("not deleted"), "{err}");
        assert_eq!(std::fs::read_to_string(WorkDir::path_for(&file_output)).unwrap(), "notes");
    }
}

//! FFmpeg's log, captured instead of printed, and counted for the decoder it is about.
//!
//! FFmpeg reports most of what it finds wrong in a file only through `av_log` (a damaged H.264
//! slice is concealed and the frame still comes out). One process-wide callback, installed by
//! [`install`], receives every message; nothing is printed. A message counts when its level is
//! warning or worse and its context (`av_log`'s first argument) belongs to a live [`LogTap`]:
//! - the decoder's `AVCodecContext`, recognised by its class and by the tap's key stored in its
//!   `opaque` field. FFmpeg's frame threads decode with copies of that context (they log from
//!   their own threads with their own pointers) and copy `opaque` into them — at creation
//!   (`av_memdup`) and with every packet (`update_context_from_user`) — so their messages reach
//!   the same tap;
//! - the demuxer's `AVFormatContext` for the decoder's input, by pointer ("Packet corrupt",
//!   truncated-file notices); these concern the whole file, not only the video stream.
//!
//! Messages logged with no context or another one (the demuxer's internal parsers, the probing
//! decoders of `avformat_find_stream_info`, encoders) are dropped: no decoder of ours can own
//! them, and the probing decoders see packets our decoder decodes again anyway.
//!
//! Each `av_log` call is one message. Messages are grouped by kind — the text with its numbers
//! written as `N` ("concealing 120 DC, 120 AC, 120 MV errors in P frame" → "concealing N DC,
//! N AC, N MV errors in P frame") — and counted per kind. The decoder adds its own kinds for what
//! the API returns rather than logs ([`LogTap::note`]).

use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use ffmpeg_next::ffi;

use serde::{Deserialize, Serialize};

/// One kind of problem the decoder met, and how many times ([`super::VideoDecoder::warning_kinds`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecoderWarning {
    /// FFmpeg's message with its numbers written as `N` ("decode_slice_header error",
    /// "concealing N DC, N AC, N MV errors in P frame"), or one of our kinds for the errors the
    /// API returned ("packet rejected by the decoder: Invalid data found when processing input").
    pub message: String,
    pub count: usize,
}

/// Distinct kinds kept per decoder; messages of further kinds are counted under [`OTHER_KINDS`]
/// (a badly damaged file cannot grow the list without bound).
const MAX_KINDS: usize = 64;
const OTHER_KINDS: &str = "other messages (too many kinds to list)";

/// Longest message kept, in bytes (FFmpeg truncates the formatted line to this).
const LINE_BYTES: usize = 1024;

/// The `va_list` argument of an `av_log` callback as the ffmpeg-sys-next bindings declare it:
/// on x86-64 System V, `va_list` is an array of one `__va_list_tag`, passed as a pointer.
#[cfg(all(target_arch = "x86_64", not(windows)))]
type VaList = *mut ffi::__va_list_tag;
#[cfg(not(all(target_arch = "x86_64", not(windows))))]
type VaList = ffi::va_list;

/// Routes FFmpeg's log to [`on_log`] for the rest of the process. Idempotent; called once from
/// `init_ffmpeg`.
pub(crate) fn install() {
    // SAFETY: `on_log` has exactly the signature the binding requires, is thread-safe, never
    // unwinds, and lives for the whole process.
    unsafe { ffi::av_log_set_callback(Some(on_log)) };
}

/// Counts the messages about one decoder while it lives. Create it before the codec context is
/// opened and store [`LogTap::key`] in the context's `opaque`.
pub(crate) struct LogTap {
    id: usize,
}

/// A live tap: its key, its input's format context and what it has counted.
struct Entry {
    id: usize,
    format: usize,
    tally: Tally,
}

/// Live taps. A `Vec`: there are only ever a few decoders at once.
static TAPS: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

/// Keys are never reused, so a message logged late by a closing decoder cannot reach a newer
/// one. They start at 1: a null `opaque` (every context we did not mark) is never a key.
static NEXT_ID: AtomicUsize = AtomicUsize::new(1);

fn taps() -> MutexGuard<'static, Vec<Entry>> {
    // A panic while holding the lock cannot leave the list inconsistent: every update is a
    // single push, remove or counter increment.
    TAPS.lock().unwrap_or_else(PoisonError::into_inner)
}

impl LogTap {
    /// Starts counting the messages of the decoder that will carry [`LogTap::key`] and of the
    /// demuxer `format` (the decoder's input).
    pub(crate) fn new(format: *const ffi::AVFormatContext) -> LogTap {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        taps().push(Entry { id, format: format as usize, tally: Tally::default() });
        LogTap { id }
    }

    /// The value for the decoder's `AVCodecContext.opaque`.
    pub(crate) fn key(&self) -> *mut c_void {
        self.id as *mut c_void
    }

    /// Counts a problem the decoder met otherwise than through the log (an error returned, a
    /// corrupt flag), under the kind `what`.
    pub(crate) fn note(&self, what: &str) {
        record(Source::Tap(self.id), kind_of(what));
    }

    /// Messages and noted problems so far.
    pub(crate) fn total(&self) -> usize {
        taps().iter().find(|e| e.id == self.id).map_or(0, |e| e.tally.total())
    }

    /// Counts per kind, most frequent first (ties in the order first met).
    pub(crate) fn kinds(&self) -> Vec<DecoderWarning> {
        taps().iter().find(|e| e.id == self.id).map_or_else(Vec::new, |e| e.tally.sorted())
    }
}

impl Drop for LogTap {
    fn drop(&mut self) {
        taps().retain(|e| e.id != self.id);
    }
}

/// Counts per kind, in the order first met.
#[derive(Default)]
struct Tally {
    kinds: Vec<DecoderWarning>,
}

impl Tally {
    fn add(&mut self, kind: String) {
        if let Some(known) = self.kinds.iter_mut().find(|k| k.message == kind) {
            known.count += 1;
        } else if self.kinds.len() < MAX_KINDS {
            self.kinds.push(DecoderWarning { message: kind, count: 1 });
        } else if let Some(other) = self.kinds.iter_mut().find(|k| k.message == OTHER_KINDS) {
            other.count += 1;
        } else {
            self.kinds.push(DecoderWarning { message: OTHER_KINDS.to_string(), count: 1 });
        }
    }

    fn total(&self) -> usize {
        self.kinds.iter().map(|k| k.count).sum()
    }

    fn sorted(&self) -> Vec<DecoderWarning> {
        let mut kinds = self.kinds.clone();
        kinds.sort_by_key(|k| std::cmp::Reverse(k.count)); // stable: ties keep the order first met
        kinds
    }
}

/// Whom a message is about.
#[derive(Clone, Copy)]
enum Source {
    /// A codec context marked with this tap's key (or the tap itself, for noted problems).
    Tap(usize),
    /// A demuxer, by the address of its `AVFormatContext`.
    Format(usize),
}

impl Source {
    fn matches(self, entry: &Entry) -> bool {
        match self {
            Source::Tap(id) => entry.id == id,
            Source::Format(address) => entry.format == address,
        }
    }
}

fn is_tapped(source: Source) -> bool {
    taps().iter().any(|e| source.matches(e))
}

fn record(source: Source, kind: String) {
    if kind.is_empty() {
        return;
    }
    if let Some(entry) = taps().iter_mut().find(|e| source.matches(e)) {
        entry.tally.add(kind);
    }
}

/// The `av_log` callback: counts the warnings and errors about tapped decoders, prints nothing.
/// Runs on whatever thread logs, FFmpeg's decoding threads included; it must not unwind.
///
/// # Safety
/// Only FFmpeg calls it, with av_log's arguments: `avcl` null or a pointer to a struct whose
/// first member is a `const AVClass *`, `fmt` null or a NUL-terminated format string, and `vl`
/// the arguments `fmt` describes, not yet consumed.
unsafe extern "C" fn on_log(avcl: *mut c_void, level: c_int, fmt: *const c_char, vl: VaList) {
    if !(0..=ffi::AV_LOG_WARNING).contains(&level) || avcl.is_null() || fmt.is_null() {
        return;
    }
    // SAFETY: av_log's contract: a non-null context points to a struct whose first member is a
    // `const AVClass *`.
    let source = unsafe { source_of(avcl) };
    let Some(source) = source.filter(|s| is_tapped(*s)) else { return };

    let mut line = [0 as c_char; LINE_BYTES];
    let mut print_prefix: c_int = 0; // the text alone, without "[h264 @ 0x…] "
    // SAFETY: `avcl`, `fmt` and `vl` are the ones FFmpeg passed us, consumed once here; `line`
    // is writable for its whole length, which is what we pass, and comes back NUL-terminated.
    let written = unsafe {
        ffi::av_log_format_line2(avcl, level, fmt, vl, line.as_mut_ptr(), LINE_BYTES as c_int, &mut print_prefix)
    };
    if written < 0 {
        return;
    }
    line[LINE_BYTES - 1] = 0; // it NUL-terminates a truncated line already; made certain here
    // SAFETY: `line` holds a NUL-terminated string (the last byte at the latest).
    let text = unsafe { CStr::from_ptr(line.as_ptr()) }.to_string_lossy();
    record(source, kind_of(&text));
}

/// The tap a logging context would belong to, if it is a codec or format context.
///
/// # Safety
/// `avcl` is non-null and points to a struct whose first member is a `const AVClass *`.
unsafe fn source_of(avcl: *mut c_void) -> Option<Source> {
    // SAFETY: by the contract above, `avcl` is non-null and its first member is the class
    // pointer, which is what this reads (a pointer-sized, pointer-aligned load).
    let class = unsafe { *(avcl as *const *const ffi::AVClass) };
    if class.is_null() {
        return None;
    }
    // The class pointers are FFmpeg's own statics: a context with the codec context's class is
    // an AVCodecContext (ours, a frame-thread copy of ours, or someone else's with its own
    // `opaque`, never one of our keys unless we set it).
    // SAFETY: avcodec_get_class takes nothing and returns the address of a static.
    if class == unsafe { ffi::avcodec_get_class() } {
        // SAFETY: only an AVCodecContext carries avcodec's class, so `avcl` points to one (the
        // FFmpeg this links against, whose layout the bindings were generated from); `opaque`
        // is read, not dereferenced.
        let opaque = unsafe { (*(avcl as *const ffi::AVCodecContext)).opaque };
        return (!opaque.is_null()).then_some(Source::Tap(opaque as usize));
    }
    // SAFETY: avformat_get_class takes nothing and returns the address of a static.
    if class == unsafe { ffi::avformat_get_class() } {
        return Some(Source::Format(avcl as usize));
    }
    None
}

/// The kind of a message: trimmed, whitespace collapsed, and every number that stands on its
/// own (decimal, signed, fractional or `0x` hexadecimal) written as `N`. Digits inside words
/// ("h264", "intra4x4", "10bit") are kept.
pub(crate) fn kind_of(message: &str) -> String {
    let chars: Vec<char> = message.split_whitespace().collect::<Vec<_>>().join(" ").chars().collect();
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    let digit_at = |i: usize| chars.get(i).is_some_and(|c| c.is_ascii_digit());
    let mut kind = String::with_capacity(chars.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let starts_word = i == 0 || !is_word(chars[i - 1]);
        let signed = (c == '-' || c == '+') && digit_at(i + 1);
        if !(starts_word && (c.is_ascii_digit() || signed)) {
            kind.push(c);
            i += 1;
            continue;
        }
        let mut end = if signed { i + 1 } else { i };
        if chars[end] == '0'
            && matches!(chars.get(end + 1), Some('x' | 'X'))
            && chars.get(end + 2).is_some_and(|c| c.is_ascii_hexdigit())
        {
            end += 2;
            while chars.get(end).is_some_and(|c| c.is_ascii_hexdigit()) {
                end += 1;
            }
        } else {
            while digit_at(end) {
                end += 1;
            }
            if chars.get(end) == Some(&'.') && digit_at(end + 1) {
                end += 1;
                while digit_at(end) {
                    end += 1;
                }
            }
        }
        if chars.get(end).is_some_and(|c| is_word(*c)) {
            // A word that starts with digits ("4x4", "10bit"): keep it as written.
            kind.extend(&chars[i..end]);
        } else {
            kind.push('N');
        }
        i = end;
    }
    kind
}

#[cfg(test)]
mod tests {
    use super::kind_of;

    #[test]
    fn kinds_write_numbers_as_n_and_keep_words() {
        assert_eq!(
            kind_of("concealing 120 DC, 120 AC, 120 MV errors in P frame\n"),
            "concealing N DC, N AC, N MV errors in P frame"
        );
        assert_eq!(kind_of("decode_slice_header error\n"), "decode_slice_header error");
        assert_eq!(kind_of("error while decoding MB 3 2, bytestream -5"), "error while decoding MB N N, bytestream N");
        assert_eq!(kind_of("Invalid NAL unit size (1234 > 56)."), "Invalid NAL unit size (N > N).");
        assert_eq!(kind_of("stream 0, offset 0x1f3a: partial file"), "stream N, offset N: partial file");
        assert_eq!(kind_of("h264 intra4x4 mode -1 at 4x4, 10bit 2.5 s"), "h264 intra4x4 mode N at 4x4, 10bit N s");
        assert_eq!(kind_of("  \n"), "");
    }
}

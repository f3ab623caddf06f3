//! pcap capture of what a port receives and sends, readable by tcpdump and tshark.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// A capture stops by itself once its file reaches this size, so it cannot fill the disk.
pub const DEFAULT_MAX_BYTES: u64 = 100 << 20;
/// Per-packet record header in the classic pcap format.
const RECORD_HEADER: u64 = 16;
/// Frames longer than this are cut in the file (their full length is still recorded).
const SNAPLEN: u32 = 65_535;
/// LINKTYPE_ETHERNET.
const LINKTYPE_ETHERNET: u32 = 1;

/// The classic pcap file header (microsecond timestamps, host byte order, which every
/// reader detects from the magic number).
fn file_header() -> [u8; 24] {
    let mut h = [0u8; 24];
    h[0..4].copy_from_slice(&0xa1b2_c3d4u32.to_ne_bytes());
    h[4..6].copy_from_slice(&2u16.to_ne_bytes());
    h[6..8].copy_from_slice(&4u16.to_ne_bytes());
    // thiszone and sigfigs stay zero.
    h[16..20].copy_from_slice(&SNAPLEN.to_ne_bytes());
    h[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_ne_bytes());
    h
}

/// One port's capture.
pub struct Capture {
    path: PathBuf,
    writer: BufWriter<File>,
    /// Frames still to record (None: until the size cap or the port goes).
    remaining: Option<u64>,
    bytes: u64,
    max_bytes: u64,
    frames: u64,
}

/// Why a capture stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// It recorded the frames it was asked for.
    Count,
    /// Its file reached the size cap.
    SizeCap,
    /// Writing failed.
    WriteError,
}

impl Capture {
    /// Creates (truncating) `path` and writes the pcap header.
    pub fn create(path: &Path, count: Option<u64>, max_bytes: u64) -> io::Result<Capture> {
        let mut writer = BufWriter::new(File::create(path)?);
        writer.write_all(&file_header())?;
        // A reader (tcpdump -r) may open the file at once: give it the header now.
        writer.flush()?;
        Ok(Capture {
            path: path.to_path_buf(),
            writer,
            remaining: count,
            bytes: 24,
            max_bytes,
            frames: 0,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Records one frame; `Some(reason)` when the capture is complete and should be closed.
    pub fn record(&mut self, frame: &[u8]) -> Option<Stopped> {
        let len = frame.len() as u64;
        if self.bytes + RECORD_HEADER + len > self.max_bytes {
            return Some(Stopped::SizeCap);
        }
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let kept = &frame[..frame.len().min(SNAPLEN as usize)];
        let mut rec = [0u8; RECORD_HEADER as usize];
        rec[0..4].copy_from_slice(&(ts.as_secs() as u32).to_ne_bytes());
        rec[4..8].copy_from_slice(&ts.subsec_micros().to_ne_bytes());
        rec[8..12].copy_from_slice(&(kept.len() as u32).to_ne_bytes());
        rec[12..16].copy_from_slice(&(len as u32).to_ne_bytes());
        if self
            .writer
            .write_all(&rec)
            .and_then(|()| self.writer.write_all(kept))
            .is_err()
        {
            return Some(Stopped::WriteError);
        }
        self.bytes += RECORD_HEADER + kept.len() as u64;
        self.frames += 1;
        if let Some(left) = self.remaining.as_mut() {
            *left = left.saturating_sub(1);
            if *left == 0 {
                return Some(Stopped::Count);
            }
        }
        None
    }

    /// Pushes buffered records to the file (the loop does it every second), so a
    /// capture can be read while it runs.
    pub fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }

    /// Flushes the file; called when the capture ends.
    pub fn finish(mut self) -> io::Result<()> {
        self.writer.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_until_count_or_cap() {
        let dir = std::env::temp_dir().join(format!("uswitch-cap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.pcap");
        let frame = [0x02u8; 60];
        let mut c = Capture::create(&path, Some(2), DEFAULT_MAX_BYTES).unwrap();
        assert_eq!(c.record(&frame), None);
        assert_eq!(c.record(&frame), Some(Stopped::Count));
        c.finish().unwrap();
        let data = std::fs::read(&path).unwrap();
        assert_eq!(data.len(), 24 + 2 * (16 + 60));
        let magic = [data[0], data[1], data[2], data[3]];
        assert!(magic == 0xa1b2c3d4u32.to_le_bytes() || magic == 0xa1b2c3d4u32.to_be_bytes());

        let mut capped = Capture::create(&path, None, 24 + 16 + 60).unwrap();
        assert_eq!(capped.record(&frame), None);
        assert_eq!(capped.record(&frame), Some(Stopped::SizeCap));
        assert_eq!(capped.frames(), 1);
        capped.finish().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! Captures of what a port receives and sends, in pcapng (pcap-file's writer) so that
//! each record says its direction (the Enhanced Packet Block's flags), readable by
//! tcpdump, tshark and Wireshark.
//!
//! A capture goes to a file (created 0600, like the control socket: it holds other
//! people's traffic) or to a FIFO a client reads (`uswitch capture PORT -` streams to its
//! stdout). Neither may stall the data plane: a file is written through a buffer flushed
//! at most every [`FLUSH_EVERY`], a FIFO without blocking, through a bounded buffer whose
//! overflow is counted, not waited for.

use std::borrow::Cow;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::DataLink;

/// A capture stops by itself once it has written this much, so it cannot fill the disk.
pub const DEFAULT_MAX_BYTES: u64 = 100 << 20;
/// Frames longer than this are cut in the file (their full length is still recorded).
const SNAPLEN: usize = 65_535;
/// Records wait in the buffer at most this long, even when the switch goes idle.
pub const FLUSH_EVERY: Duration = Duration::from_millis(200);
/// What a FIFO's reader may fall behind by before records are dropped.
const STREAM_BUFFER: usize = 4 << 20;
/// pcapng EPB flags: inbound and outbound.
const EPB_INBOUND: u32 = 0b01;
const EPB_OUTBOUND: u32 = 0b10;

/// Which way a frame crossed the port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Received from the port's device.
    In,
    /// Written to it.
    Out,
}

/// Why a capture stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// It recorded the frames it was asked for.
    Count,
    /// It reached its size cap.
    SizeCap,
    /// Writing failed (for a stream: its reader went away).
    WriteError,
}

/// Where records go.
enum Sink {
    File(BufWriter<File>),
    /// A FIFO written without blocking: `pending` holds what its reader has not taken.
    Stream {
        fifo: File,
        pending: Vec<u8>,
    },
}

impl Write for Sink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self {
            Sink::File(w) => w.write(data),
            Sink::Stream { pending, .. } => {
                pending.extend_from_slice(data);
                Ok(data.len())
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::File(w) => w.flush(),
            Sink::Stream { fifo, pending } => {
                let mut done = 0;
                while done < pending.len() {
                    match fifo.write(&pending[done..]) {
                        Ok(0) => break,
                        Ok(n) => done += n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e),
                    }
                }
                pending.drain(..done);
                Ok(())
            }
        }
    }
}

impl Sink {
    /// Whether `n` more bytes fit without waiting for a reader.
    fn has_room(&self, n: usize) -> bool {
        match self {
            Sink::File(_) => true,
            Sink::Stream { pending, .. } => pending.len() + n <= STREAM_BUFFER,
        }
    }

    fn is_dirty(&self) -> bool {
        match self {
            Sink::File(w) => !w.buffer().is_empty(),
            Sink::Stream { pending, .. } => !pending.is_empty(),
        }
    }
}

/// One port's capture.
pub struct Capture {
    path: PathBuf,
    writer: PcapNgWriter<Sink>,
    /// Frames still to record (None: until the size cap or the port goes).
    remaining: Option<u64>,
    bytes: u64,
    max_bytes: u64,
    frames: u64,
    /// Records a stream's reader was too slow for.
    dropped: u64,
    /// Since when records wait unwritten in the buffer.
    dirty_since: Option<Instant>,
}

impl Capture {
    /// Starts a capture into `path`: a FIFO is written as a stream (its reader must have
    /// it open); anything else is created, or truncated, with mode 0600.
    pub fn create(path: &Path, count: Option<u64>, max_bytes: u64) -> io::Result<Capture> {
        let fifo = std::fs::metadata(path).is_ok_and(|m| m.file_type().is_fifo());
        let sink = if fifo {
            let fifo = OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
                .open(path)?;
            Sink::Stream {
                fifo,
                pending: Vec::new(),
            }
        } else {
            let file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(path)?;
            // An existing file keeps its mode through open(2): make it private too.
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            Sink::File(BufWriter::new(file))
        };
        let mut writer = PcapNgWriter::new(sink).map_err(io::Error::other)?;
        // pcap-file writes timestamps in nanoseconds: say so (the default is microseconds).
        let idb = InterfaceDescriptionBlock {
            linktype: DataLink::ETHERNET,
            snaplen: SNAPLEN as u32,
            options: vec![InterfaceDescriptionOption::IfTsResol(9)],
        };
        writer.write_pcapng_block(idb).map_err(io::Error::other)?;
        // A reader (tcpdump -r, tshark -r -) may open it at once: give it the headers now.
        writer.get_mut().flush()?;
        Ok(Capture {
            path: path.to_path_buf(),
            writer,
            remaining: count,
            bytes: 0,
            max_bytes,
            frames: 0,
            dropped: 0,
            dirty_since: None,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Records a stream's reader was too slow for.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Records one frame; `Some(reason)` when the capture is complete and should be closed.
    pub fn record(&mut self, frame: &[u8], direction: Direction) -> Option<Stopped> {
        let kept = &frame[..frame.len().min(SNAPLEN)];
        // Block header and trailer, timestamp and lengths, the data padded to 4 bytes,
        // and the flags option with the end-of-options marker.
        let block = 28 + kept.len().next_multiple_of(4) + 12 + 4;
        if self.bytes + block as u64 > self.max_bytes {
            return Some(Stopped::SizeCap);
        }
        if !self.writer.get_ref().has_room(block) {
            self.dropped += 1;
            return None;
        }
        let epb = EnhancedPacketBlock {
            interface_id: 0,
            timestamp: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default(),
            original_len: frame.len() as u32,
            data: Cow::Borrowed(kept),
            options: vec![EnhancedPacketOption::Flags(match direction {
                Direction::In => EPB_INBOUND,
                Direction::Out => EPB_OUTBOUND,
            })],
        };
        if self.writer.write_pcapng_block(epb).is_err() {
            return Some(Stopped::WriteError);
        }
        self.dirty_since.get_or_insert_with(Instant::now);
        self.bytes += block as u64;
        self.frames += 1;
        if let Some(left) = self.remaining.as_mut() {
            *left = left.saturating_sub(1);
            if *left == 0 {
                return Some(Stopped::Count);
            }
        }
        None
    }

    /// When buffered records must be written by (None: nothing waits).
    pub fn flush_due(&self) -> Option<Instant> {
        self.dirty_since.map(|t| t + FLUSH_EVERY)
    }

    /// Pushes buffered records out, so the capture can be read while it runs.
    pub fn flush(&mut self) -> io::Result<()> {
        self.writer.get_mut().flush()?;
        self.dirty_since = if self.writer.get_ref().is_dirty() {
            // A stream's reader is behind: try again soon.
            Some(Instant::now())
        } else {
            None
        };
        Ok(())
    }

    /// Writes what is buffered; called when the capture ends.
    pub fn finish(mut self) -> io::Result<()> {
        self.writer.get_mut().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcap_file::pcapng::{Block, PcapNgReader};

    fn read(path: &Path) -> Vec<(Vec<u8>, u32)> {
        let mut reader = PcapNgReader::new(File::open(path).unwrap()).unwrap();
        let mut out = Vec::new();
        while let Some(block) = reader.next_block() {
            if let Block::EnhancedPacket(epb) = block.unwrap() {
                let flags = epb
                    .options
                    .iter()
                    .find_map(|o| match o {
                        EnhancedPacketOption::Flags(f) => Some(*f),
                        _ => None,
                    })
                    .unwrap_or(0);
                out.push((epb.data.into_owned(), flags));
            }
        }
        out
    }

    #[test]
    fn records_until_count_or_cap_with_directions() {
        let dir = std::env::temp_dir().join(format!("uswitch-cap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.pcapng");
        let frame = [0x02u8; 60];
        let mut c = Capture::create(&path, Some(2), DEFAULT_MAX_BYTES).unwrap();
        assert_eq!(c.record(&frame, Direction::In), None);
        assert_eq!(c.record(&frame[..59], Direction::Out), Some(Stopped::Count));
        c.finish().unwrap();
        let recs = read(&path);
        assert_eq!(recs.len(), 2);
        assert_eq!((recs[0].0.len(), recs[0].1), (60, EPB_INBOUND));
        assert_eq!((recs[1].0.len(), recs[1].1), (59, EPB_OUTBOUND));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        let mut capped = Capture::create(&path, None, 250).unwrap();
        assert_eq!(capped.record(&frame, Direction::In), None);
        assert_eq!(capped.record(&frame, Direction::In), None);
        assert_eq!(capped.record(&frame, Direction::In), Some(Stopped::SizeCap));
        assert_eq!(capped.frames(), 2);
        capped.finish().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn records_wait_at_most_the_flush_interval() {
        let dir = std::env::temp_dir().join(format!("uswitch-capf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("b.pcapng");
        let mut c = Capture::create(&path, None, DEFAULT_MAX_BYTES).unwrap();
        assert_eq!(c.flush_due(), None);
        c.record(&[2u8; 60], Direction::In);
        let due = c.flush_due().expect("a record waits");
        assert!(due <= Instant::now() + FLUSH_EVERY);
        c.flush().unwrap();
        assert_eq!(c.flush_due(), None);
        assert_eq!(read(&path).len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! Shared by the benchmarks and the pcap generator: reading and writing the captures in
//! `pcaps/`, and the synthetic traffic mixes (deterministic, so the committed files can
//! be checked against their generator).

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use etherparse::PacketBuilder;

pub mod cost;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapReader, PcapWriter};
use pcap_file::DataLink;

/// `Ok` for a non-negative system-call result, else the OS error with `what` in front.
pub fn check(rc: i32, what: &str) -> io::Result<()> {
    if rc < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("{what}: {e}")));
    }
    Ok(())
}

/// The repository's `pcaps/` folder.
pub fn pcaps_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("pcaps")
}

/// Every `.pcap` file in `pcaps/`, sorted by name.
pub fn pcap_files() -> io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(pcaps_dir())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pcap"))
        .collect();
    files.sort();
    Ok(files)
}

/// The frames of an Ethernet pcap file.
pub fn read_pcap(path: &Path) -> io::Result<Vec<Vec<u8>>> {
    let file = File::open(path)?;
    let mut reader = PcapReader::new(file).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    })?;
    if reader.header().datalink != DataLink::ETHERNET {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: not an Ethernet capture", path.display()),
        ));
    }
    let mut frames = Vec::new();
    while let Some(pkt) = reader.next_packet() {
        let pkt = pkt.map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        })?;
        frames.push(pkt.data.into_owned());
    }
    Ok(frames)
}

/// Writes `frames` as an Ethernet pcap, one every microsecond from a fixed epoch so the
/// file is the same on every run.
pub fn write_pcap(path: &Path, frames: &[Vec<u8>]) -> io::Result<()> {
    let file = File::create(path)?;
    let header = PcapHeader {
        datalink: DataLink::ETHERNET,
        snaplen: 65_535,
        ..PcapHeader::default()
    };
    let to_io = |e: pcap_file::PcapError| io::Error::other(e.to_string());
    let mut writer = PcapWriter::with_header(file, header).map_err(to_io)?;
    for (i, f) in frames.iter().enumerate() {
        let ts = Duration::from_secs(1_700_000_000) + Duration::from_micros(i as u64);
        writer
            .write_packet(&PcapPacket::new(ts, f.len() as u32, f))
            .map_err(to_io)?;
    }
    Ok(())
}

/// A small deterministic PRNG (xorshift64*), so the generated files never change and a
/// fuzzing run can be replayed from its seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

pub(crate) fn host_mac(i: u32) -> [u8; 6] {
    let b = i.to_be_bytes();
    [0x02, 0x42, b[0], b[1], b[2], b[3]]
}

fn host_ip(i: u32) -> [u8; 4] {
    // 198.18.0.0/15 holds 131072 hosts; i stays far below that.
    let v = (198u32 << 24 | 18 << 16) + i + 1;
    v.to_be_bytes()
}

/// A UDP/IPv4 frame from host `s` to host `d` with `payload` bytes of UDP payload.
pub(crate) fn udp_frame(s: u32, d: u32, dst_mac: [u8; 6], payload: usize, sport: u16) -> Vec<u8> {
    let builder = PacketBuilder::ethernet2(host_mac(s), dst_mac)
        .ipv4(host_ip(s), host_ip(d), 64)
        .udp(sport, 9);
    let body = vec![0x5a; payload];
    let mut out = Vec::with_capacity(builder.size(payload));
    // Writing into a Vec cannot fail.
    builder.write(&mut out, &body).expect("writing to a Vec");
    out
}

/// 60-byte frames (64 on the wire with the FCS) of UDP between `hosts` random hosts:
/// the RFC 2544 small-frame case with a large forwarding table.
pub fn small_frames_many_macs(frames: usize, hosts: u32) -> Vec<Vec<u8>> {
    let mut rng = Rng(0x5eed_0001);
    (0..frames)
        .map(|_| {
            let s = rng.below(hosts as u64) as u32;
            let mut d = rng.below(hosts as u64) as u32;
            if d == s {
                d = (d + 1) % hosts;
            }
            // 14 Ethernet + 20 IPv4 + 8 UDP + 18 payload = 60.
            udp_frame(s, d, host_mac(d), 18, 1024 + (s % 1000) as u16)
        })
        .collect()
}

/// A broadcast-heavy LAN: of every ten frames three are ARP broadcasts, one an IPv6
/// multicast (neighbour solicitation to a solicited-node group), six unicast UDP of mixed
/// sizes, among `hosts` hosts.
pub fn broadcast_mix(frames: usize, hosts: u32) -> Vec<Vec<u8>> {
    let mut rng = Rng(0x5eed_0002);
    (0..frames)
        .map(|i| {
            let s = rng.below(hosts as u64) as u32;
            let d = (s + 1 + rng.below(hosts as u64 - 1) as u32) % hosts;
            match i % 10 {
                0..=2 => arp_request(s, d),
                3 => {
                    let group = [0x33, 0x33, 0xff, 0x00, (d >> 8) as u8, d as u8];
                    let mut f = udp_frame(s, d, group, 32, 5353);
                    f[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
                    f
                }
                _ => {
                    let size = [18usize, 100, 500, 1000][rng.below(4) as usize];
                    udp_frame(s, d, host_mac(d), size, 2000)
                }
            }
        })
        .collect()
}

pub(crate) fn arp_request(s: u32, d: u32) -> Vec<u8> {
    let mut f = Vec::with_capacity(60);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&host_mac(s));
    f.extend_from_slice(&[0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01]);
    f.extend_from_slice(&host_mac(s));
    f.extend_from_slice(&host_ip(s));
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&host_ip(d));
    f.resize(60, 0);
    f
}

/// A TCP/IPv4 GSO frame of `payload` bytes between hosts 0 and 1, as a container's
/// kernel hands one to a TAP with TSO (the checksums complete, for simplicity).
pub fn tcp_gso_frame(payload: usize) -> Vec<u8> {
    let builder = PacketBuilder::ethernet2(host_mac(0), host_mac(1))
        .ipv4(host_ip(0), host_ip(1), 64)
        .tcp(5001, 40000, 1, 65535)
        .ack(1);
    let body: Vec<u8> = (0..payload).map(|i| (i % 251) as u8).collect();
    let mut out = Vec::with_capacity(builder.size(payload));
    builder.write(&mut out, &body).expect("writing to a Vec");
    out
}

/// The synthetic captures: file name and frames.
pub fn synthetic_pcaps() -> Vec<(&'static str, Vec<Vec<u8>>)> {
    vec![
        (
            "synth-64b-4096macs.pcap",
            small_frames_many_macs(50_000, 4096),
        ),
        ("synth-broadcast-mix.pcap", broadcast_mix(10_000, 256)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use packets::EthernetFrame;

    #[test]
    fn synthetic_frames_are_what_they_claim() {
        let small = small_frames_many_macs(1000, 4096);
        assert!(small.iter().all(|f| f.len() == 60));
        let mix = broadcast_mix(1000, 256);
        let bcast = mix
            .iter()
            .filter(|f| {
                EthernetFrame::new_checked(&f[..])
                    .unwrap()
                    .dst()
                    .is_broadcast()
            })
            .count();
        assert_eq!(bcast, 300);
    }

    #[test]
    fn committed_pcaps_parse_and_stay_small() {
        let files = pcap_files().unwrap();
        assert!(files.len() >= 3, "pcaps/ holds {} captures", files.len());
        for path in files {
            let size = std::fs::metadata(&path).unwrap().len();
            assert!(size < 5 << 20, "{} is {size} bytes", path.display());
            let frames = read_pcap(&path).unwrap();
            assert!(!frames.is_empty(), "{} is empty", path.display());
            for f in &frames {
                assert!(
                    EthernetFrame::new_checked(&f[..]).is_ok(),
                    "{}",
                    path.display()
                );
            }
        }
    }

    #[test]
    fn committed_synthetic_pcaps_match_their_generator() {
        for (name, frames) in synthetic_pcaps() {
            let committed = read_pcap(&pcaps_dir().join(name)).unwrap_or_else(|e| {
                panic!("{name}: {e}; run cargo run -p uswitch-benches --bin gen-pcaps")
            });
            assert!(
                committed == frames,
                "{name} differs from its generator's output"
            );
        }
    }
}

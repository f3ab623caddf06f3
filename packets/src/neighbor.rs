//! ARP (RFC 826) and IPv6 neighbour discovery (RFC 4861): what a frame says about who
//! holds an address, the question it asks, and the answer a switch that knows can give in
//! the owner's place (the kernel vxlan driver's `proxy` mode, EVPN's ARP suppression).
//!
//! Only untagged frames over Ethernet are read: ARP for IPv4 over Ethernet (hardware type
//! 1, 6-byte and 4-byte addresses) and ICMPv6 straight after the IPv6 header (no extension
//! headers), with the hop limit of 255 and the checksum that RFC 4861 requires of a
//! message before anyone may believe it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::checksum::{fold, pseudo_header, sum16};
use crate::ethernet::{EtherType, EthernetFrame, ETHERNET_HEADER_LEN};
use crate::ipv6::{Ipv6Packet, IPV6_HEADER_LEN};
use crate::MacAddr;

/// ARP for IPv4 over Ethernet: 28 bytes after the Ethernet header.
pub const ARP_LEN: usize = 28;
const ARP_REQUEST: u16 = 1;
const ARP_REPLY: u16 = 2;
const PROTO_ICMPV6: u8 = 58;
const NEIGHBOR_SOLICITATION: u8 = 135;
const NEIGHBOR_ADVERTISEMENT: u8 = 136;
/// Type, code, checksum, reserved or flags, target address.
const ND_LEN: usize = 24;
const OPT_SOURCE_LL: u8 = 1;
const OPT_TARGET_LL: u8 = 2;
/// Solicited and Override: an answer to a question, naming the address's owner.
const NA_SOLICITED_OVERRIDE: u8 = 0x60;

/// A question for the owner of an address: an ARP request or a neighbour solicitation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Question {
    /// The address asked for.
    pub target: IpAddr,
    /// Who asks: where the answer goes.
    pub asker_ip: IpAddr,
    pub asker_mac: MacAddr,
}

/// The ARP or ICMPv6 neighbour message `frame` carries, and its sender's addresses.
enum Message<'a> {
    Arp {
        op: u16,
        sha: MacAddr,
        spa: Ipv4Addr,
        tpa: Ipv4Addr,
    },
    Nd {
        kind: u8,
        src: Ipv6Addr,
        target: Ipv6Addr,
        options: &'a [u8],
    },
}

fn message(frame: &[u8]) -> Option<Message<'_>> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.header_len() != ETHERNET_HEADER_LEN {
        return None;
    }
    let body = &frame[ETHERNET_HEADER_LEN..];
    match eth.ethertype() {
        EtherType::ARP => {
            let a = body.get(..ARP_LEN)?;
            // Ethernet hardware (1), IPv4 protocol, 6- and 4-byte addresses.
            if a[0..6] != [0, 1, 0x08, 0x00, 6, 4] {
                return None;
            }
            let mac = |r: std::ops::Range<usize>| {
                let mut m = [0u8; 6];
                m.copy_from_slice(&a[r]);
                MacAddr(m)
            };
            let ip = |at: usize| Ipv4Addr::new(a[at], a[at + 1], a[at + 2], a[at + 3]);
            Some(Message::Arp {
                op: u16::from_be_bytes([a[6], a[7]]),
                sha: mac(8..14),
                spa: ip(14),
                tpa: ip(24),
            })
        }
        EtherType::IPV6 => {
            let ip = Ipv6Packet::new_checked(body).ok()?;
            if ip.next_header() != PROTO_ICMPV6 || ip.hop_limit() != 255 {
                return None;
            }
            let icmp = &body[IPV6_HEADER_LEN..IPV6_HEADER_LEN + ip.payload_len()];
            if icmp.len() < ND_LEN || icmp[1] != 0 {
                return None;
            }
            let kind = icmp[0];
            if kind != NEIGHBOR_SOLICITATION && kind != NEIGHBOR_ADVERTISEMENT {
                return None;
            }
            let sum = pseudo_header(ip.addr_bytes(), PROTO_ICMPV6, icmp.len());
            if fold(sum16(sum, icmp)) != 0xffff {
                return None;
            }
            let mut target = [0u8; 16];
            target.copy_from_slice(&icmp[8..24]);
            Some(Message::Nd {
                kind,
                src: ip.src(),
                target: Ipv6Addr::from(target),
                options: &icmp[ND_LEN..],
            })
        }
        _ => None,
    }
}

/// Whether an IPv4 address can belong to one host: not 0.0.0.0, the broadcast address
/// or a multicast group.
fn is_host_v4(a: Ipv4Addr) -> bool {
    !a.is_unspecified() && !a.is_broadcast() && !a.is_multicast()
}

/// The link-layer address an ND option of type `want` names, if the options hold one.
fn ll_option(mut options: &[u8], want: u8) -> Option<MacAddr> {
    while options.len() >= 2 {
        let len = options[1] as usize * 8;
        if len == 0 || len > options.len() {
            return None;
        }
        if options[0] == want && len >= 8 {
            let mut m = [0u8; 6];
            m.copy_from_slice(&options[2..8]);
            return Some(MacAddr(m));
        }
        options = &options[len..];
    }
    None
}

/// Who `frame` says holds an address: the sender of an ARP request or reply, the source
/// of a neighbour solicitation, the target of a neighbour advertisement. Only a claim
/// whose link-layer address is the frame's own Ethernet source counts (a host speaks for
/// itself), and never the unspecified address of a probe or duplicate address detection.
pub fn claim(frame: &[u8]) -> Option<(IpAddr, MacAddr)> {
    let src_mac = EthernetFrame::new_checked(frame).ok()?.src();
    let (ip, mac) = match message(frame)? {
        Message::Arp { op, sha, spa, .. } => {
            if (op != ARP_REQUEST && op != ARP_REPLY) || !is_host_v4(spa) {
                return None;
            }
            (IpAddr::V4(spa), sha)
        }
        Message::Nd {
            kind,
            src,
            target,
            options,
        } => {
            let (ip, opt) = if kind == NEIGHBOR_SOLICITATION {
                (src, OPT_SOURCE_LL)
            } else {
                (target, OPT_TARGET_LL)
            };
            if ip.is_unspecified() || ip.is_multicast() {
                return None;
            }
            (IpAddr::V6(ip), ll_option(options, opt).unwrap_or(src_mac))
        }
    };
    (mac == src_mac && !ip.is_unspecified()).then_some((ip, mac))
}

/// The question `frame` asks, if it is a broadcast ARP request or a multicast neighbour
/// solicitation from a host that has an address. Probes, duplicate address detection and
/// gratuitous announcements (asking for one's own address) are not questions: only the
/// owner may answer those.
pub fn question(frame: &[u8]) -> Option<Question> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if !eth.dst().is_multicast() {
        return None;
    }
    match message(frame)? {
        Message::Arp { op, sha, spa, tpa } => {
            let ok = op == ARP_REQUEST
                && !spa.is_unspecified()
                && spa != tpa
                && sha == eth.src()
                && is_host_v4(tpa);
            ok.then_some(Question {
                target: IpAddr::V4(tpa),
                asker_ip: IpAddr::V4(spa),
                asker_mac: sha,
            })
        }
        Message::Nd {
            kind, src, target, ..
        } => {
            let ok = kind == NEIGHBOR_SOLICITATION
                && !src.is_unspecified()
                && src != target
                && !target.is_multicast()
                && !target.is_unspecified();
            ok.then_some(Question {
                target: IpAddr::V6(target),
                asker_ip: IpAddr::V6(src),
                asker_mac: eth.src(),
            })
        }
    }
}

/// Appends to `out` the answer `owner` would give to `q`: an ARP reply, or a solicited
/// neighbour advertisement with the owner's link-layer address (the router flag clear:
/// uswitch does not know which hosts route).
pub fn write_answer(q: &Question, owner: MacAddr, out: &mut Vec<u8>) {
    let start = out.len();
    let mut eth = [0u8; ETHERNET_HEADER_LEN];
    eth[0..6].copy_from_slice(&q.asker_mac.0);
    eth[6..12].copy_from_slice(&owner.0);
    match (q.target, q.asker_ip) {
        (IpAddr::V4(target), IpAddr::V4(asker)) => {
            eth[12..14].copy_from_slice(&EtherType::ARP.0.to_be_bytes());
            out.extend_from_slice(&eth);
            out.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4]);
            out.extend_from_slice(&ARP_REPLY.to_be_bytes());
            out.extend_from_slice(&owner.0);
            out.extend_from_slice(&target.octets());
            out.extend_from_slice(&q.asker_mac.0);
            out.extend_from_slice(&asker.octets());
        }
        (IpAddr::V6(target), IpAddr::V6(asker)) => {
            eth[12..14].copy_from_slice(&EtherType::IPV6.0.to_be_bytes());
            out.extend_from_slice(&eth);
            let icmp_len = ND_LEN + 8;
            out.extend_from_slice(&[0x60, 0, 0, 0]);
            out.extend_from_slice(&(icmp_len as u16).to_be_bytes());
            out.extend_from_slice(&[PROTO_ICMPV6, 255]);
            out.extend_from_slice(&target.octets());
            out.extend_from_slice(&asker.octets());
            let icmp = out.len();
            out.extend_from_slice(&[NEIGHBOR_ADVERTISEMENT, 0, 0, 0]);
            out.extend_from_slice(&[NA_SOLICITED_OVERRIDE, 0, 0, 0]);
            out.extend_from_slice(&target.octets());
            out.extend_from_slice(&[OPT_TARGET_LL, 1]);
            out.extend_from_slice(&owner.0);
            let l3 = start + ETHERNET_HEADER_LEN;
            let addrs = &out[l3 + 8..l3 + IPV6_HEADER_LEN];
            let sum = sum16(pseudo_header(addrs, PROTO_ICMPV6, icmp_len), &out[icmp..]);
            let csum = !fold(sum);
            out[icmp + 2..icmp + 4].copy_from_slice(&csum.to_be_bytes());
        }
        // A question is asked in one family; nothing to answer across them.
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ASKER: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
    const OWNER: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x02]);

    /// An ARP request from 02:00:00:00:00:01 (198.18.0.1) for 198.18.0.2, as Linux sends
    /// it (padded to 60 bytes).
    fn arp_request() -> Vec<u8> {
        let mut f = vec![
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x06, // eth
            0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, // request
            0x02, 0, 0, 0, 0, 0x01, 198, 18, 0, 1, // sender
            0, 0, 0, 0, 0, 0, 198, 18, 0, 2, // target
        ];
        f.resize(60, 0);
        f
    }

    /// A neighbour solicitation from 2001:2::1 (02:00:00:00:00:01) for 2001:2::2, to its
    /// solicited-node group, with the source link-layer option: the bytes Linux sends.
    fn solicitation() -> Vec<u8> {
        let mut f = vec![
            0x33, 0x33, 0xff, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x86, 0xdd,
        ];
        f.extend_from_slice(&[0x60, 0, 0, 0, 0, 32, 58, 255]);
        f.extend_from_slice(&"2001:2::1".parse::<Ipv6Addr>().unwrap().octets());
        f.extend_from_slice(&"ff02::1:ff00:2".parse::<Ipv6Addr>().unwrap().octets());
        f.extend_from_slice(&[135, 0, 0, 0, 0, 0, 0, 0]);
        f.extend_from_slice(&"2001:2::2".parse::<Ipv6Addr>().unwrap().octets());
        f.extend_from_slice(&[1, 1, 0x02, 0, 0, 0, 0, 0x01]);
        let sum = sum16(pseudo_header(&f[22..54], 58, 32), &f[54..]);
        let c = !fold(sum);
        f[56..58].copy_from_slice(&c.to_be_bytes());
        f
    }

    #[test]
    fn an_arp_request_is_a_question_and_a_claim() {
        let f = arp_request();
        let q = question(&f).unwrap();
        assert_eq!(q.target, "198.18.0.2".parse::<IpAddr>().unwrap());
        assert_eq!(
            (q.asker_ip, q.asker_mac),
            ("198.18.0.1".parse().unwrap(), ASKER)
        );
        assert_eq!(claim(&f), Some(("198.18.0.1".parse().unwrap(), ASKER)));
    }

    #[test]
    fn the_arp_answer_is_what_the_owner_would_send() {
        let q = question(&arp_request()).unwrap();
        let mut out = vec![0xaa];
        write_answer(&q, OWNER, &mut out);
        let expected = [
            0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02, 0x08, 0x06, // eth
            0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02, // reply
            0x02, 0, 0, 0, 0, 0x02, 198, 18, 0, 2, // sender: the owner
            0x02, 0, 0, 0, 0, 0x01, 198, 18, 0, 1, // target: the asker
        ];
        assert_eq!(&out[1..], &expected[..]);
        // The answer is itself a claim for the owner, and no question.
        assert_eq!(
            claim(&out[1..]),
            Some(("198.18.0.2".parse().unwrap(), OWNER))
        );
        assert_eq!(question(&out[1..]), None);
    }

    #[test]
    fn probes_announcements_and_strangers_are_not_questions() {
        let mut probe = arp_request();
        probe[28..32].copy_from_slice(&[0, 0, 0, 0]);
        assert_eq!(question(&probe), None);
        assert_eq!(claim(&probe), None);
        let mut gratuitous = arp_request();
        gratuitous[38..42].copy_from_slice(&[198, 18, 0, 1]);
        assert_eq!(question(&gratuitous), None);
        assert!(claim(&gratuitous).is_some());
        // A sender speaking for another MAC is believed by nobody.
        let mut forged = arp_request();
        forged[22..28].copy_from_slice(&OWNER.0);
        assert_eq!(question(&forged), None);
        assert_eq!(claim(&forged), None);
        let mut unicast = arp_request();
        unicast[0..6].copy_from_slice(&OWNER.0);
        assert_eq!(question(&unicast), None);
        let mut token_ring = arp_request();
        token_ring[15] = 6;
        assert_eq!(question(&token_ring), None);
        assert_eq!(question(&arp_request()[..41]), None);
        // Nobody holds 0.0.0.0, the broadcast address or a group: no question, no claim
        // (found by the fuzzer: an answer for 0.0.0.0 would claim nothing).
        for bad in [[0, 0, 0, 0], [255, 255, 255, 255], [224, 0, 0, 1]] {
            let mut f = arp_request();
            f[38..42].copy_from_slice(&bad);
            assert_eq!(question(&f), None, "{bad:?}");
            let mut f = arp_request();
            f[28..32].copy_from_slice(&bad);
            assert_eq!(claim(&f), None, "{bad:?}");
        }
    }

    #[test]
    fn a_solicitation_is_answered_with_a_checksummed_advertisement() {
        let f = solicitation();
        let q = question(&f).unwrap();
        let v6 = |s: &str| IpAddr::V6(s.parse().unwrap());
        assert_eq!(q.target, v6("2001:2::2"));
        assert_eq!((q.asker_ip, q.asker_mac), (v6("2001:2::1"), ASKER));
        assert_eq!(claim(&f), Some((v6("2001:2::1"), ASKER)));
        let mut out = Vec::new();
        write_answer(&q, OWNER, &mut out);
        assert_eq!(out.len(), 14 + 40 + 32);
        assert_eq!(&out[0..12], &[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2]);
        // An advertisement whose checksum verifies (message() checks it) naming the
        // owner: what the target's own kernel would have said.
        assert_eq!(claim(&out), Some((v6("2001:2::2"), OWNER)));
        assert_eq!(out[54], 136);
        assert_eq!(out[58], 0x60);
        assert_eq!(&out[78..80], &[2, 1]);
    }

    #[test]
    fn bad_neighbour_discovery_is_ignored() {
        let mut hop = solicitation();
        hop[21] = 64;
        assert_eq!(question(&hop), None);
        let mut sum = solicitation();
        sum[56] ^= 1;
        assert_eq!(question(&sum), None);
        assert_eq!(claim(&sum), None);
        let mut dad = solicitation();
        dad[22..38].copy_from_slice(&[0; 16]);
        assert_eq!(question(&dad), None);
        let mut bad_option = solicitation();
        bad_option[79] = 0;
        // A zero-length option: the claim falls back to nobody (the option is broken),
        // the checksum no longer matches anyway.
        assert_eq!(claim(&bad_option), None);
        for n in 0..solicitation().len() {
            let _ = (question(&solicitation()[..n]), claim(&solicitation()[..n]));
        }
    }
}

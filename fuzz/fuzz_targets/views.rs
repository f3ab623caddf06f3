//! Every checked view of `packets`, over any bytes: constructors refuse or accept, and
//! whatever they accept, every accessor answers without panicking and within the buffer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use packets::ip::IpLayout;
use packets::ipv4::Ipv4Packet;
use packets::ipv6::Ipv6Packet;
use packets::neighbor;
use packets::offload::VirtioNetHdr;
use packets::tcp::TcpPacket;
use packets::udp::UdpPacket;
use packets::EthernetFrame;

fuzz_target!(|data: &[u8]| {
    let _ = neighbor::claim(data);
    if let Some(q) = neighbor::question(data) {
        // An answer is always a claim, for the address asked, by the owner named.
        let owner = packets::MacAddr([2, 0, 0, 0, 0, 0x42]);
        let mut answer = Vec::new();
        neighbor::write_answer(&q, owner, &mut answer);
        assert_eq!(neighbor::claim(&answer), Some((q.target, owner)), "{q:?}");
        assert_eq!(neighbor::question(&answer), None);
    }
    if let Ok(eth) = EthernetFrame::new_checked(data) {
        let _ = (eth.dst(), eth.src(), eth.vlan_id(), eth.ethertype());
        assert!(eth.header_len() <= data.len());
        assert_eq!(eth.payload().len(), data.len() - eth.header_len());
    }
    for ip in [IpLayout::of_frame(data), IpLayout::of_gso_frame(data)]
        .into_iter()
        .flatten()
    {
        assert!(
            ip.l3 <= ip.l4 && ip.l4 <= ip.end && ip.end <= data.len(),
            "{ip:?}"
        );
        let _ = ip.addrs(data);
        let _ = ip.pseudo_sum(data, ip.l4_len());
        let _ = ip.l4_checksum_ok(data);
    }
    if let Ok(p) = Ipv4Packet::new_checked(data) {
        assert!(p.header_len() <= p.total_len() && p.total_len() <= data.len());
        let _ = (p.tos(), p.ident(), p.is_fragment(), p.ttl(), p.protocol());
        let _ = (p.checksum(), p.src(), p.dst(), p.verify_checksum());
        assert_eq!(p.payload().len(), p.total_len() - p.header_len());
    }
    if let Ok(p) = Ipv4Packet::header_checked(data) {
        let _ = p.payload();
    }
    if let Ok(p) = Ipv6Packet::new_checked(data) {
        assert_eq!(p.payload().len(), p.payload_len());
        let _ = (p.next_header(), p.hop_limit(), p.src(), p.dst());
    }
    if let Ok(u) = UdpPacket::new_checked(data) {
        assert_eq!(u.payload().len(), u.len() - 8);
        let _ = (u.src_port(), u.dst_port(), u.checksum(), u.is_empty());
    }
    if let Ok(u) = UdpPacket::header_checked(data) {
        let _ = u.payload();
    }
    if let Ok(t) = TcpPacket::new_checked(data) {
        assert!(t.header_len() <= data.len());
        let _ = (t.src_port(), t.dst_port(), t.seq(), t.flags(), t.checksum());
        assert_eq!(t.payload().len(), data.len() - t.header_len());
    }
    if let Some(h) = VirtioNetHdr::parse(data) {
        assert_eq!(VirtioNetHdr::parse(&h.emit()), Some(h));
        let _ = h.offload();
    }
    let _ = packets::vxlan::parse_header(data);
    let _ = packets::vxlan::flow_hash(data);
});

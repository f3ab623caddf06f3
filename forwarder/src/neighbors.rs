//! Who holds which address in one network: what ARP and neighbour-discovery suppression
//! answers from. Two sources fill it: claims heard on the network's own ports (the
//! sender of an ARP message, the source of a solicitation, the target of an
//! advertisement: ARP snooping, as EVPN switches do it) and the addresses other nodes of
//! a cluster advertise with their MACs. A claim heard here outranks the cluster's word,
//! and the cluster's entries are replaced whole each time it speaks.

use std::collections::HashMap;
use std::net::IpAddr;

use packets::MacAddr;

/// Where an entry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Heard on one of the network's local ports.
    Local,
    /// Advertised by another node of the cluster.
    Cluster,
}

/// The addresses of one network and the MAC that holds each.
#[derive(Debug, Clone)]
pub struct Neighbors {
    map: HashMap<IpAddr, (MacAddr, Origin)>,
    /// Local claims kept at most: a port spraying claims cannot grow the table without
    /// bound (beyond it, new claims are not believed until aging makes room).
    limit: usize,
}

impl Neighbors {
    pub fn new(limit: usize) -> Neighbors {
        Neighbors {
            map: HashMap::new(),
            limit: limit.max(1),
        }
    }

    /// Believes a claim heard on a local port: the latest claim for an address wins.
    pub fn hear(&mut self, ip: IpAddr, mac: MacAddr) {
        let room = self.map.len() < self.limit;
        match self.map.get_mut(&ip) {
            Some(e) => *e = (mac, Origin::Local),
            None if room => {
                self.map.insert(ip, (mac, Origin::Local));
            }
            None => {}
        }
    }

    /// The cluster's entries become `entries`; an address claimed locally keeps its
    /// local owner.
    pub fn set_cluster(&mut self, entries: &[(IpAddr, MacAddr)]) {
        self.map.retain(|_, (_, o)| *o == Origin::Local);
        for &(ip, mac) in entries {
            self.map.entry(ip).or_insert((mac, Origin::Cluster));
        }
    }

    /// The MAC holding `ip`, if one is known.
    pub fn get(&self, ip: IpAddr) -> Option<MacAddr> {
        self.map.get(&ip).map(|&(mac, _)| mac)
    }

    /// Forgets local claims whose MAC `keep` refuses (one the FDB no longer holds).
    pub fn forget_local(&mut self, mut keep: impl FnMut(MacAddr) -> bool) {
        self.map
            .retain(|_, &mut (mac, o)| o == Origin::Cluster || keep(mac));
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Every entry, in no order.
    pub fn iter(&self) -> impl Iterator<Item = (IpAddr, MacAddr, Origin)> + '_ {
        self.map.iter().map(|(&ip, &(mac, o))| (ip, mac, o))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
    const B: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_local_claim_outranks_the_cluster_and_survives_its_updates() {
        let mut n = Neighbors::new(10);
        n.set_cluster(&[(ip("198.18.0.1"), A), (ip("198.18.0.2"), A)]);
        n.hear(ip("198.18.0.1"), B);
        assert_eq!(n.get(ip("198.18.0.1")), Some(B));
        n.set_cluster(&[(ip("198.18.0.1"), A)]);
        assert_eq!(n.get(ip("198.18.0.1")), Some(B));
        assert_eq!(n.get(ip("198.18.0.2")), None);
        n.forget_local(|m| m != B);
        assert!(n.is_empty());
    }

    #[test]
    fn local_claims_are_bounded() {
        let mut n = Neighbors::new(2);
        for i in 0..10u8 {
            n.hear(IpAddr::from([198, 18, 0, i]), A);
        }
        assert_eq!(n.len(), 2);
        // An address already known may still change hands.
        n.hear(ip("198.18.0.0"), B);
        assert_eq!(n.get(ip("198.18.0.0")), Some(B));
    }
}

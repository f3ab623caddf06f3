//! The launcher's bookkeeping in the switch: subnets, address allocation and the record
//! of "containers" (network namespaces with one TAP per network).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

/// An IPv4 subnet in CIDR notation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    pub network: Ipv4Addr,
    pub prefix: u8,
}

impl Subnet {
    pub fn parse(s: &str) -> Result<Subnet, String> {
        let bad = || format!("'{s}' is not an IPv4 subnet such as 198.18.0.0/24");
        let (addr, prefix) = s.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        if !(8..=30).contains(&prefix) {
            return Err(format!("subnet {s}: the prefix must be between /8 and /30"));
        }
        let mask = u32::MAX << (32 - prefix);
        Ok(Subnet {
            network: Ipv4Addr::from(u32::from(addr) & mask),
            prefix,
        })
    }

    fn mask(&self) -> u32 {
        u32::MAX << (32 - self.prefix)
    }

    pub fn contains(&self, a: Ipv4Addr) -> bool {
        u32::from(a) & self.mask() == u32::from(self.network)
    }

    /// The usable host addresses: not the network nor the broadcast address.
    pub fn hosts(&self) -> impl Iterator<Item = Ipv4Addr> {
        let first = u32::from(self.network) + 1;
        let last = u32::from(self.network) | !self.mask();
        (first..last).map(Ipv4Addr::from)
    }
}

/// One interface of a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    /// The TAP's name while it is in the switch's namespace.
    pub tap: String,
    /// Its name inside the container: eth0, eth1, ...
    pub ifname: String,
    pub network: String,
    /// `ADDR/PREFIX`, or none for a network without a subnet.
    pub address: Option<String>,
    /// The MAC the interface is given inside the container: how its TAP is found there
    /// again after uswitch restarts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

/// A container: a network namespace named like it, with its interfaces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Container {
    pub name: String,
    pub netns: String,
    pub interfaces: Vec<Interface>,
}

/// Containers, and the addresses they hold in each network.
#[derive(Debug, Default)]
pub struct Containers {
    pub by_name: BTreeMap<String, Container>,
    used: BTreeMap<String, BTreeSet<Ipv4Addr>>,
}

/// Container names: 1 to 11 bytes of letters, digits, '-' and '_' (the TAP is
/// `NAME-eN`, and interface names hold 15 bytes).
pub fn validate_container_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 11 {
        return Err(format!(
            "container name '{name}' must be 1 to 11 bytes long"
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(format!(
            "container name '{name}' may only hold letters, digits, '-' and '_'"
        ));
    }
    Ok(())
}

impl Containers {
    /// The container a TAP belongs to, if any.
    pub fn owner_of(&self, tap: &str) -> Option<&Container> {
        self.by_name
            .values()
            .find(|c| c.interfaces.iter().any(|i| i.tap == tap))
    }

    /// Picks the address for a new interface on `network`: `wanted` if given (checked
    /// against the subnet and for conflicts), else the next free one of `subnet`.
    pub fn allocate(
        &mut self,
        network: &str,
        subnet: Option<&str>,
        wanted: Option<&str>,
    ) -> Result<Option<String>, String> {
        let subnet = subnet.map(Subnet::parse).transpose()?;
        let used = self.used.entry(network.to_string()).or_default();
        let (addr, prefix) = match (wanted, subnet) {
            (Some(w), sub) => {
                let (a, p) = w
                    .split_once('/')
                    .ok_or_else(|| format!("--ip {w}: give ADDR/PREFIX, such as 198.18.0.10/24"))?;
                let a: Ipv4Addr = a
                    .parse()
                    .map_err(|_| format!("--ip {w}: '{a}' is not an IPv4 address"))?;
                let p: u8 = p
                    .parse()
                    .ok()
                    .filter(|p| (1..=32).contains(p))
                    .ok_or_else(|| format!("--ip {w}: bad prefix length"))?;
                if let Some(sub) = sub {
                    if !sub.contains(a) {
                        return Err(format!(
                            "--ip {w} is outside network {network}'s subnet {}/{}",
                            sub.network, sub.prefix
                        ));
                    }
                }
                (a, p)
            }
            (None, Some(sub)) => {
                let a = sub
                    .hosts()
                    .find(|a| !used.contains(a))
                    .ok_or_else(|| format!("network {network}'s subnet is full"))?;
                (a, sub.prefix)
            }
            (None, None) => return Ok(None),
        };
        if !used.insert(addr) {
            return Err(format!("{addr} is already used on network {network}"));
        }
        Ok(Some(format!("{addr}/{prefix}")))
    }

    /// Takes back a container that outlived a restart, with the addresses it holds.
    pub fn restore(&mut self, c: Container) {
        for i in &c.interfaces {
            if let Some(addr) = i
                .address
                .as_deref()
                .and_then(|a| a.split('/').next()?.parse().ok())
            {
                self.used.entry(i.network.clone()).or_default().insert(addr);
            }
        }
        self.by_name.insert(c.name.clone(), c);
    }

    /// Returns an interface's address to the pool.
    pub fn release(&mut self, iface: &Interface) {
        if let Some(addr) = iface
            .address
            .as_deref()
            .and_then(|a| a.split('/').next()?.parse().ok())
        {
            if let Some(used) = self.used.get_mut(&iface.network) {
                used.remove(&addr);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_parse_and_enumerate() {
        let s = Subnet::parse("198.18.0.77/24").unwrap();
        assert_eq!(s.network, Ipv4Addr::new(198, 18, 0, 0));
        assert_eq!(s.hosts().count(), 254);
        assert_eq!(s.hosts().next(), Some(Ipv4Addr::new(198, 18, 0, 1)));
        assert!(s.contains(Ipv4Addr::new(198, 18, 0, 254)));
        assert!(!s.contains(Ipv4Addr::new(198, 18, 1, 1)));
        for bad in ["198.18.0.0", "198.18.0.0/33", "x/24", "198.18.0.0/31"] {
            assert!(Subnet::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn allocates_next_free_and_honours_requests() {
        let mut c = Containers::default();
        let sub = Some("198.18.0.0/30");
        assert_eq!(
            c.allocate("n", sub, None).unwrap().as_deref(),
            Some("198.18.0.1/30")
        );
        assert_eq!(
            c.allocate("n", sub, Some("198.18.0.2/30"))
                .unwrap()
                .as_deref(),
            Some("198.18.0.2/30")
        );
        assert!(c.allocate("n", sub, None).unwrap_err().contains("full"));
        assert!(c
            .allocate("n", sub, Some("198.18.0.1/30"))
            .unwrap_err()
            .contains("already used"));
        assert!(c
            .allocate("n", sub, Some("198.18.5.1/24"))
            .unwrap_err()
            .contains("outside"));
        assert_eq!(c.allocate("other", None, None).unwrap(), None);
        c.release(&Interface {
            tap: "t".into(),
            ifname: "eth0".into(),
            network: "n".into(),
            address: Some("198.18.0.1/30".into()),
            mac: None,
        });
        assert_eq!(
            c.allocate("n", sub, None).unwrap().as_deref(),
            Some("198.18.0.1/30")
        );
    }

    #[test]
    fn container_names() {
        assert!(validate_container_name("web-1").is_ok());
        assert!(validate_container_name("").is_err());
        assert!(validate_container_name("a23456789012").is_err());
        assert!(validate_container_name("a b").is_err());
    }
}

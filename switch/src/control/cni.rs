//! What the switch remembers of the interfaces CNI runtimes asked for (`uswitch-cni ADD`):
//! one record per container interface, kept in `STATE_DIR/cni.json` so that a new
//! uswitch reopens each TAP where it lives; and the CNI networks' isolation and outbound
//! NAT, in an nftables table of its own (`inet uswitch_cni_NAME`) that goes when uswitch
//! exits.
//!
//! The handlers (`handlers::cni_add`, ...) do the switch's work; this keeps the records.

use std::collections::BTreeMap;
use std::path::PathBuf;

use log::warn;

use super::protocol::CniAttachment;
use crate::firewall::{Firewall, NatRule};

/// `(CNI_CONTAINERID, CNI_IFNAME)`: what identifies an attachment.
pub type CniKey = (String, String);

#[derive(Default)]
pub struct CniRegistry {
    file: Option<PathBuf>,
    /// The switch's `--name`, naming the NAT table.
    owner: String,
    pub attachments: BTreeMap<CniKey, CniAttachment>,
    /// Installed with the first network that asks for `ipMasq`.
    firewall: Option<Firewall>,
}

impl std::fmt::Debug for CniRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CniRegistry")
            .field("file", &self.file)
            .field("attachments", &self.attachments.len())
            .finish()
    }
}

impl CniRegistry {
    pub fn new(file: Option<PathBuf>, owner: &str) -> CniRegistry {
        CniRegistry {
            file,
            owner: owner.to_string(),
            ..CniRegistry::default()
        }
    }

    /// The records the state file holds (none without one); an error names a file that
    /// cannot be read back, which is then kept aside, never overwritten.
    pub fn load(&mut self) -> Result<Vec<CniAttachment>, String> {
        let Some(path) = &self.file else {
            return Ok(Vec::new());
        };
        match crate::state_file::read::<Vec<CniAttachment>>(path, "CNI state") {
            Ok(saved) => Ok(saved.unwrap_or_default()),
            Err(e) => Err(format!("{e}; {}", crate::state_file::set_aside(path))),
        }
    }

    /// Writes every record to the state file; a failure is logged (the attachments work
    /// on, but would not survive a restart).
    pub fn save(&self) {
        let Some(path) = &self.file else {
            return;
        };
        // A switch that never had an attachment leaves no file behind.
        if self.attachments.is_empty() && !path.exists() {
            return;
        }
        let all: Vec<&CniAttachment> = self.attachments.values().collect();
        if let Err(e) = crate::state_file::write(path, &all) {
            warn!("writing the CNI state {}: {e}", path.display());
        }
    }

    /// The host port serving a CNI network's gateway: the common gateway prefix and 13
    /// hex digits of a hash of the switch's and the network's names (15 bytes, the
    /// kernel's limit; two switches may each have a network `blue`), so that the
    /// isolation rules that cover Docker's gateways cover these too.
    pub fn gateway_port(&self, network: &str) -> String {
        let key = format!("{}/{network}", self.owner);
        format!(
            "{}{}",
            crate::firewall::GATEWAY_PREFIX,
            &hex_hash(key.as_bytes())[..13]
        )
    }

    /// One masquerade per network some attachment asked `ipMasq` for.
    pub fn masquerades(&self) -> Vec<NatRule> {
        let mut by_network: BTreeMap<&str, NatRule> = BTreeMap::new();
        for a in self.attachments.values().filter(|a| a.ip_masq) {
            let Some(subnet) = a.subnet.as_deref().filter(|s| !s.contains(':')) else {
                continue;
            };
            by_network.entry(&a.network).or_insert_with(|| NatRule {
                network: a.network.clone(),
                subnet: subnet.to_string(),
                gateway_port: self.gateway_port(&a.network),
            });
        }
        by_network.into_values().collect()
    }

    /// Brings the table in line with the records: installed with the first gateway (it
    /// also keeps one network's gateway from routing to another's), rewritten when a
    /// network's masquerade comes or goes (an `nft` run then, never per frame).
    pub fn apply_nat(&mut self, before: &[NatRule]) -> Result<(), String> {
        let now = self.masquerades();
        let gateways = self.attachments.values().any(|a| !a.gateways.is_empty());
        if now == before && (self.firewall.is_some() || !gateways) {
            return Ok(());
        }
        if self.firewall.is_none() {
            self.firewall = Some(Firewall::install(&format!("cni_{}", self.owner))?);
        }
        match &self.firewall {
            Some(fw) => fw.apply(&now, &[]),
            None => Ok(()),
        }
    }
}

/// FNV-1a, 64 bits, in hex: a stable short name from a long one (not a secret).
pub fn hex_hash(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attachment(id: &str, network: &str, masq: bool) -> CniAttachment {
        CniAttachment {
            container_id: id.into(),
            ifname: "eth0".into(),
            config: "cfg".into(),
            network: network.into(),
            subnet: Some("198.18.70.0/24".into()),
            mtu: None,
            gateways: vec!["198.18.70.1/24".into()],
            ip_masq: masq,
            netns: "/run/netns/x".into(),
            mac: "02:00:00:00:00:01".into(),
            port: "uk0".into(),
            ips: vec!["198.18.70.2/24".into()],
        }
    }

    #[test]
    fn one_masquerade_per_network_that_asks() {
        let mut r = CniRegistry::new(None, "t");
        for (id, net, masq) in [
            ("a", "blue", true),
            ("b", "blue", true),
            ("c", "red", false),
        ] {
            r.attachments
                .insert((id.into(), "eth0".into()), attachment(id, net, masq));
        }
        let m = r.masquerades();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].gateway_port, r.gateway_port("blue"));
        assert_eq!(r.gateway_port("blue").len(), 15);
        assert_ne!(r.gateway_port("blue"), r.gateway_port("red"));
        assert_ne!(
            r.gateway_port("blue"),
            CniRegistry::new(None, "u").gateway_port("blue")
        );
    }
}

//! The CNI specification's wire shapes (1.0.0 and 1.1.0, containernetworking/cni
//! `SPEC.md`) as uswitch-cni reads and writes them: the network configuration on stdin,
//! the result and error objects on stdout.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The versions this plugin speaks (results are the same shape in all of them).
pub const SUPPORTED_VERSIONS: &[&str] = &["0.4.0", "1.0.0", "1.1.0"];
/// Versions that know `STATUS` and `GC`.
pub const VERSIONS_WITH_GC: &[&str] = &["1.1.0"];
/// Far more than any configuration; a bigger stdin is refused before it is parsed.
pub const MAX_STDIN: usize = 1 << 20;

/// The specification's error codes this plugin uses.
pub mod code {
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    pub const UNSUPPORTED_FIELD: u32 = 2;
    pub const UNKNOWN_CONTAINER: u32 = 3;
    pub const INVALID_ENVIRONMENT: u32 = 4;
    pub const IO_FAILURE: u32 = 5;
    pub const DECODING_FAILURE: u32 = 6;
    pub const INVALID_CONFIG: u32 = 7;
    pub const TRY_AGAIN_LATER: u32 = 11;
    pub const NOT_AVAILABLE: u32 = 50;
    /// Plugin-specific (100 and up): `CNI_IFNAME` exists in the namespace already.
    pub const INTERFACE_EXISTS: u32 = 100;
    /// Plugin-specific: `CHECK` found the interface not as `ADD` left it.
    pub const CHECK_FAILED: u32 = 101;
}

/// A CNI error object: printed on stdout, with a non-zero exit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CniError {
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    pub code: u32,
    pub msg: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
}

impl CniError {
    pub fn new(code: u32, msg: impl Into<String>) -> CniError {
        CniError {
            cni_version: "1.0.0".into(),
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    pub fn details(mut self, details: impl Into<String>) -> CniError {
        self.details = details.into();
        self
    }
}

/// The network configuration uswitch-cni reads (other keys are kept, untouched, for the
/// IPAM plugin and the chain).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetConf {
    pub cni_version: String,
    pub name: String,
    #[serde(rename = "type")]
    pub plugin_type: String,
    /// The switch by `--name`, or its control socket path.
    #[serde(default)]
    pub switch: Option<String>,
    #[serde(default)]
    pub control: Option<String>,
    /// The uswitch network; the configuration's `name` when absent.
    #[serde(default)]
    pub network: Option<String>,
    /// Used when the network has to be created.
    #[serde(default)]
    pub subnet: Option<String>,
    #[serde(default)]
    pub mtu: Option<u32>,
    #[serde(default)]
    pub ip_masq: bool,
    #[serde(default)]
    pub ipam: Option<Ipam>,
    /// The network is a cluster network: addresses come from the cluster, not from IPAM.
    #[serde(default)]
    pub cluster: bool,
    #[serde(default)]
    pub runtime_config: RuntimeConfig,
    #[serde(default)]
    pub prev_result: Option<Value>,
    /// GC's list of the attachments the runtime still has.
    #[serde(default, rename = "cni.dev/valid-attachments")]
    pub valid_attachments: Vec<ValidAttachment>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Ipam {
    #[serde(rename = "type")]
    pub plugin_type: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct RuntimeConfig {
    /// The `mac` capability.
    #[serde(default)]
    pub mac: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ValidAttachment {
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
}

/// A result: what `ADD` prints, and what an IPAM plugin gives.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CniResult {
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<Interface>,
    #[serde(default)]
    pub ips: Vec<IpConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    #[serde(default, skip_serializing_if = "Dns::is_empty")]
    pub dns: Dns,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sandbox: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    /// `ADDR/PREFIX`.
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// Index into `interfaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub dst: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    fn is_empty(&self) -> bool {
        self.nameservers.is_empty()
            && self.domain.is_none()
            && self.search.is_empty()
            && self.options.is_empty()
    }
}

/// Reads a configuration: a decoding failure (code 6) for what is not JSON, an invalid
/// configuration (7) for JSON that is not one, an incompatible version (1) for a version
/// this plugin does not speak.
pub fn parse_conf(stdin: &[u8]) -> Result<NetConf, CniError> {
    if stdin.len() > MAX_STDIN {
        return Err(CniError::new(
            code::DECODING_FAILURE,
            format!("the network configuration is over {MAX_STDIN} bytes"),
        ));
    }
    if stdin.iter().all(u8::is_ascii_whitespace) {
        return Err(CniError::new(
            code::DECODING_FAILURE,
            "no network configuration on stdin (the runtime passes it as JSON)",
        ));
    }
    let value: Value = serde_json::from_slice(stdin).map_err(|e| {
        CniError::new(
            code::DECODING_FAILURE,
            "the network configuration is not JSON",
        )
        .details(e.to_string())
    })?;
    let conf: NetConf = serde_json::from_value(value).map_err(|e| {
        CniError::new(
            code::INVALID_CONFIG,
            format!("the network configuration is not one uswitch-cni reads: {e}"),
        )
    })?;
    if !SUPPORTED_VERSIONS.contains(&conf.cni_version.as_str()) {
        return Err(CniError::new(
            code::INCOMPATIBLE_VERSION,
            format!(
                "uswitch-cni speaks CNI {}, not '{}': set cniVersion to one of them",
                SUPPORTED_VERSIONS.join(", "),
                conf.cni_version
            ),
        ));
    }
    if conf.name.is_empty() {
        return Err(CniError::new(
            code::INVALID_CONFIG,
            "the network configuration has no name",
        ));
    }
    if conf.switch.is_some() && conf.control.is_some() {
        return Err(CniError::new(
            code::INVALID_CONFIG,
            "give \"switch\" (a uswitch --name) or \"control\" (a socket path), not both",
        ));
    }
    if let Some(ipam) = &conf.ipam {
        if ipam.plugin_type.is_empty() || ipam.plugin_type.contains('/') {
            return Err(CniError::new(
                code::INVALID_CONFIG,
                format!(
                    "ipam.type '{}' is not a plugin name (host-local, dhcp, static, ...)",
                    ipam.plugin_type
                ),
            ));
        }
    }
    Ok(conf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configurations_are_read_or_refused_with_the_specs_codes() {
        let ok = br#"{"cniVersion":"1.0.0","name":"n","type":"uswitch-cni","switch":"lab",
            "ipam":{"type":"host-local","subnet":"198.18.70.0/24"},"runtimeConfig":{"mac":"02:00:00:00:00:01"},
            "somethingElse":[1,2]}"#;
        let c = parse_conf(ok).unwrap();
        assert_eq!(c.switch.as_deref(), Some("lab"));
        assert_eq!(c.runtime_config.mac.as_deref(), Some("02:00:00:00:00:01"));
        let code_of = |s: &[u8]| parse_conf(s).unwrap_err().code;
        assert_eq!(code_of(b""), code::DECODING_FAILURE);
        assert_eq!(code_of(b"{nope"), code::DECODING_FAILURE);
        assert_eq!(code_of(&vec![b' '; MAX_STDIN + 1]), code::DECODING_FAILURE);
        assert_eq!(code_of(b"[1]"), code::INVALID_CONFIG);
        assert_eq!(
            code_of(br#"{"cniVersion":"9.9.9","name":"n","type":"t"}"#),
            code::INCOMPATIBLE_VERSION
        );
        assert_eq!(
            code_of(br#"{"cniVersion":"1.0.0","name":"n","type":"t","ipam":{"type":"../x"}}"#),
            code::INVALID_CONFIG
        );
        let e = CniError::new(7, "m").details("d");
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["code"], 7);
        assert_eq!(json["details"], "d");
    }
}

//! Why bytes are not the packet a checked view was asked for.

/// Why bytes are not the IP packet a caller looked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IpError {
    /// The buffer ends before a header or a declared length does.
    #[error("truncated: the buffer ends before the header or the declared length")]
    Truncated,
    /// An IPv4 EtherType over something that is not version 4 (or IPv6 over not 6).
    #[error("the IP version does not match the EtherType")]
    BadVersion,
    /// A length field smaller than the header it belongs to.
    #[error("a length field is smaller than its header")]
    BadLength,
    /// Not IPv4 or IPv6 (or an Ethernet header that does not parse).
    #[error("not an IPv4 or IPv6 frame")]
    NotIp,
}

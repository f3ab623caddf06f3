//! VXLAN overlay I/O: an endpoint per local address and UDP port, and a peer per remote.
//!
//! Receiving uses one UDP socket per `(local address, port)`, which serves every VNI on
//! it (with UDP GRO, so datagrams that crossed the underlay as one UDP GSO packet arrive
//! in one read). Sending uses a small pool of UDP sockets on the same local address, each
//! on an ephemeral port: the inner flow's hash picks the socket, so a flow keeps one
//! source port and flows spread across ports, as the kernel's vxlan driver does. The
//! segments of a GSO frame leave in one `sendmsg` with UDP GSO. Nothing is ever
//! fragmented (`IP_PMTUDISC_DO` / `IPV6_DONTFRAG`): a datagram over the path MTU fails
//! with `EMSGSIZE` and is counted as `egress_too_big`.
//!
//! Which network a VNI carries, which remote a datagram comes from and what is dropped on
//! the way in are the forwarder's decisions (`forwarder::overlay`); this module only moves
//! datagrams.

use std::io;
use std::mem;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

use forwarder::EndpointId;
use packets::offload::Segments;
use packets::vxlan::{flow_hash, write_header, VXLAN_HEADER_LEN};

use super::setsockopt_int;

use libc::{SOL_UDP, UDP_GRO, UDP_SEGMENT};
/// Datagrams per UDP GSO send at most (the kernel's limit is 64 on older kernels).
const GSO_MAX_SEGMENTS: usize = 64;
/// Payload bytes per UDP GSO send at most (an IPv6 jumbogram aside, one IP packet's worth).
const GSO_MAX_BYTES: usize = 65_000;
/// Sending sockets per endpoint: a flow's hash picks one, and so its source port.
const SENDERS: usize = 16;

/// Refuses to fragment what `fd` sends: a datagram over the path MTU fails with
/// `EMSGSIZE`.
fn never_fragment(fd: RawFd, v4: bool) -> io::Result<()> {
    if v4 {
        setsockopt_int(
            fd,
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            libc::IP_PMTUDISC_DO,
        )
    } else {
        setsockopt_int(
            fd,
            libc::IPPROTO_IPV6,
            libc::IPV6_MTU_DISCOVER,
            libc::IPV6_PMTUDISC_DO,
        )?;
        setsockopt_int(fd, libc::IPPROTO_IPV6, libc::IPV6_DONTFRAG, 1)
    }
}

/// A socket address in the C layout.
struct RawAddr {
    storage: libc::sockaddr_storage,
    len: libc::socklen_t,
}

impl RawAddr {
    fn new(addr: SocketAddr) -> RawAddr {
        // SAFETY: sockaddr_storage is plain data; all-zero is a valid value.
        let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
        let len = match addr {
            SocketAddr::V4(a) => {
                // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
                let sin = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in) };
                sin.sin_family = libc::AF_INET as libc::sa_family_t;
                sin.sin_port = a.port().to_be();
                sin.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
                mem::size_of::<libc::sockaddr_in>()
            }
            SocketAddr::V6(a) => {
                // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
                let sin6 = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in6) };
                sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sin6.sin6_port = a.port().to_be();
                sin6.sin6_addr.s6_addr = a.ip().octets();
                mem::size_of::<libc::sockaddr_in6>()
            }
        };
        RawAddr {
            storage,
            len: len as libc::socklen_t,
        }
    }
}

impl std::fmt::Debug for RawAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RawAddr")
    }
}

/// The UDP sockets an endpoint sends through, shared by its peers: each bound to the
/// local address and an ephemeral port the kernel picks, so a flow's hash choosing one
/// gives the flow a stable source port in the ephemeral range, and different flows
/// different ports. The kernel builds the IP and UDP headers (and the UDP checksum, which
/// IPv6 requires); uswitch writes the VXLAN header. A batch of datagrams of one size goes
/// out in one `sendmsg` with UDP GSO (`UDP_SEGMENT`) where the kernel has it.
#[derive(Debug)]
pub struct Senders {
    socks: Vec<UdpSocket>,
}

impl Senders {
    fn open(local: IpAddr) -> io::Result<Senders> {
        let mut socks = Vec::with_capacity(SENDERS);
        for _ in 0..SENDERS {
            let s = UdpSocket::bind(SocketAddr::new(local, 0))?;
            s.set_nonblocking(true)?;
            never_fragment(s.as_raw_fd(), local.is_ipv4())?;
            // Nothing is read from a sending socket: whatever a stranger sends to its
            // port may take the kernel's smallest buffer, no more.
            setsockopt_int(s.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF, 1)?;
            // Without it the kernel tells a UDP socket that a datagram its qdisc dropped
            // was sent (it only counts `Udp: SndbufErrors`); with it the send fails with
            // ENOBUFS and the drop is counted on the remote's port (`egress_full`).
            let (level, option) = match local {
                IpAddr::V4(_) => (libc::IPPROTO_IP, libc::IP_RECVERR),
                IpAddr::V6(_) => (libc::IPPROTO_IPV6, libc::IPV6_RECVERR),
            };
            setsockopt_int(s.as_raw_fd(), level, option, 1)?;
            socks.push(s);
        }
        Ok(Senders { socks })
    }

    /// The socket for a flow hash.
    fn pick(&self, hash: u32) -> &UdpSocket {
        &self.socks[hash as usize % self.socks.len()]
    }

    /// The source ports in use, for `show vxlan`.
    pub fn ports(&self) -> Vec<u16> {
        self.socks
            .iter()
            .filter_map(|s| s.local_addr().ok().map(|a| a.port()))
            .collect()
    }
}

/// iovecs per `sendmsg` at most: a head and a payload slice for each datagram of a
/// GSO send.
const MAX_IOVECS: usize = 2 * GSO_MAX_SEGMENTS;

/// Sends the datagram `parts` concatenated (at most [`MAX_IOVECS`] of them), to `to`,
/// through `sock`; with `gso` set, the kernel cuts it into datagrams of `gso` bytes (the
/// last may be shorter).
fn send_parts(
    sock: &UdpSocket,
    to: &RawAddr,
    parts: &[&[u8]],
    gso: Option<u16>,
) -> io::Result<usize> {
    let mut iov: [libc::iovec; MAX_IOVECS] = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; MAX_IOVECS];
    for (slot, part) in iov.iter_mut().zip(parts) {
        slot.iov_base = part.as_ptr() as *mut libc::c_void;
        slot.iov_len = part.len();
    }
    // Room for one cmsghdr carrying a u16, aligned as the kernel wants.
    let mut control = [0u64; 4];
    // SAFETY: msghdr is plain data; the fields set below point at live buffers.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_name = &to.storage as *const _ as *mut libc::c_void;
    msg.msg_namelen = to.len;
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = parts.len().min(MAX_IOVECS) as _;
    if let Some(size) = gso {
        msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
        // SAFETY: CMSG_SPACE is a pure computation.
        msg.msg_controllen = unsafe { libc::CMSG_SPACE(mem::size_of::<u16>() as u32) } as _;
        // SAFETY: msg_control points at `control`, which holds CMSG_SPACE(2) bytes, so
        // the first header and its data fit.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = SOL_UDP;
            (*cmsg).cmsg_type = UDP_SEGMENT;
            (*cmsg).cmsg_len = libc::CMSG_LEN(mem::size_of::<u16>() as u32) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(cmsg) as *mut u16, size);
        }
    }
    // SAFETY: msg and everything it points at outlive the call; the kernel only reads
    // the buffers.
    let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// The datagrams of one GSO frame bound for a remote, gathered where they lie: datagram
/// `i` is its head (a VXLAN header and the segment's own headers, as
/// `packets::offload::segment_headers` wrote them with room for the VXLAN header) then
/// the segment's payload, a slice of the GSO frame. No payload byte is copied in
/// userspace: `sendmsg` gathers them.
pub struct Gathered<'a> {
    /// Every datagram's head, back to back.
    pub heads: &'a [u8],
    /// The GSO frame the payloads are cut from.
    pub frame: &'a [u8],
    pub segs: Segments,
}

impl<'a> Gathered<'a> {
    fn head_len(&self) -> usize {
        VXLAN_HEADER_LEN + self.segs.header_len
    }

    /// Datagram `i`'s head and payload.
    pub fn parts(&self, i: usize) -> [&'a [u8]; 2] {
        let at = i * self.head_len();
        [
            &self.heads[at..at + self.head_len()],
            self.segs.payload(self.frame, i),
        ]
    }

    fn len(&self, i: usize) -> usize {
        self.head_len() + self.segs.payload(self.frame, i).len()
    }
}

/// One remote of one network: the port the forwarder sees for it.
#[derive(Debug)]
pub struct Peer {
    name: String,
    vni: u32,
    to: RawAddr,
    senders: Arc<Senders>,
}

impl Peer {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn vni(&self) -> u32 {
        self.vni
    }

    /// Encapsulates `frame` and sends it to the remote.
    pub fn write(&self, frame: &[u8]) -> io::Result<usize> {
        let mut h = [0u8; VXLAN_HEADER_LEN];
        write_header(&mut h, self.vni);
        let sock = self.senders.pick(flow_hash(frame));
        past_stale_errors(sock, || send_parts(sock, &self.to, &[&h, frame], None))
    }

    /// Whether `other` sends through the same sockets (an endpoint's): replicas of one
    /// frame to both can leave in one [`send_replicas`] call.
    pub fn shares_senders(&self, other: &Peer) -> bool {
        Arc::ptr_eq(&self.senders, &other.senders)
    }

    /// Sends every datagram of `batch` (one flow's: they share a source port) in as few
    /// `sendmsg` calls as UDP GSO allows. Returns how many datagrams went, and the error
    /// that stopped the rest, if one did.
    pub fn send_gathered(&self, batch: &Gathered<'_>) -> (usize, Option<io::Error>) {
        let sock = self.senders.pick(flow_hash(batch.frame));
        let count = batch.segs.count;
        let mut parts: [&[u8]; MAX_IOVECS] = [&[]; MAX_IOVECS];
        let mut sent = 0;
        // After a refused GSO send, the rest goes one datagram at a time.
        let mut one_by_one = false;
        while sent < count {
            let size = batch.len(sent);
            let (mut n, mut bytes) = (1, size);
            // A run: datagrams of `size` bytes, ended by at most one shorter datagram.
            while !one_by_one
                && sent + n < count
                && n < GSO_MAX_SEGMENTS
                && bytes + batch.len(sent + n) <= GSO_MAX_BYTES
                && batch.len(sent + n) <= size
            {
                bytes += batch.len(sent + n);
                n += 1;
                if batch.len(sent + n - 1) < size {
                    break;
                }
            }
            let gso = (n > 1).then_some(size as u16);
            for (slots, i) in parts.chunks_exact_mut(2).zip(sent..sent + n) {
                slots.copy_from_slice(&batch.parts(i));
            }
            let parts = &parts[..2 * n];
            match past_stale_errors(sock, || send_parts(sock, &self.to, parts, gso)) {
                Ok(_) => sent += n,
                // The kernel may refuse a GSO send (no UDP_SEGMENT, a segment over the
                // path MTU is EINVAL there); the datagrams alone say what is wrong.
                Err(_) if gso.is_some() => one_by_one = true,
                Err(e) => return (sent, Some(e)),
            }
        }
        (sent, None)
    }
}

/// Replicas of one frame per `sendmmsg` at most.
pub const REPLICAS_PER_CALL: usize = 64;

/// Head-end replication: encapsulates `frame` for each of `peers` (which share their
/// senders, see [`Peer::shares_senders`]; at most [`REPLICAS_PER_CALL`]) and sends the
/// replicas in one `sendmmsg`, not a `sendmsg` each. The frame is not copied: every
/// datagram gathers its own VXLAN header and the one frame. `done(i, result)` hears what
/// became of the replica for `peers[i]`, in order.
pub fn send_replicas(peers: &[&Peer], frame: &[u8], mut done: impl FnMut(usize, io::Result<()>)) {
    let n = peers.len().min(REPLICAS_PER_CALL);
    let Some(first) = peers.first() else {
        return;
    };
    let sock = first.senders.pick(flow_hash(frame));
    let mut heads = [[0u8; VXLAN_HEADER_LEN]; REPLICAS_PER_CALL];
    for (head, peer) in heads.iter_mut().zip(&peers[..n]) {
        write_header(head, peer.vni);
    }
    let empty = libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    };
    let mut iovs = [[empty; 2]; REPLICAS_PER_CALL];
    // SAFETY: mmsghdr is plain data; all-zero is a valid value, filled in below.
    let mut msgs: [libc::mmsghdr; REPLICAS_PER_CALL] = unsafe { mem::zeroed() };
    for i in 0..n {
        iovs[i] = [
            libc::iovec {
                iov_base: heads[i].as_mut_ptr() as *mut libc::c_void,
                iov_len: VXLAN_HEADER_LEN,
            },
            libc::iovec {
                iov_base: frame.as_ptr() as *mut libc::c_void,
                iov_len: frame.len(),
            },
        ];
        let hdr = &mut msgs[i].msg_hdr;
        hdr.msg_name = &peers[i].to.storage as *const _ as *mut libc::c_void;
        hdr.msg_namelen = peers[i].to.len;
        hdr.msg_iov = iovs[i].as_mut_ptr();
        hdr.msg_iovlen = 2;
    }
    let mut at = 0;
    while at < n {
        let rest = &mut msgs[at..n];
        let sent = past_stale_errors(sock, || {
            // SAFETY: `rest` points at the heads, the frame and the peers' addresses, all
            // alive across the call; the kernel only reads them (and writes msg_len).
            let sent = unsafe {
                libc::sendmmsg(
                    sock.as_raw_fd(),
                    rest.as_mut_ptr(),
                    rest.len() as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            match sent {
                n if n > 0 => Ok(n as usize),
                0 => Err(io::Error::other("sendmmsg sent nothing")),
                _ => Err(io::Error::last_os_error()),
            }
        });
        match sent {
            Ok(sent) => {
                for i in at..at + sent {
                    done(i, Ok(()));
                }
                at += sent;
            }
            // The first unsent replica's error (a failure after some were sent comes
            // back when the rest is tried again).
            Err(e) => {
                done(at, Err(e));
                at += 1;
            }
        }
    }
}

/// Makes the send `send` through `sock`, and once more if it failed only because an
/// ICMP error about an earlier datagram, maybe to another remote, was pending on the
/// socket (`IP_RECVERR`, see [`Senders::open`], reports it on the next send, which it
/// fails): that datagram is gone, this one was not sent yet.
fn past_stale_errors<T>(
    sock: &UdpSocket,
    mut send: impl FnMut() -> io::Result<T>,
) -> io::Result<T> {
    match send() {
        Err(e) if is_stale_icmp_error(&e) => {
            drain_errors(sock);
            send()
        }
        other => other,
    }
}

/// Whether a send failed only because an ICMP error about an earlier datagram was
/// pending on the socket (see `IP_RECVERR` in [`Senders::open`]).
fn is_stale_icmp_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ECONNREFUSED)
            | Some(libc::EHOSTUNREACH)
            | Some(libc::ENETUNREACH)
            | Some(libc::EHOSTDOWN)
            | Some(libc::EPROTO)
    )
}

/// Empties the socket's error queue (the ICMP errors `IP_RECVERR` keeps there; they are
/// not ours to act on: the overlay has no connection to tear down).
fn drain_errors(sock: &UdpSocket) {
    let mut data = [0u8; 256];
    let mut control = [0u64; 32];
    for _ in 0..64 {
        let mut iov = libc::iovec {
            iov_base: data.as_mut_ptr() as *mut libc::c_void,
            iov_len: data.len(),
        };
        // SAFETY: msghdr is plain data; its pointers are set to live buffers below.
        let mut msg: libc::msghdr = unsafe { mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = mem::size_of_val(&control) as _;
        // SAFETY: recvmsg on our socket with buffers that outlive the call.
        let n = unsafe {
            libc::recvmsg(
                sock.as_raw_fd(),
                &mut msg,
                libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            return;
        }
    }
}

/// One UDP socket on a local address and port, for every VNI on it.
#[derive(Debug)]
pub struct Endpoint {
    pub local: IpAddr,
    pub port: u16,
    pub underlay: String,
    pub underlay_mtu: usize,
    socket: UdpSocket,
    senders: Arc<Senders>,
    /// Whether the receiving socket hands over coalesced datagrams (UDP GRO).
    pub gro: bool,
    /// The forwarder's handle for this endpoint (its VNIs, remotes and counters).
    pub id: EndpointId,
}

/// Why an endpoint could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    #[error("binding the VXLAN socket {at}: {source}{}", if source.kind() == io::ErrorKind::AddrInUse {
        " (a kernel vxlan device with this dstport, or another uswitch, holds it in this namespace)"
    } else {
        ""
    })]
    Bind {
        at: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("opening the VXLAN sockets on {local}: {source}")]
    Sockets {
        local: IpAddr,
        #[source]
        source: io::Error,
    },
    #[error("listing interfaces: {0}")]
    Interfaces(#[source] io::Error),
    #[error("local={local} is not an address of any interface in this namespace (add it first, e.g. ip addr add {local}/24 dev eth0{})", if local.is_ipv6() { " nodad" } else { "" })]
    NotLocal { local: IpAddr },
    #[error(transparent)]
    Underlay(#[from] super::tap::TapError),
}

impl Endpoint {
    /// Binds the endpoint's sockets and finds its underlay interface and MTU.
    pub fn open(local: IpAddr, port: u16, id: EndpointId) -> Result<Endpoint, TunnelError> {
        // The underlay first: "not an address of any interface" says more than EADDRNOTAVAIL.
        let underlay = underlay_of(local)?;
        let at = SocketAddr::new(local, port);
        let socket = UdpSocket::bind(at).map_err(|source| TunnelError::Bind { at, source })?;
        Self::around(socket, local, port, id, underlay)
    }

    /// The endpoint around `socket`, bound to `local`:`port` already (one handed over by
    /// the uswitch this one takes over from, or just bound by [`Endpoint::open`]).
    pub fn with_socket(
        socket: UdpSocket,
        local: IpAddr,
        port: u16,
        id: EndpointId,
    ) -> Result<Endpoint, TunnelError> {
        let underlay = underlay_of(local)?;
        Self::around(socket, local, port, id, underlay)
    }

    fn around(
        socket: UdpSocket,
        local: IpAddr,
        port: u16,
        id: EndpointId,
        (underlay, underlay_mtu): (String, usize),
    ) -> Result<Endpoint, TunnelError> {
        let sockets = |source| TunnelError::Sockets { local, source };
        socket.set_nonblocking(true).map_err(sockets)?;
        let senders = Senders::open(local).map_err(sockets)?;
        // Datagrams that crossed the underlay as one UDP GSO packet (a veth keeps them
        // whole) arrive as one read; without it the kernel cuts them up first.
        let gro = setsockopt_int(socket.as_raw_fd(), SOL_UDP, UDP_GRO, 1).is_ok();
        Ok(Endpoint {
            local,
            port,
            underlay,
            underlay_mtu,
            socket,
            senders: Arc::new(senders),
            gro,
            id,
        })
    }

    pub fn raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }

    /// The receiving socket, for a handover to a new uswitch.
    pub fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.socket.as_fd()
    }

    /// The peer device for `remote` on `vni`; the caller attaches it and then calls
    /// [`Endpoint::add_peer`] with its port id.
    pub fn peer(&self, vni: u32, remote: IpAddr) -> Peer {
        Peer {
            name: forwarder::remote_port_name(vni, remote),
            vni,
            to: RawAddr::new(SocketAddr::new(remote, self.port)),
            senders: Arc::clone(&self.senders),
        }
    }

    /// The source ports the endpoint's flows leave from.
    pub fn source_ports(&self) -> Vec<u16> {
        self.senders.ports()
    }

    /// Receives into `buf`: one datagram, or with UDP GRO several of one size back to
    /// back. Returns the bytes read, the sender, and the size of each datagram (all but
    /// the last, which may be shorter). A read larger than `buf` is cut short: the kernel
    /// says so with `MSG_TRUNC`, returned as `truncated`.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Received> {
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr() as *mut libc::c_void,
            iov_len: buf.len(),
        };
        // SAFETY: sockaddr_storage is plain data.
        let mut from: libc::sockaddr_storage = unsafe { mem::zeroed() };
        let mut control = [0u64; 8];
        // SAFETY: msghdr is plain data; the fields set below point at live buffers.
        let mut msg: libc::msghdr = unsafe { mem::zeroed() };
        msg.msg_name = &mut from as *mut _ as *mut libc::c_void;
        msg.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = mem::size_of_val(&control) as _;
        // SAFETY: every pointer in msg refers to a live buffer of the stated size.
        let n = unsafe { libc::recvmsg(self.socket.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let len = n as usize;
        let mut segment = len;
        // SAFETY: walking the control messages the kernel wrote within msg_controllen.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
            while !cmsg.is_null() {
                if (*cmsg).cmsg_level == SOL_UDP && (*cmsg).cmsg_type == UDP_GRO {
                    let size = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const i32);
                    if size > 0 {
                        segment = size as usize;
                    }
                }
                cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
            }
        }
        let sender = match from.ss_family as i32 {
            libc::AF_INET => {
                // SAFETY: the family says sockaddr_in.
                let sin = unsafe { &*(&from as *const _ as *const libc::sockaddr_in) };
                IpAddr::from(sin.sin_addr.s_addr.to_ne_bytes())
            }
            _ => {
                // SAFETY: a UDP socket reports AF_INET or AF_INET6.
                let sin6 = unsafe { &*(&from as *const _ as *const libc::sockaddr_in6) };
                IpAddr::from(sin6.sin6_addr.s6_addr)
            }
        };
        Ok(Received {
            len,
            from: sender,
            segment: segment.max(1),
            truncated: msg.msg_flags & libc::MSG_TRUNC != 0,
        })
    }
}

/// What one read from an endpoint's socket brought.
#[derive(Debug, Clone, Copy)]
pub struct Received {
    pub len: usize,
    pub from: IpAddr,
    /// The size of each datagram in the read (UDP GRO); `len` when there is one.
    pub segment: usize,
    pub truncated: bool,
}

/// The interface holding `local` and its MTU.
pub fn underlay_of(local: IpAddr) -> Result<(String, usize), TunnelError> {
    let mut addrs: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills the pointer with a list we free below.
    if unsafe { libc::getifaddrs(&mut addrs) } < 0 {
        return Err(TunnelError::Interfaces(io::Error::last_os_error()));
    }
    let mut found = None;
    let mut cur = addrs;
    while !cur.is_null() {
        // SAFETY: cur is a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() {
            continue;
        }
        // SAFETY: ifa_addr is non-null and points at a sockaddr of its family.
        let family = unsafe { (*ifa.ifa_addr).sa_family } as i32;
        let ip = match family {
            libc::AF_INET => {
                // SAFETY: the family says sockaddr_in.
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                IpAddr::from(sin.sin_addr.s_addr.to_ne_bytes())
            }
            libc::AF_INET6 => {
                // SAFETY: the family says sockaddr_in6.
                let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                IpAddr::from(sin6.sin6_addr.s6_addr)
            }
            _ => continue,
        };
        if ip == local {
            // SAFETY: ifa_name is a NUL-terminated string owned by the list.
            let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) };
            found = Some(name.to_string_lossy().into_owned());
            break;
        }
    }
    // SAFETY: addrs came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(addrs) };
    let name = found.ok_or(TunnelError::NotLocal { local })?;
    let mtu = super::tap::interface_mtu(&name)?;
    Ok((name, mtu))
}

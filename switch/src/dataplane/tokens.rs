//! The poll's tokens: which source a readiness event is for. The low two bits say the
//! kind, the rest the index, so the scheme fits a 32-bit `usize` as well as a 64-bit one.

use forwarder::PortId;
use mio::Token;

const KIND_BITS: u32 = 2;
const PORT: usize = 0;
const ENDPOINT: usize = 1;
const SIDECAR: usize = 2;
const SIGNALS: usize = 3;

/// The largest index of any kind.
pub const MAX_INDEX: usize = usize::MAX >> KIND_BITS;
/// The largest sidecar number.
pub const MAX_SIDECAR: usize = MAX_INDEX;

/// What a token stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Port(PortId),
    /// A VXLAN endpoint, by its index in the switch.
    Endpoint(usize),
    /// Something that shares the poll (the control socket), by its own number.
    Sidecar(usize),
    Signals,
    /// The worker's waker: a command waits on its channel.
    Wake,
}

pub fn port(id: PortId) -> Token {
    Token(((id.0 as usize) << KIND_BITS) | PORT)
}

pub fn endpoint(index: usize) -> Token {
    Token((index << KIND_BITS) | ENDPOINT)
}

pub fn sidecar(n: usize) -> Token {
    Token((n << KIND_BITS) | SIDECAR)
}

pub fn signals() -> Token {
    Token(SIGNALS)
}

pub fn wake() -> Token {
    Token((1 << KIND_BITS) | SIGNALS)
}

pub fn decode(token: Token) -> Source {
    let index = token.0 >> KIND_BITS;
    match token.0 & ((1 << KIND_BITS) - 1) {
        PORT => Source::Port(PortId(index as u32)),
        ENDPOINT => Source::Endpoint(index),
        SIDECAR => Source::Sidecar(index),
        _ if index == 0 => Source::Signals,
        _ => Source::Wake,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_decode_to_what_they_encode() {
        for id in [0u32, 1, 65_535, u32::MAX >> KIND_BITS] {
            assert_eq!(decode(port(PortId(id))), Source::Port(PortId(id)));
        }
        for i in [0usize, 7, MAX_INDEX] {
            assert_eq!(decode(endpoint(i)), Source::Endpoint(i));
            assert_eq!(decode(sidecar(i)), Source::Sidecar(i));
        }
        assert_eq!(decode(signals()), Source::Signals);
        assert_eq!(decode(wake()), Source::Wake);
    }
}

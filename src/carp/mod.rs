//! CARP v2: the election state machine and the wire format.
pub mod fsm;
pub mod ipv4;
pub mod ipv6;
pub mod packet;

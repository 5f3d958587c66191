//! An axon's endpoint as the chain stores it (`SubtensorModule.Axons`): the IP as a
//! `u128` with an `ip_type` of 4 or 6, the port, the protocol and the SDK version.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::error::ChainError;

/// The endpoint a miner announces with `serve_axon`, or reads back from `Axons`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AxonEndpoint {
    /// Public IP address.
    pub ip: IpAddr,
    /// TCP port.
    pub port: u16,
    /// The SDK version number the axon reports (`bittensor.__version_as_int__`).
    pub version: u32,
    /// Protocol number (4 for the HTTP axon).
    pub protocol: u8,
}

impl AxonEndpoint {
    /// The IP as the chain stores it: an IPv4 address in the low 32 bits, an IPv6
    /// address as its 128 bits.
    pub fn ip_u128(&self) -> u128 {
        match self.ip {
            IpAddr::V4(v4) => u32::from(v4) as u128,
            IpAddr::V6(v6) => u128::from(v6),
        }
    }

    /// `ip_type`: 4 or 6.
    pub fn ip_type(&self) -> u8 {
        match self.ip {
            IpAddr::V4(_) => 4,
            IpAddr::V6(_) => 6,
        }
    }

    /// Build from the chain's fields; an `ip_type` other than 4 or 6, or an IPv4 value
    /// over 32 bits, is an error.
    pub fn from_chain(
        ip: u128,
        ip_type: u8,
        port: u16,
        version: u32,
        protocol: u8,
    ) -> Result<Self, ChainError> {
        let ip = match ip_type {
            4 => IpAddr::V4(Ipv4Addr::from(u32::try_from(ip).map_err(|_| {
                ChainError::Decode(format!("axon ip {ip} is not an IPv4 address"))
            })?)),
            6 => IpAddr::V6(Ipv6Addr::from(ip)),
            other => {
                return Err(ChainError::Decode(format!(
                    "axon ip_type {other} is neither 4 nor 6"
                )));
            }
        };
        Ok(Self {
            ip,
            port,
            version,
            protocol,
        })
    }

    /// Refuse what the chain refuses before paying for a transaction: 127.0.0.1, ::1,
    /// unspecified addresses and port 0.
    pub fn check_servable(&self) -> Result<(), ChainError> {
        let refused = self.ip == IpAddr::V4(Ipv4Addr::LOCALHOST)
            || self.ip == IpAddr::V6(Ipv6Addr::LOCALHOST)
            || self.ip.is_unspecified();
        if refused {
            return Err(ChainError::Invalid(format!(
                "the chain refuses axon ip {} (127.0.0.1, ::1 and unspecified); give the \
                 public ip with --external-ip",
                self.ip
            )));
        }
        if self.port == 0 {
            return Err(ChainError::Invalid("axon port 0 cannot be served".into()));
        }
        Ok(())
    }
}

impl std::fmt::Display for AxonEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.ip {
            IpAddr::V4(v4) => write!(f, "{v4}:{}", self.port),
            IpAddr::V6(v6) => write!(f, "[{v6}]:{}", self.port),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_and_ipv6_round_trip() {
        let v4 = AxonEndpoint {
            ip: "203.0.113.9".parse().unwrap(),
            port: 8091,
            version: 1,
            protocol: 4,
        };
        assert_eq!(v4.ip_u128(), 3_405_803_785);
        assert_eq!(
            AxonEndpoint::from_chain(v4.ip_u128(), 4, 8091, 1, 4).unwrap(),
            v4
        );
        let v6 = AxonEndpoint {
            ip: "2001:db8::1".parse().unwrap(),
            ..v4
        };
        assert_eq!(v6.ip_type(), 6);
        assert_eq!(
            AxonEndpoint::from_chain(v6.ip_u128(), 6, 8091, 1, 4).unwrap(),
            v6
        );
        assert!(AxonEndpoint::from_chain(1 << 40, 4, 1, 1, 4).is_err());
        assert!(AxonEndpoint::from_chain(1, 5, 1, 1, 4).is_err());
    }

    #[test]
    fn loopback_is_refused_before_paying() {
        let e = AxonEndpoint {
            ip: "127.0.0.1".parse().unwrap(),
            port: 8091,
            version: 1,
            protocol: 4,
        };
        assert!(e.check_servable().is_err());
        let v6 = AxonEndpoint {
            ip: "::1".parse().unwrap(),
            ..e
        };
        assert!(v6.check_servable().is_err());
        // Local test chains serve on 127.0.0.2, which the chain accepts.
        let local = AxonEndpoint {
            ip: "127.0.0.2".parse().unwrap(),
            ..e
        };
        assert!(local.check_servable().is_ok());
    }
}

//! Address classes the gateway never connects to, whatever a contract says:
//! link-local addresses and cloud metadata services by default (a contract
//! naming `169.254.169.254`, or a name that resolves to it, must not read a
//! cloud's credentials), and loopback or private ranges where the operator
//! says so (`gateway.deny`). Checked on the addresses a name resolves to, at
//! each call, and on IP literals in URLs and redirects.
//!
//! This module must never allow anything: the allowlist of origins
//! ([`crate::egress`]) does; this only takes addresses away.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A class of addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AddressClass {
    /// 169.254.0.0/16 and fe80::/10.
    LinkLocal,
    /// Cloud metadata services: 169.254.169.254, 169.254.170.2,
    /// 100.100.100.200 and fd00:ec2::254.
    Metadata,
    /// 127.0.0.0/8 and ::1.
    Loopback,
    /// 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 100.64.0.0/10 and fc00::/7.
    Private,
}

impl AddressClass {
    /// Whether `ip` is in the class.
    pub fn contains(self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        match (self, ip) {
            (AddressClass::LinkLocal, IpAddr::V4(v4)) => v4.is_link_local(),
            (AddressClass::LinkLocal, IpAddr::V6(v6)) => (v6.segments()[0] & 0xffc0) == 0xfe80,
            (AddressClass::Metadata, IpAddr::V4(v4)) => {
                [Ipv4Addr::new(169, 254, 169, 254), Ipv4Addr::new(169, 254, 170, 2), Ipv4Addr::new(100, 100, 100, 200)]
                    .contains(&v4)
            }
            (AddressClass::Metadata, IpAddr::V6(v6)) => v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254),
            (AddressClass::Loopback, ip) => ip.is_loopback(),
            (AddressClass::Private, IpAddr::V4(v4)) => {
                v4.is_private() || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64)
            }
            (AddressClass::Private, IpAddr::V6(v6)) => (v6.segments()[0] & 0xfe00) == 0xfc00,
        }
    }

    /// Its name, as `gateway.deny` writes it.
    pub fn name(self) -> &'static str {
        match self {
            AddressClass::LinkLocal => "link_local",
            AddressClass::Metadata => "metadata",
            AddressClass::Loopback => "loopback",
            AddressClass::Private => "private",
        }
    }
}

/// The classes denied by default.
pub fn default_deny() -> Vec<AddressClass> {
    vec![AddressClass::LinkLocal, AddressClass::Metadata]
}

/// The first of `classes` that holds `ip`.
pub fn denied(ip: IpAddr, classes: &[AddressClass]) -> Option<AddressClass> {
    classes.iter().copied().find(|class| class.contains(ip))
}

/// What a refusal of a denied address says (the executor recognizes it in
/// the client's error chain).
pub const DENIED: &str = "in a denied address class";

/// A name resolver that drops denied addresses, and fails when nothing else
/// is left.
#[derive(Debug)]
pub struct Resolver {
    classes: Arc<[AddressClass]>,
}

impl Resolver {
    /// A resolver denying `classes`.
    pub fn new(classes: &[AddressClass]) -> Resolver {
        Resolver { classes: classes.into() }
    }
}

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let classes = self.classes.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found.iter().copied().filter(|a| denied(a.ip(), &classes).is_none()).collect();
            if allowed.is_empty() && !found.is_empty() {
                let class = denied(found[0].ip(), &classes).map_or("", AddressClass::name);
                return Err(format!("`{host}` resolves only to addresses {DENIED} ({class}); see gateway.deny").into());
            }
            let addresses: reqwest::dns::Addrs = Box::new(allowed.into_iter());
            Ok(addresses)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_hold_their_addresses() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(AddressClass::Metadata.contains(ip("169.254.169.254")));
        assert!(AddressClass::LinkLocal.contains(ip("169.254.1.2")));
        assert!(AddressClass::LinkLocal.contains(ip("fe80::1")));
        assert!(AddressClass::Metadata.contains(ip("::ffff:169.254.169.254")), "IPv4 mapped in IPv6");
        assert!(AddressClass::Loopback.contains(ip("127.0.0.2")) && AddressClass::Loopback.contains(ip("::1")));
        for private in ["10.1.2.3", "172.16.0.1", "192.168.1.1", "100.64.0.1", "fd12::1"] {
            assert!(AddressClass::Private.contains(ip(private)), "{private}");
        }
        assert!(!AddressClass::Private.contains(ip("8.8.8.8")));
        assert_eq!(denied(ip("169.254.169.254"), &default_deny()), Some(AddressClass::LinkLocal));
        assert_eq!(denied(ip("127.0.0.1"), &default_deny()), None, "loopback only when asked");
    }

    #[tokio::test]
    async fn names_that_resolve_only_to_denied_addresses_are_refused() {
        use reqwest::dns::Resolve;
        use std::str::FromStr;
        let resolver = Resolver::new(&[AddressClass::Loopback]);
        let error = resolver.resolve(reqwest::dns::Name::from_str("localhost").unwrap()).await.err().unwrap();
        assert!(error.to_string().contains(DENIED), "{error}");
        let open = Resolver::new(&[AddressClass::Metadata]);
        let addresses: Vec<SocketAddr> = open.resolve(reqwest::dns::Name::from_str("localhost").unwrap()).await.unwrap().collect();
        assert!(!addresses.is_empty());
    }
}

//! Where `http` steps may connect. A step's URL comes from a model, so without a check it
//! reaches whatever the server can: the server's own API (`/discover`, `/v1/executions`),
//! cloud metadata at `169.254.169.254`, databases on the private network. [`EgressPolicy`]
//! refuses loopback, link-local, unspecified, private, shared (CGNAT), multicast and
//! documentation ranges unless the configured allow-list names them, and always refuses
//! the server's own listener.
//!
//! The check runs on the address a connection actually reached, after DNS and before a byte
//! is sent: the HTTP clients call [`EgressPolicy::check`] with the connected peer for every
//! connection they open, so a redirect, a second DNS answer or an IP literal is checked the
//! same way as the first URL.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::IpNet;

/// What `http` steps may reach.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressPolicy {
    /// Ranges allowed although they are internal (e.g. `10.1.0.0/16`, `127.0.0.1/32`).
    pub allowed: Vec<IpNet>,
    /// The server's own listener, never reachable.
    pub own_listener: Option<SocketAddr>,
}

impl EgressPolicy {
    /// `Ok` when a step may talk to `peer`, else why not.
    pub fn check(&self, peer: SocketAddr) -> Result<(), String> {
        let ip = canonical(peer.ip());
        if let Some(own) = self.own_listener
            && own.port() == peer.port()
            && (ip.is_loopback()
                || ip.is_unspecified()
                || ip == canonical(own.ip())
                || (own.ip().is_unspecified() && is_local_address(ip)))
        {
            return Err(format!(
                "{peer} is this server's own listener, which workflow steps may not call"
            ));
        }
        let Some(kind) = internal_kind(ip) else {
            return Ok(());
        };
        if self.allowed.iter().any(|range| range.contains(&ip)) {
            return Ok(());
        }
        Err(format!(
            "{peer} is a {kind} address, which http steps may not reach unless it is allowed (setting runner.local.http_allow)"
        ))
    }
}

/// An IPv4 address written as IPv6 (`::ffff:a.b.c.d`) is checked as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// Why `ip` is internal, if it is.
fn internal_kind(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => internal_v4(v4),
        IpAddr::V6(v6) => internal_v6(v6),
    }
}

fn internal_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_unspecified() || a == 0 {
        Some("unspecified")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if ip.is_private() {
        Some("private")
    } else if a == 100 && (64..128).contains(&b) {
        Some("shared (carrier-grade NAT)")
    } else if ip.is_multicast() || ip.is_broadcast() || a >= 240 {
        Some("multicast or reserved")
    } else if ip.is_documentation() || (a == 198 && (18..20).contains(&b)) {
        Some("reserved")
    } else {
        None
    }
}

fn internal_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_unspecified() {
        Some("unspecified")
    } else if first & 0xffc0 == 0xfe80 {
        Some("link-local")
    } else if first & 0xfe00 == 0xfc00 {
        Some("private (unique local)")
    } else if ip.is_multicast() {
        Some("multicast or reserved")
    } else if let Some(v4) = ip.to_ipv4() {
        // IPv4-compatible and NAT64-style embeddings reach IPv4 hosts.
        internal_v4(v4).map(|_| "IPv4-embedding")
    } else {
        None
    }
}

/// Whether `ip` belongs to one of this host's interfaces.
fn is_local_address(ip: IpAddr) -> bool {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list we free below; every node and
    // address pointer is checked for null before it is read, and sockaddr is read as the
    // family it says it is.
    unsafe {
        if libc::getifaddrs(&mut list) != 0 {
            // Unknown: treat as local, refusing rather than risking the server itself.
            return true;
        }
        let mut found = false;
        let mut node = list;
        while !node.is_null() && !found {
            let address = (*node).ifa_addr;
            if !address.is_null() {
                let family = libc::c_int::from((*address).sa_family);
                let local = if family == libc::AF_INET {
                    let v4 = &*address.cast::<libc::sockaddr_in>();
                    Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr))))
                } else if family == libc::AF_INET6 {
                    let v6 = &*address.cast::<libc::sockaddr_in6>();
                    Some(IpAddr::V6(Ipv6Addr::from(v6.sin6_addr.s6_addr)))
                } else {
                    None
                };
                found = local.is_some_and(|local| canonical(local) == ip);
            }
            node = (*node).ifa_next;
        }
        libc::freeifaddrs(list);
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(text: &str) -> SocketAddr {
        text.parse().expect("a socket address")
    }

    #[test]
    fn internal_ranges_are_refused_and_public_ones_allowed() {
        let policy = EgressPolicy::default();
        for refused in [
            "127.0.0.1:80",
            "127.9.9.9:80",
            "0.0.0.0:80",
            "10.1.2.3:80",
            "172.16.0.1:80",
            "192.168.1.1:80",
            "169.254.169.254:80",
            "100.64.0.1:80",
            "[::1]:80",
            "[::]:80",
            "[fe80::1]:80",
            "[fd00::1]:80",
            "[::ffff:127.0.0.1]:80",
            "[::ffff:169.254.169.254]:80",
        ] {
            assert!(policy.check(peer(refused)).is_err(), "{refused} allowed");
        }
        for allowed in ["93.184.216.34:443", "[2606:4700::1111]:443", "8.8.8.8:53"] {
            assert!(policy.check(peer(allowed)).is_ok(), "{allowed} refused");
        }
    }

    #[test]
    fn the_allow_list_opens_ranges_but_never_the_server_itself() {
        let policy = EgressPolicy {
            allowed: vec!["127.0.0.0/8".parse().unwrap()],
            own_listener: Some(peer("0.0.0.0:8000")),
        };
        assert!(policy.check(peer("127.0.0.1:9000")).is_ok());
        let error = policy
            .check(peer("127.0.0.1:8000"))
            .expect_err("own listener");
        assert!(error.contains("own listener"), "{error}");
        assert!(policy.check(peer("10.0.0.1:9000")).is_err());
    }
}

//! Where the server listens when nobody said. Without API keys every caller may run
//! workflows, and a workflow runs commands on this host; so with auth off and no `--host`
//! (or `server.host`) the server listens on 127.0.0.1 only, and other machines cannot reach
//! it at all. With API keys configured it listens on 0.0.0.0 as the original did. An address
//! given explicitly is used as given; with auth off on a non-loopback address start-up warns
//! that anyone who can reach the port can run commands here.

use std::net::IpAddr;

/// The address to bind and why it was chosen, for the start-up log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exposure {
    pub host: String,
    pub reason: &'static str,
    /// Other machines can run commands on this host without a key.
    pub open_to_network: bool,
}

/// Decides the listen address from the configured one (empty means "not given").
pub fn choose(configured: &str, auth_enabled: bool) -> Exposure {
    let configured = configured.trim();
    if configured.is_empty() {
        return if auth_enabled {
            Exposure {
                host: "0.0.0.0".into(),
                reason: "binding every interface: API keys are configured",
                open_to_network: false,
            }
        } else {
            Exposure {
                host: "127.0.0.1".into(),
                reason: "binding loopback only: auth is off (no API keys); pass --host 0.0.0.0 \
                         to accept other machines, and configure API keys",
                open_to_network: false,
            }
        };
    }
    let open_to_network = !auth_enabled && !is_loopback(configured);
    Exposure {
        host: configured.to_owned(),
        reason: if open_to_network {
            "binding a non-loopback address with auth off: anyone who can reach this port \
             can run workflows, and so commands, on this host; configure API keys"
        } else {
            "binding the address given"
        },
        open_to_network,
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_keys_and_without_a_host_only_loopback_listens() {
        assert_eq!(choose("", false).host, "127.0.0.1");
        assert_eq!(choose("", true).host, "0.0.0.0");
    }

    #[test]
    fn an_explicit_host_is_kept_and_an_open_one_is_flagged() {
        let open = choose("0.0.0.0", false);
        assert_eq!(open.host, "0.0.0.0");
        assert!(open.open_to_network);
        assert!(!choose("0.0.0.0", true).open_to_network);
        assert!(!choose("127.0.0.1", false).open_to_network);
        assert!(!choose("::1", false).open_to_network);
        assert!(!choose("localhost", false).open_to_network);
    }
}

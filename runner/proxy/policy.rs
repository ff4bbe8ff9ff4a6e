//! The decision: may this request go out?
//!
//! Three checks, in the order the proxy can make them:
//! 1. [`Policy::host`]: the destination as the request names it (the CONNECT target for
//!    HTTPS, never a Host header; the absolute URI for plain HTTP). Deny entries are checked
//!    first and win; then some allow entry must name the host and port. An IP literal passes
//!    only an IP/CIDR allow entry (`*` never covers one).
//! 2. [`Grant::addresses`]: what the name resolved to, checked before connecting, and the
//!    connection goes to exactly those addresses (no second lookup a rebinding DNS server
//!    could answer differently). Loopback, unspecified and multicast addresses are never
//!    reached; private, link-local and reserved ones only when an IP/CIDR allow entry covers
//!    them or a `hosts` pin put them there for this name. Deny entries apply to addresses too.
//! 3. [`Grant::method`]: each request's method (plain HTTP, and every request inside a
//!    terminated TLS tunnel), allowed when any matching allow entry allows it.
//!
//! A [`Refusal`] says which check refused and why, and maps to the `x-airlock-blocked` header
//! value an agent can tell apart from an upstream's own 403 (the values codex's proxy uses, so
//! tools that know them already understand ours).
//!
//! The policy is what an environment's allowlist says, with the `host-registries` preset
//! already expanded (the caller reads the host's tool configuration); it is written to the
//! proxy as JSON whose entries are read back through the environment's own parsers.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::environment::{self, AddressClass, AllowEntry, Allowlist, Cidr, Method, Target};

/// One allow rule: a destination and the methods allowed to it (`None`: all).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    #[serde(with = "as_text")]
    pub target: Target,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "methods_text"
    )]
    pub methods: Option<Vec<Method>>,
}

/// The proxy's policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub allow: Vec<Rule>,
    #[serde(default, with = "targets_text")]
    pub deny: Vec<Target>,
    /// Names pinned to one address (the environment's `hosts`).
    #[serde(default)]
    pub hosts: BTreeMap<String, IpAddr>,
}

/// The methods the `host-registries` preset allows.
pub const REGISTRY_METHODS: &[&str] = &["GET", "HEAD"];

impl Policy {
    /// The policy of an environment's allowlist. `registries` is what the `host-registries`
    /// preset stands for on this host (its registries' hosts), allowed GET and HEAD only.
    pub fn from_allowlist(list: &Allowlist, registries: &[Target]) -> Policy {
        let registry_methods: Vec<Method> = REGISTRY_METHODS
            .iter()
            .map(|m| m.parse().expect("a known method"))
            .collect();
        let mut allow = Vec::new();
        for entry in &list.allow {
            match entry {
                AllowEntry::Target { target, methods } => allow.push(Rule {
                    target: target.clone(),
                    methods: methods.clone().or_else(|| list.methods.clone()),
                }),
                AllowEntry::HostRegistries => allow.extend(registries.iter().map(|t| Rule {
                    target: t.clone(),
                    methods: Some(registry_methods.clone()),
                })),
            }
        }
        Policy {
            allow,
            deny: list.deny.clone(),
            hosts: list.hosts.clone(),
        }
    }

    /// Check 1: the destination as the request names it.
    pub fn host(&self, host: &Host, port: u16) -> Result<Grant<'_>, Refusal> {
        let denied = |t: &Target| match host {
            Host::Name(n) => t.names(n, port),
            Host::Ip(ip) => t.covers(*ip, port),
        };
        if let Some(rule) = self.deny.iter().find(|t| denied(t)) {
            return Err(Refusal::Denied {
                rule: rule.to_string(),
            });
        }
        let rules: Vec<&Rule> = self
            .allow
            .iter()
            .filter(|r| match host {
                Host::Name(n) => r.target.names(n, port),
                Host::Ip(ip) => r.target.covers(*ip, port),
            })
            .collect();
        if rules.is_empty() {
            return Err(match host {
                Host::Name(_) => Refusal::NotAllowed,
                Host::Ip(_) => Refusal::IpLiteral,
            });
        }
        if let Host::Ip(ip) = host {
            let class = AddressClass::of(*ip);
            if !class.may_be_allowed() {
                return Err(Refusal::Address { ip: *ip, class });
            }
        }
        Ok(Grant {
            policy: self,
            host: host.clone(),
            port,
            rules,
        })
    }
}

/// A destination as a request names it: lower-case, no trailing dot, IPv6 without brackets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Name(String),
    Ip(IpAddr),
}

impl Host {
    /// Read a request's host. `None`: not a host name the proxy will look up (empty, not
    /// ASCII, odd characters).
    pub fn parse(text: &str) -> Option<Host> {
        let t = text.trim_end_matches('.');
        let bare = t
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .unwrap_or(t);
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Some(Host::Ip(environment::canonical_ip(ip)));
        }
        let name = t.to_ascii_lowercase();
        let ok = !name.is_empty()
            && name.len() <= 253
            && name.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            });
        ok.then_some(Host::Name(name))
    }

    pub fn is_name(&self) -> bool {
        matches!(self, Host::Name(_))
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// How a name came to resolve to the addresses checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// The resolver's answer.
    Dns,
    /// The environment's `hosts` pin: that address is allowed for this name.
    Pinned,
    /// The proxy's test-only loopback route (never from an environment file; see
    /// `proxy::Config::test_loopback`): loopback is allowed for this name.
    TestLoopback,
}

/// A destination that passed check 1, and the allow rules that name it.
#[derive(Debug, Clone)]
pub struct Grant<'a> {
    policy: &'a Policy,
    pub host: Host,
    pub port: u16,
    rules: Vec<&'a Rule>,
}

impl Grant<'_> {
    /// The first allow rule that names the destination (for the record).
    pub fn rule(&self) -> String {
        self.rules[0].target.to_string()
    }

    /// Check 2: every address the host resolved to. `local` are the networks of the machine
    /// the proxy serves (the engine host's own addresses and the networks they are on),
    /// refused like private ones: a host with a public address, or a LAN in a documentation
    /// range, is not reachable through the proxy unless an IP/CIDR entry names it.
    pub fn addresses(
        &self,
        addrs: &[IpAddr],
        how: Resolution,
        local: &[Cidr],
    ) -> Result<(), Refusal> {
        if addrs.is_empty() {
            return Err(Refusal::NoAddress);
        }
        for &ip in addrs {
            let ip = environment::canonical_ip(ip);
            if let Some(rule) = self.policy.deny.iter().find(|t| t.covers(ip, self.port)) {
                return Err(Refusal::Denied {
                    rule: rule.to_string(),
                });
            }
            let class = AddressClass::of(ip);
            let explicit = self
                .policy
                .allow
                .iter()
                .any(|r| r.target.covers(ip, self.port));
            let ok = match (how, class) {
                (Resolution::TestLoopback, AddressClass::Loopback) => true,
                (_, c) if !c.may_be_allowed() => false,
                (Resolution::Pinned, _) => true,
                (_, _) if local.iter().any(|n| n.contains(ip)) => explicit,
                (_, AddressClass::Public | AddressClass::Documentation) => true,
                (_, _) => explicit,
            };
            if !ok {
                return Err(Refusal::Address { ip, class });
            }
        }
        Ok(())
    }

    /// Check 3: a request's method.
    pub fn method(&self, method: &str) -> Result<(), Refusal> {
        let allowed = |r: &&Rule| {
            r.methods
                .as_ref()
                .is_none_or(|ms| ms.iter().any(|m| m.as_str() == method))
        };
        if self.rules.iter().any(allowed) {
            return Ok(());
        }
        let mut methods: Vec<&str> = self
            .rules
            .iter()
            .flat_map(|r| r.methods.iter().flatten().map(Method::as_str))
            .collect();
        methods.sort();
        methods.dedup();
        Err(Refusal::Method {
            method: method.to_string(),
            allowed: methods.join(", "),
        })
    }

    /// Whether the resolver should be asked at all, or the answer is fixed.
    pub fn pin(&self) -> Option<IpAddr> {
        match &self.host {
            Host::Name(n) => self.policy.hosts.get(n).copied(),
            Host::Ip(_) => None,
        }
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A deny entry names it.
    Denied { rule: String },
    /// No allow entry names the host.
    NotAllowed,
    /// An IP literal no IP/CIDR allow entry covers.
    IpLiteral,
    /// The host resolved to (or is) an address the policy doesn't open.
    Address { ip: IpAddr, class: AddressClass },
    /// The name didn't resolve.
    NoAddress,
    /// The method is not among the allowed ones for this host.
    Method { method: String, allowed: String },
    /// Inside a CONNECT tunnel, the TLS name (SNI) is not the CONNECT target.
    SniMismatch { sni: String, connect: String },
    /// Inside a CONNECT tunnel, a request's Host is not the CONNECT target.
    HostMismatch { host: String, connect: String },
}

impl Refusal {
    /// The `x-airlock-blocked` value: which kind of rule refused, so an agent can tell a
    /// policy block from an upstream error (and not retry blindly).
    pub fn header(&self) -> &'static str {
        match self {
            Refusal::Denied { .. } => "denied",
            Refusal::Method { .. } => "method",
            Refusal::Address { .. } => "private-address",
            _ => "not-allowed",
        }
    }

    /// A short word for the record and summaries.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Denied { .. } => "denied",
            Refusal::NotAllowed => "not-allowed",
            Refusal::IpLiteral => "ip-literal",
            Refusal::Address { .. } => "private-address",
            Refusal::NoAddress => "no-address",
            Refusal::Method { .. } => "method",
            Refusal::SniMismatch { .. } => "sni-mismatch",
            Refusal::HostMismatch { .. } => "host-mismatch",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Denied { rule } => write!(f, "denied by the deny entry {rule}"),
            Refusal::NotAllowed => f.write_str("no allow entry names this host"),
            Refusal::IpLiteral => {
                f.write_str("an IP address instead of a name, and no IP/CIDR allow entry covers it")
            }
            Refusal::Address { ip, class } => write!(
                f,
                "{ip} is {}, which no allow entry opens",
                class.describe()
            ),
            Refusal::NoAddress => f.write_str("the name does not resolve"),
            Refusal::Method { method, allowed } => {
                write!(
                    f,
                    "{method} is not allowed to this host (allowed: {allowed})"
                )
            }
            Refusal::SniMismatch { sni, connect } => {
                write!(f, "the TLS name {sni} is not the CONNECT target {connect}")
            }
            Refusal::HostMismatch { host, connect } => write!(
                f,
                "the request's Host {host} is not the CONNECT target {connect}"
            ),
        }
    }
}

/// Targets as their text, read back with the environment's parser.
mod as_text {
    use super::Target;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Target, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(t)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Target, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

mod targets_text {
    use super::Target;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &[Target], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(t.iter().map(ToString::to_string))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Target>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|t| t.parse().map_err(serde::de::Error::custom))
            .collect()
    }
}

mod methods_text {
    use super::Method;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(m: &Option<Vec<Method>>, s: S) -> Result<S::Ok, S::Error> {
        match m {
            Some(m) => s.collect_seq(m.iter().map(Method::as_str)),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Method>>, D::Error> {
        Option::<Vec<String>>::deserialize(d)?
            .map(|v| {
                v.iter()
                    .map(|m| m.parse().map_err(serde::de::Error::custom))
                    .collect()
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(json: &str) -> Policy {
        serde_json::from_str(json).unwrap()
    }

    fn name(n: &str) -> Host {
        Host::parse(n).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn deny_wins_then_allow() {
        let p = policy(
            r#"{"allow":[{"target":"*.example.org"},{"target":"example.com:443"}],
                "deny":["uploads.example.org"]}"#,
        );
        assert_eq!(
            p.host(&name("uploads.example.org"), 443)
                .unwrap_err()
                .header(),
            "denied"
        );
        assert!(p.host(&name("a.example.org"), 443).is_ok());
        // *.x: subdomains only.
        assert_eq!(
            p.host(&name("example.org"), 443).unwrap_err(),
            Refusal::NotAllowed
        );
        assert!(p.host(&name("example.com"), 443).is_ok());
        assert_eq!(
            p.host(&name("example.com"), 80).unwrap_err().header(),
            "not-allowed"
        );
        assert_eq!(
            p.host(&name("Example.COM."), 443).map(|g| g.rule()),
            Ok("example.com:443".to_string())
        );
    }

    #[test]
    fn ip_literals_need_an_ip_entry() {
        let p = policy(r#"{"allow":[{"target":"*"},{"target":"10.0.0.5:8080"}]}"#);
        assert_eq!(
            p.host(&name("93.184.215.14"), 80).unwrap_err(),
            Refusal::IpLiteral
        );
        assert_eq!(p.host(&name("[::1]"), 80).unwrap_err(), Refusal::IpLiteral);
        assert!(p.host(&name("10.0.0.5"), 8080).is_ok());
        assert_eq!(
            p.host(&name("10.0.0.5"), 80).unwrap_err(),
            Refusal::IpLiteral
        );
        // Even a range that covers loopback never opens it.
        let wide = policy(r#"{"allow":[{"target":"0.0.0.0/0"}]}"#);
        assert!(matches!(
            wide.host(&name("127.0.0.1"), 80).unwrap_err(),
            Refusal::Address { .. }
        ));
        assert!(wide.host(&name("8.8.8.8"), 80).is_ok());
    }

    #[test]
    fn addresses_after_resolution() {
        let p = policy(
            r#"{"allow":[{"target":"*"},{"target":"10.1.0.0/16"}],
                "deny":["169.254.169.254"],
                "hosts":{"git.internal.example":"10.9.9.9"}}"#,
        );
        let g = p.host(&name("x.example.com"), 443).unwrap();
        assert!(g
            .addresses(&[ip("93.184.215.14")], Resolution::Dns, &[])
            .is_ok());
        for bad in [
            "127.0.0.1",
            "10.0.0.1",
            "172.17.0.1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "0.0.0.0",
        ] {
            let r = g.addresses(&[ip("93.184.215.14"), ip(bad)], Resolution::Dns, &[]);
            assert!(matches!(r, Err(Refusal::Address { .. })), "{bad}: {r:?}");
        }
        // An explicit range opens private addresses it covers, for any allowed name.
        assert!(g.addresses(&[ip("10.1.2.3")], Resolution::Dns, &[]).is_ok());
        // Deny entries apply to what a name resolves to.
        assert_eq!(
            g.addresses(&[ip("169.254.169.254")], Resolution::Dns, &[])
                .unwrap_err()
                .header(),
            "denied"
        );
        // The engine host's own public addresses are refused like private ones.
        assert!(g
            .addresses(
                &[ip("93.184.215.14")],
                Resolution::Dns,
                &[Cidr::network_of(ip("93.184.215.14"), 32)]
            )
            .is_err());
        // And the networks they are on, documentation ranges included; other documentation
        // addresses are reached by name like public ones (no network routes them by accident).
        let lan = [Cidr::network_of(ip("192.0.2.2"), 24)];
        assert!(g
            .addresses(&[ip("192.0.2.77")], Resolution::Dns, &lan)
            .is_err());
        assert!(g
            .addresses(&[ip("203.0.113.80")], Resolution::Dns, &lan)
            .is_ok());
        assert_eq!(
            g.addresses(&[], Resolution::Dns, &[]),
            Err(Refusal::NoAddress)
        );
        // A pin opens its own address for its own name.
        let pinned = p.host(&name("git.internal.example"), 443).unwrap();
        assert_eq!(pinned.pin(), Some(ip("10.9.9.9")));
        assert!(pinned
            .addresses(&[ip("10.9.9.9")], Resolution::Pinned, &[])
            .is_ok());
        assert_eq!(g.pin(), None);
        // Only the test route opens loopback, and nothing opens it for a pin.
        assert!(g
            .addresses(&[ip("127.0.0.1")], Resolution::TestLoopback, &[])
            .is_ok());
        assert!(g
            .addresses(&[ip("127.0.0.1")], Resolution::Pinned, &[])
            .is_err());
        assert!(g
            .addresses(&[ip("10.0.0.1")], Resolution::TestLoopback, &[])
            .is_err());
    }

    #[test]
    fn methods_per_rule_union() {
        let p = policy(
            r#"{"allow":[{"target":"*.example.com","methods":["GET","HEAD"]},
                         {"target":"git.example.com","methods":["GET","POST"]},
                         {"target":"any.example.net"}]}"#,
        );
        let g = p.host(&name("git.example.com"), 443).unwrap();
        assert!(g.method("POST").is_ok());
        assert!(g.method("HEAD").is_ok());
        let e = p
            .host(&name("www.example.com"), 443)
            .unwrap()
            .method("POST")
            .unwrap_err();
        assert_eq!(e.header(), "method");
        assert_eq!(
            e.to_string(),
            "POST is not allowed to this host (allowed: GET, HEAD)"
        );
        assert!(p
            .host(&name("any.example.net"), 80)
            .unwrap()
            .method("DELETE")
            .is_ok());
    }

    #[test]
    fn from_an_allowlist_and_back_through_json() {
        let list = Allowlist {
            allow: vec![
                AllowEntry::Target {
                    target: "*.example.org:443".parse().unwrap(),
                    methods: None,
                },
                AllowEntry::Target {
                    target: "git.example.com".parse().unwrap(),
                    methods: Some(vec!["POST".parse().unwrap()]),
                },
                AllowEntry::HostRegistries,
            ],
            deny: vec!["uploads.example.org".parse().unwrap()],
            methods: Some(vec!["GET".parse().unwrap()]),
            hosts: BTreeMap::new(),
            ca_certificates: vec![],
        };
        let p = Policy::from_allowlist(&list, &["pypi.example.com".parse().unwrap()]);
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(
            json,
            r#"{"allow":[{"target":"*.example.org:443","methods":["GET"]},{"target":"git.example.com","methods":["POST"]},{"target":"pypi.example.com","methods":["GET","HEAD"]}],"deny":["uploads.example.org"],"hosts":{}}"#
        );
        assert_eq!(serde_json::from_str::<Policy>(&json).unwrap(), p);
        // The policy file is read with the environment's parsers: the same entries fail.
        for bad in [
            r#"{"allow":[{"target":"a*.b"}]}"#,
            r#"{"allow":[{"target":"127.0.0.1"}]}"#,
            r#"{"allow":[{"target":"x.example.com","methods":["get"]}]}"#,
            r#"{"allow":[],"loopback":true}"#,
        ] {
            assert!(serde_json::from_str::<Policy>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn request_hosts() {
        assert_eq!(
            Host::parse("Example.com."),
            Some(Host::Name("example.com".into()))
        );
        assert_eq!(Host::parse("[::1]"), Some(Host::Ip(ip("::1"))));
        assert_eq!(
            Host::parse("::ffff:10.0.0.1"),
            Some(Host::Ip(ip("10.0.0.1")))
        );
        assert_eq!(Host::parse(""), None);
        assert_eq!(Host::parse("a..b"), None);
        assert_eq!(Host::parse("a b"), None);
        assert_eq!(Host::parse("bücher.example"), None);
    }
}

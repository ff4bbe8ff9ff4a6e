//! The agent network's allowlist: host patterns (`example.com`, `*.example.com`, `*`, an IP or
//! a CIDR, each with an optional `:port`), HTTP methods, pinned addresses, and which addresses
//! count as public.
//!
//! These are the one copy of the allowlist's vocabulary: the environment loader parses a file's
//! entries with them, and the egress proxy (`crate::proxy`) reads its policy file back through
//! the same parsers and classifies every address it resolves with [`AddressClass::of`], so an
//! entry `env check` accepts is exactly one the proxy enforces.
//!
//! Loopback and unspecified addresses are refused outright here: behind the proxy they would
//! mean the proxy's own container (or, with `0.0.0.0`, whatever listens on it), never a
//! destination the agent needs. Private, link-local and reserved ranges may be named
//! explicitly (that is how a private mirror is reached); a name or `*` never reaches them.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use super::super::error::{shown, Fail};

/// What kind of destination an address is, for the proxy's after-resolution check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    /// Reachable on the public internet.
    Public,
    /// 127.0.0.0/8, ::1: the proxy's own container.
    Loopback,
    /// 0.0.0.0/8, ::, 255.255.255.255: "this host" to the kernel.
    Unspecified,
    /// 224.0.0.0/4, ff00::/8.
    Multicast,
    /// RFC 1918, 100.64.0.0/10 (carrier-grade NAT), fc00::/7.
    Private,
    /// 169.254.0.0/16 (cloud metadata lives here), fe80::/10.
    LinkLocal,
    /// 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24 (RFC 5737), 2001:db8::/32 (RFC 3849).
    /// Reached by names like a public address: the Internet never routes them, so where a
    /// resolver answers with one, it is a network set up that way on purpose (test and lab
    /// networks, some egress gateways), not an internal service. The engine host's own
    /// networks are refused whatever their range (see the proxy's local networks).
    Documentation,
    /// Benchmarking, IETF and future-use ranges: never a real destination.
    Reserved,
}

impl AddressClass {
    /// The class of `ip`. IPv6 forms that carry an IPv4 address (mapped `::ffff:a.b.c.d`,
    /// NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) are classed by that IPv4 address, so a private
    /// address can't be dressed up as a public IPv6 one.
    pub fn of(ip: IpAddr) -> AddressClass {
        match ip {
            IpAddr::V4(v4) => class_v4(v4),
            IpAddr::V6(v6) => {
                if let Some(v4) = embedded_v4(v6) {
                    return class_v4(v4);
                }
                let s = v6.segments();
                if v6.is_loopback() {
                    AddressClass::Loopback
                } else if v6.is_unspecified() {
                    AddressClass::Unspecified
                } else if s[0] & 0xff00 == 0xff00 {
                    AddressClass::Multicast
                } else if s[0] & 0xfe00 == 0xfc00 {
                    AddressClass::Private
                } else if s[0] & 0xffc0 == 0xfe80 || s[0] & 0xffc0 == 0xfec0 {
                    AddressClass::LinkLocal
                } else if s[0] == 0x2001 && s[1] == 0x0db8 {
                    AddressClass::Documentation
                } else if s[0] & 0xe000 != 0x2000 {
                    // Everything outside the global unicast 2000::/3.
                    AddressClass::Reserved
                } else {
                    AddressClass::Public
                }
            }
        }
    }

    /// Whether an explicit allow entry may make this class reachable (private mirrors,
    /// pinned internal hosts). Loopback, unspecified and multicast never are.
    pub fn may_be_allowed(self) -> bool {
        matches!(
            self,
            AddressClass::Public
                | AddressClass::Documentation
                | AddressClass::Private
                | AddressClass::LinkLocal
                | AddressClass::Reserved
        )
    }

    pub fn describe(self) -> &'static str {
        match self {
            AddressClass::Public => "a public address",
            AddressClass::Loopback => "a loopback address",
            AddressClass::Unspecified => "an unspecified address",
            AddressClass::Multicast => "a multicast address",
            AddressClass::Private => "a private address",
            AddressClass::LinkLocal => "a link-local address",
            AddressClass::Documentation => "a documentation address",
            AddressClass::Reserved => "a reserved address",
        }
    }
}

fn class_v4(ip: Ipv4Addr) -> AddressClass {
    let o = ip.octets();
    if o[0] == 127 {
        AddressClass::Loopback
    } else if o[0] == 0 || ip.is_broadcast() {
        AddressClass::Unspecified
    } else if o[0] & 0xf0 == 0xe0 {
        AddressClass::Multicast
    } else if o[0] == 10
        || (o[0] == 172 && o[1] & 0xf0 == 16)
        || (o[0] == 192 && o[1] == 168)
        || (o[0] == 100 && o[1] & 0xc0 == 64)
    {
        AddressClass::Private
    } else if o[0] == 169 && o[1] == 254 {
        AddressClass::LinkLocal
    } else if (o[0] == 192 && o[1] == 0 && o[2] == 2)
        || (o[0] == 198 && o[1] == 51 && o[2] == 100)
        || (o[0] == 203 && o[1] == 0 && o[2] == 113)
    {
        AddressClass::Documentation
    } else if o[0] & 0xf0 == 0xf0
        || (o[0] == 192 && o[1] == 0 && o[2] == 0)
        || (o[0] == 198 && o[1] & 0xfe == 18)
    {
        AddressClass::Reserved
    } else {
        AddressClass::Public
    }
}

fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let tail =
        |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6].iter().all(|&x| x == 0) {
        return Some(tail(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        return Some(tail(s[1], s[2]));
    }
    None
}

/// An address range: one address is a /32 (or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                mask(u32::from(ip).into(), self.prefix, 32) == u128::from(u32::from(net))
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                mask(ip.into(), self.prefix, 128) == u128::from(net)
            }
            _ => false,
        }
    }

    /// The network `addr/prefix` is on (host bits cleared): an interface's network.
    pub fn network_of(addr: IpAddr, prefix: u8) -> Cidr {
        let addr = canonical(addr);
        let net = match addr {
            IpAddr::V4(v4) => {
                IpAddr::V4(Ipv4Addr::from(mask(u32::from(v4).into(), prefix, 32) as u32))
            }
            IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(mask(v6.into(), prefix, 128))),
        };
        Cidr { addr: net, prefix }
    }

    fn is_single(&self) -> bool {
        self.prefix == if self.addr.is_ipv4() { 32 } else { 128 }
    }
}

/// An IPv4-mapped IPv6 address is the IPv4 address it maps (so `::ffff:10.0.0.5` meets the
/// rules written for `10.0.0.5`).
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn mask(bits: u128, prefix: u8, width: u8) -> u128 {
    if prefix == 0 {
        return 0;
    }
    let keep = u128::MAX << (width - prefix);
    bits & keep & (u128::MAX >> (128 - width as u32))
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_single() {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.prefix)
        }
    }
}

/// Which hosts an entry names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// `*`: every public name. Never an IP literal, never a name that resolves to a private
    /// address.
    Any,
    /// `example.com`: that name only (lower case).
    Name(String),
    /// `*.example.com`: every name below `example.com`, not `example.com` itself.
    Below(String),
    /// `10.0.0.5`, `10.0.0.0/8`, `fd00::/8`: these addresses, as literals or as what a name
    /// resolves to.
    Net(Cidr),
}

/// An allow or deny entry's destination: a host pattern and, optionally, one port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: HostPattern,
    /// `None`: any port.
    pub port: Option<u16>,
}

impl Target {
    /// Whether this entry names `host` (a lower-case name without a trailing dot) on `port`.
    pub fn names(&self, host: &str, port: u16) -> bool {
        self.port.is_none_or(|p| p == port)
            && match &self.host {
                HostPattern::Any => true,
                HostPattern::Name(n) => n == host,
                HostPattern::Below(d) => host
                    .strip_suffix(d.as_str())
                    .is_some_and(|rest| rest.len() > 1 && rest.ends_with('.')),
                HostPattern::Net(_) => false,
            }
    }

    /// Whether this entry covers the address `ip` on `port` (only IP/CIDR entries do).
    pub fn covers(&self, ip: IpAddr, port: u16) -> bool {
        self.port.is_none_or(|p| p == port)
            && matches!(&self.host, HostPattern::Net(net) if net.contains(ip))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = match &self.host {
            HostPattern::Any => "*".to_string(),
            HostPattern::Name(n) => n.clone(),
            HostPattern::Below(d) => format!("*.{d}"),
            HostPattern::Net(net) => net.to_string(),
        };
        match (self.port, &self.host) {
            (Some(p), HostPattern::Net(net)) if net.addr.is_ipv6() => write!(f, "[{host}]:{p}"),
            (Some(p), _) => write!(f, "{host}:{p}"),
            (None, _) => f.write_str(&host),
        }
    }
}

impl FromStr for Target {
    type Err = String;
    /// The same parser as the environment file's (for the proxy's policy file).
    fn from_str(s: &str) -> Result<Target, String> {
        target(s).map_err(|f| f.message)
    }
}

const TARGET_FIX: &str = "write a domain (`example.com`), its subdomains (`*.example.com`), `*` for every public host, or an IP address or CIDR (`10.0.0.5`, `10.0.0.0/8`), each with an optional `:port`";

/// One `allow` or `deny` entry, as written.
pub fn target(text: &str) -> Result<Target, Fail> {
    let t = text.trim();
    if t.is_empty() {
        return Err(Fail::new("empty entry").fix(TARGET_FIX));
    }
    if t.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Fail::new(format!(
            "{:?} contains a space or a control character",
            shown(t)
        ))
        .fix(TARGET_FIX));
    }
    if t.contains("://") || t.contains('/') && !looks_like_cidr(t) {
        return Err(Fail::new(format!("{:?} is a URL, not a host", shown(t))).fix(
            "write the host alone, e.g. `example.com` or `example.com:443`; paths can't be allowed one by one",
        ));
    }
    let (host, port) = split_port(t)?;
    let port = port.map(port_number).transpose()?;
    let host = host_pattern(host)?;
    Ok(Target { host, port })
}

fn looks_like_cidr(t: &str) -> bool {
    t.chars()
        .all(|c| c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '/' | '[' | ']'))
}

/// `host[:port]`, `[v6][:port]`, or a bare IPv6 address/CIDR (more than one `:`).
fn split_port(t: &str) -> Result<(&str, Option<&str>), Fail> {
    if let Some(rest) = t.strip_prefix('[') {
        let Some((inner, after)) = rest.split_once(']') else {
            return Err(Fail::new(format!("{:?} has no closing ]", shown(t)))
                .fix("write an IPv6 address with a port as `[fd00::5]:443`"));
        };
        return match after {
            "" => Ok((inner, None)),
            _ => match after.strip_prefix(':') {
                Some(p) => Ok((inner, Some(p))),
                None => Err(
                    Fail::new(format!("{:?}: expected `:port` after ]", shown(t)))
                        .fix("write an IPv6 address with a port as `[fd00::5]:443`"),
                ),
            },
        };
    }
    if t.matches(':').count() > 1 {
        return Ok((t, None));
    }
    Ok(match t.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (t, None),
    })
}

fn port_number(text: &str) -> Result<u16, Fail> {
    match text.parse::<u16>() {
        Ok(p) if p > 0 && text.chars().all(|c| c.is_ascii_digit()) => Ok(p),
        _ => Err(Fail::new(format!("{:?} is not a port number", shown(text)))
            .fix("a port is a number from 1 to 65535, e.g. `example.com:443`")),
    }
}

fn host_pattern(host: &str) -> Result<HostPattern, Fail> {
    if host == "*" {
        return Ok(HostPattern::Any);
    }
    if let Some(net) = ip_or_cidr(host)? {
        if let Some(class) = never_range(net) {
            return Err(never_reachable(host, class));
        }
        return Ok(HostPattern::Net(net));
    }
    if let Some(below) = host.strip_prefix("*.") {
        if below.contains('*') {
            return Err(bad_wildcard(host));
        }
        return Ok(HostPattern::Below(domain(below)?));
    }
    if host.contains('*') {
        return Err(bad_wildcard(host));
    }
    Ok(HostPattern::Name(domain(host)?))
}

/// The class of `net` when it lies wholly inside a range no entry may open (loopback,
/// unspecified, multicast). A wider range such as `0.0.0.0/0` is accepted: the proxy still
/// refuses those addresses inside it.
fn never_range(net: Cidr) -> Option<AddressClass> {
    let never = [
        ("0.0.0.0", 8),
        ("127.0.0.0", 8),
        ("224.0.0.0", 4),
        ("255.255.255.255", 32),
        ("::", 128),
        ("::1", 128),
        ("ff00::", 8),
    ];
    never.iter().find_map(|(addr, prefix)| {
        let range = Cidr {
            addr: addr.parse().expect("a literal address"),
            prefix: *prefix,
        };
        (range.addr.is_ipv4() == net.addr.is_ipv4()
            && net.prefix >= range.prefix
            && range.contains(net.addr))
        .then(|| AddressClass::of(net.addr))
    })
}

fn never_reachable(host: &str, class: AddressClass) -> Fail {
    Fail::new(format!(
        "{} is {}, which the agent may never reach through the proxy",
        shown(host),
        class.describe()
    ))
    .fix("behind the proxy a loopback or unspecified address is the proxy's own container; name the host the agent needs instead")
}

fn bad_wildcard(host: &str) -> Fail {
    Fail::new(format!("{:?} is not a valid wildcard", shown(host))).fix(
        "a wildcard is `*.` at the very start of a domain (`*.example.com`: any subdomain, not example.com itself), or `*` alone for every public host",
    )
}

/// An IP address or CIDR, or `None` when the text is not one (it is then read as a name).
fn ip_or_cidr(host: &str) -> Result<Option<Cidr>, Fail> {
    let (addr, prefix) = match host.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (host, None),
    };
    let Ok(addr) = addr.parse::<IpAddr>() else {
        if prefix.is_some() {
            return Err(Fail::new(format!("{:?} is not a CIDR", shown(host)))
                .fix("write an address range as ADDRESS/BITS, e.g. `10.0.0.0/8` or `fd00::/8`"));
        }
        return Ok(None);
    };
    let addr = canonical(addr);
    let width = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => width,
        Some(p) => match p.parse::<u8>() {
            Ok(n) if n <= width && p.chars().all(|c| c.is_ascii_digit()) => n,
            _ => {
                return Err(Fail::new(format!(
                    "{:?}: /{} is not a prefix length",
                    shown(host),
                    shown(p)
                ))
                .fix(format!(
                    "a prefix length is 0 to {width}, e.g. `10.0.0.0/8`"
                )))
            }
        },
    };
    let bits: u128 = match addr {
        IpAddr::V4(v4) => u32::from(v4).into(),
        IpAddr::V6(v6) => v6.into(),
    };
    let network = mask(bits, prefix, width);
    if network != bits {
        let net = match addr {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(network as u32)),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(network)),
        };
        return Err(Fail::new(format!(
            "{} has host bits set: {addr} is not the start of a /{prefix}",
            shown(host)
        ))
        .fix(format!(
            "write the network, `{net}/{prefix}`, or the single address `{addr}`"
        )));
    }
    Ok(Some(Cidr { addr, prefix }))
}

/// A DNS name: ASCII letters, digits and `-` in dot-separated labels, lower-cased.
pub fn domain(text: &str) -> Result<String, Fail> {
    let fix = "write a domain name such as `example.com` (letters, digits, '-' and dots)";
    if !text.is_ascii() {
        return Err(Fail::new(format!("{:?} is not ASCII", shown(text)))
            .fix("write an internationalised name in its ASCII (xn--) form"));
    }
    if text.ends_with('.') && text.len() > 1 {
        return Err(
            Fail::new(format!("{:?} ends with a dot", shown(text))).fix(format!(
                "write it without the trailing dot: `{}`",
                shown(text.trim_end_matches('.'))
            )),
        );
    }
    let name = text.to_ascii_lowercase();
    let labels: Vec<&str> = name.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if name.len() > 253 || !labels.iter().all(label_ok) {
        return Err(Fail::new(format!("{:?} is not a valid domain name", shown(text))).fix(fix));
    }
    if labels
        .last()
        .is_some_and(|l| l.chars().all(|c| c.is_ascii_digit()))
    {
        return Err(Fail::new(format!(
            "{:?} is neither an IP address nor a domain name",
            shown(text)
        ))
        .fix("write an IPv4 address as four numbers (`10.0.0.5`), or a domain name"));
    }
    if name == "localhost" || name.ends_with(".localhost") {
        return Err(never_reachable(text, AddressClass::Loopback));
    }
    Ok(name)
}

/// An HTTP method the policy can allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Method(&'static str);

/// The request methods of RFC 9110 and PATCH; CONNECT is how HTTPS reaches the proxy, not a
/// request it forwards.
pub const METHODS: &[&str] = &[
    "GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE", "TRACE",
];

impl Method {
    pub fn as_str(&self) -> &'static str {
        self.0
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> Result<Method, String> {
        method(s).map_err(|f| f.message)
    }
}

/// One entry of a `methods` list.
pub fn method(text: &str) -> Result<Method, Fail> {
    if let Some(m) = METHODS.iter().find(|m| **m == text) {
        return Ok(Method(m));
    }
    if let Some(m) = METHODS.iter().find(|m| m.eq_ignore_ascii_case(text)) {
        return Err(
            Fail::new(format!("{:?}: methods are upper case", shown(text)))
                .fix(format!("write {m}")),
        );
    }
    if text.eq_ignore_ascii_case("CONNECT") {
        return Err(Fail::new("CONNECT is not a method the policy allows or refuses").fix(
            "HTTPS reaches the proxy by CONNECT whatever `methods` says, and each request inside it is checked against `methods`; remove CONNECT",
        ));
    }
    Err(
        Fail::new(format!("{:?} is not an HTTP method", shown(text)))
            .fix(format!("the methods are {}", METHODS.join(", "))),
    )
}

/// A `hosts:` address: one IP address the agent may reach under that name.
pub fn pinned_address(text: &str) -> Result<IpAddr, Fail> {
    let Ok(ip) = text.trim().parse::<IpAddr>() else {
        return Err(Fail::new(format!("{:?} is not an IP address", shown(text))).fix(
            "pin a name to one address, e.g. `git.internal.example: 10.0.0.7` (as docker's --add-host)",
        ));
    };
    let ip = canonical(ip);
    let class = AddressClass::of(ip);
    if !class.may_be_allowed() {
        return Err(never_reachable(text, class));
    }
    Ok(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Target {
        target(s).unwrap_or_else(|f| panic!("{s}: {}", f.message))
    }

    fn refused(s: &str, message: &str) {
        let f = target(s).unwrap_err();
        assert!(f.message.contains(message), "{s}: {}", f.message);
        assert!(f.fix.is_some(), "{s}: no fix");
    }

    #[test]
    fn entries_parse_and_print_back() {
        for s in [
            "example.com",
            "*.example.org:443",
            "*",
            "*:443",
            "10.0.0.5:8080",
            "10.0.0.0/8",
            "fd00::/8",
            "[fd00::5]:443",
            "git",
        ] {
            assert_eq!(t(s).to_string(), s);
            assert_eq!(t(&t(s).to_string()), t(s));
        }
        assert_eq!(
            t("Registry.Example.COM").to_string(),
            "registry.example.com"
        );
        assert_eq!(
            t("10.0.0.5").host,
            HostPattern::Net(Cidr {
                addr: "10.0.0.5".parse().unwrap(),
                prefix: 32
            })
        );
        assert_eq!(t("::ffff:10.0.0.5"), t("10.0.0.5"));
    }

    #[test]
    fn bad_entries() {
        refused("a*.b", "not a valid wildcard");
        refused("exa*mple.com", "not a valid wildcard");
        refused("*.*.example.com", "not a valid wildcard");
        refused("*example.com", "not a valid wildcard");
        refused("example.com.", "ends with a dot");
        refused("ex_ample.com", "not a valid domain name");
        refused("-x.example.com", "not a valid domain name");
        refused("example.com:0", "not a port number");
        refused("example.com:65536", "not a port number");
        refused("example.com:+80", "not a port number");
        refused("https://example.com", "a URL");
        refused("example.com/simple", "a URL");
        refused("10.0.0.5/8", "host bits set");
        refused("10.0.0.0/33", "not a prefix length");
        refused("1.2.3", "neither an IP address nor a domain name");
        refused("127.0.0.1", "loopback");
        refused("127.0.0.0/8:80", "loopback");
        refused("::1", "loopback");
        refused("0.0.0.0", "unspecified");
        refused("localhost:8080", "loopback");
        refused("a.localhost", "loopback");
        refused("bücher.example", "not ASCII");
        refused("[fd00::5", "no closing ]");
        refused("", "empty");
        refused("224.0.0.0/8", "multicast");
        // A range wider than the never-reachable ones is accepted; the proxy still refuses
        // the loopback addresses inside it.
        assert_eq!(t("0.0.0.0/0").to_string(), "0.0.0.0/0");
    }

    #[test]
    fn names_and_subdomains() {
        let below = t("*.example.org");
        assert!(below.names("a.example.org", 443));
        assert!(below.names("a.b.example.org", 80));
        assert!(
            !below.names("example.org", 443),
            "*.x matches subdomains only"
        );
        assert!(!below.names("badexample.org", 443));
        assert!(!below.names("example.org.evil.example", 443));
        let port = t("example.com:443");
        assert!(port.names("example.com", 443));
        assert!(!port.names("example.com", 80));
        assert!(!port.names("www.example.com", 443));
        assert!(t("*").names("anything.example", 1));
        assert!(!t("10.0.0.0/8").names("10.0.0.1", 80));
    }

    #[test]
    fn ranges() {
        let net = t("10.0.0.0/8");
        assert!(net.covers("10.200.3.4".parse().unwrap(), 80));
        assert!(net.covers("::ffff:10.1.1.1".parse().unwrap(), 80));
        assert!(!net.covers("11.0.0.1".parse().unwrap(), 80));
        assert!(t("0.0.0.0/0").covers("8.8.8.8".parse().unwrap(), 1));
        assert!(t("fd00::/8").covers("fd12::1".parse().unwrap(), 443));
        assert!(!t("fd00::/8").covers("fe80::1".parse().unwrap(), 443));
        assert!(!t("10.0.0.5:8080").covers("10.0.0.5".parse().unwrap(), 80));
        assert!(!t("*").covers("8.8.8.8".parse().unwrap(), 80));
    }

    #[test]
    fn classes() {
        use AddressClass::*;
        for (ip, class) in [
            ("93.184.215.14", Public),
            ("2606:2800:21f:cb07:6820:80da:af6b:8b2c", Public),
            ("127.0.0.53", Loopback),
            ("::1", Loopback),
            ("::ffff:127.0.0.1", Loopback),
            ("64:ff9b::7f00:1", Loopback),
            ("2002:7f00:1::", Loopback),
            ("0.0.0.0", Unspecified),
            ("::", Unspecified),
            ("255.255.255.255", Unspecified),
            ("10.1.2.3", Private),
            ("172.17.0.1", Private),
            ("172.32.0.1", Public),
            ("192.168.1.1", Private),
            ("100.64.0.1", Private),
            ("fd00::1", Private),
            ("169.254.169.254", LinkLocal),
            ("fe80::1", LinkLocal),
            ("224.0.0.1", Multicast),
            ("ff02::1", Multicast),
            ("192.0.2.1", Documentation),
            ("203.0.113.80", Documentation),
            ("2001:db8::1", Documentation),
            ("240.0.0.1", Reserved),
            ("198.18.0.1", Reserved),
            ("192.0.0.8", Reserved),
        ] {
            assert_eq!(AddressClass::of(ip.parse().unwrap()), class, "{ip}");
        }
    }

    #[test]
    fn methods_and_pins() {
        assert_eq!(method("GET").unwrap().as_str(), "GET");
        assert_eq!(method("get").unwrap_err().fix.as_deref(), Some("write GET"));
        assert!(method("CONNECT").unwrap_err().message.contains("CONNECT"));
        assert!(method("FETCH")
            .unwrap_err()
            .message
            .contains("not an HTTP method"));
        assert_eq!(
            pinned_address("10.0.0.7").unwrap(),
            "10.0.0.7".parse::<IpAddr>().unwrap()
        );
        assert!(pinned_address("127.0.0.1")
            .unwrap_err()
            .message
            .contains("loopback"));
        assert!(pinned_address("10.0.0.0/8")
            .unwrap_err()
            .message
            .contains("not an IP"));
        assert!(pinned_address("224.0.0.1")
            .unwrap_err()
            .message
            .contains("multicast"));
    }
}

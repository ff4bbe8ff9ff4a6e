//! `agent.network`: `off`, or the allowlist mapping (`allow`, `deny`, `methods`, `hosts`,
//! `ca_certificates`).
//!
//! As elsewhere in the schema, each check runs on the node it is about, carrying what was read
//! above it: an `allow` entry that is also a `deny` entry is refused at whichever of the two
//! comes second. The one check that can't wait for its node is a `hosts:` name with no `allow`
//! entry when `allow` comes later in the file: it is made when the mapping ends.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::net::IpAddr;
use std::path::Path;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::super::error::{shown, Expect, Fail};
use super::super::values::{self, HostPattern, Method, Target};
use super::super::{AllowEntry, Allowlist, CaSource, NetworkPolicy, HOST_REGISTRIES};
use super::read::{scalar, List, KEY, NETWORK, NETWORK_ENTRY};

/// The value of `agent.network`, and whether it named its own `ca_certificates` (if not, the
/// caller fills in the environment's).
pub(super) struct Network<'a> {
    pub(super) base_dir: &'a Path,
}

pub(super) struct ReadNetwork {
    pub(super) policy: NetworkPolicy,
    pub(super) ca_given: bool,
}

const NETWORK_VALUE: Expect = Expect {
    what: "`off` or an allowlist mapping",
    fix: "write `network: off`, or `network:` with `allow: [example.com]` indented below it",
};

impl<'de> DeserializeSeed<'de> for Network<'_> {
    type Value = ReadNetwork;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<ReadNetwork, D::Error> {
        d.deserialize_any(self)
    }
}

fn off() -> ReadNetwork {
    ReadNetwork {
        policy: NetworkPolicy::Off,
        ca_given: false,
    }
}

impl<'de> Visitor<'de> for Network<'_> {
    type Value = ReadNetwork;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{NETWORK_VALUE}")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<ReadNetwork, E> {
        if v {
            return Err(E::custom(on_is_not_a_policy("true")));
        }
        Ok(off())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<ReadNetwork, E> {
        match v {
            "off" | "false" => Ok(off()),
            "on" | "true" | "all" | "full" => Err(E::custom(on_is_not_a_policy(v))),
            _ => Err(E::custom(
                Fail::new(format!("{:?} is not a network policy", shown(v))).fix(NETWORK_VALUE.fix),
            )),
        }
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ReadNetwork, A::Error> {
        let mut seen = Vec::new();
        let mut allow: Option<Vec<AllowEntry>> = None;
        let mut deny: Vec<Target> = Vec::new();
        let mut methods = None;
        let mut hosts: Option<BTreeMap<String, IpAddr>> = None;
        let mut ca: Option<Vec<CaSource>> = None;
        while let Some(key) = map.next_key_seed(scalar(KEY, |k| NETWORK.key(k, &seen)))? {
            seen.push(key);
            match key {
                "allow" => {
                    allow = Some(map.next_value_seed(AllowList {
                        deny: &deny,
                        hosts: hosts.as_ref(),
                    })?)
                }
                "deny" => {
                    let allow = allow.as_deref().unwrap_or_default();
                    deny = map.next_value_seed(List {
                        expect: DENY,
                        item: DENY_ITEM,
                        check: |t: &str, before: &[Target]| denied(t, before, allow),
                        items: PhantomData,
                    })?
                }
                "methods" => methods = Some(map.next_value_seed(Methods)?),
                "hosts" => {
                    hosts = Some(map.next_value_seed(Hosts {
                        allow: allow.as_deref(),
                        deny: &deny,
                    })?)
                }
                _ => {
                    let base = self.base_dir;
                    ca = Some(map.next_value_seed(List {
                        expect: super::CAS,
                        item: super::CA,
                        check: |t: &str, before: &[CaSource]| super::ca(t, before, base),
                        items: PhantomData,
                    })?)
                }
            }
        }
        let Some(allow) = allow else {
            return Err(de::Error::custom(
                Fail::new("an allowlist needs `allow`: without it nothing is reachable").fix(
                    "add `allow: [example.com]` with the hosts the agent needs, or write `network: off`",
                ),
            ));
        };
        let hosts = hosts.unwrap_or_default();
        // `hosts:` read before `allow:` could not be checked against it on its own node.
        if let Some(name) = hosts.keys().find(|n| !allowed_name(n, &allow)) {
            return Err(de::Error::custom(unpinnable(name)));
        }
        Ok(ReadNetwork {
            ca_given: ca.is_some(),
            policy: NetworkPolicy::Allowlist(Allowlist {
                allow,
                deny,
                methods,
                hosts,
                ca_certificates: ca.unwrap_or_default(),
            }),
        })
    }
}

fn on_is_not_a_policy(v: &str) -> Fail {
    Fail::new(format!(
        "{:?}: the agent network is `off` or an allowlist",
        shown(v)
    ))
    .fix("list what the agent may reach: `network:` and below it `allow: [\"*\"]` for every public host (still through the proxy, still on record), or named hosts")
}

const ALLOW: Expect = Expect {
    what: "a list of hosts",
    fix: "write e.g. `allow: [registry.example.com, \"*.example.org:443\"]`",
};
const ALLOW_ITEM: Expect = Expect {
    what: "a host, or a mapping with `host` and `methods`",
    fix: "write one per item, e.g. `- example.com` or `- {host: git.example.com, methods: [GET, POST]}`",
};
const DENY: Expect = Expect {
    what: "a list of hosts",
    fix: "write e.g. `deny: [uploads.example.org]`",
};
const DENY_ITEM: Expect = Expect {
    what: "a host",
    fix: "write one per item, e.g. `- uploads.example.org`; a denied host is refused whatever the method",
};
const METHODS: Expect = Expect {
    what: "a list of HTTP methods",
    fix: "write e.g. `methods: [GET, HEAD, OPTIONS]`",
};
const METHOD: Expect = Expect {
    what: "an HTTP method",
    fix: "write one per item, e.g. `- GET`",
};
const HOSTS: Expect = Expect {
    what: "a mapping of names to addresses",
    fix: "write e.g. `hosts: {git.internal.example: 10.0.0.7}`",
};
const HOST_NAME: Expect = Expect {
    what: "a host name",
    fix: "write `NAME: ADDRESS`, one per line",
};
const ADDRESS: Expect = Expect {
    what: "an IP address",
    fix: "write `NAME: ADDRESS`, e.g. `git.internal.example: 10.0.0.7`",
};

/// The `allow` list: scalars and `{host, methods}` mappings.
struct AllowList<'a> {
    deny: &'a [Target],
    hosts: Option<&'a BTreeMap<String, IpAddr>>,
}

impl<'de> DeserializeSeed<'de> for AllowList<'_> {
    type Value = Vec<AllowEntry>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for AllowList<'_> {
    type Value = Vec<AllowEntry>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{ALLOW}")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items: Vec<AllowEntry> = Vec::new();
        while let Some(item) = seq.next_element_seed(AllowItem {
            before: &items,
            deny: self.deny,
        })? {
            items.push(item);
        }
        if items.is_empty() {
            return Err(de::Error::custom(
                Fail::new("an empty allow list lets nothing through")
                    .fix("list the hosts the agent needs, or write `network: off`"),
            ));
        }
        if let Some(name) = self
            .hosts
            .and_then(|h| h.keys().find(|n| !allowed_name(n, &items)))
        {
            return Err(de::Error::custom(unpinnable(name)));
        }
        Ok(items)
    }
}

struct AllowItem<'a> {
    before: &'a [AllowEntry],
    deny: &'a [Target],
}

impl AllowItem<'_> {
    fn entry(&self, target: Target, methods: Option<Vec<Method>>) -> Result<AllowEntry, Fail> {
        let entry = AllowEntry::Target { target, methods };
        let AllowEntry::Target { target, .. } = &entry else {
            unreachable!()
        };
        if let Some(i) = self.before.iter().position(|b| same_target(b, target)) {
            return Err(Fail::new(format!("{target} is listed twice (also allow[{i}])"))
                .fix("list each host once; give an entry its own methods with `{host: …, methods: […]}`"));
        }
        if let Some(i) = self.deny.iter().position(|d| d == target) {
            return Err(in_both(target, &format!("deny[{i}]")));
        }
        Ok(entry)
    }

    fn preset(&self) -> Result<AllowEntry, Fail> {
        if self.before.contains(&AllowEntry::HostRegistries) {
            return Err(Fail::new(format!("{HOST_REGISTRIES} is listed twice")).fix("list it once"));
        }
        Ok(AllowEntry::HostRegistries)
    }
}

fn same_target(entry: &AllowEntry, target: &Target) -> bool {
    matches!(entry, AllowEntry::Target { target: t, .. } if t == target)
}

fn in_both(target: &Target, other: &str) -> Fail {
    Fail::new(format!(
        "{target} is both allowed and denied (also {other})"
    ))
    .fix("deny is checked first, so the allow entry would never apply: remove one of them")
}

impl<'de> DeserializeSeed<'de> for AllowItem<'_> {
    type Value = AllowEntry;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<AllowEntry, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for AllowItem<'_> {
    type Value = AllowEntry;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{ALLOW_ITEM}")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<AllowEntry, E> {
        if v == HOST_REGISTRIES {
            return self.preset().map_err(E::custom);
        }
        values::target(v)
            .and_then(|t| self.entry(t, None))
            .map_err(E::custom)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AllowEntry, A::Error> {
        let mut seen = Vec::new();
        let mut host: Option<Option<Target>> = None;
        let mut methods = None;
        while let Some(key) = map.next_key_seed(scalar(KEY, |k| NETWORK_ENTRY.key(k, &seen)))? {
            seen.push(key);
            match key {
                "host" => {
                    host = Some(map.next_value_seed(scalar(ALLOW_ITEM, |t| {
                        if t == HOST_REGISTRIES {
                            return Err(preset_methods());
                        }
                        values::target(t).map(Some)
                    }))?)
                }
                _ => methods = Some(map.next_value_seed(Methods)?),
            }
        }
        let Some(Some(target)) = host else {
            return Err(de::Error::custom(
                Fail::new("an allow entry written as a mapping needs `host`")
                    .fix("write e.g. `{host: git.example.com, methods: [GET, POST]}`"),
            ));
        };
        if methods.is_none() {
            return Err(de::Error::custom(
                Fail::new(format!("the entry for {target} names no methods")).fix(format!(
                    "write it as a plain entry, `- {target}`, or add `methods: [GET, POST]`"
                )),
            ));
        }
        self.entry(target, methods).map_err(de::Error::custom)
    }
}

fn preset_methods() -> Fail {
    Fail::new(format!(
        "{HOST_REGISTRIES} is GET and HEAD only: its methods can't be changed"
    ))
    .fix(format!(
        "write it as a plain entry, `- {HOST_REGISTRIES}`; to allow more to one registry, add an entry for its host"
    ))
}

fn denied(text: &str, before: &[Target], allow: &[AllowEntry]) -> Result<Target, Fail> {
    if text == HOST_REGISTRIES {
        return Err(
            Fail::new(format!("{HOST_REGISTRIES} is a preset for `allow`"))
                .fix("deny the registry's host by name"),
        );
    }
    let target = values::target(text)?;
    if target.host == HostPattern::Any {
        return Err(Fail::new("`*` in deny would refuse everything")
            .fix("write `network: off` for no network at all"));
    }
    if let Some(i) = before.iter().position(|b| *b == target) {
        return Err(
            Fail::new(format!("{target} is listed twice (also deny[{i}])"))
                .fix("list each host once"),
        );
    }
    if let Some(i) = allow.iter().position(|a| same_target(a, &target)) {
        return Err(in_both(&target, &format!("allow[{i}]")));
    }
    Ok(target)
}

/// A `methods` list: known methods, each once, at least one.
struct Methods;

impl<'de> DeserializeSeed<'de> for Methods {
    type Value = Vec<Method>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<Method>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Methods {
    type Value = Vec<Method>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{METHODS}")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Method>, A::Error> {
        let mut items: Vec<Method> = Vec::new();
        while let Some(m) = seq.next_element_seed(scalar(METHOD, |t| {
            let m = values::method(t)?;
            if items.contains(&m) {
                return Err(Fail::new(format!("{m} is listed twice")).fix("list each method once"));
            }
            Ok(m)
        }))? {
            items.push(m);
        }
        if items.is_empty() {
            return Err(de::Error::custom(
                Fail::new("an empty methods list lets no request through").fix(
                    "list the methods to allow, e.g. `[GET, HEAD, OPTIONS]`, or remove `methods` to allow all",
                ),
            ));
        }
        Ok(items)
    }
}

/// `hosts:`: names (each on an allow entry, none denied) pinned to one address.
struct Hosts<'a> {
    /// `None` when `allow` comes later (checked when the mapping ends).
    allow: Option<&'a [AllowEntry]>,
    deny: &'a [Target],
}

impl<'de> DeserializeSeed<'de> for Hosts<'_> {
    type Value = BTreeMap<String, IpAddr>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Hosts<'_> {
    type Value = BTreeMap<String, IpAddr>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{HOSTS}")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(BTreeMap::new())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut hosts = BTreeMap::new();
        while let Some(name) = map.next_key_seed(scalar(HOST_NAME, |k| {
            let name = values::domain(k)?;
            if hosts.contains_key(&name) {
                return Err(Fail::new(format!("{name} is pinned twice"))
                    .fix("pin each name to one address"));
            }
            if self.allow.is_some_and(|a| !allowed_name(&name, a)) {
                return Err(unpinnable(&name));
            }
            if let Some(d) = self
                .deny
                .iter()
                .find(|d| d.port.is_none() && d.names(&name, 0))
            {
                return Err(Fail::new(format!("{name} is denied (by {d})"))
                    .fix("remove the pin, or the deny entry"));
            }
            Ok(name)
        }))? {
            let ip = map.next_value_seed(scalar(ADDRESS, values::pinned_address))?;
            hosts.insert(name, ip);
        }
        Ok(hosts)
    }
}

/// Whether an allow entry names `name` (on some port).
fn allowed_name(name: &str, allow: &[AllowEntry]) -> bool {
    allow.iter().any(|a| match a {
        AllowEntry::Target { target, .. } => {
            target.host != HostPattern::Any && target.names(name, target.port.unwrap_or(0))
        }
        AllowEntry::HostRegistries => false,
    })
}

fn unpinnable(name: &str) -> Fail {
    Fail::new(format!(
        "{} is pinned in hosts but no allow entry names it",
        shown(name)
    ))
    .fix(format!(
        "add `{}` to allow (a pin only says where a name the list allows goes; `*` does not count)",
        shown(name)
    ))
}

//! Generic readers: a mapping's keys (known, not repeated), a scalar read as written and
//! checked in place, a list checked item by item against the items before it, and a nested
//! section whose keys are read by a [`ReadSection`].

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::super::error::{did_you_mean, Expect, Fail};

/// A mapping's allowed keys.
#[derive(Clone, Copy)]
pub(super) struct Section {
    /// `""` at the top, else the key that holds it.
    pub(super) name: &'static str,
    pub(super) keys: &'static [&'static str],
}

pub(super) const TOP: Section = Section {
    name: "",
    keys: &[
        "image",
        "env",
        "secrets",
        "setup",
        "persist",
        "ca_certificates",
        "runtime",
        "agent",
        "limits",
        "cache",
        "maintenance",
    ],
};
pub(super) const CACHE: Section = Section {
    name: "cache",
    keys: &["ttl", "max_size", "key_files"],
};
pub(super) const AGENT: Section = Section {
    name: "agent",
    keys: &["network", "user"],
};
pub(super) const LIMITS: Section = Section {
    name: "limits",
    keys: &[
        "setup_timeout",
        "agent_timeout",
        "memory",
        "cpus",
        "pids",
        "tmp_size",
        "output_size",
    ],
};
pub(super) const NETWORK: Section = Section {
    name: "network",
    keys: &["allow", "deny", "methods", "hosts", "ca_certificates"],
};
/// An `allow` entry written as a mapping.
pub(super) const NETWORK_ENTRY: Section = Section {
    name: "allow",
    keys: &["host", "methods"],
};
pub(super) const SECTIONS: [Section; 5] = [TOP, AGENT, LIMITS, NETWORK, CACHE];

impl Section {
    fn place(&self) -> String {
        if self.name.is_empty() {
            "at the top level".into()
        } else {
            format!("under `{}:`", self.name)
        }
    }

    /// Check one key of this section: known, and not seen before in this mapping.
    pub(super) fn key(&self, key: &str, seen: &[&'static str]) -> Result<&'static str, Fail> {
        let Some(known) = self.keys.iter().copied().find(|k| *k == key) else {
            let listing = format!("the keys {} are: {}", self.place(), self.keys.join(", "));
            let fix = if let Some(close) = did_you_mean(key, self.keys) {
                format!("did you mean `{close}`? ({listing})")
            } else if let Some(home) = SECTIONS
                .iter()
                .find(|s| s.name != self.name && s.keys.contains(&key))
            {
                format!("`{key}` belongs {}; move it there", home.place())
            } else {
                listing
            };
            return Err(Fail::new("unknown key").fix(fix));
        };
        if seen.contains(&known) {
            return Err(Fail::new(format!("duplicate key: `{known}` is already set above")).fix(
                format!("keep one `{known}:`; YAML keys must be unique, and a second one would silently replace the first"),
            ));
        }
        Ok(known)
    }
}

/// A scalar, read as written and checked by `check` inside the visitor.
pub(super) struct Scalar<F> {
    pub(super) expect: Expect,
    pub(super) check: F,
}

pub(super) fn scalar<T, F: FnOnce(&str) -> Result<T, Fail>>(expect: Expect, check: F) -> Scalar<F> {
    Scalar { expect, check }
}

impl<'de, T, F: FnOnce(&str) -> Result<T, Fail>> DeserializeSeed<'de> for Scalar<F> {
    type Value = T;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de, T, F: FnOnce(&str) -> Result<T, Fail>> Visitor<'de> for Scalar<F> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}", self.expect)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        (self.check)(v).map_err(E::custom)
    }
}

/// A list of scalars; each item is checked against the items before it. An empty value
/// (`persist:`) is an empty list.
pub(super) struct List<T, F> {
    pub(super) expect: Expect,
    pub(super) item: Expect,
    pub(super) check: F,
    pub(super) items: PhantomData<fn() -> T>,
}

impl<'de, T, F: FnMut(&str, &[T]) -> Result<T, Fail>> DeserializeSeed<'de> for List<T, F> {
    type Value = Vec<T>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<T>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, T, F: FnMut(&str, &[T]) -> Result<T, Fail>> Visitor<'de> for List<T, F> {
    type Value = Vec<T>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}", self.expect)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Vec<T>, E> {
        Ok(Vec::new())
    }
    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let mut items = Vec::new();
        while let Some(item) =
            seq.next_element_seed(scalar(self.item, |t| (self.check)(t, &items)))?
        {
            items.push(item);
        }
        Ok(items)
    }
}

/// A nested mapping (`agent:`, `limits:`), read by `read`; an empty value means all defaults.
pub(super) struct Nested<D> {
    pub(super) expect: Expect,
    pub(super) default: D,
}

/// How a nested section reads its keys.
pub(super) trait ReadSection: Sized {
    const SECTION: Section;
    fn read<'de, A: MapAccess<'de>>(
        &mut self,
        key: &'static str,
        map: &mut A,
    ) -> Result<(), A::Error>;
}

impl<'de, F: ReadSection, G: FnOnce() -> F> DeserializeSeed<'de> for Nested<G> {
    type Value = F;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<F, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, F: ReadSection, G: FnOnce() -> F> Visitor<'de> for Nested<G> {
    type Value = F;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}", self.expect)
    }
    fn visit_unit<E: de::Error>(self) -> Result<F, E> {
        Ok((self.default)())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<F, A::Error> {
        let mut out = (self.default)();
        let mut seen = Vec::new();
        while let Some(key) = map.next_key_seed(scalar(KEY, |k| F::SECTION.key(k, &seen)))? {
            seen.push(key);
            out.read(key, &mut map)?;
        }
        Ok(out)
    }
}

pub(super) const KEY: Expect = Expect {
    what: "a key name",
    fix: "write `key: value`, one per line",
};

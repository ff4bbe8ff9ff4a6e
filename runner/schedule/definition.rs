//! `schedules/NAME.yaml`: one schedule, read and checked with file:line:col errors.
//!
//! Read the way environment files are (the same depth cap, the same in-visitor checks so
//! serde_yaml stamps each problem with the line and column of the node at fault, the same
//! `  fix:` line): an unknown or repeated key, a bad cron field, an unknown time zone or an
//! environment that doesn't exist is refused here, before any scheduler starts.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::environment::{self, did_you_mean, shown, EnvError, Expect, Fail};
use crate::root::ConfigRoot;

/// What to do when a fire comes while a run of the same schedule is still going.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlap {
    /// Skip the new fire (logged, and in the history).
    Forbid,
    /// Cancel the running one, then start the new one.
    Replace,
    /// Start the new one beside it.
    Allow,
}

/// What to do with fires that fell while no scheduler was running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missed {
    /// Run nothing for them (logged, and in the history).
    Skip,
    /// Run once for all of them, if the newest is within `deadline`.
    CatchUp,
}

/// What a finished run leaves in the repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultMode {
    None,
    /// The run's patch committed to `airlock/NAME/RUN-ID`.
    Branch,
}

/// A checked schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// The file's stem (`schedules/nightly.yaml` → `nightly`).
    pub name: String,
    pub path: PathBuf,
    /// The environment's name (`envs/NAME.yaml`).
    pub env: String,
    /// A git repository on the host (absolute).
    pub repository: PathBuf,
    pub git_ref: String,
    pub command: Vec<String>,
    /// The cron expression as written.
    pub cron_text: String,
    pub cron: croner::Cron,
    pub timezone_name: String,
    pub timezone: jiff::tz::TimeZone,
    pub overlap: Overlap,
    pub missed: Missed,
    /// For `missed: catch-up`: how late a caught-up run may start; none = any time.
    pub deadline: Option<Duration>,
    /// The whole run's limit, on top of the environment's own.
    pub timeout: Option<Duration>,
    pub keep_history: usize,
    pub result: ResultMode,
    pub on_failure: Option<Vec<String>>,
}

/// The default `keep_history`.
pub const DEFAULT_KEEP_HISTORY: usize = 50;

/// Schedule files larger than this are refused (a definition is a few hundred bytes).
const MAX_FILE_SIZE: u64 = 256 * 1024;

const KEYS: &[&str] = &[
    "env",
    "repository",
    "ref",
    "command",
    "cron",
    "timezone",
    "overlap",
    "missed",
    "deadline",
    "timeout",
    "keep_history",
    "result",
    "on_failure",
];

/// Parse a cron expression as schedules take it: 5 fields, or 6 with seconds first;
/// `@hourly`, `@daily`, `@weekly` (and `@monthly`, `@yearly`).
pub(crate) fn parse_cron(text: &str) -> Result<croner::Cron, Fail> {
    let fields = text.split_whitespace().count();
    let fix = "5 fields `MIN HOUR DAY-OF-MONTH MONTH DAY-OF-WEEK` (e.g. \"30 2 * * 1-5\"), or 6 with seconds first (\"*/10 * * * * *\"), or @hourly, @daily, @weekly";
    if !text.trim_start().starts_with('@') && fields != 5 && fields != 6 {
        return Err(Fail::new(format!(
            "the cron expression {:?} has {fields} field(s)",
            shown(text)
        ))
        .fix(fix));
    }
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Optional)
        .year(croner::parser::Year::Disallowed)
        .build()
        .parse(text)
        .map_err(|e| Fail::new(format!("bad cron expression {:?}: {e}", shown(text))).fix(fix))
}

/// Look up an IANA time zone name.
pub(crate) fn parse_zone(text: &str) -> Result<jiff::tz::TimeZone, Fail> {
    jiff::tz::TimeZone::get(text).map_err(|_| {
        let names: Vec<String> = jiff::tz::db().available().map(|n| n.to_string()).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let fix = match did_you_mean(text, &refs) {
            Some(close) => format!("did you mean {close}? (an IANA name such as Europe/Berlin, America/New_York or UTC)"),
            None => "use an IANA name such as Europe/Berlin, America/New_York or UTC".into(),
        };
        Fail::new(format!("unknown time zone {:?}", shown(text))).fix(fix)
    })
}

/// Every `schedules/*.yaml` under the root, sorted by name.
pub fn list(root: &ConfigRoot) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(super::schedules_dir(root)) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml") && p.is_file())
        .collect();
    files.sort();
    files
}

/// The file of the schedule `name`.
pub fn path_of(root: &ConfigRoot, name: &str) -> Result<PathBuf, EnvError> {
    let path = super::schedules_dir(root).join(format!("{name}.yaml"));
    if environment::is_name(name) && path.is_file() {
        return Ok(path);
    }
    let known: Vec<String> = list(root)
        .iter()
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    let refs: Vec<&str> = known.iter().map(String::as_str).collect();
    let fix = match did_you_mean(name, &refs) {
        Some(close) => format!("did you mean {close}?"),
        None if known.is_empty() => format!(
            "create {} (see schedules/README.md)",
            environment::display_path(&path)
        ),
        None => format!("the schedules are: {}", known.join(", ")),
    };
    Err(EnvError::new(format!("no schedule {}", shown(name))).fix(fix))
}

/// Load and check one schedule file.
pub fn load(root: &ConfigRoot, path: &Path) -> Result<Schedule, EnvError> {
    let meta = std::fs::metadata(path).map_err(|e| {
        EnvError::new(format!("cannot read: {e}"))
            .in_file(path)
            .fix("check that the file exists and is readable")
    })?;
    if meta.len() > MAX_FILE_SIZE {
        return Err(EnvError::new(format!(
            "the file is {} bytes; schedule files are limited to 256 KiB",
            meta.len()
        ))
        .in_file(path)
        .fix("a schedule is a dozen keys: keep scripts in the repository"));
    }
    let (name, text) = environment::read_named(path, "schedule")?;
    let text = text.as_str();
    // YAML-level problems first, as the environment reader does (see environment::load_in).
    let mut track = serde_path_to_error::Track::new();
    let de = serde_path_to_error::Deserializer::new(environment::yaml(path, text)?, &mut track);
    serde::de::IgnoredAny::deserialize(de).map_err(|e| {
        environment::from_yaml(path, serde_path_to_error::Error::new(track.path(), e))
    })?;
    let mut track = serde_path_to_error::Track::new();
    let de = serde_path_to_error::Deserializer::new(environment::yaml(path, text)?, &mut track);
    let parsed = File { root }.deserialize(de).map_err(|e| {
        environment::from_yaml(path, serde_path_to_error::Error::new(track.path(), e))
    })?;
    let missing = |key: &str, example: &str| {
        EnvError::new(format!("missing key `{key}`"))
            .in_file(path)
            .fix(format!("add `{key}: {example}`"))
    };
    Ok(Schedule {
        name,
        path: path.to_path_buf(),
        env: parsed
            .env
            .ok_or_else(|| missing("env", "NAME (an environment from envs/)"))?,
        repository: parsed
            .repository
            .ok_or_else(|| missing("repository", "/path/to/a/git/repository"))?,
        git_ref: parsed.git_ref.unwrap_or_else(|| "HEAD".into()),
        command: parsed
            .command
            .ok_or_else(|| missing("command", "[\"./agent.sh\", \"--nightly\"]"))?,
        cron: parsed
            .cron
            .as_ref()
            .map(|(_, c)| c.clone())
            .ok_or_else(|| missing("cron", "\"30 2 * * 1-5\""))?,
        cron_text: parsed.cron.map(|(t, _)| t).unwrap_or_default(),
        timezone_name: parsed
            .timezone
            .as_ref()
            .map(|(n, _)| n.clone())
            .unwrap_or_else(|| "UTC".into()),
        timezone: parsed
            .timezone
            .map(|(_, z)| z)
            .unwrap_or(jiff::tz::TimeZone::UTC),
        overlap: parsed.overlap.unwrap_or(Overlap::Forbid),
        missed: parsed.missed.unwrap_or(Missed::Skip),
        deadline: parsed.deadline,
        timeout: parsed.timeout,
        keep_history: parsed.keep_history.unwrap_or(DEFAULT_KEEP_HISTORY),
        result: parsed.result.unwrap_or(ResultMode::None),
        on_failure: parsed.on_failure,
    })
}

#[derive(Default)]
struct Parsed {
    env: Option<String>,
    repository: Option<PathBuf>,
    git_ref: Option<String>,
    command: Option<Vec<String>>,
    cron: Option<(String, croner::Cron)>,
    timezone: Option<(String, jiff::tz::TimeZone)>,
    overlap: Option<Overlap>,
    missed: Option<Missed>,
    deadline: Option<Duration>,
    timeout: Option<Duration>,
    keep_history: Option<usize>,
    result: Option<ResultMode>,
    on_failure: Option<Vec<String>>,
}

struct File<'a> {
    root: &'a ConfigRoot,
}

const TOP: Expect = Expect {
    what: "a mapping of schedule keys",
    fix: "a schedule is a mapping such as `env: agent`, `cron: \"30 2 * * *\"`, … (see schedules/README.md)",
};
const KEY: Expect = Expect {
    what: "a key name",
    fix: "keys are plain words such as `cron` or `timezone`",
};
const TEXT: Expect = Expect {
    what: "a single value",
    fix: "write one value on the key's line",
};
const ARGV: Expect = Expect {
    what: "a list of strings (the command's argv)",
    fix: "write it as a list, e.g. `[\"./agent.sh\", \"--nightly\"]`",
};

impl<'de> DeserializeSeed<'de> for File<'_> {
    type Value = Parsed;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Parsed, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for File<'_> {
    type Value = Parsed;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{TOP}")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Parsed, A::Error> {
        let mut out = Parsed::default();
        let mut seen: Vec<&'static str> = Vec::new();
        while let Some(key) = map.next_key_seed(Scalar(KEY, |k: &str| known_key(k, &seen)))? {
            seen.push(key);
            let root = self.root;
            match key {
                "env" => out.env = Some(map.next_value_seed(Scalar(TEXT, |t: &str| env(root, t)))?),
                "repository" => {
                    out.repository =
                        Some(map.next_value_seed(Scalar(TEXT, |t: &str| repository(root, t)))?)
                }
                "ref" => out.git_ref = Some(map.next_value_seed(Scalar(TEXT, git_ref))?),
                "command" => out.command = Some(map.next_value_seed(Argv("command"))?),
                "cron" => {
                    out.cron = Some(map.next_value_seed(Scalar(TEXT, |t: &str| {
                        parse_cron(t).map(|c| (t.to_string(), c))
                    }))?)
                }
                "timezone" => {
                    out.timezone = Some(map.next_value_seed(Scalar(TEXT, |t: &str| {
                        parse_zone(t).map(|z| (t.to_string(), z))
                    }))?)
                }
                "overlap" => {
                    out.overlap = Some(map.next_value_seed(Scalar(TEXT, |t: &str| {
                        word(
                            t,
                            &[
                                ("forbid", Overlap::Forbid),
                                ("replace", Overlap::Replace),
                                ("allow", Overlap::Allow),
                            ],
                        )
                    }))?)
                }
                "missed" => {
                    out.missed = Some(map.next_value_seed(Scalar(TEXT, |t: &str| {
                        word(t, &[("skip", Missed::Skip), ("catch-up", Missed::CatchUp)])
                    }))?)
                }
                "result" => {
                    out.result = Some(map.next_value_seed(Scalar(TEXT, |t: &str| {
                        word(
                            t,
                            &[("none", ResultMode::None), ("branch", ResultMode::Branch)],
                        )
                    }))?)
                }
                "deadline" => {
                    out.deadline = Some(map.next_value_seed(Scalar(TEXT, environment::duration))?)
                }
                "timeout" => {
                    out.timeout = Some(map.next_value_seed(Scalar(TEXT, environment::duration))?)
                }
                "keep_history" => {
                    out.keep_history = Some(map.next_value_seed(Scalar(TEXT, keep_history))?)
                }
                "on_failure" => out.on_failure = Some(map.next_value_seed(Argv("on_failure"))?),
                _ => unreachable!("known_key returns only KEYS"),
            }
        }
        Ok(out)
    }
}

fn known_key(key: &str, seen: &[&'static str]) -> Result<&'static str, Fail> {
    let Some(known) = KEYS.iter().copied().find(|k| *k == key) else {
        let listing = format!("the keys are: {}", KEYS.join(", "));
        let fix = match did_you_mean(key, KEYS) {
            Some(close) => format!("did you mean `{close}`? ({listing})"),
            None => listing,
        };
        return Err(Fail::new("unknown key").fix(fix));
    };
    if seen.contains(&known) {
        return Err(
            Fail::new(format!("duplicate key: `{known}` is already set above"))
                .fix(format!("keep one `{known}:`")),
        );
    }
    Ok(known)
}

fn word<T: Copy>(text: &str, words: &[(&str, T)]) -> Result<T, Fail> {
    words
        .iter()
        .find(|(w, _)| *w == text)
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            let names: Vec<&str> = words.iter().map(|(w, _)| *w).collect();
            Fail::new(format!(
                "{:?} is not one of: {}",
                shown(text),
                names.join(", ")
            ))
            .fix(format!("write one of: {}", names.join(", ")))
        })
}

fn env(root: &ConfigRoot, text: &str) -> Result<String, Fail> {
    environment::resolve(Some(root), text).map_err(|e| {
        let mut f = Fail::new(e.message.clone());
        if let Some(fix) = &e.fix {
            f = f.fix(fix.clone());
        }
        f
    })?;
    if environment::is_path_spec(text) {
        return Err(Fail::new(format!(
            "{:?} is a path, not an environment's name",
            shown(text)
        ))
        .fix("name an environment from envs/ (envs/NAME.yaml → `env: NAME`)"));
    }
    Ok(text.to_string())
}

fn repository(root: &ConfigRoot, text: &str) -> Result<PathBuf, Fail> {
    if text.contains("://") || (text.contains('@') && text.contains(':')) {
        return Err(Fail::new(format!(
            "{:?} is a URL: schedules take a repository on this host for now",
            shown(text)
        ))
        .fix("clone it on the host (and keep it fetched) and give that clone's path"));
    }
    let path = root.dir().join(text);
    let path = std::path::absolute(&path).unwrap_or(path);
    if !path.is_dir() {
        return Err(Fail::new(format!("no such folder: {}", shown(&path.to_string_lossy())))
            .fix("give the path of a git repository on this host (relative paths are under the config root)"));
    }
    if !path.join(".git").exists() && !path.join("objects").is_dir() {
        return Err(Fail::new(format!(
            "{} is not a git repository",
            shown(&path.to_string_lossy())
        ))
        .fix("give the top folder of a git repository (the one holding .git)"));
    }
    Ok(path)
}

fn git_ref(text: &str) -> Result<String, Fail> {
    if text.is_empty() || text.starts_with('-') || text.chars().any(|c| c.is_control() || c == ' ')
    {
        return Err(Fail::new(format!("{:?} is not a git ref", shown(text)))
            .fix("name a branch, tag or commit, e.g. `ref: main`"));
    }
    Ok(text.to_string())
}

fn keep_history(text: &str) -> Result<usize, Fail> {
    match text.parse::<usize>() {
        Ok(n) if (1..=100_000).contains(&n) => Ok(n),
        _ => Err(Fail::new(format!(
            "{:?} is not a number of records from 1 to 100000",
            shown(text)
        ))
        .fix("write e.g. `keep_history: 50`")),
    }
}

/// A scalar read as written, checked in place (so the error points at it).
struct Scalar<F>(Expect, F);

impl<'de, T, F: FnOnce(&str) -> Result<T, Fail>> DeserializeSeed<'de> for Scalar<F> {
    type Value = T;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de, T, F: FnOnce(&str) -> Result<T, Fail>> Visitor<'de> for Scalar<F> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}", self.0)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        (self.1)(v).map_err(E::custom)
    }
}

/// A non-empty argv list.
struct Argv(&'static str);

impl<'de> DeserializeSeed<'de> for Argv {
    type Value = Vec<String>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<String>, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Argv {
    type Value = Vec<String>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{ARGV}")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
        let mut out = Vec::new();
        while let Some(item) = seq.next_element_seed(Scalar(ARGV, |t: &str| Ok(t.to_string())))? {
            out.push(item);
        }
        if out.is_empty() {
            return Err(de::Error::custom(
                Fail::new(format!("`{}` is an empty list", self.0))
                    .fix("give the command and its arguments, e.g. `[\"./agent.sh\"]`"),
            ));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root_with(files: &[(&str, &str)]) -> (tempfile::TempDir, ConfigRoot) {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let p = dir.path().join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        std::fs::create_dir_all(dir.path().join("repo/.git")).unwrap();
        let root = ConfigRoot::at(dir.path()).unwrap();
        (dir, root)
    }

    fn load_text(text: &str) -> Result<Schedule, String> {
        let (_dir, root) = root_with(&[
            ("envs/agent.yaml", "image: tiny\n"),
            ("schedules/s.yaml", text),
        ]);
        load(&root, &root.dir().join("schedules/s.yaml")).map_err(|e| {
            // The path shown depends on the current directory: keep what follows it.
            let s = e.to_string();
            s[s.find("s.yaml").unwrap()..].to_string()
        })
    }

    const OK: &str = "env: agent\nrepository: repo\nref: main\ncommand: [\"true\"]\ncron: \"30 2 * * 1-5\"\ntimezone: Europe/Berlin\n";

    #[test]
    fn a_full_definition_loads_with_defaults() {
        let s = load_text(OK).unwrap();
        assert_eq!(s.name, "s");
        assert_eq!(s.env, "agent");
        assert_eq!(s.git_ref, "main");
        assert_eq!(s.timezone_name, "Europe/Berlin");
        assert_eq!(s.overlap, Overlap::Forbid);
        assert_eq!(s.missed, Missed::Skip);
        assert_eq!(s.keep_history, DEFAULT_KEEP_HISTORY);
        assert_eq!(s.result, ResultMode::None);
        let s = load_text(&format!(
            "{OK}overlap: replace\nmissed: catch-up\ndeadline: 1h\ntimeout: 45m\nkeep_history: 3\nresult: branch\non_failure: [\"notify-send\", \"x\"]\n"
        ))
        .unwrap();
        assert_eq!(s.overlap, Overlap::Replace);
        assert_eq!(s.missed, Missed::CatchUp);
        assert_eq!(s.deadline, Some(Duration::from_secs(3600)));
        assert_eq!(s.timeout, Some(Duration::from_secs(45 * 60)));
        assert_eq!(s.keep_history, 3);
        assert_eq!(s.result, ResultMode::Branch);
        assert_eq!(s.on_failure.unwrap().len(), 2);
    }

    #[test]
    fn cron_forms() {
        for ok in [
            "30 2 * * 1-5",
            "*/10 * * * * *",
            "@hourly",
            "@daily",
            "@weekly",
            "0 0 29-31 * *",
        ] {
            parse_cron(ok).unwrap_or_else(|e| panic!("{ok}: {e:?}"));
        }
        for bad in ["61 * * * *", "* * *", "* * * * * * *", "x * * * *", ""] {
            assert!(parse_cron(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_input_names_the_line_and_the_fix() {
        let e = load_text(&OK.replace("30 2 * * 1-5", "30 25 * * 1-5")).unwrap_err();
        assert!(
            e.starts_with("s.yaml:5:7: cron: bad cron expression"),
            "{e}"
        );
        assert!(e.contains("\n  fix: 5 fields"), "{e}");

        let e = load_text(&OK.replace("Europe/Berlin", "Europe/Berln")).unwrap_err();
        assert_eq!(
            e,
            "s.yaml:6:11: timezone: unknown time zone \"Europe/Berln\"\n  fix: did you mean Europe/Berlin? (an IANA name such as Europe/Berlin, America/New_York or UTC)"
        );

        let e = load_text(&OK.replace("env: agent", "env: agnet")).unwrap_err();
        assert!(
            e.starts_with("s.yaml:1:6: env: no environment agnet"),
            "{e}"
        );
        assert!(e.contains("\n  fix: did you mean agent?"), "{e}");

        let e = load_text(&format!("{OK}overlap: sometimes\n")).unwrap_err();
        assert!(
            e.starts_with(
                "s.yaml:7:10: overlap: \"sometimes\" is not one of: forbid, replace, allow"
            ),
            "{e}"
        );

        let e = load_text(&format!("{OK}timzone: UTC\n")).unwrap_err();
        assert!(e.starts_with("s.yaml:7:1: timzone: unknown key\n"), "{e}");
        assert!(e.contains("did you mean `timezone`?"), "{e}");

        let e = load_text(&OK.replace("cron: \"30 2 * * 1-5\"\n", "")).unwrap_err();
        assert!(e.starts_with("s.yaml: missing key `cron`"), "{e}");

        let e = load_text(&OK.replace("repository: repo", "repository: https://example.com/x.git"))
            .unwrap_err();
        assert!(e.contains("is a URL"), "{e}");
    }
}

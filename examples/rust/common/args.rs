//! A tiny `--flag value` parser shared by the examples (no dependency needed).

// Each example includes this file and uses a different subset of it.
#![allow(dead_code)]

use std::collections::HashMap;

pub struct Args {
    values: HashMap<String, String>,
    flags: Vec<String>,
}

impl Args {
    /// Parses `--name value` pairs; names in `switches` take no value.
    pub fn parse(switches: &[&str]) -> Result<Args, String> {
        let mut values = HashMap::new();
        let mut flags = Vec::new();
        let mut it = std::env::args().skip(1);
        while let Some(a) = it.next() {
            let name = a
                .strip_prefix("--")
                .ok_or_else(|| format!("unexpected argument {a:?} (options start with --)"))?;
            if switches.contains(&name) {
                flags.push(name.to_string());
            } else {
                let v = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
                values.insert(name.to_string(), v);
            }
        }
        Ok(Args { values, flags })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    pub fn flag(&self, name: &str) -> bool {
        self.flags.iter().any(|f| f == name)
    }

    pub fn parse_or<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, String> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("--{name}: cannot parse {v:?}")),
        }
    }

    /// An optional parsed value.
    pub fn opt<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, String> {
        self.get(name)
            .map(|v| {
                v.parse()
                    .map_err(|_| format!("--{name}: cannot parse {v:?}"))
            })
            .transpose()
    }

    /// A comma-separated list of token ids.
    pub fn ids(&self, name: &str) -> Result<Option<Vec<u32>>, String> {
        match self.get(name) {
            None => Ok(None),
            Some("") => Ok(Some(vec![])),
            Some(v) => v
                .split(',')
                .map(|s| {
                    s.trim()
                        .parse::<u32>()
                        .map_err(|_| format!("--{name}: {s:?} is not a token id"))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
        }
    }
}

impl Args {
    /// Fails on any option not in `known` (values or switches), naming it.
    pub fn reject_unknown(&self, known: &[&str]) -> Result<(), String> {
        let given = self.values.keys().chain(self.flags.iter());
        match given.filter(|n| !known.contains(&n.as_str())).min() {
            Some(bad) => Err(format!(
                "unknown option --{bad} (options: {})",
                known
                    .iter()
                    .map(|k| format!("--{k}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            None => Ok(()),
        }
    }
}

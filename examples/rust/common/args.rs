//! A tiny `--flag value` parser shared by the examples (no dependency needed).

// Each example includes this file and uses a different subset of it.
#![allow(dead_code)]

use std::collections::HashMap;

pub struct Args {
    /// Every value given for each name, in order.
    values: HashMap<String, Vec<String>>,
    flags: Vec<String>,
}

impl Args {
    /// Parses `--name value` pairs; names in `switches` take no value.
    pub fn parse(switches: &[&str]) -> Result<Args, String> {
        let mut values: HashMap<String, Vec<String>> = HashMap::new();
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
                values.entry(name.to_string()).or_default().push(v);
            }
        }
        Ok(Args { values, flags })
    }

    /// The value of `name` (the last one when it was given more than once).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .and_then(|v| v.last())
            .map(String::as_str)
    }

    /// Every value given for `name`, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.values
            .get(name)
            .map_or(vec![], |v| v.iter().map(String::as_str).collect())
    }

    /// Fails on an option that is neither in `known` nor a switch given to `parse`.
    pub fn reject_unknown(&self, known: &[&str]) -> Result<(), String> {
        let mut names: Vec<&String> = self.values.keys().collect();
        names.sort();
        match names.into_iter().find(|n| !known.contains(&n.as_str())) {
            Some(n) => Err(format!("unknown option --{n}")),
            None => Ok(()),
        }
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
        self.get(name).map(|v| parse_ids(name, v)).transpose()
    }

    /// Every comma-separated list of token ids given for `name`, in order.
    pub fn all_ids(&self, name: &str) -> Result<Vec<Vec<u32>>, String> {
        self.all(name)
            .into_iter()
            .map(|v| parse_ids(name, v))
            .collect()
    }
}

/// `v` as comma-separated token ids (`""`: none).
fn parse_ids(name: &str, v: &str) -> Result<Vec<u32>, String> {
    if v.is_empty() {
        return Ok(vec![]);
    }
    v.split(',')
        .map(|s| {
            s.trim()
                .parse::<u32>()
                .map_err(|_| format!("--{name}: {s:?} is not a token id"))
        })
        .collect()
}

//! Which machines a command's names select: names, or `/regex/` as Vagrant takes them.

use std::fmt;
use std::path::PathBuf;

use regex::Regex;

use super::Workspace;
use crate::manifest::Machine;

/// Names that select no machine, or not the one machine wanted: bad input, exit 2.
#[derive(Debug)]
pub enum SelectError {
    Unknown {
        machinefile: PathBuf,
        name: String,
        known: Vec<String>,
    },
    NoMatch {
        machinefile: PathBuf,
        pattern: String,
        known: Vec<String>,
    },
    BadRegex {
        pattern: String,
        error: String,
    },
    NotOne {
        pattern: String,
        matched: Vec<String>,
    },
}

impl Workspace {
    /// The machines `names` selects, all of them when empty. A name written `/regex/`
    /// selects every machine whose name the regex matches anywhere, in Machinefile
    /// order, as Vagrant does. A name or regex that selects nothing is an error that
    /// lists the machines.
    pub fn select(&self, names: &[String]) -> Result<Vec<&Machine>, SelectError> {
        if names.is_empty() {
            return Ok(self.manifest.machines.iter().collect());
        }
        let mut selected = Vec::new();
        for name in names {
            for machine in self.matching(name)? {
                if !selected.contains(&machine) {
                    selected.push(machine);
                }
            }
        }
        Ok(selected)
    }

    /// The one machine `name` selects: a regex must match exactly one.
    pub fn select_one(&self, name: &str) -> Result<&Machine, SelectError> {
        let mut matched = self.matching(name)?;
        if matched.len() > 1 {
            return Err(SelectError::NotOne {
                pattern: name.to_string(),
                matched: matched.iter().map(|m| m.name.clone()).collect(),
            });
        }
        Ok(matched.remove(0))
    }

    fn matching(&self, name: &str) -> Result<Vec<&Machine>, SelectError> {
        let machines = &self.manifest.machines;
        let known = || machines.iter().map(|m| m.name.clone()).collect();
        // Machine names never hold `/`, so a name between slashes can only be a regex.
        let pattern = name
            .strip_prefix('/')
            .and_then(|rest| rest.strip_suffix('/'))
            .filter(|pattern| !pattern.is_empty());
        let Some(pattern) = pattern else {
            return match machines.iter().find(|m| m.name == name) {
                Some(machine) => Ok(vec![machine]),
                None => Err(SelectError::Unknown {
                    machinefile: self.manifest.path.clone(),
                    name: name.to_string(),
                    known: known(),
                }),
            };
        };
        let regex = Regex::new(pattern).map_err(|err| SelectError::BadRegex {
            pattern: name.to_string(),
            error: err.to_string(),
        })?;
        let matched: Vec<&Machine> = machines
            .iter()
            .filter(|m| regex.is_match(&m.name))
            .collect();
        if matched.is_empty() {
            return Err(SelectError::NoMatch {
                machinefile: self.manifest.path.clone(),
                pattern: name.to_string(),
                known: known(),
            });
        }
        Ok(matched)
    }
}

impl fmt::Display for SelectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SelectError::Unknown {
                machinefile,
                name,
                known,
            } => write!(
                f,
                "{} has no machine `{name}`; its machines are: {}",
                machinefile.display(),
                known.join(", ")
            ),
            SelectError::NoMatch {
                machinefile,
                pattern,
                known,
            } => write!(
                f,
                "no machine of {} matches `{pattern}`; its machines are: {}",
                machinefile.display(),
                known.join(", ")
            ),
            SelectError::BadRegex { pattern, error } => write!(
                f,
                "`{pattern}` is not a valid regular expression:\n  {}",
                error.trim_end().replace('\n', "\n  ")
            ),
            SelectError::NotOne { pattern, matched } => write!(
                f,
                "`{pattern}` matches {} machines ({}); this command takes one",
                matched.len(),
                matched.join(", ")
            ),
        }
    }
}

impl std::error::Error for SelectError {}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::manifest;

    fn workspace() -> Workspace {
        let text = "name: habits\nnetwork: {subnet: 10.231.1.0/24}\nmachines:\n  \
                    - {name: web1, ip: 10.231.1.11}\n  - {name: web2, ip: 10.231.1.12}\n  \
                    - {name: db1, ip: 10.231.1.13}\n  - {name: web10, ip: 10.231.1.14}\n";
        let manifest = manifest::parse(Path::new("/p/Machinefile"), text).unwrap();
        Workspace::new(manifest)
    }

    fn names(machines: Vec<&Machine>) -> Vec<&str> {
        machines.iter().map(|m| m.name.as_str()).collect()
    }

    #[test]
    fn names_and_regexes_select_machines() {
        let ws = workspace();
        let cases: [(&[&str], &[&str]); 9] = [
            (&[], &["web1", "web2", "db1", "web10"]),
            (&["db1", "web1"], &["db1", "web1"]),
            // A regex matches anywhere in the name, Machinefile order, as Vagrant's does.
            (&["/web/"], &["web1", "web2", "web10"]),
            (&["/^web[12]$/"], &["web1", "web2"]),
            (&["/web[12]/"], &["web1", "web2", "web10"]),
            (&["/1$/"], &["web1", "db1"]),
            // Each machine once, first selection first.
            (&["db1", "/./"], &["db1", "web1", "web2", "web10"]),
            (&["web2", "/web2/", "web2"], &["web2"]),
            (&["/db1|web2/"], &["web2", "db1"]),
        ];
        for (asked, want) in cases {
            let asked: Vec<String> = asked.iter().map(|s| s.to_string()).collect();
            let got = ws
                .select(&asked)
                .unwrap_or_else(|err| panic!("{asked:?}: {err}"));
            assert_eq!(names(got), want, "{asked:?}");
        }
    }

    #[test]
    fn selections_of_nothing_say_what_there_is() {
        let ws = workspace();
        let cases = [
            (
                "web9",
                "/p/Machinefile has no machine `web9`; its machines are: web1, web2, db1, web10",
            ),
            (
                "/^cache/",
                "no machine of /p/Machinefile matches `/^cache/`; its machines are: web1, web2, db1, web10",
            ),
            ("/web[/", "`/web[/` is not a valid regular expression:\n  regex parse error:"),
            // `//` is no regex: it is looked for as a name.
            ("//", "has no machine `//`"),
        ];
        for (asked, want) in cases {
            let err = ws
                .select(&["web1".to_string(), asked.to_string()])
                .unwrap_err();
            assert!(err.to_string().contains(want), "{asked}: {err}");
        }
    }

    #[test]
    fn one_machine_means_exactly_one() {
        let ws = workspace();
        assert_eq!(ws.select_one("db1").unwrap().name, "db1");
        assert_eq!(ws.select_one("/^d/").unwrap().name, "db1");
        let err = ws.select_one("/web[12]$/").unwrap_err().to_string();
        assert_eq!(
            err,
            "`/web[12]$/` matches 2 machines (web1, web2); this command takes one"
        );
        assert!(matches!(
            ws.select_one("/nope/"),
            Err(SelectError::NoMatch { .. })
        ));
    }
}

//! Argument parsing the way VBoxManage's RTGetOpt does it: `--opt value`, `--opt=value` and
//! `--opt:value`; indexed options (`--nic2` is `--nic` for NIC 2); values an option fetches
//! after its own (`--natpf1 delete <name>`); anything else starting with a dash is unknown.

use crate::Fail;

/// One option a subcommand knows.
pub struct Opt {
    /// What the handler matches on.
    pub key: &'static str,
    /// Spellings every version knows.
    pub old: &'static [&'static str],
    /// Spellings only VirtualBox 7 knows.
    pub new: &'static [&'static str],
    pub takes_value: bool,
    /// `--nic<N>`: the spelling is followed by a NIC, UART… number.
    pub indexed: bool,
}

/// A plain option: one spelling, every version.
pub const fn opt(key: &'static str, spellings: &'static [&'static str], takes_value: bool) -> Opt {
    Opt {
        key,
        old: spellings,
        new: &[],
        takes_value,
        indexed: false,
    }
}

/// What one step of parsing found.
pub enum Item {
    Opt {
        key: &'static str,
        index: u32,
        value: Option<String>,
        spelled: String,
    },
    Positional(String),
}

pub struct Args {
    items: Vec<String>,
    next: usize,
    seven: bool,
}

impl Args {
    pub fn new(items: &[String], seven: bool) -> Args {
        Args {
            items: items.to_vec(),
            next: 0,
            seven,
        }
    }

    /// The next option or positional argument, or None at the end.
    pub fn next(&mut self, table: &[Opt]) -> Option<Result<Item, Fail>> {
        let arg = self.items.get(self.next)?.clone();
        self.next += 1;
        if !arg.starts_with("--") {
            return Some(Ok(Item::Positional(arg)));
        }
        let (name, inline) = match arg.find(['=', ':']) {
            Some(at) => (&arg[..at], Some(arg[at + 1..].to_string())),
            None => (arg.as_str(), None),
        };
        let Some((opt, index)) = self.lookup(table, name) else {
            return Some(Err(Fail::syntax(format!("Unknown option: {arg}"))));
        };
        let value = match (opt.takes_value, inline) {
            (false, Some(_)) => {
                return Some(Err(Fail::syntax(format!("Option {name} takes no value"))))
            }
            (false, None) => None,
            (true, Some(value)) => Some(value),
            (true, None) => match self.fetch() {
                Ok(value) => Some(value),
                Err(_) => {
                    return Some(Err(Fail::syntax(format!("Option {name} requires a value"))))
                }
            },
        };
        Some(Ok(Item::Opt {
            key: opt.key,
            index,
            value,
            spelled: name.to_string(),
        }))
    }

    /// The argument after the current one, for options that take more than one value.
    pub fn fetch(&mut self) -> Result<String, Fail> {
        let value = self
            .items
            .get(self.next)
            .cloned()
            .ok_or_else(|| Fail::syntax("Not enough parameters".to_string()))?;
        self.next += 1;
        Ok(value)
    }

    fn lookup<'t>(&self, table: &'t [Opt], name: &str) -> Option<(&'t Opt, u32)> {
        table.iter().find_map(|opt| {
            let spellings = opt.old.iter().chain(if self.seven { opt.new } else { &[] });
            for spelling in spellings {
                if !opt.indexed && name == *spelling {
                    return Some((opt, 0));
                }
                let digits = name.strip_prefix(spelling).filter(|_| opt.indexed);
                if let Some(digits) =
                    digits.filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
                {
                    return Some((opt, digits.parse().ok()?));
                }
            }
            None
        })
    }
}

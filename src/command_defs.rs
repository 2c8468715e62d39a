//! Slash command definitions: `commands/*.json`, one Discord application command per file,
//! loaded and checked against Discord's rules before hanko registers them. What a command
//! does when invoked is [`crate::discord::commands`] (the handlers); this module only knows
//! the definitions.
//!
//! Discord rejects a bad definition at registration time with a terse 400, or worse, accepts
//! it and silently ignores a misspelt field (a `requried` option is simply optional). So
//! [`validate`] checks the rules up front and names the offending path
//! (`options[2].choices[0].name: ...`), and unknown fields are reported too.
//!
//! The definitions are embedded in the binary at build time ([`EMBEDDED`],
//! [`embedded_definitions`]), so the binary runs from any folder; `$HANKO_COMMANDS_DIR` may
//! name a folder of definitions to use instead ([`load_definitions`]), and an error names the
//! file it read.
//!
//! Pure: serde_json and the file system only. Never imports serenity (the Discord adapter
//! registers what this module loaded), the AWS SDK or sled.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// The slash commands hanko ships, one `commands/<name>.json` each.
pub const COMMAND_NAMES: [&str; 10] = [
    "findings",
    "finding",
    "contain",
    "audit",
    "revert",
    "status",
    "pause",
    "resume",
    "score",
    "suppressions",
];

/// Application command types.
const CHAT_INPUT: i64 = 1;
const PRIMARY_ENTRY_POINT: i64 = 4;

/// Option types.
const SUB_COMMAND: i64 = 1;
const SUB_COMMAND_GROUP: i64 = 2;
const STRING: i64 = 3;
const INTEGER: i64 = 4;
const CHANNEL: i64 = 7;
const NUMBER: i64 = 10;
const ATTACHMENT: i64 = 11;

/// Discord's limits.
const MAX_NAME: usize = 32;
const MAX_DESCRIPTION: usize = 100;
const MAX_OPTIONS: usize = 25;
const MAX_CHOICES: usize = 25;
const MAX_CHOICE_NAME: usize = 100;
const MAX_CHOICE_STRING: usize = 100;
const MAX_LENGTH_LIMIT: i64 = 6000;
/// Names, descriptions and values of a command, its options and their choices, together.
const MAX_TOTAL_CHARS: usize = 8000;

const COMMAND_KEYS: &[&str] = &[
    "id",
    "type",
    "application_id",
    "guild_id",
    "name",
    "name_localizations",
    "description",
    "description_localizations",
    "options",
    "default_member_permissions",
    "dm_permission",
    "default_permission",
    "nsfw",
    "integration_types",
    "contexts",
    "version",
    "handler",
];

const OPTION_KEYS: &[&str] = &[
    "type",
    "name",
    "name_localizations",
    "description",
    "description_localizations",
    "required",
    "choices",
    "options",
    "channel_types",
    "min_value",
    "max_value",
    "min_length",
    "max_length",
    "autocomplete",
];

const CHOICE_KEYS: &[&str] = &["name", "name_localizations", "value"];

#[derive(Debug, thiserror::Error)]
pub enum CommandDefError {
    #[error("{}: cannot read slash command definitions: {message}", path.display())]
    Io { path: PathBuf, message: String },
    #[error("{}:{line}:{column}: not valid JSON: {message}", path.display())]
    Json {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}: the command is named `{name}`; the file must be named {name}.json", path.display())]
    NameMismatch { path: PathBuf, name: String },
    #[error("{}: {}", path.display(), problems.join("; "))]
    Invalid {
        path: PathBuf,
        problems: Vec<String>,
    },
}

/// The definitions hanko ships, `commands/<name>.json`, embedded at build time, in file-name
/// order.
pub const EMBEDDED: [(&str, &str); 10] = [
    ("audit.json", include_str!("../commands/audit.json")),
    ("contain.json", include_str!("../commands/contain.json")),
    ("finding.json", include_str!("../commands/finding.json")),
    ("findings.json", include_str!("../commands/findings.json")),
    ("pause.json", include_str!("../commands/pause.json")),
    ("resume.json", include_str!("../commands/resume.json")),
    ("revert.json", include_str!("../commands/revert.json")),
    ("score.json", include_str!("../commands/score.json")),
    ("status.json", include_str!("../commands/status.json")),
    (
        "suppressions.json",
        include_str!("../commands/suppressions.json"),
    ),
];

/// The embedded definitions ([`EMBEDDED`]), checked as [`load_definitions`] checks files; an
/// error names `commands/<file>` (embedded).
pub fn embedded_definitions() -> Result<Vec<(String, Value)>, CommandDefError> {
    EMBEDDED
        .iter()
        .map(|(file, text)| {
            let path = PathBuf::from(format!("commands/{file} (embedded)"));
            parse_definition(path, Path::new(file), text)
        })
        .collect()
}

/// Loads every `*.json` in `dir`, sorted by file name, as `(command name, definition)`.
/// Fails on the first file that cannot be read or parsed, whose name differs from its
/// command's, or that breaks Discord's rules ([`validate`]).
pub fn load_definitions(dir: &Path) -> Result<Vec<(String, Value)>, CommandDefError> {
    let io = |path: &Path, e: std::io::Error| CommandDefError::Io {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
        let path = entry.map_err(|e| io(dir, e))?.path();
        if path.extension().is_some_and(|ext| ext == "json") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();

    let mut definitions = Vec::with_capacity(files.len());
    for path in files {
        let text = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
        definitions.push(parse_definition(path.clone(), &path, &text)?);
    }
    Ok(definitions)
}

/// One definition's text, read from `path` (named in errors) whose file name is `file`.
fn parse_definition(
    path: PathBuf,
    file: &Path,
    text: &str,
) -> Result<(String, Value), CommandDefError> {
    let def: Value = serde_json::from_str(text).map_err(|e| CommandDefError::Json {
        path: path.clone(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    let problems = validate(&def);
    if !problems.is_empty() {
        return Err(CommandDefError::Invalid { path, problems });
    }
    let name = def
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if file.file_stem().and_then(|s| s.to_str()) != Some(name.as_str()) {
        return Err(CommandDefError::NameMismatch { path, name });
    }
    Ok((name, def))
}

/// Checks one application command definition against Discord's rules. Returns one line per
/// problem, each naming its path in the definition; empty means valid.
pub fn validate(def: &Value) -> Vec<String> {
    let mut v = Validator::default();
    let Some(command) = def.as_object() else {
        v.problem("", "a command definition must be a JSON object");
        return v.problems;
    };
    v.unknown_keys("", command, COMMAND_KEYS);

    let kind = match command.get("type") {
        None => CHAT_INPUT,
        Some(t) => match t.as_i64() {
            Some(t) if (CHAT_INPUT..=PRIMARY_ENTRY_POINT).contains(&t) => t,
            _ => {
                v.problem(
                    "type",
                    "must be 1 (slash command), 2 (user), 3 (message) or 4 (entry point)",
                );
                CHAT_INPUT
            }
        },
    };

    if kind == CHAT_INPUT {
        v.name("name", command.get("name"));
        v.description("description", command.get("description"));
        match command.get("options") {
            None => {}
            Some(Value::Array(options)) => v.options("options", options, Level::Command),
            Some(_) => v.problem("options", "must be an array"),
        }
    } else {
        // User and message commands: a free-form name, no description, no options.
        match command.get("name").and_then(Value::as_str) {
            Some(n) if (1..=MAX_NAME).contains(&n.chars().count()) => v.count(n),
            _ => v.problem("name", "must be a string of 1 to 32 characters"),
        }
        if command
            .get("description")
            .and_then(Value::as_str)
            .is_some_and(|d| !d.is_empty())
        {
            v.problem("description", "must be empty for user and message commands");
        }
        if command.contains_key("options") {
            v.problem("options", "only slash commands (type 1) take options");
        }
    }

    v.boolean("dm_permission", command.get("dm_permission"));
    v.boolean("nsfw", command.get("nsfw"));
    v.enum_list(
        "contexts",
        command.get("contexts"),
        0..=2,
        "0 (guild), 1 (bot DM), 2 (private channel)",
    );
    v.enum_list(
        "integration_types",
        command.get("integration_types"),
        0..=1,
        "0 (guild install), 1 (user install)",
    );
    match command.get("default_member_permissions") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {}
        Some(_) => v.problem(
            "default_member_permissions",
            "must be a permission bit set as a string of digits (e.g. \"0\"), or null",
        ),
    }
    if v.total_chars > MAX_TOTAL_CHARS {
        v.problem(
            "",
            format!(
                "names, descriptions and choices total {} characters; Discord allows {MAX_TOTAL_CHARS}",
                v.total_chars
            ),
        );
    }
    v.problems
}

/// Where a list of options sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    /// Directly under the command: subcommands, groups, or plain options (not mixed).
    Command,
    /// Under a subcommand group: subcommands only.
    Group,
    /// Under a subcommand: plain options only.
    Subcommand,
}

#[derive(Default)]
struct Validator {
    problems: Vec<String>,
    /// Characters counted toward [`MAX_TOTAL_CHARS`].
    total_chars: usize,
}

impl Validator {
    fn problem(&mut self, path: &str, message: impl AsRef<str>) {
        let message = message.as_ref();
        if path.is_empty() {
            self.problems.push(message.to_owned());
        } else {
            self.problems.push(format!("{path}: {message}"));
        }
    }

    fn count(&mut self, s: &str) {
        self.total_chars += s.chars().count();
    }

    fn unknown_keys(
        &mut self,
        path: &str,
        object: &serde_json::Map<String, Value>,
        known: &[&str],
    ) {
        for key in object.keys() {
            if !known.contains(&key.as_str()) {
                let at = join(path, key);
                self.problem(
                    &at,
                    "unknown field (Discord would ignore it silently): check the spelling",
                );
            }
        }
    }

    /// A slash command or option name: 1-32 of lowercase letters, digits, `-` and `_`.
    fn name(&mut self, path: &str, name: Option<&Value>) -> Option<String> {
        let Some(name) = name.and_then(Value::as_str) else {
            self.problem(
                path,
                "missing: a name of 1 to 32 lowercase letters, digits, - or _",
            );
            return None;
        };
        self.count(name);
        let len = name.chars().count();
        let valid = (1..=MAX_NAME).contains(&len)
            && name.chars().all(|c| {
                c == '-' || c == '_' || c.is_numeric() || (c.is_alphabetic() && !c.is_uppercase())
            });
        if !valid {
            self.problem(
                path,
                format!("`{name}` is not a valid name: 1 to 32 lowercase letters, digits, - or _"),
            );
        }
        Some(name.to_owned())
    }

    fn description(&mut self, path: &str, description: Option<&Value>) {
        match description.and_then(Value::as_str) {
            Some(d) if (1..=MAX_DESCRIPTION).contains(&d.chars().count()) => self.count(d),
            Some(d) => {
                self.count(d);
                self.problem(
                    path,
                    format!(
                        "is {} characters; Discord needs 1 to {MAX_DESCRIPTION}",
                        d.chars().count()
                    ),
                );
            }
            None => self.problem(path, "missing: a description of 1 to 100 characters"),
        }
    }

    fn boolean(&mut self, path: &str, value: Option<&Value>) {
        if value.is_some_and(|b| !b.is_boolean()) {
            self.problem(path, "must be true or false");
        }
    }

    fn enum_list(
        &mut self,
        path: &str,
        value: Option<&Value>,
        allowed: std::ops::RangeInclusive<i64>,
        meaning: &str,
    ) {
        let Some(value) = value else { return };
        let items = value.as_array();
        let valid = items.is_some_and(|items| {
            let mut seen = BTreeSet::new();
            items.iter().all(|i| {
                i.as_i64()
                    .is_some_and(|n| allowed.contains(&n) && seen.insert(n))
            })
        });
        if !valid {
            self.problem(
                path,
                format!("must be a list of distinct values among {meaning}"),
            );
        }
    }

    fn options(&mut self, path: &str, options: &[Value], level: Level) {
        if options.len() > MAX_OPTIONS {
            self.problem(
                path,
                format!(
                    "{} options; Discord allows at most {MAX_OPTIONS}",
                    options.len()
                ),
            );
        }
        let mut names = BTreeSet::new();
        let mut optional_seen: Option<String> = None;
        let mut has_subcommands = false;
        let mut has_plain = false;
        for (i, option) in options.iter().enumerate() {
            let at = format!("{path}[{i}]");
            let Some(object) = option.as_object() else {
                self.problem(&at, "an option must be a JSON object");
                continue;
            };
            self.unknown_keys(&at, object, OPTION_KEYS);
            let name = self.name(&join(&at, "name"), object.get("name"));
            if let Some(name) = &name {
                if !names.insert(name.clone()) {
                    self.problem(
                        &join(&at, "name"),
                        format!("`{name}` is used by another option at this level"),
                    );
                }
            }
            self.description(&join(&at, "description"), object.get("description"));
            let Some(kind) = object
                .get("type")
                .and_then(Value::as_i64)
                .filter(|t| (SUB_COMMAND..=ATTACHMENT).contains(t))
            else {
                self.problem(&join(&at, "type"), "must be an option type from 1 to 11 (3 string, 4 integer, 5 boolean, 10 number...)");
                continue;
            };
            let is_sub = kind == SUB_COMMAND || kind == SUB_COMMAND_GROUP;
            has_subcommands |= is_sub;
            has_plain |= !is_sub;
            match (level, kind) {
                (Level::Group, SUB_COMMAND) | (Level::Command, _) => {}
                (Level::Group, _) => self.problem(&join(&at, "type"), "a subcommand group may only hold subcommands (type 1)"),
                (Level::Subcommand, SUB_COMMAND | SUB_COMMAND_GROUP) => self.problem(
                    &join(&at, "type"),
                    "subcommands cannot nest inside a subcommand (only group > subcommand > options)",
                ),
                (Level::Subcommand, _) => {}
            }
            if is_sub {
                self.subcommand(&at, object, kind);
            } else {
                self.plain_option(&at, object, kind);
                let required = object
                    .get("required")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                let label = name.unwrap_or_else(|| format!("#{i}"));
                match (&optional_seen, required) {
                    (Some(optional), true) => self.problem(
                        &join(&at, "required"),
                        format!("required option `{label}` comes after optional `{optional}`: list required options first"),
                    ),
                    (None, false) => optional_seen = Some(label),
                    _ => {}
                }
            }
        }
        if has_subcommands && has_plain {
            self.problem(
                path,
                "mixes subcommands with plain options: at one level, use one or the other",
            );
        }
    }

    fn subcommand(&mut self, at: &str, object: &serde_json::Map<String, Value>, kind: i64) {
        for key in [
            "required",
            "choices",
            "autocomplete",
            "min_value",
            "max_value",
            "min_length",
            "max_length",
            "channel_types",
        ] {
            if object.contains_key(key) {
                self.problem(&join(at, key), "does not apply to a subcommand or group");
            }
        }
        let nested = if kind == SUB_COMMAND_GROUP {
            Level::Group
        } else {
            Level::Subcommand
        };
        match object.get("options") {
            Some(Value::Array(options)) => {
                if kind == SUB_COMMAND_GROUP && options.is_empty() {
                    self.problem(
                        &join(at, "options"),
                        "a subcommand group needs at least one subcommand",
                    );
                }
                self.options(&join(at, "options"), options, nested);
            }
            Some(_) => self.problem(&join(at, "options"), "must be an array"),
            None if kind == SUB_COMMAND_GROUP => self.problem(
                &join(at, "options"),
                "a subcommand group needs at least one subcommand",
            ),
            None => {}
        }
    }

    fn plain_option(&mut self, at: &str, object: &serde_json::Map<String, Value>, kind: i64) {
        let numeric = kind == INTEGER || kind == NUMBER;
        let choosable = kind == STRING || numeric;
        self.boolean(&join(at, "required"), object.get("required"));
        self.boolean(&join(at, "autocomplete"), object.get("autocomplete"));
        if object.contains_key("options") {
            self.problem(
                &join(at, "options"),
                "only subcommands and groups hold options",
            );
        }
        if object.contains_key("channel_types") && kind != CHANNEL {
            self.problem(
                &join(at, "channel_types"),
                "only applies to channel options (type 7)",
            );
        }

        // Choices.
        let choices = object.get("choices");
        let has_choices = choices
            .and_then(Value::as_array)
            .is_some_and(|c| !c.is_empty());
        if let Some(choices) = choices {
            let path = join(at, "choices");
            if !choosable {
                self.problem(
                    &path,
                    "only string, integer and number options (types 3, 4, 10) take choices",
                );
            } else if let Some(choices) = choices.as_array() {
                self.choices(&path, choices, kind);
            } else {
                self.problem(&path, "must be an array");
            }
        }
        if object.get("autocomplete").and_then(Value::as_bool) == Some(true) {
            if !choosable {
                self.problem(
                    &join(at, "autocomplete"),
                    "only string, integer and number options (types 3, 4, 10) autocomplete",
                );
            }
            if has_choices {
                self.problem(
                    &join(at, "autocomplete"),
                    "cannot be combined with choices: use one or the other",
                );
            }
        }

        // Ranges.
        for key in ["min_value", "max_value"] {
            let Some(value) = object.get(key) else {
                continue;
            };
            let path = join(at, key);
            if !numeric {
                self.problem(
                    &path,
                    "only integer and number options (types 4, 10) take min_value/max_value",
                );
            } else if kind == INTEGER && !(value.is_i64() || value.is_u64()) {
                self.problem(&path, "must be a whole number for an integer option");
            } else if !value.is_number() {
                self.problem(&path, "must be a number");
            }
        }
        if let (Some(min), Some(max)) = (
            object.get("min_value").and_then(Value::as_f64),
            object.get("max_value").and_then(Value::as_f64),
        ) {
            if min > max {
                self.problem(
                    &join(at, "min_value"),
                    format!("{min} is greater than max_value {max}"),
                );
            }
        }
        for (key, lowest) in [("min_length", 0), ("max_length", 1)] {
            let Some(value) = object.get(key) else {
                continue;
            };
            let path = join(at, key);
            if kind != STRING {
                self.problem(
                    &path,
                    "only string options (type 3) take min_length/max_length",
                );
            } else if !value
                .as_i64()
                .is_some_and(|n| (lowest..=MAX_LENGTH_LIMIT).contains(&n))
            {
                self.problem(
                    &path,
                    format!("must be a whole number from {lowest} to {MAX_LENGTH_LIMIT}"),
                );
            }
        }
        if let (Some(min), Some(max)) = (
            object.get("min_length").and_then(Value::as_i64),
            object.get("max_length").and_then(Value::as_i64),
        ) {
            if min > max {
                self.problem(
                    &join(at, "min_length"),
                    format!("{min} is greater than max_length {max}"),
                );
            }
        }
    }

    fn choices(&mut self, path: &str, choices: &[Value], kind: i64) {
        if choices.len() > MAX_CHOICES {
            self.problem(
                path,
                format!(
                    "{} choices; Discord allows at most {MAX_CHOICES}",
                    choices.len()
                ),
            );
        }
        for (i, choice) in choices.iter().enumerate() {
            let at = format!("{path}[{i}]");
            let Some(object) = choice.as_object() else {
                self.problem(&at, "a choice must be a JSON object with name and value");
                continue;
            };
            self.unknown_keys(&at, object, CHOICE_KEYS);
            match object.get("name").and_then(Value::as_str) {
                Some(n) if (1..=MAX_CHOICE_NAME).contains(&n.chars().count()) => self.count(n),
                _ => self.problem(
                    &join(&at, "name"),
                    "must be a string of 1 to 100 characters",
                ),
            }
            let value = object.get("value");
            let fits = match (kind, value) {
                (STRING, Some(Value::String(s))) => {
                    self.count(s);
                    (1..=MAX_CHOICE_STRING).contains(&s.chars().count())
                }
                (INTEGER, Some(n)) => n.is_i64() || n.is_u64(),
                (NUMBER, Some(n)) => n.is_number(),
                _ => false,
            };
            if !fits {
                let what = match kind {
                    STRING => "a string of 1 to 100 characters",
                    INTEGER => "a whole number",
                    _ => "a number",
                };
                self.problem(
                    &join(&at, "value"),
                    format!("must be {what}, like the option's type"),
                );
            }
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_subcommands_follow_the_rules() {
        let ok = json!({
            "name": "admin", "description": "d",
            "options": [
                {"type": 2, "name": "group", "description": "g", "options": [
                    {"type": 1, "name": "sub", "description": "s", "options": [
                        {"type": 3, "name": "x", "description": "x", "required": true}
                    ]}
                ]},
                {"type": 1, "name": "plain-sub", "description": "s"}
            ]
        });
        assert_eq!(validate(&ok), Vec::<String>::new());

        let bad = json!({
            "name": "admin", "description": "d",
            "options": [
                {"type": 2, "name": "group", "description": "g", "options": [
                    {"type": 3, "name": "x", "description": "x"}
                ]},
                {"type": 1, "name": "sub", "description": "s", "required": true, "options": [
                    {"type": 1, "name": "deeper", "description": "d"}
                ]},
                {"type": 2, "name": "empty", "description": "e"},
                {"type": 3, "name": "mixed", "description": "m"}
            ]
        });
        assert_eq!(
            validate(&bad),
            vec![
                "options[0].options[0].type: a subcommand group may only hold subcommands (type 1)",
                "options[1].required: does not apply to a subcommand or group",
                "options[1].options[0].type: subcommands cannot nest inside a subcommand (only group > subcommand > options)",
                "options[2].options: a subcommand group needs at least one subcommand",
                "options: mixes subcommands with plain options: at one level, use one or the other",
            ]
        );
    }

    #[test]
    fn user_commands_take_no_description() {
        let ok = json!({"type": 2, "name": "Quarantine User", "description": ""});
        assert_eq!(validate(&ok), Vec::<String>::new());
        let bad = json!({"type": 3, "name": "Report", "description": "x", "options": []});
        assert_eq!(
            validate(&bad),
            vec![
                "description: must be empty for user and message commands",
                "options: only slash commands (type 1) take options",
            ]
        );
    }

    #[test]
    fn total_characters_are_limited() {
        let options: Vec<Value> = (0..25)
            .map(|i| {
                json!({"type": 3, "name": format!("o{i}"), "description": "d".repeat(100),
                       "choices": (0..4).map(|c| json!({"name": "n".repeat(100), "value": format!("{c}")})).collect::<Vec<_>>()})
            })
            .collect();
        let problems = validate(&json!({"name": "big", "description": "d", "options": options}));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("names, descriptions and choices total 12"),
            "{problems:?}"
        );
    }
}

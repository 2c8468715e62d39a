//! The slash command definitions in `commands/` against Discord's rules, and the validator
//! against definitions Discord would reject.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use hanko::audit::EventKind;
use hanko::command_defs::{load_definitions, validate, CommandDefError, COMMAND_NAMES};
use serde_json::{json, Value};

fn commands_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("commands")
}

fn shipped() -> Vec<(String, Value)> {
    load_definitions(&commands_dir()).unwrap_or_else(|e| panic!("{e}"))
}

fn option<'a>(def: &'a Value, name: &str) -> &'a Value {
    def["options"]
        .as_array()
        .and_then(|o| o.iter().find(|o| o["name"] == name))
        .unwrap_or_else(|| panic!("/{} has no option {name}", def["name"]))
}

#[test]
fn every_shipped_definition_follows_discords_rules() {
    let defs = shipped();
    assert_eq!(defs.len(), COMMAND_NAMES.len());
    for (name, def) in &defs {
        assert_eq!(validate(def), Vec::<String>::new(), "/{name}");
        assert_eq!(def["type"], 1, "/{name} is a slash command");
        assert_eq!(def["dm_permission"], false, "/{name} is guild-only");
        assert_eq!(def["contexts"], json!([0]), "/{name} is guild-only");
    }
}

#[test]
fn the_files_are_exactly_the_command_names() {
    let files: BTreeSet<String> = std::fs::read_dir(commands_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let expected: BTreeSet<String> = COMMAND_NAMES.iter().map(|n| format!("{n}.json")).collect();
    assert_eq!(files, expected);
    let loaded: BTreeSet<String> = shipped().into_iter().map(|(n, _)| n).collect();
    let names: BTreeSet<String> = COMMAND_NAMES.iter().map(|n| n.to_string()).collect();
    assert_eq!(loaded, names);
}

#[test]
fn options_match_what_the_handlers_expect() {
    let defs: Vec<(String, Value)> = shipped();
    let def = |name: &str| &defs.iter().find(|(n, _)| n == name).unwrap().1;

    let findings = def("findings");
    assert_eq!(option(findings, "min_severity")["type"], 10);
    assert_eq!(option(findings, "min_severity")["min_value"], 0);
    assert_eq!(option(findings, "min_severity")["max_value"], 10);
    let resource_types: Vec<&Value> = option(findings, "resource_type")["choices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["value"])
        .collect();
    assert_eq!(
        resource_types,
        [
            &json!("AccessKey"),
            &json!("Instance"),
            &json!("S3Bucket"),
            &json!("Other")
        ]
    );
    assert_eq!(option(findings, "limit")["max_value"], 50);

    assert_eq!(option(def("finding"), "id")["required"], true);
    assert_eq!(option(def("finding"), "id")["autocomplete"], true);
    assert_eq!(option(def("contain"), "target")["required"], true);
    assert_eq!(option(def("revert"), "request")["required"], true);
    assert_eq!(option(def("audit"), "limit")["max_value"], 1000);
    assert_eq!(def("status").get("options"), None);
    assert_eq!(def("resume").get("options"), None);
    assert_eq!(option(def("pause"), "reason")["type"], 3);
}

/// `/audit action` offers every audit event kind, and only those, so the store's filter
/// always understands the choice.
#[test]
fn audit_action_choices_are_the_event_kinds() {
    let defs = shipped();
    let audit = &defs.iter().find(|(n, _)| n == "audit").unwrap().1;
    let choices: Vec<&str> = option(audit, "action")["choices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["value"].as_str().unwrap())
        .collect();
    let kinds: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
    assert_eq!(choices, kinds);
    for choice in choices {
        assert!(EventKind::parse(choice).is_some(), "{choice}");
    }
}

fn base() -> Value {
    json!({
        "name": "findings",
        "type": 1,
        "description": "List recent findings",
        "options": [
            {"type": 3, "name": "id", "description": "Finding id", "required": true},
            {"type": 4, "name": "limit", "description": "How many", "min_value": 1, "max_value": 50}
        ]
    })
}

/// Each case: a mutation of a valid definition and a fragment of the problem it must cause.
#[test]
fn invalid_definitions_are_caught() {
    type Mutation = fn(&mut Value);
    let cases: &[(&str, Mutation, &str)] = &[
        (
            "uppercase name",
            |d| d["name"] = json!("Findings"),
            "name: `Findings` is not a valid name",
        ),
        (
            "space in name",
            |d| d["name"] = json!("list findings"),
            "name: `list findings` is not a valid name",
        ),
        (
            "33-character name",
            |d| d["name"] = json!("a".repeat(33)),
            "is not a valid name",
        ),
        (
            "empty name",
            |d| d["name"] = json!(""),
            "is not a valid name",
        ),
        (
            "missing name",
            |d| {
                d.as_object_mut().unwrap().remove("name");
            },
            "name: missing",
        ),
        (
            "101-character description",
            |d| d["description"] = json!("x".repeat(101)),
            "description: is 101 characters; Discord needs 1 to 100",
        ),
        (
            "empty description",
            |d| d["description"] = json!(""),
            "description: is 0 characters",
        ),
        (
            "26 options",
            |d| {
                d["options"] = (0..26)
                    .map(|i| json!({"type": 3, "name": format!("o{i}"), "description": "d"}))
                    .collect();
            },
            "options: 26 options; Discord allows at most 25",
        ),
        (
            "option type 12",
            |d| d["options"][1]["type"] = json!(12),
            "options[1].type: must be an option type from 1 to 11",
        ),
        (
            "option type 0",
            |d| d["options"][1]["type"] = json!(0),
            "options[1].type: must be an option type from 1 to 11",
        ),
        (
            "required after optional",
            |d| {
                d["options"][0]["required"] = json!(false);
                d["options"][1]["required"] = json!(true);
            },
            "options[1].required: required option `limit` comes after optional `id`",
        ),
        (
            "choices and autocomplete",
            |d| {
                d["options"][0]["autocomplete"] = json!(true);
                d["options"][0]["choices"] = json!([{"name": "a", "value": "a"}]);
            },
            "options[0].autocomplete: cannot be combined with choices",
        ),
        (
            "26 choices",
            |d| {
                d["options"][0]["choices"] = (0..26)
                    .map(|i| json!({"name": format!("c{i}"), "value": format!("c{i}")}))
                    .collect();
            },
            "options[0].choices: 26 choices; Discord allows at most 25",
        ),
        (
            "101-character choice name",
            |d| d["options"][0]["choices"] = json!([{"name": "n".repeat(101), "value": "v"}]),
            "options[0].choices[0].name: must be a string of 1 to 100 characters",
        ),
        (
            "string choice on an integer option",
            |d| d["options"][1]["choices"] = json!([{"name": "ten", "value": "10"}]),
            "options[1].choices[0].value: must be a whole number",
        ),
        (
            "choices on a boolean",
            |d| {
                d["options"][1] = json!({"type": 5, "name": "all", "description": "d",
                                          "choices": [{"name": "yes", "value": true}]});
            },
            "options[1].choices: only string, integer and number options",
        ),
        (
            "min_value on a string",
            |d| d["options"][0]["min_value"] = json!(1),
            "options[0].min_value: only integer and number options",
        ),
        (
            "fractional min_value on an integer",
            |d| d["options"][1]["min_value"] = json!(1.5),
            "options[1].min_value: must be a whole number",
        ),
        (
            "min_value above max_value",
            |d| d["options"][1]["min_value"] = json!(60),
            "options[1].min_value: 60 is greater than max_value 50",
        ),
        (
            "max_length on an integer",
            |d| d["options"][1]["max_length"] = json!(10),
            "options[1].max_length: only string options",
        ),
        (
            "duplicate option names",
            |d| d["options"][1]["name"] = json!("id"),
            "options[1].name: `id` is used by another option at this level",
        ),
        (
            "misspelt field",
            |d| d["options"][0]["requried"] = json!(true),
            "options[0].requried: unknown field",
        ),
        (
            "contexts out of range",
            |d| d["contexts"] = json!([0, 3]),
            "contexts: must be a list of distinct values",
        ),
        (
            "dm_permission not a boolean",
            |d| d["dm_permission"] = json!("no"),
            "dm_permission: must be true or false",
        ),
        (
            "subcommand mixed with options",
            |d| {
                d["options"][1] = json!({"type": 1, "name": "sub", "description": "d"});
            },
            "options: mixes subcommands with plain options",
        ),
        (
            "command type 5",
            |d| d["type"] = json!(5),
            "type: must be 1 (slash command)",
        ),
    ];
    assert_eq!(validate(&base()), Vec::<String>::new(), "the base is valid");
    for (what, mutate, want) in cases {
        let mut def = base();
        mutate(&mut def);
        let problems = validate(&def);
        assert!(
            problems.iter().any(|p| p.contains(want)),
            "{what}: want `{want}` in {problems:#?}"
        );
    }
}

#[test]
fn load_definitions_names_the_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();

    write(
        "status.json",
        r#"{"name": "status", "description": "Health"}"#,
    );
    write("README.md", "not a definition");
    let defs = load_definitions(dir.path()).unwrap();
    assert_eq!(defs.len(), 1);
    assert_eq!(defs[0].0, "status");

    write("pause.json", "{\n  \"name\": \"pause\",\n  oops\n}");
    match load_definitions(dir.path()) {
        Err(CommandDefError::Json { path, line, .. }) => {
            assert_eq!(path, dir.path().join("pause.json"));
            assert_eq!(line, 3);
        }
        other => panic!("{other:?}"),
    }

    write(
        "pause.json",
        r#"{"name": "resume", "description": "Resume"}"#,
    );
    match load_definitions(dir.path()) {
        Err(CommandDefError::NameMismatch { path, name }) => {
            assert_eq!(path, dir.path().join("pause.json"));
            assert_eq!(name, "resume");
        }
        other => panic!("{other:?}"),
    }

    write("pause.json", r#"{"name": "pause", "description": ""}"#);
    match load_definitions(dir.path()) {
        Err(e @ CommandDefError::Invalid { .. }) => {
            let shown = e.to_string();
            assert!(
                shown.contains("pause.json: description: is 0 characters"),
                "{shown}"
            );
        }
        other => panic!("{other:?}"),
    }

    let missing = dir.path().join("absent");
    assert!(matches!(
        load_definitions(&missing),
        Err(CommandDefError::Io { path, .. }) if path == missing
    ));
}

/// The definitions embedded in the binary are the files of `commands/`, byte for byte the same
/// definitions, and every shipped command is among them.
#[test]
fn the_embedded_definitions_are_the_files_of_commands() {
    let embedded = hanko::command_defs::embedded_definitions().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(embedded, shipped(), "rebuild after editing commands/*.json");
    let names: BTreeSet<String> = embedded.iter().map(|(n, _)| n.clone()).collect();
    let shipped: BTreeSet<String> = COMMAND_NAMES.iter().map(|n| n.to_string()).collect();
    assert_eq!(names, shipped);
}

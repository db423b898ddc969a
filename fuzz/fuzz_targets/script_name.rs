//! Any bytes that are UTF-8 go to the script name parser: it must not panic, what it accepts has
//! smig's shape, and the name it stands for parses to the same.

#![no_main]

use libfuzzer_sys::fuzz_target;
use qserv_migrations::ScriptName;

fuzz_target!(|data: &[u8]| {
    let Ok(name) = std::str::from_utf8(data) else {
        return;
    };
    let Some(parsed) = ScriptName::parse(name) else {
        return;
    };
    assert!(
        name.starts_with("migrate-") && name.contains("-to-"),
        "{name:?}"
    );
    assert_eq!(parsed.jinja, name.ends_with(".sql.jinja"), "{name:?}");
    assert!(
        parsed.to >= 0 && parsed.from.is_none_or(|v| v >= 0),
        "{name:?}"
    );
    let from = parsed
        .from
        .map_or_else(|| "None".to_owned(), |v| v.to_string());
    let canonical = format!(
        "migrate-{from}-to-{}.sql{}",
        parsed.to,
        if parsed.jinja { ".jinja" } else { "" }
    );
    assert_eq!(
        ScriptName::parse(&canonical),
        Some(parsed),
        "{name:?} as {canonical:?}"
    );
});

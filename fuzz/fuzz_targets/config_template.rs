//! A configuration template as an operator hands it in: any bytes are accepted as text or
//! refused with where, never a panic; an accepted one renders or is refused the same way, and a
//! file rendered from it is what the template's plain text says when it holds no syntax.

#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use qserv_agent::config_files::render::{RenderError, Values, render};
use qserv_model::{Role, Template, TemplateError};

fuzz_target!(|data: &[u8]| {
    let template = match Template::parse(data) {
        Ok(template) => template,
        Err(TemplateError::NotText { offset } | TemplateError::Binary { offset, .. }) => {
            assert!(offset < data.len());
            return;
        }
        Err(TemplateError::TooLarge { .. }) => return,
    };
    assert_eq!(template.text().as_bytes(), data);
    let secrets: BTreeMap<String, toml::Value> = BTreeMap::from([
        ("p".to_owned(), toml::Value::String("s3cret ✓".to_owned())),
        ("n".to_owned(), toml::Value::Integer(7)),
    ]);
    let values = Values {
        secrets: &secrets,
        node: "worker-1",
        role: Role::Worker,
        instance: "prod",
    };
    match render(&template, &values) {
        Ok(text) => {
            if !template.text().contains(['{', '}', '%', '#']) {
                assert_eq!(text, template.text());
            }
        }
        Err(RenderError::Undefined { names }) => assert!(!names.is_empty()),
        Err(RenderError::Invalid(_) | RenderError::TooLarge { .. }) => {}
    }
});

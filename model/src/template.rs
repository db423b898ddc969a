//! A configuration template as an operator hands it in (DESIGN §17): UTF-8 text of bounded
//! size. A binary file given by mistake (an archive, a compiled file) is refused here, at the
//! edge, with what is wrong and where, before anything is stored or sent to a node.

/// The largest template accepted: Qserv's configuration files are a few kilobytes.
pub const MAX_TEMPLATE_BYTES: usize = 1 << 20;

/// Text that passed [`Template::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error(
        "the template is {size} bytes, more than the {MAX_TEMPLATE_BYTES} a configuration file may hold; give the file itself"
    )]
    TooLarge { size: usize },
    #[error(
        "the template is not UTF-8 text (byte {offset} starts no character); give the configuration file as UTF-8 text"
    )]
    NotText { offset: usize },
    #[error(
        "the template looks binary (control byte {byte:#04x} at byte {offset}, line {line}); give the configuration file as text"
    )]
    Binary {
        byte: u8,
        offset: usize,
        line: usize,
    },
}

/// The sha256 of `bytes`, lower-case hex: how templates and the files rendered from them are
/// told apart.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Control characters that a text file may hold: tab, line feed, form feed, carriage return.
fn allowed_control(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\x0c' | '\r')
}

impl Template {
    /// The template in `bytes`, or why they are not one.
    pub fn parse(bytes: &[u8]) -> Result<Template, TemplateError> {
        if bytes.len() > MAX_TEMPLATE_BYTES {
            return Err(TemplateError::TooLarge { size: bytes.len() });
        }
        let text = std::str::from_utf8(bytes).map_err(|e| TemplateError::NotText {
            offset: e.valid_up_to(),
        })?;
        if let Some((offset, c)) = text
            .char_indices()
            .find(|(_, c)| c.is_ascii_control() && !allowed_control(*c))
        {
            let line = text[..offset].matches('\n').count() + 1;
            return Err(TemplateError::Binary {
                byte: u8::try_from(u32::from(c)).unwrap_or(u8::MAX),
                offset,
                line,
            });
        }
        Ok(Template(text.to_owned()))
    }

    pub fn text(&self) -> &str {
        &self.0
    }

    pub fn into_text(self) -> String {
        self.0
    }

    pub fn sha256(&self) -> String {
        sha256_hex(self.0.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn text_with_tabs_and_any_script_is_a_template() {
        let text = "[mysql]\n\tpassword = {{ mysqld_password }}\r\nnom = \"données 観測\"\n";
        assert_eq!(
            Template::parse(text.as_bytes()).map(|t| t.into_text()),
            Ok(text.to_owned())
        );
    }

    #[test]
    fn a_binary_file_is_refused_with_where() {
        assert_eq!(
            Template::parse(b"a = 1\nb\x00c"),
            Err(TemplateError::Binary {
                byte: 0,
                offset: 7,
                line: 2
            })
        );
        assert_eq!(
            Template::parse(b"ok\n\xff\xfe"),
            Err(TemplateError::NotText { offset: 3 })
        );
        let big = vec![b'a'; MAX_TEMPLATE_BYTES + 1];
        assert!(matches!(
            Template::parse(&big),
            Err(TemplateError::TooLarge { .. })
        ));
    }

    proptest! {
        /// Any text without control characters (besides the usual whitespace) is accepted as
        /// it is, byte for byte.
        #[test]
        fn text_is_kept_as_given(text in "[^\\x00-\\x08\\x0b\\x0e-\\x1f\\x7f]{0,200}") {
            prop_assert_eq!(Template::parse(text.as_bytes()).map(|t| t.into_text()), Ok(text));
        }

        /// Whatever the bytes, the answer is a template holding exactly them or an error that
        /// points inside them.
        #[test]
        fn any_bytes_get_an_answer(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            match Template::parse(&bytes) {
                Ok(t) => prop_assert_eq!(t.text().as_bytes(), &bytes[..]),
                Err(TemplateError::NotText { offset } | TemplateError::Binary { offset, .. }) => {
                    prop_assert!(offset < bytes.len());
                }
                Err(TemplateError::TooLarge { .. }) => prop_assert!(false, "small input"),
            }
        }
    }
}

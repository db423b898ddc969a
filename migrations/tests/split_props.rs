//! Property tests of the two parsers of outside input: the statement splitter and smig script
//! names.
//!
//! Statements are built from tokens whose split is known, joined the way scripts join them, and
//! split again; arbitrary text must split (or fail) without panicking and with sane positions.
//! `PROPTEST_CASES` raises the number of cases for a longer run.

use proptest::prelude::*;
use proptest::sample::select;
use qserv_migrations::{ScriptName, SplitError, Statement, split_statements};

fn config(default_cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cases);
    ProptestConfig {
        cases,
        // A failure prints its shrunk input; nothing is written next to the sources.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------------------------

/// Text that may stand anywhere inside a quoted literal or identifier other than the quote itself
/// and the backslash: delimiters, comment markers, the other quotes, multibyte text and newlines.
const LITERAL_TEXT: &[&str] = &[
    "a",
    "Z",
    "0",
    " ",
    ";",
    ";;",
    "$$",
    "//",
    "|",
    "--",
    "-- ",
    "#",
    "/*",
    "*/",
    "/*!",
    "/*M!",
    "'",
    "\"",
    "`",
    "é",
    "ü",
    "ñ",
    "東京",
    "表",
    "😀",
    "🚀",
    "\n",
    "\t",
    "\r\n",
    "DELIMITER $$",
    "delimiter ",
    "\u{3000}",
    "\u{a0}",
];

/// A quoted literal or identifier: `'…'` and `"…"` know doubled quotes and backslash escapes,
/// `` `…` `` only doubled backticks (a backslash there is an ordinary character).
fn quoted() -> impl Strategy<Value = String> {
    select(vec!['\'', '"', '`']).prop_flat_map(|quote| {
        let plain: Vec<&'static str> = LITERAL_TEXT
            .iter()
            .copied()
            .filter(|t| !t.contains(quote))
            .collect();
        let doubled = format!("{quote}{quote}");
        let piece = if quote == '`' {
            prop_oneof![
                6 => select(plain).prop_map(str::to_owned),
                1 => Just(doubled),
                1 => Just("\\".to_owned()),
            ]
            .boxed()
        } else {
            let escaped = select(vec![
                quote, '\\', 'n', '0', ';', '\'', '"', '`', 'é', '東', '😀', '%', '_',
            ])
            .prop_map(|c| format!("\\{c}"));
            prop_oneof![
                6 => select(plain).prop_map(str::to_owned),
                1 => Just(doubled),
                2 => escaped,
            ]
            .boxed()
        };
        prop::collection::vec(piece, 0..8)
            .prop_map(move |pieces| format!("{quote}{}{quote}", pieces.concat()))
    })
}

/// MySQL's executable comments, which the server runs and the splitter keeps whole, `;` included.
fn executable_comment() -> impl Strategy<Value = String> {
    let open = select(vec![
        "/*!",
        "/*!50100 ",
        "/*!40101 ",
        "/*M!",
        "/*M!100100 ",
        "/*M! ",
    ]);
    let body = select(vec![
        "ENGINE=InnoDB",
        "SET x=1",
        ";",
        " ",
        "\n",
        "'a;b'",
        "`t`",
        "é",
        "東京",
        "😀",
        "$$",
        "//",
        "|",
        "--",
        "#",
        "/",
        "DELIMITER x",
    ]);
    (
        open,
        prop::collection::vec(body, 0..6),
        select(vec!["*/", " */"]),
    )
        .prop_map(|(open, body, close)| format!("{open}{}{close}", body.concat()))
}

fn identifier() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[A-Za-z_][A-Za-z0-9_]{0,10}",
        1 => select(vec!["café", "naïve_t", "größe", "東京", "表_1", "ñ", "Ωmega"]).prop_map(str::to_owned),
        1 => select(vec!["SELECT", "INSERT", "CREATE", "TABLE", "SET", "CALL", "BEGIN", "END"]).prop_map(str::to_owned),
    ]
    // Only a statement's first word could be the client's command; no identifier is.
    .prop_filter("the DELIMITER command word", |id| {
        !id.eq_ignore_ascii_case("delimiter")
    })
}

fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{1,6}(\\.[0-9]{1,3})?",
        select(vec!["1--1", "0x1F", "1e-3", "-3", "2-1"]).prop_map(str::to_owned),
    ]
}

/// Operators. Tokens are always apart, so no two of them make a comment marker or one of the
/// custom delimiters of `DELIMITER_CHOICES`.
fn operator() -> impl Strategy<Value = String> {
    select(vec![
        "=", "(", ")", ",", "+", "-", "*", "/", "<", ">=", "!=", ".", "@", "@@", ":=", "!", "%",
    ])
    .prop_map(str::to_owned)
}

fn token() -> BoxedStrategy<String> {
    prop_oneof![
        4 => identifier(),
        2 => number(),
        2 => operator(),
        3 => quoted(),
        1 => executable_comment(),
    ]
    .boxed()
}

/// Whitespace between tokens, kept verbatim inside a statement.
fn separator() -> impl Strategy<Value = &'static str> {
    select(vec![" ", " ", "  ", "\n", "\t", "\r\n", " \n  "])
}

/// Comments the splitter drops, each ending where a token may follow. A block comment becomes a
/// space in the statement; a line comment's newline stays.
fn dropped_comment() -> impl Strategy<Value = &'static str> {
    select(vec![
        " -- header; with 'quote\n",
        " --\n",
        " --\t\"x\r\n",
        " # hash; comment `x\n",
        "#\n",
        " /* block; ' \" ` */ ",
        "/* 東京 ☕ 😀 */",
        "/*\n;\n*/",
        "/**/",
        "/* -- ; */",
        "/* /* looks nested */ ",
    ])
}

/// A statement: tokens and the separators between them, as it should come out of the splitter.
#[derive(Debug, Clone)]
struct Stmt {
    tokens: Vec<String>,
    seps: Vec<&'static str>,
}

impl Stmt {
    fn text(&self) -> String {
        let mut out = String::new();
        for (i, token) in self.tokens.iter().enumerate() {
            if i > 0 {
                out.push_str(self.seps[i - 1]);
            }
            out.push_str(token);
        }
        out
    }

    /// The statement with `comments[i]` added after separator `i` (cycled); what the splitter
    /// keeps is the text with whitespace runs collapsed.
    fn text_with_comments(&self, comments: &[&'static str]) -> String {
        let mut out = String::new();
        for (i, token) in self.tokens.iter().enumerate() {
            if i > 0 {
                out.push_str(self.seps[i - 1]);
                if let Some(comment) = comments.get(i % comments.len().max(1)) {
                    out.push_str(comment);
                }
            }
            out.push_str(token);
        }
        out
    }
}

fn statement() -> impl Strategy<Value = Stmt> {
    prop::collection::vec((token(), separator()), 1..8).prop_map(|pairs| {
        let (tokens, mut seps): (Vec<_>, Vec<_>) = pairs.into_iter().unzip();
        seps.pop();
        Stmt { tokens, seps }
    })
}

// ---------------------------------------------------------------------------------------------
// Scripts
// ---------------------------------------------------------------------------------------------

/// A script being built, with the statements it must split into: (line, text).
#[derive(Debug, Default)]
struct Script {
    text: String,
    expected: Vec<(usize, String)>,
}

impl Script {
    fn push(&mut self, s: &str) {
        self.text.push_str(s);
    }

    fn push_statement(&mut self, text: &str) {
        let line = 1 + self.text.matches('\n').count();
        self.expected.push((line, text.trim().to_owned()));
        self.text.push_str(text);
    }
}

/// What goes between a statement's delimiter and the next statement.
#[derive(Debug, Clone)]
struct Gap {
    before_delimiter: &'static str,
    after_delimiter: &'static str,
    comment: Option<&'static str>,
    empty_statements: usize,
}

fn gap() -> impl Strategy<Value = Gap> {
    (
        select(vec!["", "", " ", "\n", "\t"]),
        select(vec!["", "\n", "\n", " ", "\r\n", "\n\n", "\t \n"]),
        prop::option::of(select(vec![
            "-- a comment; with 'quote and é\n",
            "--\n",
            "# hash; `x\n",
            "/* block; ' \" ` 東京 😀 */",
            "/*\n;\n*/\n",
            "/**/",
            "/* DELIMITER $$ */",
            "-- DELIMITER $$\n",
        ])),
        0..2usize,
    )
        .prop_map(
            |(before_delimiter, after_delimiter, comment, empty_statements)| Gap {
                before_delimiter,
                after_delimiter,
                comment,
                empty_statements,
            },
        )
}

/// Statements joined with `;`. With `comments`, each gap also holds its non-executable comment.
fn join(statements: &[(Stmt, Gap)], last_delimiter: bool, comments: bool) -> Script {
    let mut script = Script::default();
    for (i, (stmt, gap)) in statements.iter().enumerate() {
        script.push_statement(&stmt.text());
        if i + 1 == statements.len() && !last_delimiter {
            break;
        }
        script.push(gap.before_delimiter);
        script.push(";");
        for _ in 0..gap.empty_statements {
            script.push(" ;");
        }
        script.push(gap.after_delimiter);
        if comments && let Some(comment) = gap.comment {
            script.push(comment);
        }
    }
    script
}

fn texts(statements: &[Statement]) -> Vec<String> {
    statements.iter().map(|s| s.text.clone()).collect()
}

fn split_ok(script: &str) -> Vec<Statement> {
    split_statements(script).unwrap_or_else(|e| panic!("{e}\nscript: {script:?}"))
}

fn assert_splits_to(script: &Script) {
    let got = split_ok(&script.text);
    let got: Vec<(usize, String)> = got.into_iter().map(|s| (s.line, s.text)).collect();
    assert_eq!(got, script.expected, "script: {:?}", script.text);
}

/// Collapses whitespace runs: a dropped comment inside a statement leaves a space or a newline.
fn squeeze(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

// ---------------------------------------------------------------------------------------------
// DELIMITER sections
// ---------------------------------------------------------------------------------------------

const DELIMITER_CHOICES: &[&str] = &["$$", "//", "|", ";;", "$", "@@@", "END_OF_STATEMENT"];

/// The client's command, in the spellings it accepts, on its own line.
fn delimiter_command() -> impl Strategy<Value = (&'static str, &'static str, &'static str)> {
    (
        select(vec!["DELIMITER", "delimiter", "Delimiter"]),
        select(vec![" ", "\t", "  "]),
        select(vec!["", " ", "\t", "\r"]),
    )
}

/// A run of statements under one delimiter. Under a custom delimiter each statement is a body of
/// `;`-separated statements, as in a stored procedure.
#[derive(Debug, Clone)]
struct Section {
    delimiter: &'static str,
    command: (&'static str, &'static str, &'static str),
    bodies: Vec<(Vec<Stmt>, &'static str)>,
}

fn section() -> impl Strategy<Value = Section> {
    (
        select(DELIMITER_CHOICES.to_vec()),
        delimiter_command(),
        prop::collection::vec(
            (
                prop::collection::vec(statement(), 1..4),
                select(vec!["", " ", "\n", "\t"]),
            ),
            1..3,
        ),
    )
        .prop_map(|(delimiter, command, bodies)| Section {
            delimiter,
            command,
            bodies,
        })
}

fn delimiter_script(
    head: &[(Stmt, Gap)],
    sections: &[Section],
    back_to_semicolon: bool,
    tail: &[(Stmt, Gap)],
) -> Script {
    let mut script = join(head, true, true);
    for section in sections {
        let (word, space, trailing) = section.command;
        script.push("\n");
        script.push(&format!("{word}{space}{}{trailing}\n", section.delimiter));
        for (body, before) in &section.bodies {
            let text = body
                .iter()
                .map(Stmt::text)
                .collect::<Vec<_>>()
                .join(";\n  ");
            script.push_statement(&format!("BEGIN {text}; END"));
            // `END` ends every body, so no delimiter can run into the statement's last token.
            script.push(before);
            script.push(section.delimiter);
            script.push("\n");
        }
    }
    if back_to_semicolon {
        script.push("DELIMITER ;\n");
        let rest = join(tail, false, true);
        let offset_lines = script.text.matches('\n').count();
        for (line, text) in rest.expected {
            script.expected.push((line + offset_lines, text));
        }
        script.push(&rest.text);
    }
    script
}

// ---------------------------------------------------------------------------------------------
// Invariants on any input
// ---------------------------------------------------------------------------------------------

/// What must hold for any script: no panic, 1-based indexes in order, lines within the script and
/// never going back, trimmed non-empty texts; and, without the `DELIMITER` command, splitting the
/// statements, each followed by `;`, gives them back.
fn check_invariants(script: &str) {
    let lines = 1 + script.matches('\n').count();
    match split_statements(script) {
        Ok(statements) => {
            for (i, s) in statements.iter().enumerate() {
                assert_eq!(s.index, i + 1, "indexes are 1..=n: {script:?}");
                assert!(
                    (1..=lines).contains(&s.line),
                    "line {} of {script:?}",
                    s.line
                );
                assert!(!s.text.is_empty(), "empty statement from {script:?}");
                assert_eq!(s.text, s.text.trim(), "untrimmed statement from {script:?}");
            }
            assert!(
                statements.windows(2).all(|w| w[0].line <= w[1].line),
                "lines go back: {statements:?} from {script:?}"
            );
            if !script.to_ascii_lowercase().contains("delimiter")
                && !statements.iter().any(|s| has_dash_comment_opener(&s.text))
            {
                let joined: String = statements
                    .iter()
                    .map(|s| format!("{};\n", s.text))
                    .collect();
                let again = split_statements(&joined)
                    .unwrap_or_else(|e| panic!("{e}: {joined:?} from {script:?}"));
                assert_eq!(
                    texts(&again),
                    texts(&statements),
                    "joined again: {joined:?} from {script:?}"
                );
            }
        }
        Err(SplitError::Unterminated { line, .. } | SplitError::EmptyDelimiter { line }) => {
            assert!(
                (1..=lines).contains(&line),
                "error line {line} of {script:?}"
            );
        }
    }
}

/// Whether `--` and whitespace (or the end) occur in the text. Like the `mariadb` client, the
/// splitter replaces a dropped comment with a space or keeps its newline, so `1--/* c */1` becomes
/// `1-- 1`, which starts a comment when split (or run) on its own: such statements are not
/// expected to split into themselves again.
fn has_dash_comment_opener(text: &str) -> bool {
    text.char_indices().any(|(i, _)| {
        text.get(i..)
            .and_then(|rest| rest.strip_prefix("--"))
            .is_some_and(|after| after.chars().next().is_none_or(char::is_whitespace))
    })
}

/// Text rich in what the splitter looks at, multibyte characters at every offset included.
fn sqlish() -> impl Strategy<Value = String> {
    let piece = select(vec![
        "DELIMITER ",
        "delimiter\t",
        "DELIMITER",
        "DELIMITÉR ",
        "$$",
        ";",
        ";",
        "'",
        "\"",
        "`",
        "\\",
        "/*",
        "*/",
        "/*!",
        "/*M!",
        "/",
        "*",
        "-",
        "--",
        "-- ",
        "#",
        "\n",
        "\r\n",
        "\r",
        " ",
        "\t",
        "a",
        "1",
        "é",
        "東",
        "😀",
        "\u{85}",
        "\u{2028}",
        "\u{3000}",
        "\u{0}",
    ]);
    prop::collection::vec(piece, 0..48).prop_map(|pieces| pieces.concat())
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(512))]

    /// (a) Statements joined with `;` split back into exactly themselves, at the right lines;
    /// non-executable comments between statements change nothing.
    #[test]
    fn joined_statements_split_back(
        statements in prop::collection::vec((statement(), gap()), 1..6),
        last_delimiter in any::<bool>(),
    ) {
        let plain = join(&statements, last_delimiter, false);
        assert_splits_to(&plain);
        let commented = join(&statements, last_delimiter, true);
        assert_splits_to(&commented);
        prop_assert_eq!(
            texts(&split_ok(&plain.text)),
            texts(&split_ok(&commented.text))
        );
    }

    /// (a) Comments inside a statement are dropped: the statement keeps its tokens, with a
    /// space or newline where the comment was.
    #[test]
    fn comments_inside_statements_are_dropped(
        statements in prop::collection::vec(statement(), 1..5),
        comments in prop::collection::vec(dropped_comment(), 1..4),
    ) {
        let mut script = String::new();
        let mut lines = Vec::new();
        for stmt in &statements {
            lines.push(1 + script.matches('\n').count());
            script.push_str(&stmt.text_with_comments(&comments));
            script.push_str(";\n");
        }
        let got = split_ok(&script);
        prop_assert_eq!(got.len(), statements.len(), "script: {:?}", script);
        for ((got, stmt), line) in got.iter().zip(&statements).zip(lines) {
            prop_assert_eq!(squeeze(&got.text), squeeze(&stmt.text()), "script: {:?}", script);
            prop_assert_eq!(got.line, line, "script: {:?}", script);
        }
    }

    /// (b) `DELIMITER` blocks whose statements hold `;` split at the custom delimiter only, and
    /// `DELIMITER ;` brings `;` back.
    #[test]
    fn delimiter_blocks_split_back(
        head in prop::collection::vec((statement(), gap()), 0..3),
        sections in prop::collection::vec(section(), 1..3),
        back_to_semicolon in any::<bool>(),
        tail in prop::collection::vec((statement(), gap()), 1..3),
    ) {
        let script = delimiter_script(&head, &sections, back_to_semicolon, &tail);
        assert_splits_to(&script);
    }

    /// (c) Any text: no panic, and the invariants of `check_invariants`.
    #[test]
    fn any_text_splits_or_fails_cleanly(script in any::<String>()) {
        check_invariants(&script);
    }

    /// (c) Text made of the pieces the splitter reacts to, in any order.
    #[test]
    fn sqlish_text_splits_or_fails_cleanly(script in sqlish()) {
        check_invariants(&script);
    }

    /// (c) Generated scripts cut at any character boundary: unterminated quotes and comments
    /// fail cleanly.
    #[test]
    fn truncated_scripts_split_or_fail_cleanly(
        statements in prop::collection::vec((statement(), gap()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let script = join(&statements, true, true).text;
        let boundaries: Vec<usize> = script
            .char_indices()
            .map(|(i, _)| i)
            .chain([script.len()])
            .collect();
        let end = boundaries[cut.index(boundaries.len())];
        check_invariants(&script[..end]);
    }

    /// (d) Script names: no panic on any text.
    #[test]
    fn script_name_parse_never_panics(name in any::<String>()) {
        if let Some(parsed) = ScriptName::parse(&name) {
            prop_assert!(name.starts_with("migrate-"), "{:?}", name);
            prop_assert_eq!(parsed.jinja, name.ends_with(".sql.jinja"), "{:?}", name);
            prop_assert!(parsed.jinja || name.ends_with(".sql"), "{:?}", name);
        }
    }

    /// (d) Names near the pattern: no panic, and what parses has the pattern's shape.
    #[test]
    fn script_name_lookalikes(
        name in "(migrate-)?(None|[0-9]{0,21}|-?[0-9]{1,3}|é)?(-to-)?([0-9]{0,21}|None|x)(-[a-zé-]{0,4})?(\\.sql)?(\\.jinja)?(\\.bak)?",
    ) {
        if let Some(parsed) = ScriptName::parse(&name) {
            prop_assert!(name.starts_with("migrate-") && name.contains("-to-"), "{:?}", name);
            prop_assert!(parsed.to >= 0 && parsed.from.is_none_or(|v| v >= 0), "{:?}", name);
            prop_assert_eq!(parsed.jinja, name.ends_with(".sql.jinja"), "{:?}", name);
        }
    }

    /// (d) Every name in smig's pattern parses to what it says.
    #[test]
    fn script_names_round_trip(
        from in prop::option::of(0..=i64::MAX),
        to in 0..=i64::MAX,
        description in prop::option::of("-[A-Za-z0-9_.é東-]{0,16}"),
        jinja in any::<bool>(),
        leading_zeros in 0..3usize,
    ) {
        let from_text = from.map_or_else(|| "None".to_owned(), |v| format!("{}{v}", "0".repeat(leading_zeros)));
        let name = format!(
            "migrate-{from_text}-to-{to}{}.sql{}",
            description.as_deref().unwrap_or(""),
            if jinja { ".jinja" } else { "" }
        );
        prop_assert_eq!(ScriptName::parse(&name), Some(ScriptName { from, to, jinja }), "{:?}", name);
    }
}

// ---------------------------------------------------------------------------------------------
// Examples the generators reach only by chance
// ---------------------------------------------------------------------------------------------

#[test]
fn examples_hold_the_invariants() {
    for script in [
        "",
        ";",
        "DELIMITER",
        "DELIMITER ",
        "DELIMITER é",
        "DELIMITERé",
        "delimiter\t$$\nSELECT 1$$",
        "12345678é;",
        "SELECT '\\",
        "SELECT `😀`",
        "/*!",
        "/*M!100100",
        "/* /* */ */",
        "-- ",
        "--",
        "a--\n",
        "SELECT 1 --",
        "SELECT 1;\r\nSELECT 2;\r\n",
        "\u{3000};\u{3000}",
        "/*/ SELECT 1; */",
    ] {
        check_invariants(script);
    }
}

#[test]
fn out_of_range_names_do_not_parse() {
    assert_eq!(
        ScriptName::parse("migrate-None-to-9223372036854775808.sql"),
        None
    );
    assert_eq!(
        ScriptName::parse("migrate-99999999999999999999-to-1.sql"),
        None
    );
    assert_eq!(ScriptName::parse("migrate--1-to-1.sql"), None);
    assert_eq!(
        ScriptName::parse("migrate-None-to-9223372036854775807.sql.jinja"),
        Some(ScriptName {
            from: None,
            to: i64::MAX,
            jinja: true
        })
    );
}

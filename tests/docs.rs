//! `docs/cli.md` against the real binary: every command it names exists, and every flag it names
//! is one that command (or, outside a command's section, some command) accepts.
//!
//! What is read: `dagrun ...` lines of code blocks, and inline code spans (a span that starts
//! with another program's name, like `cargo build --release`, is not ours and is skipped). The
//! flags of a span that starts with `dagrun CMD [SUB]` are checked against `dagrun CMD [SUB]
//! --help`; other spans against the commands named by the section's headings. The synopsis at
//! the top must also list every flag of each command.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

const CLI_MD: &str = include_str!("../docs/cli.md");

/// `dagrun [path...] --help`, run once per path.
#[derive(Default)]
struct Help {
    cache: BTreeMap<Vec<String>, Option<String>>,
}

impl Help {
    /// The help text of command `path` (`[]` for the top level); `None` if there is no such command.
    fn text(&mut self, path: &[String]) -> Option<String> {
        self.cache
            .entry(path.to_vec())
            .or_insert_with(|| {
                let out = Command::new(env!("CARGO_BIN_EXE_dagrun")).args(path).arg("--help").output().unwrap();
                out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
            })
            .clone()
    }

    /// The subcommands listed under `Commands:` in the help of `path`.
    fn subcommands(&mut self, path: &[String]) -> BTreeSet<String> {
        let text = self.text(path).unwrap_or_default();
        let listed = text.split("Commands:\n").nth(1).unwrap_or("").lines().take_while(|l| !l.trim().is_empty());
        listed.filter_map(|l| l.split_whitespace().next()).filter(|w| *w != "help").map(str::to_owned).collect()
    }

    /// The options that the help of `path` lists, each as its set of names (`-j`, `--jobs`).
    fn options(&mut self, path: &[String]) -> Vec<BTreeSet<String>> {
        let text = self.text(path).unwrap_or_default();
        let names = |l: &str| l.trim_start().split("  ").next().map(flags_in).unwrap_or_default();
        text.lines().filter(|l| l.trim_start().starts_with('-')).map(names).filter(|n| !n.is_empty()).collect()
    }

    /// Every name of every option of `path`.
    fn flags(&mut self, path: &[String]) -> BTreeSet<String> {
        self.options(path).into_iter().flatten().collect()
    }
}

/// `--flag` and `-f` tokens of `text`: `--force=TASK` and `--force[=TASK]` give `--force`.
fn flags_in(text: &str) -> BTreeSet<String> {
    let is_flag_char = |c: char| c.is_ascii_alphanumeric() || c == '-';
    let mut flags = BTreeSet::new();
    let mut prev = ' ';
    for (i, c) in text.char_indices() {
        let boundary = matches!(prev, ' ' | '[' | '(' | '`' | '\n' | ',');
        if c == '-' && boundary {
            let word: String = text[i..].chars().take_while(|&c| is_flag_char(c)).collect();
            let long = word.len() > 2 && word.starts_with("--") && word.as_bytes()[2].is_ascii_lowercase();
            let short = word.len() == 2 && word.as_bytes()[1].is_ascii_alphabetic();
            if long || short {
                flags.insert(word);
            }
        }
        prev = c;
    }
    flags
}

/// The inline code spans of a line (any number of backticks as delimiters).
fn code_spans(line: &str) -> Vec<&str> {
    let mut spans = Vec::new();
    let mut rest = line;
    while let Some(start) = rest.find('`') {
        let ticks = rest[start..].chars().take_while(|&c| c == '`').count();
        let after = &rest[start + ticks..];
        let fence = "`".repeat(ticks);
        let Some(end) = after.find(&fence) else { break };
        spans.push(after[..end].trim());
        rest = &after[end + ticks..];
    }
    spans
}

/// What a piece of documentation text is about.
enum Piece<'a> {
    /// `dagrun CMD [SUB] ...`: the words after `dagrun`, up to a shell pipe.
    Dagrun(Vec<&'a str>),
    /// Flags on their own, e.g. `--force=TASK` or `-j N`.
    Flags(&'a str),
}

/// `text` up to a shell pipe (a ` | ` outside brackets: `(--from DATE | --partitions LIST)` is
/// one synopsis).
fn before_pipe(text: &str) -> &str {
    let mut depth = 0i32;
    for (i, c) in text.char_indices() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            '|' if depth == 0 && text[..i].ends_with(' ') && text[i + 1..].starts_with(' ') => return &text[..i - 1],
            _ => {}
        }
    }
    text
}

/// Classifies a code span or code line; `None` for another program's command line or plain text.
fn piece(text: &str) -> Option<Piece<'_>> {
    let text = text.strip_prefix("$ ").unwrap_or(text);
    let text = before_pipe(text);
    if let Some(rest) = text.strip_prefix("dagrun ") {
        return Some(Piece::Dagrun(rest.split_whitespace().collect()));
    }
    text.starts_with('-').then_some(Piece::Flags(text))
}

/// Checks the doc; returns one line per problem.
fn problems(doc: &str, help: &mut Help) -> Vec<String> {
    let mut problems = Vec::new();
    let mut section: Vec<Vec<String>> = Vec::new();
    let mut in_code = false;
    let mut in_synopsis = true;
    for (n, line) in doc.lines().enumerate() {
        let at = format!("docs/cli.md:{}", n + 1);
        if line.starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if let Some(heading) = line.strip_prefix("## ") {
            in_synopsis = false;
            section = heading_commands(heading, &[], help);
            continue;
        }
        if let Some(heading) = line.strip_prefix("### ") {
            let parents = section.clone();
            section.extend(heading_commands(heading, &parents, help));
            continue;
        }
        let pieces: Vec<Piece> = match in_code {
            true => piece(line.trim()).into_iter().filter(|p| matches!(p, Piece::Dagrun(_))).collect(),
            false => code_spans(line).into_iter().filter_map(piece).collect(),
        };
        for p in pieces {
            check_piece(&p, &section, help, &at, &mut problems);
            if let (Piece::Dagrun(words), true) = (&p, in_code && in_synopsis) {
                check_synopsis(words, help, &at, &mut problems);
            }
        }
    }
    problems
}

/// Commands named in a heading: `` `dagrun runs` and `dagrun show` `` or, below `` `dagrun cache` ``,
/// `` `cache ls` ``.
fn heading_commands(heading: &str, parents: &[Vec<String>], help: &mut Help) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    for span in code_spans(heading) {
        let words: Vec<String> = span.trim_start_matches("dagrun ").split_whitespace().map(str::to_owned).collect();
        let top = help.subcommands(&[]);
        let named = words.first().is_some_and(|w| top.contains(w));
        let below_parent = parents.iter().any(|p| p.first() == words.first());
        if named && (span.starts_with("dagrun ") || below_parent) {
            found.push(words);
        }
    }
    found
}

fn check_piece(p: &Piece, section: &[Vec<String>], help: &mut Help, at: &str, problems: &mut Vec<String>) {
    match p {
        Piece::Dagrun(words) => {
            let Some(path) = command_path(words, help, at, problems) else { return };
            let known = help.flags(&path);
            for flag in flags_in(&words.join(" ")).difference(&known) {
                problems.push(format!("{at}: `dagrun {}` has no flag {flag}", path.join(" ")));
            }
        }
        Piece::Flags(text) => {
            let known: BTreeSet<String> = match section.is_empty() {
                true => all_flags(help),
                false => section.iter().flat_map(|path| help.flags(path)).collect(),
            };
            let commands: Vec<String> = section.iter().map(|p| p.join(" ")).collect();
            let whose = if commands.is_empty() { "any command".to_owned() } else { commands.join(", ") };
            for flag in flags_in(text).difference(&known) {
                problems.push(format!("{at}: {whose} has no flag {flag} (in `{text}`)"));
            }
        }
    }
}

/// A synopsis line must list every flag of its command (but `--help` and `--version`).
fn check_synopsis(words: &[&str], help: &mut Help, at: &str, problems: &mut Vec<String>) {
    let Some(path) = command_path(words, help, at, &mut Vec::new()) else { return };
    let listed = flags_in(&words.join(" "));
    let generic = ["--help", "--version"];
    for names in help.options(&path) {
        let Some(long) = names.iter().find(|n| n.starts_with("--")).or(names.first()) else { continue };
        if names.is_disjoint(&listed) && !generic.contains(&long.as_str()) {
            problems.push(format!("{at}: the synopsis of `dagrun {}` leaves out {long}", path.join(" ")));
        }
    }
}

/// The command a `dagrun` line runs: its leading command words, each checked against the help's
/// `Commands:` list. A placeholder (`<command>`, `RUN`) or an argument ends the path; `None`
/// (and a problem) for a subcommand that does not exist.
fn command_path(words: &[&str], help: &mut Help, at: &str, problems: &mut Vec<String>) -> Option<Vec<String>> {
    let mut path: Vec<String> = Vec::new();
    for word in words {
        let subs = help.subcommands(&path);
        let command_like = word.chars().all(|c| c.is_ascii_lowercase() || c == '-') && !word.starts_with('-');
        if subs.is_empty() || !command_like {
            break;
        }
        if !subs.contains(*word) {
            problems.push(format!("{at}: `dagrun {}` has no subcommand `{word}`", path.join(" ")));
            return None;
        }
        path.push((*word).to_owned());
    }
    Some(path)
}

/// Every flag of every command and subcommand.
fn all_flags(help: &mut Help) -> BTreeSet<String> {
    let mut flags = help.flags(&[]);
    for top in help.subcommands(&[]) {
        let path = vec![top.clone()];
        flags.extend(help.flags(&path));
        for sub in help.subcommands(&path) {
            flags.extend(help.flags(&[top.clone(), sub]));
        }
    }
    flags
}

#[test]
fn every_command_and_flag_in_cli_md_exists() {
    let problems = problems(CLI_MD, &mut Help::default());
    assert!(problems.is_empty(), "docs/cli.md disagrees with `dagrun --help`:\n{}", problems.join("\n"));
}

#[test]
fn a_flag_or_command_that_does_not_exist_is_reported() {
    let doc = "```text\ndagrun graph WORKFLOW\n```\n\n## `dagrun graph`\n\n\
               | `--format F` | ok |\n| `--colour` | not a flag |\n\n\
               ```text\n$ dagrun run wf.ron --bogus -j 2\n$ dagrun cache purge\n```\n\
               Run `cargo build --release` first, then `dagrun graph wf.ron | dot -Tsvg`.\n";
    assert_eq!(
        problems(doc, &mut Help::default()),
        [
            "docs/cli.md:2: the synopsis of `dagrun graph` leaves out --format",
            "docs/cli.md:8: graph has no flag --colour (in `--colour`)",
            "docs/cli.md:11: `dagrun run` has no flag --bogus",
            "docs/cli.md:12: `dagrun cache` has no subcommand `purge`",
        ]
    );
}

#[test]
fn flags_and_spans_are_read_like_markdown() {
    assert_eq!(
        flags_in("[--force[=TASK]]... -j N --state-dir DIR x-y"),
        BTreeSet::from(["--force".to_owned(), "--state-dir".to_owned(), "-j".to_owned()])
    );
    assert_eq!(code_spans("a `b` and ``c `d` e`` f"), ["b", "c `d` e"]);
}

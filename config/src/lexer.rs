//! keepalived.conf lexical layer: comments, quoted strings, `include` with
//! globs, `$NAME=value` definitions and `@ID` conditional lines, producing a
//! flat stream of located tokens.

use crate::diag::{Diagnostics, Location};
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How included files are found and read. [`RealFs`] reads the file
/// system; [`MemFs`] serves tests and the fuzz target.
pub trait FileSource {
    fn read(&self, path: &Path) -> io::Result<String>;
    /// Paths matching `pattern`, sorted as glob(3) sorts them.
    fn glob(&self, pattern: &str) -> Result<Vec<PathBuf>, String>;
}

/// The local file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealFs;

impl FileSource for RealFs {
    fn read(&self, path: &Path) -> io::Result<String> {
        let bytes = std::fs::read(path)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
    fn glob(&self, pattern: &str) -> Result<Vec<PathBuf>, String> {
        let paths = glob::glob(pattern).map_err(|e| e.to_string())?;
        let mut out: Vec<PathBuf> = paths
            .filter_map(Result::ok)
            .filter(|p| p.is_file())
            .collect();
        out.sort();
        Ok(out)
    }
}

/// An in-memory set of files.
#[derive(Debug, Default, Clone)]
pub struct MemFs {
    pub files: HashMap<PathBuf, String>,
}

impl MemFs {
    pub fn new() -> MemFs {
        MemFs::default()
    }
    pub fn with(mut self, path: &str, text: &str) -> MemFs {
        self.files.insert(PathBuf::from(path), text.to_string());
        self
    }
}

impl FileSource for MemFs {
    fn read(&self, path: &Path) -> io::Result<String> {
        self.files
            .get(path)
            .cloned()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "No such file or directory"))
    }
    fn glob(&self, pattern: &str) -> Result<Vec<PathBuf>, String> {
        let pat = glob::Pattern::new(pattern).map_err(|e| e.to_string())?;
        let mut out: Vec<PathBuf> = self
            .files
            .keys()
            .filter(|p| pat.matches_path(p))
            .cloned()
            .collect();
        out.sort();
        Ok(out)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokKind {
    Word {
        text: String,
        quoted: bool,
    },
    Open,
    Close,
    /// End of a logical line.
    Eol,
}

#[derive(Clone, Debug)]
pub struct Token {
    pub kind: TokKind,
    pub loc: Location,
}

/// Options that change what the lexer keeps.
#[derive(Clone, Debug, Default)]
pub struct LexOptions {
    /// keepalived's `-i CONFIG_ID`: `@ID` lines are kept only when ID matches,
    /// `@^ID` lines only when it does not. Without it every `@ID` line is
    /// dropped and every `@^ID` line kept, as keepalived does.
    pub config_id: Option<String>,
}

impl LexOptions {
    /// keepalived's default: the config id is the host name up to the first dot.
    pub fn keepalived_default() -> LexOptions {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let id = host.trim().split('.').next().unwrap_or("").to_string();
        LexOptions {
            config_id: (!id.is_empty()).then_some(id),
        }
    }
}

const MAX_INCLUDE_DEPTH: usize = 32;
const MAX_EXPANSIONS_PER_LINE: usize = 64;
const MAX_LINE_CHARS: usize = 1 << 16;

struct Definition {
    /// One entry per line of a (possibly multi-line) definition.
    lines: Vec<String>,
}

struct Lexer<'a> {
    fs: &'a dyn FileSource,
    opts: &'a LexOptions,
    defs: HashMap<String, Definition>,
    out: Vec<Token>,
    diags: &'a mut Diagnostics,
    stack: Vec<PathBuf>,
}

/// A character of a logical line with the column it came from.
type Chars = Vec<(char, u32)>;

/// Reads `path` (and everything it includes) into a token stream.
pub fn lex_file(
    fs: &dyn FileSource,
    path: &Path,
    opts: &LexOptions,
    diags: &mut Diagnostics,
) -> Vec<Token> {
    // keepalived's standard definitions (those that need no randomness).
    let mut defs = HashMap::new();
    let std_def = |v: &str| Definition {
        lines: vec![v.to_string()],
    };
    defs.insert("_HASH".to_string(), std_def("#"));
    defs.insert("_BANG".to_string(), std_def("!"));
    if let Some(id) = &opts.config_id {
        defs.insert("_INSTANCE".to_string(), std_def(id));
    }
    if let Ok(cwd) = std::env::current_dir() {
        defs.insert("_PWD".to_string(), std_def(&cwd.display().to_string()));
    }
    let mut lx = Lexer {
        fs,
        opts,
        defs,
        out: Vec::new(),
        diags,
        stack: Vec::new(),
    };
    match fs.read(path) {
        Ok(text) => lx.lex_text(path, &text),
        Err(e) => lx
            .diags
            .error_noloc(format!("{}: cannot read: {}", path.display(), e)),
    }
    lx.out
}

impl Lexer<'_> {
    fn lex_text(&mut self, path: &Path, text: &str) {
        self.stack.push(path.to_path_buf());
        let file: Arc<str> = Arc::from(path.display().to_string());
        // A multi-line `$NAME=...\` definition being collected.
        let mut pending_def: Option<String> = None;
        for (idx, raw) in text.lines().enumerate() {
            let line_no = idx as u32 + 1;
            let raw: String = raw.chars().take(MAX_LINE_CHARS).collect();
            let chars: Chars = raw.chars().zip(1u32..).collect();
            let chars = strip_comment(&chars);
            if let Some(name) = pending_def.clone() {
                let mut s: String = chars.iter().map(|c| c.0).collect::<String>();
                let trimmed_end = s.trim_end().to_string();
                let cont = trimmed_end.ends_with('\\');
                if cont {
                    s = trimmed_end[..trimmed_end.len() - 1].trim_end().to_string();
                }
                let s = s.trim().to_string();
                if let Some(def) = self.defs.get_mut(&name) {
                    if !s.is_empty() {
                        def.lines.push(s);
                    }
                }
                if !cont {
                    pending_def = None;
                }
                continue;
            }
            let loc = |col: u32| Location {
                file: file.clone(),
                line: line_no,
                col,
            };
            let mut lines: Vec<Chars> = vec![trim(&chars)];
            // Conditional lines and definitions, then parameter expansion.
            let mut expansions = 0;
            let mut i = 0;
            while i < lines.len() {
                let mut line = trim(&lines[i]);
                if line.is_empty() {
                    lines.remove(i);
                    continue;
                }
                if line[0].0 == '@' {
                    match self.conditional(&line) {
                        Some(rest) => line = rest,
                        None => {
                            lines.remove(i);
                            continue;
                        }
                    }
                }
                if line[0].0 == '$' {
                    let s: String = line.iter().map(|c| c.0).collect();
                    if let Some((name, value, cont)) = parse_definition(&s) {
                        let mut def_lines = Vec::new();
                        if !value.is_empty() {
                            def_lines.push(value);
                        }
                        self.defs
                            .insert(name.clone(), Definition { lines: def_lines });
                        if cont {
                            pending_def = Some(name);
                        }
                        lines.remove(i);
                        continue;
                    }
                }
                if expansions < MAX_EXPANSIONS_PER_LINE {
                    if let Some(expanded) = self.expand_once(&line) {
                        expansions += 1;
                        lines.splice(i..=i, expanded);
                        continue; // re-examine the expanded line
                    }
                } else {
                    self.diags.error(
                        &loc(line[0].1),
                        "too many parameter expansions on one line (recursive definition?)",
                    );
                }
                lines[i] = line;
                i += 1;
            }
            for line in lines {
                self.tokenize_line(&line, &loc, path);
            }
        }
        self.stack.pop();
    }

    /// Applies `@ID` / `@^ID`: the rest of the line when kept.
    fn conditional(&self, line: &Chars) -> Option<Chars> {
        let (neg, start) = if line.len() > 1 && line[1].0 == '^' {
            (true, 2)
        } else {
            (false, 1)
        };
        let end = line[start..]
            .iter()
            .position(|c| c.0 == ' ' || c.0 == '\t')
            .map(|p| p + start)?;
        let id: String = line[start..end].iter().map(|c| c.0).collect();
        let matches = self.opts.config_id.as_deref() == Some(id.as_str());
        if matches != neg {
            Some(trim(&line[end..].to_vec()))
        } else {
            None
        }
    }

    /// Replaces the first `$NAME` / `${NAME}` naming a known definition.
    /// Returns the resulting line(s), or None when nothing was replaced.
    fn expand_once(&self, line: &Chars) -> Option<Vec<Chars>> {
        let mut in_quote = false;
        for i in 0..line.len() {
            let c = line[i].0;
            if c == '"' {
                in_quote = !in_quote;
            }
            if c != '$' || i + 1 >= line.len() {
                continue;
            }
            let (name_start, braced) = if line[i + 1].0 == '{' {
                (i + 2, true)
            } else {
                (i + 1, false)
            };
            let mut j = name_start;
            while j < line.len() && (line[j].0.is_ascii_alphanumeric() || line[j].0 == '_') {
                j += 1;
            }
            if j == name_start {
                continue;
            }
            let name: String = line[name_start..j].iter().map(|c| c.0).collect();
            let end = if braced {
                if j < line.len() && line[j].0 == '}' {
                    j + 1
                } else {
                    continue;
                }
            } else {
                j
            };
            let def = match self.defs.get(&name) {
                Some(d) => d,
                None => continue,
            };
            let col = line[i].1;
            let prefix = &line[..i];
            let suffix = &line[end..];
            let mut out: Vec<Chars> = Vec::new();
            if def.lines.is_empty() {
                let mut l = prefix.to_vec();
                l.extend_from_slice(suffix);
                out.push(l);
            } else {
                let n = def.lines.len();
                for (k, dl) in def.lines.iter().enumerate() {
                    let mut l: Chars = if k == 0 { prefix.to_vec() } else { Vec::new() };
                    l.extend(dl.chars().map(|ch| (ch, col)));
                    if k == n - 1 {
                        l.extend_from_slice(suffix);
                    }
                    if l.len() > MAX_LINE_CHARS {
                        l.truncate(MAX_LINE_CHARS);
                    }
                    out.push(l);
                }
            }
            return Some(out);
        }
        None
    }

    fn tokenize_line(&mut self, line: &Chars, loc: &dyn Fn(u32) -> Location, path: &Path) {
        let mut words: Vec<Token> = Vec::new();
        let mut i = 0;
        while i < line.len() {
            let (c, col) = line[i];
            if c == ' ' || c == '\t' || c == '\r' {
                i += 1;
                continue;
            }
            if c == '{' || c == '}' {
                words.push(Token {
                    kind: if c == '{' {
                        TokKind::Open
                    } else {
                        TokKind::Close
                    },
                    loc: loc(col),
                });
                i += 1;
                continue;
            }
            let start_col = col;
            let mut text = String::new();
            let mut quoted = false;
            while i < line.len() {
                let (c, _) = line[i];
                if c == '"' {
                    quoted = true;
                    i += 1;
                    while i < line.len() && line[i].0 != '"' {
                        if line[i].0 == '\\' && i + 1 < line.len() && line[i + 1].0 == '"' {
                            i += 1;
                        }
                        text.push(line[i].0);
                        i += 1;
                    }
                    if i < line.len() {
                        i += 1; // closing quote
                    } else {
                        self.diags
                            .error(&loc(start_col), "unterminated quoted string");
                    }
                    continue;
                }
                if c == ' ' || c == '\t' || c == '\r' || c == '{' || c == '}' {
                    break;
                }
                text.push(c);
                i += 1;
            }
            words.push(Token {
                kind: TokKind::Word { text, quoted },
                loc: loc(start_col),
            });
        }
        // `include PATTERN...`
        if let Some(Token {
            kind: TokKind::Word {
                text,
                quoted: false,
            },
            loc: inc_loc,
        }) = words.first()
        {
            if text == "include" {
                let inc_loc = inc_loc.clone();
                if words.len() < 2 {
                    self.diags.error(&inc_loc, "include: missing file name");
                }
                for w in &words[1..] {
                    if let TokKind::Word { text, .. } = &w.kind {
                        self.include(text, &w.loc, path);
                    } else {
                        self.diags.error(&w.loc, "include: unexpected brace");
                    }
                }
                return;
            }
        }
        if !words.is_empty() {
            let eol_loc = words
                .last()
                .map(|t| t.loc.clone())
                .unwrap_or_else(|| loc(1));
            self.out.extend(words);
            self.out.push(Token {
                kind: TokKind::Eol,
                loc: eol_loc,
            });
        }
    }

    fn include(&mut self, pattern: &str, loc: &Location, from: &Path) {
        if self.stack.len() >= MAX_INCLUDE_DEPTH {
            self.diags.error(
                loc,
                format!("include nesting deeper than {MAX_INCLUDE_DEPTH} (include loop?)"),
            );
            return;
        }
        let full = if Path::new(pattern).is_absolute() {
            pattern.to_string()
        } else {
            match from.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => {
                    format!("{}/{}", dir.display(), pattern)
                }
                _ => pattern.to_string(),
            }
        };
        let paths = match self.fs.glob(&full) {
            Ok(p) => p,
            Err(e) => {
                self.diags
                    .error(loc, format!("include '{pattern}': bad pattern: {e}"));
                return;
            }
        };
        if paths.is_empty() {
            // keepalived goes on when an include matches nothing ("No
            // config files matched"): a pattern may match none (`conf.d/*`,
            // a file present on some hosts only). A plain path that is not
            // there is a mistake.
            if pattern.contains(['*', '?', '[']) {
                self.diags.warn(
                    loc,
                    format!("include '{pattern}' matches no file - ignoring"),
                );
            } else {
                self.diags
                    .error(loc, format!("include '{pattern}': no such file"));
            }
            return;
        }
        for p in paths {
            if self.stack.contains(&p) {
                self.diags.error(
                    loc,
                    format!("include loop: {} includes itself", p.display()),
                );
                continue;
            }
            match self.fs.read(&p) {
                Ok(text) => self.lex_text(&p, &text),
                Err(e) => self.diags.error(
                    loc,
                    format!("include '{}': cannot read: {}", p.display(), e),
                ),
            }
        }
    }
}

fn trim(chars: &Chars) -> Chars {
    let start = chars
        .iter()
        .position(|c| !c.0.is_whitespace())
        .unwrap_or(chars.len());
    let end = chars
        .iter()
        .rposition(|c| !c.0.is_whitespace())
        .map(|p| p + 1)
        .unwrap_or(start);
    chars[start..end.max(start)].to_vec()
}

/// Cuts the line at the first `#` or `!` outside double quotes.
fn strip_comment(chars: &Chars) -> Chars {
    let mut in_quote = false;
    for (i, (c, _)) in chars.iter().enumerate() {
        match c {
            '"' => in_quote = !in_quote,
            '#' | '!' if !in_quote => return chars[..i].to_vec(),
            _ => {}
        }
    }
    chars.clone()
}

/// `$NAME=value` (optionally ending in `\` to continue on the next lines).
fn parse_definition(s: &str) -> Option<(String, String, bool)> {
    let rest = s.strip_prefix('$')?;
    let first = rest.chars().next()?;
    if !(first.is_ascii_alphabetic() || first == '_') {
        return None;
    }
    let name_len = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    let name = &rest[..name_len];
    let after = rest[name_len..].trim_start_matches([' ', '\t']);
    let value = after.strip_prefix('=')?;
    let mut value = value.trim().to_string();
    let cont = value.ends_with('\\');
    if cont {
        value.pop();
        value = value.trim_end().to_string();
    }
    Some((name.to_string(), value, cont))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(fs: &MemFs, opts: &LexOptions) -> (Vec<String>, Diagnostics) {
        let mut d = Diagnostics::default();
        let toks = lex_file(fs, Path::new("/etc/k.conf"), opts, &mut d);
        let w = toks
            .iter()
            .map(|t| match &t.kind {
                TokKind::Word { text, .. } => text.clone(),
                TokKind::Open => "{".into(),
                TokKind::Close => "}".into(),
                TokKind::Eol => ";".into(),
            })
            .collect();
        (w, d)
    }

    #[test]
    fn comments_quotes_braces() {
        let fs = MemFs::new().with(
            "/etc/k.conf",
            "a b # c\n! all comment\nx \"y z # not\"{q}\n",
        );
        let (w, d) = words(&fs, &LexOptions::default());
        assert!(!d.has_errors());
        assert_eq!(w, ["a", "b", ";", "x", "y z # not", "{", "q", "}", ";"]);
    }

    #[test]
    fn definitions_and_conditionals() {
        let fs = MemFs::new().with(
            "/etc/k.conf",
            "$VIP=10.0.0.1\n$PAIR = a \\\n  b\n@one x $VIP\n@^one y ${VIP}z\nq $PAIR w\n$UNDEF\n",
        );
        let (w, _) = words(&fs, &LexOptions::default());
        assert_eq!(
            w,
            [
                "y",
                "10.0.0.1z",
                ";",
                "q",
                "a",
                ";",
                "b",
                "w",
                ";",
                "$UNDEF",
                ";"
            ]
        );
        let (w, _) = words(
            &fs,
            &LexOptions {
                config_id: Some("one".into()),
            },
        );
        assert_eq!(&w[..3], ["x", "10.0.0.1", ";"]);
    }

    #[test]
    fn standard_definitions() {
        let fs = MemFs::new().with("/etc/k.conf", "a ${_HASH}1 $_BANG $_INSTANCE\n");
        let (w, _) = words(
            &fs,
            &LexOptions {
                config_id: Some("lb7".into()),
            },
        );
        assert_eq!(w, ["a", "#1", "!", "lb7", ";"]);
    }

    #[test]
    fn include_glob_relative_and_missing() {
        let fs = MemFs::new()
            .with(
                "/etc/k.conf",
                "include conf.d/*.conf\ninclude nothing*.conf\n",
            )
            .with("/etc/conf.d/b.conf", "b\n")
            .with("/etc/conf.d/a.conf", "a\n");
        let (w, d) = words(&fs, &LexOptions::default());
        assert_eq!(w, ["a", ";", "b", ";"]);
        assert_eq!(d.errors().count(), 0);
        let all: Vec<String> = d.items.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            all,
            ["/etc/k.conf:2:9: warning: include 'nothing*.conf' matches no file - ignoring"]
        );
        let fs = MemFs::new().with("/etc/k.conf", "include conf.d/x.conf\n");
        let (_, d) = words(&fs, &LexOptions::default());
        let e: Vec<String> = d.errors().map(|e| e.to_string()).collect();
        assert_eq!(
            e,
            ["/etc/k.conf:1:9: include 'conf.d/x.conf': no such file"]
        );
    }

    #[test]
    fn include_loop_is_an_error() {
        let fs = MemFs::new().with("/etc/k.conf", "include k.conf\n");
        let (_, d) = words(&fs, &LexOptions::default());
        assert!(d.has_errors());
    }
}

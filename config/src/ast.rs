//! The block structure of a keepalived.conf: every statement is a keyword,
//! its arguments up to the end of the line, and an optional `{ ... }` block.

use crate::diag::{Diagnostics, Location};
use crate::lexer::{TokKind, Token};

#[derive(Clone, Debug)]
pub struct Arg {
    pub text: String,
    pub quoted: bool,
    pub loc: Location,
}

#[derive(Clone, Debug)]
pub struct Node {
    pub key: String,
    pub loc: Location,
    pub args: Vec<Arg>,
    /// The `{ ... }` block, if the statement has one.
    pub block: Option<Vec<Node>>,
}

impl Node {
    /// Every word of the statement, keyword included.
    pub fn words(&self) -> impl Iterator<Item = (&str, &Location)> {
        std::iter::once((self.key.as_str(), &self.loc))
            .chain(self.args.iter().map(|a| (a.text.as_str(), &a.loc)))
    }
}

const MAX_DEPTH: usize = 64;

struct P<'a> {
    toks: &'a [Token],
    pos: usize,
    diags: &'a mut Diagnostics,
}

/// Builds the statement tree; reports unbalanced braces.
pub fn build(toks: &[Token], diags: &mut Diagnostics) -> Vec<Node> {
    let mut p = P {
        toks,
        pos: 0,
        diags,
    };
    let mut nodes = Vec::new();
    loop {
        nodes.extend(p.items(0));
        match p.toks.get(p.pos) {
            Some(t) => {
                // A '}' at top level.
                p.diags.error(&t.loc, "unexpected '}'");
                p.pos += 1;
            }
            None => break,
        }
    }
    nodes
}

impl P<'_> {
    fn peek(&self) -> Option<&TokKind> {
        self.toks.get(self.pos).map(|t| &t.kind)
    }

    /// Statements up to a '}' (left unconsumed) or the end.
    fn items(&mut self, depth: usize) -> Vec<Node> {
        let mut nodes = Vec::new();
        while let Some(t) = self.toks.get(self.pos) {
            match &t.kind {
                TokKind::Eol => self.pos += 1,
                TokKind::Close => break,
                TokKind::Open => {
                    let loc = t.loc.clone();
                    self.diags.warn(&loc, "block without a keyword - ignoring");
                    self.pos += 1;
                    self.block_body(&loc, depth + 1);
                }
                TokKind::Word { .. } => nodes.push(self.statement(depth)),
            }
        }
        nodes
    }

    fn statement(&mut self, depth: usize) -> Node {
        let first = &self.toks[self.pos];
        let (key, loc) = match &first.kind {
            TokKind::Word { text, .. } => (text.clone(), first.loc.clone()),
            _ => unreachable!("statement starts with a word"),
        };
        self.pos += 1;
        let mut args = Vec::new();
        while let Some(t) = self.toks.get(self.pos) {
            match &t.kind {
                TokKind::Word { text, quoted } => {
                    args.push(Arg {
                        text: text.clone(),
                        quoted: *quoted,
                        loc: t.loc.clone(),
                    });
                    self.pos += 1;
                }
                _ => break,
            }
        }
        // A '{' right after the words, or alone on a following line.
        let mut look = self.pos;
        while let Some(TokKind::Eol) = self.toks.get(look).map(|t| &t.kind) {
            look += 1;
        }
        let block = if let Some(TokKind::Open) = self.toks.get(look).map(|t| &t.kind) {
            let open_loc = self.toks[look].loc.clone();
            self.pos = look + 1;
            Some(self.block_body(&open_loc, depth + 1))
        } else {
            None
        };
        Node {
            key,
            loc,
            args,
            block,
        }
    }

    fn block_body(&mut self, open_loc: &Location, depth: usize) -> Vec<Node> {
        if depth > MAX_DEPTH {
            self.diags.error(open_loc, "blocks nested too deeply");
            // Skip to the matching '}' without recursing.
            let mut level = 1usize;
            while let Some(t) = self.toks.get(self.pos) {
                self.pos += 1;
                match t.kind {
                    TokKind::Open => level += 1,
                    TokKind::Close => {
                        level -= 1;
                        if level == 0 {
                            return Vec::new();
                        }
                    }
                    _ => {}
                }
            }
            return Vec::new();
        }
        let nodes = self.items(depth);
        match self.peek() {
            Some(TokKind::Close) => self.pos += 1,
            _ => self
                .diags
                .error(open_loc, "missing '}' for the block opened here"),
        }
        nodes
    }
}

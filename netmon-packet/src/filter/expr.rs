//! The expression syntax: `tcp.dport == 5000 and ip.src in 10.0.0.0/8 and pid == 1234`.
//!
//! ```text
//! expr    := and ("or" and)*              ("||" too)
//! and     := unary ("and" unary)*         ("&&" too)
//! unary   := "not" unary | primary        ("!" too)
//! primary := "(" expr ")" | NAME | NAME OP VALUE | NAME "in" CIDR
//! OP      := == != < <= > >=
//! ```
//! NAME is a protocol (`tcp`), a field (`tcp.dport`, `ip.src`, or a decoder field name such as
//! `tcp.Window_Size`), or a metadata name (`pid`, `comm`, `iface`, `dir`, `len`, `ifindex`).

use ipnet::IpNet;

use super::fields::{Kind, LAYERS, META_EXPR, PROTOS, SHORT, field_kind};
use super::{FilterError, Node, Op, Target, literal};

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    LParen,
    RParen,
    Op(Op),
    And,
    Or,
    Not,
    In,
    Word(String),
    Str(String),
    End,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::LParen => "'('".into(),
            Tok::RParen => "')'".into(),
            Tok::Op(op) => format!("'{}'", op.text()),
            Tok::And => "'and'".into(),
            Tok::Or => "'or'".into(),
            Tok::Not => "'not'".into(),
            Tok::In => "'in'".into(),
            Tok::Word(w) => format!("'{w}'"),
            Tok::Str(s) => format!("\"{s}\""),
            Tok::End => "the end of the filter".into(),
        }
    }
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '/' | '-')
}

/// Tokens with their 1-based column.
fn lex(text: &str) -> Result<Vec<(Tok, usize)>, FilterError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let col = i + 1;
        let next = chars.get(i + 1).copied();
        let (tok, len) = match (c, next) {
            (c, _) if c.is_whitespace() => {
                i += 1;
                continue;
            }
            ('(', _) => (Tok::LParen, 1),
            (')', _) => (Tok::RParen, 1),
            ('=', Some('=')) => (Tok::Op(Op::Eq), 2),
            ('=', _) => return Err(FilterError::at(col, "'=' is not an operator; use '=='")),
            ('!', Some('=')) => (Tok::Op(Op::Ne), 2),
            ('!', _) => (Tok::Not, 1),
            ('<', Some('=')) => (Tok::Op(Op::Le), 2),
            ('<', _) => (Tok::Op(Op::Lt), 1),
            ('>', Some('=')) => (Tok::Op(Op::Ge), 2),
            ('>', _) => (Tok::Op(Op::Gt), 1),
            ('&', Some('&')) => (Tok::And, 2),
            ('|', Some('|')) => (Tok::Or, 2),
            ('"' | '\'', _) => {
                let end = chars[i + 1..]
                    .iter()
                    .position(|&x| x == c)
                    .ok_or_else(|| FilterError::at(col, "unterminated string"))?;
                let s: String = chars[i + 1..i + 1 + end].iter().collect();
                (Tok::Str(s), end + 2)
            }
            (c, _) if is_word_char(c) => {
                let len = chars[i..].iter().take_while(|&&x| is_word_char(x)).count();
                let w: String = chars[i..i + len].iter().collect();
                let tok = match w.to_ascii_lowercase().as_str() {
                    "and" => Tok::And,
                    "or" => Tok::Or,
                    "not" => Tok::Not,
                    "in" => Tok::In,
                    _ => Tok::Word(w),
                };
                (tok, len)
            }
            (c, _) => return Err(FilterError::at(col, format!("unexpected character '{c}'"))),
        };
        out.push((tok, col));
        i += len;
    }
    out.push((Tok::End, chars.len() + 1));
    Ok(out)
}

/// Nesting bound so hostile input cannot overflow the stack.
const MAX_DEPTH: usize = 64;

struct Parser {
    toks: Vec<(Tok, usize)>,
    pos: usize,
    depth: usize,
}

pub(super) fn parse(text: &str) -> Result<Node, FilterError> {
    let mut p = Parser {
        toks: lex(text)?,
        pos: 0,
        depth: 0,
    };
    if p.peek() == &Tok::End {
        return Err(FilterError::at(1, "empty filter"));
    }
    let node = p.or()?;
    match p.peek() {
        Tok::End => Ok(node),
        Tok::RParen => Err(FilterError::at(p.col(), "')' without a matching '('")),
        t => Err(FilterError::at(
            p.col(),
            format!(
                "expected 'and', 'or' or the end after a complete condition, found {}",
                t.describe()
            ),
        )),
    }
}

impl Parser {
    fn peek(&self) -> &Tok {
        &self.toks[self.pos].0
    }
    fn col(&self) -> usize {
        self.toks[self.pos].1
    }
    fn bump(&mut self) -> (Tok, usize) {
        let t = self.toks[self.pos].clone();
        if self.pos + 1 < self.toks.len() {
            self.pos += 1;
        }
        t
    }

    fn or(&mut self) -> Result<Node, FilterError> {
        let mut parts = vec![self.and()?];
        while self.peek() == &Tok::Or {
            self.bump();
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Node::Or(parts)
        })
    }

    fn and(&mut self) -> Result<Node, FilterError> {
        let mut parts = vec![self.unary()?];
        while self.peek() == &Tok::And {
            self.bump();
            parts.push(self.unary()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Node::And(parts)
        })
    }

    fn unary(&mut self) -> Result<Node, FilterError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(FilterError::at(self.col(), "filter nested too deeply"));
        }
        let node = if self.peek() == &Tok::Not {
            self.bump();
            Node::Not(Box::new(self.unary()?))
        } else {
            self.primary()?
        };
        self.depth -= 1;
        Ok(node)
    }

    fn primary(&mut self) -> Result<Node, FilterError> {
        let (tok, col) = self.bump();
        match tok {
            Tok::LParen => {
                let inner = self.or()?;
                if self.peek() != &Tok::RParen {
                    return Err(FilterError::at(
                        self.col(),
                        format!(
                            "expected ')' to close the '(' at column {col}, found {}",
                            self.peek().describe()
                        ),
                    ));
                }
                self.bump();
                Ok(inner)
            }
            Tok::Word(w) => self.condition(&w, col),
            t => Err(FilterError::at(
                col,
                format!("expected a protocol or field name, found {}", t.describe()),
            )),
        }
    }

    fn condition(&mut self, name: &str, col: usize) -> Result<Node, FilterError> {
        match self.peek().clone() {
            Tok::Op(op) => {
                let (target, kind) = resolve(name, col)?;
                self.bump();
                let (vtok, vcol) = self.bump();
                let text = match vtok {
                    Tok::Word(w) | Tok::Str(w) => w,
                    // `dir == in`: the keyword is also the direction's name.
                    Tok::In => "in".to_string(),
                    _ => {
                        return Err(FilterError::at(
                            vcol,
                            format!("expected a value after '{}'", op.text()),
                        ));
                    }
                };
                if kind == Kind::Ip && text.contains('/') {
                    return Err(FilterError::at(
                        vcol,
                        format!("'{text}' is a prefix: write '{name} in {text}'"),
                    ));
                }
                if matches!(kind, Kind::Mac | Kind::Bool) && !matches!(op, Op::Eq | Op::Ne) {
                    return Err(FilterError::at(
                        col,
                        format!("'{name}' can only be compared with == or !="),
                    ));
                }
                let text = super::normalize(&target, text);
                let lit = literal(kind, &text)
                    .map_err(|e| FilterError::at(vcol, format!("{e} ({name})")))?;
                Ok(Node::Cmp(target, op, lit))
            }
            Tok::In => {
                let (target, kind) = resolve(name, col)?;
                if kind != Kind::Ip {
                    return Err(FilterError::at(
                        col,
                        format!("'in' needs an address field, and '{name}' is not one"),
                    ));
                }
                self.bump();
                let (vtok, vcol) = self.bump();
                let Tok::Word(text) = vtok else {
                    return Err(FilterError::at(
                        vcol,
                        "expected an address prefix after 'in' (e.g. 10.0.0.0/8)",
                    ));
                };
                let net = text
                    .parse::<IpNet>()
                    .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        FilterError::at(
                            vcol,
                            format!("'{text}' is not an address prefix (e.g. 10.0.0.0/8)"),
                        )
                    })?;
                Ok(Node::In(target, net))
            }
            _ => {
                if let Some((_, layers)) = PROTOS.iter().find(|(p, _)| p.eq_ignore_ascii_case(name))
                {
                    return Ok(Node::Has(layers.to_vec()));
                }
                if let Some(flag) = bare_flag(name) {
                    return Ok(flag);
                }
                if name.contains('.') {
                    let (target, kind) = resolve(name, col)?;
                    if kind == Kind::Bool {
                        return Ok(Node::Cmp(target, Op::Eq, crate::value::Value::Bool(true)));
                    }
                    return Err(FilterError::at(
                        self.col(),
                        format!("expected a comparison after '{name}' (e.g. {name} == …)"),
                    ));
                }
                if META_EXPR.iter().any(|(m, _)| m.eq_ignore_ascii_case(name)) {
                    return Err(FilterError::at(
                        self.col(),
                        format!("expected a comparison after '{name}' (e.g. {name} == …)"),
                    ));
                }
                Err(FilterError::at(
                    col,
                    format!(
                        "unknown protocol or field '{name}'; protocols: {}; metadata: {}",
                        proto_names(),
                        meta_names()
                    ),
                ))
            }
        }
    }
}

/// A bare boolean field by its decoder name: `tcp.ack` as a condition is the ACK flag, while
/// `tcp.ack == N` compares the acknowledgment number.
fn bare_flag(name: &str) -> Option<Node> {
    let (proto, field) = name.split_once('.')?;
    let (_, layers) = PROTOS.iter().find(|(p, _)| p.eq_ignore_ascii_case(proto))?;
    let pairs: Vec<(&'static str, &'static str)> = layers
        .iter()
        .filter_map(|l| match field_kind(l, field) {
            Some((f, Kind::Bool)) => Some((*l, f)),
            _ => None,
        })
        .collect();
    if pairs.is_empty() {
        return None;
    }
    Some(Node::Cmp(
        Target::Fields(pairs),
        Op::Eq,
        crate::value::Value::Bool(true),
    ))
}

fn proto_names() -> String {
    PROTOS
        .iter()
        .map(|(p, _)| *p)
        .collect::<Vec<_>>()
        .join(", ")
}

fn meta_names() -> String {
    META_EXPR
        .iter()
        .map(|(p, _)| *p)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `tcp.dport` / `ip.src` / `tcp.Window_Size` / `pid` → what to read and its kind.
fn resolve(name: &str, col: usize) -> Result<(Target, Kind), FilterError> {
    let Some((proto, field)) = name.split_once('.') else {
        return META_EXPR
            .iter()
            .find(|(m, _)| m.eq_ignore_ascii_case(name))
            .map(|(_, m)| (Target::Meta(*m), m.kind()))
            .ok_or_else(|| {
                FilterError::at(
                    col,
                    format!("unknown field '{name}'; metadata fields: {}; or a protocol field such as tcp.dport", meta_names()),
                )
            });
    };
    let Some((_, layers)) = PROTOS.iter().find(|(p, _)| p.eq_ignore_ascii_case(proto)) else {
        return Err(FilterError::at(
            col,
            format!(
                "unknown protocol '{proto}' in '{name}'; protocols: {}",
                proto_names()
            ),
        ));
    };
    let mut pairs = Vec::new();
    let mut kind = None;
    for layer in *layers {
        let short = SHORT
            .iter()
            .find(|(l, s, _)| l == layer && s.eq_ignore_ascii_case(field))
            .map(|(_, _, fs)| fs.to_vec());
        let fields = short.unwrap_or_else(|| {
            field_kind(layer, field)
                .map(|(f, _)| vec![f])
                .unwrap_or_default()
        });
        for f in fields {
            if let Some((f, k)) = field_kind(layer, f) {
                kind.get_or_insert(k);
                pairs.push((*layer, f));
            }
        }
    }
    match kind {
        Some(k) => Ok((Target::Fields(pairs), k)),
        None => {
            let shorts: Vec<&str> = SHORT
                .iter()
                .filter(|(l, _, _)| layers.contains(l))
                .map(|(_, s, _)| *s)
                .collect();
            let mut shorts_dedup = shorts.clone();
            shorts_dedup.dedup();
            let full: Vec<&str> = LAYERS
                .iter()
                .filter(|(l, _)| *l == layers[0])
                .flat_map(|(_, fs)| fs.iter().map(|(f, _)| *f))
                .collect();
            Err(FilterError::at(
                col,
                format!(
                    "unknown field '{name}'; fields of {proto}: {}; or the full names: {}",
                    shorts_dedup.join(", "),
                    full.join(", ")
                ),
            ))
        }
    }
}

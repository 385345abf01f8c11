//! Tokenization with Unicode character offsets (brat's offsets count characters, not bytes).
//!
//! Tokens are numbers (with internal `.` or `,` between digits), runs of letters, or single
//! other non-space characters. On the WLP training and dev splits, 99.1 % of gold entity spans
//! start and end on these token boundaries.

/// One token: its text and its `[start, end)` span in characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    /// The token text.
    pub text: String,
    /// First character (inclusive).
    pub start: usize,
    /// Character after the last one.
    pub end: usize,
    /// The line (0 = title) the token is on.
    pub line: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Space,
    Digit,
    Letter,
    Other,
}

fn class(c: char) -> Class {
    if c.is_whitespace() {
        Class::Space
    } else if c.is_ascii_digit() {
        Class::Digit
    } else if c.is_alphabetic() {
        Class::Letter
    } else {
        Class::Other
    }
}

/// Splits `text` into tokens.
#[must_use]
pub fn tokenize(text: &str) -> Vec<Token> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::with_capacity(chars.len() / 4);
    let mut line = 0;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
        }
        let start = i;
        match class(c) {
            Class::Space => {
                i += 1;
                continue;
            }
            Class::Digit => {
                i += 1;
                while i < chars.len() {
                    if chars[i].is_ascii_digit() {
                        i += 1;
                    } else if matches!(chars[i], '.' | ',')
                        && chars.get(i + 1).is_some_and(char::is_ascii_digit)
                    {
                        i += 2;
                    } else {
                        break;
                    }
                }
            }
            Class::Letter => {
                i += 1;
                while i < chars.len() && class(chars[i]) == Class::Letter {
                    i += 1;
                }
            }
            Class::Other => i += 1,
        }
        out.push(Token { text: chars[start..i].iter().collect(), start, end: i, line });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_units_and_offsets_in_characters() {
        let toks = tokenize("Spin 13,000 rpm at 4°C\nAdd 5.73 g.");
        let texts: Vec<&str> = toks.iter().map(|t| t.text.as_str()).collect();
        assert_eq!(texts, ["Spin", "13,000", "rpm", "at", "4", "°", "C", "Add", "5.73", "g", "."]);
        // '°' is two bytes but one character: offsets count characters.
        assert_eq!((toks[6].start, toks[6].end), (21, 22));
        assert_eq!(toks[7].line, 1);
    }
}

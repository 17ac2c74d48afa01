//! The GRANT that `sky.change_external_primary_gtid` tells us to run on the primary.
//!
//! The replica hands us SQL to execute on *another* server with a privileged account, so it is
//! not run as received: [`ReplicationGrant::parse`] accepts exactly one statement of the form
//!
//! ```text
//! GRANT REPLICATION SLAVE ON *.* TO '<user>'@'<host>' IDENTIFIED BY '<password>'[;]
//! ```
//!
//! (`REPLICATION REPLICA` and `IDENTIFIED BY PASSWORD '<hash>'` are accepted too: they are the
//! same grant in MariaDB's newer spelling and in hashed form), and [`ReplicationGrant::statement`]
//! renders a fresh statement from the parsed parts. Backslashes and control characters are
//! refused inside the quoted parts: how a backslash is read depends on the primary's
//! `sql_mode` (`NO_BACKSLASH_ESCAPES`), and refusing it keeps parse and server in agreement.
//!
//! Error messages describe the shape of the input, never its content: the content holds a
//! password.

use std::fmt;

use crate::skysql::secret::Secret;

/// A validated replication grant. The password only lives inside a [`Secret`].
#[derive(Clone, PartialEq, Eq)]
pub struct ReplicationGrant {
    user: String,
    host: String,
    password: Secret,
    /// `IDENTIFIED BY PASSWORD '<hash>'`: the password is a hash, not the clear text.
    password_is_hash: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unexpected replication grant from the replica ({reason}); expected exactly one \
     `GRANT REPLICATION SLAVE ON *.* TO '<user>'@'<host>' IDENTIFIED BY '<password>'`"
)]
pub struct GrantParseError {
    pub reason: String,
}

impl ReplicationGrant {
    pub fn parse(text: &str) -> Result<ReplicationGrant, GrantParseError> {
        let tokens = tokenize(text)?;
        let mut p = Parser { tokens, at: 0 };
        p.keyword("GRANT")?;
        p.keyword("REPLICATION")?;
        p.one_of_keywords(&["SLAVE", "REPLICA"])?;
        p.keyword("ON")?;
        p.punct(Token::Star)?;
        p.punct(Token::Dot)?;
        p.punct(Token::Star)?;
        p.keyword("TO")?;
        let user = p.string("the user")?;
        p.punct(Token::At)?;
        let host = p.string("the host")?;
        p.keyword("IDENTIFIED")?;
        p.keyword("BY")?;
        let password_is_hash = p.optional_keyword("PASSWORD");
        let password = p.string("the password")?;
        p.optional_punct(Token::Semicolon);
        p.end()?;

        for (what, value) in [("user", &user), ("host", &host), ("password", &password)] {
            if value.is_empty() {
                return Err(err(format!("the {what} is empty")));
            }
        }
        Ok(ReplicationGrant {
            user,
            host,
            password: Secret::new(password),
            password_is_hash,
        })
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn password(&self) -> &Secret {
        &self.password
    }

    pub fn password_is_hash(&self) -> bool {
        self.password_is_hash
    }

    /// The same grant with the password as MariaDB's `mysql_native_password` hash
    /// (`*` + upper-case hex of SHA1(SHA1(password))), rendered `IDENTIFIED BY PASSWORD
    /// '*…'`: the statement is written to the source's binlog and copied into every
    /// replica's relay and binary logs, where a clear password would be readable by anyone
    /// who can read a binlog. The account works the same.
    pub fn hashed(&self) -> ReplicationGrant {
        if self.password_is_hash {
            return self.clone();
        }
        use sha1::{Digest, Sha1};
        let stage1 = Sha1::digest(self.password.expose().as_bytes());
        let stage2 = Sha1::digest(stage1);
        ReplicationGrant {
            password: Secret::new(format!("*{}", hex::encode_upper(stage2))),
            password_is_hash: true,
            ..self.clone()
        }
    }

    /// The statement to run on the primary, rebuilt from the validated parts. It contains the
    /// password, hence a `Secret`.
    pub fn statement(&self) -> Secret {
        Secret::new(self.render(self.password.expose()))
    }

    fn render(&self, password: &str) -> String {
        format!(
            "GRANT REPLICATION SLAVE ON *.* TO {}@{} IDENTIFIED BY {}{}",
            quote(&self.user),
            quote(&self.host),
            if self.password_is_hash {
                "PASSWORD "
            } else {
                ""
            },
            quote(password)
        )
    }
}

/// Shows the statement with the password masked: safe for logs and plans.
impl fmt::Display for ReplicationGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render("***"))
    }
}

impl fmt::Debug for ReplicationGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplicationGrant")
            .field("user", &self.user)
            .field("host", &self.host)
            .field("password", &self.password)
            .field("password_is_hash", &self.password_is_hash)
            .finish()
    }
}

/// Single-quoted SQL string. Valid because parse refused backslashes and control characters,
/// so doubling the quote is the only escape needed, whatever the server's sql_mode.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn err(reason: impl Into<String>) -> GrantParseError {
    GrantParseError {
        reason: reason.into(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Str(String),
    Star,
    Dot,
    At,
    Semicolon,
}

impl Token {
    /// What the token is, without its content (which may be the password).
    fn kind(&self) -> &'static str {
        match self {
            Token::Word(_) => "a word",
            Token::Str(_) => "a quoted string",
            Token::Star => "`*`",
            Token::Dot => "`.`",
            Token::At => "`@`",
            Token::Semicolon => "`;`",
        }
    }
}

fn tokenize(text: &str) -> Result<Vec<Token>, GrantParseError> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '*' => tokens.push(Token::Star),
            '.' => tokens.push(Token::Dot),
            '@' => tokens.push(Token::At),
            ';' => tokens.push(Token::Semicolon),
            '\'' => {
                let mut value = String::new();
                loop {
                    match chars.next() {
                        None => return Err(err("a quoted string is not closed")),
                        Some('\'') if chars.peek() == Some(&'\'') => {
                            chars.next();
                            value.push('\'');
                        }
                        Some('\'') => break,
                        Some('\\') => {
                            return Err(err("a backslash inside a quoted string"));
                        }
                        Some(c) if c.is_control() => {
                            return Err(err("a control character inside a quoted string"));
                        }
                        Some(c) => value.push(c),
                    }
                }
                tokens.push(Token::Str(value));
            }
            c if c.is_ascii_alphabetic() => {
                let mut word = String::from(c);
                while let Some(&n) = chars.peek() {
                    if n.is_ascii_alphanumeric() || n == '_' {
                        word.push(n);
                        chars.next();
                    } else {
                        break;
                    }
                }
                tokens.push(Token::Word(word));
            }
            _ => {
                return Err(err(format!(
                    "unexpected character at position {}",
                    tokens.len() + 1
                )))
            }
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn found(&self) -> String {
        match self.peek() {
            Some(t) => format!("{} (token {})", t.kind(), self.at + 1),
            None => "the end of the statement".to_string(),
        }
    }

    fn is_keyword(&self, keyword: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(keyword))
    }

    fn keyword(&mut self, keyword: &str) -> Result<(), GrantParseError> {
        self.one_of_keywords(&[keyword])
    }

    fn one_of_keywords(&mut self, keywords: &[&str]) -> Result<(), GrantParseError> {
        if keywords.iter().any(|k| self.is_keyword(k)) {
            self.at += 1;
            return Ok(());
        }
        Err(err(format!(
            "expected `{}`, found {}",
            keywords.join("` or `"),
            self.found()
        )))
    }

    fn optional_keyword(&mut self, keyword: &str) -> bool {
        let present = self.is_keyword(keyword);
        if present {
            self.at += 1;
        }
        present
    }

    fn punct(&mut self, expected: Token) -> Result<(), GrantParseError> {
        if self.peek() == Some(&expected) {
            self.at += 1;
            return Ok(());
        }
        Err(err(format!(
            "expected {}, found {}",
            expected.kind(),
            self.found()
        )))
    }

    fn optional_punct(&mut self, expected: Token) {
        if self.peek() == Some(&expected) {
            self.at += 1;
        }
    }

    fn string(&mut self, what: &str) -> Result<String, GrantParseError> {
        if let Some(Token::Str(s)) = self.peek() {
            let s = s.clone();
            self.at += 1;
            return Ok(s);
        }
        Err(err(format!(
            "expected {what} as a quoted string, found {}",
            self.found()
        )))
    }

    fn end(&self) -> Result<(), GrantParseError> {
        if self.peek().is_none() {
            return Ok(());
        }
        Err(err(format!(
            "something follows the statement: {}",
            self.found()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str =
        "GRANT REPLICATION SLAVE ON *.* TO 'skysql_replication'@'%' IDENTIFIED BY 'S3cr3t!pw';";

    #[test]
    fn the_hashed_grant_carries_mysql_native_passwords_hash_never_the_password() {
        // PASSWORD('password') in MariaDB/MySQL, a well-known value.
        let g = ReplicationGrant::parse(
            "GRANT REPLICATION SLAVE ON *.* TO 'u'@'h' IDENTIFIED BY 'password'",
        )
        .unwrap()
        .hashed();
        assert!(g.password_is_hash());
        assert_eq!(
            g.statement().expose(),
            "GRANT REPLICATION SLAVE ON *.* TO 'u'@'h' IDENTIFIED BY PASSWORD \
             '*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19'"
        );
        // Hashing a hash changes nothing.
        assert_eq!(g.hashed(), g);
    }

    #[test]
    fn parses_the_documented_form() {
        let g = ReplicationGrant::parse(DOC).unwrap();
        assert_eq!(g.user(), "skysql_replication");
        assert_eq!(g.host(), "%");
        assert_eq!(g.password().expose(), "S3cr3t!pw");
        assert!(!g.password_is_hash());
        assert_eq!(
            g.statement().expose(),
            "GRANT REPLICATION SLAVE ON *.* TO 'skysql_replication'@'%' IDENTIFIED BY 'S3cr3t!pw'"
        );
    }

    #[test]
    fn accepts_spacing_case_and_synonyms() {
        let g = ReplicationGrant::parse(
            "  grant replication replica on * . * to 'r'@'10.0.0.%'\n identified by password '*ABC'  ",
        )
        .unwrap();
        assert_eq!((g.user(), g.host()), ("r", "10.0.0.%"));
        assert!(g.password_is_hash());
        assert!(g
            .statement()
            .expose()
            .ends_with("IDENTIFIED BY PASSWORD '*ABC'"));
    }

    #[test]
    fn doubled_quotes_round_trip() {
        let g = ReplicationGrant::parse(
            "GRANT REPLICATION SLAVE ON *.* TO 'u'@'%' IDENTIFIED BY 'it''s'",
        )
        .unwrap();
        assert_eq!(g.password().expose(), "it's");
        assert!(g.statement().expose().ends_with("IDENTIFIED BY 'it''s'"));
    }

    #[test]
    fn password_never_printed() {
        let g = ReplicationGrant::parse(DOC).unwrap();
        let shown = format!("{g} {g:?}");
        assert!(!shown.contains("S3cr3t"), "{shown}");
        assert!(shown.contains("IDENTIFIED BY '***'"), "{shown}");
        assert!(shown.contains("skysql_replication"));
    }

    #[test]
    fn rejects_anything_else() {
        let cases = [
            ("", "expected `GRANT`, found the end"),
            (
                "GRANT ALL ON *.* TO 'u'@'%' IDENTIFIED BY 'p'",
                "expected `REPLICATION`",
            ),
            (
                "GRANT REPLICATION SLAVE ON db.* TO 'u'@'%' IDENTIFIED BY 'p'",
                "expected `*`",
            ),
            (
                "GRANT REPLICATION SLAVE ON *.* TO 'u'@'%' IDENTIFIED BY 'p'; DROP TABLE t",
                "something follows",
            ),
            (
                "GRANT REPLICATION SLAVE ON *.* TO 'u'@'%' IDENTIFIED BY 'p';;",
                "something follows",
            ),
            (
                "GRANT REPLICATION SLAVE ON *.* TO 'u'@'%' IDENTIFIED BY 'p' -- x",
                "unexpected character",
            ),
            (
                "GRANT REPLICATION SLAVE ON *.* TO 'u'@'%' IDENTIFIED BY 'p\\'; DROP USER x; --'",
                "backslash",
            ),
            (
                "GRANT REPLICATION SLAVE ON *.* TO u@'%' IDENTIFIED BY 'p'",
                "expected the user as a quoted string",
            ),
            (
                "GRANT REPLICATION SLAVE ON *.* TO 'u'@'%' IDENTIFIED BY 'unterminated",
                "not closed",
            ),
            (
                "GRANT REPLICATION SLAVE ON *.* TO 'u'@'%' IDENTIFIED BY ''",
                "password is empty",
            ),
            (
                "GRANT REPLICATION SLAVE ON *.* TO 'u'@'%' IDENTIFIED BY 'a\nb'",
                "control character",
            ),
            (
                "GRANT REPLICATION SLAVE ON *.* TO 'u'@'%' WITH GRANT OPTION",
                "expected `IDENTIFIED`",
            ),
        ];
        for (input, expected) in cases {
            let e = ReplicationGrant::parse(input).expect_err(input);
            let msg = e.to_string();
            assert!(msg.contains(expected), "{input:?}: {msg}");
        }
    }

    #[test]
    fn errors_do_not_echo_the_input() {
        let e = ReplicationGrant::parse(
            "GRANT REPLICATION SLAVE ON *.* TO 'u'@'%' IDENTIFIED BY 'TopSecret' TopSecret",
        )
        .unwrap_err();
        assert!(!e.to_string().contains("TopSecret"), "{e}");
    }
}

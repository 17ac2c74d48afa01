//! Server variables: the running values refresh compares with a service's configuration, and
//! `SET GLOBAL` for the dynamic ones its configuration changes (the configuration itself, kept
//! through the API, is what the server starts with).

use std::collections::BTreeMap;

use mysql_async::Params;

use super::error::SqlError;
use super::SqlConn;

impl SqlConn {
    /// The running values of `names` (lowercase variable names), as `SHOW GLOBAL VARIABLES`
    /// spells them; a name the server does not know is left out.
    pub async fn global_variables(
        &mut self,
        names: &[&str],
    ) -> Result<BTreeMap<String, String>, SqlError> {
        if names.is_empty() {
            return Ok(BTreeMap::new());
        }
        let what = "SHOW GLOBAL VARIABLES";
        let sets = self.call(what, what, Params::Empty).await?;
        let mut out = BTreeMap::new();
        for row in sets.iter().flatten() {
            let name = row
                .get_any(&["Variable_name", "VARIABLE_NAME"])
                .ok()
                .flatten()
                .map(str::to_ascii_lowercase);
            let value = row.get_any(&["Value", "VARIABLE_VALUE"]).ok().flatten();
            if let (Some(name), Some(value)) = (name, value) {
                if names.contains(&name.as_str()) {
                    out.insert(name, value.to_string());
                }
            }
        }
        Ok(out)
    }

    /// `SET GLOBAL name = value`: a number as a number (K/M/G sizes in bytes), anything else
    /// as a quoted string. The name must be a plain variable name.
    pub async fn set_global(&mut self, name: &str, value: &str) -> Result<(), SqlError> {
        let sql = set_global_sql(name, value).ok_or_else(|| {
            self.unexpected("SET GLOBAL", format!("not a variable name: {name:?}"))
        })?;
        self.execute(&format!("SET GLOBAL {name}"), &sql).await
    }
}

fn set_global_sql(name: &str, value: &str) -> Option<String> {
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !plain {
        return None;
    }
    Some(format!("SET GLOBAL {name} = {}", literal(value.trim())))
}

fn literal(v: &str) -> String {
    let number = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    if number(v) || v.parse::<f64>().is_ok_and(|f| f.is_finite()) && !v.contains(['e', 'E']) {
        return v.to_string();
    }
    if let Some(unit) = v.chars().last().filter(|c| "KkMmGg".contains(*c)) {
        let digits = &v[..v.len() - 1];
        if number(digits) {
            let shift = match unit.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                _ => 30,
            };
            if let Ok(n) = digits.parse::<u64>() {
                if let Some(bytes) = n.checked_mul(1 << shift) {
                    return bytes.to_string();
                }
            }
        }
    }
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_become_literals_that_cannot_break_out() {
        assert_eq!(
            set_global_sql("max_connections", "321").unwrap(),
            "SET GLOBAL max_connections = 321"
        );
        assert_eq!(literal("64M"), "67108864");
        assert_eq!(literal("0.5"), "0.5");
        assert_eq!(literal("ON"), "'ON'");
        assert_eq!(literal("a'; DROP TABLE t; --"), "'a''; DROP TABLE t; --'");
        assert_eq!(literal("x\\'"), "'x\\\\'''");
        assert!(set_global_sql("x; DROP", "1").is_none());
        assert!(set_global_sql("", "1").is_none());
    }
}

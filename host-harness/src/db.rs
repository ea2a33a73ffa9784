//! The SQL layer under [`crate::store::Store`]: one set of statements for both backends.
//!
//! Statements are written once, in the subset SQLite and PostgreSQL share, with SQLite's numbered
//! placeholders (`?1`, `?2`); [`to_postgres`] rewrites the few spellings that differ (placeholders
//! `$1`, SQLite's `strftime` timestamp, `INDEXED BY` hints, `INTEGER` keys) when the backend is
//! PostgreSQL. Values cross the layer as [`Value`]s (NULL, 64-bit integer, float, text), rows come
//! back as [`Row`]s of them, so the store's code reads the same on both backends.
//!
//! SQLite runs through rusqlite as before. PostgreSQL runs through the `postgres` crate, the
//! blocking face of `tokio-postgres`: the store is synchronous (one connection behind the
//! caller's mutex, as with SQLite) and that client blocks on a small runtime of its own, which
//! tokio forbids inside a runtime. So a call made from async code runs on a short-lived scoped
//! thread ([`off_runtime`]); the caller's thread waits as it waits for SQLite's disk today.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// One SQL value, as both backends store it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    /// Any integer column (PostgreSQL `BIGINT`, SQLite `INTEGER`); booleans are 0 and 1.
    Int(i64),
    Real(f64),
    Text(String),
}

/// Conversion into a statement parameter ([`crate::sql_params!`] calls it on each argument).
pub trait ToValue {
    fn to_value(&self) -> Value;
}

impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}

impl ToValue for str {
    fn to_value(&self) -> Value {
        Value::Text(self.to_owned())
    }
}

impl ToValue for String {
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}

impl ToValue for bool {
    fn to_value(&self) -> Value {
        Value::Int(i64::from(*self))
    }
}

impl ToValue for f64 {
    fn to_value(&self) -> Value {
        Value::Real(*self)
    }
}

impl ToValue for Value {
    fn to_value(&self) -> Value {
        self.clone()
    }
}

macro_rules! int_to_value {
    ($($t:ty),*) => {$(
        impl ToValue for $t {
            fn to_value(&self) -> Value {
                // Values past i64 (never met: ids, counts, milliseconds) saturate.
                Value::Int(i64::try_from(*self).unwrap_or(i64::MAX))
            }
        }
    )*};
}
int_to_value!(i16, i32, i64, u16, u32, u64, usize);

impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value {
        self.as_ref().map_or(Value::Null, ToValue::to_value)
    }
}

/// Statement parameters: `sql_params![a, b]` is a `&[Value]` of its arguments.
#[macro_export]
macro_rules! sql_params {
    ($($e:expr),* $(,)?) => {
        &[$($crate::db::ToValue::to_value(&$e)),*][..]
    };
}

/// Reading a column of a [`Row`] as a Rust type; a NULL or a value of another type is an error
/// (read `Option<T>` where a column may be NULL).
pub trait FromValue: Sized {
    fn from_value(value: &Value) -> anyhow::Result<Self>;
}

impl FromValue for i64 {
    fn from_value(value: &Value) -> anyhow::Result<Self> {
        match value {
            Value::Int(i) => Ok(*i),
            other => anyhow::bail!("expected an integer, found {other:?}"),
        }
    }
}

macro_rules! int_from_value {
    ($($t:ty),*) => {$(
        impl FromValue for $t {
            fn from_value(value: &Value) -> anyhow::Result<Self> {
                let i = i64::from_value(value)?;
                <$t>::try_from(i).with_context(|| format!("{i} is out of range"))
            }
        }
    )*};
}
int_from_value!(i32, u16, u32, u64, usize);

impl FromValue for bool {
    fn from_value(value: &Value) -> anyhow::Result<Self> {
        Ok(i64::from_value(value)? != 0)
    }
}

impl FromValue for f64 {
    fn from_value(value: &Value) -> anyhow::Result<Self> {
        match value {
            Value::Real(f) => Ok(*f),
            Value::Int(i) => Ok(*i as f64),
            other => anyhow::bail!("expected a number, found {other:?}"),
        }
    }
}

impl FromValue for String {
    fn from_value(value: &Value) -> anyhow::Result<Self> {
        match value {
            Value::Text(s) => Ok(s.clone()),
            other => anyhow::bail!("expected text, found {other:?}"),
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: &Value) -> anyhow::Result<Self> {
        match value {
            Value::Null => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}

/// One result row, columns in the statement's order.
#[derive(Debug, Clone, PartialEq)]
pub struct Row(pub Vec<Value>);

impl Row {
    /// Column `index` (0-based) as `T`; errors name the column when it is missing or mistyped.
    pub fn get<T: FromValue>(&self, index: usize) -> anyhow::Result<T> {
        let value = self
            .0
            .get(index)
            .with_context(|| format!("the row has no column {index}"))?;
        T::from_value(value).with_context(|| format!("column {index}"))
    }
}

/// Which backend a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Where the state lives, as `--database` gives it: `postgres://…` (or `postgresql://…`) for a
/// PostgreSQL server, `sqlite://PATH` or a plain path for an SQLite file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

impl DatabaseUrl {
    /// Errors on an empty value and on any other `scheme://` (MySQL and the like are not
    /// supported), naming the accepted forms.
    pub fn parse(text: &str) -> anyhow::Result<DatabaseUrl> {
        let text = text.trim();
        if text.is_empty() {
            anyhow::bail!(
                "the database is empty: give postgres://USER@HOST:PORT/DB, sqlite://PATH or a file path"
            );
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return Ok(DatabaseUrl::Postgres(text.to_owned()));
        }
        // A scheme without its `//` is a typo, not a file of that name.
        let lower = text.to_ascii_lowercase();
        for scheme in ["postgres:", "postgresql:", "sqlite:"] {
            if lower.starts_with(scheme) && !lower.starts_with(&format!("{scheme}//")) {
                anyhow::bail!(
                    "{scheme} must be followed by //: give postgres://USER@HOST:PORT/DB or sqlite://PATH"
                );
            }
        }
        // libpq's `host=… dbname=…` form (which may hold a password: never repeated here).
        if text.split_whitespace().count() > 1 && text.contains('=') {
            anyhow::bail!(
                "a key=value connection string is not read here: give the same as a URL, \
                 postgres://USER:PASSWORD@HOST:PORT/DB"
            );
        }
        if let Some(path) = text.strip_prefix("sqlite://") {
            if path.is_empty() {
                anyhow::bail!("sqlite:// needs a file path (sqlite://lago-hubspot.db)");
            }
            return Ok(DatabaseUrl::Sqlite(PathBuf::from(path)));
        }
        if let Some((scheme, _)) = text.split_once("://") {
            anyhow::bail!(
                "unsupported database {scheme}://: give postgres://USER@HOST:PORT/DB, sqlite://PATH or a file path"
            );
        }
        Ok(DatabaseUrl::Sqlite(PathBuf::from(text)))
    }

    /// The URL with any password masked, for messages and logs.
    pub fn display(&self) -> String {
        match self {
            DatabaseUrl::Sqlite(path) => path.display().to_string(),
            DatabaseUrl::Postgres(url) => mask_password(url),
        }
    }
}

/// Query parameters of a database URL shown as they are; any other value is masked, since a
/// misspelt `password` (`pasword=`, `Password=`, `sslpassword=`) is a password too.
const SHOWN_PARAMETERS: &[&str] = &[
    "sslmode",
    "options",
    "application_name",
    "connect_timeout",
    "target_session_attrs",
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "keepalives",
    "keepalives_idle",
];

/// `url` with its password masked: `USER:PASSWORD@` and every query value but
/// [`SHOWN_PARAMETERS`]. A URL that does not parse is not shown at all.
pub(crate) fn mask_password(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return "(a database URL that does not parse as a URL)".into();
    };
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some("***"));
    }
    let hidden = |key: &str| !SHOWN_PARAMETERS.contains(&key);
    if parsed.query_pairs().any(|(key, _)| hidden(&key)) {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(key, value)| {
                let value = if hidden(&key) {
                    "***".into()
                } else {
                    value.into_owned()
                };
                (key.into_owned(), value)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.to_string()
}

/// Runs `f` where the blocking PostgreSQL client may block: on this thread outside tokio, on a
/// scoped thread inside it (a panic in `f` is carried over).
pub(crate) fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|scope| match scope.spawn(f).join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// A PostgreSQL connection and the statements it has prepared (each prepared once per
/// connection, by its text).
pub(crate) struct PgConnection {
    client: Option<postgres::Client>,
    statements: HashMap<String, postgres::Statement>,
    /// To connect again after the server closed the connection (a restart, a failover).
    config: postgres::Config,
    url: String,
}

impl PgConnection {
    pub(crate) fn connect(url: &str) -> anyhow::Result<PgConnection> {
        let config: postgres::Config = url
            .parse()
            .with_context(|| format!("cannot read the database URL {}", mask_password(url)))?;
        let client = off_runtime(|| config.connect(postgres::NoTls))
            .with_context(|| format!("cannot connect to {}", mask_password(url)))?;
        Ok(PgConnection {
            client: Some(client),
            statements: HashMap::new(),
            config,
            url: url.to_owned(),
        })
    }

    /// Passes `result` on; an error that is not the server's answer to a statement (the
    /// connection broke) drops the client, so the next call connects again.
    fn after<T>(&mut self, result: anyhow::Result<T>) -> anyhow::Result<T> {
        if let Err(error) = &result {
            let broken = error
                .chain()
                .filter_map(|cause| cause.downcast_ref::<postgres::Error>())
                .any(|pg| pg.as_db_error().is_none() || pg.is_closed());
            if broken && let Some(client) = self.client.take() {
                self.statements.clear();
                if tokio::runtime::Handle::try_current().is_ok() {
                    std::thread::spawn(move || drop(client));
                }
            }
        }
        result
    }

    /// The client and its prepared statements; a client the server closed is replaced by a new
    /// connection first (the call that met the closed connection returned its error: nothing is
    /// retried here).
    fn parts(
        &mut self,
    ) -> anyhow::Result<(
        &mut postgres::Client,
        &mut HashMap<String, postgres::Statement>,
    )> {
        if self.client.as_ref().is_none_or(postgres::Client::is_closed) {
            let config = &self.config;
            let client = off_runtime(|| config.connect(postgres::NoTls))
                .with_context(|| format!("cannot connect again to {}", mask_password(&self.url)))?;
            tracing::warn!("the database connection was closed; connected again");
            self.statements.clear();
            if let Some(old) = self.client.replace(client)
                && tokio::runtime::Handle::try_current().is_ok()
            {
                std::thread::spawn(move || drop(old));
            }
        }
        Ok((
            self.client.as_mut().expect("connected above"),
            &mut self.statements,
        ))
    }
}

impl Drop for PgConnection {
    fn drop(&mut self) {
        // The client owns a small runtime, which tokio refuses to drop inside another.
        self.statements.clear();
        if let Some(client) = self.client.take()
            && tokio::runtime::Handle::try_current().is_ok()
        {
            std::thread::spawn(move || drop(client));
        }
    }
}

/// The store's connection: SQLite (rusqlite) or PostgreSQL.
pub(crate) enum Db {
    Sqlite(rusqlite::Connection),
    Postgres(Box<RefCell<PgConnection>>),
}

/// A statement runner: the connection itself, or an open transaction on it.
pub(crate) enum Tx<'a, 'c> {
    Sqlite(&'a rusqlite::Connection),
    Postgres(
        RefCell<(
            &'a mut postgres::Transaction<'c>,
            &'a mut HashMap<String, postgres::Statement>,
        )>,
    ),
}

impl Db {
    pub(crate) fn backend(&self) -> Backend {
        match self {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// The PostgreSQL URL the connection was opened with (`None` on SQLite).
    pub(crate) fn postgres_url(&self) -> Option<String> {
        match self {
            Db::Sqlite(_) => None,
            Db::Postgres(pg) => Some(pg.borrow().url.clone()),
        }
    }

    /// The SQLite connection, for SQLite-only tooling (query plans, the file's path).
    pub(crate) fn sqlite(&self) -> Option<&rusqlite::Connection> {
        match self {
            Db::Sqlite(db) => Some(db),
            Db::Postgres(_) => None,
        }
    }

    /// Runs one statement; the number of rows it changed.
    pub(crate) fn execute(&self, sql: &str, params: &[Value]) -> anyhow::Result<usize> {
        match self {
            Db::Sqlite(db) => Tx::Sqlite(db).execute(sql, params),
            Db::Postgres(pg) => {
                let mut pg = pg.borrow_mut();
                let (client, statements) = pg.parts()?;
                let result = off_runtime(|| pg_execute(client, statements, sql, params));
                pg.after(result)
            }
        }
    }

    /// Every row of a query.
    pub(crate) fn query(&self, sql: &str, params: &[Value]) -> anyhow::Result<Vec<Row>> {
        match self {
            Db::Sqlite(db) => Tx::Sqlite(db).query(sql, params),
            Db::Postgres(pg) => {
                let mut pg = pg.borrow_mut();
                let (client, statements) = pg.parts()?;
                let result = off_runtime(|| pg_query(client, statements, sql, params));
                pg.after(result)
            }
        }
    }

    /// The first row of a query, if any.
    pub(crate) fn query_opt(&self, sql: &str, params: &[Value]) -> anyhow::Result<Option<Row>> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// The first row of a query, which must have one.
    pub(crate) fn query_one(&self, sql: &str, params: &[Value]) -> anyhow::Result<Row> {
        self.query_opt(sql, params)?
            .context("the query returned no row")
    }

    /// Runs `f` in one transaction: committed when it returns `Ok`, rolled back otherwise.
    pub(crate) fn transaction<T: Send>(
        &self,
        f: impl for<'a, 'c> FnOnce(&Tx<'a, 'c>) -> anyhow::Result<T> + Send,
    ) -> anyhow::Result<T> {
        match self {
            Db::Sqlite(db) => {
                let tx = db.unchecked_transaction()?;
                let value = f(&Tx::Sqlite(&tx))?;
                tx.commit()?;
                Ok(value)
            }
            Db::Postgres(pg) => {
                let mut pg = pg.borrow_mut();
                let (client, statements) = pg.parts()?;
                let result = off_runtime(move || {
                    let mut tx = client.transaction()?;
                    let value = f(&Tx::Postgres(RefCell::new((&mut tx, statements))))?;
                    tx.commit()?;
                    Ok(value)
                });
                pg.after(result)
            }
        }
    }
}

impl Tx<'_, '_> {
    pub(crate) fn execute(&self, sql: &str, params: &[Value]) -> anyhow::Result<usize> {
        match self {
            Tx::Sqlite(db) => {
                let mut stmt = db.prepare_cached(sql)?;
                Ok(stmt.execute(rusqlite::params_from_iter(params.iter().map(sqlite_value)))?)
            }
            Tx::Postgres(cell) => {
                let mut guard = cell.borrow_mut();
                let (tx, statements) = &mut *guard;
                pg_execute(*tx, statements, sql, params)
            }
        }
    }

    pub(crate) fn query(&self, sql: &str, params: &[Value]) -> anyhow::Result<Vec<Row>> {
        match self {
            Tx::Sqlite(db) => {
                let mut stmt = db.prepare_cached(sql)?;
                let columns = stmt.column_count();
                let rows = stmt.query_map(
                    rusqlite::params_from_iter(params.iter().map(sqlite_value)),
                    |row| {
                        (0..columns)
                            .map(|i| row.get_ref(i).map(value_from_sqlite))
                            .collect::<rusqlite::Result<Vec<Value>>>()
                            .map(Row)
                    },
                )?;
                Ok(rows.collect::<Result<_, _>>()?)
            }
            Tx::Postgres(cell) => {
                let mut guard = cell.borrow_mut();
                let (tx, statements) = &mut *guard;
                pg_query(*tx, statements, sql, params)
            }
        }
    }

    pub(crate) fn query_opt(&self, sql: &str, params: &[Value]) -> anyhow::Result<Option<Row>> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// Runs a script of statements (DDL) as it is, without parameters.
    pub(crate) fn batch(&self, sql: &str) -> anyhow::Result<()> {
        match self {
            Tx::Sqlite(db) => Ok(db.execute_batch(sql)?),
            Tx::Postgres(cell) => Ok(cell.borrow_mut().0.batch_execute(sql)?),
        }
    }

    pub(crate) fn backend(&self) -> Backend {
        match self {
            Tx::Sqlite(_) => Backend::Sqlite,
            Tx::Postgres(_) => Backend::Postgres,
        }
    }
}

fn sqlite_value(value: &Value) -> rusqlite::types::Value {
    match value {
        Value::Null => rusqlite::types::Value::Null,
        Value::Int(i) => rusqlite::types::Value::Integer(*i),
        Value::Real(f) => rusqlite::types::Value::Real(*f),
        Value::Text(s) => rusqlite::types::Value::Text(s.clone()),
    }
}

fn value_from_sqlite(value: rusqlite::types::ValueRef<'_>) -> Value {
    use rusqlite::types::ValueRef;
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(f) => Value::Real(f),
        ValueRef::Text(t) | ValueRef::Blob(t) => {
            Value::Text(String::from_utf8_lossy(t).into_owned())
        }
    }
}

#[cfg(test)]
thread_local! {
    /// What [`capture_postgres`] is collecting on this thread, when it is.
    static CAPTURED: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

/// Test hook: runs `f` and returns with its value every statement this thread ran on PostgreSQL
/// meanwhile, once per run, as sent (after [`to_postgres`]); DDL scripts ([`Tx::batch`]) aside.
/// Statements of calls made outside tokio run on the caller's thread ([`off_runtime`]).
#[cfg(test)]
pub(crate) fn capture_postgres<T>(f: impl FnOnce() -> T) -> (T, Vec<String>) {
    CAPTURED.with_borrow_mut(|captured| *captured = Some(Vec::new()));
    let value = f();
    let captured = CAPTURED.with_borrow_mut(Option::take).unwrap_or_default();
    (value, captured)
}

fn pg_statement<C: postgres::GenericClient>(
    client: &mut C,
    statements: &mut HashMap<String, postgres::Statement>,
    sql: &str,
) -> anyhow::Result<postgres::Statement> {
    #[cfg(test)]
    CAPTURED.with_borrow_mut(|captured| {
        if let Some(captured) = captured {
            captured.push(to_postgres(sql));
        }
    });
    if let Some(statement) = statements.get(sql) {
        return Ok(statement.clone());
    }
    let statement = client
        .prepare(&to_postgres(sql))
        .with_context(|| format!("PostgreSQL cannot prepare: {}", to_postgres(sql)))?;
    statements.insert(sql.to_owned(), statement.clone());
    Ok(statement)
}

fn pg_params(params: &[Value]) -> Vec<&(dyn postgres::types::ToSql + Sync)> {
    params
        .iter()
        .map(|v| v as &(dyn postgres::types::ToSql + Sync))
        .collect()
}

fn pg_execute<C: postgres::GenericClient>(
    client: &mut C,
    statements: &mut HashMap<String, postgres::Statement>,
    sql: &str,
    params: &[Value],
) -> anyhow::Result<usize> {
    let statement = pg_statement(client, statements, sql)?;
    let changed = client.execute(&statement, &pg_params(params))?;
    Ok(usize::try_from(changed)?)
}

fn pg_query<C: postgres::GenericClient>(
    client: &mut C,
    statements: &mut HashMap<String, postgres::Statement>,
    sql: &str,
    params: &[Value],
) -> anyhow::Result<Vec<Row>> {
    let statement = pg_statement(client, statements, sql)?;
    client
        .query(&statement, &pg_params(params))?
        .iter()
        .map(row_from_postgres)
        .collect()
}

fn row_from_postgres(row: &postgres::Row) -> anyhow::Result<Row> {
    use postgres::types::Type;
    let mut values = Vec::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        let ty = column.type_();
        let value = if *ty == Type::INT8 {
            row.try_get::<_, Option<i64>>(i)?.map(Value::Int)
        } else if *ty == Type::INT4 {
            row.try_get::<_, Option<i32>>(i)?
                .map(|v| Value::Int(v.into()))
        } else if *ty == Type::INT2 {
            row.try_get::<_, Option<i16>>(i)?
                .map(|v| Value::Int(v.into()))
        } else if *ty == Type::BOOL {
            row.try_get::<_, Option<bool>>(i)?
                .map(|v| Value::Int(v.into()))
        } else if *ty == Type::FLOAT8 {
            row.try_get::<_, Option<f64>>(i)?.map(Value::Real)
        } else if *ty == Type::FLOAT4 {
            row.try_get::<_, Option<f32>>(i)?
                .map(|v| Value::Real(v.into()))
        } else if [Type::TEXT, Type::VARCHAR, Type::BPCHAR, Type::NAME].contains(ty) {
            row.try_get::<_, Option<String>>(i)?.map(Value::Text)
        } else {
            anyhow::bail!(
                "column {} has PostgreSQL type {ty}, which the store does not read",
                column.name()
            );
        };
        values.push(value.unwrap_or(Value::Null));
    }
    Ok(Row(values))
}

impl postgres::types::ToSql for Value {
    fn to_sql(
        &self,
        ty: &postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        use postgres::types::Type;
        match self {
            Value::Null => Ok(postgres::types::IsNull::Yes),
            Value::Int(i) if *ty == Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
            Value::Int(i) if *ty == Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
            Value::Int(i) if *ty == Type::BOOL => (*i != 0).to_sql(ty, out),
            Value::Int(i) if *ty == Type::FLOAT8 => (*i as f64).to_sql(ty, out),
            Value::Int(i) if *ty == Type::TEXT => i.to_string().to_sql(ty, out),
            Value::Int(i) => i.to_sql(ty, out),
            Value::Real(f) if *ty == Type::FLOAT4 => (*f as f32).to_sql(ty, out),
            Value::Real(f) => f.to_sql(ty, out),
            Value::Text(s) => s.as_str().to_sql(ty, out),
        }
    }

    fn accepts(_: &postgres::types::Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

/// SQLite's timestamp default (`strftime('%Y-%m-%dT%H:%M:%fZ', 'now')`, UTC with milliseconds)
/// and its PostgreSQL spelling, which gives the same text.
const SQLITE_NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";
const POSTGRES_NOW: &str =
    "to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')";

/// A statement or migration written for SQLite, in PostgreSQL's spelling: `?N` placeholders
/// become `$N` (a bare `?` takes the next number), SQLite's timestamp becomes PostgreSQL's,
/// `INDEXED BY` hints go, and `INTEGER` columns become `BIGINT` (an `INTEGER PRIMARY KEY
/// AUTOINCREMENT` an identity). Quoted text and comments are left as they are.
pub fn to_postgres(sql: &str) -> String {
    let sql = sql.replace(SQLITE_NOW, POSTGRES_NOW);
    let mut out = String::with_capacity(sql.len() + 16);
    let mut chars = sql.chars().peekable();
    let mut next_bare = 1;
    let mut word = String::new();
    let flush_word = |word: &mut String, out: &mut String| {
        if word.is_empty() {
            return;
        }
        if word.eq_ignore_ascii_case("INTEGER") {
            out.push_str("BIGINT");
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    while let Some(c) = chars.next() {
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
            continue;
        }
        flush_word(&mut word, &mut out);
        match c {
            '\'' | '"' => {
                out.push(c);
                for inner in chars.by_ref() {
                    out.push(inner);
                    if inner == c {
                        break;
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                out.push(c);
                for inner in chars.by_ref() {
                    out.push(inner);
                    if inner == '\n' {
                        break;
                    }
                }
            }
            '?' => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                if digits.is_empty() {
                    digits = next_bare.to_string();
                    next_bare += 1;
                }
                out.push('$');
                out.push_str(&digits);
            }
            _ => out.push(c),
        }
    }
    flush_word(&mut word, &mut out);
    let out = out.replace(
        "BIGINT PRIMARY KEY AUTOINCREMENT",
        "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
    );
    strip_indexed_by(&out)
}

fn strip_indexed_by(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(at) = rest.find("INDEXED BY ") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "INDEXED BY ".len()..];
        let end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// Whether `path` names an SQLite database in memory (no file to create or check).
pub fn is_memory(path: &Path) -> bool {
    path.as_os_str() == ":memory:"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_rewritten_for_postgres() {
        assert_eq!(
            to_postgres("SELECT a FROM t INDEXED BY t_by_a WHERE a = ?1 AND b = ?2 AND c = '?3'"),
            "SELECT a FROM t  WHERE a = $1 AND b = $2 AND c = '?3'"
        );
        assert_eq!(to_postgres("VALUES (?, ?)"), "VALUES ($1, $2)");
        assert_eq!(
            to_postgres("id INTEGER PRIMARY KEY AUTOINCREMENT, n INTEGER NOT NULL, integers TEXT"),
            "id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, n BIGINT NOT NULL, integers TEXT"
        );
        assert_eq!(
            to_postgres("-- an INTEGER? no\nSET at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"),
            format!("-- an INTEGER? no\nSET at = {POSTGRES_NOW}")
        );
    }

    #[test]
    fn database_urls_name_their_backend_and_bad_ones_are_refused() {
        assert_eq!(
            DatabaseUrl::parse("postgres://u@h:5/db").unwrap(),
            DatabaseUrl::Postgres("postgres://u@h:5/db".into())
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite://state.db").unwrap(),
            DatabaseUrl::Sqlite("state.db".into())
        );
        assert_eq!(
            DatabaseUrl::parse("dir/state.db").unwrap(),
            DatabaseUrl::Sqlite("dir/state.db".into())
        );
        let error = DatabaseUrl::parse("mysql://h/db").unwrap_err().to_string();
        assert!(error.contains("unsupported database mysql://"), "{error}");
        assert!(DatabaseUrl::parse(" ").is_err());
        assert_eq!(
            DatabaseUrl::parse("postgres://u:secret@h/db")
                .unwrap()
                .display(),
            "postgres://u:***@h/db"
        );
        // A typo'd scheme is not a file name, and a libpq key=value string is not repeated.
        for typo in ["postgres:/h/db", "postgresql:h", "sqlite:back.db"] {
            let error = DatabaseUrl::parse(typo).unwrap_err().to_string();
            assert!(error.contains("must be followed by //"), "{typo}: {error}");
        }
        let error = DatabaseUrl::parse("host=h port=1 password=KVSECRET dbname=x")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("key=value") && !error.contains("KVSECRET"),
            "{error}"
        );
    }

    /// Wherever libpq reads a password, it is masked; what else the URL says stays.
    #[test]
    fn passwords_are_masked_in_the_userinfo_and_the_query() {
        assert_eq!(
            mask_password("postgres://lago@h:1/x?password=QSECRET&sslmode=disable"),
            "postgres://lago@h:1/x?password=***&sslmode=disable"
        );
        assert_eq!(
            mask_password("postgresql://u:p%40ss@h/db?options=-csearch_path%3Dt"),
            "postgresql://u:***@h/db?options=-csearch_path%3Dt"
        );
        assert!(!mask_password("postgres://u:secret@[bad/db").contains("secret"));
        for typo in ["pasword", "Password", "PASSWORD", "pass", "sslpassword"] {
            let shown = mask_password(&format!("postgres://u@h/db?{typo}=TypoPw&sslmode=require"));
            assert_eq!(
                shown,
                format!("postgres://u@h/db?{typo}=***&sslmode=require"),
                "{typo}"
            );
        }
    }
}

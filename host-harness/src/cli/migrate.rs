//! `lago-hubspot migrate --from FILE --to URL`: moves a state to another database without a
//! resync.

use std::process::ExitCode;

use clap::Args;

use lago_hubspot::store::{DatabaseUrl, Store};

#[derive(Args)]
pub struct MigrateArgs {
    /// The state to copy: an SQLite file (as --state names it) or a database URL.
    #[arg(long, value_name = "FILE|URL")]
    pub from: String,
    /// Where to copy it: postgres://USER[:PASSWORD]@HOST[:PORT]/DB (the database must exist and
    /// hold no state yet), or sqlite://FILE.
    #[arg(long, value_name = "URL")]
    pub to: String,
}

pub fn run(args: MigrateArgs) -> anyhow::Result<ExitCode> {
    let from = DatabaseUrl::parse(&args.from)?;
    let to = DatabaseUrl::parse(&args.to)?;
    anyhow::ensure!(from != to, "--from and --to name the same state");
    let source = match &from {
        DatabaseUrl::Sqlite(path) => {
            anyhow::ensure!(
                path.exists(),
                "no state database at {}: give --from the file --state names",
                path.display()
            );
            Store::open(path)?
        }
        DatabaseUrl::Postgres(url) => Store::open_postgres_existing(url)?,
    };
    let target = Store::open_url(&to)?;
    let copied = source.copy_into(&target)?;
    for (table, rows) in &copied {
        outln!("{table}: {rows} row(s)");
    }
    outln!(
        "copied the state of {} into {}; point --database (or LAGO_HUBSPOT_DATABASE_URL) at it. \
         Keep LAGO_HUBSPOT_SECRET_KEY (if set) as it is: the tokens stay sealed with it",
        from.display(),
        to.display()
    );
    Ok(ExitCode::SUCCESS)
}

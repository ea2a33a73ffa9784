//! Ready-made portals for tests: [`lived_in_portal`] seeds what a real customer's HubSpot
//! holds before lago-hubspot ever ran (hubspot-api.md §9).

use serde_json::json;

use super::{Emulator, Record, Seed, SeedAssociation, SeedRecord, SeedRef};

/// The HubSpot company sample 03 (`samples/events/03-customer-linked-to-existing-company.json`)
/// links its Lago customer to.
pub const GLOBEX_COMPANY_ID: &str = "9000001";
/// The email of sample 02's individual customer (`kenji.tanaka@example.jp`), which the
/// lived-in portal already gives to a contact a salesperson created.
pub const KENJI_EMAIL: &str = "kenji.tanaka@example.jp";

/// What [`lived_in_portal`] created. None of these records has a `lago_*` property.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LivedInPortal {
    /// "Globex (created in HubSpot)", domain `globex.example`, id [`GLOBEX_COMPANY_ID`].
    pub globex: Record,
    /// "Acme Corporation", domain `acme.example`: the domain of sample 01's customer (Acme
    /// Corp), created by hand (companies are not unique by domain: a second Acme may appear).
    pub acme: Record,
    /// "Initech", domain `initech.com`: a company Lago knows nothing about.
    pub initech: Record,
    /// Kenji Tanaka, email [`KENJI_EMAIL`]: the address sample 02's individual customer uses,
    /// so a contact write with it meets 409 `Contact already exists. Existing ID: …`.
    pub kenji: Record,
    /// Peter Gibbons, `peter.gibbons@initech.com`, associated with Initech.
    pub peter: Record,
    /// Samir, a contact without any email (only a first name and a phone).
    pub samir: Record,
}

/// Seeds a typical lived-in portal: three companies (one with the id sample 03 links to), three
/// contacts (one holding the email a Lago sample customer uses, one without email) and a
/// contact-company association. Needs an emulator without those records or ids yet; standard
/// properties only, so it works before or after a deploy.
pub fn lived_in_portal(emulator: &Emulator) -> anyhow::Result<LivedInPortal> {
    let record = |id: Option<&str>, properties: serde_json::Value| SeedRecord {
        id: id.map(str::to_owned),
        properties: properties.as_object().cloned().unwrap_or_default(),
    };
    let seed = Seed {
        companies: vec![
            record(
                Some(GLOBEX_COMPANY_ID),
                json!({ "name": "Globex (created in HubSpot)", "domain": "globex.example" }),
            ),
            record(
                None,
                json!({ "name": "Acme Corporation", "domain": "acme.example",
                        "city": "Paris", "country": "France" }),
            ),
            record(
                None,
                json!({ "name": "Initech", "domain": "initech.com", "industry": "COMPUTER_SOFTWARE" }),
            ),
        ],
        contacts: vec![
            record(
                None,
                json!({ "email": KENJI_EMAIL, "firstname": "Kenji", "lastname": "Tanaka",
                        "lifecyclestage": "lead" }),
            ),
            record(
                None,
                json!({ "email": "peter.gibbons@initech.com", "firstname": "Peter",
                        "lastname": "Gibbons", "jobtitle": "Software Engineer" }),
            ),
            record(
                None,
                json!({ "firstname": "Samir", "phone": "+1 555 0199" }),
            ),
        ],
        associations: Vec::new(),
    };
    let seeded = emulator.seed(&seed)?;
    let [globex, acme, initech] = <[Record; 3]>::try_from(seeded.companies)
        .map_err(|_| anyhow::anyhow!("three companies seeded"))?;
    let [kenji, peter, samir] = <[Record; 3]>::try_from(seeded.contacts)
        .map_err(|_| anyhow::anyhow!("three contacts seeded"))?;
    emulator.seed(&Seed {
        associations: vec![SeedAssociation {
            from: SeedRef {
                object_type: "contacts".to_owned(),
                id: peter.id.clone(),
            },
            to: SeedRef {
                object_type: "companies".to_owned(),
                id: initech.id.clone(),
            },
        }],
        ..Seed::default()
    })?;
    Ok(LivedInPortal {
        globex,
        acme,
        initech,
        kenji,
        peter,
        samir,
    })
}

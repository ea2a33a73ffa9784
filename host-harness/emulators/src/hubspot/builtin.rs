//! HubSpot-defined properties and groups that every portal starts with.
//!
//! A realistic subset: enough that a sync writing standard fields (name, domain, email, …)
//! lands on real definitions with the right types, and anything else must be deployed first.

use super::state::{
    COMPANIES_TYPE_ID, CONTACTS_TYPE_ID, PropertyDefinition, PropertyGroup, PropertyOption,
};

struct Builtin {
    name: &'static str,
    label: &'static str,
    property_type: &'static str,
    field_type: &'static str,
    options: &'static [(&'static str, &'static str)],
    read_only: bool,
}

const fn plain(name: &'static str, label: &'static str) -> Builtin {
    typed(name, label, "string", "text")
}

const fn typed(
    name: &'static str,
    label: &'static str,
    property_type: &'static str,
    field_type: &'static str,
) -> Builtin {
    Builtin {
        name,
        label,
        property_type,
        field_type,
        options: &[],
        read_only: false,
    }
}

const fn choice(
    name: &'static str,
    label: &'static str,
    options: &'static [(&'static str, &'static str)],
) -> Builtin {
    Builtin {
        name,
        label,
        property_type: "enumeration",
        field_type: "select",
        options,
        read_only: false,
    }
}

const fn system(
    name: &'static str,
    label: &'static str,
    property_type: &'static str,
    field_type: &'static str,
) -> Builtin {
    Builtin {
        name,
        label,
        property_type,
        field_type,
        options: &[],
        read_only: true,
    }
}

const LIFECYCLE_STAGES: &[(&str, &str)] = &[
    ("Subscriber", "subscriber"),
    ("Lead", "lead"),
    ("Marketing Qualified Lead", "marketingqualifiedlead"),
    ("Sales Qualified Lead", "salesqualifiedlead"),
    ("Opportunity", "opportunity"),
    ("Customer", "customer"),
    ("Evangelist", "evangelist"),
    ("Other", "other"),
];

const INDUSTRIES: &[(&str, &str)] = &[
    ("Accounting", "ACCOUNTING"),
    ("Banking", "BANKING"),
    ("Computer Software", "COMPUTER_SOFTWARE"),
    ("Consumer Services", "CONSUMER_SERVICES"),
    ("Education Management", "EDUCATION_MANAGEMENT"),
    ("Financial Services", "FINANCIAL_SERVICES"),
    ("Hospital & Health Care", "HOSPITAL_HEALTH_CARE"),
    (
        "Information Technology and Services",
        "INFORMATION_TECHNOLOGY_AND_SERVICES",
    ),
    ("Internet", "INTERNET"),
    ("Marketing and Advertising", "MARKETING_AND_ADVERTISING"),
    ("Retail", "RETAIL"),
    ("Telecommunications", "TELECOMMUNICATIONS"),
];

const COMPANY_TYPES: &[(&str, &str)] = &[
    ("Prospect", "PROSPECT"),
    ("Partner", "PARTNER"),
    ("Reseller", "RESELLER"),
    ("Vendor", "VENDOR"),
    ("Other", "OTHER"),
];

const LEAD_STATUSES: &[(&str, &str)] = &[
    ("New", "NEW"),
    ("Open", "OPEN"),
    ("In Progress", "IN_PROGRESS"),
    ("Open Deal", "OPEN_DEAL"),
    ("Unqualified", "UNQUALIFIED"),
    ("Attempted to Contact", "ATTEMPTED_TO_CONTACT"),
    ("Connected", "CONNECTED"),
    ("Bad Timing", "BAD_TIMING"),
];

const COMPANY_PROPERTIES: &[Builtin] = &[
    plain("name", "Company name"),
    plain("domain", "Company Domain Name"),
    plain("website", "Website URL"),
    typed("phone", "Phone Number", "string", "phonenumber"),
    plain("address", "Street Address"),
    plain("address2", "Street Address 2"),
    plain("city", "City"),
    plain("state", "State/Region"),
    plain("zip", "Postal Code"),
    plain("country", "Country/Region"),
    typed("description", "Description", "string", "textarea"),
    choice("industry", "Industry", INDUSTRIES),
    choice("type", "Type", COMPANY_TYPES),
    choice("lifecyclestage", "Lifecycle Stage", LIFECYCLE_STAGES),
    typed(
        "numberofemployees",
        "Number of Employees",
        "number",
        "number",
    ),
    typed("annualrevenue", "Annual Revenue", "number", "number"),
    plain("founded_year", "Year Founded"),
    plain("linkedin_company_page", "LinkedIn Company Page"),
    typed("createdate", "Create Date", "datetime", "date"),
    system(
        "hs_lastmodifieddate",
        "Last Modified Date",
        "datetime",
        "date",
    ),
    system("hs_object_id", "Record ID", "number", "number"),
    system(
        "hs_merged_object_ids",
        "Merged Company IDs",
        "string",
        "text",
    ),
];

const CONTACT_PROPERTIES: &[Builtin] = &[
    plain("email", "Email"),
    plain("firstname", "First Name"),
    plain("lastname", "Last Name"),
    typed("phone", "Phone Number", "string", "phonenumber"),
    typed(
        "mobilephone",
        "Mobile Phone Number",
        "string",
        "phonenumber",
    ),
    plain("company", "Company Name"),
    plain("website", "Website URL"),
    plain("jobtitle", "Job Title"),
    plain("address", "Street Address"),
    plain("city", "City"),
    plain("state", "State/Region"),
    plain("zip", "Postal Code"),
    plain("country", "Country/Region"),
    choice("lifecyclestage", "Lifecycle Stage", LIFECYCLE_STAGES),
    choice("hs_lead_status", "Lead Status", LEAD_STATUSES),
    typed("createdate", "Create Date", "datetime", "date"),
    system("lastmodifieddate", "Last Modified Date", "datetime", "date"),
    system(
        "hs_lastmodifieddate",
        "Object last modified date/time",
        "datetime",
        "date",
    ),
    system("hs_object_id", "Record ID", "number", "number"),
    system(
        "hs_merged_object_ids",
        "Merged Contact IDs",
        "string",
        "text",
    ),
    system(
        "hs_additional_emails",
        "Additional email addresses",
        "string",
        "text",
    ),
];

const CUSTOM_OBJECT_PROPERTIES: &[Builtin] = &[
    system(
        "hs_createdate",
        "Object create date/time",
        "datetime",
        "date",
    ),
    system(
        "hs_lastmodifieddate",
        "Object last modified date/time",
        "datetime",
        "date",
    ),
    system("hs_object_id", "Record ID", "number", "number"),
];

fn definitions(builtins: &[Builtin], group_name: &str, now: i64) -> Vec<PropertyDefinition> {
    builtins
        .iter()
        .enumerate()
        .map(|(position, builtin)| PropertyDefinition {
            name: builtin.name.to_owned(),
            label: builtin.label.to_owned(),
            property_type: builtin.property_type.to_owned(),
            field_type: builtin.field_type.to_owned(),
            group_name: group_name.to_owned(),
            description: String::new(),
            options: builtin
                .options
                .iter()
                .enumerate()
                .map(|(order, (label, value))| PropertyOption {
                    label: (*label).to_owned(),
                    value: (*value).to_owned(),
                    description: String::new(),
                    display_order: order as i64,
                    hidden: false,
                })
                .collect(),
            display_order: position as i64,
            has_unique_value: false,
            hidden: false,
            form_field: !builtin.read_only,
            hubspot_defined: true,
            read_only_value: builtin.read_only,
            searchable_in_global_search: false,
            calculation_formula: None,
            created_at: now,
            updated_at: now,
        })
        .collect()
}

pub(crate) fn standard_properties(type_id: &str, now: i64) -> Vec<PropertyDefinition> {
    match type_id {
        CONTACTS_TYPE_ID => definitions(CONTACT_PROPERTIES, "contactinformation", now),
        COMPANIES_TYPE_ID => definitions(COMPANY_PROPERTIES, "companyinformation", now),
        _ => Vec::new(),
    }
}

pub(crate) fn standard_groups(type_id: &str) -> Vec<PropertyGroup> {
    let group = |name: &str, label: &str, display_order| PropertyGroup {
        name: name.to_owned(),
        label: label.to_owned(),
        display_order,
    };
    match type_id {
        CONTACTS_TYPE_ID => vec![
            group("contactinformation", "Contact information", 0),
            group("emailinformation", "Email information", 1),
        ],
        COMPANIES_TYPE_ID => vec![
            group("companyinformation", "Company information", 0),
            group("socialmediainformation", "Social media information", 1),
        ],
        _ => Vec::new(),
    }
}

/// The system properties HubSpot gives every custom object.
pub(crate) fn custom_object_properties(group_name: &str, now: i64) -> Vec<PropertyDefinition> {
    definitions(CUSTOM_OBJECT_PROPERTIES, group_name, now)
}

/// Options HubSpot gives a bool property created without any.
pub(crate) fn default_bool_options() -> Vec<PropertyOption> {
    [("Yes", "true"), ("No", "false")]
        .into_iter()
        .enumerate()
        .map(|(order, (label, value))| PropertyOption {
            label: label.to_owned(),
            value: value.to_owned(),
            description: String::new(),
            display_order: order as i64,
            hidden: false,
        })
        .collect()
}

//! The fixed directory tree that `GETDICTILIST` serves: car makes with their models, regions by
//! federal district, and document types.
//!
//! The makes carry the AVINFO mock's brand codes in `CODE`, so a gateway can link the two
//! directories through KIAS's alternative code.

use std::sync::OnceLock;

use crate::catalog::BRANDS;

/// DictiISN of the car makes directory.
pub const CAR_MAKES_ISN: u64 = 2001;

/// DictiISN of the regions directory.
pub const REGIONS_ISN: u64 = 2002;

/// DictiISN of the document types directory.
pub const DOCUMENT_TYPES_ISN: u64 = 2003;

/// ISN of the first make. The makes follow in catalog order.
const FIRST_MAKE_ISN: u64 = 3_366_101;

/// ISN base of models: model `m` of make `k` (both from 0) is `MODEL_ISN_BASE + 100 * k + m + 1`.
const MODEL_ISN_BASE: u64 = 3_367_000;

/// A federal district with its regions.
struct District {
    code: &'static str,
    name: &'static str,
    /// Regions as (code, name), where the code is the region's number on plates.
    regions: &'static [(&'static str, &'static str)],
}

/// Federal districts of the regions directory.
const DISTRICTS: [District; 6] = [
    District {
        code: "ЦФО",
        name: "Центральный федеральный округ",
        regions: &[("77", "г. Москва"), ("50", "Московская область")],
    },
    District {
        code: "СЗФО",
        name: "Северо-Западный федеральный округ",
        regions: &[
            ("78", "г. Санкт-Петербург"),
            ("47", "Ленинградская область"),
        ],
    },
    District {
        code: "ПФО",
        name: "Приволжский федеральный округ",
        regions: &[("16", "Республика Татарстан")],
    },
    District {
        code: "УФО",
        name: "Уральский федеральный округ",
        regions: &[("66", "Свердловская область")],
    },
    District {
        code: "СФО",
        name: "Сибирский федеральный округ",
        regions: &[("54", "Новосибирская область")],
    },
    District {
        code: "ЮФО",
        name: "Южный федеральный округ",
        regions: &[("23", "Краснодарский край")],
    },
];

/// ISN of the first federal district.
const FIRST_DISTRICT_ISN: u64 = 2_100_001;

/// ISN base of regions: region `r` of district `d` (both from 0) is `REGION_ISN_BASE + 100 * d + r + 1`.
const REGION_ISN_BASE: u64 = 2_101_000;

/// Document types with their code and name.
const DOCUMENT_TYPES: [(&str, &str); 7] = [
    ("21", "Паспорт гражданина Российской Федерации"),
    ("10", "Паспорт иностранного гражданина"),
    ("12", "Вид на жительство в Российской Федерации"),
    ("03", "Свидетельство о рождении"),
    ("DL", "Водительское удостоверение"),
    ("PTS", "Паспорт транспортного средства"),
    ("STS", "Свидетельство о регистрации транспортного средства"),
];

/// ISN of the first document type.
const FIRST_DOCUMENT_TYPE_ISN: u64 = 2_200_001;

/// One directory entry, a row of `GETDICTILIST`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectoryEntry {
    pub isn: u64,
    pub parent_isn: u64,
    /// Short code, empty for models.
    pub code: String,
    pub short_name: String,
    pub full_name: String,
}

/// Returns every entry of every directory, built once.
fn entries() -> &'static [DirectoryEntry] {
    static ENTRIES: OnceLock<Vec<DirectoryEntry>> = OnceLock::new();
    ENTRIES.get_or_init(build_entries)
}

fn build_entries() -> Vec<DirectoryEntry> {
    let mut entries = Vec::new();
    let entry = |isn, parent_isn, code: &str, short_name: &str, full_name: &str| DirectoryEntry {
        isn,
        parent_isn,
        code: code.to_owned(),
        short_name: short_name.to_owned(),
        full_name: full_name.to_owned(),
    };

    for (make_index, brand) in (0u64..).zip(BRANDS.iter()) {
        let make_isn = FIRST_MAKE_ISN + make_index;
        entries.push(entry(
            make_isn,
            CAR_MAKES_ISN,
            brand.code,
            brand.code,
            brand.name,
        ));
        for (model_index, model) in (0u64..).zip(brand.models.iter()) {
            let model_isn = MODEL_ISN_BASE + 100 * make_index + model_index + 1;
            entries.push(entry(model_isn, make_isn, "", model.name, model.name));
        }
    }

    for (district_index, district) in (0u64..).zip(DISTRICTS.iter()) {
        let district_isn = FIRST_DISTRICT_ISN + district_index;
        entries.push(entry(
            district_isn,
            REGIONS_ISN,
            district.code,
            district.code,
            district.name,
        ));
        for (region_index, (region_code, region_name)) in (0u64..).zip(district.regions.iter()) {
            let region_isn = REGION_ISN_BASE + 100 * district_index + region_index + 1;
            entries.push(entry(
                region_isn,
                district_isn,
                region_code,
                region_code,
                region_name,
            ));
        }
    }

    for (index, (code, name)) in (0u64..).zip(DOCUMENT_TYPES.iter()) {
        entries.push(entry(
            FIRST_DOCUMENT_TYPE_ISN + index,
            DOCUMENT_TYPES_ISN,
            code,
            code,
            name,
        ));
    }
    entries
}

/// Checks whether `isn` is a directory root or an entry.
pub fn is_known(isn: u64) -> bool {
    [CAR_MAKES_ISN, REGIONS_ISN, DOCUMENT_TYPES_ISN].contains(&isn)
        || entries().iter().any(|entry| entry.isn == isn)
}

/// Returns the children of `isn` in ISN order, each with its number of children.
pub fn children(isn: u64) -> Vec<(&'static DirectoryEntry, usize)> {
    entries()
        .iter()
        .filter(|entry| entry.parent_isn == isn)
        .map(|entry| (entry, child_count(entry.isn)))
        .collect()
}

fn child_count(isn: u64) -> usize {
    entries()
        .iter()
        .filter(|entry| entry.parent_isn == isn)
        .count()
}
